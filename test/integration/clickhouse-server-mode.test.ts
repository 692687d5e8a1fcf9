/**
 * The server-mode ClickHouse path: `@clickhouse/client` over HTTP, as
 * `LOGFLOW_CLICKHOUSE_URL` makes it, against ClickHouse's HTTP interface
 * served by the real engine (test/support/clickhouse-http-server.ts), with a
 * real PostgreSQL server for the batch ledger. Migrations, the exactly-once
 * sink, the lightweight UPDATEs and the API's and nightly analysis's queries
 * run here exactly as they would against a ClickHouse server: per-query
 * settings travel as URL parameters, query parameters as `param_*`, and
 * errors come back as HTTP statuses with ClickHouse's exception text.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { from, lastValueFrom, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateAll } from '../../src/app/migrate.ts';
import { Analytics } from '../../src/api/analytics.ts';
import { openClickHouse, openEngines, type Engines } from '../../src/clients/engines.ts';
import { rowInserterFor, clientRowInserter } from '../../src/clients/row-inserter.ts';
import { createChunk, type Chunk } from '../../src/core/chunk.ts';
import { loadConfig, type Config } from '../../src/core/config.ts';
import { classify, ErrorCodes, LogflowError } from '../../src/core/errors.ts';
import { clickHouseSink, clickhouseErrorRules } from '../../src/sinks/clickhouse.ts';
import { sinkBatchLedger } from '../../src/sinks/clickhouse-ledger.ts';
import type { Failure } from '../../src/sinks/dead-letter.ts';
import { DailyAnalytics, dayRange } from '../../src/stores/analytics.ts';
import { ErrorPatternStore } from '../../src/stores/error-patterns.ts';
import { LOGS_COLUMNS, toLogsRow, type StoredLog } from '../../src/stores/logs-table.ts';
import { createRepositories } from '../../src/stores/postgres/index.ts';
import { createSinkBatchRepository } from '../../src/stores/postgres/sink-batches.ts';
import { DetectorCheckpoints } from '../../src/sinks/detector-checkpoints.ts';
import { createLogger } from '../../src/core/logger.ts';
import { Health } from '../../src/core/health.ts';
import { buildApiServer } from '../../src/api/server.ts';
import { ClickHouseVectorStore } from '../../src/stores/clickhouse-vector.ts';
import { createMetrics } from '../../src/core/metrics.ts';
import { startClickHouseHttpServer, type ClickHouseHttpServer } from '../support/clickhouse-http-server.ts';
import { sampleLog, storedFrom } from '../support/log-fixtures.ts';
import { dropTestDatabase, postgresUrlFor, uniqueName } from '../support/services.ts';

const TOPIC = 'raw-logs';
const BASE = Date.UTC(2026, 10, 27, 10);
const LOG_COUNT = 2_000;
const ERROR_HASHES = ['1001', '1002', '1003'];

/** Logs spread over two hours; every tenth an ERROR of one of three patterns. */
function makeLogs(): StoredLog[] {
  return Array.from({ length: LOG_COUNT }, (_, i) => {
    const log = storedFrom(sampleLog(i, BASE), { topic: TOPIC, partition: i % 2, offset: Math.floor(i / 2) });
    const timestamp = BASE + i * 3_600;
    return log.level === 'ERROR'
      ? { ...log, timestamp, error_hash: ERROR_HASHES[i % 3]!, template: `failure <*> kind ${i % 3}` }
      : { ...log, timestamp, error_hash: '0' };
  });
}

/** One chunk per partition and offset window, as a consumer hands them out. */
function chunksOf(logs: readonly StoredLog[], size: number): Chunk<StoredLog>[] {
  const chunks: Chunk<StoredLog>[] = [];
  for (const partition of [0, 1]) {
    const mine = logs.filter((l) => l.kafka_partition === partition);
    for (let i = 0; i < mine.length; i += size) {
      const records = mine.slice(i, i + size);
      chunks.push(
        createChunk(
          {
            topic: TOPIC,
            partition,
            firstOffset: records[0]!.kafka_offset,
            lastOffset: records.at(-1)!.kafka_offset,
            records,
          },
          { onAck: () => undefined, onFail: () => undefined },
        ),
      );
    }
  }
  return chunks;
}

