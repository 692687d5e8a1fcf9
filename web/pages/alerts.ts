/** Alerts: filter, inspect, acknowledge, resolve and silence; active silences below. */
import { hasRole, type Alert, type Silence } from '../api.ts';
import { defaultFilter, section, serviceOptions, type PageContext, type PageDefinition } from '../app.ts';
import { badge, dialogForm, empty, field, h, loadMoreButton, mount, select, toast, toastError } from '../dom.ts';
import { fmtAgo, fmtNumber, fmtTime } from '../format.ts';

const STATUSES: ReadonlyArray<readonly [string, string]> = [
  ['', 'Any status'],
  ['open', 'Open'],
  ['acknowledged', 'Acknowledged'],
  ['pending', 'Pending'],
  ['resolved', 'Resolved'],
];
const SEVERITIES: ReadonlyArray<readonly [string, string]> = [
  ['', 'Any severity'],
  ['critical', 'Critical'],
  ['high', 'High'],
  ['medium', 'Medium'],
  ['low', 'Low'],
];
const SILENCE_DURATIONS: ReadonlyArray<readonly [string, string]> = [
  ['60', '1 hour'],
  ['240', '4 hours'],
  ['1440', '1 day'],
  ['10080', '7 days'],
];

function details(alert: Alert): HTMLElement {
  const rows: Array<[string, string | null]> = [
    ['Description', alert.description],
    ['Type', alert.alertType],
    ['Environment', alert.environment],
    ['Level', alert.level],
    [
      'Observed / expected',
      alert.observed === null ? null : `${fmtNumber(alert.observed)} / ${fmtNumber(alert.expected)}`,
    ],
    ['Score', alert.score === null ? null : fmtNumber(alert.score)],
    ['Window', alert.windowStart === null ? null : `${fmtTime(alert.windowStart)} → ${fmtTime(alert.windowEnd)}`],
    ['Opened', alert.openedAt === null ? null : fmtTime(alert.openedAt)],
    [
      'Acknowledged',
      alert.acknowledgedAt === null ? null : `${fmtTime(alert.acknowledgedAt)} by ${alert.acknowledgedBy ?? '?'}`,
    ],
    ['Resolved', alert.resolvedAt === null ? null : fmtTime(alert.resolvedAt)],
    ['Dedup key', alert.dedupKey],
  ];
  return h(
    'div',
    null,
    h(
      'dl',
      { class: 'kv' },
      rows.filter(([, v]) => v !== null && v !== '').map(([k, v]) => [h('dt', null, k), h('dd', null, v)]),
    ),
    alert.errorHash === null
      ? null
      : h('p', null, h('a', { href: `#/patterns/${encodeURIComponent(alert.errorHash)}` }, 'Open the error pattern →')),
    alert.llmAnalysis === null ? null : [h('h3', null, 'Analysis'), h('p', { class: 'summary' }, alert.llmAnalysis)],
    alert.suggestedActions.length === 0
      ? null
      : [
          h('h3', null, 'Suggested actions'),
          h(
            'ul',
            null,
            alert.suggestedActions.map((a) => h('li', null, a)),
          ),
        ],
  );
}

async function silenceDialog(ctx: PageContext, alert: Alert): Promise<void> {
  const form = await dialogForm(
    `Silence “${alert.rule}”${alert.service === null ? '' : ` on ${alert.service}`}`,
    h(
      'div',
      { class: 'form-grid' },
      field('Duration', select('durationMinutes', SILENCE_DURATIONS, '240')),
      field(
        'Reason',
        h('input', { name: 'reason', required: true, maxlength: 500, placeholder: 'e.g. known deploy issue' }),
      ),
    ),
    'Silence',
  );
  if (form === null) return;
  try {
    const silence = await ctx.session.api.post<Silence>(`/alerts/${alert.id}/silence`, {
      durationMinutes: Number(form.get('durationMinutes')),
      reason: String(form.get('reason') ?? ''),
    });
    toast(`Silenced until ${fmtTime(silence.expiresAt)}`);
    ctx.refresh();
  } catch (error) {
    toastError(error);
  }
}

