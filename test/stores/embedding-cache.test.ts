/**
 * Both embedding caches pass the same behaviour suite (the Redis one against
 * the real Redis the suite starts); then what only one of them has: Redis
 * storage format, prefixes and outages, LRU bounds against a reference model.
 */
import net from 'node:net';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../src/core/config.ts';
import { ErrorCodes, InputError, isRetriable, type LogflowError } from '../../src/core/errors.ts';
import {
  classifyRedisError,
  createMemoryEmbeddingCache,
  createRedisEmbeddingCache,
  DEFAULT_EMBEDDING_TTL_SECONDS,
  embeddingCacheKey,
  openEmbeddingCache,
  type EmbeddingCache,
  type EmbeddingTtlOptions,
} from '../../src/stores/embedding-cache.ts';
import { REDIS_URL, uniqueName } from '../support/services.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const bytesOf = (v: Float32Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);
const vector = (...values: number[]) => Float32Array.from(values);

/** Values where a lossy encoding (JSON, float64 round trips, NaN canonicalization) would show. */
const awkward = (() => {
  const v = vector(0, -0, 1.5, -2.25, Infinity, -Infinity, 1e-45, 3.4028234663852886e38, Math.PI, 0.1);
  const withNaNPayload = new Float32Array(11);
  withNaNPayload.set(v);
  new DataView(withNaNPayload.buffer).setUint32(40, 0x7fc00123, true);
  return withNaNPayload;
})();

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** A cache that is closed when the file's tests end. */
function track<T extends EmbeddingCache>(cache: T): T {
  cleanups.push(() => cache.close());
  return cache;
}

function describeCacheBehaviour(label: string, make: (ttl?: EmbeddingTtlOptions) => EmbeddingCache): void {
  describe(`${label} embedding cache`, () => {
    it('counts hits and misses per key', async () => {
      const cache = track(make());
      expect(await cache.getMany(['m:1', 'm:2'])).toEqual([null, null]);
      expect(cache.stats()).toEqual({ hits: 0, misses: 2, errors: 0 });
      await cache.setMany([{ key: 'm:1', vector: vector(1, 2, 3) }]);
      const results = await cache.getMany(['m:1', 'm:2', 'm:1']);
      expect(results).toEqual([vector(1, 2, 3), null, vector(1, 2, 3)]);
      expect(cache.stats()).toEqual({ hits: 2, misses: 3, errors: 0 });
      expect(await cache.getMany([])).toEqual([]);
      await cache.setMany([]);
      expect(cache.stats()).toEqual({ hits: 2, misses: 3, errors: 0 });
    });

    it('returns exactly the bytes it was given', async () => {
      const cache = track(make());
      await cache.setMany([{ key: 'awkward', vector: awkward }]);
      const [back] = await cache.getMany(['awkward']);
      expect(bytesOf(back!)).toEqual(bytesOf(awkward));

      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.float32Array({ minLength: 1, maxLength: 48 }), { minLength: 1, maxLength: 6 }),
          async (vectors) => {
            const entries = vectors.map((v, i) => ({ key: `prop:${i}`, vector: v }));
            await cache.setMany(entries);
            const got = await cache.getMany(entries.map((e) => e.key));
            got.forEach((g, i) => expect(bytesOf(g!)).toEqual(bytesOf(vectors[i]!)));
          },
        ),
        { numRuns: 40 },
      );
    });

    it('keeps its own copies, so callers may mutate vectors', async () => {
      const cache = track(make());
      const original = vector(1, 2, 3);
      await cache.setMany([{ key: 'copy', vector: original }]);
      original[0] = 99;
      const [first] = await cache.getMany(['copy']);
      first![1] = 42;
      expect(await cache.getMany(['copy'])).toEqual([vector(1, 2, 3)]);
    });

    it('forgets entries after the TTL', async () => {
      const cache = track(make({ ttlMs: 150 }));
      await cache.setMany([{ key: 'ttl', vector: vector(1) }]);
      expect(await cache.getMany(['ttl'])).toEqual([vector(1)]);
      await sleep(400);
      expect(await cache.getMany(['ttl'])).toEqual([null]);
    });

    it('rejects programmer errors instead of caching them', async () => {
      const cache = track(make());
      await expect(cache.getMany([''])).rejects.toBeInstanceOf(InputError);
      await expect(cache.setMany([{ key: 'k', vector: [1, 2] as unknown as Float32Array }])).rejects.toBeInstanceOf(
        InputError,
      );
      await expect(cache.setMany([{ key: 'k', vector: new Float32Array(0) }])).rejects.toBeInstanceOf(InputError);
      expect(() => make({ ttlMs: 0 })).toThrow(RangeError);
      expect(() => make({ ttlMs: 10, ttlSeconds: 10 })).toThrow(RangeError);
    });

    it('is healthy while open, not after close, and misses after close', async () => {
      const cache = make();
      await cache.setMany([{ key: 'h', vector: vector(1) }]);
      expect((await cache.health()).ok).toBe(true);
      await cache.close();
      expect(await cache.health()).toMatchObject({ ok: false });
      expect(await cache.getMany(['h'])).toEqual([null]);
      await cache.close();
    });
  });
}

