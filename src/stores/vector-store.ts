/**
 * The vector store every pipeline sees: one point per error pattern, searched
 * by cosine similarity. Qdrant serves it in server mode, a ClickHouse table
 * with an HNSW index in embedded mode; both run the same contract suite.
 *
 * Validation lives here so both adapters reject the same inputs with the same
 * messages before anything reaches the wire.
 */
import { v5 as uuidv5 } from 'uuid';
import type { Component } from '../core/component.ts';
import { classify, ErrorCodes, InputError, LogflowError, type ClassificationRule } from '../core/errors.ts';

export interface PatternPayload {
  /** The pattern's UInt64 hash in canonical decimal form (no sign, no leading zeros). */
  readonly error_hash: string;
  readonly template: string;
  readonly service: string;
  readonly level: string;
  /** ISO-8601; stores keep it with millisecond precision in UTC (`toISOString()` form). */
  readonly first_seen: string;
  /**
   * The embedder that made the vector (Embedder.model): each point says which space it belongs to. Points written
   * before the model was stored read back with ''.
   */
  readonly model: string;
}

export interface VectorPoint {
  readonly errorHash: string;
  readonly vector: readonly number[];
  readonly payload: PatternPayload;
}

export interface VectorMatch {
  /** `pointIdFor(errorHash)`. */
  readonly id: string;
  readonly errorHash: string;
  /** Cosine similarity in [-1, 1]; higher is closer. */
  readonly score: number;
  readonly payload: PatternPayload;
}

export interface VectorSearch {
  /** 1..MAX_SEARCH_LIMIT. */
  readonly limit: number;
  readonly filter?: { readonly service?: string; readonly level?: string };
  /** Only matches scoring at least this (inclusive), in [-1, 1]. */
  readonly minScore?: number;
  /** Leaves this pattern out, e.g. the pattern whose neighbours are asked for. */
  readonly excludeErrorHash?: string;
}

export interface VectorStore extends Component {
  /**
   * Creates the collection (and its payload indexes) when missing. An existing
   * collection with another dimension is a CONFIG_INVALID error: the
   * embedding model changed, and mixing dimensions would corrupt every search.
   */
  ensureCollection(dimension: number): Promise<void>;
  /** Idempotent: a point's id is derived from its error hash, so writing it again replaces it. */
  upsert(points: readonly VectorPoint[]): Promise<void>;
  /** Ordered by score, highest first. */
  search(vector: readonly number[], options: VectorSearch): Promise<VectorMatch[]>;
  count(): Promise<number>;
  /**
   * Which of these patterns have a point (at most MAX_LOOKUP_HASHES at once), made by `model` when it is given: what
   * a re-embedding still owes, including points another model (or a writer that stored no model) left in the
   * collection.
   */
  existing(errorHashes: readonly string[], model?: string): Promise<Set<string>>;
}

export const DEFAULT_COLLECTION = 'log_embeddings';

/**
 * The collection of one model's vectors beside `base` (LOGFLOW_QDRANT_COLLECTION):
 * `base_<model>_<dimension>`, an identifier both stores accept. Which
 * embedders get one of their own is src/app/resources.ts's vectorCollection.
 */
export function collectionForModel(base: string, model: string, dimension: number): string {
  const slug = model
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return `${base}_${slug}_${dimension}`;
}
export const MAX_SEARCH_LIMIT = 1000;
/** Bounds one `existing` request (its ids travel in one body or query parameter). */
export const MAX_LOOKUP_HASHES = 10_000;
/** Qdrant's own upper bound for a dense vector. */
export const MAX_DIMENSION = 65536;

/**
 * Namespace of the UUIDv5 point ids. Changing it would orphan every stored
 * point (and every `error_patterns.qdrant_point_id`), so it is a constant,
 * not configuration.
 */
export const POINT_ID_NAMESPACE = '4330b4cd-eb27-43ee-a7e7-aeecff7d88c4';

const UINT64_MAX = 18446744073709551615n;
const canonicalDecimal = /^(0|[1-9][0-9]{0,19})$/;
/** DateTime64's range: the ClickHouse store could not keep a first_seen outside it. */
const FIRST_SEEN_MIN = Date.UTC(1900, 0, 1);
const FIRST_SEEN_MAX = Date.UTC(2300, 0, 1) - 1;
const isoDateTime = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?$/;

/** Whether `value` is a UInt64 in canonical decimal form; the canonical form keeps one id per hash. */
export function isErrorHash(value: unknown): value is string {
  return typeof value === 'string' && canonicalDecimal.test(value) && BigInt(value) <= UINT64_MAX;
}

function checkErrorHash(value: unknown, what: string): string {
  if (!isErrorHash(value)) {
    throw new InputError(`${what} must be a UInt64 in decimal without leading zeros, got ${JSON.stringify(value)}`, {
      stage: 'sink',
    });
  }
  return value;
}

