/**
 * A local stand-in for a Qdrant server (no Qdrant can run on these machines):
 * an in-memory, brute-force collection store behind the REST endpoints the
 * Qdrant adapter calls, which checks every request and every response it
 * sends against Qdrant's published OpenAPI document
 * (test/fixtures/qdrant-openapi-v1.17.json).
 *
 * A request that does not fit the document (unknown path or method, query
 * parameter or body not matching the operation's schemas) gets the 4xx Qdrant
 * would send and is recorded in `violations`; so is a response that drifts
 * from the document's 200 schema, and a request this server does not
 * implement. Tests assert `violations` is empty, so a request the real server
 * would reject fails the test too.
 *
 * Reading OpenAPI 3.0 schemas as JSON Schema (draft 2019-09, ajv) needs
 * these rewrites:
 * - `nullable: true` becomes a `null` type (or a `null` branch next to an
 *   `anyOf`/`oneOf`/`$ref`). The bare `{ nullable: true }` that the document
 *   uses as the "or null" branch of `anyOf` becomes `{ type: 'null' }`: left
 *   alone it is an empty schema, which accepts anything and would make every
 *   `anyOf: [X, { nullable: true }]` check nothing.
 * - `$ref: '#/components/schemas/X'` points into one registered schema
 *   holding all components under `$defs`.
 * - Rust's numeric formats (`uint`, `uint32`, `uint64`, `int64`, `float`,
 *   `double`) and `partial-date-time` are registered as formats with their
 *   ranges; `uuid`, `date-time` and `uri` come from ajv-formats.
 * - OpenAPI-only keywords (`example`, `deprecated`) are dropped.
 * - Objects that list `properties` and say nothing about others get
 *   `unevaluatedProperties: false`. The document is lenient there (and so is
 *   the server, which ignores unknown fields), so a misspelt field would
 *   otherwise pass here and be silently ignored in production.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Ajv2019 } from 'ajv/dist/2019.js';
import type { AnySchema, ErrorObject, ValidateFunction } from 'ajv/dist/2019.js';
import addFormatsPlugin from 'ajv-formats';

export type ViolationKind = 'route' | 'auth' | 'query' | 'body' | 'response' | 'unsupported';

export interface Violation {
  readonly kind: ViolationKind;
  readonly method: string;
  readonly path: string;
  readonly message: string;
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  body: unknown;
  readonly operationId: string | undefined;
  status: number;
}

export interface StoredPoint {
  readonly id: string | number;
  readonly vector: readonly number[];
  readonly payload: Readonly<Record<string, unknown>>;
  readonly version: number;
}

export type Distance = 'Cosine' | 'Dot' | 'Euclid' | 'Manhattan';

export interface CollectionState {
  readonly size: number;
  readonly distance: Distance;
  readonly points: ReadonlyMap<string, StoredPoint>;
  readonly payloadIndexes: ReadonlyMap<string, string>;
}

export interface QdrantTestServerOptions {
  /** When set, requests must carry it (`api-key` header or bearer token), as with a real server's api_key. */
  readonly apiKey?: string;
  /** Test hook: rewrites an operation's result before it is validated and sent, to prove the response check works. */
  readonly rewriteResult?: (operationId: string, result: unknown) => unknown;
}

export interface QdrantTestServer {
  readonly url: string;
  readonly violations: Violation[];
  readonly requests: RecordedRequest[];
  /** Answers the next `times` requests with `status` and a Qdrant error body (429 also sends Retry-After). */
  failNext(status: number, times?: number): void;
  collection(name: string): CollectionState | undefined;
  close(): Promise<void>;
}

const SPEC_URL = new URL('../fixtures/qdrant-openapi-v1.17.json', import.meta.url);
const COMPONENTS_ID = 'https://qdrant.test/components.json';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

interface Parameter {
  readonly name: string;
  readonly in: 'path' | 'query' | 'header' | 'cookie';
  readonly required?: boolean;
  readonly schema?: JsonObject;
}

interface Operation {
  readonly operationId: string;
  readonly parameters?: readonly Parameter[];
  readonly requestBody?: { readonly content?: Record<string, { readonly schema?: JsonObject }> };
  readonly responses: Record<string, { readonly content?: Record<string, { readonly schema?: JsonObject }> }>;
}

