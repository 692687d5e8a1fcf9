/**
 * The only module that knows which engine each store runs on: a ClickHouse
 * server or chdb in-process, a PostgreSQL server or PGlite. Everything else
 * gets a `@clickhouse/client` client and a `pg` Pool and cannot tell.
 */
import { access, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import pg from 'pg';
import type { Config } from '../core/config.ts';
import { lockDataDir, type DataDirLock } from '../core/data-dir-lock.ts';
import { LogflowError, ErrorCodes } from '../core/errors.ts';
import { chdbRowInserter, useRowInserter } from './row-inserter.ts';

export type ClickHouseMode = 'server' | 'chdb';
export type PostgresMode = 'server' | 'pglite';

export interface Engines {
  readonly clickhouse: ClickHouseClient;
  readonly postgres: pg.Pool;
  readonly mode: { readonly clickhouse: ClickHouseMode; readonly postgres: PostgresMode };
  close(): Promise<void>;
}

export interface OpenEnginesOptions {
  /** Create the ClickHouse database and PostgreSQL database when missing (migrate does; pipelines need not). */
  readonly createDatabases?: boolean;
}

const identifierPattern = /^[A-Za-z_][A-Za-z0-9_]*$/;

function quoteIdentifier(name: string): string {
  // Config validation already restricts names; this guards direct callers too.
  if (!identifierPattern.test(name)) throw new RangeError(`not a safe identifier: ${name}`);
  return name;
}

export async function openClickHouse(
  config: Config,
  options: OpenEnginesOptions = {},
): Promise<{ client: ClickHouseClient; mode: ClickHouseMode }> {
  const database = quoteIdentifier(config.clickhouse.database);
  const settings = {
    // Retried inserts of an exactly-once batch must also be dropped by the hourly views.
    deduplicate_blocks_in_dependent_materialized_views: 1,
    // chdb defaults to bare numbers, the server to strings: pin one, and strings keep UInt64 hashes exact.
    output_format_json_quote_64bit_integers: 1,
  } as const;

  if (config.clickhouse.url === undefined) {
    // Before chdb sees the directory: a second process must be refused, not open it beside the first.
    const lock = await lockDataDir(config.dataDir);
    try {
      const dir = path.resolve(config.dataDir, 'clickhouse');
      await mkdir(dir, { recursive: true });
      // chdb is loaded lazily: server deployments need not load the native engine.
      const { createChdbConnection } = await import('chdb/connection');
      const connection = withPerQuerySettings(createChdbConnection({ path: dir }));
      const client = releasingOnClose(
        createClient({
          // @clickhouse/client's connection hook is typed for its own node Connection; chdb implements the same
          // contract.
          connection: connection.connection as never,
          clickhouse_settings: settings,
        }),
        lock,
      );
      const chdb = connection.connection.chdb;
      useRowInserter(
        client,
        chdbRowInserter((params) => chdb.rawInsert(params)),
      );
      // chdb ignores the client's `database` option, but a session keeps `USE`.
      await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${database}` });
      await client.command({ query: `USE ${database}` });
      const defaults = await client.query({
        query: 'SELECT name, default FROM system.settings',
        format: 'JSONEachRow',
      });
      connection.learnDefaults(await defaults.json<{ name: string; default: string }>());
      return { client, mode: 'chdb' };
    } catch (error) {
      lock.release();
      throw error;
    }
  }

  const common = {
    url: config.clickhouse.url,
    username: config.clickhouse.user,
    password: config.clickhouse.password,
    clickhouse_settings: settings,
  };
  if (options.createDatabases === true) {
    const admin = createClient(common);
    try {
      await admin.command({ query: `CREATE DATABASE IF NOT EXISTS ${database}` });
    } finally {
      await admin.close();
    }
  }
  return { client: createClient({ ...common, database }), mode: 'server' };
}

export async function openPostgres(
  config: Config,
  options: OpenEnginesOptions = {},
): Promise<{ pool: pg.Pool; mode: PostgresMode; close: () => Promise<void> }> {
  if (config.postgres.url === undefined) {
    // Before PGlite sees the directory: two PGlite writers on one directory can corrupt it.
    const lock = await lockDataDir(config.dataDir);
    try {
      const dir = path.resolve(config.dataDir, 'postgres');
      await mkdir(dir, { recursive: true });
      const [{ PGlite }, { createPgConfig }] = await Promise.all([
        import('@electric-sql/pglite'),
        import('@electric-sql/pglite/node-postgres'),
      ]);
      if (!(await exists(path.join(dir, 'PG_VERSION')))) await initPgliteDataDir(dir);
      const db = await PGlite.create(dir, { startParams: [...PGlite.defaultStartParams, ...PGLITE_SETTINGS] });
      // PGlite is a single connection; the pg Pool in front of it serializes callers.
      const pool = new pg.Pool(createPgConfig(db) as unknown as pg.PoolConfig);
      keepPgliteConnectionAlive(pool);
      // Ending the pool can race PGlite's own close; nothing is lost then, so it must not crash the process.
      pool.on('error', () => undefined);
      return {
        pool,
        mode: 'pglite',
        close: async () => {
          try {
            await pool.end();
            await db.close();
          } finally {
            lock.release();
          }
        },
      };
    } catch (error) {
      lock.release();
      throw error;
    }
  }

  if (options.createDatabases === true) await ensurePostgresDatabase(config.postgres.url);
  const pool = new pg.Pool({ connectionString: config.postgres.url, max: 10 });
  // An idle client losing its server must not crash the process; the next query reports it.
  pool.on('error', () => undefined);
  // Nor may a checked-out one: pg-pool drops its own error listener while a client is out (a transaction
  // between statements when the server stops), and an 'error' event without a listener is an uncaught
  // exception. The statement under way still rejects, classified as retriable, and the client is discarded.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return { pool, mode: 'server', close: () => pool.end() };
}

/** Callers close chdb through the client they were given; the data directory's lock must go with it. */
function releasingOnClose(client: ClickHouseClient, lock: DataDirLock): ClickHouseClient {
  const close = client.close.bind(client);
  client.close = async () => {
    try {
      await close();
    } finally {
      lock.release();
    }
  };
  return client;
}

/**
 * PGlite's memory is one WebAssembly memory that only grows, so its buffer
 * pool stays resident. The engine's PostgreSQL tables are small (alerts,
 * checkpoints, the batch ledger), so 32 MB of shared_buffers is plenty
 * instead of the default 128 MB: a process that opened a database and wrote
 * 3,000 rows held about 250 MB instead of 360 MB, and npm start's peak was
 * about 250 MB lower.
 */
const PGLITE_SETTINGS = ['-c', 'shared_buffers=32MB'];

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

/**
 * Creates a new PGlite data directory in a worker thread. A process that
 * ran PGlite's initdb held about 800 MB against about 270 MB for one that
 * only opened the database, and WebAssembly memory is never given back; run
 * in a worker, that memory goes with the worker, and the database is then
 * opened here at its normal size.
 */
async function initPgliteDataDir(dir: string): Promise<void> {
  const source = `
    const { workerData } = require('node:worker_threads');
    import(workerData.module).then(async ({ PGlite }) => {
      const db = await PGlite.create(workerData.dir);
      await db.close();
    });`;
  await new Promise<void>((resolve, reject) => {
    const worker = new Worker(source, {
      eval: true,
      workerData: { module: import.meta.resolve('@electric-sql/pglite'), dir },
    });
    worker.once('error', (error) =>
      reject(
        new LogflowError(
          ErrorCodes.SINK_UNAVAILABLE,
          `could not create the PGlite database in ${dir}: ${error.message}`,
          { stage: 'sink', cause: error },
        ),
      ),
    );
    worker.once('exit', (code) =>
      code === 0
        ? resolve()
        : reject(
            new LogflowError(
              ErrorCodes.SINK_UNAVAILABLE,
              `could not create the PGlite database in ${dir} (worker exit code ${code})`,
              { stage: 'sink' },
            ),
          ),
    );
  });
}

/**
 * pg.Pool#query destroys its client after any failed statement. On a server
 * that only costs a reconnect, but PGlite's adapter shares one connection
 * object between all clients, so a failed statement can end the connection
 * for every later query (seen once under plain tsx: "Connection terminated
 * unexpectedly" after a unique violation; not reproduced since, so no test
 * can show this guard failing). Here a client is released, never destroyed:
 * PGlite runs in this process, so the connection cannot break underneath it.
 */
function keepPgliteConnectionAlive(pool: pg.Pool): void {
  const query = async (...args: unknown[]) => {
    const client = await pool.connect();
    try {
      return await (client.query as (...a: unknown[]) => Promise<unknown>)(...args);
    } finally {
      client.release();
    }
  };
  (pool as unknown as { query: typeof query }).query = query;
}

/** Creates the URL's database through the maintenance database when it does not exist yet. */
async function ensurePostgresDatabase(url: string): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ''));
  if (name === '' || name === 'postgres') return;
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (exists.rowCount === 0) {
      try {
        await client.query(`CREATE DATABASE "${name.replaceAll('"', '""')}"`);
      } catch (error) {
        // Another process may have created it between the check and the create.
        if ((error as { code?: string }).code !== '42P04') throw error;
      }
    }
  } finally {
    await client.end();
  }
}

