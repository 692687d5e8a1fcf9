/**
 * Migrations on both engine pairs: chdb + PGlite (embedded) and chdb + a real
 * PostgreSQL server. chdb binds one data directory per process, so the pairs
 * run one after the other, each closing its engines.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/core/config.ts';
import { openEngines, type Engines } from '../../src/clients/engines.ts';
import { migrateAll, migrateClickHouse, splitStatements } from '../../src/app/migrate.ts';
import { dropTestDatabase, postgresUrlFor, uniqueName } from '../support/services.ts';

const clickhouseTables: Record<string, readonly string[]> = {
  logs: [
    'log_id',
    'timestamp',
    'service',
    'environment',
    'level',
    'message',
    'template',
    'error_hash',
    'host',
    'region',
    'version',
    'logger',
    'trace_id',
    'span_id',
    'request_id',
    'user_id',
    'session_id',
    'http_method',
    'http_path',
    'http_status',
    'duration_ms',
    'error_type',
    'error_code',
    'stack_trace',
    'attributes',
    'ingested_at',
    'kafka_topic',
    'kafka_partition',
    'kafka_offset',
    'is_vectorized',
    'is_anomaly',
    'anomaly_score',
  ],
  error_pattern_counts: ['error_hash', 'occurrences', 'first_seen', 'last_seen'],
  logs_hourly_agg: [
    'hour',
    'service',
    'environment',
    'level',
    'log_count',
    'error_count',
    'unique_patterns',
    'duration_quantiles',
  ],
  logs_hourly_agg_mv: [],
  logs_minute_agg: ['minute', 'service', 'environment', 'level', 'log_count'],
  error_patterns: [
    'error_hash',
    'template',
    'sample_message',
    'services',
    'level',
    'first_seen',
    'last_seen',
    'occurrence_count',
    'has_embedding',
    'qdrant_point_id',
  ],
  anomaly_baselines: [
    'service',
    'environment',
    'level',
    'hour_of_day',
    'day_of_week',
    'mean',
    'stddev',
    'median',
    'p95',
    'p99',
    'upper_threshold',
    'lower_threshold',
    'sample_count',
    'computed_at',
  ],
  recent_errors: ['log_id', 'timestamp', 'service', 'level', 'message', 'error_hash'],
  error_rate_by_service: ['service', 'total_logs', 'error_logs', 'error_rate'],
  top_errors: ['error_hash', 'template', 'occurrences', 'first_seen', 'last_seen'],
  logs_hourly_stats: [
    'hour',
    'service',
    'environment',
    'level',
    'log_count',
    'error_count',
    'unique_patterns',
    'duration_quantiles',
  ],
};

const postgresTables: Record<string, readonly string[]> = {
  nightly_reports: ['report_date', 'summary', 'key_issues', 'recommendations', 'statistics', 'produced_by', 'job_id'],
  error_catalog: ['error_hash', 'template', 'title', 'solution', 'auto_created', 'edited_by_human'],
  anomaly_alerts: [
    'dedup_key',
    'rule',
    'alert_type',
    'status',
    'service',
    'environment',
    'level',
    'score',
    'acknowledged_at',
    'resolved_at',
  ],
  services: ['name', 'monitoring_enabled', 'alerting_enabled', 'sensitivity', 'min_count', 'silence_detection'],
  user_preferences: ['user_id', 'timezone', 'default_filters'],
  analysis_jobs: ['job_type', 'status', 'target_date', 'model_used', 'tokens_used', 'processing_time_ms', 'error'],
  app_config: ['key', 'value', 'description'],
  sink_batches: ['sink', 'topic', 'partition', 'min_offset', 'max_offset', 'status'],
  detector_checkpoints: ['pipeline', 'topic', 'partition', 'next_offset', 'state'],
  detector_checkpoint_entries: ['pipeline', 'topic', 'partition', 'key', 'entry'],
  alert_silences: ['rule', 'service', 'expires_at'],
  api_keys: ['key_hash', 'role', 'revoked_at'],
};

async function clickhouseColumns(engines: Engines): Promise<Map<string, Set<string>>> {
  const rows = await (
    await engines.clickhouse.query({
      query: `SELECT t.name AS table, c.name AS column
              FROM system.tables t LEFT JOIN system.columns c ON c.database = t.database AND c.table = t.name
              WHERE t.database = currentDatabase()`,
      format: 'JSONEachRow',
    })
  ).json<{ table: string; column: string }>();
  const byTable = new Map<string, Set<string>>();
  for (const r of rows) {
    const set = byTable.get(r.table) ?? new Set<string>();
    if (r.column !== '') set.add(r.column);
    byTable.set(r.table, set);
  }
  return byTable;
}

async function postgresColumns(engines: Engines): Promise<Map<string, Set<string>>> {
  const { rows } = await engines.postgres.query<{ table_name: string; column_name: string }>(
    `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'`,
  );
  const byTable = new Map<string, Set<string>>();
  for (const r of rows) byTable.set(r.table_name, (byTable.get(r.table_name) ?? new Set()).add(r.column_name));
  return byTable;
}

async function expectSchema(engines: Engines): Promise<void> {
  const ch = await clickhouseColumns(engines);
  for (const [table, columns] of Object.entries(clickhouseTables)) {
    expect(ch.has(table), `ClickHouse ${table} exists`).toBe(true);
    for (const c of columns) expect(ch.get(table)?.has(c), `ClickHouse ${table}.${c}`).toBe(true);
  }
  const pgc = await postgresColumns(engines);
  for (const [table, columns] of Object.entries(postgresTables)) {
    expect(pgc.has(table), `PostgreSQL ${table} exists`).toBe(true);
    for (const c of columns) expect(pgc.get(table)?.has(c), `PostgreSQL ${table}.${c}`).toBe(true);
  }
}

async function snapshotCounts(engines: Engines): Promise<string> {
  const ch = await (
    await engines.clickhouse.query({ query: 'SELECT count() AS n FROM schema_migrations', format: 'JSONEachRow' })
  ).json<{ n: string }>();
  const pgRows = await engines.postgres.query(
    `SELECT (SELECT count(*) FROM schema_migrations) AS m, (SELECT count(*) FROM services) AS s, (SELECT count(*) FROM app_config) AS c`,
  );
  return JSON.stringify({ ch, pg: pgRows.rows });
}

async function exerciseMigrations(engines: Engines): Promise<void> {
  const first = await migrateAll(engines, { logsTtlDays: 30 });
  expect(first.clickhouse.applied.length).toBeGreaterThanOrEqual(5);
  expect(first.postgres.applied.length).toBeGreaterThanOrEqual(3);
  await expectSchema(engines);
  const before = await snapshotCounts(engines);

  const second = await migrateAll(engines, { logsTtlDays: 30 });
  expect(second.clickhouse.applied).toEqual([]);
  expect(second.postgres.applied).toEqual([]);
  expect(second.clickhouse.alreadyApplied).toBe(first.clickhouse.applied.length);
  expect(await snapshotCounts(engines)).toBe(before);

  const seeded = await engines.postgres.query<{ name: string }>('SELECT name FROM services ORDER BY name');
  expect(seeded.rows.map((r) => r.name)).toContain('payment-service');
  const cfg = await engines.postgres.query<{ value: unknown }>(
    "SELECT value FROM app_config WHERE key = 'nightly.cron'",
  );
  expect(cfg.rows[0]?.value).toBe('0 2 * * *');
}

/** The logs table must drop a retried insert and take lightweight updates. */
async function exerciseLogsTable(engines: Engines): Promise<void> {
  const row = {
    log_id: '6f1c1c8e-4a3e-4b8e-9c53-0d3a4e1f0a01',
    timestamp: '2026-11-27 10:00:00.000',
    service: 's',
    environment: 'prod',
    level: 'ERROR',
    message: 'm',
    template: 'm',
    error_hash: '123',
    ingested_at: '2026-11-27 10:00:01.000',
    attributes: {},
  };
  const settings = { insert_deduplication_token: uniqueName('tok') };
  for (let attempt = 0; attempt < 2; attempt++) {
    await engines.clickhouse.insert({
      table: 'logs',
      values: [row],
      format: 'JSONEachRow',
      clickhouse_settings: settings,
    });
  }
  await engines.clickhouse.command({
    query: 'UPDATE logs SET is_vectorized = 1 WHERE log_id IN {ids:Array(UUID)}',
    query_params: { ids: [row.log_id] },
  });
  const [logs] = await (
    await engines.clickhouse.query({
      query: 'SELECT count() AS n, sum(is_vectorized) AS v FROM logs',
      format: 'JSONEachRow',
    })
  ).json<{ n: string; v: string }>();
  expect(logs).toEqual({ n: '1', v: '1' });
  const [agg] = await (
    await engines.clickhouse.query({ query: 'SELECT sum(log_count) AS n FROM logs_hourly_agg', format: 'JSONEachRow' })
  ).json<{ n: string }>();
  expect(agg?.n).toBe('1');
  const [counted] = await (
    await engines.clickhouse.query({
      query: 'SELECT sum(occurrences) AS n FROM error_pattern_counts',
      format: 'JSONEachRow',
    })
  ).json<{ n: string }>();
  expect(counted?.n).toBe('1');

  // The seed's views cover the last 24 hours: the row above is older, one stored now counts.
  const now = new Date().toISOString().replace('T', ' ').replace('Z', '');
  await engines.clickhouse.insert({
    table: 'logs',
    values: [{ ...row, log_id: '6f1c1c8e-4a3e-4b8e-9c53-0d3a4e1f0a02', timestamp: now, ingested_at: now }],
    format: 'JSONEachRow',
  });
  const [lastDay] = await (
    await engines.clickhouse.query({
      query: 'SELECT sum(log_count) AS n FROM logs_hourly_stats',
      format: 'JSONEachRow',
    })
  ).json<{ n: string }>();
  expect(lastDay?.n).toBe('1');
}

