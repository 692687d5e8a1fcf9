import { afterEach, describe, expect, it } from 'vitest';
import type { Server } from 'node:http';
import { Writable } from 'node:stream';
import { EMPTY, mergeMap, NEVER, Subject, takeUntil, throwError, type Observable } from 'rxjs';
import { loadConfig } from '../../src/core/config.ts';
import { LogflowError, ErrorCodes } from '../../src/core/errors.ts';
import { Health } from '../../src/core/health.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createMetrics } from '../../src/core/metrics.ts';
import { definePipeline } from '../../src/core/pipeline.ts';
import { retry, withRetryReporter } from '../../src/core/retry.ts';
import { serveProcessEndpoints, startPipeline } from '../../src/app/runner.ts';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _e, done) {
      for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: createLogger({ level: 'info', destination }) };
}

const unavailable = () =>
  new LogflowError(ErrorCodes.SINK_UNAVAILABLE, 'connect ECONNREFUSED 127.0.0.1:5432', {
    retriable: true,
    stage: 'sink',
  });
const fast = { maxAttempts: 100, baseDelayMs: 1, maxDelayMs: 2, jitter: 'none' as const };

describe('health episodes', () => {
  it('stays degraded while any holder fails and logs each episode once at its start and once at its end', () => {
    const { lines, logger } = capture();
    const health = new Health({ logger });
    const a = {};
    const b = {};
    expect(health.failing('postgres', 'refused', a)).toBe(true);
    expect(health.failing('postgres', 'refused', b)).toBe(false);
    expect(health.failing('postgres', 'refused', a)).toBe(false);
    expect(health.snapshot()).toMatchObject({ status: 'degraded', degraded: { postgres: 'refused' } });
    expect(health.recovered('postgres', a)).toBeUndefined();
    expect(health.snapshot().status).toBe('degraded');
    expect(health.recovered('postgres', b)).toMatchObject({ component: 'postgres', failures: 3 });
    expect(health.snapshot()).toMatchObject({ status: 'ok', degraded: {} });
    expect(lines.map((l) => l.msg)).toEqual([
      expect.stringContaining('postgres is failing'),
      expect.stringContaining('postgres recovered after'),
    ]);
  });

  it('retry loops report to the health they run under: degraded while retrying, ok after, one warning for many retries', async () => {
    const { lines, logger } = capture();
    const health = new Health({ logger });
    let calls = 0;
    const seen: string[] = [];
    const result = await withRetryReporter(health, () =>
      retry(async () => {
        calls += 1;
        seen.push(health.snapshot().status);
        if (calls < 6) throw unavailable();
        return 'done';
      }, fast),
    );
    expect(result).toBe('done');
    expect(seen).toEqual(['ok', 'degraded', 'degraded', 'degraded', 'degraded', 'degraded']);
    expect(health.snapshot().status).toBe('ok');
    expect(lines.filter((l) => String(l.msg).includes('is failing'))).toHaveLength(1);
    expect(lines.filter((l) => String(l.msg).includes('recovered after'))).toEqual([
      expect.objectContaining({ component: 'sink:SINK_UNAVAILABLE', failures: 5 }),
    ]);
  });

  it('one loop whose errors alternate between kinds logs one episode per kind, ended when the loop succeeds', async () => {
    const { lines, logger } = capture();
    const health = new Health({ logger });
    const timedOut = () => new LogflowError(ErrorCodes.TIMEOUT, 'query timed out', { retriable: true, stage: 'sink' });
    const errors = [unavailable, timedOut, unavailable, timedOut, unavailable];
    let calls = 0;
    await withRetryReporter(health, () =>
      retry(async () => {
        const next = errors[calls++];
        if (next !== undefined) throw next();
        return 'done';
      }, fast),
    );
    const failing = lines.filter((l) => String(l.msg).includes('is failing')).map((l) => l.component);
    expect(failing).toEqual(['sink:SINK_UNAVAILABLE', 'sink:TIMEOUT']);
    const recovered = lines.filter((l) => String(l.msg).includes('recovered after'));
    expect(recovered).toEqual([
      expect.objectContaining({ component: 'sink:SINK_UNAVAILABLE', failures: 3 }),
      expect.objectContaining({ component: 'sink:TIMEOUT', failures: 2 }),
    ]);
    expect(health.snapshot().status).toBe('ok');
  });

  it('a loop that gives up no longer holds the component degraded', async () => {
    const health = new Health();
    await expect(
      withRetryReporter(health, () => retry(async () => Promise.reject(unavailable()), { ...fast, maxAttempts: 3 })),
    ).rejects.toThrow(/gave up after 3 attempts/);
    expect(health.snapshot().status).toBe('ok');
  });
});

describe('/healthz and /readyz of a process running several pipelines', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  it('stay 200 after a one-shot job finishes while continuous pipelines run, and /readyz turns 503 when a continuous one fails', async () => {
    const config = loadConfig({});
    const logger = createLogger({ level: 'silent' });
    const metrics = createMetrics({ defaultMetrics: false });
    const health = new Health();
    const server = await serveProcessEndpoints({ metrics, health, port: 0 });
    servers.push(server);
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    const probe = async (path: '/healthz' | '/readyz') => {
      const response = await fetch(`http://127.0.0.1:${address.port}${path}`);
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    const breakIngest = new Subject<void>();
    // Runs until stopped, or fails when told to: ingest, detect.
    const continuous = (name: string, breaks: Observable<void> = NEVER) =>
      definePipeline<null>({
        name,
        description: 'runs until stopped',
        build: (ctx) =>
          breaks.pipe(
            mergeMap(() => throwError(() => new Error(`${name} broke`))),
            takeUntil(ctx.stopping$),
          ),
      });
    const oneShot = definePipeline<null>({ name: 'nightly', description: 'one report, then done', build: () => EMPTY });
    const start = (definition: ReturnType<typeof continuous>) =>
      startPipeline(definition, { config, logger, metrics, resources: null, health });

    const ingest = start(continuous('ingest', breakIngest));
    const detect = start(continuous('detect'));
    health.setPhase('running');
    expect((await probe('/readyz')).status).toBe(200);

    const report = start(oneShot);
    expect(await report.done).toEqual({ status: 'completed' });
    const live = await probe('/healthz');
    expect(live.status, JSON.stringify(live.body)).toBe(200);
    const ready = await probe('/readyz');
    expect(ready.status, JSON.stringify(ready.body)).toBe(200);
    expect(ready.body).toMatchObject({
      phase: 'running',
      status: 'ok',
      pipelines: { ingest: 'running', detect: 'running', nightly: 'completed' },
    });

    breakIngest.next();
    expect((await ingest.done).status).toBe('failed');
    const failed = await probe('/readyz');
    expect(failed.status).toBe(503);
    expect(failed.body).toMatchObject({
      phase: 'failed',
      status: 'down',
      pipelines: { ingest: 'failed', detect: 'running' },
    });
    // A continuous pipeline that failed for good is what a liveness probe should restart.
    expect((await probe('/healthz')).status).toBe(503);
    await detect.stop();
  });
});
