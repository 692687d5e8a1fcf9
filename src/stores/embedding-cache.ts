/**
 * The embedding cache: vectors by `${model}:${errorHash}`, so a pattern is
 * embedded once per model however often it recurs. Two implementations, one
 * interface: Redis (server mode, shared by every instance) and a bounded
 * in-memory LRU (embedded mode).
 *
 * A cache is an optimization, never a dependency: when Redis is down or
 * slow, reads answer "miss" and writes are dropped, the failure is counted
 * and reported by the health check, and the caller carries on by computing
 * the embeddings. Only programmer errors (bad keys or vectors) throw.
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import type * as Ioredis from 'ioredis';
import { LRUCache } from 'lru-cache';
import type { Component, HealthCheck } from '../core/component.ts';
import type { Config } from '../core/config.ts';
import { classify, ErrorCodes, InputError, type ClassificationRule, type LogflowError } from '../core/errors.ts';

export interface EmbeddingCacheStats {
  readonly hits: number;
  readonly misses: number;
  /** Cache operations that failed and were served as misses (or dropped writes). */
  readonly errors: number;
}

export interface EmbeddingCacheEntry {
  readonly key: string;
  readonly vector: Float32Array;
}

export interface EmbeddingCache extends Component {
  /** One answer per key, in order: the cached vector or null. Never throws for an unavailable cache. */
  getMany(keys: readonly string[]): Promise<(Float32Array | null)[]>;
  /** Stores the vectors with the cache's TTL. Never throws for an unavailable cache. */
  setMany(entries: readonly EmbeddingCacheEntry[]): Promise<void>;
  stats(): EmbeddingCacheStats;
}

/**
 * The cache key of a pattern's embedding in one vector space: the model and,
 * when the embedder knows it, the dimension, so vectors of another model or
 * size are never served. A remote embedder learns its dimension from its
 * first answer, so its first batch reads keys without it (misses) and writes
 * with it (README.md, "Local embeddings").
 */
export function embeddingCacheKey(model: string, errorHash: string, dimension?: number): string {
  return dimension === undefined ? `${model}:${errorHash}` : `${model}/${dimension}:${errorHash}`;
}

export const DEFAULT_EMBEDDING_TTL_SECONDS = 7 * 24 * 60 * 60;

export interface EmbeddingTtlOptions {
  /** Default 7 days. */
  readonly ttlSeconds?: number;
  /** Sub-second TTLs (tests); exclusive with ttlSeconds. */
  readonly ttlMs?: number;
}

function resolveTtlMs(options: EmbeddingTtlOptions): number {
  if (options.ttlSeconds !== undefined && options.ttlMs !== undefined)
    throw new RangeError('embedding cache: give ttlSeconds or ttlMs, not both');
  const ms = options.ttlMs ?? (options.ttlSeconds ?? DEFAULT_EMBEDDING_TTL_SECONDS) * 1000;
  if (!Number.isSafeInteger(ms) || ms < 1)
    throw new RangeError(`embedding cache: the TTL must be a positive whole number of milliseconds, got ${ms}`);
  return ms;
}

function positiveInteger(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 1)
    throw new RangeError(`embedding cache: ${what} must be a positive integer, got ${value}`);
  return value;
}

function checkKeys(keys: readonly string[]): void {
  for (const key of keys) {
    if (typeof key !== 'string' || key === '')
      throw new InputError(`embedding cache keys must be non-empty strings, got ${JSON.stringify(key)}`, {
        stage: 'embed',
      });
  }
}

function checkEntries(entries: readonly EmbeddingCacheEntry[]): void {
  checkKeys(entries.map((e) => e.key));
  for (const { key, vector } of entries) {
    if (!(vector instanceof Float32Array) || vector.length === 0) {
      throw new InputError(`embedding cache: the vector for "${key}" must be a non-empty Float32Array`, {
        stage: 'embed',
      });
    }
  }
}

class Counters {
  hits = 0;
  misses = 0;
  errors = 0;

  count(results: readonly (Float32Array | null)[]): void {
    for (const r of results) {
      if (r === null) this.misses += 1;
      else this.hits += 1;
    }
  }

  snapshot(): EmbeddingCacheStats {
    return { hits: this.hits, misses: this.misses, errors: this.errors };
  }
}

// ---------------------------------------------------------------- Redis

/**
 * Redis failures by kind. Connection-level failures and a server that is
 * loading, read-only or out of memory are retriable outages; the rest say the
 * command or the configuration is wrong.
 */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);
