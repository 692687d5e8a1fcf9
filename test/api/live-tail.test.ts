/**
 * The live tail (GET /api/v1/logs/tail) and the attribute and trace id
 * filters, over real HTTP against the real API on chdb and PGlite: logs are
 * inserted into the logs table while clients listen, as the ingest sink
 * stores them. The server polls every 100 ms, drops a client past 64 KiB
 * unread and holds at most 3 tails, so every limit is reached quickly.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApiServer, type ApiDependencies } from '../../src/api/server.ts';
import { loadConfig } from '../../src/core/config.ts';
import { openEngines, type Engines } from '../../src/clients/engines.ts';
import { Health } from '../../src/core/health.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createMetrics } from '../../src/core/metrics.ts';
import { migrateAll } from '../../src/app/migrate.ts';
import { ClickHouseVectorStore } from '../../src/stores/clickhouse-vector.ts';
import { LOGS_COLUMNS, toLogsRow, type StoredLog } from '../../src/stores/logs-table.ts';
import { createRepositories } from '../../src/stores/postgres/index.ts';
import { storedFrom } from '../support/log-fixtures.ts';

const MAX_TAILS = 3;
const BUFFER_BYTES = 65_536;

let dir = '';
let engines: Engines;
let app: FastifyInstance;
let deps: ApiDependencies;
let base = '';
let viewer = '';
let revoked = '';

function log(service: string, fields: Partial<StoredLog> = {}): StoredLog {
  const now = Date.now();
  const stored = storedFrom(
    {
      log_id: randomUUID(),
      timestamp: new Date(now).toISOString(),
      service,
      level: 'ERROR',
      message: `payment failed for ${service}`,
    },
    { topic: 'raw-logs', partition: 0, offset: 0 },
  );
  return {
    ...stored,
    environment: 'production',
    host: 'h1',
    template: 'payment failed for <*>',
    ingested_at: now,
    ...fields,
  };
}

async function store(...rows: StoredLog[]): Promise<void> {
  await engines.clickhouse.insert({
    table: 'logs',
    columns: [...LOGS_COLUMNS] as [string, ...string[]],
    values: rows.map(toLogsRow),
    format: 'JSONCompactEachRow',
  });
}

interface Tail {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  /** The JSON body of a refused request. */
  readonly body: Record<string, unknown> | undefined;
  readonly events: EventSourceMessage[];
  readonly comments: string[];
  readonly response: http.IncomingMessage;
  /** Resolves when the server ended the stream. */
  readonly ended: Promise<void>;
  close(): void;
}

/** Opens a tail over HTTP; `paused` leaves the body unread, as a stuck client would. */
function openTail(
  query: string,
  options: { key?: string | null; headers?: Record<string, string>; paused?: boolean } = {},
): Promise<Tail> {
  const key = options.key === undefined ? viewer : options.key;
  return new Promise((resolve, reject) => {
    const request = http.get(
      `${base}/api/v1/logs/tail${query === '' ? '' : `?${query}`}`,
      { headers: { ...(key === null ? {} : { authorization: `Bearer ${key}` }), ...options.headers } },
      (response) => {
        const events: EventSourceMessage[] = [];
        const comments: string[] = [];
        const parser = createParser({ onEvent: (e) => events.push(e), onComment: (c) => comments.push(c) });
        const isStream = response.statusCode === 200;
        let text = '';
        const ended = new Promise<void>((done) => response.once('close', () => done()));
        response.setEncoding('utf8');
        if (options.paused === true) response.pause();
        response.on('data', (chunk: string) => (isStream ? parser.feed(chunk) : (text += chunk)));
        const tail = (body: Record<string, unknown> | undefined): Tail => ({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body,
          events,
          comments,
          response,
          ended,
          close: () => request.destroy(),
        });
        if (isStream) resolve(tail(undefined));
        else response.once('end', () => resolve(tail(JSON.parse(text) as Record<string, unknown>)));
      },
    );
    request.once('error', reject);
  });
}

const logsOf = (tail: Tail) =>
  tail.events.filter((e) => e.event === 'log').map((e) => JSON.parse(e.data) as { logId: string; message: string });