/** Every prefix this file writes under; their keys are deleted at the end (the default TTL is a week). */
const prefixes: string[] = [];
function freshPrefix(): string {
  const prefix = `${uniqueName('logflow-test-emb')}:`;
  prefixes.push(prefix);
  return prefix;
}
cleanups.unshift(async () => {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
  try {
    for (const prefix of prefixes) {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
    }
  } finally {
    await redis.quit();
  }
});

const redisCache = (ttl: EmbeddingTtlOptions = {}, prefix = freshPrefix()) =>
  createRedisEmbeddingCache({ url: REDIS_URL, keyPrefix: prefix, ...ttl });

describeCacheBehaviour('Redis', (ttl) => redisCache(ttl));
describeCacheBehaviour('in-memory LRU', (ttl) => createMemoryEmbeddingCache(ttl));

describe('Redis embedding cache specifics', () => {
  const raw = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 2 });
  cleanups.push(async () => {
    await raw.quit();
  });

  it('stores raw little-endian float32 under the prefix, with the default TTL of 7 days', async () => {
    const prefix = freshPrefix();
    const cache = track(redisCache({}, prefix));
    const key = embeddingCacheKey('jina-embeddings-v2-base-en', '18446744073709551615');
    expect(key).toBe('jina-embeddings-v2-base-en:18446744073709551615');
    const v = vector(1, -0.5, 3.25);
    await cache.setMany([{ key, vector: v }]);

    const stored = await raw.getBuffer(prefix + key);
    const expected = Buffer.alloc(12);
    [1, -0.5, 3.25].forEach((x, i) => expected.writeFloatLE(x, i * 4));
    expect(stored).toEqual(expected);
    const ttl = await raw.pttl(prefix + key);
    expect(ttl).toBeGreaterThan((DEFAULT_EMBEDDING_TTL_SECONDS - 60) * 1000);
    expect(ttl).toBeLessThanOrEqual(DEFAULT_EMBEDDING_TTL_SECONDS * 1000);
  });

  it('keeps caches with different prefixes apart', async () => {
    const a = track(redisCache());
    const b = track(redisCache());
    await a.setMany([{ key: 'shared', vector: vector(1) }]);
    expect(await b.getMany(['shared'])).toEqual([null]);
    await b.setMany([{ key: 'shared', vector: vector(2) }]);
    expect(await a.getMany(['shared'])).toEqual([vector(1)]);
    expect(await b.getMany(['shared'])).toEqual([vector(2)]);
  });

  it('treats a value that cannot be a vector as a miss', async () => {
    const prefix = freshPrefix();
    const cache = track(redisCache({}, prefix));
    await raw.set(`${prefix}odd`, Buffer.from([1, 2, 3]), 'PX', 60_000);
    expect(await cache.getMany(['odd'])).toEqual([null]);
    expect(cache.stats()).toEqual({ hits: 0, misses: 1, errors: 0 });
  });

  it('degrades to misses when Redis is unreachable: no throw, errors counted, health failing', async () => {
    const reported: LogflowError[] = [];
    const cache = track(
      createRedisEmbeddingCache({
        url: `redis://127.0.0.1:${await closedPort()}`,
        commandTimeoutMs: 300,
        onError: (e) => reported.push(e),
      }),
    );
    expect(await cache.getMany(['a', 'b'])).toEqual([null, null]);
    await cache.setMany([{ key: 'a', vector: vector(1) }]);
    expect(cache.stats()).toEqual({ hits: 0, misses: 2, errors: 2 });
    expect(reported).toHaveLength(2);
    for (const error of reported) {
      // Refused connections or the command timeout, whichever comes first: both are outages.
      expect([ErrorCodes.SINK_UNAVAILABLE, ErrorCodes.TIMEOUT]).toContain(error.code);
      expect(isRetriable(error)).toBe(true);
    }
    const health = await cache.health();
    expect(health.ok).toBe(false);
    expect(health.detail).toMatch(/Redis unreachable.*2 cache operations failed/);
  });

  it('recovers by itself when Redis comes back', async () => {
    const proxy = await startProxy();
    cleanups.push(() => proxy.stop());
    const cache = track(
      createRedisEmbeddingCache({
        url: `redis://127.0.0.1:${proxy.port}`,
        keyPrefix: freshPrefix(),
        commandTimeoutMs: 300,
      }),
    );
    await cache.setMany([{ key: 'k', vector: vector(7) }]);
    expect(await cache.getMany(['k'])).toEqual([vector(7)]);

    await proxy.stop();
    expect(await cache.getMany(['k'])).toEqual([null]);
    expect(cache.stats().errors).toBe(1);
    expect((await cache.health()).ok).toBe(false);

    await proxy.start();
    await vi.waitFor(async () => expect((await cache.health()).ok).toBe(true), { timeout: 10_000, interval: 100 });
    expect(await cache.getMany(['k'])).toEqual([vector(7)]);
    expect(cache.stats()).toMatchObject({ hits: 2, misses: 1 });
  });

  it('classifies Redis failures from a table', () => {
    const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });
    const cases: Array<[Error, string, boolean]> = [
      [withCode('connect ECONNREFUSED 127.0.0.1:1', 'ECONNREFUSED'), ErrorCodes.SINK_UNAVAILABLE, true],
      [withCode('read ECONNRESET', 'ECONNRESET'), ErrorCodes.SINK_UNAVAILABLE, true],
      [new Error('Connection is closed.'), ErrorCodes.SINK_UNAVAILABLE, true],
      [new Error('Command timed out'), ErrorCodes.TIMEOUT, true],
      [new Error('LOADING Redis is loading the dataset in memory'), ErrorCodes.SINK_UNAVAILABLE, true],
      [new Error("OOM command not allowed when used memory > 'maxmemory'."), ErrorCodes.SINK_UNAVAILABLE, true],
      [new Error('NOAUTH Authentication required.'), ErrorCodes.CONFIG_INVALID, false],
      [new Error('WRONGTYPE Operation against a key holding the wrong kind of value'), ErrorCodes.SINK_REJECTED, false],
      [new Error('something else entirely'), ErrorCodes.INTERNAL, false],
    ];
    for (const [error, code, retriable] of cases) {
      const classified = classifyRedisError(error);
      expect([error.message, classified.code, classified.retriable, classified.stage]).toEqual([
        error.message,
        code,
        retriable,
        'embed',
      ]);
      expect(classified.cause).toBe(error);
    }
  });
});