export const redisErrorRules: readonly ClassificationRule[] = [
  { match: (e) => e.message === 'Command timed out', code: ErrorCodes.TIMEOUT, retriable: true },
  {
    match: (e) => typeof e.code === 'string' && NETWORK_CODES.has(e.code),
    code: ErrorCodes.SINK_UNAVAILABLE,
    retriable: true,
  },
  {
    match: (e) =>
      e.name === 'MaxRetriesPerRequestError' ||
      /Connection is closed|Stream isn't writeable|max retries per request/i.test(e.message),
    code: ErrorCodes.SINK_UNAVAILABLE,
    retriable: true,
  },
  {
    match: (e) => /^(LOADING|READONLY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|BUSY|OOM)\b/.test(e.message),
    code: ErrorCodes.SINK_UNAVAILABLE,
    retriable: true,
  },
  { match: (e) => /^(NOAUTH|WRONGPASS|NOPERM)\b/.test(e.message), code: ErrorCodes.CONFIG_INVALID, retriable: false },
  { match: (e) => /^(WRONGTYPE|ERR)\b/.test(e.message), code: ErrorCodes.SINK_REJECTED, retriable: false },
];

export function classifyRedisError(error: unknown): LogflowError {
  return classify(error, redisErrorRules, 'embed');
}

const littleEndian = os.endianness() === 'LE';

/** Vectors are stored as raw little-endian float32: 4 bytes per dimension, bit-exact. */
export function encodeVector(vector: Float32Array): Buffer {
  if (littleEndian) return Buffer.from(new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength));
  const out = Buffer.allocUnsafe(vector.length * 4);
  vector.forEach((v, i) => out.writeFloatLE(v, i * 4));
  return out;
}

/** null for a value that cannot be a vector (written by something else): it is treated as a miss. */
export function decodeVector(bytes: Buffer): Float32Array | null {
  if (bytes.byteLength === 0 || bytes.byteLength % 4 !== 0) return null;
  // A copy: the reply buffer's offset need not be 4-byte aligned.
  const out = new Float32Array(bytes.byteLength / 4);
  if (littleEndian) new Uint8Array(out.buffer).set(bytes);
  else for (let i = 0; i < out.length; i++) out[i] = bytes.readFloatLE(i * 4);
  return out;
}

export interface RedisEmbeddingCacheOptions extends EmbeddingTtlOptions {
  readonly url: string;
  /** Prepended to every key (default `logflow:embedding:`), so deployments and tests sharing a Redis stay apart. */
  readonly keyPrefix?: string;
  /** How long one cache operation may take before it counts as a miss (default 500 ms). */
  readonly commandTimeoutMs?: number;
  /** Told about every failure, for logs and metrics; the cache itself carries on. */
  readonly onError?: (error: LogflowError) => void;
  readonly name?: string;
}

export function createRedisEmbeddingCache(options: RedisEmbeddingCacheOptions): EmbeddingCache {
  const ttlMs = resolveTtlMs(options);
  const prefix = options.keyPrefix ?? 'logflow:embedding:';
  const timeoutMs = positiveInteger(options.commandTimeoutMs ?? 500, 'commandTimeoutMs');
  const counters = new Counters();
  let lastError: LogflowError | undefined;
  let closed = false;

  const { Redis } = loadIoredis();
  const redis = new Redis(options.url, {
    // A command waits for at most one reconnection attempt and the timeout:
    // during an outage the caller gets misses quickly instead of queueing.
    maxRetriesPerRequest: 1,
    commandTimeout: timeoutMs,
    connectTimeout: Math.max(timeoutMs, 1000),
    // Keeps reconnecting in the background, so the cache comes back with Redis.
    retryStrategy: (attempt) => Math.min(attempt * 100, 2000),
  });
  // Without a listener ioredis reports every failed reconnection on stderr.
  redis.on('error', (error: unknown) => {
    lastError = classifyRedisError(error);
  });

  const fail = (error: unknown): void => {
    const classified = classifyRedisError(error);
    lastError = classified;
    counters.errors += 1;
    options.onError?.(classified);
  };

  return {
    name: options.name ?? 'embedding-cache:redis',

    async getMany(keys) {
      checkKeys(keys);
      if (keys.length === 0) return [];
      let results: (Float32Array | null)[];
      try {
        const values = await redis.mgetBuffer(keys.map((k) => prefix + k));
        results = values.map((v) => (v === null ? null : decodeVector(v)));
      } catch (error) {
        fail(error);
        results = keys.map(() => null);
      }
      counters.count(results);
      return results;
    },

    async setMany(entries) {
      checkEntries(entries);
      if (entries.length === 0) return;
      const pipeline = redis.pipeline();
      for (const { key, vector } of entries) pipeline.set(prefix + key, encodeVector(vector), 'PX', ttlMs);
      try {
        const replies = await pipeline.exec();
        const failed = replies?.find(([error]) => error !== null);
        if (replies === null) fail(new Error('Connection is closed.'));
        else if (failed !== undefined) fail(failed[0]);
      } catch (error) {
        fail(error);
      }
    },

    stats: () => counters.snapshot(),

    async health(): Promise<HealthCheck> {
      if (closed) return { ok: false, detail: 'closed' };
      try {
        await redis.ping();
        return { ok: true };
      } catch (error) {
        const reason = classifyRedisError(error).message;
        const cause =
          lastError !== undefined && lastError.message !== reason ? ` (last error: ${lastError.message})` : '';
        return {
          ok: false,
          detail: `Redis unreachable: ${reason}${cause}; ${counters.errors} cache operations failed and were served as misses`,
        };
      }
    },

    async close() {
      if (closed) return;
      closed = true;
      if (redis.status === 'ready') {
        try {
          await redis.quit();
          return;
        } catch {
          // Fall through: a connection that cannot say goodbye is cut.
        }
      }
      redis.disconnect();
    },
  };
}

