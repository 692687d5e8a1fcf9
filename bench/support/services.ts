/**
 * Where the benchmarks find the running services (the same defaults as the
 * tests: scripts/services.sh) and which versions they run, printed with the
 * machine because a broker or engine upgrade moves the figures too.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { createClient } from '@clickhouse/client';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';

export const BENCH_KAFKA_BROKERS = (
  process.env['LOGFLOW_KAFKA_BROKERS'] ??
  process.env['TEST_KAFKA_BROKERS'] ??
  '127.0.0.1:9092'
).split(',');
export const BENCH_POSTGRES_URL =
  process.env['LOGFLOW_POSTGRES_URL'] ??
  process.env['TEST_POSTGRES_URL'] ??
  'postgres://postgres@127.0.0.1:5432/postgres';
export const BENCH_REDIS_URL =
  process.env['LOGFLOW_REDIS_URL'] ?? process.env['TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
/** A ClickHouse server to measure beside chdb, when configured. */
export const BENCH_CLICKHOUSE_URL = process.env['LOGFLOW_CLICKHOUSE_URL'] || undefined;

export interface ServiceVersions {
  readonly kafka: string;
  readonly chdb: string;
  readonly clickhouseServer: string | null;
  readonly postgres: string;
  readonly pglite: string;
  readonly kafkajs: string;
  readonly clickhouseClient: string;
}

const require = createRequire(import.meta.url);

function packageVersion(name: string): string {
  try {
    const main = require.resolve(name);
    let dir = path.dirname(main);
    for (let i = 0; i < 5; i++) {
      try {
        const json = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as {
          name?: string;
          version?: string;
        };
        if (json.name === name && json.version !== undefined) return json.version;
      } catch {
        // not this directory
      }
      dir = path.dirname(dir);
    }
  } catch {
    // not installed
  }
  return 'unknown';
}

/** Kafka reports no version over its protocol that kafkajs exposes; the broker's jar name carries it. */
export function kafkaJarVersion(): string | null {
  const pattern = /kafka_\d+\.\d+-(\d+\.\d+\.\d+)\.jar/;
  try {
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      let cmdline: string;
      try {
        cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        continue;
      }
      if (!cmdline.includes('kafka.Kafka')) continue;
      const match = pattern.exec(cmdline);
      if (match !== null) return match[1] ?? null;
      const classpath = /\0-cp\0([^\0]+)/.exec(cmdline)?.[1] ?? '';
      for (const entry of classpath.split(':')) {
        if (!entry.endsWith('*')) continue;
        const found = safeReaddir(entry.slice(0, -1))
          .map((f) => pattern.exec(f)?.[1])
          .find((v) => v !== undefined);
        if (found !== undefined) return found;
      }
    }
  } catch {
    // no /proc
  }
  const libs = path.resolve(process.env['LOGFLOW_SERVICES_DIR'] ?? '.services', 'kafka', 'libs');
  return (
    safeReaddir(libs)
      .map((f) => pattern.exec(f)?.[1])
      .find((v) => v !== undefined) ?? null
  );
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

async function kafkaVersion(): Promise<string> {
  const jar = kafkaJarVersion();
  const kafka = new Kafka({
    clientId: 'logflow-bench-info',
    brokers: BENCH_KAFKA_BROKERS,
    logLevel: logLevel.NOTHING,
    retry: { retries: 1 },
  });
  const admin = kafka.admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    return `${jar ?? 'version unknown'} (${cluster.brokers.length} broker(s) at ${BENCH_KAFKA_BROKERS.join(',')})`;
  } catch (error) {
    return `${jar ?? 'version unknown'} (not reachable: ${(error as Error).message})`;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** In a child process: chdb keeps one engine per process, and the benchmarks open theirs with a data directory. */
function chdbVersion(): string {
  try {
    const script = "const c=require('chdb');process.stdout.write(c.query('SELECT version()','TSV').trim())";
    return execFileSync(process.execPath, ['-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch (error) {
    return `unknown (${(error as Error).message.split('\n')[0] ?? ''})`;
  }
}

async function postgresVersion(): Promise<string> {
  const client = new pg.Client({ connectionString: BENCH_POSTGRES_URL, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
    const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
    return rows[0]?.server_version ?? 'unknown';
  } catch (error) {
    return `not reachable (${(error as Error).message})`;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function clickhouseServerVersion(): Promise<string | null> {
  if (BENCH_CLICKHOUSE_URL === undefined) return null;
  const client = createClient({
    url: BENCH_CLICKHOUSE_URL,
    username: process.env['LOGFLOW_CLICKHOUSE_USER'] ?? 'default',
    password: process.env['LOGFLOW_CLICKHOUSE_PASSWORD'] ?? '',
  });
  try {
    const rows = await (await client.query({ query: 'SELECT version() AS v', format: 'JSONEachRow' })).json<{
      v: string;
    }>();
    return rows[0]?.v ?? 'unknown';
  } catch (error) {
    return `not reachable (${(error as Error).message})`;
  } finally {
    await client.close();
  }
}

export async function serviceVersions(): Promise<ServiceVersions> {
  const [kafka, postgres, clickhouseServer] = await Promise.all([
    kafkaVersion(),
    postgresVersion(),
    clickhouseServerVersion(),
  ]);
  return {
    kafka,
    chdb: `${chdbVersion()} (chdb ${packageVersion('chdb')})`,
    clickhouseServer,
    postgres,
    pglite: packageVersion('@electric-sql/pglite'),
    kafkajs: packageVersion('kafkajs'),
    clickhouseClient: packageVersion('@clickhouse/client'),
  };
}

export function describeServices(versions: ServiceVersions): string[] {
  return [
    `Kafka:   ${versions.kafka}; kafkajs ${versions.kafkajs}`,
    `ClickHouse: chdb ${versions.chdb}${versions.clickhouseServer === null ? '' : `; server ${versions.clickhouseServer}`}; @clickhouse/client ${versions.clickhouseClient}`,
    `PostgreSQL: server ${versions.postgres}; PGlite ${versions.pglite}`,
  ];
}