function actions(ctx: PageContext, alert: Alert): HTMLElement {
  const canAct = hasRole(ctx.session.me.role, 'operator');
  const act = (verb: 'acknowledge' | 'resolve') => async (event: Event) => {
    event.stopPropagation();
    const button = event.currentTarget as HTMLButtonElement;
    button.disabled = true;
    try {
      const updated = await ctx.session.api.post<Alert>(`/alerts/${alert.id}/${verb}`, {});
      toast(`Alert #${updated.id} ${updated.status}`);
      ctx.refresh();
    } catch (error) {
      button.disabled = false;
      toastError(error);
    }
  };
  const title = canAct ? undefined : 'Needs the operator role';
  return h(
    'div',
    { class: 'actions' },
    alert.status === 'open'
      ? h(
          'button',
          {
            type: 'button',
            class: 'small primary',
            'data-action': 'acknowledge',
            disabled: !canAct,
            title,
            onclick: act('acknowledge'),
          },
          'Acknowledge',
        )
      : null,
    alert.status === 'resolved'
      ? null
      : h(
          'button',
          {
            type: 'button',
            class: 'small',
            'data-action': 'resolve',
            disabled: !canAct,
            title,
            onclick: act('resolve'),
          },
          'Resolve',
        ),
    alert.status === 'resolved'
      ? null
      : h(
          'button',
          {
            type: 'button',
            class: 'small',
            'data-action': 'silence',
            disabled: !canAct,
            title,
            onclick: (event: Event) => {
              event.stopPropagation();
              void silenceDialog(ctx, alert);
            },
          },
          'Silence',
        ),
  );
}

function alertRows(ctx: PageContext, alert: Alert, expanded: boolean): HTMLElement[] {
  const detailRow = h('tr', { class: 'detail', hidden: !expanded }, h('td', { colspan: 7 }, details(alert)));
  const row = h(
    'tr',
    {
      class: 'clickable',
      'data-alert-id': alert.id,
      onclick: () => {
        detailRow.hidden = !detailRow.hidden;
      },
    },
    h('td', { class: 'num muted' }, `#${alert.id}`),
    h('td', null, badge(alert.severity)),
    h('td', null, h('strong', null, alert.rule), h('div', { class: 'muted' }, alert.description ?? alert.alertType)),
    h(
      'td',
      { class: 'nowrap' },
      alert.service ?? '—',
      alert.environment === null ? null : h('div', { class: 'muted' }, alert.environment),
    ),
    h(
      'td',
      null,
      badge(alert.status),
      alert.acknowledgedBy === null ? null : h('div', { class: 'muted' }, `by ${alert.acknowledgedBy}`),
    ),
    h(
      'td',
      { class: 'nowrap', title: fmtTime(alert.openedAt ?? alert.createdAt) },
      fmtAgo(alert.openedAt ?? alert.createdAt),
    ),
    h('td', null, actions(ctx, alert)),
  );
  return [row, detailRow];
}

