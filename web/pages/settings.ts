/** Settings: the signed-in user's preferences (time zone, theme, default filters). */
import { storeKey, type Preferences } from '../api.ts';
import { defaultFilter, defaultRange, serviceOptions, type PageDefinition } from '../app.ts';
import { field, h, mount, select, toast, toastError } from '../dom.ts';
import { RANGES, fmtTime, setTimeZone, timeZones } from '../format.ts';
import { applyTheme } from '../theme.ts';

const THEMES: ReadonlyArray<readonly [string, string]> = [
  ['system', 'Follow the system'],
  ['light', 'Light'],
  ['dark', 'Dark'],
];
const LEVELS: ReadonlyArray<readonly [string, string]> = [
  ['', 'Any level'],
  ['WARN', 'WARN'],
  ['ERROR', 'ERROR'],
  ['FATAL', 'FATAL'],
  ['INFO', 'INFO'],
  ['DEBUG', 'DEBUG'],
];

export const settingsPage: PageDefinition = {
  id: 'settings',
  title: 'Settings',
  render(ctx) {
    const { session } = ctx;
    const prefs = session.prefs;
    const zones = timeZones();
    const zoneSelect = select(
      'timezone',
      zones.map((z) => [z, z] as const),
      zones.includes(prefs.timezone) ? prefs.timezone : 'UTC',
    );
    const themeSelect = select('theme', THEMES, prefs.theme);
    const serviceSelect = serviceOptions(session, defaultFilter(session, 'service'));
    const envInput = h('input', {
      name: 'environment',
      value: defaultFilter(session, 'environment'),
      placeholder: 'any',
    });
    const levelSelect = select('level', LEVELS, defaultFilter(session, 'level'));
    const rangeSelect = select('range', RANGES, defaultRange(session));
    const preview = h('span', { class: 'muted' });
    const updatePreview = () => {
      setTimeZone(zoneSelect.value);
      preview.textContent = `Now: ${fmtTime(new Date())} (${zoneSelect.value})`;
      setTimeZone(session.prefs.timezone);
    };
    zoneSelect.addEventListener('change', updatePreview);
    themeSelect.addEventListener('change', () => applyTheme(themeSelect.value as Preferences['theme']));
    updatePreview();

    const save = h('button', { type: 'submit', class: 'primary' }, 'Save preferences');
    const form = h(
      'form',
      {
        id: 'preferences-form',
        onsubmit: async (event: Event) => {
          event.preventDefault();
          save.disabled = true;
          const defaultFilters: Record<string, string> = {};
          const setIf = (k: string, v: string) => {
            if (v !== '') defaultFilters[k] = v;
          };
          setIf('service', serviceSelect.value);
          setIf('environment', envInput.value.trim());
          setIf('level', levelSelect.value);
          setIf('range', rangeSelect.value);
          try {
            session.prefs = await session.api.put<Preferences>('/preferences', {
              timezone: zoneSelect.value,
              theme: themeSelect.value,
              defaultFilters: {
                ...prefs.defaultFilters,
                ...defaultFilters,
                ...Object.fromEntries(
                  ['service', 'environment', 'level'].filter((k) => !(k in defaultFilters)).map((k) => [k, '']),
                ),
              },
            });
            setTimeZone(session.prefs.timezone);
            applyTheme(session.prefs.theme);
            toast('Preferences saved');
          } catch (error) {
            applyTheme(session.prefs.theme);
            toastError(error);
          } finally {
            save.disabled = false;
          }
        },
      },
      h('h2', null, 'Display'),
      h('div', { class: 'form-grid' }, field('Time zone', zoneSelect), field('Theme', themeSelect)),
      h('p', null, preview),
      h('h2', { style: 'margin-top:20px' }, 'Default filters'),
      h('p', { class: 'muted' }, 'Used when a page opens without filters of its own.'),
      h(
        'div',
        { class: 'form-grid' },
        field('Service', serviceSelect),
        field('Environment', envInput),
        field('Level (logs)', levelSelect),
        field('Time range', rangeSelect),
      ),
      h('div', { class: 'row', style: 'margin-top:20px' }, save),
    );

    mount(
      ctx.root,
      h('section', { class: 'card' }, form),
      h(
        'section',
        { class: 'card' },
        h('h2', null, 'Account'),
        h(
          'dl',
          { class: 'kv' },
          h('dt', null, 'Signed in as'),
          h('dd', null, session.me.name),
          h('dt', null, 'Role'),
          h('dd', null, session.me.role),
        ),
        h(
          'div',
          { class: 'row', style: 'margin-top:12px' },
          h(
            'button',
            {
              type: 'button',
              class: 'danger',
              onclick: () => {
                storeKey(null);
                location.hash = '';
                location.reload();
              },
            },
            'Sign out',
          ),
        ),
      ),
    );
  },
};
