/**
 * Runs named pipelines in the test process against real services, the way
 * `logflow run` does, with a unique topic prefix and databases per test.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, type Config } from '../../src/core/config.ts';
import { openEngines } from '../../src/clients/engines.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createMetrics, type EngineMetrics } from '../../src/core/metrics.ts';
import { migrateAll } from '../../src/app/migrate.ts';
import type { PipelineDefinition } from '../../src/core/pipeline.ts';
import { openResources, type Resources } from '../../src/app/resources.ts';
import { startPipeline, type RunningPipeline } from '../../src/app/runner.ts';
import { dropTestDatabase, KAFKA_BROKERS, postgresUrlFor, uniqueName } from './services.ts';

export interface Harness {
  readonly config: Config;
  readonly resources: Resources;
  readonly metrics: EngineMetrics;
  readonly dir: string;
  start(definition: PipelineDefinition<Resources>, options?: Record<string, unknown>): RunningPipeline;
  count(sql: string, params?: Record<string, unknown>): Promise<number>;
  waitFor(check: () => Promise<boolean>, what: string, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function createHarness(
  extraEnv: Record<string, string> = {},
  options: { kafka?: boolean } = {},
): Promise<Harness> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-pipelines-'));
  const database = uniqueName('logflow_pipe');
  const config = loadConfig({
    LOGFLOW_DATA_DIR: dir,
    LOGFLOW_POSTGRES_URL: postgresUrlFor(database),
    LOGFLOW_CLICKHOUSE_DATABASE: database,
    LOGFLOW_TOPIC_PREFIX: `${uniqueName('t')}.`,
    LOGFLOW_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    LOGFLOW_SHUTDOWN_TIMEOUT_MS: '60000',
    ...(options.kafka === false ? {} : { LOGFLOW_KAFKA_BROKERS: KAFKA_BROKERS.join(',') }),
    ...extraEnv,
  });
  const setup = await openEngines(config, { createDatabases: true });
  await migrateAll(setup);
  await setup.close();
  const logger = createLogger({ level: config.logLevel });
  const resources = openResources(config, logger);
  const metrics = createMetrics({ defaultMetrics: false });
  const running: RunningPipeline[] = [];
  const failures: string[] = [];

  const harness: Harness = {
    config,
    resources,
    metrics,
    dir,
    start(definition, pipelineOptions = {}) {
      const r = startPipeline(definition, { config, logger, metrics, resources, options: pipelineOptions });
      running.push(r);
      void r.done.then((outcome) => {
        if (outcome.status === 'failed')
          failures.push(`${definition.name}: ${String((outcome.error as Error)?.message ?? outcome.error)}`);
      });
      return r;
    },
    async count(sql, params = {}) {
      const engines = await resources.engines();
      const [row] = await (
        await engines.clickhouse.query({ query: sql, query_params: params, format: 'JSONEachRow' })
      ).json<Record<string, string>>();
      return Number(Object.values(row ?? {})[0] ?? 0);
    },
    async waitFor(check, what, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      while (!(await check())) {
        // A failed pipeline will never satisfy the check: say why at once.
        if (failures.length > 0) throw new Error(`pipeline failed while waiting for ${what}: ${failures.join('; ')}`);
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    },
    async close() {
      await Promise.allSettled(running.map((r) => r.stop()));
      await resources.close();
      await rm(dir, { recursive: true, force: true });
      await dropTestDatabase(database, { force: true });
    },
  };
  return harness;
}