export async function openEngines(config: Config, options: OpenEnginesOptions = {}): Promise<Engines> {
  const ch = await openClickHouse(config, options);
  let postgres: Awaited<ReturnType<typeof openPostgres>>;
  try {
    postgres = await openPostgres(config, options);
  } catch (error) {
    await ch.client.close();
    throw new LogflowError(ErrorCodes.SINK_UNAVAILABLE, `PostgreSQL is not reachable: ${(error as Error).message}`, {
      retriable: true,
      stage: 'sink',
      cause: error,
    });
  }
  let closed = false;
  return {
    clickhouse: ch.client,
    postgres: postgres.pool,
    mode: { clickhouse: ch.mode, postgres: postgres.mode },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.allSettled([ch.client.close(), postgres.close()]);
    },
  };
}

type SettingValue = string | number;
interface SettingsParams {
  readonly clickhouse_settings?: Record<string, unknown>;
}

/**
 * chdb applies a query's clickhouse_settings as `SET` statements on its one
 * session, so unlike the HTTP server they outlive the query: an insert after
 * one with `insert_deduplication_token` reused that token and was silently
 * dropped as a duplicate, and `join_use_nulls` of one query changed the next
 * one's joins. This wraps the connection so every query sets each setting
 * some earlier query set per query: to its own value, or back to the default.
 */