interface Route {
  readonly template: string;
  readonly pattern: RegExp;
  readonly names: readonly string[];
  readonly literalSegments: number;
  readonly operations: Readonly<Record<string, Operation>>;
}

// ---------------------------------------------------------------- the schema checks

const isObject = (value: unknown): value is JsonObject =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

/** OpenAPI 3.0 schema -> JSON Schema 2019-09; see the module comment for each rewrite. Exported for its tests. */
export function toJsonSchema(schema: Json): Json {
  if (Array.isArray(schema)) return schema.map(toJsonSchema);
  if (!isObject(schema)) return schema;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'nullable' || key === 'example' || key === 'deprecated') continue;
    if (key === '$ref' && typeof value === 'string') {
      out.$ref = value.replace('#/components/schemas/', `${COMPONENTS_ID}#/$defs/`);
    } else if ((key === 'properties' || key === 'patternProperties') && isObject(value)) {
      out[key] = Object.fromEntries(Object.entries(value).map(([name, sub]) => [name, toJsonSchema(sub)]));
    } else if (['items', 'additionalProperties', 'not', 'anyOf', 'oneOf', 'allOf'].includes(key)) {
      out[key] = toJsonSchema(value);
    } else {
      out[key] = value;
    }
  }
  if (isObject(out.properties) && out.additionalProperties === undefined) out.unevaluatedProperties = false;
  if (schema.nullable !== true) return out;
  if (typeof out.type === 'string') {
    out.type = [out.type, 'null'];
    if (Array.isArray(out.enum)) out.enum = [...out.enum, null];
    return out;
  }
  for (const branches of ['anyOf', 'oneOf'] as const) {
    const list = out[branches];
    if (Array.isArray(list)) return { ...out, [branches]: [...list, { type: 'null' }] };
  }
  if (typeof out.$ref === 'string') {
    const { $ref, ...rest } = out;
    return { ...rest, anyOf: [{ $ref }, { type: 'null' }] };
  }
  return { ...out, type: 'null' };
}

const integerFormat = (min: number, max: number) => ({
  type: 'number' as const,
  validate: (n: number) => Number.isInteger(n) && n >= min && n <= max,
});

function newAjv(coerceTypes: boolean): Ajv2019 {
  const ajv = new Ajv2019({ strict: false, allErrors: true, coerceTypes, logger: false });
  (addFormatsPlugin as unknown as (ajv: Ajv2019) => void)(ajv);
  ajv.addFormat('uint', integerFormat(0, Number.MAX_SAFE_INTEGER));
  ajv.addFormat('uint32', integerFormat(0, 2 ** 32 - 1));
  // JSON numbers past 2^53 arrive rounded; the bound is the type's, in double precision.
  ajv.addFormat('uint64', integerFormat(0, 2 ** 64));
  ajv.addFormat('int64', integerFormat(-(2 ** 63), 2 ** 63));
  ajv.addFormat('float', { type: 'number', validate: (n: number) => Number.isFinite(n) });
  ajv.addFormat('double', { type: 'number', validate: (n: number) => Number.isFinite(n) });
  ajv.addFormat('partial-date-time', /^\d{4}-\d{2}-\d{2}([T ]\d{2}(:\d{2}(:\d{2}(\.\d+)?)?)?)?$/);
  return ajv;
}

/** Qdrant answers malformed JSON with 400 and values outside declared bounds with 422. */
const boundKeywords = new Set([
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'minLength',
  'maxLength',
  'minItems',
  'maxItems',
  'uniqueItems',
]);
const statusFor = (errors: readonly ErrorObject[]): number =>
  errors.every((e) => boundKeywords.has(e.keyword)) ? 422 : 400;

function describeErrors(errors: readonly ErrorObject[] | null | undefined, dataVar: string): string {
  const unique = [
    ...new Set(
      (errors ?? []).map(
        (e) =>
          `${dataVar}${e.instancePath} ${e.message ?? e.keyword}${e.keyword === 'unevaluatedProperties' ? ` (${String(e.params.unevaluatedProperty)})` : ''}`,
      ),
    ),
  ];
  return unique.slice(0, 8).join('; ') + (unique.length > 8 ? `; ... (${unique.length - 8} more)` : '');
}