/** The point id of a pattern: UUIDv5 of its error hash, so every writer derives the same id. */
export function pointIdFor(errorHash: string): string {
  return uuidv5(checkErrorHash(errorHash, 'error_hash'), POINT_ID_NAMESPACE);
}

export function checkDimension(dimension: unknown): number {
  if (typeof dimension !== 'number' || !Number.isInteger(dimension) || dimension < 1 || dimension > MAX_DIMENSION) {
    throw new InputError(`dimension must be an integer between 1 and ${MAX_DIMENSION}, got ${String(dimension)}`, {
      stage: 'sink',
    });
  }
  return dimension;
}

/**
 * Both stores keep Float32 components, so a component must survive that
 * conversion; and cosine similarity is undefined for a zero vector.
 */
export function checkVector(vector: unknown, dimension: number, what: string): number[] {
  if (!Array.isArray(vector) || vector.length === 0) {
    throw new InputError(`${what} must be a non-empty array of numbers`, { stage: 'sink' });
  }
  if (vector.length !== dimension) {
    throw new InputError(`${what} has ${vector.length} dimensions, the collection has ${dimension}`, { stage: 'sink' });
  }
  let nonZero = false;
  vector.forEach((component: unknown, index) => {
    if (typeof component !== 'number' || !Number.isFinite(Math.fround(component))) {
      throw new InputError(`${what}[${index}] must be a finite number within Float32 range, got ${String(component)}`, {
        stage: 'sink',
      });
    }
    if (Math.fround(component) !== 0) nonZero = true;
  });
  if (!nonZero) throw new InputError(`${what} is all zeros: cosine similarity is undefined for it`, { stage: 'sink' });
  return vector as number[];
}

function checkText(value: unknown, what: string, allowEmpty: boolean): string {
  if (typeof value !== 'string' || (!allowEmpty && value === '')) {
    throw new InputError(`${what} must be a ${allowEmpty ? '' : 'non-empty '}string, got ${JSON.stringify(value)}`, {
      stage: 'sink',
    });
  }
  return value;
}

/** Canonical `first_seen`: the ClickHouse store keeps DateTime64(3, 'UTC'), so both stores return this form. */
export function canonicalFirstSeen(value: unknown, what = 'first_seen'): string {
  const text = checkText(value, what, false);
  const fields = isoDateTime
    .exec(text)
    ?.slice(1)
    .map((f) => Number(f ?? 0));
  // Date.parse rolls 2024-02-31 over into March instead of refusing it.
  const [year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0] = fields ?? [];
  const valid =
    fields !== undefined &&
    month >= 1 &&
    month <= 12 &&
    day >= 1 &&
    day <= new Date(Date.UTC(year, month, 0)).getUTCDate() &&
    hour <= 23 &&
    minute <= 59 &&
    second <= 59;
  // Without an offset, UTC (as ClickHouse reads it), not the local time zone Date.parse would assume.
  const zoned = /(Z|[+-]\d{2}:?\d{2})$/.test(text) ? text : `${text}Z`;
  const time = valid ? Date.parse(zoned.replace(' ', 'T')) : Number.NaN;
  if (Number.isNaN(time))
    throw new InputError(`${what} must be an ISO-8601 date-time, got ${JSON.stringify(value)}`, { stage: 'sink' });
  if (time < FIRST_SEEN_MIN || time > FIRST_SEEN_MAX)
    throw new InputError(`${what} must be between 1900 and 2299, got ${text}`, { stage: 'sink' });
  return new Date(time).toISOString();
}

function checkPayload(payload: unknown, errorHash: string, what: string): PatternPayload {
  if (payload === null || typeof payload !== 'object')
    throw new InputError(`${what}.payload must be an object`, { stage: 'sink' });
  const p = payload as Record<string, unknown>;
  if (p.error_hash !== errorHash) {
    throw new InputError(
      `${what}.payload.error_hash (${JSON.stringify(p.error_hash)}) differs from errorHash (${errorHash})`,
      { stage: 'sink' },
    );
  }
  return {
    error_hash: errorHash,
    template: checkText(p.template, `${what}.payload.template`, true),
    service: checkText(p.service, `${what}.payload.service`, false),
    level: checkText(p.level, `${what}.payload.level`, false),
    first_seen: canonicalFirstSeen(p.first_seen, `${what}.payload.first_seen`),
    model: checkText(p.model, `${what}.payload.model`, false),
  };
}

/** The hashes of an `existing` request, checked like every other input before anything reaches the wire. */
export function checkLookup(errorHashes: unknown): string[] {
  if (!Array.isArray(errorHashes) || errorHashes.length > MAX_LOOKUP_HASHES)
    throw new InputError(`errorHashes must be an array of at most ${MAX_LOOKUP_HASHES} hashes`, { stage: 'sink' });
  return errorHashes.map((h: unknown, i) => checkErrorHash(h, `errorHashes[${i}]`));
}

