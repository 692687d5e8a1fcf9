/**
 * Health of a running process: components report themselves degraded while a
 * dependency is failing and ok when it recovers, so /healthz can say what is
 * wrong instead of just up or down.
 *
 * One process may run several pipelines (npm start runs them all), some
 * continuous and some one-shot jobs (a report, a baselines run). Each keeps
 * its own phase here, so a job that finished its work is not mistaken for the
 * process stopping: /healthz (liveness) fails only when the process failed
 * for good, and /readyz only while not every pipeline meant to run is running.
 *
 * Failures come in episodes: a dependency goes away, every loop that needs it
 * retries, and it comes back. `failing`/`recovered` track each episode across
 * all the loops (holders) that report it, so the component is degraded while
 * any of them still fails, and the episode is logged twice (when it starts and
 * when it ends) instead of once per retry.
 */
import type { Logger } from './logger.ts';

export type Phase = 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

/** A pipeline's phase; `completed` is a job that finished its work without being asked to stop. */
export type PipelinePhase = 'starting' | 'running' | 'stopping' | 'completed' | 'stopped' | 'failed';

export interface HealthSnapshot {
  readonly phase: Phase;
  readonly status: 'ok' | 'degraded' | 'down';
  readonly degraded: Readonly<Record<string, string>>;
  /** By name; of two runs of one pipeline (a backfill, then the live generator) the later one. */
  readonly pipelines: Readonly<Record<string, PipelinePhase>>;
}

/** One pipeline's place in its process's health, from its start to its end. */
export interface PipelineHealth {
  set(phase: PipelinePhase): void;
  /** The process goes on without this pipeline (an optional one that could not start): it no longer counts. */
  forget(): void;
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
  /** Set by whoever runs the process (npm start); without it the phase follows the pipelines. */
  #phase: Phase | undefined;
  readonly #pipelines = new Map<object, { readonly name: string; phase: PipelinePhase }>();
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

  /** Starts counting a pipeline of this process, in phase `starting`. */
  pipeline(name: string): PipelineHealth {
    const key = {};
    this.#pipelines.set(key, { name, phase: 'starting' });
    return {
      set: (phase) => {
        const entry = this.#pipelines.get(key);
        if (entry !== undefined) entry.phase = phase;
      },
      forget: () => {
        this.#pipelines.delete(key);
      },
    };
  }

  /**
   * A failed pipeline fails the process; otherwise the phase set for the
   * process, or, when none was, the pipelines': running while any runs,
   * stopped once all are done.
   */
  phase(): Phase {
    const phases = [...this.#pipelines.values()].map((p) => p.phase);
    if (this.#phase === 'failed' || phases.includes('failed')) return 'failed';
    if (this.#phase !== undefined) return this.#phase;
    if (phases.includes('stopping')) return 'stopping';
    if (phases.includes('running')) return 'running';
    if (phases.length === 0 || phases.includes('starting')) return 'starting';
    return 'stopped';
  }

  /** Liveness: false only once the process failed for good, when restarting it is the cure. */
  live(): boolean {
    return this.phase() !== 'failed';
  }

  /**
   * Readiness: running, no dependency failing, and every pipeline meant to run running (finished jobs count as fine).
   */
  ready(): boolean {
    if (this.phase() !== 'running' || this.#degraded.size > 0) return false;
    for (const { phase } of this.#pipelines.values()) if (phase !== 'running' && phase !== 'completed') return false;
    return true;
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
    const summary = {
      component,
      durationMs: this.#now() - episode.since,
      failures: episode.failures,
      reason: episode.reason,
    };
    this.#logger?.info(
      summary,
      `${component} recovered after ${summary.durationMs} ms and ${summary.failures} failed attempt(s)`,
    );
    return summary;
  }

  snapshot(): HealthSnapshot {
    const pipelines: Record<string, PipelinePhase> = {};
    for (const { name, phase } of this.#pipelines.values()) pipelines[name] = phase;
    return {
      phase: this.phase(),
      status: !this.live() ? 'down' : this.#degraded.size > 0 ? 'degraded' : 'ok',
      degraded: Object.fromEntries(this.#degraded),
      pipelines,
    };
  }
}