class SpecChecker {
  readonly routes: readonly Route[];
  readonly #ajv = newAjv(false);
  readonly #coercingAjv = newAjv(true);
  readonly #cache = new Map<string, ValidateFunction>();

  constructor(spec: {
    paths: Record<string, Record<string, Operation>>;
    components: { schemas: Record<string, Json> };
  }) {
    const $defs = Object.fromEntries(
      Object.entries(spec.components.schemas).map(([name, s]) => [name, toJsonSchema(s)]),
    );
    for (const ajv of [this.#ajv, this.#coercingAjv]) ajv.addSchema({ $id: COMPONENTS_ID, $defs } as AnySchema);
    this.routes = Object.entries(spec.paths)
      .map(([template, operations]) => {
        const names: string[] = [];
        // Qdrant's paths hold only letters, digits, '_', '-', '/' and {parameters}: nothing to escape.
        const source = template.replace(/\{([^}]+)\}/g, (_, name: string) => {
          names.push(name);
          return '([^/]+)';
        });
        return {
          template,
          pattern: new RegExp(`^${source}$`),
          names,
          literalSegments: template.split('/').filter((s) => s !== '' && !s.startsWith('{')).length,
          operations,
        };
      })
      // `/points/search` must win over `/points/{id}`.
      .sort((a, b) => b.literalSegments - a.literalSegments);
  }

  route(path: string): { route: Route; params: Record<string, string> } | undefined {
    for (const route of this.routes) {
      const match = route.pattern.exec(path);
      if (match !== null) {
        const params = Object.fromEntries(route.names.map((name, i) => [name, decodeURIComponent(match[i + 1] ?? '')]));
        return { route, params };
      }
    }
    return undefined;
  }

  #compile(key: string, schema: Json, coerce: boolean): ValidateFunction {
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached;
    const validate = (coerce ? this.#coercingAjv : this.#ajv).compile(toJsonSchema(schema) as AnySchema);
    this.#cache.set(key, validate);
    return validate;
  }

  /**
   * Path and query parameters, coerced from strings as a server would parse them; unknown query parameters are
   * violations.
   */
  checkParameters(
    operation: Operation,
    pathParams: Record<string, string>,
    query: Record<string, string>,
  ): { status: number; message: string } | undefined {
    const parameters = (operation.parameters ?? []).filter((p) => p.in === 'path' || p.in === 'query');
    const known = new Set(parameters.filter((p) => p.in === 'query').map((p) => p.name));
    const unknown = Object.keys(query).filter((name) => !known.has(name));
    if (unknown.length > 0)
      return { status: 400, message: `Query deserialize error: unknown query parameter(s) ${unknown.join(', ')}` };
    const schema: JsonObject = {
      type: 'object',
      properties: Object.fromEntries(parameters.map((p) => [p.name, p.schema ?? {}])),
      required: parameters.filter((p) => p.required === true).map((p) => p.name),
    };
    const validate = this.#compile(`${operation.operationId}:parameters`, schema, true);
    if (validate({ ...query, ...pathParams })) return undefined;
    return { status: 400, message: `Query deserialize error: ${describeErrors(validate.errors, 'query')}` };
  }

  checkBody(operation: Operation, body: unknown): { status: number; message: string } | undefined {
    const schema = operation.requestBody?.content?.['application/json']?.schema;
    if (schema === undefined) return undefined;
    const validate = this.#compile(`${operation.operationId}:body`, schema, false);
    if (validate(body)) return undefined;
    const errors = validate.errors ?? [];
    const status = statusFor(errors);
    return {
      status,
      message: `${status === 422 ? 'Validation error' : 'Format error'} in JSON body: ${describeErrors(errors, 'body')}`,
    };
  }

  checkResponse(operation: Operation, status: number, body: unknown): string | undefined {
    const key =
      status === 200
        ? '200'
        : status >= 400 && status < 500 && operation.responses['4XX'] !== undefined
          ? '4XX'
          : 'default';
    const schema = (operation.responses[key] ?? operation.responses.default)?.content?.['application/json']?.schema;
    if (schema === undefined) return undefined;
    const validate = this.#compile(`${operation.operationId}:response:${key}`, schema, false);
    return validate(body)
      ? undefined
      : `response ${status} does not match the ${key} schema: ${describeErrors(validate.errors, 'response')}`;
  }
}

let checker: SpecChecker | undefined;
/** Compiled once per process: the document is half a megabyte and each schema is compiled on first use. */
function specChecker(): SpecChecker {
  checker ??= new SpecChecker(
    JSON.parse(readFileSync(SPEC_URL, 'utf8')) as ConstructorParameters<typeof SpecChecker>[0],
  );
  return checker;
}

// ---------------------------------------------------------------- the in-memory Qdrant

class QdrantFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly unsupported = false,
  ) {
    super(message);
  }
}

