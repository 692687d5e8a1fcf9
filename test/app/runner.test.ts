import { concat, defer, EMPTY, interval, NEVER, concatMap, map, takeUntil, throwError, ignoreElements } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/core/config.ts';
import { createEnvelope, type Envelope } from '../../src/core/envelope.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createMetrics } from '../../src/core/metrics.ts';
import { OffsetTracker } from '../../src/core/offset-tracker.ts';
import { batch } from '../../src/operators/batch.ts';
import { definePipeline } from '../../src/core/pipeline.ts';
import { serveProcessEndpoints, startPipeline } from '../../src/app/runner.ts';
import { Health } from '../../src/core/health.ts';
import { ErrorCodes, LogflowError } from '../../src/core/errors.ts';
import { retry } from '../../src/core/retry.ts';
import type { Server } from 'node:http';

const logger = createLogger({ level: 'silent' });

/** A tiny source -> batch -> sink pipeline whose sink is slow, so a stop always finds work buffered and in flight. */
function tinyPipeline(store: { written: number[]; committed: number | null; produced: number }) {
  return definePipeline<null>({
    name: 'tiny',
    description: 'counts to infinity into an array',
    build(ctx) {
      const offsets = new OffsetTracker('tiny-0');
      const source = interval(1).pipe(
        takeUntil(ctx.stopping$),
        map((offset): Envelope<number> => {
          offsets.track(offset);
          store.produced = offset + 1;
          return createEnvelope(
            { value: offset, eventTime: offset, origin: { topic: 'tiny', partition: 0, offset } },
            { onAck: () => offsets.ack(offset), onFail: () => undefined },
          );
        }),
      );
      const written = source.pipe(
        batch<Envelope<number>>({ maxRecords: 50, maxBytes: Infinity, maxWaitMs: 1_000, scheduler: ctx.scheduler }),
        concatMap(async (records) => {
          await new Promise((r) => setTimeout(r, 20));
          store.written.push(...records.map((r) => r.value));
          for (const r of records) r.ack();
          ctx.metrics.batchSize.observe({ pipeline: ctx.name, stage: 'sink' }, records.length);
        }),
        ignoreElements(),
      );
      // The commit runs after the graph drained, so it covers everything acked.
      return concat(
        written,
        defer(() => {
          store.committed = offsets.committable();
          return EMPTY;
        }),
      );
    },
  });
}

describe('runner', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  it('stops gracefully: flushes the partial batch, writes, acks and commits everything read', async () => {
    const store = { written: [] as number[], committed: null as number | null, produced: 0 };
    const running = startPipeline(tinyPipeline(store), {
      config: loadConfig({}),
      logger,
      metrics: createMetrics({ defaultMetrics: false }),
      resources: null,
    });
    expect(running.health.snapshot().phase).toBe('running');
    await new Promise((r) => setTimeout(r, 150));
    const outcome = await running.stop();

    expect(outcome).toEqual({ status: 'stopped' });
    expect(store.produced).toBeGreaterThan(0);
    expect(store.written).toEqual(Array.from({ length: store.produced }, (_, i) => i));
    expect(store.committed).toBe(store.produced);
    expect(running.health.snapshot().phase).toBe('stopped');
  });

  it('reports a timeout when the graph does not finish within the shutdown bound', async () => {
    const hung = definePipeline<null>({ name: 'hung', description: 'never completes', build: () => NEVER });
    const running = startPipeline(hung, {
      config: loadConfig({ LOGFLOW_SHUTDOWN_TIMEOUT_MS: '100' }),
      logger,
      metrics: createMetrics({ defaultMetrics: false }),
      resources: null,
    });
    expect(await running.stop()).toEqual({ status: 'timeout', afterMs: 100 });
    expect(running.health.snapshot().status).toBe('down');
  });

  it('reports a failed graph with its error', async () => {
    const boom = new Error('boom');
    const failing = definePipeline<null>({
      name: 'failing',
      description: 'fails',
      build: () => throwError(() => boom),
    });
    const running = startPipeline(failing, {
      config: loadConfig({}),
      logger,
      metrics: createMetrics({ defaultMetrics: false }),
      resources: null,
    });
    expect(await running.done).toEqual({ status: 'failed', error: boom });
  });

  it('counts every retry of a pipeline in retries_total, by pipeline and failing stage', async () => {
    let calls = 0;
    const flaky = definePipeline<null>({
      name: 'flaky',
      description: 'a write that fails twice before it goes through',
      build: () =>
        defer(() =>
          retry(
            async () => {
              calls += 1;
              if (calls <= 2)
                throw new LogflowError(ErrorCodes.SINK_UNAVAILABLE, 'down', { retriable: true, stage: 'sink' });
            },
            { maxAttempts: 5, baseDelayMs: 1, maxDelayMs: 1, jitter: 'none' },
          ),
        ),
    });
    const metrics = createMetrics({ defaultMetrics: false });
    const running = startPipeline(flaky, { config: loadConfig({}), logger, metrics, resources: null });
    expect(await running.done).toEqual({ status: 'completed' });
    const counted = (await metrics.retries.get()).values;
    expect(counted).toEqual([expect.objectContaining({ labels: { pipeline: 'flaky', stage: 'sink' }, value: 2 })]);
    expect(calls).toBe(3);
  });

  it('throws at start when the graph cannot be built, instead of reporting a run', () => {
    const broken = definePipeline<null>({
      name: 'broken',
      description: 'bad options',
      build: () => {
        throw new RangeError('--rate: must be positive');
      },
    });
    expect(() =>
      startPipeline(broken, {
        config: loadConfig({}),
        logger,
        metrics: createMetrics({ defaultMetrics: false }),
        resources: null,
      }),
    ).toThrow(/--rate: must be positive/);
  });

  it('rejects pipeline names that would make bad metric labels or consumer groups', () => {
    expect(() => definePipeline({ name: 'Bad Name', description: 'x', build: () => EMPTY })).toThrow(/lower-case/);
  });

  it('serves /metrics, /healthz and /readyz reflecting the health state', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.recordsIn.inc({ pipeline: 'tiny', stage: 'source' }, 3);
    const health = new Health();
    const server = await serveProcessEndpoints({ metrics, health, port: 0 });
    servers.push(server);
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    const base = `http://127.0.0.1:${address.port}`;

    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toContain('logflow_records_in_total{pipeline="tiny",stage="source"} 3');

    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    health.setPhase('running');
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    health.degraded('postgres', 'connection refused');
    const degraded = await fetch(`${base}/healthz`);
    expect(degraded.status).toBe(200);
    expect(await degraded.json()).toEqual({
      phase: 'running',
      status: 'degraded',
      degraded: { postgres: 'connection refused' },
      pipelines: {},
    });
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });
});
