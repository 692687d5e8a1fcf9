/** Dashboard entry: API key handling, the app shell and the hash router. */
import './style.css';
import { Api, ApiError, storedKey, storeKey, type Preferences, type Service } from './api.ts';
import { defaultRange, errorBox, type PageContext, type PageDefinition, type Session } from './app.ts';
import { h, mount } from './dom.ts';
import { RANGES, isRange, setTimeZone } from './format.ts';
import { alertsPage } from './pages/alerts.ts';
import { logsPage } from './pages/logs.ts';
import { overviewPage } from './pages/overview.ts';
import { patternsPage } from './pages/patterns.ts';
import { reportsPage } from './pages/reports.ts';
import { servicesPage } from './pages/services.ts';
import { settingsPage } from './pages/settings.ts';
import { tailPage } from './pages/tail.ts';
import { applyTheme } from './theme.ts';

const PAGES: readonly PageDefinition[] = [
  overviewPage,
  alertsPage,
  patternsPage,
  reportsPage,
  logsPage,
  tailPage,
  servicesPage,
  settingsPage,
];
const RANGE_STORAGE = 'logflow.range';
const app = document.getElementById('app') as HTMLElement;

/**
 * The fragment is whatever the user pasted or a link cut short: text that is not valid
 * percent-encoding (`%E0%A4%A`) is taken as absent rather than thrown, which would
 * leave the page on "Loading" for good.
 */
function decodeFragmentPart(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch (error) {
    if (error instanceof URIError) return undefined;
    throw error;
  }
}

/**
 * `#key=lf_...` (the URL `npm start` prints) signs in and is removed from the address bar at once.
 * Returns why the sign-in page should be shown when the fragment held no usable key.
 */
function takeKeyFromFragment(): string | undefined {
  const match = /^#key=([^&]+)/.exec(location.hash);
  if (match?.[1] === undefined) return undefined;
  const key = decodeFragmentPart(match[1]);
  history.replaceState(null, '', `${location.pathname}${location.search}#/overview`);
  if (key === undefined) return 'The address held something that is not a valid API key; sign in with your key.';
  storeKey(key);
  return undefined;
}

function renderLogin(message?: string): void {
  applyTheme('system');
  const input = h('input', {
    name: 'key',
    type: 'password',
    placeholder: 'lf_…',
    autocomplete: 'off',
    required: true,
    'aria-label': 'API key',
  });
  const form = h(
    'form',
    {
      onsubmit: (event: Event) => {
        event.preventDefault();
        storeKey(input.value.trim());
        void boot();
      },
    },
    h('label', { class: 'field' }, 'API key', input),
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
  );
  mount(
    app,
    h(
      'div',
      { class: 'login card' },
      h('div', { class: 'brand' }, 'log', h('span', null, 'flow')),
      h(
        'p',
        { class: 'muted' },
        'Sign in with an API key (create one with ',
        h('code', null, 'npm run keys -- create --name <you>'),
        ').',
      ),
      message === undefined ? null : h('div', { class: 'error-box' }, message),
      form,
    ),
  );
  input.focus();
}

function parseHash(): { page: PageDefinition; path: string[]; query: URLSearchParams } {
  const raw = location.hash.replace(/^#\/?/, '');
  const [pathPart = '', queryPart = ''] = raw.split('?', 2);
  const [name = '', ...rest] = pathPart.split('/').map((s) => decodeFragmentPart(s) ?? s);
  const page = PAGES.find((p) => p.id === name) ?? PAGES[0];
  if (page === undefined) throw new Error('no pages');
  return { page, path: page.id === name ? rest.filter((s) => s !== '') : [], query: new URLSearchParams(queryPart) };
}

async function boot(): Promise<void> {
  const fragmentProblem = takeKeyFromFragment();
  const key = storedKey();
  if (key === null || key === '') {
    renderLogin(fragmentProblem);
    return;
  }
  const api = new Api(key);
  let session: Session;
  try {
    const me = await api.get<{ name: string; role: 'viewer' | 'operator' | 'admin' }>('/me');
    const [prefs, services] = await Promise.all([
      api.get<Preferences>('/preferences'),
      api
        .get<{ items: Service[] }>('/services')
        .then((r) => r.items)
        .catch(() => [] as Service[]),
    ]);
    session = { api, me, prefs, services };
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      storeKey(null);
      renderLogin('That API key was not accepted.');
    } else {
      mount(app, h('div', { class: 'content' }, errorBox(error)));
    }
    return;
  }
  api.onUnauthorized = () => {
    storeKey(null);
    renderLogin('Your API key is no longer valid.');
  };
  setTimeZone(session.prefs.timezone);
  applyTheme(session.prefs.theme);
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => applyTheme(session.prefs.theme));
  startShell(session);
}