const unsupported = (what: string) => new QdrantFailure(501, `not implemented by the test server: ${what}`, true);
const notFound = (name: string) => new QdrantFailure(404, `Not found: Collection \`${name}\` doesn't exist!`);

interface Collection {
  size: number;
  distance: Distance;
  points: Map<string, StoredPoint>;
  payloadIndexes: Map<string, string>;
}

const idKey = (id: unknown): string => (typeof id === 'number' ? `n:${id}` : `u:${String(id).toLowerCase()}`);

function similarity(distance: Distance, a: readonly number[], b: readonly number[]): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (distance === 'Euclid') sum += (x - y) ** 2;
    else if (distance === 'Manhattan') sum += Math.abs(x - y);
    else sum += x * y;
  }
  return distance === 'Euclid' ? Math.sqrt(sum) : sum;
}

const higherIsCloser = (distance: Distance): boolean => distance === 'Cosine' || distance === 'Dot';

/** Qdrant stores Cosine vectors normalized, so the score is a dot product. */
function stored(distance: Distance, vector: readonly number[]): number[] {
  if (distance !== 'Cosine') return [...vector];
  const norm = Math.hypot(...vector);
  return norm === 0 ? [...vector] : vector.map((x) => x / norm);
}

function payloadValues(payload: Readonly<Record<string, unknown>>, key: string): unknown[] {
  let values: unknown[] = [payload];
  for (const part of key.split('.')) {
    values = values.flatMap((v) => (isObject(v) ? [v[part]] : [])).flatMap((v) => (Array.isArray(v) ? v : [v]));
  }
  return values.filter((v) => v !== undefined);
}

const asList = (conditions: unknown): unknown[] =>
  conditions === undefined || conditions === null ? [] : Array.isArray(conditions) ? conditions : [conditions];

function matchesFilter(point: StoredPoint, filter: unknown): boolean {
  if (filter === undefined || filter === null) return true;
  const f = filter as Record<string, unknown>;
  const must = asList(f.must);
  const should = asList(f.should);
  const mustNot = asList(f.must_not);
  if (f.min_should !== undefined && f.min_should !== null) throw unsupported('filter.min_should');
  return (
    must.every((c) => matchesCondition(point, c)) &&
    (should.length === 0 || should.some((c) => matchesCondition(point, c))) &&
    !mustNot.some((c) => matchesCondition(point, c))
  );
}

function matchesCondition(point: StoredPoint, condition: unknown): boolean {
  const c = condition as Record<string, unknown>;
  if ('must' in c || 'should' in c || 'must_not' in c || 'min_should' in c) return matchesFilter(point, c);
  if (Array.isArray(c.has_id)) return c.has_id.some((id) => idKey(id) === idKey(point.id));
  if (typeof c.key !== 'string') throw unsupported(`condition ${JSON.stringify(condition)}`);
  const values = payloadValues(point.payload, c.key);
  const match = c.match as Record<string, unknown> | null | undefined;
  if (match !== undefined && match !== null) {
    if ('value' in match) return values.some((v) => v === match.value);
    if ('any' in match && Array.isArray(match.any)) return values.some((v) => (match.any as unknown[]).includes(v));
    if ('except' in match && Array.isArray(match.except))
      return values.length > 0 && !values.some((v) => (match.except as unknown[]).includes(v));
    throw unsupported(`match ${JSON.stringify(match)}`);
  }
  if (c.is_empty === true) return values.length === 0;
  if (c.is_null === true) return values.length === 0 || values.every((v) => v === null);
  throw unsupported(`field condition ${JSON.stringify(condition)}`);
}

