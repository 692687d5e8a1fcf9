/**
 * Every /api/v1 endpoint fuzzed from the server's own OpenAPI document, on
 * real stores (chdb and PGlite, migrated and seeded): the routes, parameters
 * and body schemas are read from /openapi.json at test time, so a new
 * endpoint is fuzzed without touching this file.
 *
 * Two properties, each by every role and without a key:
 * - valid shapes whose strings are hostile (NUL, lone surrogates, huge, SQL,
 *   brackets, right-to-left marks) and whose values wander to the edges of
 *   their ranges;
 * - invalid shapes: arbitrary JSON or malformed text as the body, bodies
 *   nested far too deep or over the size limit, other content types, unknown
 *   and repeated query parameters, raw bytes that are not UTF-8.
 * For every request: never a 5xx, the error shape on every 4xx, 401 without
 * a key, and no PostgreSQL table changed by a refused request (the API never
 * writes ClickHouse: its row counts must not move at all). Routes that answer
 * with an event stream (the live tail) never end a response they accept, so
 * they are called over real HTTP and hung up on once the stream has started.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApiServer } from '../../src/api/server.ts';
import { loadConfig } from '../../src/core/config.ts';
import { createLocalEmbedder } from '../../src/clients/embeddings.ts';
import { openEngines, type Engines } from '../../src/clients/engines.ts';
import { Health } from '../../src/core/health.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createMetrics } from '../../src/core/metrics.ts';
import { migrateAll } from '../../src/app/migrate.ts';
import { ClickHouseVectorStore } from '../../src/stores/clickhouse-vector.ts';
import { LOGS_COLUMNS, toLogsRow, type StoredLog } from '../../src/stores/logs-table.ts';
import { createRepositories } from '../../src/stores/postgres/index.ts';

type Method = NonNullable<InjectOptions['method']>;

/** The subset of JSON Schema the zod transform emits. */
interface Schema {
  readonly $ref?: string;
  readonly type?: string;
  readonly enum?: readonly unknown[];
  readonly anyOf?: readonly Schema[];
  readonly oneOf?: readonly Schema[];
  readonly properties?: Readonly<Record<string, Schema>>;
  readonly required?: readonly string[];
  readonly additionalProperties?: boolean | Schema;
  readonly items?: Schema;
  readonly maxItems?: number;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly exclusiveMinimum?: number;
  readonly pattern?: string;
  readonly format?: string;
}

interface Parameter {
  readonly name: string;
  readonly in: 'query' | 'path' | 'header';
  readonly required?: boolean;
  readonly schema: Schema;
}

interface Operation {
  readonly method: Method;
  /** '/api/v1/services/{name}' */
  readonly path: string;
  readonly parameters: readonly Parameter[];
  readonly body: Schema | undefined;
  readonly secured: boolean;
  /** Its 200 is text/event-stream: an accepted request streams until the client hangs up. */
  readonly streams: boolean;
}

interface OpenApiDocument {
  readonly paths: Record<
    string,
    Record<
      string,
      {
        parameters?: Parameter[];
        requestBody?: { content?: Record<string, { schema: Schema }> };
        security?: unknown[];
        responses?: Record<string, { content?: Record<string, unknown> }>;
      }
    >
  >;
  readonly components?: { readonly schemas?: Record<string, Schema> };
}

interface Request {
  readonly method: Method;
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly payload?: string;
}

const ROLES = ['viewer', 'operator', 'admin'] as const;
const FORGED = 'Bearer lf_forged0000000000000000000000';
const PG_TABLES = [
  'anomaly_alerts',
  'alert_silences',
  'services',
  'app_config',
  'nightly_reports',
  'analysis_jobs',
  'user_preferences',
  'error_catalog',
] as const;
const CH_TABLES = ['logs', 'logs_hourly_agg', 'logs_minute_agg', 'error_patterns', 'log_embeddings'] as const;

// ---------------------------------------------------------------- hostile text

