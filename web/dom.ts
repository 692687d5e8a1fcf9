/** A tiny hyperscript: enough DOM building for a dashboard without a framework. */
export type Child = Node | string | number | null | undefined | false | readonly Child[];
export type Attrs = Readonly<Record<string, unknown>>;

function append(parent: Node, child: Child): void {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) {
    for (const c of child as readonly Child[]) append(parent, c);
  } else if (child instanceof Node) {
    parent.appendChild(child);
  } else {
    parent.appendChild(document.createTextNode(String(child)));
  }
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value as EventListener);
    } else if (key === 'class') {
      el.className = String(value);
    } else if (key === 'value' && 'value' in el) {
      (el as HTMLInputElement).value = String(value);
    } else if (key === 'checked' && el instanceof HTMLInputElement) {
      el.checked = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

export function clear(el: Element): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

export function mount(el: Element, ...children: Child[]): void {
  clear(el);
  append(el, children);
}

export function field(label: string, control: HTMLElement): HTMLLabelElement {
  return h('label', { class: 'field' }, label, control);
}

export function select(
  name: string,
  options: ReadonlyArray<readonly [string, string]>,
  value: string,
): HTMLSelectElement {
  return h(
    'select',
    { name },
    options.map(([v, text]) => h('option', { value: v, selected: v === value }, text)),
  );
}

export function badge(text: string, kind: string = text): HTMLSpanElement {
  return h('span', { class: `badge ${kind}` }, text);
}

export function empty(text: string): HTMLDivElement {
  return h('div', { class: 'empty' }, text);
}

let toasts: HTMLDivElement | undefined;
export function toast(message: string, kind: 'info' | 'error' = 'info'): void {
  if (toasts === undefined || !toasts.isConnected) {
    toasts = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.appendChild(toasts);
  }
  const item = h('div', { class: `toast ${kind}` }, message);
  toasts.appendChild(item);
  setTimeout(() => item.remove(), kind === 'error' ? 7000 : 3500);
}

/** Shows a failed action's message: every page reports errors the same way. */
export function toastError(error: unknown): void {
  toast(error instanceof Error ? error.message : String(error), 'error');
}

/** A "Load more" button for cursor pages, or nothing on the last page; disabled once pressed so a page loads once. */
export function loadMoreButton(next: string | null, load: (cursor: string) => Promise<void>): HTMLButtonElement | null {
  if (next === null) return null;
  return h(
    'button',
    {
      type: 'button',
      onclick: async (event: Event) => {
        (event.currentTarget as HTMLButtonElement).disabled = true;
        await load(next).catch(toastError);
      },
    },
    'Load more',
  );
}

/** A modal form: resolves with the form's data on submit, null on cancel. */
export function dialogForm(title: string, body: Child, submitLabel: string): Promise<FormData | null> {
  return new Promise((resolve) => {
    const form = h(
      'form',
      { method: 'dialog' },
      h('h2', null, title),
      body,
      h(
        'div',
        { class: 'buttons' },
        h(
          'button',
          {
            type: 'button',
            value: 'cancel',
            onclick: () => {
              dialog.close();
            },
          },
          'Cancel',
        ),
        h('button', { type: 'submit', class: 'primary', value: 'ok' }, submitLabel),
      ),
    );
    const dialog = h('dialog', null, form);
    let result: FormData | null = null;
    form.addEventListener('submit', () => {
      result = new FormData(form);
    });
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(result);
    });
    document.body.appendChild(dialog);
    dialog.showModal();
  });
}
