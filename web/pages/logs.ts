/** Logs explorer: filters in the URL, newest first, cursor paging both ways. */
import type { LogRow } from '../api.ts';
import { defaultFilter, errorBox, serviceOptions, type PageDefinition } from '../app.ts';
import { empty, field, h, mount, select } from '../dom.ts';
import { logCells, logTableHead } from '../log-rows.ts';
import { fmtTime, rangeBounds } from '../format.ts';

const LEVELS: ReadonlyArray<readonly [string, string]> = [
  ['', 'Any level'],
  ['DEBUG', 'DEBUG'],
  ['INFO', 'INFO'],
  ['WARN', 'WARN'],
  ['ERROR', 'ERROR'],
  ['FATAL', 'FATAL'],
];
const PAGE_SIZE = 100;

function detail(row: LogRow): HTMLElement {
  const pairs: Array<[string, string | null]> = [
    ['Log id', row.logId],
    ['Time', fmtTime(row.timestamp)],
    ['Host', row.host],
    ['Trace id', row.traceId],
    ['Template', row.template],
    ...Object.entries(row.attributes ?? {}).map(([k, v]): [string, string] => [`attr.${k}`, v]),
  ];
  return h(
    'div',
    null,
    h('pre', { class: 'msg', style: 'white-space:pre-wrap;margin:0 0 8px' }, row.message),
    h(
      'dl',
      { class: 'kv' },
      pairs
        .filter(([, v]) => v !== null && v !== '')
        .map(([k, v]) => [h('dt', null, k), h('dd', { class: 'mono' }, v)]),
    ),
    row.errorHash === null
      ? null
      : h(
          'p',
          null,
          h('a', { href: `#/patterns/${encodeURIComponent(row.errorHash)}` }, 'Pattern'),
          ' · ',
          h('a', { href: `#/logs?errorHash=${encodeURIComponent(row.errorHash)}` }, 'All logs of this pattern'),
          row.traceId === null || row.traceId === ''
            ? null
            : [' · ', h('a', { href: `#/logs?traceId=${encodeURIComponent(row.traceId)}` }, 'All logs of this trace')],
        ),
  );
}

/** The tail takes the same filters, without the time range. */
function tailQuery(
  filters: Readonly<Record<string, string>>,
  attributes: ReadonlyArray<readonly [string, string]>,
): string {
  const query = new URLSearchParams();
  for (const name of ['service', 'environment', 'level', 'q', 'errorHash', 'traceId'])
    if ((filters[name] ?? '') !== '') query.set(name, filters[name] ?? '');
  for (const [k, v] of attributes) query.set(k, v);
  return query.toString();
}

export const logsPage: PageDefinition = {
  id: 'logs',
  title: 'Logs',
  async render(ctx) {
    const q = ctx.query;
    const filters = {
      service: q.get('service') ?? defaultFilter(ctx.session, 'service'),
      environment: q.get('environment') ?? defaultFilter(ctx.session, 'environment'),
      level: q.get('level') ?? defaultFilter(ctx.session, 'level'),
      q: q.get('q') ?? '',
      errorHash: q.get('errorHash') ?? '',
      traceId: q.get('traceId') ?? '',
    };
    // attr.<key>=<value> filters travel in the address as they do in the API.
    const attributes = [...q.entries()].filter(([k]) => k.startsWith('attr.'));
    const serviceSelect = serviceOptions(ctx.session, filters.service);
    const envInput = h('input', { name: 'environment', value: filters.environment, placeholder: 'any', size: 10 });
    const levelSelect = select('level', LEVELS, filters.level);
    const textInput = h('input', {
      name: 'q',
      type: 'search',
      value: filters.q,
      placeholder: 'text in message',
      size: 28,
    });
    const hashInput = h('input', { name: 'errorHash', value: filters.errorHash, placeholder: 'error hash', size: 20 });
    const traceInput = h('input', { name: 'traceId', value: filters.traceId, placeholder: 'trace id', size: 18 });
    const form = h(
      'form',
      {
        class: 'filters',
        onsubmit: (event: Event) => {
          event.preventDefault();
          ctx.setQuery({
            service: serviceSelect.value,
            environment: envInput.value.trim(),
            level: levelSelect.value,
            q: textInput.value.trim(),
            errorHash: hashInput.value.trim(),
            traceId: traceInput.value.trim(),
            ...Object.fromEntries(attributes),
          });
        },
      },
      field('Service', serviceSelect),
      field('Environment', envInput),
      field('Level', levelSelect),
      field('Message contains', textInput),
      field('Error hash', hashInput),
      field('Trace id', traceInput),
      h('button', { type: 'submit', class: 'primary' }, 'Search'),
      h('a', { href: `#/tail?${tailQuery(filters, attributes)}`, id: 'logs-live-tail' }, 'Live tail →'),
    );
    for (const control of [serviceSelect, levelSelect]) control.addEventListener('change', () => form.requestSubmit());

    const results = h('div', null, empty('Loading…'));
    const info = h('span', { class: 'muted' });
    const newer = h('button', { type: 'button', disabled: true }, '← Newer');
    const older = h('button', { type: 'button', disabled: true }, 'Older →');
    mount(ctx.root, h('section', { class: 'card' }, form, results, h('div', { class: 'pager' }, info, newer, older)));

    // Bounds are fixed for the page's lifetime so paging walks one consistent window.
    const bounds = rangeBounds(ctx.range);
    const cursors: Array<string | null> = [null];
    let pageIndex = 0;
    let nextCursor: string | null = null;

    const show = async () => {
      newer.disabled = true;
      older.disabled = true;
      try {
        const page = await ctx.session.api.page<LogRow>('/logs', {
          ...filters,
          ...Object.fromEntries(attributes),
          ...bounds,
          limit: PAGE_SIZE,
          cursor: cursors[pageIndex] ?? null,
        });
        if (!ctx.alive()) return;
        nextCursor = page.nextCursor;
        newer.disabled = pageIndex === 0;
        older.disabled = nextCursor === null;
        info.textContent = page.items.length === 0 ? '' : `page ${pageIndex + 1} · ${page.items.length} lines`;
        mount(
          results,
          page.items.length === 0
            ? empty('No log lines match these filters.')
            : h(
                'table',
                { id: 'logs-table' },
                logTableHead(),
                h(
                  'tbody',
                  null,
                  page.items.flatMap((row) => {
                    const more = h('tr', { class: 'detail', hidden: true }, h('td', { colspan: 5 }, detail(row)));
                    return [
                      h(
                        'tr',
                        {
                          class: 'clickable',
                          onclick: () => {
                            more.hidden = !more.hidden;
                          },
                        },
                        ...logCells(row),
                      ),
                      more,
                    ];
                  }),
                ),
              ),
        );
      } catch (error) {
        if (ctx.alive()) mount(results, errorBox(error));
      }
    };
    newer.addEventListener('click', () => {
      if (pageIndex === 0) return;
      pageIndex -= 1;
      void show();
    });
    older.addEventListener('click', () => {
      if (nextCursor === null) return;
      pageIndex += 1;
      cursors[pageIndex] = nextCursor;
      void show();
    });
    await show();
  },
};
