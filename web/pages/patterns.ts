/** Error patterns: templates with their occurrence sparklines; one pattern with its series and nearest neighbours. */
import type { Pattern, PatternDetail } from '../api.ts';
import { defaultFilter, section, serviceOptions, type PageContext, type PageDefinition } from '../app.ts';
import { lineChart, sparkline } from '../charts.ts';
import { empty, field, h, loadMoreButton, mount } from '../dom.ts';
import { fmtAgo, fmtCount, fmtNumber, fmtTime, rangeBounds } from '../format.ts';

const SPARK_CONCURRENCY = 4;

function seriesPoints(detail: PatternDetail): Array<readonly [number, number]> {
  return detail.series.map((p) => [Date.parse(p.t) / 1000, p.count] as const);
}

/** Fills each row's sparkline, a few requests at a time so a long page doesn't flood the server. */
async function fillSparklines(ctx: PageContext, cells: ReadonlyArray<readonly [string, HTMLElement]>): Promise<void> {
  const bounds = rangeBounds(ctx.range);
  const queue = [...cells];
  const worker = async () => {
    for (let next = queue.shift(); next !== undefined && ctx.alive(); next = queue.shift()) {
      const [hash, cell] = next;
      try {
        const detail = await ctx.session.api.get<PatternDetail>(`/patterns/${encodeURIComponent(hash)}`, bounds);
        if (!ctx.alive()) return;
        ctx.onCleanup(sparkline(cell, seriesPoints(detail)));
      } catch {
        cell.textContent = '—';
      }
    }
  };
  await Promise.all(Array.from({ length: SPARK_CONCURRENCY }, worker));
}

async function renderList(ctx: PageContext): Promise<void> {
  const service = ctx.query.get('service') ?? defaultFilter(ctx.session, 'service');
  const text = ctx.query.get('q') ?? '';
  const serviceSelect = serviceOptions(ctx.session, service);
  const search = h('input', { name: 'q', type: 'search', value: text, placeholder: 'text in template' });
  const form = h(
    'form',
    {
      class: 'filters',
      onsubmit: (event: Event) => {
        event.preventDefault();
        ctx.setQuery({ service: serviceSelect.value, q: search.value.trim() });
      },
    },
    field('Service', serviceSelect),
    field('Search', search),
    h('button', { type: 'submit', class: 'primary' }, 'Apply'),
  );
  serviceSelect.addEventListener('change', () => form.requestSubmit());
  const list = h('div', null, empty('Loading…'));
  const pager = h('div', { class: 'pager' });
  mount(ctx.root, h('section', { class: 'card' }, form, list, pager));
  const tbody = h('tbody');

  const load = async (cursor: string | null) => {
    const page = await ctx.session.api.page<Pattern>('/patterns', { service, q: text, limit: 25, cursor });
    if (!ctx.alive()) return;
    if (cursor === null) {
      mount(
        list,
        page.items.length === 0
          ? empty('No error patterns yet.')
          : h(
              'table',
              { id: 'patterns-table' },
              h(
                'thead',
                null,
                h(
                  'tr',
                  null,
                  h('th', null, 'Template'),
                  h('th', null, 'Service'),
                  h('th', { class: 'num' }, 'Occurrences'),
                  h('th', null, `Trend (${ctx.range})`),
                  h('th', null, 'First seen'),
                  h('th', null, 'Last seen'),
                ),
              ),
              tbody,
            ),
      );
    }
    const cells: Array<readonly [string, HTMLElement]> = [];
    for (const p of page.items) {
      const spark = h('div', { class: 'spark' });
      cells.push([p.errorHash, spark]);
      tbody.append(
        h(
          'tr',
          {
            class: 'clickable',
            onclick: () => {
              location.hash = `#/patterns/${encodeURIComponent(p.errorHash)}`;
            },
          },
          h('td', null, h('div', { class: 'template' }, p.template)),
          h('td', null, p.service),
          h('td', { class: 'num' }, fmtCount(p.occurrences)),
          h('td', null, spark),
          h('td', { class: 'nowrap', title: fmtTime(p.firstSeen) }, fmtAgo(p.firstSeen)),
          h('td', { class: 'nowrap', title: fmtTime(p.lastSeen) }, fmtAgo(p.lastSeen)),
        ),
      );
    }
    mount(pager, loadMoreButton(page.nextCursor, load));
    await fillSparklines(ctx, cells);
  };
  await section(ctx, list, async () => {
    await load(null);
    return list.firstElementChild as HTMLElement;
  });
}

