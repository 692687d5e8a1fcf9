/**
 * Numbered, idempotent SQL migrations (the drizzle habit) for both stores:
 * sql/clickhouse/NNN_name.sql and sql/postgres/NNN_name.sql. Applied versions
 * and their checksums are recorded, so a second run changes nothing and an
 * edited, already-applied migration is reported instead of silently skipped.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import type { ClickHouseClient } from '@clickhouse/client';
import type pg from 'pg';
import type { Engines } from '../clients/engines.ts';
import { LogflowError, ErrorCodes } from '../core/errors.ts';

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
  readonly checksum: string;
  /** The checksum, and those of earlier texts of the file that differ only in comments: they were applied as this. */
  readonly accepted: readonly string[];
}

export interface MigrationReport {
  readonly applied: readonly string[];
  readonly alreadyApplied: number;
}

export interface MigrateOptions {
  readonly sqlDir?: URL;
  readonly logsTtlDays?: number;
  readonly onProgress?: (store: 'clickhouse' | 'postgres', migration: string) => void;
}

const defaultSqlDir = new URL('../../sql/', import.meta.url);

/**
 * For a migration text (by checksum), the checksums of its earlier texts that differ from it in comments only, so
 * databases migrated before the edit still match. Keyed by the current text's checksum: any further change to the
 * file is refused as before. 2026-12-07: two comments cited a design note outside the repository and now cite
 * ARCHITECTURE.md.
 */
const COMMENT_ONLY_EDITS: Readonly<Record<string, readonly string[]>> = {
  // clickhouse/001_logs.sql
  '7ababc0c6226c65eb062289d0973e8de441cf9b484698acf16671e5a02a47386': [
    '51b4b6507012a6fb821f5235e47595dc4f5421a63df0eb21c1358df006878a46',
  ],
  // postgres/003_engine_tables.sql
  fba56c75a830016e534afcf6130d16814d208373056c7910573ad0d4784d79c1: [
    '8e7a333fbf51e66263b6ac77e2a1063d81130254826933649d64e935af24eabb',
  ],
};
const fileNamePattern = /^(\d{3})_([a-z0-9_]+)\.sql$/;

export async function loadMigrations(dir: URL): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    const match = fileNamePattern.exec(file);
    if (match === null) {
      throw new LogflowError(ErrorCodes.MIGRATION_FAILED, `${file}: migration files must be named NNN_snake_case.sql`, {
        stage: 'migrate',
      });
    }
    const sql = await readFile(new URL(file, dir), 'utf8');
    const version = Number(match[1]);
    if (migrations.some((m) => m.version === version)) {
      throw new LogflowError(ErrorCodes.MIGRATION_FAILED, `${file}: version ${version} is used twice`, {
        stage: 'migrate',
      });
    }
    const checksum = createHash('sha256').update(sql).digest('hex');
    migrations.push({
      version,
      name: file,
      sql,
      checksum,
      accepted: [checksum, ...(COMMENT_ONLY_EDITS[checksum] ?? [])],
    });
  }
  return migrations;
}

/**
 * ClickHouse runs one statement per request. Our migrations end each statement
 * with `;` at the end of a line and keep `;` out of string literals, so a
 * line-based split is exact for them (checked by the migration tests).
 */
export function splitStatements(sql: string): string[] {
  const withoutComments = sql
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('--'))
    .join('\n');
  return withoutComments
    .split(/;[ \t]*(?:\r?\n|$)/)
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function checksumMismatch(store: string, m: Migration): LogflowError {
  return new LogflowError(
    ErrorCodes.MIGRATION_FAILED,
    `${store} migration ${m.name} was changed after it was applied; add a new numbered migration instead`,
    { stage: 'migrate' },
  );
}