function selectPayload(
  payload: Readonly<Record<string, unknown>>,
  withPayload: unknown,
): Record<string, unknown> | null {
  if (withPayload === undefined || withPayload === null || withPayload === false) return null;
  if (withPayload === true) return { ...payload };
  if (Array.isArray(withPayload))
    return Object.fromEntries(Object.entries(payload).filter(([k]) => (withPayload as unknown[]).includes(k)));
  throw unsupported(`with_payload ${JSON.stringify(withPayload)}`);
}

class InMemoryQdrant {
  readonly collections = new Map<string, Collection>();
  #operationId = 0;

  #get(name: string): Collection {
    const collection = this.collections.get(name);
    if (collection === undefined) throw notFound(name);
    return collection;
  }

  #updateResult(query: Record<string, string>): unknown {
    return { operation_id: this.#operationId++, status: query.wait === 'true' ? 'completed' : 'acknowledged' };
  }

  #vector(collection: Collection, vector: unknown, what: string): number[] {
    if (!Array.isArray(vector) || !vector.every((x) => typeof x === 'number'))
      throw unsupported(`${what} other than a dense vector`);
    if (vector.length !== collection.size) {
      throw new QdrantFailure(
        400,
        `Wrong input: Vector dimension error: expected dim: ${collection.size}, got ${vector.length}`,
      );
    }
    return vector;
  }

  handle(
    operationId: string,
    params: Record<string, string>,
    query: Record<string, string>,
    body: Record<string, unknown>,
  ): unknown {
    const name = params.collection_name ?? '';
    switch (operationId) {
      case 'root':
        return { title: 'qdrant - vector search engine', version: '1.17.0', commit: null };
      case 'get_collections':
        return { collections: [...this.collections.keys()].map((n) => ({ name: n })) };
      case 'collection_exists':
        return { exists: this.collections.has(name) };
      case 'create_collection': {
        if (this.collections.has(name))
          throw new QdrantFailure(409, `Wrong input: Collection \`${name}\` already exists!`);
        const vectors = body.vectors as { size?: unknown; distance?: unknown } | undefined;
        if (typeof vectors?.size !== 'number') throw unsupported('collections without a single unnamed dense vector');
        this.collections.set(name, {
          size: vectors.size,
          distance: vectors.distance as Distance,
          points: new Map(),
          payloadIndexes: new Map(),
        });
        return true;
      }
      case 'delete_collection':
        return this.collections.delete(name);
      case 'get_collection':
        return this.#info(this.#get(name));
      case 'create_field_index': {
        const collection = this.#get(name);
        const schema = body.field_schema;
        const type =
          typeof schema === 'string'
            ? schema
            : isObject(schema) && typeof schema.type === 'string'
              ? schema.type
              : undefined;
        if (type === undefined) throw unsupported('field index without field_schema');
        collection.payloadIndexes.set(body.field_name as string, type);
        return this.#updateResult(query);
      }
      case 'upsert_points': {
        const collection = this.#get(name);
        const points: Array<{ id: unknown; vector: unknown; payload?: unknown }> = Array.isArray(body.points)
          ? (body.points as Array<{ id: unknown; vector: unknown; payload?: unknown }>)
          : isObject(body.batch)
            ? ((body.batch.ids as unknown[]) ?? []).map((id, i) => ({
                id,
                vector: (body.batch as { vectors: unknown[] }).vectors[i],
                payload: (body.batch as { payloads?: unknown[] | null }).payloads?.[i],
              }))
            : [];
        // Checked first: Qdrant rejects the whole batch when one vector is wrong.
        const vectors = points.map((p, i) => this.#vector(collection, p.vector, `points[${i}].vector`));
        const version = this.#operationId;
        points.forEach((p, i) => {
          collection.points.set(idKey(p.id), {
            id: typeof p.id === 'string' ? p.id.toLowerCase() : (p.id as number),
            vector: stored(collection.distance, vectors[i] ?? []),
            payload: isObject(p.payload) ? p.payload : {},
            version,
          });
        });
        return this.#updateResult(query);
      }
      case 'get_points': {
        const collection = this.#get(name);
        const ids = Array.isArray(body.ids) ? body.ids : [];
        return ids.flatMap((id) => {
          const point = collection.points.get(idKey(id));
          if (point === undefined) return [];
          return [
            {
              id: point.id,
              payload: selectPayload(point.payload, body.with_payload ?? true),
              ...(body.with_vector === true ? { vector: [...point.vector] } : {}),
            },
          ];
        });
      }
      case 'count_points': {
        const collection = this.#get(name);
        return { count: [...collection.points.values()].filter((p) => matchesFilter(p, body.filter)).length };
      }
      case 'query_points': {
        for (const field of ['prefetch', 'using', 'lookup_from', 'shard_key'] as const) {
          if (body[field] !== undefined && body[field] !== null) throw unsupported(`query with ${field}`);
        }
        const q = body.query;
        const vector = isObject(q) && 'nearest' in q ? q.nearest : q;
        if (vector === undefined || vector === null) throw unsupported('query without a vector');
        return { points: this.#nearest(this.#get(name), vector, body, false) };
      }
      case 'search_points':
        return this.#nearest(this.#get(name), body.vector, body, true);
      default:
        throw unsupported(`operation ${operationId}`);
    }
  }

  #nearest(
    collection: Collection,
    rawVector: unknown,
    body: Record<string, unknown>,
    payloadByDefault: boolean,
  ): unknown[] {
    const query = stored(collection.distance, this.#vector(collection, rawVector, 'query vector'));
    const limit = typeof body.limit === 'number' ? body.limit : 10;
    const offset = typeof body.offset === 'number' ? body.offset : 0;
    const threshold = typeof body.score_threshold === 'number' ? body.score_threshold : undefined;
    const closerFirst = higherIsCloser(collection.distance);
    const withPayload = body.with_payload ?? payloadByDefault;
    return [...collection.points.values()]
      .filter((p) => matchesFilter(p, body.filter))
      .map((p) => ({ point: p, score: similarity(collection.distance, query, p.vector) }))
      .filter(({ score }) => threshold === undefined || (closerFirst ? score >= threshold : score <= threshold))
      .sort((a, b) => (closerFirst ? b.score - a.score : a.score - b.score))
      .slice(offset, offset + limit)
      .map(({ point, score }) => ({
        id: point.id,
        version: point.version,
        score,
        payload: selectPayload(point.payload, withPayload),
        ...(body.with_vector === true ? { vector: [...point.vector] } : {}),
      }));
  }

  #info(collection: Collection): unknown {
    const points = [...collection.points.values()];
    return {
      status: 'green',
      optimizer_status: 'ok',
      indexed_vectors_count: 0,
      points_count: points.length,
      segments_count: 1,
      config: {
        params: {
          vectors: { size: collection.size, distance: collection.distance },
          shard_number: 1,
          replication_factor: 1,
          write_consistency_factor: 1,
          on_disk_payload: true,
        },
        hnsw_config: { m: 16, ef_construct: 100, full_scan_threshold: 10000, max_indexing_threads: 0, on_disk: false },
        optimizer_config: {
          deleted_threshold: 0.2,
          vacuum_min_vector_number: 1000,
          default_segment_number: 0,
          max_segment_size: null,
          memmap_threshold: null,
          indexing_threshold: 10000,
          flush_interval_sec: 5,
          max_optimization_threads: null,
        },
        wal_config: { wal_capacity_mb: 32, wal_segments_ahead: 0 },
        quantization_config: null,
      },
      payload_schema: Object.fromEntries(
        [...collection.payloadIndexes].map(([field, type]) => [
          field,
          { data_type: type, points: points.filter((p) => payloadValues(p.payload, field).length > 0).length },
        ]),
      ),
    };
  }
}

