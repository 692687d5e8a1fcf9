/** What every page gets: the API client, the session, and a lifetime for its async work and charts. */
import type { Api, Me, Preferences, Service } from './api.ts';
import { ApiError } from './api.ts';
import { h, mount } from './dom.ts';
import { isRange } from './format.ts';

export interface Session {
  readonly api: Api;
  readonly me: Me;
  prefs: Preferences;
  services: readonly Service[];
}

export interface PageContext {
  readonly session: Session;
  readonly root: HTMLElement;
  /** Path segments after the page name: #/patterns/123 -> ['123']. */
  readonly path: readonly string[];
  readonly query: URLSearchParams;
  /** The time range picked in the top bar ('24h', ...). */
  readonly range: string;
  /** False once the user navigated away: async work must stop touching the DOM. */
  alive(): boolean;
  onCleanup(fn: () => void): void;
  /** Replaces the hash query of the current page (keeps filters linkable) and re-renders. */
  setQuery(params: Readonly<Record<string, string | undefined>>): void;
  /** Re-renders the current page. */
  refresh(): void;
}

export type PageRender = (ctx: PageContext) => Promise<void> | void;

export interface PageDefinition {
  readonly id: string;
  readonly title: string;
  readonly render: PageRender;
}

export function errorBox(error: unknown): HTMLElement {
  const message = error instanceof ApiError || error instanceof Error ? error.message : String(error);
  return h('div', { class: 'error-box', role: 'alert' }, message);
}

/** Renders a page section after its data arrives, or an error box in its place. */
export async function section(
  ctx: PageContext,
  el: HTMLElement,
  load: () => Promise<HTMLElement | HTMLElement[]>,
): Promise<void> {
  try {
    const content = await load();
    if (ctx.alive()) mount(el, content);
  } catch (error) {
    if (ctx.alive()) mount(el, errorBox(error));
  }
}

export function defaultFilter(session: Session, key: string): string {
  const value = session.prefs.defaultFilters[key];
  return typeof value === 'string' ? value : '';
}

export function defaultRange(session: Session): string {
  const value = session.prefs.defaultFilters['range'];
  return isRange(value) ? value : '24h';
}

export function serviceOptions(session: Session, current: string): HTMLSelectElement {
  const names = session.services.map((s) => s.name);
  if (current !== '' && !names.includes(current)) names.push(current);
  return h(
    'select',
    { name: 'service' },
    h('option', { value: '' }, 'All services'),
    names.map((name) => h('option', { value: name, selected: name === current }, name)),
  );
}
