/**
 * What the service benchmarks run on, opened once per process (chdb allows
 * one data directory per process, and `npm run bench -- all` runs several
 * benchmarks in one): chdb in a fresh temporary directory, a fresh
 * PostgreSQL database (or PGlite with `--pglite`) migrated like production,
 * and configs with a unique topic prefix per run, so nothing collides with
 * other work on the same broker. A ClickHouse server is added when
 * LOGFLOW_CLICKHOUSE_URL is set.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadConfig, type Config } from '../../src/core/config.ts';
import { openClickHouse, openEngines, type Engines } from '../../src/clients/engines.ts';
import { createLogger, type Logger } from '../../src/core/logger.ts';
import { migrateAll, migrateClickHouse } from '../../src/app/migrate.ts';
import { openResources, type Resources } from '../../src/app/resources.ts';
import { BENCH_CLICKHOUSE_URL, BENCH_KAFKA_BROKERS, BENCH_POSTGRES_URL } from './services.ts';

export type EngineKind = 'chdb' | 'server';

export interface BenchStack {
  readonly dir: string;
  readonly database: string;
  readonly logger: Logger;
  readonly postgresMode: 'server' | 'pglite';
  /** chdb always; a ClickHouse server too when LOGFLOW_CLICKHOUSE_URL is set. */
  readonly engineKinds: readonly EngineKind[];
  engines(kind?: EngineKind): Promise<Engines>;
  /** A config for one run: its own topic prefix (so its own topics and consumer groups). */
  config(prefix: string, kind?: EngineKind): Config;
  resources(config: Config, kind?: EngineKind): Resources;
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}

let shared: Promise<BenchStack> | undefined;
let closers: Array<() => Promise<void>> = [];

export function benchStack(args: readonly string[]): Promise<BenchStack> {
  shared ??= openStack(args.includes('--pglite'));
  return shared;
}

/** Closes what benchStack opened; the runner calls it once every benchmark is done. */
export async function closeBenchStack(): Promise<void> {
  if (shared === undefined) return;
  await shared.catch(() => undefined);
  shared = undefined;
  const pending = closers;
  closers = [];
  for (const close of pending.reverse()) await close().catch(() => undefined);
}

async function openStack(pglite: boolean): Promise<BenchStack> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-bench-'));
  closers.push(() => rm(dir, { recursive: true, force: true }));
  const database = uniqueName('logflow_bench');
  const postgresUrl = pglite
    ? undefined
    : (() => {
        const url = new URL(BENCH_POSTGRES_URL);
        url.pathname = `/${database}`;
        return url.toString();
      })();
  const env = (prefix: string, kind: EngineKind): Record<string, string> => ({
    LOGFLOW_DATA_DIR: dir,
    LOGFLOW_CLICKHOUSE_DATABASE: database,
    LOGFLOW_TOPIC_PREFIX: prefix,
    LOGFLOW_KAFKA_BROKERS: BENCH_KAFKA_BROKERS.join(','),
    LOGFLOW_LOG_LEVEL: process.env['BENCH_LOG_LEVEL'] ?? 'error',
    LOGFLOW_SHUTDOWN_TIMEOUT_MS: '120000',
    LOGFLOW_METRICS_PORT: '0',
    ...(postgresUrl === undefined ? {} : { LOGFLOW_POSTGRES_URL: postgresUrl }),
    ...(kind === 'server' && BENCH_CLICKHOUSE_URL !== undefined
      ? {
          LOGFLOW_CLICKHOUSE_URL: BENCH_CLICKHOUSE_URL,
          LOGFLOW_CLICKHOUSE_USER: process.env['LOGFLOW_CLICKHOUSE_USER'] ?? 'default',
          LOGFLOW_CLICKHOUSE_PASSWORD: process.env['LOGFLOW_CLICKHOUSE_PASSWORD'] ?? '',
        }
      : {}),
  });
  const config = (prefix: string, kind: EngineKind = 'chdb') => loadConfig(env(prefix, kind));
  const logger = createLogger({ level: config('').logLevel });

  const chdbEngines = await openEngines(config('', 'chdb'), { createDatabases: true });
  await migrateAll(chdbEngines);
  closers.push(async () => {
    await chdbEngines.close();
    if (postgresUrl !== undefined) {
      const admin = new pg.Client({ connectionString: BENCH_POSTGRES_URL });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
      await admin.end();
    }
  });

  let serverEngines: Promise<Engines> | undefined;
  const openServer = async (): Promise<Engines> => {
    const { client } = await openClickHouse(config('', 'server'), { createDatabases: true });
    await migrateClickHouse(client);
    closers.push(async () => {
      await client.command({ query: `DROP DATABASE IF EXISTS ${database}` }).catch(() => undefined);
      await client.close();
    });
    // The ledger stays where chdb's is: only the ClickHouse side differs between the two runs.
    return {
      clickhouse: client,
      postgres: chdbEngines.postgres,
      mode: { clickhouse: 'server', postgres: chdbEngines.mode.postgres },
      close: async () => undefined,
    };
  };

  const stack: BenchStack = {
    dir,
    database,
    logger,
    postgresMode: chdbEngines.mode.postgres,
    engineKinds: BENCH_CLICKHOUSE_URL === undefined ? ['chdb'] : ['chdb', 'server'],
    engines(kind = 'chdb') {
      if (kind === 'chdb') return Promise.resolve(chdbEngines);
      if (BENCH_CLICKHOUSE_URL === undefined)
        return Promise.reject(new Error('no ClickHouse server configured (LOGFLOW_CLICKHOUSE_URL)'));
      serverEngines ??= openServer();
      return serverEngines;
    },
    config,
    resources(runConfig, kind = 'chdb') {
      return openResources(runConfig, logger, { engines: stack.engines(kind) });
    },
  };
  return stack;
}
