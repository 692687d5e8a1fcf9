/**
 * Outages while pipelines run, on PRIVATE PostgreSQL, Redis and Kafka
 * instances this test owns (the shared ones stay untouched): PostgreSQL
 * stopped for 30 s, Redis stopped for 30 s, the Kafka broker restarted. The
 * ingest and vectorize pipelines must retry with backoff, pause consumption
 * instead of buffering (read-but-unacknowledged records stay within
 * max-in-flight), report degraded on /readyz while it lasts, log each episode
 * once (not once per retry), recover by themselves and lose nothing.
 */
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import type { HealthSnapshot } from '../../src/core/health.ts';
import { Health } from '../../src/core/health.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createMetrics } from '../../src/core/metrics.ts';
import { ingest } from '../../src/pipelines/ingest.ts';
import { openResources, type Resources } from '../../src/app/resources.ts';
import { vectorize } from '../../src/pipelines/vectorize.ts';
import { serveProcessEndpoints, startPipeline, type RunningPipeline } from '../../src/app/runner.ts';
import { KafkaTopics } from '../../src/sources/kafka-topics.ts';
import { startOpenAIServer, type OpenAITestServer } from '../support/openai-server.ts';
import {
  freePort,
  startPrivateKafka,
  startPrivatePostgres,
  startPrivateRedis,
  type PrivateKafka,
  type PrivateService,
} from '../support/private-services.ts';
import { createStack, sleep, waitFor, type Stack } from './support.ts';

const OUTAGE_MS = 30_000;
const MAX_IN_FLIGHT = 3_000;

interface Sample {
  readonly at: number;
  readonly readyz: number;
  readonly snapshot: HealthSnapshot;
}