const HOSTILE = [
  '\u0000',
  'a\u0000b',
  '\ud800',
  'x\udc00y',
  'half an emoji \ud83d',
  '\udfff\ud800',
  "' OR 1=1 --",
  "'; DROP TABLE services; --",
  "x') UNION SELECT name FROM system.tables --",
  '{service:String}',
  "file('/etc/passwd')",
  '%00',
  '%',
  '%E0%A4%A',
  '../../../etc/passwd',
  '\\',
  '"',
  "'",
  '`',
  '\u202e\u0644\u0627',
  'ınfo',
  'İ',
  '😀'.repeat(3),
  '\u200b',
  '\r\n\t',
  '<script>alert(1)</script>',
  '__proto__',
  'constructor',
  'prototype',
  'null',
  'undefined',
  'NaN',
  '-1',
  '0',
  '1e309',
  '9'.repeat(40),
  '[[[[[[[[[[',
  '{{{{{{{{',
  ']]]]',
  'lf_0000000000000000',
  ' ',
  '',
];

/** UTF-16 code units one by one: lone surrogates included, which the usual string arbitraries never produce. */
const utf16Units = fc.string({
  unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
  maxLength: 40,
});

const hostileText: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.constantFrom(...HOSTILE), weight: 4 },
  { arbitrary: fc.string({ maxLength: 40 }), weight: 1 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 40 }), weight: 1 },
  { arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }), weight: 1 },
  { arbitrary: utf16Units, weight: 2 },
  {
    arbitrary: fc
      .tuple(fc.constantFrom(...HOSTILE), fc.string({ maxLength: 10 }), fc.constantFrom(...HOSTILE))
      .map((parts) => parts.join('')),
    weight: 2,
  },
  {
    arbitrary: fc
      .integer({ min: 1_000, max: 300_000 })
      .chain((n) => fc.constantFrom('x', '\u0000', '[', '😀', '\ud800').map((c) => c.repeat(n))),
    weight: 1,
  },
);

/** Percent-encodes any UTF-16 string; lone surrogates go as their 3-byte (WTF-8) form, which is not valid UTF-8. */
function percentEncode(text: string): string {
  let out = '';
  for (const char of text) {
    const unit = char.charCodeAt(0);
    if (char.length === 1 && unit >= 0xd800 && unit <= 0xdfff) {
      out += [0xe0 | (unit >> 12), 0x80 | ((unit >> 6) & 0x3f), 0x80 | (unit & 0x3f)]
        .map((b) => `%${b.toString(16).toUpperCase()}`)
        .join('');
    } else {
      out += encodeURIComponent(char);
    }
  }
  return out;
}

