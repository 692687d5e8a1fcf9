/**
 * The Qdrant adapter against the local schema-checking Qdrant server
 * (test/support/qdrant-server.ts): the shared contract, then what is
 * Qdrant's own (wire format, batching, payload indexes, error mapping).
 * Every test ends with no recorded schema violation.
 */
import { QdrantClientTimeoutError } from '@qdrant/js-client-rest';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { classify, ErrorCodes } from '../../src/core/errors.ts';
import { PAYLOAD_INDEXES, QdrantVectorStore, qdrantErrorRules } from '../../src/stores/qdrant.ts';
import type { VectorPoint, VectorStore } from '../../src/stores/vector-store.ts';
import { startQdrantServer, type QdrantTestServer } from '../support/qdrant-server.ts';
import { vectorStoreContract } from './vector-store.contract.ts';

let collections = 0;
const uniqueCollection = () => `log_embeddings_${process.pid}_${++collections}`;

vectorStoreContract('QdrantVectorStore (schema-checking test server)', async () => {
  const server = await startQdrantServer();
  const collection = uniqueCollection();
  const stores: VectorStore[] = [new QdrantVectorStore({ url: server.url, collection })];
  return {
    store: stores[0] as VectorStore,
    reopen: async () => {
      const store = new QdrantVectorStore({ url: server.url, collection });
      stores.push(store);
      return store;
    },
    cleanup: async () => {
      await Promise.all(stores.map((s) => s.close()));
      await server.close();
      expect(server.violations).toEqual([]);
    },
  };
});

function pattern(errorHash: string, vector: readonly number[], service = 'checkout'): VectorPoint {
  return {
    errorHash,
    vector,
    payload: {
      error_hash: errorHash,
      template: `t ${errorHash}`,
      service,
      level: 'ERROR',
      first_seen: '2024-05-01T00:00:00.000Z',
      model: 'test-model',
    },
  };
}