async function untilReady(tail: Tail): Promise<void> {
  expect(tail.status, JSON.stringify(tail.body)).toBe(200);
  await expect.poll(() => tail.events.some((e) => e.event === 'ready')).toBe(true);
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

async function search(query: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${base}/api/v1/logs?${query}`, { headers: { authorization: `Bearer ${viewer}` } });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-tail-'));
  const config = loadConfig({
    LOGFLOW_DATA_DIR: dir,
    LOGFLOW_API_RATE_LIMIT: '1000000',
    LOGFLOW_TAIL_POLL_MS: '100',
    LOGFLOW_TAIL_MAX_CONNECTIONS: String(MAX_TAILS),
    LOGFLOW_TAIL_BUFFER_BYTES: String(BUFFER_BYTES),
    LOGFLOW_TAIL_HEARTBEAT_MS: '1000',
  });
  engines = await openEngines(config, { createDatabases: true });
  await migrateAll(engines);
  const repositories = createRepositories(engines.postgres);
  viewer = (await repositories.apiKeys.create('tailer', 'viewer')).key;
  const gone = await repositories.apiKeys.create('gone', 'viewer');
  await repositories.apiKeys.revoke(gone.apiKey.id);
  revoked = gone.key;
  const health = new Health();
  health.setPhase('running');
  deps = {
    config,
    logger: createLogger({ level: 'warn' }),
    metrics: createMetrics({ defaultMetrics: false }),
    health,
    clickhouse: engines.clickhouse,
    repositories,
    vectorStore: new ClickHouseVectorStore({ client: engines.clickhouse }),
  };
  app = await buildApiServer(deps);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  base = `http://127.0.0.1:${address.port}`;
}, 120_000);

