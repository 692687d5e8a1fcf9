/**
 * generate -> ingest -> vectorize in server mode: real Kafka, PostgreSQL,
 * Redis (embedding cache) and chdb. The novelty case runs with the default
 * embedder, the local model (fetched by `npm test` through
 * `npm run models:fetch`), so its novel_pattern alert is the model's verdict
 * at the model's calibrated threshold (src/domain/novelty.ts). The remote
 * path (an OpenAI-compatible endpoint behind the Redis cache) runs against the
 * local OpenAI-compatible server (the only stand-in allowed: a third-party
 * model).
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODEL_NAME } from '../../src/clients/model-files.ts';
import { loadConfig } from '../../src/core/config.ts';
import { modelNoveltyConfigKey, NOVELTY_CONFIG_KEY } from '../../src/domain/novelty.ts';
import { generate } from '../../src/pipelines/generate.ts';
import { ingest } from '../../src/pipelines/ingest.ts';
import { vectorize } from '../../src/pipelines/vectorize.ts';
import { startOpenAIServer } from '../support/openai-server.ts';
import { createHarness, type Harness } from '../support/pipeline-harness.ts';
import { REDIS_URL, uniqueName } from '../support/services.ts';

const WEBHOOK = 'http://127.0.0.1:9/hook';
/** Where `npm run models:fetch` put the model for this process's environment. */
const MODELS_DIR = loadConfig(process.env).model.dir;

/** 25 minutes of generated traffic with the new error type from minute 20, ingested and vectorized to the end. */
async function runScenario(
  h: Harness,
  options: { rate: string; vectorize: Record<string, string>; truth?: boolean },
): Promise<void> {
  const generated = h.start(generate, {
    rate: options.rate,
    duration: '25m',
    speed: 'max',
    seed: '3',
    flat: true,
    start: new Date(Date.now() - 30 * 60_000).toISOString(),
    scenario: 'test/fixtures/scenario-new-error.json',
    ...(options.truth === true ? { truth: `${h.dir}/truth.jsonl` } : {}),
  });
  expect(await generated.done).toEqual({ status: 'completed' });
  const ingesting = h.start(ingest, {});
  const vectorizing = h.start(vectorize, options.vectorize);
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
}

/** Every problem row and pattern is vectorized, and nothing else; the number of distinct problem patterns. */
async function expectEverythingVectorized(h: Harness): Promise<number> {
  const problems = await h.count("SELECT count() FROM logs WHERE level IN ('WARN', 'ERROR', 'FATAL')");
  expect(await h.count('SELECT count() FROM logs WHERE is_vectorized = 1')).toBe(problems);
  expect(
    await h.count("SELECT count() FROM logs WHERE is_vectorized = 1 AND level NOT IN ('WARN', 'ERROR', 'FATAL')"),
  ).toBe(0);
  const patterns = await h.count("SELECT uniqExact(error_hash) FROM logs WHERE level IN ('WARN', 'ERROR', 'FATAL')");
  expect(await h.count('SELECT count() FROM error_patterns FINAL WHERE has_embedding = 1')).toBe(patterns);
  expect(await (await h.resources.vectorStore()).count()).toBe(patterns);
  return patterns;
}

describe('vectorize with the default embedder (the local model)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({
      LOGFLOW_MODELS_DIR: MODELS_DIR,
      // Nothing listens there: the test reads the outbox the alert's transaction writes to.
      LOGFLOW_ALERT_WEBHOOK_URL: WEBHOOK,
    });
  });
  afterAll(async () => {
    await h.close();
  });

  it('flags exactly the problem rows, and the model raises one novel_pattern alert for the new error type', async () => {
    expect(h.resources.embedder().model, `no model in ${MODELS_DIR}: run npm run models:fetch`).toBe(MODEL_NAME);
    const repositories = await h.resources.repositories();
    // The general key holds a threshold of the hashing embedder's space, not the model's: at -1 it would keep every
    // pattern with a neighbour from being novel (the last test here does that with the model's own key), yet the model
    // judges at its calibrated threshold and the new type is still novel.
    await repositories.appConfig.set(NOVELTY_CONFIG_KEY, -1, 'test');
    await runScenario(h, { rate: '40', vectorize: { 'learning-period': '10m' }, truth: true });
    await expectEverythingVectorized(h);

    const alerts = await repositories.anomalyAlerts.list({ type: 'novel_pattern', limit: 100 });
    expect(alerts.items, JSON.stringify(alerts.items.map((a) => [a.description, a.details]))).toHaveLength(1);
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

describe('vectorize against a remote embeddings endpoint, through the Redis cache', () => {
  let h: Harness;
  let server: Awaited<ReturnType<typeof startOpenAIServer>>;
  const model = uniqueName('test-embed');
  beforeAll(async () => {
    server = await startOpenAIServer({ embeddingDimension: 64 });
    h = await createHarness({
      LOGFLOW_EMBEDDINGS_URL: server.url,
      LOGFLOW_EMBEDDINGS_MODEL: model,
      LOGFLOW_REDIS_URL: REDIS_URL,
    });
  });
  afterAll(async () => {
    await h.close();
    await server.close();
    const redis = new Redis(REDIS_URL);
    const keys = await redis.keys(`logflow:embedding:*${model}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });

  it('embeds each pattern once, every later sighting a cache hit, and flags exactly the problem rows', async () => {
    await runScenario(h, { rate: '40', vectorize: { 'learning-period': '10m' } });
    const patterns = await expectEverythingVectorized(h);
    // Each distinct pattern went to the embeddings endpoint once; every later sighting was a cache hit.
    expect(server.embeddedInputs()).toHaveLength(patterns);
    expect(new Set(server.embeddedInputs()).size).toBe(patterns);
    const redis = new Redis(REDIS_URL);
    try {
      expect(await redis.keys(`logflow:embedding:*${model}*`)).toHaveLength(patterns);
    } finally {
      await redis.quit();
    }
  }, 300_000);
});

describe("vectorize with the model's novelty threshold set in app_config", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ LOGFLOW_MODELS_DIR: MODELS_DIR });
  });
  afterAll(async () => {
    await h.close();
  });

  it('judges novelty by the stored threshold for the model when --novelty-threshold is not given', async () => {
    expect(h.resources.embedder().model, `no model in ${MODELS_DIR}: run npm run models:fetch`).toBe(MODEL_NAME);
    // Every cosine similarity is above -1, so no pattern that has a neighbour is new; at the model's calibrated
    // threshold the same traffic raises the new error type's alert (the first test above).
    const repositories = await h.resources.repositories();
    await repositories.appConfig.set(modelNoveltyConfigKey(MODEL_NAME), -1, 'test');
    // Small batches, so the patterns of the first minutes are stored before the new type is judged: a pattern judged
    // against an empty store is novel whatever the threshold.
    await runScenario(h, { rate: '10', vectorize: { 'learning-period': '10m', 'batch-size': '50' } });
    const newType = await h.count(
      "SELECT count() FROM logs WHERE message LIKE '%Shipment label printer returned malformed PDF%' AND is_vectorized = 1",
    );
    expect(newType).toBeGreaterThan(0);
    const novel = (await repositories.anomalyAlerts.list({ type: 'novel_pattern', limit: 100 })).items;
    expect(novel, JSON.stringify(novel.map((a) => [a.description, a.details]))).toHaveLength(0);
  }, 300_000);
});