// ---------------------------------------------------------------- in memory

export interface MemoryEmbeddingCacheOptions extends EmbeddingTtlOptions {
  /** Default 100 000 vectors. */
  readonly maxEntries?: number;
  /** Bound on vector bytes plus key characters (2 bytes each); default 256 MiB. */
  readonly maxBytes?: number;
  /** Clock for TTLs, in milliseconds (tests); default performance.now. */
  readonly now?: () => number;
  readonly name?: string;
}

const entryBytes = (key: string, vector: Float32Array): number => vector.byteLength + key.length * 2;

export function createMemoryEmbeddingCache(options: MemoryEmbeddingCacheOptions = {}): EmbeddingCache {
  const ttlMs = resolveTtlMs(options);
  const counters = new Counters();
  let closed = false;
  const lru = new LRUCache<string, Float32Array>({
    max: positiveInteger(options.maxEntries ?? 100_000, 'maxEntries'),
    maxSize: positiveInteger(options.maxBytes ?? 256 * 1024 * 1024, 'maxBytes'),
    sizeCalculation: (vector, key) => entryBytes(key, vector),
    ttl: ttlMs,
    // lru-cache caches the clock for ttlResolution ms; an injected clock must be read every time.
    ...(options.now === undefined ? {} : { perf: { now: options.now }, ttlResolution: 0 }),
  });

  return {
    name: options.name ?? 'embedding-cache:memory',

    async getMany(keys) {
      checkKeys(keys);
      // Copies out, like Redis: a caller normalizing a vector in place must not change the cached one.
      const results = keys.map((key) => (closed ? null : (lru.get(key)?.slice() ?? null)));
      counters.count(results);
      return results;
    },

    async setMany(entries) {
      checkEntries(entries);
      if (closed) return;
      // A vector larger than maxBytes is not kept (lru-cache refuses it), which is a miss later, not an error.
      for (const { key, vector } of entries) lru.set(key, vector.slice());
    },

    stats: () => counters.snapshot(),

    async health() {
      return closed
        ? { ok: false, detail: 'closed' }
        : { ok: true, detail: `${lru.size} vectors, ${lru.calculatedSize} bytes` };
    },

    async close() {
      closed = true;
      lru.clear();
    },
  };
}

// ---------------------------------------------------------------- choice

export interface OpenEmbeddingCacheOptions extends EmbeddingTtlOptions {
  readonly keyPrefix?: string;
  readonly onError?: (error: LogflowError) => void;
  readonly maxEntries?: number;
  readonly maxBytes?: number;
}

/**
 * ioredis is loaded only when a Redis cache is opened. Merely importing
 * ioredis 6.0.0 made the normalizer about 2.6 times slower in the same
 * process (1.17 M -> 0.45 M lines/s over Loghub-2k, measured on this
 * machine), and every pipeline process imports this module through its
 * resources, ingest and embedded mode included.
 */
function loadIoredis(): typeof Ioredis {
  return createRequire(import.meta.url)('ioredis') as typeof Ioredis;
}

/** Redis when LOGFLOW_REDIS_URL is set, the in-memory LRU otherwise (README: the two modes). */
export function openEmbeddingCache(config: Config, options: OpenEmbeddingCacheOptions = {}): EmbeddingCache {
  const ttl = {
    ...(options.ttlSeconds === undefined ? {} : { ttlSeconds: options.ttlSeconds }),
    ...(options.ttlMs === undefined ? {} : { ttlMs: options.ttlMs }),
  };
  if (config.redis.url !== undefined) {
    return createRedisEmbeddingCache({
      url: config.redis.url,
      ...ttl,
      ...(options.keyPrefix === undefined ? {} : { keyPrefix: options.keyPrefix }),
      ...(options.onError === undefined ? {} : { onError: options.onError }),
    });
  }
  return createMemoryEmbeddingCache({
    ...ttl,
    ...(options.maxEntries === undefined ? {} : { maxEntries: options.maxEntries }),
    ...(options.maxBytes === undefined ? {} : { maxBytes: options.maxBytes }),
  });
}