describe('server mode: @clickhouse/client over HTTP to ClickHouse (served by chdb)', () => {
  const database = uniqueName('logflow_chhttp');
  let dir = '';
  let server: ClickHouseHttpServer;
  let engines: Engines;
  let config: Config;
  const logs = makeLogs();

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-chhttp-'));
    server = await startClickHouseHttpServer({ dataDir: dir, user: 'default', password: 'logflow' });
    config = loadConfig({
      LOGFLOW_CLICKHOUSE_URL: server.url,
      LOGFLOW_CLICKHOUSE_PASSWORD: 'logflow',
      LOGFLOW_CLICKHOUSE_DATABASE: database,
      LOGFLOW_POSTGRES_URL: postgresUrlFor(database),
      LOGFLOW_API_RATE_LIMIT: '1000000',
    });
    engines = await openEngines(config, { createDatabases: true });
  });

  afterAll(async () => {
    await engines?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
    await dropTestDatabase(database);
  });

  const rows = async <T>(query: string, query_params: Record<string, unknown> = {}): Promise<T[]> =>
    (await engines.clickhouse.query({ query, query_params, format: 'JSONEachRow' })).json<T>();

  it('opens the server path, not chdb: the HTTP client and its row inserter', () => {
    expect(engines.mode.clickhouse).toBe('server');
    // The sink's rows go through the client (CustomSeparated over HTTP); chdb's raw insert is registered only for chdb.
    expect(rowInserterFor(engines.clickhouse).toString()).toBe(clientRowInserter(engines.clickhouse).toString());
  });

  it('migrates over HTTP, one statement per request, into the configured database; a second run changes nothing', async () => {
    const first = await migrateAll(engines);
    expect(first.clickhouse.applied.length).toBeGreaterThan(0);
    const tables = await rows<{ name: string }>(
      'SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name',
      { db: database },
    );
    expect(tables.map((t) => t.name)).toEqual(
      expect.arrayContaining(['logs', 'logs_hourly_agg', 'error_patterns', 'schema_migrations', 'recent_errors']),
    );
    // Every migration statement reached the server as its own request, in the database the URL names.
    const ddl = server.requests.filter((r) => /^\s*CREATE (TABLE|MATERIALIZED VIEW|VIEW)/i.test(r.query ?? ''));
    expect(ddl.length).toBeGreaterThan(3);
    expect(ddl.every((r) => r.status === 200 && r.params.database === database)).toBe(true);
    const second = await migrateAll(engines);
    expect(second.clickhouse.applied).toEqual([]);
    expect(second.clickhouse.alreadyApplied).toBe(first.clickhouse.applied.length);
  });

  it('stores every log exactly once through the sink, and drops a replay by its dedup token', async () => {
    const ledger = sinkBatchLedger(createSinkBatchRepository(engines.postgres));
    const deadLetters: Failure[] = [];
    const run = (size: number) =>
      lastValueFrom(
        from(chunksOf(logs, size)).pipe(
          clickHouseSink<StoredLog>(engines.clickhouse, {
            sink: 'logs',
            table: 'logs',
            columns: LOGS_COLUMNS,
            toRow: toLogsRow,
            offsetOf: (log) => log.kafka_offset,
            ledger,
            deadLetter: async (failures) => {
              deadLetters.push(...failures);
            },
            maxRecords: 400,
            maxWaitMs: 10,
          }),
          toArray(),
        ),
      );
    const tokensSince = (start: number) =>
      server.requests
        .slice(start)
        .map((r) => r.params.insert_deduplication_token)
        .filter((t): t is string => t !== undefined)
        .sort();

    const before = server.requests.length;
    expect((await run(250)).length).toBe(chunksOf(logs, 250).length);
    const firstTokens = tokensSince(before);
    expect(firstTokens.length).toBeGreaterThan(0);
    expect(firstTokens.every((t) => /^logs-raw-logs-[01]-\d+-\d+$/.test(t))).toBe(true);

    // The process "crashed" before committing: the same records come again, in differently sized chunks.
    const replayStart = server.requests.length;
    await run(170);
    // The replay was re-cut into the recorded ranges, so the server got the same tokens and dropped the inserts.
    expect(tokensSince(replayStart)).toEqual(firstTokens);
    expect(deadLetters).toEqual([]);

    const [stored] = await rows<{ n: string; ids: string }>('SELECT count() AS n, uniqExact(log_id) AS ids FROM logs');
    expect(stored).toEqual({ n: String(LOG_COUNT), ids: String(LOG_COUNT) });
    // The hourly view got each batch once too (deduplicate_blocks_in_dependent_materialized_views travelled as a URL
    // setting).
    const [hourly] = await rows<{ n: string }>('SELECT sum(log_count) AS n FROM logs_hourly_agg');
    expect(hourly?.n).toBe(String(LOG_COUNT));
    const insert = server.requests.find((r) => r.params.insert_deduplication_token !== undefined);
    expect(insert?.params.deduplicate_blocks_in_dependent_materialized_views).toBe('1');
    expect(insert?.params.format_custom_escaping_rule).toBe('JSON');
  });

  it('dead-letters the one row the server refuses and stores the rest', async () => {
    const ledger = sinkBatchLedger(createSinkBatchRepository(engines.postgres));
    const deadLetters: Failure[] = [];
    const records = Array.from({ length: 50 }, (_, i) =>
      // A week earlier: the queries below count only the day of the other logs.
      storedFrom(sampleLog(i, BASE - 7 * 86_400_000), { topic: 'poison', partition: 0, offset: i }),
    );
    const chunk = createChunk(
      { topic: 'poison', partition: 0, firstOffset: 0, lastOffset: 49, records },
      { onAck: () => undefined, onFail: () => undefined },
    );
    await lastValueFrom(
      from([chunk]).pipe(
        clickHouseSink<StoredLog>(engines.clickhouse, {
          sink: 'poison-logs',
          table: 'logs',
          columns: LOGS_COLUMNS,
          // Row 17 carries a log id that is no UUID: only the server can tell, and it says so in its exception.
          toRow: (log) => {
            const row = toLogsRow(log);
            if (log.kafka_offset === 17) row[0] = 'not-a-uuid';
            return row;
          },
          offsetOf: (log) => log.kafka_offset,
          ledger,
          deadLetter: async (failures) => {
            deadLetters.push(...failures);
          },
          maxRecords: 100,
          maxWaitMs: 10,
        }),
        toArray(),
      ),
    );
    expect(deadLetters.map((f) => f.origin.offset)).toEqual([17]);
    expect(deadLetters[0]?.error).toBeInstanceOf(LogflowError);
    expect((deadLetters[0]?.error as LogflowError).code).toBe(ErrorCodes.SINK_REJECTED);
    expect(String((deadLetters[0]?.error as Error).message)).toMatch(/UUID|not-a-uuid/i);
    const [stored] = await rows<{ n: string }>("SELECT count() AS n FROM logs WHERE kafka_topic = 'poison'");
    expect(stored?.n).toBe('49');
    // The refusal came back as ClickHouse sends it: an HTTP error with the exception code header.
    expect(server.requests.some((r) => r.status >= 400 && r.params.insert_deduplication_token !== undefined)).toBe(
      true,
    );
  });

  it('stops, naming the credentials, when the server refuses the password: no row is blamed', async () => {
    const { client } = await openClickHouse(
      loadConfig({
        LOGFLOW_CLICKHOUSE_URL: server.url,
        LOGFLOW_CLICKHOUSE_PASSWORD: 'wrong',
        LOGFLOW_CLICKHOUSE_DATABASE: database,
      }),
    );
    const deadLetters: Failure[] = [];
    try {
      const records = logs.slice(0, 10).map((l, i) => ({ ...l, kafka_topic: 'refused', kafka_offset: i }));
      const chunk = createChunk(
        { topic: 'refused', partition: 0, firstOffset: 0, lastOffset: 9, records },
        { onAck: () => undefined, onFail: () => undefined },
      );
      const failure = await lastValueFrom(
        from([chunk]).pipe(
          clickHouseSink<StoredLog>(client, {
            sink: 'refused-logs',
            table: 'logs',
            columns: LOGS_COLUMNS,
            toRow: toLogsRow,
            offsetOf: (log) => log.kafka_offset,
            ledger: sinkBatchLedger(createSinkBatchRepository(engines.postgres)),
            deadLetter: async (failures) => {
              deadLetters.push(...failures);
            },
            maxWaitMs: 10,
          }),
          toArray(),
        ),
      ).catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(LogflowError);
      expect((failure as LogflowError).code).toBe(ErrorCodes.CONFIG_INVALID);
      expect((failure as LogflowError).message).toMatch(/credentials, not of a row: .*Authentication failed/);
    } finally {
      await client.close();
    }
    expect(deadLetters).toEqual([]);
    expect(server.requests.at(-1)?.status).toBe(403);
  });

  it('runs the lightweight UPDATE of is_vectorized with its ids as a query parameter in the URL', async () => {
    // Every stored log: 2,000 UUIDs make a URL of about 80 KB, as a vectorize batch does.
    const chosen = logs.map((l) => l.log_id);
    await new ErrorPatternStore(engines.clickhouse).flagVectorized(chosen);
    const [flagged] = await rows<{ n: string; chosen: string }>(
      'SELECT countIf(is_vectorized = 1) AS n, countIf(is_vectorized = 1 AND log_id IN {ids:Array(UUID)}) AS chosen FROM logs',
      { ids: chosen },
    );
    expect(flagged).toEqual({ n: String(LOG_COUNT), chosen: String(LOG_COUNT) });
    const update = server.requests.find((r) => r.query?.startsWith('UPDATE logs SET is_vectorized') === true);
    expect(update?.status).toBe(200);
    expect(update?.params.param_ids?.length).toBeGreaterThan(70_000);
  });

  it("marks an anomalous window's rows with the detector's lightweight UPDATE, its bounds DateTime64 parameters", async () => {
    const checkpoints = new DetectorCheckpoints(createRepositories(engines.postgres), engines.clickhouse, {
      pipeline: 'detect',
      windows: { sizeMs: 60_000 },
      metrics: createMetrics(),
      logger: createLogger({ level: 'silent' }),
    });
    const window = {
      service: 'payment-service',
      environment: 'production',
      level: 'ERROR',
      start: BASE + 600_000,
      end: BASE + 2_400_000,
      score: 7.5,
    };
    await checkpoints.write(checkpoints.capture([{ kind: 'anomalous', window }]));
    const expected = logs
      .filter(
        (l) =>
          l.service === window.service &&
          l.level === window.level &&
          l.timestamp >= window.start &&
          l.timestamp < window.end,
      )
      .map((l) => l.log_id)
      .sort();
    expect(expected.length).toBeGreaterThan(0);
    const flagged = await rows<{ id: string; score: number }>(
      'SELECT toString(log_id) AS id, anomaly_score AS score FROM logs WHERE is_anomaly = 1 ORDER BY id',
    );
    expect(flagged.map((r) => r.id)).toEqual(expected);
    expect(flagged.every((r) => r.score === 7.5)).toBe(true);
    const update = server.requests.find((r) => r.query?.startsWith('UPDATE logs SET is_anomaly') === true);
    expect(update?.params.param_from).toBe('2026-11-27 10:10:00.000');
  });

  it("answers the API's queries over HTTP: logs pages, error rate, top errors, hourly, patterns", async () => {
    const analytics = new Analytics(engines.clickhouse);
    const range = { from: BASE, to: BASE + 2 * 3_600_000 + 1 };
    const inRange = logs.filter((l) => l.timestamp >= range.from && l.timestamp < range.to);
    const errorLogs = inRange.filter((l) => l.level === 'ERROR');

    // Keyset pages cover every matching row once, newest first.
    const seen: string[] = [];
    let after: Parameters<Analytics['logs']>[2];
    for (;;) {
      const page = await analytics.logs({ range, level: 'ERROR' }, 37, after);
      seen.push(...page.items.map((i) => i.logId));
      if (!page.more) break;
      after = page.last;
    }
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.sort()).toEqual(errorLogs.map((l) => l.log_id).sort());

    const rate = await analytics.errorRate({ range }, 3_600);
    const totals = rate
      .flatMap((s) => s.points)
      .reduce((a, p) => ({ t: a.t + p.total, e: a.e + p.errors }), { t: 0, e: 0 });
    expect(totals).toEqual({ t: inRange.length, e: errorLogs.length });

    const top = await analytics.topErrors({ range }, 10);
    const expected = new Map<string, number>();
    for (const l of errorLogs) expected.set(l.error_hash, (expected.get(l.error_hash) ?? 0) + 1);
    const byHash = new Map<string, number>();
    for (const t of top) byHash.set(t.errorHash, (byHash.get(t.errorHash) ?? 0) + t.count);
    expect(byHash).toEqual(expected);

    // Every log lies within the two hours, so the hourly rollup holds them all.
    expect(inRange.length).toBe(LOG_COUNT);
    const hourly = await analytics.hourly({ range });
    expect(hourly.reduce((a, h) => ({ n: a.n + h.count, e: a.e + h.errors }), { n: 0, e: 0 })).toEqual({
      n: LOG_COUNT,
      e: errorLogs.length,
    });

    // Patterns come from error_patterns: write them as the vectorize pipeline does, then read them back.
    const store = new ErrorPatternStore(engines.clickhouse);
    await store.markEmbedded(
      ERROR_HASHES.map((hash) => {
        const mine = errorLogs.filter((l) => l.error_hash === hash);
        return {
          errorHash: hash,
          template: mine[0]!.template,
          sampleMessage: mine[0]!.message,
          service: mine[0]!.service,
          level: 'ERROR',
          firstSeen: mine[0]!.timestamp,
          lastSeen: mine.at(-1)!.timestamp,
          occurrences: mine.length,
        };
      }),
      (hash) => `00000000-0000-4000-8000-00000000${hash.padStart(4, '0')}`,
    );
    const stored = await store.get(ERROR_HASHES);
    expect([...stored.keys()].sort()).toEqual(ERROR_HASHES);
    const patterns = await analytics.patterns({}, 10, undefined);
    expect(patterns.items.map((p) => p.errorHash).sort()).toEqual(ERROR_HASHES);
    expect(patterns.items.every((p) => p.hasEmbedding)).toBe(true);
  });

  it('serves the API routes from the server: logs, stats and patterns through HTTP all the way', async () => {
    const repositories = createRepositories(engines.postgres);
    const health = new Health();
    health.setPhase('running');
    const app = await buildApiServer({
      config,
      logger: createLogger({ level: 'silent' }),
      metrics: createMetrics({ defaultMetrics: false }),
      health,
      clickhouse: engines.clickhouse,
      repositories,
      vectorStore: new ClickHouseVectorStore({ client: engines.clickhouse }),
    });
    try {
      const { key } = await repositories.apiKeys.create('vera', 'viewer');
      const get = async (url: string) => {
        const response = await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${key}` } });
        expect(response.statusCode, `${url}: ${response.body}`).toBe(200);
        return JSON.parse(response.body) as { items: Array<Record<string, unknown>> } & Record<string, unknown>;
      };
      const range = `from=${new Date(BASE).toISOString()}&to=${new Date(BASE + 2 * 3_600_000).toISOString()}`;
      const errorLogs = logs.filter((l) => l.level === 'ERROR');
      const page = await get(`/api/v1/logs?${range}&level=ERROR&service=auth-service&limit=1000`);
      expect(page.items.map((i) => i.logId).sort()).toEqual(
        errorLogs
          .filter((l) => l.service === 'auth-service')
          .map((l) => l.log_id)
          .sort(),
      );
      const top = await get(`/api/v1/stats/top-errors?${range}`);
      const total = top.items.reduce((a, i) => a + Number(i.count), 0);
      expect(total).toBe(errorLogs.length);
      const hourly = await get(`/api/v1/stats/hourly?${range}`);
      expect(hourly.items.reduce((a, i) => a + Number(i.count), 0)).toBe(LOG_COUNT);
      const patterns = await get('/api/v1/patterns');
      expect(patterns.items.map((p) => p.errorHash).sort()).toEqual(ERROR_HASHES);
      const one = await get('/api/v1/patterns/1001');
      expect(one.pattern).toMatchObject({
        errorHash: '1001',
        occurrences: errorLogs.filter((l) => l.error_hash === '1001').length,
      });
    } finally {
      await app.close();
    }
  });

  it("answers the nightly analysis's queries over HTTP", async () => {
    const daily = new DailyAnalytics(engines.clickhouse);
    const stats = await daily.statistics(dayRange('2026-11-27'));
    const errors = logs.filter((l) => l.level === 'ERROR').length;
    expect(stats).toMatchObject({ totalLogs: LOG_COUNT, totalErrors: errors });
    const patterns = await daily.errorPatterns(dayRange('2026-11-27'));
    expect(patterns.map((p) => p.errorHash).sort()).toEqual(ERROR_HASHES);
    const totals = await daily.totals(ERROR_HASHES);
    expect([...totals.values()].reduce((a, t) => a + t.count, 0)).toBe(errors);
    const hourly = await daily.hourlyCounts(dayRange('2026-11-27'));
    expect(hourly.reduce((a, h) => a + h.count, 0)).toBe(LOG_COUNT);
  });

  it('reports a server error with its ClickHouse code and type, classified as the sink classifies it', async () => {
    const error = await engines.clickhouse.query({ query: 'SELECT * FROM no_such_table' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: '60', type: 'UNKNOWN_TABLE' });
    // A missing table is the schema's fault, never a row's: the sink stops instead of bisecting.
    expect(classify(error, clickhouseErrorRules, 'sink').code).toBe(ErrorCodes.CONFIG_INVALID);
    const refused = server.requests.at(-1);
    expect(refused?.status).toBe(404);
  });
});
