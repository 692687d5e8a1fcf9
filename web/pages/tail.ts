/**
 * Live tail: logs as they are stored, newest on top (GET /api/v1/logs/tail,
 * README.md "Live tail"). fetch() reads the event stream because EventSource
 * cannot send the API key. Pause hangs up (the server frees the slot); resume
 * reconnects with the last event id, so what was stored meanwhile follows.
 * The list keeps the newest MAX_ROWS lines.
 */
import { createParser } from 'eventsource-parser';
import { ApiError, type LogRow } from '../api.ts';
import { defaultFilter, errorBox, serviceOptions, type PageDefinition } from '../app.ts';
import { empty, field, h, mount, select } from '../dom.ts';
import { logCells, logTableHead } from '../log-rows.ts';

const MAX_ROWS = 500;
/** When the stream ends without a pause (network, server restart), the next try waits this long. */
const RECONNECT_MS = 3_000;
const LEVELS: ReadonlyArray<readonly [string, string]> = [
  ['', 'Any level'],
  ['DEBUG', 'DEBUG'],
  ['INFO', 'INFO'],
  ['WARN', 'WARN'],
  ['ERROR', 'ERROR'],
  ['FATAL', 'FATAL'],
];
const FILTERS = ['service', 'environment', 'level', 'q', 'errorHash', 'traceId'] as const;

/** `key=value` from the attribute box; the server checks the key. */
function attributeOf(text: string): [string, string] | undefined {
  const at = text.indexOf('=');
  if (at <= 0 || at === text.length - 1) return undefined;
  return [text.slice(0, at).trim(), text.slice(at + 1).trim()];
}

export const tailPage: PageDefinition = {
  id: 'tail',
  title: 'Live tail',
  render(ctx) {
    const q = ctx.query;
    const filters: Record<(typeof FILTERS)[number], string> = {
      service: q.get('service') ?? defaultFilter(ctx.session, 'service'),
      environment: q.get('environment') ?? defaultFilter(ctx.session, 'environment'),
      level: q.get('level') ?? '',
      q: q.get('q') ?? '',
      errorHash: q.get('errorHash') ?? '',
      traceId: q.get('traceId') ?? '',
    };
    const attributes = [...q.entries()].filter(([k]) => k.startsWith('attr.'));

    const serviceSelect = serviceOptions(ctx.session, filters.service);
    const envInput = h('input', { name: 'environment', value: filters.environment, placeholder: 'any', size: 10 });
    const levelSelect = select('level', LEVELS, filters.level);
    const textInput = h('input', { name: 'q', type: 'search', value: filters.q, placeholder: 'text in message' });
    const hashInput = h('input', { name: 'errorHash', value: filters.errorHash, placeholder: 'error hash', size: 14 });
    const traceInput = h('input', { name: 'traceId', value: filters.traceId, placeholder: 'trace id', size: 18 });
    const attrInput = h('input', {
      name: 'attr',
      value: attributes[0] === undefined ? '' : `${attributes[0][0].slice(5)}=${attributes[0][1]}`,
      placeholder: 'key=value',
      size: 18,
    });
    const form = h(
      'form',
      {
        class: 'filters',
        onsubmit: (event: Event) => {
          event.preventDefault();
          const attribute = attributeOf(attrInput.value.trim());
          ctx.setQuery({
            service: serviceSelect.value,
            environment: envInput.value.trim(),
            level: levelSelect.value,
            q: textInput.value.trim(),
            errorHash: hashInput.value.trim(),
            traceId: traceInput.value.trim(),
            ...(attribute === undefined ? {} : { [`attr.${attribute[0]}`]: attribute[1] }),
          });
        },
      },
      field('Service', serviceSelect),
      field('Environment', envInput),
      field('Level', levelSelect),
      field('Message contains', textInput),
      field('Error hash', hashInput),
      field('Trace id', traceInput),
      field('Attribute', attrInput),
      h('button', { type: 'submit', class: 'primary' }, 'Apply'),
    );

    const status = h('span', { id: 'tail-status', class: 'muted' }, 'Connecting…');
    const toggle = h('button', { type: 'button', id: 'tail-toggle' }, 'Pause');
    const problem = h('div');
    const rows = h('tbody', { id: 'tail-rows' });
    const table = h('table', { id: 'tail-table' }, logTableHead(), rows);
    const waiting = empty('Waiting for new log lines…');
    mount(
      ctx.root,
      h('section', { class: 'card' }, form, h('div', { class: 'pager' }, status, toggle), problem, waiting, table),
    );

    const query = new URLSearchParams();
    for (const name of FILTERS) if (filters[name] !== '') query.set(name, filters[name]);
    for (const [k, v] of attributes) query.set(k, v);

    let lastEventId: string | undefined;
    let paused = false;
    let connection: AbortController | undefined;
    let retry: ReturnType<typeof setTimeout> | undefined;

    const add = (row: LogRow) => {
      waiting.hidden = true;
      rows.prepend(h('tr', { 'data-log-id': row.logId }, ...logCells(row)));
      while (rows.childElementCount > MAX_ROWS) rows.lastElementChild?.remove();
    };

    const connect = async () => {
      const controller = new AbortController();
      connection = controller;
      status.textContent = 'Connecting…';
      mount(problem);
      let ended = 'The stream ended.';
      try {
        const body = await ctx.session.api.stream('/logs/tail', query, {
          lastEventId,
          signal: controller.signal,
        });
        const parser = createParser({
          onEvent: (event) => {
            if (event.event === 'ready') status.textContent = 'Live';
            else if (event.event === 'log') {
              lastEventId = event.id;
              add(JSON.parse(event.data) as LogRow);
            } else if (event.event === 'warning' || event.event === 'closed') {
              const data = JSON.parse(event.data) as { message?: string };
              if (event.event === 'closed')
                ended = `The server ended the stream: ${data.message ?? 'no reason given'}.`;
              else status.textContent = `Live · ${data.message ?? 'a read failed'}`;
            }
          },
        });
        const reader = body.getReader();
        const decoder = new TextDecoder();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          parser.feed(decoder.decode(value, { stream: true }));
        }
      } catch (error) {
        if (controller.signal.aborted) return;
        if (error instanceof ApiError && error.status >= 400 && error.status < 500) {
          // A refused filter or key: trying again would be refused again.
          status.textContent = 'Stopped';
          mount(problem, errorBox(error));
          return;
        }
        ended = error instanceof Error ? error.message : String(error);
      }
      if (controller.signal.aborted || !ctx.alive() || paused) return;
      status.textContent = `${ended} Reconnecting…`;
      retry = setTimeout(() => void connect(), RECONNECT_MS);
    };

    const hangUp = () => {
      clearTimeout(retry);
      connection?.abort();
      connection = undefined;
    };
    toggle.addEventListener('click', () => {
      paused = !paused;
      toggle.textContent = paused ? 'Resume' : 'Pause';
      if (paused) {
        hangUp();
        status.textContent = 'Paused';
      } else {
        void connect();
      }
    });
    ctx.onCleanup(hangUp);
    void connect();
  },
};