function startShell(session: Session): void {
  const nav = h('nav', { class: 'nav' });
  const title = h('div', { class: 'title' });
  const content = h('main', { class: 'content' });
  const storedRange = localStorage.getItem(RANGE_STORAGE);
  let range = isRange(storedRange) ? storedRange : defaultRange(session);
  const rangeSelect = h(
    'select',
    {
      'aria-label': 'Time range',
      onchange: () => {
        range = rangeSelect.value;
        localStorage.setItem(RANGE_STORAGE, range);
        render();
      },
    },
    RANGES.map(([value, label]) => h('option', { value, selected: value === range }, label)),
  );
  const links = new Map<string, HTMLAnchorElement>();
  const alertCount = h('span', { class: 'count', hidden: true });
  for (const page of PAGES) {
    const link = h(
      'a',
      { href: `#/${page.id}`, 'data-page': page.id },
      page.title,
      page.id === 'alerts' ? alertCount : null,
    );
    links.set(page.id, link);
    nav.appendChild(link);
  }
  mount(
    app,
    h(
      'div',
      { class: 'shell' },
      h(
        'aside',
        { class: 'side' },
        h('div', { class: 'brand' }, 'log', h('span', null, 'flow')),
        nav,
        h('div', { class: 'who' }, `${session.me.name} · ${session.me.role}`),
      ),
      h(
        'div',
        { class: 'main' },
        h(
          'header',
          { class: 'top' },
          title,
          h('div', { class: 'spacer' }),
          rangeSelect,
          h('button', { type: 'button', onclick: () => render(), title: 'Reload data' }, 'Refresh'),
        ),
        content,
      ),
    ),
  );

  let generation = 0;
  let cleanups: Array<() => void> = [];

  const updateAlertCount = async () => {
    try {
      const open = await session.api.page('/alerts', { status: 'open', limit: 100 });
      const n = open.items.length;
      alertCount.textContent = open.nextCursor === null ? String(n) : `${n}+`;
      alertCount.hidden = n === 0;
    } catch {
      alertCount.hidden = true;
    }
  };

  function render(): void {
    for (const fn of cleanups) fn();
    cleanups = [];
    const current = ++generation;
    const { page, path, query } = parseHash();
    for (const [id, link] of links) link.classList.toggle('active', id === page.id);
    title.textContent = page.title;
    document.title = `${page.title} · logflow`;
    mount(content);
    const ctx: PageContext = {
      session,
      root: content,
      path,
      query,
      range,
      alive: () => current === generation,
      onCleanup: (fn) => {
        if (current === generation) cleanups.push(fn);
        else fn();
      },
      setQuery: (params) => {
        const q = new URLSearchParams();
        for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, v);
        const suffix = q.toString();
        const target = `#/${[page.id, ...path].map(encodeURIComponent).join('/')}${suffix === '' ? '' : `?${suffix}`}`;
        if (target === location.hash) render();
        else location.hash = target;
      },
      refresh: () => {
        render();
        void updateAlertCount();
      },
    };
    Promise.resolve(page.render(ctx)).catch((error: unknown) => {
      if (ctx.alive()) content.prepend(errorBox(error));
    });
  }

  window.addEventListener('hashchange', render);
  if (!/^#\//.test(location.hash)) history.replaceState(null, '', '#/overview');
  render();
  void updateAlertCount();
}

void boot();