/** Query text as a client may send it: not always valid percent-encoding, not always UTF-8. */
const rawQueryText = fc.oneof(
  hostileText.map(percentEncode),
  fc.constantFrom('%FF', '%C0%80', '%ED%A0%80', '%E0%A4%A', '%', '%%', '%zz', '+', '&', '=', '%2F..%2F', '%00%00'),
  fc
    .uint8Array({ maxLength: 30 })
    .map((bytes) => [...bytes].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')),
);

// ------------------------------------------------- JSON Schema -> arbitraries

function resolve(doc: OpenApiDocument, schema: Schema): Schema {
  if (schema.$ref === undefined) return schema;
  const name = schema.$ref.replace('#/components/schemas/', '');
  const target = doc.components?.schemas?.[name];
  if (target === undefined) throw new Error(`unresolved ${schema.$ref}`);
  return target;
}

/**
 * Values of `schema`'s shape. Strings without a format or pattern are hostile
 * text; with one, mostly conforming (then the hook and handlers are reached),
 * sometimes hostile. Numbers range over the schema's bounds, edges included.
 */
function shaped(doc: OpenApiDocument, input: Schema, depth = 0): fc.Arbitrary<unknown> {
  const schema = resolve(doc, input);
  // A named schema here is the recursive free JSON: valid at any depth by its shape, so also very deep.
  if (input.$ref !== undefined && depth < 3)
    return fc.oneof(
      { arbitrary: shapedResolved(doc, schema, depth), weight: 3 },
      { arbitrary: nestedArrays, weight: 1 },
    );
  return shapedResolved(doc, schema, depth);
}

const nestedArrays = fc.integer({ min: 60, max: 2_500 }).map((levels) => {
  let value: unknown = 1;
  for (let i = 0; i < levels; i++) value = [value];
  return value;
});

function shapedResolved(doc: OpenApiDocument, schema: Schema, depth: number): fc.Arbitrary<unknown> {
  if (schema.enum !== undefined) return fc.constantFrom(...schema.enum);
  const union = schema.anyOf ?? schema.oneOf;
  if (union !== undefined) {
    // A recursive schema (free JSON) stops at scalars past a few levels.
    const branches = depth > 3 ? union.filter((s) => !['object', 'array'].includes(resolve(doc, s).type ?? '')) : union;
    return fc.oneof(...branches.map((s) => shaped(doc, s, depth + 1)));
  }
  switch (schema.type) {
    case 'string':
      return shapedString(schema);
    case 'integer': {
      const min = schema.exclusiveMinimum === undefined ? (schema.minimum ?? -1e15) : schema.exclusiveMinimum + 1;
      const max = schema.maximum ?? 1e15;
      return fc.oneof(
        fc.integer({ min: Math.max(min, -2_147_483_648), max: Math.min(max, Math.max(min, 0) + 5) }),
        fc.constantFrom(min, max),
        fc.maxSafeInteger().filter((n) => n >= min && n <= max),
      );
    }
    case 'number': {
      const min = schema.exclusiveMinimum ?? schema.minimum ?? -1e300;
      const max = schema.maximum ?? 1e300;
      return fc.double({
        min,
        max,
        noNaN: true,
        noDefaultInfinity: true,
        minExcluded: schema.exclusiveMinimum !== undefined,
      });
    }
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array':
      return fc.array(
        schema.items === undefined ? fc.jsonValue({ maxDepth: 2 }) : shaped(doc, schema.items, depth + 1),
        { maxLength: Math.min(schema.maxItems ?? 5, 5) },
      );
    case 'object': {
      const properties = schema.properties ?? {};
      const record = fc.record(
        Object.fromEntries(Object.entries(properties).map(([name, s]) => [name, shaped(doc, s, depth + 1)])),
        { requiredKeys: [...(schema.required ?? [])] },
      );
      if (typeof schema.additionalProperties !== 'object') return record;
      const extra = fc.dictionary(hostileText, shaped(doc, schema.additionalProperties, depth + 1), { maxKeys: 3 });
      return fc.tuple(record, extra).map(([known, more]) => ({ ...more, ...known }));
    }
    default:
      return fc.jsonValue({ maxDepth: 3 });
  }
}

const DAY = 86_400_000;
const aroundNow = fc.integer({ min: Date.now() - 400 * DAY, max: Date.now() + 40 * DAY }).map((t) => new Date(t));
const anyDate = fc.date({
  min: new Date('0000-01-01T00:00:00Z'),
  max: new Date('9999-12-31T23:59:59Z'),
  noInvalidDate: true,
});

function shapedString(schema: Schema): fc.Arbitrary<string> {
  const conforming: Array<fc.Arbitrary<string>> = [];
  if (schema.format === 'date-time') conforming.push(fc.oneof(aroundNow, anyDate).map((d) => d.toISOString()));
  if (schema.format === 'date') conforming.push(fc.oneof(aroundNow, anyDate).map((d) => d.toISOString().slice(0, 10)));
  if (schema.pattern !== undefined) conforming.push(fc.stringMatching(new RegExp(schema.pattern)));
  if (conforming.length === 0) {
    const min = schema.minLength ?? 0;
    const max = Math.max(min, schema.maxLength ?? 200);
    // Inside the length bounds, so the refusal (if any) is about the text, not its length.
    return fc.oneof(
      { arbitrary: hostileText.filter((s) => s.length >= min && s.length <= max), weight: 3 },
      { arbitrary: hostileText, weight: 1 },
    );
  }
  return fc.oneof({ arbitrary: fc.oneof(...conforming), weight: 3 }, { arbitrary: hostileText, weight: 1 });
}

// ------------------------------------------------------------------- requests

const identity = fc.constantFrom<'viewer' | 'operator' | 'admin' | 'none' | 'forged'>(...ROLES, 'none', 'forged');

function headersFor(who: string, keys: Record<string, string>): Record<string, string> {
  if (who === 'none') return {};
  if (who === 'forged') return { authorization: FORGED };
  return { authorization: `Bearer ${keys[who]}` };
}

function urlFor(
  op: Operation,
  pathValues: Record<string, string>,
  query: ReadonlyArray<readonly [string, string]>,
): string {
  const pathname = op.path.replace(/\{(\w+)\}/g, (_m, name: string) => pathValues[name] ?? '');
  return query.length === 0 ? pathname : `${pathname}?${query.map(([k, v]) => `${k}=${v}`).join('&')}`;
}

/** Scalars go in URLs as text, the way a client writes them. */
const asText = (value: unknown): string => (typeof value === 'string' ? value : (JSON.stringify(value) ?? ''));

function validShapeRequest(doc: OpenApiDocument, op: Operation, keys: Record<string, string>): fc.Arbitrary<Request> {
  const pathParams = op.parameters.filter((p) => p.in === 'path');
  const queryParams = op.parameters.filter((p) => p.in === 'query');
  return fc
    .record({
      who: identity,
      path: fc.record(
        Object.fromEntries(pathParams.map((p) => [p.name, shaped(doc, p.schema).map((v) => percentEncode(asText(v)))])),
      ),
      query: fc.record(
        Object.fromEntries(
          queryParams.map((p) => [p.name, shaped(doc, p.schema).map((v) => percentEncode(asText(v)))]),
        ),
        { requiredKeys: [] },
      ),
      body: op.body === undefined ? fc.constant(undefined) : shaped(doc, op.body),
    })
    .map(({ who, path: pathValues, query, body }) => ({
      method: op.method,
      url: urlFor(op, pathValues as Record<string, string>, Object.entries(query as Record<string, string>)),
      headers: { ...headersFor(who, keys), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    }));
}

/** Deep where a schema takes free JSON (config values, dashboard filters), so validation has to recurse into it. */
const deepJson = fc
  .tuple(
    fc.integer({ min: 60, max: 200_000 }),
    fc.constantFrom('[', '{"a":'),
    fc.constantFrom(['', ''], ['{"value":', '}'], ['{"defaultFilters":{"a":', '}}'], ['{"notifications":{"a":', '}}']),
  )
  .map(([n, open, [before, after]]) => `${before}${open.repeat(n)}1${(open === '[' ? ']' : '}').repeat(n)}${after}`);

const invalidBody: fc.Arbitrary<{ payload?: string; contentType?: string }> = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }).map((v) => ({ payload: JSON.stringify(v), contentType: 'application/json' })),
  fc
    .anything({ maxDepth: 3 })
    .map((v) => ({ payload: JSON.stringify(v) ?? 'undefined', contentType: 'application/json' })),
  fc.string({ maxLength: 200 }).map((s) => ({ payload: s, contentType: 'application/json' })),
  utf16Units.map((s) => ({ payload: `{"a":"${s}"}`, contentType: 'application/json' })),
  deepJson.map((payload) => ({ payload, contentType: 'application/json' })),
  fc
    .constantFrom(
      '{"__proto__":{"x":1}}',
      '{"constructor":{"prototype":{"x":1}}}',
      '{"a":1,"a":2}',
      '',
      ' ',
      'null',
      '[]',
      '"x"',
      '\u0000',
    )
    .map((payload) => ({ payload, contentType: 'application/json' })),
  fc.constant({ payload: `{"value":"${'x'.repeat(1_100_000)}"}`, contentType: 'application/json' }),
  fc
    .tuple(
      fc.jsonValue({ maxDepth: 2 }),
      fc.constantFrom(
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/json; charset=latin1',
        'application/xml',
        'application/json-patch+json',
        'APPLICATION/JSON',
      ),
    )
    .map(([v, contentType]) => ({ payload: JSON.stringify(v), contentType })),
  fc.constant({}),
);

