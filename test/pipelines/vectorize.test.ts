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
    const catalog = await repositories.errorCatalog.list({ limit: 100 });
    expect(catalog.filter((c) => c.autoCreated)).toHaveLength(1);
  }, 300_000);
});
