/** Services: the monitored services and their detection settings; admins can add, edit and remove them. */
import { hasRole, type Service } from '../api.ts';
import { section, type PageContext, type PageDefinition } from '../app.ts';
import { badge, dialogForm, empty, field, h, mount, select, toast, toastError } from '../dom.ts';

const TIERS: ReadonlyArray<readonly [string, string]> = [
  ['critical', 'critical'],
  ['standard', 'standard'],
  ['best_effort', 'best effort'],
];

function check(name: string, label: string, value: boolean): HTMLElement {
  return h('label', { class: 'check' }, h('input', { type: 'checkbox', name, checked: value }), label);
}

function serviceFields(service: Service | null): HTMLElement {
  return h(
    'div',
    { class: 'form-grid' },
    service === null
      ? field('Name', h('input', { name: 'name', required: true, pattern: '[a-z0-9][a-z0-9._-]*', maxlength: 100 }))
      : null,
    field(
      'Display name',
      h('input', { name: 'displayName', required: true, value: service?.displayName ?? '', maxlength: 200 }),
    ),
    field('Owner team', h('input', { name: 'ownerTeam', value: service?.ownerTeam ?? '' })),
    field('Tier', select('tier', TIERS, service?.tier ?? 'standard')),
    field(
      'Sensitivity',
      h('input', {
        name: 'sensitivity',
        type: 'number',
        step: '0.1',
        min: '0.1',
        max: '1000',
        value: service?.sensitivity ?? 3,
      }),
    ),
    field(
      'Min count',
      h('input', { name: 'minCount', type: 'number', step: '1', min: '0', value: service?.minCount ?? 10 }),
    ),
    field(
      'Retention (days)',
      h('input', { name: 'retentionDays', type: 'number', step: '1', min: '1', value: service?.retentionDays ?? 30 }),
    ),
    field('Tags (comma separated)', h('input', { name: 'tags', value: (service?.tags ?? []).join(', ') })),
    field('Description', h('input', { name: 'description', value: service?.description ?? '' })),
    check('monitoringEnabled', 'Monitoring', service?.monitoringEnabled ?? true),
    check('alertingEnabled', 'Alerting', service?.alertingEnabled ?? true),
    check('silenceDetection', 'Silence detection', service?.silenceDetection ?? false),
  );
}

function fromForm(form: FormData): Record<string, unknown> {
  const text = (k: string) => String(form.get(k) ?? '').trim();
  const nullable = (k: string) => (text(k) === '' ? null : text(k));
  return {
    displayName: text('displayName'),
    ownerTeam: nullable('ownerTeam'),
    description: nullable('description'),
    tier: text('tier'),
    sensitivity: Number(text('sensitivity')),
    minCount: Number(text('minCount')),
    retentionDays: Number(text('retentionDays')),
    tags: text('tags')
      .split(',')
      .map((t) => t.trim())
      .filter((t) => t !== ''),
    monitoringEnabled: form.get('monitoringEnabled') !== null,
    alertingEnabled: form.get('alertingEnabled') !== null,
    silenceDetection: form.get('silenceDetection') !== null,
  };
}

async function edit(ctx: PageContext, service: Service | null): Promise<void> {
  const form = await dialogForm(
    service === null ? 'Add a service' : `Edit ${service.name}`,
    serviceFields(service),
    'Save',
  );
  if (form === null) return;
  try {
    if (service === null)
      await ctx.session.api.post('/services', { name: String(form.get('name') ?? '').trim(), ...fromForm(form) });
    else await ctx.session.api.patch(`/services/${encodeURIComponent(service.name)}`, fromForm(form));
    toast('Service saved');
    await reloadServices(ctx);
    ctx.refresh();
  } catch (error) {
    toastError(error);
  }
}

async function reloadServices(ctx: PageContext): Promise<void> {
  ctx.session.services = (await ctx.session.api.get<{ items: Service[] }>('/services')).items;
}

export const servicesPage: PageDefinition = {
  id: 'services',
  title: 'Services',
  async render(ctx) {
    const admin = hasRole(ctx.session.me.role, 'admin');
    const list = h('div', null, empty('Loading…'));
    mount(
      ctx.root,
      h(
        'section',
        { class: 'card' },
        h(
          'div',
          { class: 'row', style: 'justify-content:space-between' },
          h('h2', null, 'Services'),
          admin
            ? h('button', { type: 'button', class: 'primary', onclick: () => void edit(ctx, null) }, 'Add service')
            : h('span', { class: 'muted' }, 'Editing needs the admin role'),
        ),
        list,
      ),
    );
    await section(ctx, list, async () => {
      await reloadServices(ctx);
      const items = ctx.session.services;
      if (items.length === 0) return empty('No services registered yet.');
      return h(
        'table',
        { id: 'services-table' },
        h(
          'thead',
          null,
          h(
            'tr',
            null,
            h('th', null, 'Service'),
            h('th', null, 'Tier'),
            h('th', null, 'Owner'),
            h('th', null, 'Monitoring'),
            h('th', null, 'Alerting'),
            h('th', { class: 'num' }, 'Sensitivity'),
            h('th', { class: 'num' }, 'Min count'),
            h('th', { class: 'num' }, 'Retention'),
            h('th', null, 'Tags'),
            h('th', null, ''),
          ),
        ),
        h(
          'tbody',
          null,
          items.map((s) =>
            h(
              'tr',
              null,
              h('td', null, h('strong', null, s.displayName), h('div', { class: 'muted mono' }, s.name)),
              h('td', null, badge(s.tier, s.tier === 'critical' ? 'critical' : '')),
              h('td', null, s.ownerTeam ?? '—'),
              h('td', null, badge(s.monitoringEnabled ? 'on' : 'off')),
              h('td', null, badge(s.alertingEnabled ? 'on' : 'off')),
              h('td', { class: 'num' }, String(s.sensitivity)),
              h('td', { class: 'num' }, String(s.minCount)),
              h('td', { class: 'num' }, `${s.retentionDays} d`),
              h('td', null, s.tags.join(', ')),
              h(
                'td',
                null,
                admin
                  ? h(
                      'div',
                      { class: 'actions' },
                      h('button', { type: 'button', class: 'small', onclick: () => void edit(ctx, s) }, 'Edit'),
                      h(
                        'button',
                        {
                          type: 'button',
                          class: 'small danger',
                          onclick: async () => {
                            if (!confirm(`Remove service ${s.name}?`)) return;
                            try {
                              await ctx.session.api.delete(`/services/${encodeURIComponent(s.name)}`);
                              toast(`Removed ${s.name}`);
                              ctx.refresh();
                            } catch (error) {
                              toastError(error);
                            }
                          },
                        },
                        'Remove',
                      ),
                    )
                  : null,
              ),
            ),
          ),
        ),
      );
    });
  },
};