/**
 * Validates every point before any is written (a batch is rejected whole,
 * never half-written) and keeps the last point of each error hash, since a
 * store given one id twice in one batch would otherwise pick a winner
 * arbitrarily.
 */
export function checkPoints(points: unknown, dimension: number): VectorPoint[] {
  if (!Array.isArray(points)) throw new InputError('points must be an array', { stage: 'sink' });
  const byHash = new Map<string, VectorPoint>();
  points.forEach((point: unknown, index) => {
    const what = `points[${index}]`;
    if (point === null || typeof point !== 'object')
      throw new InputError(`${what} must be an object`, { stage: 'sink' });
    const p = point as Record<string, unknown>;
    const errorHash = checkErrorHash(p.errorHash, `${what}.errorHash`);
    const vector = checkVector(p.vector, dimension, `${what}.vector`);
    const payload = checkPayload(p.payload, errorHash, what);
    byHash.delete(errorHash);
    byHash.set(errorHash, { errorHash, vector, payload });
  });
  return [...byHash.values()];
}

export interface CheckedSearch {
  readonly vector: number[];
  readonly limit: number;
  readonly service: string | undefined;
  readonly level: string | undefined;
  readonly minScore: number | undefined;
  readonly excludeErrorHash: string | undefined;
}

export function checkSearchOptions(options: unknown): Omit<CheckedSearch, 'vector'> {
  if (options === null || typeof options !== 'object')
    throw new InputError('search options must be an object', { stage: 'sink' });
  const o = options as Record<string, unknown>;
  if (typeof o.limit !== 'number' || !Number.isInteger(o.limit) || o.limit < 1 || o.limit > MAX_SEARCH_LIMIT) {
    throw new InputError(`limit must be an integer between 1 and ${MAX_SEARCH_LIMIT}, got ${String(o.limit)}`, {
      stage: 'sink',
    });
  }
  if (o.minScore !== undefined && (typeof o.minScore !== 'number' || !(o.minScore >= -1 && o.minScore <= 1))) {
    throw new InputError(`minScore must be a number between -1 and 1 (cosine similarity), got ${String(o.minScore)}`, {
      stage: 'sink',
    });
  }
  const filter = (o.filter ?? {}) as Record<string, unknown>;
  if (typeof filter !== 'object') throw new InputError('filter must be an object', { stage: 'sink' });
  return {
    limit: o.limit,
    service: filter.service === undefined ? undefined : checkText(filter.service, 'filter.service', false),
    level: filter.level === undefined ? undefined : checkText(filter.level, 'filter.level', false),
    minScore: o.minScore as number | undefined,
    excludeErrorHash:
      o.excludeErrorHash === undefined ? undefined : checkErrorHash(o.excludeErrorHash, 'excludeErrorHash'),
  };
}

export function dimensionMismatch(collection: string, existing: number, requested: number): LogflowError {
  return new LogflowError(
    ErrorCodes.CONFIG_INVALID,
    `vector collection "${collection}" holds ${existing}-dimensional vectors, but ${requested} dimensions were requested: ` +
      'the embedding model changed; use another collection name or drop the collection and re-vectorize',
    { stage: 'sink', details: { collection, existing, requested } },
  );
}

export function missingCollection(collection: string): LogflowError {
  return new LogflowError(
    ErrorCodes.SINK_REJECTED,
    `vector collection "${collection}" does not exist: call ensureCollection(dimension) first`,
    {
      stage: 'sink',
      details: { collection },
    },
  );
}

export function closedStore(name: string): LogflowError {
  return new LogflowError(ErrorCodes.SHUTDOWN, `${name} is closed`, { stage: 'sink' });
}

/** Socket-level failures: the request may never have reached the store, so trying again is safe and useful. */
const networkErrorCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

/** Looks through `cause` chains too: fetch reports `TypeError: fetch failed` with the socket error as its cause. */
export function isNetworkError(error: unknown): boolean {
  for (
    let e = error, depth = 0;
    e !== null && typeof e === 'object' && depth < 5;
    e = (e as { cause?: unknown }).cause, depth++
  ) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && networkErrorCodes.has(code)) return true;
  }
  return false;
}

export function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}

/**
 * Classifies a library error with the adapter's table and names the store and
 * operation in the message, so a dead-letter reason says where it failed.
 */
export function storeError(
  error: unknown,
  rules: readonly ClassificationRule[],
  context: string,
  describe: (error: unknown) => string = (e) => (e instanceof Error ? e.message : String(e)),
): LogflowError {
  if (error instanceof LogflowError) return error;
  const classified = classify(error, rules, 'sink');
  return new LogflowError(classified.code, `${context}: ${describe(error)}`, {
    retriable: classified.retriable,
    stage: 'sink',
    cause: error,
  });
}
