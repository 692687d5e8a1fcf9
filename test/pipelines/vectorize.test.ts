/**
 * generate -> ingest -> vectorize in server mode: real Kafka, PostgreSQL,
 * Redis (embedding cache) and chdb; the embeddings endpoint is the local
 * OpenAI-compatible server (the only stand-in allowed: a third-party model).
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate } from '../../src/pipelines/generate.ts';
import { ingest } from '../../src/pipelines/ingest.ts';
import { vectorize } from '../../src/pipelines/vectorize.ts';
import { startOpenAIServer } from '../support/openai-server.ts';
import { createHarness, type Harness } from '../support/pipeline-harness.ts';
import { REDIS_URL, uniqueName } from '../support/services.ts';

const WEBHOOK = 'http://127.0.0.1:9/hook';

describe('vectorize', () => {
  let h: Harness;
  let server: Awaited<ReturnType<typeof startOpenAIServer>>;
  const redisPrefix = uniqueName('logflow-test-emb');
  beforeAll(async () => {
    server = await startOpenAIServer({ embeddingDimension: 64 });
    h = await createHarness({
      LOGFLOW_EMBEDDINGS_URL: server.url,
      LOGFLOW_EMBEDDINGS_MODEL: 'test-embed',
      LOGFLOW_REDIS_URL: REDIS_URL,
      // Nothing listens there: the test reads the outbox the alert's transaction writes to.
      LOGFLOW_ALERT_WEBHOOK_URL: WEBHOOK,
    });
  });
  afterAll(async () => {
    await h.close();
    await server.close();
    const redis = new Redis(REDIS_URL);
    const keys = await redis.keys('logflow:embedding:*test-embed*');
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
    void redisPrefix;
  });

  it('embeds each pattern once, flags exactly the problem rows, and raises one novel_pattern alert for the new error type', async () => {
    const start = new Date(Date.now() - 30 * 60_000).toISOString();
    const generated = h.start(generate, {
      rate: '40',
      duration: '25m',
      speed: 'max',
      seed: '3',
      flat: true,
      start,
      scenario: 'test/fixtures/scenario-new-error.json',
      truth: `${h.dir}/truth.jsonl`,
    });
    expect(await generated.done).toEqual({ status: 'completed' });
    const ingesting = h.start(ingest, {});
    const vectorizing = h.start(vectorize, { 'learning-period': '10m' });

    const problems = () => h.count("SELECT count() FROM logs WHERE level IN ('WARN', 'ERROR', 'FATAL')");
    const total = (await h.metrics.recordsOut.get()).values.find((v) => v.labels.pipeline === 'generate')?.value ?? 0;
    await h.waitFor(async () => (await h.count('SELECT count() FROM logs')) >= total, 'ingest');
    await h.waitFor(
      async () => (await h.count('SELECT count() FROM logs WHERE is_vectorized = 1')) >= (await problems()),
      'vectorize',
      180_000,
    );
    await vectorizing.stop();
    await ingesting.stop();

    expect(await h.count('SELECT count() FROM logs WHERE is_vectorized = 1')).toBe(await problems());
    expect(
      await h.count("SELECT count() FROM logs WHERE is_vectorized = 1 AND level NOT IN ('WARN', 'ERROR', 'FATAL')"),
    ).toBe(0);

    const patterns = await h.count("SELECT uniqExact(error_hash) FROM logs WHERE level IN ('WARN', 'ERROR', 'FATAL')");
    expect(await h.count('SELECT count() FROM error_patterns FINAL WHERE has_embedding = 1')).toBe(patterns);
    // Each distinct pattern went to the embeddings endpoint once; every later sighting was a cache hit.
    expect(server.embeddedInputs()).toHaveLength(patterns);
    expect(new Set(server.embeddedInputs()).size).toBe(patterns);
    const vectors = await h.resources.vectorStore();
    expect(await vectors.count()).toBe(patterns);

    const repositories = await h.resources.repositories();
    const alerts = await repositories.anomalyAlerts.list({ type: 'novel_pattern', limit: 100 });
    expect(alerts.items).toHaveLength(1);
    expect(alerts.items[0]).toMatchObject({ service: 'order-service', status: 'open' });
    expect(alerts.items[0]?.description).toContain('Shipment label printer returned malformed PDF');
    // Its opening is queued for the webhook sender, as the detector's alerts are.
    const { rows } = await (await h.resources.engines()).postgres.query<{ event: string; url: string; kind: string }>(
      "SELECT event, url, payload->>'kind' AS kind FROM alert_notifications WHERE alert_id = $1",
      [alerts.items[0]!.id],
    );
    expect(rows).toEqual([{ event: 'opened', url: WEBHOOK, kind: 'novel_pattern' }]);
    const catalog = await repositories.errorCatalog.list({ limit: 100 });
    expect(catalog.filter((c) => c.autoCreated)).toHaveLength(1);
  }, 300_000);
});

describe('vectorize with novelty.similarity_threshold set in app_config', () => {
  let h: Harness;
  let server: Awaited<ReturnType<typeof startOpenAIServer>>;
  beforeAll(async () => {
    server = await startOpenAIServer({ embeddingDimension: 64 });
    h = await createHarness({ LOGFLOW_EMBEDDINGS_URL: server.url, LOGFLOW_EMBEDDINGS_MODEL: 'test-embed-threshold' });
  });
  afterAll(async () => {
    await h.close();
    await server.close();
  });

  it('judges novelty by the stored threshold when --novelty-threshold is not given', async () => {
    // Every cosine similarity is above -1, so no pattern that has a neighbour is new; at the default 0.85 the same
    // traffic raises the new error type's alert (the test above).
    const repositories = await h.resources.repositories();
    await repositories.appConfig.set('novelty.similarity_threshold', -1, 'test');
    const generated = h.start(generate, {
      rate: '10',
      duration: '25m',
      speed: 'max',
      seed: '3',
      flat: true,
      start: new Date(Date.now() - 30 * 60_000).toISOString(),
      scenario: 'test/fixtures/scenario-new-error.json',
    });
    expect(await generated.done).toEqual({ status: 'completed' });
    const ingesting = h.start(ingest, {});
    // Small batches, so the patterns of the first minutes are stored before the new type is judged: a pattern judged
    // against an empty store is novel whatever the threshold.
    const vectorizing = h.start(vectorize, { 'learning-period': '10m', 'batch-size': '50' });
    const total = (await h.metrics.recordsOut.get()).values.find((v) => v.labels.pipeline === 'generate')?.value ?? 0;
    await h.waitFor(async () => (await h.count('SELECT count() FROM logs')) >= total, 'ingest');
    const problems = () => h.count("SELECT count() FROM logs WHERE level IN ('WARN', 'ERROR', 'FATAL')");
    await h.waitFor(
      async () => (await h.count('SELECT count() FROM logs WHERE is_vectorized = 1')) >= (await problems()),
      'vectorize',
      180_000,
    );
    await vectorizing.stop();
    await ingesting.stop();

    const newType = await h.count(
      "SELECT count() FROM logs WHERE message LIKE '%Shipment label printer returned malformed PDF%' AND is_vectorized = 1",
    );
    expect(newType).toBeGreaterThan(0);
    const novel = (await repositories.anomalyAlerts.list({ type: 'novel_pattern', limit: 100 })).items;
    expect(novel, JSON.stringify(novel.map((a) => [a.description, a.details]))).toHaveLength(0);
  }, 300_000);
});