export const alertsPage: PageDefinition = {
  id: 'alerts',
  title: 'Alerts',
  async render(ctx) {
    const { api } = ctx.session;
    const q = ctx.query;
    const filters = {
      status: q.get('status') ?? 'open',
      service: q.get('service') ?? defaultFilter(ctx.session, 'service'),
      severity: q.get('severity') ?? '',
      rule: q.get('rule') ?? '',
    };
    const focus = Number(q.get('id') ?? Number.NaN);
    const statusSelect = select('status', STATUSES, filters.status === 'any' ? '' : filters.status);
    const severitySelect = select('severity', SEVERITIES, filters.severity);
    const serviceSelect = serviceOptions(ctx.session, filters.service);
    const ruleInput = h('input', { name: 'rule', value: filters.rule, placeholder: 'rule name' });
    const form = h(
      'form',
      {
        class: 'filters',
        onsubmit: (event: Event) => {
          event.preventDefault();
          // An empty status must survive the round trip, or the default ('open') would come back.
          ctx.setQuery({
            status: statusSelect.value === '' ? 'any' : statusSelect.value,
            service: serviceSelect.value,
            severity: severitySelect.value,
            rule: ruleInput.value.trim(),
          });
        },
      },
      field('Status', statusSelect),
      field('Service', serviceSelect),
      field('Severity', severitySelect),
      field('Rule', ruleInput),
      h('button', { type: 'submit', class: 'primary' }, 'Apply'),
    );
    for (const control of [statusSelect, severitySelect, serviceSelect])
      control.addEventListener('change', () => form.requestSubmit());

    const tbody = h('tbody');
    const list = h('div', null, empty('Loading…'));
    const pager = h('div', { class: 'pager' });
    const silences = h('div', null, empty('Loading…'));
    mount(
      ctx.root,
      h('section', { class: 'card' }, form, list, pager),
      h('section', { class: 'card' }, h('h2', null, 'Active silences'), silences),
    );

    const load = async (cursor: string | null) => {
      const page = await api.page<Alert>('/alerts', {
        status: filters.status === 'any' ? '' : filters.status,
        service: filters.service,
        severity: filters.severity,
        rule: filters.rule,
        limit: 50,
        cursor,
      });
      if (!ctx.alive()) return;
      if (cursor === null) {
        mount(
          list,
          page.items.length === 0
            ? empty('No alerts match these filters.')
            : h(
                'table',
                { id: 'alerts-table' },
                h(
                  'thead',
                  null,
                  h(
                    'tr',
                    null,
                    h('th', null, ''),
                    h('th', null, 'Severity'),
                    h('th', null, 'Alert'),
                    h('th', null, 'Service'),
                    h('th', null, 'Status'),
                    h('th', null, 'Opened'),
                    h('th', null, ''),
                  ),
                ),
                tbody,
              ),
        );
      }
      for (const alert of page.items) tbody.append(...alertRows(ctx, alert, alert.id === focus));
      mount(pager, loadMoreButton(page.nextCursor, load));
    };

    await Promise.all([
      section(ctx, list, async () => {
        await load(null);
        return list.firstElementChild as HTMLElement;
      }),
      section(ctx, silences, async () => {
        const { items } = await api.get<{ items: Silence[] }>('/silences');
        const active = items.filter((s) => Date.parse(s.expiresAt) > Date.now());
        if (active.length === 0) return empty('No active silences.');
        const canAct = hasRole(ctx.session.me.role, 'operator');
        return h(
          'table',
          null,
          h(
            'thead',
            null,
            h(
              'tr',
              null,
              h('th', null, 'Matches'),
              h('th', null, 'Reason'),
              h('th', null, 'By'),
              h('th', null, 'Expires'),
              h('th', null, ''),
            ),
          ),
          h(
            'tbody',
            null,
            active.map((s) =>
              h(
                'tr',
                null,
                h(
                  'td',
                  null,
                  [
                    s.rule && `rule=${s.rule}`,
                    s.service && `service=${s.service}`,
                    s.environment && `env=${s.environment}`,
                    s.level && `level=${s.level}`,
                    s.dedupKey && `key=${s.dedupKey}`,
                  ]
                    .filter(Boolean)
                    .join(' ') || 'everything',
                ),
                h('td', null, s.reason),
                h('td', null, s.createdBy ?? '—'),
                h('td', { class: 'nowrap' }, fmtTime(s.expiresAt)),
                h(
                  'td',
                  null,
                  h(
                    'button',
                    {
                      type: 'button',
                      class: 'small danger',
                      disabled: !canAct,
                      onclick: async () => {
                        try {
                          await api.delete(`/silences/${s.id}`);
                          toast('Silence removed');
                          ctx.refresh();
                        } catch (error) {
                          toastError(error);
                        }
                      },
                    },
                    'Expire now',
                  ),
                ),
              ),
            ),
          ),
        );
      }),
    ]);
  },
};
