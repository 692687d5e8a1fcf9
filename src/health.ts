/**
 * Health of a running process: components report themselves degraded while a
 * dependency is failing and ok when it recovers, so /healthz can say what is
 * wrong instead of just up or down.
 *
 * Failures come in episodes: a dependency goes away, every loop that needs it
 * retries, and it comes back. `failing`/`recovered` track each episode across
 * all the loops (holders) that report it, so the component is degraded while
 * any of them still fails, and the episode is logged twice (when it starts and
 * when it ends) instead of once per retry.
 */
import type { Logger } from './logger.ts';

export type Phase = 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

export interface HealthSnapshot {
  readonly phase: Phase;
  readonly status: 'ok' | 'degraded' | 'down';
  readonly degraded: Readonly<Record<string, string>>;
}

interface Episode {
  readonly since: number;
  readonly holders: Set<object>;
  failures: number;
  reason: string;
}

/** What an episode looked like when it ended. */
export interface EpisodeSummary {
  readonly component: string;
  readonly durationMs: number;
  readonly failures: number;
  readonly reason: string;
}

const ANONYMOUS = {};

export class Health {
  #phase: Phase = 'starting';
  readonly #degraded = new Map<string, string>();
  readonly #episodes = new Map<string, Episode>();
  #logger: Logger | undefined;
  readonly #now: () => number;

  constructor(options: { readonly logger?: Logger; readonly now?: () => number } = {}) {
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
  }

  /** Where episode starts and ends are logged; the runner sets its pipeline's logger. */
  setLogger(logger: Logger): void {
    this.#logger ??= logger;
  }

  setPhase(phase: Phase): void {
    this.#phase = phase;
  }

  degraded(component: string, reason: string): void {
    this.#degraded.set(component, reason);
  }

  ok(component: string): void {
    this.#degraded.delete(component);
    this.#episodes.delete(component);
  }

  isDegraded(component: string): boolean {
    return this.#degraded.has(component);
  }

  /**
   * One failure of `component` seen by `holder` (a retry loop, a probe). The
   * first failure of an episode marks it degraded and logs a warning; later
   * ones, from any holder, only count. Returns true when it started an episode.
   */
  failing(component: string, reason: string, holder: object = ANONYMOUS): boolean {
    const episode = this.#episodes.get(component);
    this.#degraded.set(component, reason);
    if (episode !== undefined) {
      episode.holders.add(holder);
      episode.failures += 1;
      episode.reason = reason;
      return false;
    }
    this.#episodes.set(component, { since: this.#now(), holders: new Set([holder]), failures: 1, reason });
    this.#logger?.warn({ component, reason }, `${component} is failing; retrying with backoff until it recovers`);
    return true;
  }

  /**
   * `holder` no longer sees `component` fail. When no holder does, the
   * episode ends: the component is ok again and one line says for how long
   * it was not. Returns the summary when it ended the episode.
   */
  recovered(component: string, holder: object = ANONYMOUS): EpisodeSummary | undefined {
    const episode = this.#episodes.get(component);
    if (episode === undefined) return undefined;
    episode.holders.delete(holder);
    if (episode.holders.size > 0) return undefined;
    this.#episodes.delete(component);
    this.#degraded.delete(component);
    const summary = { component, durationMs: this.#now() - episode.since, failures: episode.failures, reason: episode.reason };
    this.#logger?.info(summary, `${component} recovered after ${summary.durationMs} ms and ${summary.failures} failed attempt(s)`);
    return summary;
  }

  snapshot(): HealthSnapshot {
    const down = this.#phase === 'failed' || this.#phase === 'stopped';
    return {
      phase: this.#phase,
      status: down ? 'down' : this.#degraded.size > 0 ? 'degraded' : 'ok',
      degraded: Object.fromEntries(this.#degraded),
    };
  }
}
