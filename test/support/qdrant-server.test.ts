/**
 * The Qdrant test server is only worth something if it refuses what Qdrant
 * refuses and answers as Qdrant answers: these tests speak raw HTTP to it,
 * outside any client, including requests no client would send.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { startQdrantServer, toJsonSchema, type QdrantTestServer, type ViolationKind } from './qdrant-server.ts';

let server: QdrantTestServer | undefined;

async function start(options: Parameters<typeof startQdrantServer>[0] = {}): Promise<QdrantTestServer> {
  server = await startQdrantServer(options);
  return server;
}

afterEach(async () => {
  await server?.close();
  server = undefined;
});

interface Reply {
  readonly status: number;
  readonly body: { result?: unknown; status?: unknown; time?: unknown } & Record<string, unknown>;
}

async function call(
  s: QdrantTestServer,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const init: RequestInit = {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
  };
  if (body !== undefined) init.body = typeof body === 'string' ? body : JSON.stringify(body);
  const response = await fetch(`${s.url}${path}`, init);
  return { status: response.status, body: (await response.json()) as Reply['body'] };
}

async function collectionWithPoints(s: QdrantTestServer): Promise<void> {
  expect((await call(s, 'PUT', '/collections/c', { vectors: { size: 3, distance: 'Cosine' } })).status).toBe(200);
  const points = [
    { id: 1, vector: [1, 0, 0], payload: { service: 'a', level: 'ERROR' } },
    { id: '6ba7b810-9dad-11d1-80b4-00c04fd430c8', vector: [0.5, 0.5, 0], payload: { service: 'b', level: 'WARN' } },
    { id: 3, vector: [0, 0, 2], payload: { service: 'a', level: 'WARN' } },
  ];
  expect((await call(s, 'PUT', '/collections/c/points?wait=true', { points })).status).toBe(200);
}

describe('qdrant test server: a valid conversation', () => {
  it('answers every endpoint the adapter uses in the documented shapes, recording nothing', async () => {
    const s = await start();
    expect((await call(s, 'GET', '/')).body).toMatchObject({
      title: expect.any(String),
      version: expect.stringMatching(/^1\.17/),
    });
    expect((await call(s, 'GET', '/collections/c/exists')).body).toMatchObject({
      result: { exists: false },
      status: 'ok',
      time: expect.any(Number),
    });
    await collectionWithPoints(s);
    expect(
      (await call(s, 'PUT', '/collections/c/index?wait=true', { field_name: 'service', field_schema: 'keyword' })).body
        .result,
    ).toMatchObject({
      status: 'completed',
    });
    expect((await call(s, 'GET', '/collections')).body.result).toEqual({ collections: [{ name: 'c' }] });
    const info = (await call(s, 'GET', '/collections/c')).body.result as {
      points_count: number;
      config: { params: { vectors: unknown } };
      payload_schema: unknown;
    };
    expect(info.points_count).toBe(3);
    expect(info.config.params.vectors).toEqual({ size: 3, distance: 'Cosine' });
    expect(info.payload_schema).toEqual({ service: { data_type: 'keyword', points: 3 } });
    const query = await call(s, 'POST', '/collections/c/points/query', {
      query: [1, 0.1, 0],
      limit: 2,
      with_payload: true,
      filter: { must: [{ key: 'level', match: { value: 'WARN' } }], must_not: [{ has_id: [3] }] },
    });
    expect(query.body.result).toMatchObject({
      points: [{ id: '6ba7b810-9dad-11d1-80b4-00c04fd430c8', payload: { service: 'b' } }],
    });
    expect(
      (
        await call(s, 'POST', '/collections/c/points/count', {
          filter: { must: [{ key: 'service', match: { value: 'a' } }] },
          exact: true,
        })
      ).body.result,
    ).toEqual({
      count: 2,
    });
    expect(s.violations).toEqual([]);
  });

  it('accepts null where the document says nullable', async () => {
    const s = await start();
    expect(
      (
        await call(s, 'PUT', '/collections/c', {
          vectors: { size: 3, distance: 'Cosine', on_disk: null },
          hnsw_config: null,
          shard_number: null,
        })
      ).status,
    ).toBe(200);
    expect(
      (
        await call(s, 'POST', '/collections/c/points/query', {
          query: [1, 0, 0],
          filter: null,
          score_threshold: null,
          limit: null,
        })
      ).status,
    ).toBe(200);
    expect(s.violations).toEqual([]);
  });
});

describe('qdrant test server: requests Qdrant would refuse', () => {
  const refusals: ReadonlyArray<readonly [string, string, string, unknown, number, ViolationKind, RegExp]> = [
    [
      'vector components that are strings',
      'PUT',
      '/collections/c/points?wait=true',
      { points: [{ id: 1, vector: ['1', '0', '0'] }] },
      400,
      'body',
      /vector\/0 must be number/,
    ],
    [
      'a vector that is not an array',
      'PUT',
      '/collections/c/points',
      { points: [{ id: 1, vector: 'abc' }] },
      400,
      'body',
      /vector/,
    ],
    [
      'a point id neither unsigned nor a UUID',
      'PUT',
      '/collections/c/points',
      { points: [{ id: 'point-1', vector: [1, 0, 0] }] },
      400,
      'body',
      /id must match format "uuid"/,
    ],
    [
      'an unknown distance',
      'PUT',
      '/collections/d',
      { vectors: { size: 3, distance: 'Cosinus' } },
      400,
      'body',
      /distance must be equal to one of the allowed values/,
    ],
    [
      'a vector size of 0',
      'PUT',
      '/collections/d',
      { vectors: { size: 0, distance: 'Cosine' } },
      400,
      'body',
      /size must be >= 1/,
    ],
    [
      'a nullable field given a number',
      'PUT',
      '/collections/d',
      { vectors: { size: 3, distance: 'Cosine' }, hnsw_config: 5 },
      400,
      'body',
      /hnsw_config/,
    ],
    [
      'limit 0',
      'POST',
      '/collections/c/points/query',
      { query: [1, 0, 0], limit: 0 },
      422,
      'body',
      /limit must be >= 1/,
    ],
    [
      'a misspelt field',
      'POST',
      '/collections/c/points/query',
      { query: [1, 0, 0], score_treshold: 0.5 },
      400,
      'body',
      /unevaluated properties \(score_treshold\)/,
    ],
    [
      'a filter with an unknown clause',
      'POST',
      '/collections/c/points/count',
      { filter: { must: [], either: [] } },
      400,
      'body',
      /filter/,
    ],
    [
      'a match value that is an object',
      'POST',
      '/collections/c/points/count',
      { filter: { must: [{ key: 'service', match: { value: { a: 1 } } }] } },
      400,
      'body',
      /match/,
    ],
    ['malformed JSON', 'POST', '/collections/c/points/count', '{"exact": tru', 400, 'body', /Json deserialize error/],
    [
      'a wait flag that is not a boolean',
      'PUT',
      '/collections/c/points?wait=maybe',
      { points: [] },
      400,
      'query',
      /wait must be boolean/,
    ],
    [
      'an unknown query parameter',
      'PUT',
      '/collections/c/points?wiat=true',
      { points: [] },
      400,
      'query',
      /unknown query parameter\(s\) wiat/,
    ],
    [
      'an unknown endpoint',
      'POST',
      '/collections/c/points/nearest',
      { query: [1, 0, 0] },
      404,
      'route',
      /no POST \/collections\/c\/points\/nearest/,
    ],
    ['a method the path does not have', 'DELETE', '/collections/c/points', { points: [] }, 404, 'route', /no DELETE/],
  ];

  for (const [what, method, path, body, status, kind, message] of refusals) {
    it(`refuses ${what} with ${status} and records it`, async () => {
      const s = await start();
      await collectionWithPoints(s);
      const reply = await call(s, method, path, body);
      expect(reply.status).toBe(status);
      expect(reply.body.status).toEqual({ error: expect.any(String) });
      expect(s.violations).toEqual([
        { kind, method, path: path.split('?')[0], message: expect.stringMatching(message) },
      ]);
    });
  }

  it('refuses a JSON body sent without a JSON content type', async () => {
    const s = await start();
    const reply = await call(s, 'PUT', '/collections/c', JSON.stringify({ vectors: { size: 3, distance: 'Cosine' } }), {
      'content-type': 'text/plain',
    });
    expect(reply.status).toBe(400);
    expect(s.violations.map((v) => v.kind)).toEqual(['body']);
  });

  it('records operations it does not implement instead of pretending', async () => {
    const s = await start();
    await collectionWithPoints(s);
    const reply = await call(s, 'POST', '/collections/c/points/scroll', { limit: 2 });
    expect(reply.status).toBe(501);
    expect(s.violations).toEqual([
      expect.objectContaining({ kind: 'unsupported', message: expect.stringMatching(/scroll_points/) }),
    ]);
  });
});

describe('qdrant test server: server-side errors are answers, not violations', () => {
  it('answers a wrong dimension, a missing collection and a duplicate create as Qdrant does', async () => {
    const s = await start();
    await collectionWithPoints(s);
    const wrongDimension = await call(s, 'PUT', '/collections/c/points?wait=true', {
      points: [{ id: 9, vector: [1, 0] }],
    });
    expect(wrongDimension).toMatchObject({
      status: 400,
      body: { status: { error: 'Wrong input: Vector dimension error: expected dim: 3, got 2' } },
    });
    expect((await call(s, 'POST', '/collections/missing/points/count', {})).status).toBe(404);
    expect((await call(s, 'PUT', '/collections/c', { vectors: { size: 3, distance: 'Cosine' } })).status).toBe(409);
    expect((await call(s, 'POST', '/collections/c/points/count', {})).body.result).toEqual({ count: 3 });
    expect(s.violations).toEqual([]);
  });

  it('injects failures on request, with Retry-After for 429', async () => {
    const s = await start();
    s.failNext(429, 2);
    for (let i = 0; i < 2; i++) {
      const response = await fetch(`${s.url}/collections`);
      expect(response.status).toBe(429);
      expect(response.headers.get('retry-after')).toBe('1');
    }
    expect((await call(s, 'GET', '/collections')).status).toBe(200);
    expect(s.violations).toEqual([]);
  });
});

describe('qdrant test server: its own answers are checked too', () => {
  it('records a response that drifts from the documented schema', async () => {
    const s = await start({
      rewriteResult: (operationId, result) => (operationId === 'count_points' ? { total: 3 } : result),
    });
    await collectionWithPoints(s);
    await call(s, 'POST', '/collections/c/points/count', {});
    expect(s.violations).toEqual([
      expect.objectContaining({
        kind: 'response',
        message: expect.stringMatching(/must have required property 'count'.*unevaluated properties \(total\)/),
      }),
    ]);
  });
});

describe('qdrant test server: brute-force search', () => {
  const cosine = (a: readonly number[], b: readonly number[]) =>
    a.reduce((sum, x, i) => sum + x * (b[i] ?? 0), 0) /
    Math.sqrt(a.reduce((s, x) => s + x * x, 0) * b.reduce((s, x) => s + x * x, 0));

  it('returns the top-k by cosine similarity among the points the filter keeps (ties allowed)', async () => {
    const s = await start();
    expect((await call(s, 'PUT', '/collections/c', { vectors: { size: 3, distance: 'Cosine' } })).status).toBe(200);
    let nextId = 1;
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            vector: fc
              .array(fc.integer({ min: -3, max: 3 }), { minLength: 3, maxLength: 3 })
              .filter((v) => v.some((x) => x !== 0)),
            service: fc.constantFrom('a', 'b'),
          }),
          { minLength: 1, maxLength: 20 },
        ),
        fc.array(fc.integer({ min: -3, max: 3 }), { minLength: 3, maxLength: 3 }).filter((v) => v.some((x) => x !== 0)),
        fc.integer({ min: 1, max: 8 }),
        async (points, query, limit) => {
          const run = `run-${nextId}`;
          const stored = points.map((p) => ({ id: nextId++, vector: p.vector, payload: { service: p.service, run } }));
          expect((await call(s, 'PUT', '/collections/c/points?wait=true', { points: stored })).status).toBe(200);
          const reply = await call(s, 'POST', '/collections/c/points/query', {
            query,
            limit,
            with_payload: true,
            filter: {
              must: [
                { key: 'run', match: { value: run } },
                { key: 'service', match: { value: 'a' } },
              ],
            },
          });
          const expected = stored
            .filter((p) => p.payload.service === 'a')
            .map((p) => cosine(query, p.vector))
            .sort((a, b) => b - a)
            .slice(0, limit);
          const actual = (reply.body.result as { points: Array<{ id: number; score: number }> }).points;
          expect(actual.map((p) => p.score)).toHaveLength(expected.length);
          actual.forEach((p, rank) => {
            expect(p.score).toBeCloseTo(expected[rank] ?? Number.NaN, 9);
            const point = stored.find((candidate) => candidate.id === p.id);
            expect(point?.payload.service).toBe('a');
            expect(p.score).toBeCloseTo(cosine(query, point?.vector ?? []), 9);
          });
        },
      ),
      { numRuns: 50 },
    );
    expect(s.violations).toEqual([]);
  });
});

describe('toJsonSchema: OpenAPI 3.0 to JSON Schema', () => {
  it('turns nullable into a null type, a null enum member or a null branch', () => {
    expect(toJsonSchema({ type: 'integer', format: 'uint', nullable: true })).toEqual({
      type: ['integer', 'null'],
      format: 'uint',
    });
    expect(toJsonSchema({ type: 'string', enum: ['a'], nullable: true })).toEqual({
      type: ['string', 'null'],
      enum: ['a', null],
    });
    expect(toJsonSchema({ anyOf: [{ $ref: '#/components/schemas/X' }, { nullable: true }] })).toEqual({
      anyOf: [{ $ref: 'https://qdrant.test/components.json#/$defs/X' }, { type: 'null' }],
    });
    expect(toJsonSchema({ $ref: '#/components/schemas/X', nullable: true })).toEqual({
      anyOf: [{ $ref: 'https://qdrant.test/components.json#/$defs/X' }, { type: 'null' }],
    });
  });

  it('closes objects that list their properties, and leaves property names alone', () => {
    expect(
      toJsonSchema({
        type: 'object',
        properties: { type: { $ref: '#/components/schemas/T' }, example: { type: 'string', example: 'x' } },
      }),
    ).toEqual({
      type: 'object',
      properties: { type: { $ref: 'https://qdrant.test/components.json#/$defs/T' }, example: { type: 'string' } },
      unevaluatedProperties: false,
    });
    expect(toJsonSchema({ type: 'object', additionalProperties: true })).toEqual({
      type: 'object',
      additionalProperties: true,
    });
  });
});