// ---------------------------------------------------------------- HTTP

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startQdrantServer(options: QdrantTestServerOptions = {}): Promise<QdrantTestServer> {
  const spec = specChecker();
  const qdrant = new InMemoryQdrant();
  const violations: Violation[] = [];
  const requests: RecordedRequest[] = [];
  let failures: { status: number; times: number } | undefined;

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const started = process.hrtime.bigint();
    const method = (request.method ?? 'GET').toLowerCase();
    const url = new URL(request.url ?? '/', 'http://qdrant.test');
    const path = url.pathname;
    const query = Object.fromEntries(url.searchParams);
    const text = await readBody(request);
    const violation = (kind: ViolationKind, message: string) =>
      violations.push({ kind, method: method.toUpperCase(), path, message });
    const found = spec.route(path);
    const operation = found?.route.operations[method];
    const record: RecordedRequest = {
      method: method.toUpperCase(),
      path,
      query,
      body: undefined,
      operationId: operation?.operationId,
      status: 0,
    };
    requests.push(record);

    const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      const time = Number(process.hrtime.bigint() - started) / 1e9;
      const body =
        status === 200
          ? operation?.operationId === 'root'
            ? payload
            : { result: payload, status: 'ok', time }
          : { status: { error: String(payload) }, time };
      if (operation !== undefined) {
        const drift = spec.checkResponse(operation, status, body);
        if (drift !== undefined) violation('response', drift);
      }
      record.status = status;
      response.writeHead(status, { 'content-type': 'application/json', ...headers });
      response.end(JSON.stringify(body));
    };

    if (options.apiKey !== undefined) {
      const bearer = request.headers.authorization?.replace(/^Bearer /, '');
      if (request.headers['api-key'] !== options.apiKey && bearer !== options.apiKey) {
        violation('auth', 'missing or wrong api key');
        return send(401, 'Must provide an API key or an Authorization bearer token');
      }
    }
    if (found === undefined || operation === undefined) {
      violation('route', `no ${method.toUpperCase()} ${path} in the Qdrant OpenAPI document`);
      return send(404, `Not found: ${method.toUpperCase()} ${path}`);
    }
    const parameterProblem = spec.checkParameters(operation, found.params, query);
    if (parameterProblem !== undefined) {
      violation('query', parameterProblem.message);
      return send(parameterProblem.status, parameterProblem.message);
    }
    let body: unknown = {};
    if (operation.requestBody !== undefined) {
      const contentType = request.headers['content-type'] ?? '';
      if (!contentType.startsWith('application/json')) {
        violation('body', `Content type error: expected application/json, got ${contentType || 'none'}`);
        return send(400, 'Content type error');
      }
      try {
        body = JSON.parse(text) as unknown;
      } catch (error) {
        violation('body', `Json deserialize error: ${(error as Error).message}`);
        return send(400, `Json deserialize error: ${(error as Error).message}`);
      }
      record.body = body;
      const bodyProblem = spec.checkBody(operation, body);
      if (bodyProblem !== undefined) {
        violation('body', bodyProblem.message);
        return send(bodyProblem.status, bodyProblem.message);
      }
    } else if (text !== '' && text !== '{}') {
      violation('body', `${operation.operationId} takes no request body`);
    }

    if (failures !== undefined && failures.times > 0) {
      const { status } = failures;
      failures.times -= 1;
      return send(status, `injected failure ${status}`, status === 429 ? { 'retry-after': '1' } : {});
    }
    try {
      const result = qdrant.handle(operation.operationId, found.params, query, isObject(body) ? body : {});
      send(200, options.rewriteResult === undefined ? result : options.rewriteResult(operation.operationId, result));
    } catch (error) {
      if (!(error instanceof QdrantFailure)) throw error;
      if (error.unsupported) violation('unsupported', error.message);
      send(error.status, error.message);
    }
  };

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      violations.push({
        kind: 'unsupported',
        method: request.method ?? '',
        path: request.url ?? '',
        message: `test server crashed: ${String(error)}`,
      });
      if (!response.headersSent) response.writeHead(500, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ status: { error: String(error) }, time: 0 }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    violations,
    requests,
    failNext(status: number, times = 1) {
      failures = { status, times };
    },
    collection: (name) => qdrant.collections.get(name),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error === undefined ? resolve() : reject(error)));
        // The client keeps sockets alive; close() would otherwise wait for them to time out.
        server.closeAllConnections();
      }),
  };
}