describe('outages of PostgreSQL, Redis and Kafka while pipelines run', () => {
  let postgres: PrivateService | undefined;
  let redis: PrivateService | undefined;
  let kafka: PrivateKafka | undefined;
  let openai: OpenAITestServer | undefined;
  let stack: Stack | undefined;
  let resources: Resources | undefined;
  const servers: Server[] = [];
  const running: RunningPipeline[] = [];

  afterAll(async () => {
    await Promise.allSettled(running.map((r) => r.stop()));
    await resources?.close().catch(() => undefined);
    for (const s of servers) s.close();
    await stack?.drop().catch(() => undefined);
    await openai?.close();
    await Promise.allSettled([postgres?.destroy(), redis?.destroy(), kafka?.destroy()]);
  });

  it('retries, pauses, reports degraded, logs once per episode, recovers and loses nothing', async () => {
    [postgres, redis, kafka] = await Promise.all([startPrivatePostgres(), startPrivateRedis(), startPrivateKafka()]);
    openai = await startOpenAIServer({ embeddingDimension: 32 });
    stack = await createStack({
      postgresUrl: postgres.url,
      brokers: kafka.brokers,
      extraEnv: {
        LOGFLOW_REDIS_URL: redis.url,
        LOGFLOW_EMBEDDINGS_URL: openai.url,
        LOGFLOW_EMBEDDINGS_MODEL: 'test-embed',
      },
    });
    const { config } = stack;

    // Every log line the pipelines write, to count how often an episode is logged.
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n'))
          if (line.startsWith('{')) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const logger = createLogger({ level: 'info', destination: sink });
    const metrics = createMetrics({ defaultMetrics: false });
    resources = openResources(config, logger);
    const healthOf = { ingest: new Health(), vectorize: new Health() };
    const start = (definition: typeof ingest, health: Health, options: Record<string, string>) => {
      const r = startPipeline(definition, {
        config,
        logger,
        metrics,
        resources: resources!,
        health,
        options,
        probe: () => resources!.health(),
        probeIntervalMs: 1_000,
      });
      running.push(r);
      return r;
    };
    const ingesting = start(ingest, healthOf.ingest, {
      'batch-size': '500',
      'batch-wait-ms': '100',
      'max-in-flight': String(MAX_IN_FLIGHT),
    });
    const vectorizing = start(vectorize, healthOf.vectorize, {});
    const port = await freePort();
    servers.push(await serveProcessEndpoints({ metrics, health: healthOf.ingest, port }));
    const vectorizePort = await freePort();
    servers.push(await serveProcessEndpoints({ metrics, health: healthOf.vectorize, port: vectorizePort }));

    const engines = await resources.engines();
    const count = async (sql: string) =>
      Number(
        Object.values(
          (
            await (await engines.clickhouse.query({ query: sql, format: 'JSONEachRow' })).json<Record<string, string>>()
          )[0] ?? {},
        )[0],
      );
    const recordsIn = async () =>
      (await metrics.recordsIn.get()).values.find((v) => v.labels.pipeline === 'ingest' && v.labels.stage === 'source')
        ?.value ?? 0;
    const sample = async (p: number): Promise<Sample> => {
      const res = await fetch(`http://127.0.0.1:${p}/readyz`);
      return { at: Date.now(), readyz: res.status, snapshot: (await res.json()) as HealthSnapshot };
    };

    const producerTopics = new KafkaTopics({ brokers: kafka.brokers, clientId: 'outage-producer' });
    await producerTopics.ensureTopic(config.topics.rawLogs, 4);
    const producer = producerTopics.producer();
    let produced = 0;
    let errorPatterns = 0;
    const produce = async (n: number, perSecond: number, errorEvery = 0) => {
      const started = Date.now();
      for (let i = 0; i < n; i += 250) {
        const chunk = Array.from({ length: Math.min(250, n - i) }, (_, j) => {
          const k = produced + j;
          const isError = errorEvery > 0 && k % errorEvery === 0;
          if (isError) errorPatterns += 1;
          const message = isError
            ? `failure kind${errorPatterns} ${'abcdefghij'.charAt(errorPatterns % 10)}${errorPatterns.toString(36).replace(/\d/g, (d) => 'klmnopqrst'.charAt(Number(d)))} in stage`
            : `request ${k} served in ${k % 300} ms`;
          const log = {
            log_id: randomUUID(),
            timestamp: new Date(Date.now() - 60_000).toISOString(),
            service: `svc-${k % 4}`,
            level: isError ? 'ERROR' : 'INFO',
            message,
          };
          return { key: log.service, value: JSON.stringify(log) };
        });
        await producer.send(config.topics.rawLogs, chunk);
        produced += chunk.length;
        const due = started + ((i + 250) / perSecond) * 1_000;
        if (due > Date.now()) await sleep(due - Date.now());
      }
    };
    await produce(2_000, 2_000, 50);
    await waitFor(
      async () => (await count('SELECT count() FROM logs')) >= produced,
      'the first logs to be stored',
      180_000,
    ).catch((error: unknown) => {
      // Say why: a failed pipeline, or what the pipelines logged as errors.
      const problems = lines
        .filter((l) => Number(l.level) >= 40)
        .slice(-15)
        .map((l) =>
          `${String(l.pipeline ?? l.component ?? '')}: ${String(l.msg)} ${JSON.stringify(l.err ?? l.reason ?? '')}`.slice(
            0,
            400,
          ),
        );
      throw new Error(
        `${(error as Error).message}; ingest ${JSON.stringify(healthOf.ingest.snapshot())}; stored ${produced}?\n${problems.join('\n')}`,
      );
    });
    await waitFor(
      async () => healthOf.ingest.snapshot().status === 'ok' && healthOf.vectorize.snapshot().status === 'ok',
      'healthy pipelines',
      30_000,
    );

    // ---------------------------------------------------------------- PostgreSQL, 30 s
    const episodeLines = (from: number, pipeline: string) =>
      lines
        .slice(from)
        .filter(
          (l) =>
            l.pipeline === pipeline &&
            typeof l.msg === 'string' &&
            / is failing; retrying| recovered after /.test(l.msg),
        );
    let mark = lines.length;
    const flowing = produce(12_000, 400, 50);
    await sleep(2_000);
    await postgres.stop();
    const pgDown = Date.now();
    const pgSamples: Sample[] = [];
    let maxUnacked = 0;
    while (Date.now() - pgDown < OUTAGE_MS) {
      pgSamples.push(await sample(port));
      maxUnacked = Math.max(maxUnacked, (await recordsIn()) - (await count('SELECT count() FROM logs')));
      await sleep(1_000);
    }
    const readDuringOutage = await recordsIn();
    await postgres.start();
    await flowing;
    await waitFor(
      async () => (await count('SELECT count() FROM logs')) >= produced,
      'every log stored after PostgreSQL came back',
      180_000,
    );
    await waitFor(async () => healthOf.ingest.snapshot().status === 'ok', 'ingest healthy again', 60_000);
    const afterPg = await sample(port);

    // Degraded while PostgreSQL was away (after the first failed write noticed it), 503 on /readyz.
    const settled = pgSamples.filter((s) => s.at - pgDown > 5_000);
    expect(settled.length).toBeGreaterThan(10);
    expect(
      settled.every((s) => s.readyz === 503 && s.snapshot.status === 'degraded'),
      JSON.stringify(settled.slice(0, 3)),
    ).toBe(true);
    expect(afterPg.readyz).toBe(200);
    // Paused, not buffering: what was read but not stored stayed within max-in-flight, though 400 logs/s kept arriving.
    expect(maxUnacked).toBeLessThanOrEqual(MAX_IN_FLIGHT);
    expect(produced - readDuringOutage).toBeGreaterThan(0);
    // Logged once per episode: one "failing" and one "recovered" line per component, however many retries there were.
    const pgEpisodes = episodeLines(mark, 'ingest');
    const failing = pgEpisodes.filter((l) => String(l.msg).includes('is failing'));
    const recovered = pgEpisodes.filter((l) => String(l.msg).includes('recovered after'));
    expect(failing.length).toBeGreaterThan(0);
    expect(new Set(failing.map((l) => l.component)).size).toBe(failing.length);
    expect(recovered.map((l) => l.component).sort()).toEqual(failing.map((l) => l.component).sort());
    expect(Math.max(...recovered.map((l) => Number(l.failures)))).toBeGreaterThan(3);

    // ---------------------------------------------------------------- Redis, 30 s
    mark = lines.length;
    const patternsBefore = errorPatterns;
    const flowingErrors = produce(6_000, 200, 10);
    await sleep(2_000);
    await redis.stop();
    const redisDown = Date.now();
    const redisSamples: Sample[] = [];
    while (Date.now() - redisDown < OUTAGE_MS) {
      redisSamples.push(await sample(vectorizePort));
      await sleep(1_000);
    }
    await redis.start();
    await flowingErrors;
    expect(errorPatterns).toBeGreaterThan(patternsBefore);
    await waitFor(
      async () => (await count('SELECT count() FROM logs')) >= produced,
      'every log stored after the Redis outage',
      120_000,
    );
    const errors = await count("SELECT count() FROM logs WHERE level = 'ERROR'");
    await waitFor(
      async () => (await count("SELECT count() FROM logs WHERE level = 'ERROR' AND is_vectorized = 1")) >= errors,
      'every error vectorized',
      120_000,
    );
    await waitFor(async () => healthOf.vectorize.snapshot().status === 'ok', 'vectorize healthy again', 60_000);

    const redisSettled = redisSamples.filter((s) => s.at - redisDown > 3_000);
    expect(
      redisSettled.every((s) => s.readyz === 503 && Object.keys(s.snapshot.degraded).includes('probe:cache')),
      JSON.stringify(redisSettled.slice(0, 2)),
    ).toBe(true);
    // The cache degrades to misses: vectorize went on embedding during the outage (nothing waited for Redis).
    expect(
      lines.slice(mark).filter((l) => typeof l.msg === 'string' && l.msg.startsWith('embedding cache unavailable')),
    ).toHaveLength(1);
    const cacheEpisodes = episodeLines(mark, 'vectorize').filter((l) => l.component === 'probe:cache');
    expect(cacheEpisodes.map((l) => (String(l.msg).includes('is failing') ? 'failing' : 'recovered'))).toEqual([
      'failing',
      'recovered',
    ]);

    // ---------------------------------------------------------------- Kafka restart
    mark = lines.length;
    await produce(3_000, 1_000);
    await kafka.stop();
    const kafkaDown = Date.now();
    const kafkaSamples: Sample[] = [];
    while (Date.now() - kafkaDown < 10_000) {
      kafkaSamples.push(await sample(port));
      await sleep(1_000);
    }
    await kafka.start();
    await produce(3_000, 1_000, 50);
    await waitFor(
      async () => (await count('SELECT count() FROM logs')) >= produced,
      'every log stored after the broker restart',
      180_000,
    );
    await waitFor(
      async () => healthOf.ingest.snapshot().status === 'ok',
      'ingest healthy after the broker restart',
      60_000,
    );
    expect(
      kafkaSamples.some((s) => s.readyz === 503 && s.snapshot.status === 'degraded'),
      JSON.stringify(kafkaSamples.map((s) => s.snapshot.degraded)),
    ).toBe(true);
    const kafkaEpisodes = episodeLines(mark, 'ingest').filter((l) => String(l.msg).includes('is failing'));
    expect(new Set(kafkaEpisodes.map((l) => l.component)).size).toBe(kafkaEpisodes.length);

    // Nothing lost, nothing twice, and both pipelines are still running.
    await producerTopics.close();
    expect(await count('SELECT count() FROM logs')).toBe(produced);
    expect(await count('SELECT uniqExact(log_id) FROM logs')).toBe(produced);
    expect(await count('SELECT sum(log_count) FROM logs_hourly_agg')).toBe(produced);
    expect(ingesting.health.snapshot().phase).toBe('running');
    expect(vectorizing.health.snapshot().phase).toBe('running');
    expect(await ingesting.stop()).toEqual({ status: 'stopped' });
    expect(await vectorizing.stop()).toEqual({ status: 'stopped' });
  }, 420_000);
});