describe('QdrantVectorStore: Qdrant specifics', () => {
  let server: QdrantTestServer | undefined;

  async function start(options: Parameters<typeof startQdrantServer>[0] = {}): Promise<QdrantTestServer> {
    server = await startQdrantServer(options);
    return server;
  }

  afterEach(async () => {
    const current = server;
    server = undefined;
    if (current === undefined) return;
    await current.close();
    expect(current.violations).toEqual([]);
  });

  it('creates a Cosine collection of the dimension with keyword indexes on the filtered fields', async () => {
    const s = await start();
    const store = new QdrantVectorStore({ url: s.url, collection: 'patterns' });
    await store.ensureCollection(12);
    const collection = s.collection('patterns');
    expect(collection?.size).toBe(12);
    expect(collection?.distance).toBe('Cosine');
    expect(Object.fromEntries(collection?.payloadIndexes ?? [])).toEqual(
      Object.fromEntries(PAYLOAD_INDEXES.map((f) => [f, 'keyword'])),
    );
    const created = s.requests.filter((r) => r.operationId === 'create_field_index');
    await store.ensureCollection(12);
    expect(s.requests.filter((r) => r.operationId === 'create_field_index')).toHaveLength(created.length);
  });

  it('upserts in batches of batchSize, each waiting for the write', async () => {
    const s = await start();
    const store = new QdrantVectorStore({ url: s.url, collection: 'patterns' });
    await store.ensureCollection(3);
    await store.upsert(Array.from({ length: 600 }, (_, i) => pattern(String(i + 1), [1, i, 600 - i])));
    const upserts = s.requests.filter((r) => r.operationId === 'upsert_points');
    expect(upserts.map((r) => (r.body as { points: unknown[] }).points.length)).toEqual([256, 256, 88]);
    expect(upserts.every((r) => r.query.wait === 'true' && r.status === 200)).toBe(true);
    expect(await store.count()).toBe(600);
  });

  it('sends filters as must / must_not keyword matches and minScore as score_threshold', async () => {
    const s = await start();
    const store = new QdrantVectorStore({ url: s.url, collection: 'patterns' });
    await store.ensureCollection(2);
    await store.search([1, 0], {
      limit: 3,
      filter: { service: 'checkout', level: 'WARN' },
      excludeErrorHash: '42',
      minScore: 0.25,
    });
    const [query] = s.requests.filter((r) => r.operationId === 'query_points');
    expect(query?.body).toEqual({
      query: [1, 0],
      limit: 3,
      with_payload: true,
      with_vector: false,
      filter: {
        must: [
          { key: 'service', match: { value: 'checkout' } },
          { key: 'level', match: { value: 'WARN' } },
        ],
        must_not: [{ key: 'error_hash', match: { value: '42' } }],
      },
      score_threshold: 0.25,
    });
  });

  it('survives another instance creating the collection between its check and its create', async () => {
    let hidden = true;
    const s = await start({
      rewriteResult: (operationId, result) => {
        // Hides the collection from the second instance's first check only.
        if (operationId !== 'collection_exists' || !hidden || !(result as { exists: boolean }).exists) return result;
        hidden = false;
        return { exists: false };
      },
    });
    await new QdrantVectorStore({ url: s.url, collection: 'patterns' }).ensureCollection(3);
    const store = new QdrantVectorStore({ url: s.url, collection: 'patterns' });
    await store.ensureCollection(3);
    expect(s.requests.filter((r) => r.operationId === 'create_collection').map((r) => r.status)).toEqual([200, 409]);
    await store.upsert([pattern('1', [1, 0, 0])]);
    expect(await store.count()).toBe(1);
  });

  it('refuses a collection that uses another distance', async () => {
    const s = await start();
    const create = (name: string, vectors: unknown) =>
      fetch(`${s.url}/collections/${name}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ vectors }),
      });
    expect((await create('dot', { size: 3, distance: 'Dot' })).status).toBe(200);
    await expect(new QdrantVectorStore({ url: s.url, collection: 'dot' }).ensureCollection(3)).rejects.toMatchObject({
      code: ErrorCodes.CONFIG_INVALID,
      message: expect.stringMatching(/uses Dot distance; logflow needs Cosine/),
    });
  });

  it('sends the API key', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      const s = await start({ apiKey: 'secret' });
      const store = new QdrantVectorStore({ url: s.url, apiKey: 'secret', collection: 'patterns' });
      await store.ensureCollection(3);
      expect(await store.count()).toBe(0);
      const intruder = new QdrantVectorStore({ url: s.url, apiKey: 'wrong', collection: 'patterns' });
      await expect(intruder.count()).rejects.toMatchObject({
        code: ErrorCodes.SINK_REJECTED,
        retriable: false,
        message: expect.stringMatching(/HTTP 401/),
      });
      // The rejected request is the point of this test, not a mistake of the adapter.
      expect(s.violations.map((v) => v.kind)).toEqual(['auth']);
      s.violations.length = 0;
    } finally {
      warn.mockRestore();
    }
  });

  const failures: ReadonlyArray<readonly [number, string, boolean, RegExp]> = [
    [503, ErrorCodes.SINK_UNAVAILABLE, true, /HTTP 503 Service Unavailable: injected failure 503/],
    [500, ErrorCodes.SINK_UNAVAILABLE, true, /HTTP 500/],
    [429, ErrorCodes.SINK_UNAVAILABLE, true, /rate limited, retry after 1 s/],
    [400, ErrorCodes.SINK_REJECTED, false, /HTTP 400 Bad Request: injected failure 400/],
    [404, ErrorCodes.SINK_REJECTED, false, /HTTP 404/],
  ];

  for (const [status, code, retriable, message] of failures) {
    it(`maps HTTP ${status} to ${code} (retriable: ${retriable}), naming the operation`, async () => {
      const s = await start();
      const store = new QdrantVectorStore({ url: s.url, collection: 'patterns' });
      await store.ensureCollection(3);
      s.failNext(status);
      const failure = store.upsert([pattern('1', [1, 0, 0])]);
      await expect(failure).rejects.toMatchObject({
        code,
        retriable,
        stage: 'sink',
        message: expect.stringMatching(/^Qdrant upsert on patterns failed: /),
      });
      await expect(failure).rejects.toMatchObject({ message: expect.stringMatching(message) });
      expect(await store.count()).toBe(0);
    });
  }

  it('an unreachable server is SINK_UNAVAILABLE and retriable, and health says why', async () => {
    const s = await startQdrantServer();
    const url = s.url;
    await s.close();
    const store = new QdrantVectorStore({ url, collection: 'patterns', timeoutMs: 2000 });
    await expect(store.ensureCollection(3)).rejects.toMatchObject({
      code: ErrorCodes.SINK_UNAVAILABLE,
      retriable: true,
      message: expect.stringMatching(/ECONNREFUSED/),
    });
    const health = await store.health();
    expect(health.ok).toBe(false);
    expect(health.detail).toMatch(/ECONNREFUSED/);
  });

  it('rejects configuration it cannot use, listing every problem', () => {
    expect(() => new QdrantVectorStore({ url: 'qdrant:6333', collection: 'a/b', batchSize: 0 })).toThrow(
      /url must start with http:\/\/ or https:\/\/.*collection must be 1-255 letters.*batchSize must be a positive integer/,
    );
  });

  it('classifies the client errors from its table', () => {
    const withStatus = (status: number) => Object.assign(new Error('status text'), { status });
    const socketError = (code: string) =>
      new TypeError('fetch failed', { cause: Object.assign(new Error(code), { code }) });
    const cases: ReadonlyArray<readonly [Error, string, boolean]> = [
      [withStatus(502), ErrorCodes.SINK_UNAVAILABLE, true],
      [withStatus(408), ErrorCodes.SINK_UNAVAILABLE, true],
      [withStatus(429), ErrorCodes.SINK_UNAVAILABLE, true],
      [withStatus(422), ErrorCodes.SINK_REJECTED, false],
      [withStatus(403), ErrorCodes.SINK_REJECTED, false],
      [new QdrantClientTimeoutError('aborted'), ErrorCodes.TIMEOUT, true],
      [socketError('ECONNRESET'), ErrorCodes.SINK_UNAVAILABLE, true],
      [socketError('ENOTFOUND'), ErrorCodes.SINK_UNAVAILABLE, true],
      [new RangeError('a programmer error'), ErrorCodes.INTERNAL, false],
    ];
    for (const [error, code, retriable] of cases) {
      expect(classify(error, qdrantErrorRules, 'sink'), error.message).toMatchObject({ code, retriable });
    }
  });
});