function invalidShapeRequest(op: Operation, keys: Record<string, string>): fc.Arbitrary<Request> {
  const pathParams = op.parameters.filter((p) => p.in === 'path');
  const knownQuery = op.parameters.filter((p) => p.in === 'query').map((p) => p.name);
  const queryKey = fc.oneof(
    fc.constantFrom(...knownQuery, '__proto__', 'constructor', 'limit', 'cursor', 'as'),
    fc.string({ maxLength: 8 }).map(percentEncode),
  );
  return fc
    .record({
      who: identity,
      path: fc.record(Object.fromEntries(pathParams.map((p) => [p.name, rawQueryText]))),
      query: fc.array(fc.tuple(queryKey, rawQueryText), { maxLength: 6 }),
      body: invalidBody,
      otherMethod: fc.option(fc.constantFrom<Method>('GET', 'POST', 'PUT', 'PATCH', 'DELETE'), { freq: 8 }),
    })
    .map(({ who, path: pathValues, query, body, otherMethod }) => ({
      method: otherMethod ?? op.method,
      url: urlFor(op, pathValues as Record<string, string>, query),
      headers: {
        ...headersFor(who, keys),
        ...(body.contentType === undefined ? {} : { 'content-type': body.contentType }),
      },
      ...(body.payload === undefined ? {} : { payload: body.payload }),
    }));
}

