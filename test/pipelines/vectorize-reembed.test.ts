/**
 * A change of embedder on a data directory (README.md, "Local embeddings"):
 * generate -> ingest -> vectorize with the hashing embedder, then vectorize
 * alone restarted with the local model, as `npm start` runs them (chdb,
 * PGlite, in-process topics). Nothing new arrives after the restart, yet
 * every known pattern must reach the model's collection, without a single
 * novel_pattern alert more.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEngines, type Engines } from '../../src/clients/engines.ts';
import { LOCAL_EMBEDDING_MODEL } from '../../src/clients/embeddings.ts';
import { MODEL_NAME, modelFilesPresent } from '../../src/clients/model-files.ts';
import { loadConfig, type Config } from '../../src/core/config.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createMetrics } from '../../src/core/metrics.ts';
import type { PipelineDefinition } from '../../src/core/pipeline.ts';
import { migrateAll } from '../../src/app/migrate.ts';
import { openResources, vectorCollection, type Resources } from '../../src/app/resources.ts';
import { startPipeline, type RunningPipeline } from '../../src/app/runner.ts';
import { generate } from '../../src/pipelines/generate.ts';
import { ingest } from '../../src/pipelines/ingest.ts';
import { vectorize } from '../../src/pipelines/vectorize.ts';
import { InProcessTopics } from '../../src/sources/in-process-topics.ts';
import { ClickHouseVectorStore } from '../../src/stores/clickhouse-vector.ts';

const MODELS_DIR = loadConfig(process.env).model.dir;

interface Run {
  readonly config: Config;
  readonly engines: Engines;
  readonly resources: Resources;
  start(definition: PipelineDefinition<Resources>, options?: Record<string, unknown>): RunningPipeline;
  count(sql: string): Promise<number>;
  novelAlerts(): Promise<number>;
  close(): Promise<void>;
}

/** One `npm start`-like process on `dir` with the given models directory (empty: the hashing embedder). */
async function open(dir: string, modelsDir: string): Promise<Run> {
  const config = loadConfig({
    LOGFLOW_DATA_DIR: dir,
    LOGFLOW_MODELS_DIR: modelsDir,
    LOGFLOW_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
  });
  const engines = await openEngines(config, { createDatabases: true });
  await migrateAll(engines);
  const logger = createLogger({ level: config.logLevel });
  const resources = openResources(config, logger, { topics: new InProcessTopics(), engines: Promise.resolve(engines) });
  const metrics = createMetrics({ defaultMetrics: false });
  const running: RunningPipeline[] = [];
  return {
    config,
    engines,
    resources,
    start(definition, options = {}) {
      const r = startPipeline(definition, { config, logger, metrics, resources, options });
      running.push(r);
      return r;
    },
    async count(sql) {
      const [row] = await (await engines.clickhouse.query({ query: sql, format: 'JSONEachRow' })).json<
        Record<string, string>
      >();
      return Number(Object.values(row ?? {})[0] ?? 0);
    },
    async novelAlerts() {
      const { rows } = await engines.postgres.query<{ n: string }>(
        "SELECT count(*) AS n FROM anomaly_alerts WHERE rule = 'novel_pattern'",
      );
      return Number(rows[0]?.n);
    },
    async close() {
      for (const r of running) expect((await r.stop()).status).not.toBe('failed');
      await resources.close();
      await engines.close();
    },
  };
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 240_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('vectorize after a change of embedder', () => {
  let work = '';
  beforeAll(async () => {
    expect(modelFilesPresent(MODELS_DIR), `no model in ${MODELS_DIR}: run npm run models:fetch`).toBe(true);
    work = await mkdtemp(path.join(os.tmpdir(), 'logflow-reembed-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('re-embeds every known pattern into the model collection and raises no novel_pattern alert for them', async () => {
    const dir = path.join(work, 'data');
    const noModels = await mkdtemp(path.join(work, 'no-models-'));

    const hashing = await open(dir, noModels);
    let patterns = 0;
    let alertsBefore = 0;
    try {
      expect(hashing.resources.embedder().model).toBe(LOCAL_EMBEDDING_MODEL);
      const start = new Date(Date.now() - 30 * 60_000).toISOString();
      const generated = hashing.start(generate, {
        rate: '10',
        duration: '25m',
        speed: 'max',
        seed: '7',
        flat: true,
        start,
        scenario: 'test/fixtures/scenario-new-error.json',
      });
      expect(await generated.done).toEqual({ status: 'completed' });
      hashing.start(ingest, { partitions: 1 });
      hashing.start(vectorize, { 'learning-period': '10m' });
      const problems = "SELECT count() FROM logs WHERE level IN ('WARN', 'ERROR', 'FATAL')";
      await waitFor(
        async () =>
          (await hashing.count(problems)) > 0 &&
          (await hashing.count('SELECT count() FROM logs WHERE is_vectorized = 1')) >= (await hashing.count(problems)),
        'the hashing run to vectorize every problem log',
      );
      patterns = await hashing.count('SELECT count() FROM error_patterns FINAL WHERE has_embedding = 1');
      alertsBefore = await hashing.novelAlerts();
      // The scenario's new error type was judged with the hashing embedder: the alert the model must not repeat.
      expect(alertsBefore).toBeGreaterThanOrEqual(1);
      expect(await (await hashing.resources.vectorStore()).count()).toBe(patterns);
    } finally {
      await hashing.close();
    }
    expect(patterns).toBeGreaterThan(10);

    const model = await open(dir, MODELS_DIR);
    try {
      expect(model.resources.embedder().model).toBe(MODEL_NAME);
      const collection = vectorCollection(model.config);
      expect(collection).not.toBe(vectorCollection(loadConfig({ LOGFLOW_MODELS_DIR: noModels })));
      model.start(vectorize, { 'learning-period': '10m' });
      const store = new ClickHouseVectorStore({ client: model.engines.clickhouse, table: collection });
      await waitFor(
        async () =>
          (await model.count(`SELECT count() FROM system.tables WHERE name = '${collection}'`)) === 1 &&
          (await store.count()) >= patterns,
        'every known pattern in the model collection',
      );
      const hashes = (
        await (
          await model.engines.clickhouse.query({
            query: 'SELECT toString(error_hash) AS h FROM error_patterns FINAL',
            format: 'JSONEachRow',
          })
        ).json<{ h: string }>()
      ).map((r) => r.h);
      expect(await store.existing(hashes)).toEqual(new Set(hashes));
      expect(await store.count()).toBe(patterns);
      // The model's own vectors, each saying so: the nearest point to a template's model vector is that template.
      const [template] = (
        await (
          await model.engines.clickhouse.query({
            query: 'SELECT template FROM error_patterns FINAL ORDER BY error_hash LIMIT 1',
            format: 'JSONEachRow',
          })
        ).json<{ template: string }>()
      ).map((r) => r.template);
      const [vector] = await model.resources.embedder().embed([template!]);
      const [nearest] = await store.search([...vector!], { limit: 1 });
      expect(nearest).toMatchObject({ payload: { template, model: MODEL_NAME } });
      expect(nearest!.score).toBeCloseTo(1, 4);
      expect(await model.novelAlerts()).toBe(alertsBefore);
      expect(await model.count('SELECT count() FROM error_patterns FINAL WHERE has_embedding = 1')).toBe(patterns);
    } finally {
      await model.close();
    }
  }, 600_000);
});