describe('in-memory embedding cache specifics', () => {
  const dims = (n: number, fill: number) => new Float32Array(n).fill(fill);

  it('evicts least recently used entries exactly like a reference LRU bounded by entries and bytes', async () => {
    const keys = ['a', 'b', 'c', 'd', 'e'];
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('set' as const),
        key: fc.constantFrom(...keys),
        dims: fc.integer({ min: 1, max: 12 }),
        fill: fc.integer({ min: 0, max: 9 }),
      }),
      fc.record({ kind: fc.constant('get' as const), keys: fc.array(fc.constantFrom(...keys), { maxLength: 3 }) }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 6, max: 120 }),
        fc.array(op, { maxLength: 40 }),
        async (maxEntries, maxBytes, ops) => {
          const cache = createMemoryEmbeddingCache({ maxEntries, maxBytes });
          // Reference: a Map in recency order (oldest first) of key -> [bytes, vector].
          const model = new Map<string, [number, Float32Array]>();
          const total = () => [...model.values()].reduce((sum, [bytes]) => sum + bytes, 0);
          for (const o of ops) {
            if (o.kind === 'set') {
              const v = dims(o.dims, o.fill);
              const bytes = v.byteLength + o.key.length * 2;
              model.delete(o.key);
              if (bytes <= maxBytes) {
                model.set(o.key, [bytes, v]);
                while (model.size > maxEntries || total() > maxBytes) model.delete(model.keys().next().value!);
              }
              await cache.setMany([{ key: o.key, vector: v }]);
            } else {
              const expected = o.keys.map((k) => {
                const hit = model.get(k);
                if (hit === undefined) return null;
                model.delete(k);
                model.set(k, hit);
                return hit[1];
              });
              expect(await cache.getMany(o.keys)).toEqual(expected);
            }
          }
          expect(await cache.getMany(keys)).toEqual(keys.map((k) => model.get(k)?.[1] ?? null));
          await cache.close();
        },
      ),
      { numRuns: 200 },
    );
  });

  it('expires by the injected clock, strictly after the TTL', async () => {
    let now = 1_000_000;
    const cache = track(createMemoryEmbeddingCache({ ttlMs: 1_000, now: () => now }));
    await cache.setMany([{ key: 'k', vector: vector(1) }]);
    now += 1_000;
    expect(await cache.getMany(['k'])).toEqual([vector(1)]);
    now += 1;
    expect(await cache.getMany(['k'])).toEqual([null]);
  });

  it('is what openEmbeddingCache picks without LOGFLOW_REDIS_URL, and Redis with it', async () => {
    const memory = track(openEmbeddingCache(loadConfig({})));
    expect(memory.name).toBe('embedding-cache:memory');
    const redis = track(openEmbeddingCache(loadConfig({ LOGFLOW_REDIS_URL: REDIS_URL }), { keyPrefix: freshPrefix() }));
    expect(redis.name).toBe('embedding-cache:redis');
    await redis.setMany([{ key: 'x', vector: vector(5) }]);
    expect(await redis.getMany(['x'])).toEqual([vector(5)]);
  });
});

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A TCP proxy to the test Redis that can be stopped (cutting every connection) and started again on the same port. */
async function startProxy(): Promise<{ port: number; stop(): Promise<void>; start(): Promise<void> }> {
  const target = new URL(REDIS_URL);
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  let port = 0;
  const start = async () => {
    const s = net.createServer((client) => {
      const upstream = net.connect(Number(target.port || 6379), target.hostname);
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('error', () => undefined);
        socket.on('close', () => {
          sockets.delete(socket);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => s.listen(port, '127.0.0.1', resolve));
    port = (s.address() as net.AddressInfo).port;
    server = s;
  };
  const stop = async () => {
    const s = server;
    server = undefined;
    for (const socket of sockets) socket.destroy();
    if (s !== undefined) await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  await start();
  return {
    get port() {
      return port;
    },
    stop,
    start,
  };
}