describe('migrations', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('splits statements at line-final semicolons only', () => {
    expect(splitStatements("-- c;\nCREATE A;\nSELECT 'a;b' ;\n\nX")).toEqual(['CREATE A', "SELECT 'a;b'", 'X']);
  });

  it('accepts a database migrated before a comment-only edit of a file, and still refuses a real change', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-migrate-edit-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const current = await readFile(new URL('../../sql/clickhouse/001_logs.sql', import.meta.url), 'utf8');
    const sqlDir = async (name: string, text: string) => {
      await mkdir(path.join(dir, name, 'clickhouse'), { recursive: true });
      await writeFile(path.join(dir, name, 'clickhouse', '001_logs.sql'), text);
      return new URL(`file://${path.join(dir, name)}/`);
    };
    // 001 as it was applied before 2026-12-07, when a comment cited a note outside the repository.
    const earlier = current.replace('(exactly-once sink, ARCHITECTURE.md);', '(exactly-once sink, DESIGN.md 5);');
    expect(earlier).not.toBe(current);
    const engines = await openEngines(loadConfig({ LOGFLOW_DATA_DIR: path.join(dir, 'data') }), {
      createDatabases: true,
    });
    try {
      const client = engines.clickhouse;
      expect((await migrateClickHouse(client, { sqlDir: await sqlDir('earlier', earlier) })).applied).toEqual([
        '001_logs.sql',
      ]);
      expect((await migrateClickHouse(client, { sqlDir: await sqlDir('now', current) })).applied).toEqual([]);
      const changed = current.replace('CREATE TABLE IF NOT EXISTS logs', 'CREATE TABLE IF NOT EXISTS logs_renamed');
      await expect(migrateClickHouse(client, { sqlDir: await sqlDir('changed', changed) })).rejects.toThrow(
        /001_logs\.sql was changed after it was applied/,
      );
    } finally {
      await engines.close();
    }
  });

  it('apply on chdb + PGlite in a temp dir, and a second run is a no-op', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-migrate-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const engines = await openEngines(loadConfig({ LOGFLOW_DATA_DIR: dir }), { createDatabases: true });
    try {
      expect(engines.mode).toEqual({ clickhouse: 'chdb', postgres: 'pglite' });
      await exerciseMigrations(engines);
      await exerciseLogsTable(engines);
    } finally {
      await engines.close();
    }
  });

  it('apply on chdb + a real PostgreSQL server, and a second run is a no-op', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-migrate-'));
    const database = uniqueName('logflow_test');
    cleanups.push(async () => {
      await rm(dir, { recursive: true, force: true });
      await dropTestDatabase(database);
    });
    const config = loadConfig({
      LOGFLOW_DATA_DIR: dir,
      LOGFLOW_POSTGRES_URL: postgresUrlFor(database),
      LOGFLOW_CLICKHOUSE_DATABASE: database,
    });
    const engines = await openEngines(config, { createDatabases: true });
    try {
      expect(engines.mode).toEqual({ clickhouse: 'chdb', postgres: 'server' });
      await exerciseMigrations(engines);
      await exerciseLogsTable(engines);
    } finally {
      await engines.close();
    }
  });
});