afterAll(async () => {
  await app?.close();
  await engines?.close();
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

describe('live tail', () => {
  it('streams logs stored after it started that match its filters, once each, in the order they were stored', async () => {
    await store(log('tail-a', { message: 'stored before the tail' }));
    const tail = await openTail('service=tail-a&level=ERROR');
    expect(tail.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(tail.headers['cache-control']).toContain('no-cache');
    await untilReady(tail);

    const first = [log('tail-a', { message: 'm1' }), log('tail-a', { message: 'm2' })];
    const noise = [
      log('tail-b', { message: 'other service' }),
      log('tail-a', { level: 'INFO', message: 'other level' }),
    ];
    await store(first[0]!, noise[0]!, first[1]!, noise[1]!);
    const second = [log('tail-a', { message: 'm3' })];
    await store(...second, log('tail-b', { message: 'other service again' }));
    const expected = [...first, ...second].map((l) => l.log_id);

    await expect.poll(() => logsOf(tail).length).toBeGreaterThanOrEqual(expected.length);
    // A later insert that matches shows every earlier one was polled past: nothing else can still come.
    const last = log('tail-a', { message: 'm4' });
    await store(last);
    await expect.poll(() => logsOf(tail).map((l) => l.logId)).toEqual([...expected, last.log_id]);
    expect(logsOf(tail).map((l) => l.message)).toEqual(['m1', 'm2', 'm3', 'm4']);
    // Every log event carries an id to resume from.
    expect(tail.events.filter((e) => e.event === 'log').every((e) => (e.id ?? '') !== '')).toBe(true);
    expect(logsOf(tail)[0]).toMatchObject({ service: 'tail-a', level: 'ERROR', attributes: {} });
    tail.close();
  });

  it('delivers every row of inserts racing each other exactly once', async () => {
    const tail = await openTail('service=race');
    await untilReady(tail);
    const batches = Array.from({ length: 30 }, (_, b) =>
      Array.from({ length: 10 }, (_, i) => log('race', { message: `b${b} r${i}` })),
    );
    await Promise.all(batches.map((rows) => store(...rows)));
    const expected = batches.flat().map((l) => l.log_id);
    await expect.poll(() => logsOf(tail).length).toBeGreaterThanOrEqual(expected.length);
    const marker = log('race', { message: 'after the race' });
    await store(marker);
    await expect.poll(() => logsOf(tail).at(-1)?.logId).toBe(marker.log_id);
    const got = logsOf(tail).map((l) => l.logId);
    expect(got).toHaveLength(expected.length + 1);
    expect(new Set(got)).toEqual(new Set([...expected, marker.log_id]));
    // Rows of one insert arrive together and in their order.
    for (const rows of batches) {
      const at = got.indexOf(rows[0]!.log_id);
      expect(got.slice(at, at + rows.length)).toEqual(rows.map((l) => l.log_id));
    }
    tail.close();
  });

  it('sends keep-alive comment lines while nothing arrives', async () => {
    const tail = await openTail('service=quiet-service');
    await untilReady(tail);
    await expect.poll(() => tail.comments.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    expect(logsOf(tail)).toEqual([]);
    tail.close();
  });

  it('needs a valid API key, like every /api/v1 route', async () => {
    for (const key of [null, 'lf_not-a-key-at-all', revoked]) {
      const tail = await openTail('', { key });
      expect(tail.status, String(key)).toBe(401);
      expect(tail.body).toMatchObject({ error: 'unauthorized', message: expect.any(String) });
    }
    const malformed = await openTail('', { key: null, headers: { authorization: viewer } });
    expect(malformed.status).toBe(401);
  });

  it('refuses bad filters with 400 naming the field, as the search does', async () => {
    for (const [query, field] of [
      ['level=LOUD', 'querystring.level'],
      ['colour=red', 'querystring'],
      ['since=yesterday', 'querystring.since'],
      ['since=2020-01-01T00:00:00Z', 'querystring.since'],
      ['attr.bad%20key=x', 'querystring.attr.bad key'],
      ['attr.pod=', 'querystring.attr.pod'],
    ] as const) {
      const tail = await openTail(query);
      expect(tail.status, query).toBe(400);
      expect(tail.body, query).toMatchObject({ error: 'invalid_request' });
      expect(
        (tail.body!.details as Array<{ field: string }>).map((d) => d.field),
        query,
      ).toContain(field);
    }
    const past64Bits = Buffer.from(JSON.stringify({ b: '18446744073709551616', o: '0', t: Date.now() })).toString(
      'base64url',
    );
    for (const id of ['bm9wZQ', past64Bits, 'not base64 at all!']) {
      const forged = await openTail('', { headers: { 'last-event-id': id } });
      expect(forged.status, id).toBe(400);
      expect(forged.body, id).toMatchObject({
        error: 'invalid_request',
        message: expect.stringContaining('last-event-id'),
      });
    }
  });

  it('resumes after Last-Event-ID without repeating or skipping a log, and starts from since', async () => {
    const tail = await openTail('service=resume-svc');
    await untilReady(tail);
    const before = [log('resume-svc', { message: 'r1' }), log('resume-svc', { message: 'r2' })];
    await store(...before);
    await expect.poll(() => logsOf(tail).length).toBe(2);
    const lastId = tail.events.filter((e) => e.event === 'log').at(-1)!.id!;
    tail.close();
    await tail.ended;

    const missed = [log('resume-svc', { message: 'r3' }), log('resume-svc', { message: 'r4' })];
    await store(...missed);
    const resumed = await openTail('service=resume-svc', { headers: { 'last-event-id': lastId } });
    await untilReady(resumed);
    await expect.poll(() => logsOf(resumed).map((l) => l.message)).toEqual(['r3', 'r4']);
    resumed.close();

    const since = await openTail(`service=resume-svc&since=${new Date(Date.now() - 60_000).toISOString()}`);
    await untilReady(since);
    await expect.poll(() => logsOf(since).map((l) => l.message)).toEqual(['r1', 'r2', 'r3', 'r4']);
    since.close();
  });

  it('drops a client that does not read, with a last event saying why, and frees its slot', async () => {
    const droppedBefore = await metric('logflow_tail_closed_total{reason="slow_client"}');
    const stuck = await openTail('service=flood', { paused: true });
    expect(stuck.status).toBe(200);
    // Far more than the socket buffers of both ends and the 64 KiB the server may hold for it.
    const big = 'x'.repeat(16_384);
    await store(...Array.from({ length: 800 }, (_, i) => log('flood', { message: `${i} ${big}` })));
    await expect
      .poll(() => metric('logflow_tail_closed_total{reason="slow_client"}'), { timeout: 30_000 })
      .toBe(droppedBefore + 1);

    // The client reads at last: the server's events end with the reason it was dropped.
    stuck.response.resume();
    await stuck.ended;
    const last = stuck.events.at(-1)!;
    expect(last.event).toBe('closed');
    expect(JSON.parse(last.data)).toMatchObject({
      reason: 'slow_client',
      message: expect.stringContaining('did not read'),
    });
    const received = logsOf(stuck).length;
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThan(800);
    await expect.poll(() => metric('logflow_tail_connections')).toBe(0);
  });

  it(`holds at most ${MAX_TAILS} tails, answers 503 beyond, and frees a slot when a client disconnects`, async () => {
    const open = await Promise.all(Array.from({ length: MAX_TAILS }, () => openTail('service=cap')));
    for (const tail of open) await untilReady(tail);
    const refused = await openTail('service=cap');
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('5');
    expect(refused.body).toMatchObject({
      error: 'tail_capacity',
      message: expect.stringContaining(`${MAX_TAILS} live tails`),
    });
    expect(await metric('logflow_tail_connections')).toBe(MAX_TAILS);

    open[0]!.close();
    await expect.poll(() => metric('logflow_tail_connections')).toBe(MAX_TAILS - 1);
    const next = await openTail('service=cap');
    await untilReady(next);
    // Three clients with the same filters share one poller; each still gets every log.
    const shared = log('cap', { message: 'for everyone' });
    await store(shared);
    for (const tail of [open[1]!, open[2]!, next])
      await expect.poll(() => logsOf(tail).map((l) => l.logId)).toEqual([shared.log_id]);
    for (const tail of [open[1]!, open[2]!, next]) tail.close();
    await expect.poll(() => metric('logflow_tail_connections')).toBe(0);
  });
});

describe('attribute and trace id filters', () => {
  const tricky = "it's a \\ back'slash\" ') OR 1=1 --";
  const rows = [
    log('attrs', { attributes: { pod: 'pod-1', 'k8s.namespace': 'payments' }, trace_id: 'trace-1' }),
    log('attrs', { attributes: { pod: 'pod-2', 'k8s.namespace': 'payments' }, trace_id: 'trace-2' }),
    log('attrs', { attributes: { pod: tricky, 'app.kubernetes.io/name': 'api' }, trace_id: "t' OR '1'='1" }),
    log('attrs', { attributes: {}, trace_id: 'trace-1' }),
  ];
  const idsOf = (body: Record<string, unknown>) => (body.items as Array<{ logId: string }>).map((l) => l.logId).sort();
  const idsWhere = (keep: (l: StoredLog) => boolean) =>
    rows
      .filter(keep)
      .map((l) => l.log_id)
      .sort();

  beforeAll(async () => {
    await store(...rows);
  });

  it('search: attr.<key>=<value> and traceId match exactly, combined with AND', async () => {
    for (const [query, keep] of [
      ['attr.pod=pod-1', (l: StoredLog) => l.attributes.pod === 'pod-1'],
      ['attr.k8s.namespace=payments', (l: StoredLog) => l.attributes['k8s.namespace'] === 'payments'],
      ['attr.k8s.namespace=payments&attr.pod=pod-2', (l: StoredLog) => l.attributes.pod === 'pod-2'],
      ['attr.app.kubernetes.io/name=api', (l: StoredLog) => l.attributes['app.kubernetes.io/name'] === 'api'],
      ['traceId=trace-1', (l: StoredLog) => l.trace_id === 'trace-1'],
      ['traceId=trace-1&attr.pod=pod-1', (l: StoredLog) => l.trace_id === 'trace-1' && l.attributes.pod === 'pod-1'],
      [`attr.pod=${encodeURIComponent(tricky)}`, (l: StoredLog) => l.attributes.pod === tricky],
      [`traceId=${encodeURIComponent("t' OR '1'='1")}`, (l: StoredLog) => l.trace_id === "t' OR '1'='1"],
    ] as const) {
      const r = await search(`service=attrs&limit=100&${query}`);
      expect(r.status, query).toBe(200);
      expect(idsOf(r.body), query).toEqual(idsWhere(keep));
      expect(idsOf(r.body).length, query).toBeGreaterThan(0);
    }
    const [first] = (await search('service=attrs&attr.pod=pod-1')).body.items as Array<Record<string, unknown>>;
    expect(first).toMatchObject({ traceId: 'trace-1', attributes: { pod: 'pod-1', 'k8s.namespace': 'payments' } });
  });

  it('search: hostile values are data, never SQL; they match nothing or only themselves', async () => {
    for (const value of [
      "' OR 1=1 --",
      "') OR 1=1 --",
      "pod-1' OR '1'='1",
      '\\',
      "\\' OR 1=1 --",
      '{ak0:String}',
      "x'); DROP TABLE logs; --",
      '%',
      '_',
    ]) {
      for (const param of ['attr.pod', 'traceId']) {
        const r = await search(`${param}=${encodeURIComponent(value)}`);
        expect(r.status, `${param}=${value}`).toBe(200);
        expect(r.body.items, `${param}=${value}`).toEqual([]);
      }
    }
    // A hostile key is refused by its pattern before any query.
    for (const key of ["pod') OR 1=1 --", "pod'", 'pod\\', 'a b', '', '-pod', '.pod', 'x'.repeat(129)]) {
      const r = await search(`attr.${encodeURIComponent(key)}=1`);
      expect(r.status, key).toBe(400);
      expect(r.body, key).toMatchObject({
        error: 'invalid_request',
        message: expect.stringContaining('an attribute key is 1-128 characters'),
      });
    }
    const count = await (
      await engines.clickhouse.query({
        query: "SELECT count() AS n FROM logs WHERE service = 'attrs'",
        format: 'JSONEachRow',
      })
    ).json<{ n: string }>();
    expect(Number(count[0]!.n)).toBe(rows.length);
  });

  it('search: refuses more than 10 attribute filters, repeated keys and unknown parameters', async () => {
    const many = Array.from({ length: 11 }, (_, i) => `attr.k${i}=v`).join('&');
    const tooMany = await search(many);
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.message).toContain('at most 10 attr.<key> filters');
    expect((await search('attr.pod=a&attr.pod=b')).status).toBe(400);
    const unknown = await search('trace_id=x');
    expect(unknown.status).toBe(400);
    expect(unknown.body.message).toContain('unknown parameter "trace_id"');
  });

  it('tail: the same filters, hostile values included, pick exactly the matching logs', async () => {
    const byPod = await openTail('attr.pod=pod-9&traceId=trace-9');
    const hostile = await openTail(`attr.pod=${encodeURIComponent("') OR 1=1 --")}`);
    const literal = await openTail(`attr.pod=${encodeURIComponent(tricky)}`);
    for (const tail of [byPod, hostile, literal]) await untilReady(tail);
    const match = log('attrs-tail', { attributes: { pod: 'pod-9' }, trace_id: 'trace-9' });
    const wrongTrace = log('attrs-tail', { attributes: { pod: 'pod-9' }, trace_id: 'trace-8' });
    const trickyRow = log('attrs-tail', { attributes: { pod: tricky } });
    await store(wrongTrace, match, trickyRow);
    await expect.poll(() => logsOf(byPod).map((l) => l.logId)).toEqual([match.log_id]);
    await expect.poll(() => logsOf(literal).map((l) => l.logId)).toEqual([trickyRow.log_id]);
    // A later log that the hostile tail would match, if its value were taken literally, shows it polled past the others.
    const marker = log('attrs-tail', { attributes: { pod: "') OR 1=1 --" } });
    await store(marker);
    await expect.poll(() => logsOf(hostile).map((l) => l.logId)).toEqual([marker.log_id]);
    for (const tail of [byPod, hostile, literal]) tail.close();
  });
});

describe('shutdown', () => {
  it('closing the server ends open tails with a last event', async () => {
    const second = await buildApiServer(deps);
    await second.listen({ host: '127.0.0.1', port: 0 });
    const address = second.server.address();
    if (address === null || typeof address === 'string') throw new Error('no TCP address');
    const previous = base;
    base = `http://127.0.0.1:${address.port}`;
    try {
      const tail = await openTail('service=shutdown');
      await untilReady(tail);
      await second.close();
      await tail.ended;
      expect(tail.events.at(-1)?.event).toBe('closed');
      expect(JSON.parse(tail.events.at(-1)!.data)).toMatchObject({ reason: 'shutdown' });
    } finally {
      base = previous;
    }
  });
});
