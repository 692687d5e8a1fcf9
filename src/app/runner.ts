/**
 * Starts pipelines and stops them gracefully: on stop, sources stop reading,
 * operators flush, sinks write and ack, sources commit, and the graph
 * completes; if that takes longer than the configured bound the outcome says
 * so and the caller exits non-zero.
 */
import http from 'node:http';
import { asyncScheduler, Subject, type SchedulerLike, type Subscription } from 'rxjs';
import type { HealthCheck } from '../core/component.ts';
import type { Config } from '../core/config.ts';
import { describeCause } from '../core/errors.ts';
import { Health } from '../core/health.ts';
import type { Logger } from '../core/logger.ts';
import type { EngineMetrics } from '../core/metrics.ts';
import type { PipelineContext, PipelineDefinition } from '../core/pipeline.ts';
import { withRetryReporter, type RetryReporter } from '../core/retry.ts';

export type RunOutcome =
  | { readonly status: 'completed' }
  | { readonly status: 'stopped' }
  | { readonly status: 'failed'; readonly error: unknown }
  | { readonly status: 'timeout'; readonly afterMs: number };

export interface RunningPipeline {
  readonly name: string;
  readonly health: Health;
  /** Settles when the graph completes or fails; never rejects. */
  readonly done: Promise<RunOutcome>;
  /** Asks the pipeline to stop and waits at most config.shutdownTimeoutMs. */
  stop(): Promise<RunOutcome>;
  /**
   * Tears the graph down at once: nothing is flushed or committed, so what was
   * read but not committed is read again by whoever reads next, as after a crash.
   */
  abort(): void;
  /** The process goes on without this pipeline: its health stops counting it (an optional one that could not start). */
  forget(): void;
}

export interface StartOptions<R> {
  readonly config: Config;
  readonly logger: Logger;
  readonly metrics: EngineMetrics;
  readonly resources: R;
  readonly options?: Readonly<Record<string, unknown>>;
  readonly scheduler?: SchedulerLike;
  readonly health?: Health;
  /**
   * Checks of the adapters the pipeline opened (Resources.health), run every
   * `probeIntervalMs` while it runs: a failing one marks health degraded even
   * when no write is retrying (a consumer waiting for a broker retries inside
   * the client library, out of sight of the retry loops).
   */
  readonly probe?: () => Promise<Readonly<Record<string, HealthCheck>>>;
  readonly probeIntervalMs?: number;
}

const DEFAULT_PROBE_INTERVAL_MS = 5_000;

export function startPipeline<R>(definition: PipelineDefinition<R>, options: StartOptions<R>): RunningPipeline {
  const health = options.health ?? new Health();
  const phase = health.pipeline(definition.name);
  const logger = options.logger.child({ pipeline: definition.name });
  health.setLogger(logger);
  const stopping = new Subject<void>();
  let stopRequested = false;
  let subscription: Subscription | undefined;
  const up = options.metrics.pipelineUp.labels({ pipeline: definition.name });

  const ctx: PipelineContext<R> = {
    name: definition.name,
    config: options.config,
    logger,
    metrics: options.metrics,
    health,
    scheduler: options.scheduler ?? asyncScheduler,
    stopping$: stopping.asObservable(),
    resources: options.resources,
    options: options.options ?? {},
  };

  // One Health may serve several pipelines (npm start), so the pipeline's name for retries_total is added here.
  const retries = options.metrics.retries;
  const reporter: RetryReporter = {
    failing: (component, reason, holder) => void health.failing(component, reason, holder),
    recovered: (component, holder) => void health.recovered(component, holder),
    retried: (stage) => retries.inc({ pipeline: definition.name, stage }),
  };

  // A graph that cannot even be built (bad options, say) is the caller's error, not a run's outcome.
  // Built and subscribed inside the reporter, so every retry loop of the graph reports to this health.
  const graph = withRetryReporter(reporter, () => definition.build(ctx));
  const stopProbing =
    options.probe === undefined
      ? () => undefined
      : startProbing(options.probe, health, options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS);
  const done = new Promise<RunOutcome>((resolve) => {
    const finish = (outcome: RunOutcome) => {
      stopProbing();
      up.set(0);
      phase.set(outcome.status === 'failed' ? 'failed' : outcome.status === 'completed' ? 'completed' : 'stopped');
      resolve(outcome);
    };
    subscription = withRetryReporter(reporter, () =>
      graph.subscribe({
        error: (error: unknown) => {
          logger.error({ err: error }, 'pipeline failed');
          finish({ status: 'failed', error });
        },
        complete: () => finish(stopRequested ? { status: 'stopped' } : { status: 'completed' }),
      }),
    );
    if (!subscription.closed) {
      phase.set('running');
      up.set(1);
      logger.info('pipeline running');
    }
  });

  let stopPromise: Promise<RunOutcome> | undefined;
  const stop = (): Promise<RunOutcome> => {
    stopPromise ??= (async () => {
      stopRequested = true;
      phase.set('stopping');
      logger.info('stopping: flushing and committing');
      stopping.next();
      stopping.complete();
      const bound = options.config.shutdownTimeoutMs;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<RunOutcome>((resolve) => {
        timer = setTimeout(() => resolve({ status: 'timeout', afterMs: bound }), bound);
      });
      const outcome = await Promise.race([done, timeout]);
      clearTimeout(timer);
      if (outcome.status === 'timeout') {
        logger.error({ afterMs: bound }, 'pipeline did not stop within the shutdown bound; unsubscribing');
        subscription?.unsubscribe();
        phase.set('failed');
      }
      return outcome;
    })();
    return stopPromise;
  };

  const abort = () => {
    stopProbing();
    logger.warn('aborting: nothing is flushed or committed');
    subscription?.unsubscribe();
    up.set(0);
    phase.set('stopped');
  };

  return { name: definition.name, health, done, stop, abort, forget: phase.forget };
}