function withPerQuerySettings<C extends object>(
  connection: C,
): { connection: C; learnDefaults(rows: readonly { name: string; default: string }[]): void } {
  const defaults = new Map<string, SettingValue>();
  const touched = new Set<string>();
  const perQuery = ['query', 'exec', 'command', 'insert'];
  const withResets = <P extends SettingsParams>(params: P): P => {
    const given = params.clickhouse_settings ?? {};
    for (const key of Object.keys(given)) if (defaults.has(key)) touched.add(key);
    let resets: Record<string, SettingValue> | undefined;
    for (const key of touched) {
      if (Object.hasOwn(given, key)) continue;
      resets ??= {};
      resets[key] = defaults.get(key)!;
    }
    return resets === undefined ? params : { ...params, clickhouse_settings: { ...resets, ...given } };
  };
  const proxy = new Proxy(connection, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      // Methods run on the real connection: it keeps its session in private fields.
      if (typeof property === 'string' && perQuery.includes(property)) {
        return (params: SettingsParams, ...rest: unknown[]) =>
          (value as (...a: unknown[]) => unknown).call(target, withResets(params), ...rest);
      }
      return (value as (...a: unknown[]) => unknown).bind(target);
    },
  });
  return {
    connection: proxy,
    learnDefaults(rows) {
      // Numbers go unquoted: `SET join_use_nulls = '0'` is not accepted for every numeric setting.
      for (const row of rows)
        defaults.set(row.name, /^-?\d+(\.\d+)?$/.test(row.default) ? Number(row.default) : row.default);
    },
  };
}
