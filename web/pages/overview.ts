/** Overview: error rate per service, totals, top errors and open alerts. */
import type { Alert, ErrorRate, TopError } from '../api.ts';
import { section, type PageDefinition } from '../app.ts';
import { lineChart } from '../charts.ts';
import { badge, empty, h, mount } from '../dom.ts';
import { fmtAgo, fmtCount, fmtPercent, fmtTime, rangeBounds } from '../format.ts';

function kpi(label: string, value: string, bad = false): HTMLElement {
  return h(
    'div',
    { class: bad ? 'kpi bad' : 'kpi' },
    h('div', { class: 'label' }, label),
    h('div', { class: 'value' }, value),
  );
}

export const overviewPage: PageDefinition = {
  id: 'overview',
  title: 'Overview',
  async render(ctx) {
    const { api } = ctx.session;
    const bounds = rangeBounds(ctx.range);
    const kpis = h('div', { class: 'kpis' });
    const chart = h('div', { class: 'chart', id: 'error-rate-chart' });
    const chartCard = h('section', { class: 'card' }, h('h2', null, 'Error rate by service'), chart);
    const top = h('div', null, empty('Loading…'));
    const alerts = h('div', null, empty('Loading…'));
    mount(
      ctx.root,
      kpis,
      chartCard,
      h(
        'div',
        { class: 'grid2' },
        h('section', { class: 'card' }, h('h2', null, 'Top errors'), top),
        h('section', { class: 'card' }, h('h2', null, h('a', { href: '#/alerts?status=open' }, 'Open alerts')), alerts),
      ),
    );

    const rates = api.get<ErrorRate>('/stats/error-rate', bounds);
    const openAlerts = api.page<Alert>('/alerts', { status: 'open', limit: 20 });

    await Promise.all([
      (async () => {
        try {
          const data = await rates;
          if (!ctx.alive()) return;
          let total = 0;
          let errors = 0;
          for (const s of data.series)
            for (const p of s.points) {
              total += p.total;
              errors += p.errors;
            }
          const open = await openAlerts.catch(() => null);
          if (!ctx.alive()) return;
          mount(
            kpis,
            kpi('Log lines', fmtCount(total)),
            kpi('Errors', fmtCount(errors), errors > 0),
            kpi('Error rate', fmtPercent(total === 0 ? 0 : errors / total), total > 0 && errors / total > 0.05),
            kpi('Services', fmtCount(data.series.length)),
            kpi(
              'Open alerts',
              open === null ? '—' : `${open.items.length}${open.nextCursor === null ? '' : '+'}`,
              (open?.items.length ?? 0) > 0,
            ),
          );
          if (data.series.length === 0) {
            mount(chart, empty('No logs in this time range.'));
            return;
          }
          const series = [...data.series]
            .sort((a, b) => a.service.localeCompare(b.service))
            .map((s) => ({
              label: s.service,
              points: s.points.map((p) => [Date.parse(p.t) / 1000, p.rate * 100] as const),
            }));
          ctx.onCleanup(
            lineChart(chart, series, { format: (v) => `${v >= 10 || v === 0 ? v.toFixed(0) : v.toFixed(1)}%` }),
          );
        } catch (error) {
          if (ctx.alive())
            mount(
              chartCard,
              h('h2', null, 'Error rate by service'),
              h('div', { class: 'error-box' }, String(error instanceof Error ? error.message : error)),
            );
        }
      })(),
      section(ctx, top, async () => {
        const { items } = await api.get<{ items: TopError[] }>('/stats/top-errors', { ...bounds, limit: 10 });
        if (items.length === 0) return empty('No errors in this time range.');
        return h(
          'table',
          null,
          h(
            'thead',
            null,
            h(
              'tr',
              null,
              h('th', null, 'Pattern'),
              h('th', null, 'Service'),
              h('th', { class: 'num' }, 'Count'),
              h('th', null, 'Last seen'),
            ),
          ),
          h(
            'tbody',
            null,
            items.map((e) =>
              h(
                'tr',
                {
                  class: 'clickable',
                  onclick: () => {
                    location.hash = `#/patterns/${encodeURIComponent(e.errorHash)}`;
                  },
                },
                h('td', null, h('div', { class: 'template' }, e.template), badge(e.level)),
                h('td', { class: 'nowrap' }, e.service),
                h('td', { class: 'num' }, fmtCount(e.count)),
                h('td', { class: 'nowrap', title: fmtTime(e.lastSeen) }, fmtAgo(e.lastSeen)),
              ),
            ),
          ),
        );
      }),
      section(ctx, alerts, async () => {
        const { items } = await openAlerts;
        if (items.length === 0) return empty('No open alerts.');
        return h(
          'table',
          null,
          h(
            'tbody',
            null,
            items.map((a) =>
              h(
                'tr',
                {
                  class: 'clickable',
                  onclick: () => {
                    location.hash = `#/alerts?status=open&id=${a.id}`;
                  },
                },
                h('td', null, badge(a.severity)),
                h(
                  'td',
                  null,
                  h('div', null, h('strong', null, a.rule), ' ', a.service ?? ''),
                  h('div', { class: 'muted' }, a.description ?? a.alertType),
                ),
                h('td', { class: 'nowrap', title: fmtTime(a.openedAt) }, fmtAgo(a.openedAt)),
              ),
            ),
          ),
        );
      }),
    ]);
  },
};