/**
 * Runs the probe on an interval; each failing check is an episode of
 * `probe:<name>` (degraded, logged once when it starts and once when it ends).
 * A probe that does not answer within the interval counts as failing too: a
 * dependency that hangs is as unavailable as one that refuses.
 */
function startProbing(
  probe: () => Promise<Readonly<Record<string, HealthCheck>>>,
  health: Health,
  intervalMs: number,
): () => void {
  const holder = {};
  const seen = new Set<string>();
  let running = false;
  let stopped = false;
  const round = async () => {
    if (running || stopped) return;
    running = true;
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), Math.max(1_000, intervalMs));
      });
      const checks = await Promise.race([
        probe().catch((error: unknown) => ({ probe: { ok: false, detail: describeCause(error) } })),
        timeout,
      ]);
      if (stopped) return;
      if (checks === 'timeout') {
        health.failing('probe', `health checks did not answer within ${Math.max(1_000, intervalMs)} ms`, holder);
        return;
      }
      health.recovered('probe', holder);
      for (const [name, check] of Object.entries(checks)) {
        const component = `probe:${name}`;
        if (check.ok) {
          if (seen.delete(component)) health.recovered(component, holder);
        } else {
          seen.add(component);
          health.failing(component, check.detail ?? 'unhealthy', holder);
        }
      }
    } finally {
      clearTimeout(timer);
      running = false;
    }
  };
  const interval = setInterval(() => void round(), intervalMs);
  interval.unref();
  return () => {
    stopped = true;
    clearInterval(interval);
  };
}

/**
 * /metrics (Prometheus text), /healthz (200 unless the process failed for good) and /readyz (200 only when running and
 * not degraded).
 */
export function serveProcessEndpoints(options: {
  readonly metrics: EngineMetrics;
  readonly health: Health;
  readonly port: number;
  readonly host?: string;
}): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (url === '/metrics') {
      options.metrics.registry
        .metrics()
        .then((text) => res.writeHead(200, { 'content-type': options.metrics.registry.contentType }).end(text))
        .catch((error: unknown) => res.writeHead(500).end(describeCause(error)));
      return;
    }
    if (url === '/healthz' || url === '/readyz') {
      const ok = url === '/healthz' ? options.health.live() : options.health.ready();
      res
        .writeHead(ok ? 200 : 503, { 'content-type': 'application/json' })
        .end(JSON.stringify(options.health.snapshot()));
      return;
    }
    res.writeHead(404).end();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => resolve(server));
  });
}

/**
 * Runs until SIGINT/SIGTERM, then stops gracefully; a second signal exits at
 * once. Resolves with the process exit code: 0 after a clean stop.
 */
export async function runUntilSignal(running: RunningPipeline, logger: Logger): Promise<number> {
  let signals = 0;
  let onStopped: (outcome: RunOutcome) => void = () => undefined;
  const stopped = new Promise<RunOutcome>((resolve) => {
    onStopped = resolve;
  });
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(130);
    }
    logger.info({ signal }, 'signal received');
    void running.stop().then(onStopped);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    // A hung graph never settles `done`; the stop bound still ends the wait.
    const outcome = await Promise.race([running.done, stopped]);
    return outcome.status === 'completed' || outcome.status === 'stopped' ? 0 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
