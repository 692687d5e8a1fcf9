/** Nightly reports: the list, one report rendered for reading, and on-demand analysis. */
import { hasRole, type AnalysisJob, type Report, type ReportSummary } from '../api.ts';
import { section, type PageContext, type PageDefinition } from '../app.ts';
import { badge, empty, h, mount, toastError } from '../dom.ts';
import { fmtCount, fmtNumber, fmtPercent, fmtTime } from '../format.ts';

function kpi(label: string, value: string): HTMLElement {
  return h('div', { class: 'kpi' }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value));
}

function bullets(title: string, items: readonly string[]): HTMLElement[] {
  return items.length === 0
    ? []
    : [
        h('h3', null, title),
        h(
          'ul',
          null,
          items.map((i) => h('li', null, i)),
        ),
      ];
}

function statValue(value: unknown): string {
  if (typeof value === 'number') return fmtNumber(value);
  if (typeof value === 'string' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

function renderReport(report: Report): HTMLElement {
  const stats = Object.entries(report.statistics);
  return h(
    'article',
    { class: 'report card', id: 'report' },
    h(
      'div',
      { class: 'row', style: 'justify-content:space-between' },
      h('h1', { style: 'margin:0' }, `Nightly report · ${report.reportDate}`),
      h(
        'span',
        { class: 'muted' },
        `${report.producedBy === 'llm' ? `LLM${report.modelUsed === null ? '' : ` (${report.modelUsed})`}` : 'statistical'} · generated ${fmtTime(report.generatedAt)}`,
      ),
    ),
    h(
      'div',
      { class: 'kpis', style: 'margin-top:16px' },
      kpi('Log lines', fmtCount(report.totalLogs)),
      kpi('Errors', fmtCount(report.totalErrors)),
      kpi('Error rate', fmtPercent(report.errorRate)),
      kpi('Patterns', fmtCount(report.uniquePatterns)),
      kpi('Anomalies', fmtCount(report.anomaliesDetected)),
    ),
    h('h3', null, 'Summary'),
    h('p', { class: 'summary' }, report.summary),
    bullets('Key issues', report.keyIssues),
    bullets('Probable causes', report.probableCauses),
    bullets('Recommendations', report.recommendations),
    report.patternSeverity.length === 0
      ? null
      : [
          h('h3', null, 'Patterns by severity'),
          h(
            'table',
            null,
            h(
              'thead',
              null,
              h(
                'tr',
                null,
                h('th', null, 'Severity'),
                h('th', null, 'Template'),
                h('th', { class: 'num' }, 'Occurrences'),
                h('th', null, 'Why'),
              ),
            ),
            h(
              'tbody',
              null,
              report.patternSeverity.map((p) =>
                h(
                  'tr',
                  {
                    class: 'clickable',
                    onclick: () => {
                      location.hash = `#/patterns/${encodeURIComponent(p.errorHash)}`;
                    },
                  },
                  h('td', null, badge(p.severity)),
                  h('td', null, h('div', { class: 'template' }, p.template)),
                  h('td', { class: 'num' }, fmtCount(p.occurrences)),
                  h('td', { class: 'muted' }, p.reason ?? ''),
                ),
              ),
            ),
          ),
        ],
    stats.length === 0
      ? null
      : [
          h('h3', null, 'Statistics'),
          h(
            'dl',
            { class: 'kv' },
            stats.map(([k, v]) => [h('dt', null, k), h('dd', null, statValue(v))]),
          ),
        ],
    report.tokensUsed > 0
      ? h('p', { class: 'muted', style: 'margin-top:16px' }, `${fmtCount(report.tokensUsed)} LLM tokens used`)
      : null,
  );
}

function analysisForm(ctx: PageContext): HTMLElement | null {
  if (!hasRole(ctx.session.me.role, 'operator')) return null;
  const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
  const date = h('input', { type: 'date', name: 'date', value: yesterday, required: true });
  const status = h('span', { class: 'muted' });
  return h(
    'form',
    {
      class: 'row',
      style: 'margin-top:12px',
      onsubmit: async (event: Event) => {
        event.preventDefault();
        try {
          const job = await ctx.session.api.post<AnalysisJob>('/analysis-jobs', { date: date.value });
          status.textContent = `job #${job.id}: ${job.status}`;
          // Poll until the job settles; the page may be left meanwhile.
          for (let i = 0; i < 120 && ctx.alive(); i++) {
            await new Promise((resolve) => setTimeout(resolve, 2000));
            const current = await ctx.session.api.get<AnalysisJob>(`/analysis-jobs/${job.id}`);
            status.textContent = `job #${job.id}: ${current.status}${current.error ? ` (${current.error})` : ''}`;
            if (!['pending', 'running'].includes(current.status)) {
              if (current.status === 'completed') ctx.refresh();
              break;
            }
          }
        } catch (error) {
          toastError(error);
        }
      },
    },
    date,
    h('button', { type: 'submit' }, 'Run analysis'),
    status,
  );
}

export const reportsPage: PageDefinition = {
  id: 'reports',
  title: 'Reports',
  async render(ctx) {
    const listEl = h('div', { class: 'report-list' }, empty('Loading…'));
    const reportEl = h('div', null);
    mount(
      ctx.root,
      h(
        'div',
        { class: 'report-layout' },
        h('section', { class: 'card' }, h('h2', null, 'Nightly reports'), listEl, analysisForm(ctx)),
        reportEl,
      ),
    );
    const { items } = await ctx.session.api.page<ReportSummary>('/reports', { limit: 60 }).catch((error: unknown) => {
      if (ctx.alive())
        mount(listEl, h('div', { class: 'error-box' }, error instanceof Error ? error.message : String(error)));
      return { items: [] as ReportSummary[] };
    });
    if (!ctx.alive()) return;
    const selected = ctx.path[0] ?? items[0]?.reportDate;
    if (items.length === 0) {
      if (listEl.querySelector('.error-box') === null) mount(listEl, empty('No reports yet.'));
    } else {
      mount(
        listEl,
        items.map((r) =>
          h(
            'a',
            { href: `#/reports/${r.reportDate}`, class: r.reportDate === selected ? 'active' : '' },
            h('div', { class: 'date' }, r.reportDate),
            h(
              'div',
              { class: 'sub' },
              r.totalErrors === undefined
                ? (r.summary ?? '')
                : `${fmtCount(r.totalErrors)} errors · ${fmtPercent(r.errorRate)}${r.summary === undefined ? '' : ` · ${r.summary}`}`,
            ),
          ),
        ),
      );
    }
    if (selected === undefined) {
      mount(reportEl, h('div', { class: 'card' }, empty('Nightly reports appear here after the analysis runs.')));
      return;
    }
    mount(reportEl, h('div', { class: 'card' }, empty('Loading…')));
    await section(ctx, reportEl, async () =>
      renderReport(await ctx.session.api.get<Report>(`/reports/${encodeURIComponent(selected)}`)),
    );
  },
};