async function renderOne(ctx: PageContext, hash: string): Promise<void> {
  const body = h('div', null, empty('Loading…'));
  mount(ctx.root, h('p', null, h('a', { href: '#/patterns' }, '← All patterns')), body);
  await section(ctx, body, async () => {
    const detail = await ctx.session.api.get<PatternDetail>(
      `/patterns/${encodeURIComponent(hash)}`,
      rangeBounds(ctx.range),
    );
    const p = detail.pattern;
    const chart = h('div', { class: 'chart' });
    const content = [
      h(
        'section',
        { class: 'card' },
        h('h2', null, 'Template'),
        h('div', { class: 'template', style: 'font-size:14px' }, p.template),
        h(
          'dl',
          { class: 'kv', style: 'margin-top:12px' },
          h('dt', null, 'Service'),
          h('dd', null, p.service),
          h('dt', null, 'Error hash'),
          h('dd', { class: 'mono' }, p.errorHash),
          h('dt', null, 'Occurrences'),
          h('dd', null, fmtCount(p.occurrences)),
          h('dt', null, 'First seen'),
          h('dd', null, fmtTime(p.firstSeen)),
          h('dt', null, 'Last seen'),
          h('dd', null, fmtTime(p.lastSeen)),
          h('dt', null, 'Embedding'),
          h('dd', null, p.hasEmbedding ? 'yes' : 'not yet'),
        ),
        h('p', null, h('a', { href: `#/logs?errorHash=${encodeURIComponent(p.errorHash)}` }, 'Show matching logs →')),
      ),
      h(
        'section',
        { class: 'card' },
        h('h2', null, `Occurrences (${ctx.range})`),
        detail.series.length === 0 ? empty('No occurrences in this time range.') : chart,
      ),
      h(
        'section',
        { class: 'card' },
        h('h2', null, 'Similar patterns'),
        detail.similar.length === 0
          ? empty(p.hasEmbedding ? 'No similar patterns found.' : 'This pattern has no embedding yet.')
          : h(
              'table',
              null,
              h(
                'thead',
                null,
                h(
                  'tr',
                  null,
                  h('th', null, 'Template'),
                  h('th', null, 'Service'),
                  h('th', { class: 'num' }, 'Similarity'),
                ),
              ),
              h(
                'tbody',
                null,
                detail.similar.map((s) =>
                  h(
                    'tr',
                    {
                      class: 'clickable',
                      onclick: () => {
                        location.hash = `#/patterns/${encodeURIComponent(s.errorHash)}`;
                      },
                    },
                    h('td', null, h('div', { class: 'template' }, s.template)),
                    h('td', null, s.service),
                    h('td', { class: 'num' }, fmtNumber(s.score, 3)),
                  ),
                ),
              ),
            ),
      ),
    ];
    if (detail.series.length > 0) {
      // The chart measures its container, so it is drawn once the page is in the document.
      setTimeout(() => {
        if (ctx.alive())
          ctx.onCleanup(
            lineChart(chart, [{ label: 'occurrences', points: seriesPoints(detail) }], {
              height: 220,
              format: (v) => fmtCount(v),
            }),
          );
      }, 0);
    }
    return content;
  });
}

export const patternsPage: PageDefinition = {
  id: 'patterns',
  title: 'Patterns',
  render(ctx) {
    const hash = ctx.path[0];
    return hash === undefined ? renderList(ctx) : renderOne(ctx, hash);
  },
};