// ---------------------------------------------------------------- the stores

let dir = '';
let engines: Engines;
let app: FastifyInstance;
let doc: OpenApiDocument;
let operations: Operation[] = [];
let port = 0;
const keys: Record<string, string> = {};
const answered = new Map<number, number>();

/** A digest of each table the API writes; api_keys without last_used_at, which every authenticated request sets. */
async function pgDigest(): Promise<Record<string, string>> {
  const parts = PG_TABLES.map(
    (t) => `(SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM ${t} x) AS ${t}`,
  );
  parts.push(
    `(SELECT md5(coalesce(string_agg(concat_ws(',', id, name, role, revoked_at), '|' ORDER BY id), '')) FROM api_keys) AS api_keys`,
  );
  return (await engines.postgres.query<Record<string, string>>(`SELECT ${parts.join(', ')}`)).rows[0]!;
}

async function chCounts(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of CH_TABLES) {
    const [row] = await (
      await engines.clickhouse.query({ query: `SELECT count() AS n FROM ${t}`, format: 'JSONEachRow' })
    ).json<{ n: string }>();
    out[t] = Number(row?.n);
  }
  return out;
}

function seedLog(i: number, now: number): StoredLog {
  const service = ['payment-service', 'order-service'][i % 2]!;
  return {
    log_id: randomUUID(),
    timestamp: now - i * 60_000,
    service,
    environment: 'production',
    level: i % 3 === 0 ? 'ERROR' : 'INFO',
    message: `request ${i} failed`,
    host: 'h',
    region: '',
    version: '',
    logger: '',
    trace_id: '',
    span_id: '',
    request_id: '',
    user_id: '',
    session_id: '',
    http_method: '',
    http_path: '',
    http_status: null,
    duration_ms: i,
    error_type: '',
    error_code: '',
    stack_trace: '',
    attributes: {},
    template: 'request <*> failed',
    error_hash: i % 3 === 0 ? '1001' : '0',
    ingested_at: now,
    kafka_topic: 'raw-logs',
    kafka_partition: 0,
    kafka_offset: i,
  };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-api-fuzz-'));
  const config = loadConfig({
    LOGFLOW_DATA_DIR: dir,
    LOGFLOW_API_RATE_LIMIT: '1000000',
    // Hung-up tails free their slots as their sockets close; the fuzzer must never meet the cap's 503.
    LOGFLOW_TAIL_MAX_CONNECTIONS: '10000',
  });
  engines = await openEngines(config, { createDatabases: true });
  await migrateAll(engines);
  const repos = createRepositories(engines.postgres);
  const now = Date.now();
  await engines.clickhouse.insert({
    table: 'logs',
    columns: [...LOGS_COLUMNS] as [string, ...string[]],
    values: Array.from({ length: 60 }, (_, i) => toLogsRow(seedLog(i, now))),
    format: 'JSONCompactEachRow',
  });
  for (const service of ['payment-service', 'order-service']) {
    await repos.anomalyAlerts.insert({
      dedupKey: `spike|${service}`,
      rule: 'spike',
      alertType: 'spike',
      status: 'open',
      severity: 'high',
      service,
      environment: 'production',
      level: 'ERROR',
      score: 5,
    });
  }
  await repos.nightlyReports.upsertForDate({
    reportDate: new Date(now - DAY).toISOString().slice(0, 10),
    producedBy: 'statistical',
    summary: 'a day',
    keyIssues: [],
    totalLogs: 60,
    totalErrors: 20,
    errorRate: 0.33,
    uniquePatterns: 1,
    anomaliesDetected: 1,
  });
  await repos.analysisJobs.create({
    jobType: 'on_demand',
    targetDate: new Date(now - DAY).toISOString().slice(0, 10),
    requestedBy: 'seed',
  });
  await repos.alertSilences.create({
    service: 'order-service',
    reason: 'seed',
    createdBy: 'seed',
    expiresAt: new Date(now + DAY),
  });
  for (const role of ROLES) keys[role] = (await repos.apiKeys.create(`fuzz-${role}`, role)).key;

  const embedder = createLocalEmbedder();
  const vectorStore = new ClickHouseVectorStore({ client: engines.clickhouse });
  await vectorStore.ensureCollection(embedder.dimension!);
  app = await buildApiServer({
    config,
    logger: createLogger({ level: 'fatal' }),
    metrics: createMetrics({ defaultMetrics: false }),
    health: new Health(),
    clickhouse: engines.clickhouse,
    repositories: repos,
    vectorStore,
    embedder,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  port = address.port;
  doc = JSON.parse((await app.inject({ method: 'GET', url: '/openapi.json' })).body) as OpenApiDocument;
  operations = Object.entries(doc.paths)
    .filter(([p]) => p.startsWith('/api/v1/'))
    .flatMap(([p, ops]) =>
      Object.entries(ops).map(([method, op]) => ({
        method: method.toUpperCase() as Method,
        path: p,
        parameters: op.parameters ?? [],
        body: op.requestBody?.content?.['application/json']?.schema,
        secured: (op.security ?? []).length > 0,
        streams: op.responses?.['200']?.content?.['text/event-stream'] !== undefined,
      })),
    );
}, 120_000);

afterAll(async () => {
  await app?.close();
  await engines?.close();
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

/**
 * Whether the router takes `request` to `op`: same method, and each path
 * parameter one segment of valid percent-encoding within the router's
 * maxParamLength. Other requests end in a 404 (or a 400 for the body the
 * not-found route parses) without touching a handler.
 */
function reachesRoute(op: Operation, request: Request): boolean {
  if (request.method !== op.method) return false;
  const pathname = request.url.split('?')[0] ?? '';
  const pattern = new RegExp(`^${op.path.replace(/\{\w+\}/g, '([^/]{1,500})')}$`);
  const match = pattern.exec(pathname);
  if (match === null) return false;
  return match.slice(1).every((segment) => {
    try {
      decodeURIComponent(segment);
      return true;
    } catch {
      return false;
    }
  });
}

/** Over a socket: the status and body of a refusal, or hangs up once an event stream has started. */
function overHttp(request: Request): Promise<{ statusCode: number; body: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = http.request(
      {
        host: '127.0.0.1',
        port,
        agent: false,
        method: request.method,
        path: request.url,
        headers: {
          ...request.headers,
          ...(request.payload === undefined ? {} : { 'content-length': Buffer.byteLength(request.payload) }),
        },
      },
      (response) => {
        if (String(response.headers['content-type']).startsWith('text/event-stream')) {
          outgoing.destroy();
          resolve({ statusCode: response.statusCode ?? 0, body: '' });
          return;
        }
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.once('end', () => resolve({ statusCode: response.statusCode ?? 0, body }));
      },
    );
    outgoing.once('error', reject);
    outgoing.end(request.payload);
  });
}

/** Sends one request and checks everything that must hold whatever it was. */
async function check(request: Request, op: Operation): Promise<void> {
  const before = await pgDigest();
  const response = op.streams
    ? await overHttp(request)
    : await app.inject({
        method: request.method,
        url: request.url,
        headers: request.headers,
        ...(request.payload === undefined ? {} : { payload: request.payload }),
      });
  const status = response.statusCode;
  answered.set(status, (answered.get(status) ?? 0) + 1);
  const what = `${request.method} ${request.url.slice(0, 300)} ${request.payload?.slice(0, 300) ?? ''} -> ${status} ${response.body.slice(0, 300)}`;
  expect(status, what).toBeLessThan(500);
  if (status >= 400) {
    expect(JSON.parse(response.body), what).toMatchObject({ error: expect.any(String), message: expect.any(String) });
    expect(await pgDigest(), `${what}: a refused request changed a table`).toEqual(before);
  }
  // Without a valid key nothing is answered but 401, or 404 for a URL that matches no route.
  // Without a valid key, a request that reaches the route is refused before its body is even parsed.
  const authorization = request.headers.authorization;
  if (authorization === undefined || authorization === FORGED) {
    expect(status, what).toBeGreaterThanOrEqual(400);
    // Over a socket, a request line past Node's header limit is refused (431) before any route is chosen.
    const tooLarge = op.streams && status === 431 && request.url.length > http.maxHeaderSize;
    if (op.secured && reachesRoute(op, request) && !tooLarge) expect(status, what).toBe(401);
  }
}

describe('every endpoint of the OpenAPI document under fuzzing', () => {
  it('finds the endpoints in the document, every schema reference defined', () => {
    expect(operations.length).toBeGreaterThanOrEqual(30);
    expect(operations.filter((o) => o.body !== undefined).length).toBeGreaterThanOrEqual(8);
    expect(operations.every((o) => o.secured)).toBe(true);
    // Every schema a reference names is defined: clients generated from the document need them too.
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of new Set(refs)) expect(doc.components?.schemas?.[ref], ref).toBeDefined();
  });

  it('valid shapes with hostile strings, by every role: no 5xx, and refused requests change nothing', {
    timeout: 120_000,
  }, async () => {
    const ch = await chCounts();
    const started = performance.now();
    const request = fc
      .constantFrom(...operations)
      .chain((op) => validShapeRequest(doc, op, keys).map((r) => ({ op, r })));
    await fc.assert(
      fc.asyncProperty(request, async ({ op, r }) => check(r, op)),
      { numRuns: 500 },
    );
    console.log(
      `valid shapes: ${Math.round(performance.now() - started)} ms; statuses ${JSON.stringify(Object.fromEntries(answered))}`,
    );
    expect(await chCounts()).toEqual(ch);
    // The property reached the handlers, not only the validation: some requests succeeded.
    expect([...answered.keys()].some((s) => s < 300)).toBe(true);
  });

  it('invalid shapes, bodies and encodings, by every role: no 5xx, and refused requests change nothing', {
    timeout: 120_000,
  }, async () => {
    answered.clear();
    const ch = await chCounts();
    const started = performance.now();
    const request = fc.constantFrom(...operations).chain((op) => invalidShapeRequest(op, keys).map((r) => ({ op, r })));
    await fc.assert(
      fc.asyncProperty(request, async ({ op, r }) => check(r, op)),
      { numRuns: 500 },
    );
    console.log(
      `invalid shapes: ${Math.round(performance.now() - started)} ms; statuses ${JSON.stringify(Object.fromEntries(answered))}`,
    );
    expect(await chCounts()).toEqual(ch);
    expect(answered.has(400)).toBe(true);
  });
});