export async function migrateClickHouse(
  client: ClickHouseClient,
  options: MigrateOptions = {},
): Promise<MigrationReport> {
  const migrations = await loadMigrations(new URL('clickhouse/', options.sqlDir ?? defaultSqlDir));
  await client.command({
    query: `CREATE TABLE IF NOT EXISTS schema_migrations
      (version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))
      ENGINE = MergeTree ORDER BY version`,
  });
  const done = await (
    await client.query({ query: 'SELECT version, checksum FROM schema_migrations', format: 'JSONEachRow' })
  ).json<{ version: number; checksum: string }>();
  const applied = new Map(done.map((r) => [Number(r.version), r.checksum]));

  const report: string[] = [];
  for (const m of migrations) {
    const previous = applied.get(m.version);
    if (previous !== undefined) {
      if (!m.accepted.includes(previous)) throw checksumMismatch('ClickHouse', m);
      continue;
    }
    options.onProgress?.('clickhouse', m.name);
    for (const statement of splitStatements(m.sql)) {
      try {
        await client.command({ query: statement });
      } catch (error) {
        throw new LogflowError(
          ErrorCodes.MIGRATION_FAILED,
          `ClickHouse migration ${m.name} failed: ${(error as Error).message}`,
          {
            stage: 'migrate',
            cause: error,
          },
        );
      }
    }
    await client.insert({
      table: 'schema_migrations',
      values: [{ version: m.version, name: m.name, checksum: m.checksum }],
      format: 'JSONEachRow',
    });
    report.push(m.name);
  }
  if (options.logsTtlDays !== undefined) await applyLogsTtl(client, options.logsTtlDays);
  return { applied: report, alreadyApplied: migrations.length - report.length };
}

/**
 * Retention is configuration, not schema: the TTL is changed only when it differs, because MODIFY TTL rewrites parts.
 */
async function applyLogsTtl(client: ClickHouseClient, days: number): Promise<void> {
  if (!Number.isInteger(days) || days < 1)
    throw new RangeError(`logs TTL must be a positive whole number of days, got ${days}`);
  const rows = await (
    await client.query({
      query: "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = 'logs'",
      format: 'JSONEachRow',
    })
  ).json<{ engine_full: string }>();
  const engine = rows[0]?.engine_full ?? '';
  if (engine.includes(`toIntervalDay(${days})`)) return;
  await client.command({ query: `ALTER TABLE logs MODIFY TTL toDateTime(timestamp) + INTERVAL ${days} DAY` });
}

// Any constant works; it only has to be the same for every logflow process.
const POSTGRES_MIGRATION_LOCK = 7_340_211;

export async function migratePostgres(pool: pg.Pool, options: MigrateOptions = {}): Promise<MigrationReport> {
  const migrations = await loadMigrations(new URL('postgres/', options.sqlDir ?? defaultSqlDir));
  const client = await pool.connect();
  const report: string[] = [];
  try {
    // Two processes starting together must not apply the same migration twice.
    await client.query('SELECT pg_advisory_lock($1)', [POSTGRES_MIGRATION_LOCK]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,
      applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`);
    const done = await client.query<{ version: number; checksum: string }>(
      'SELECT version, checksum FROM schema_migrations',
    );
    const applied = new Map(done.rows.map((r) => [r.version, r.checksum]));
    for (const m of migrations) {
      const previous = applied.get(m.version);
      if (previous !== undefined) {
        if (!m.accepted.includes(previous)) throw checksumMismatch('PostgreSQL', m);
        continue;
      }
      options.onProgress?.('postgres', m.name);
      try {
        await client.query('BEGIN');
        await client.query(m.sql);
        await client.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
          m.version,
          m.name,
          m.checksum,
        ]);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw new LogflowError(
          ErrorCodes.MIGRATION_FAILED,
          `PostgreSQL migration ${m.name} failed: ${(error as Error).message}`,
          {
            stage: 'migrate',
            cause: error,
          },
        );
      }
      report.push(m.name);
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [POSTGRES_MIGRATION_LOCK]).catch(() => undefined);
    client.release();
  }
  return { applied: report, alreadyApplied: migrations.length - report.length };
}

export async function migrateAll(
  engines: Engines,
  options: MigrateOptions = {},
): Promise<{ clickhouse: MigrationReport; postgres: MigrationReport }> {
  const clickhouse = await migrateClickHouse(engines.clickhouse, options);
  const postgres = await migratePostgres(engines.postgres, options);
  return { clickhouse, postgres };
}
