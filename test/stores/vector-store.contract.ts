/**
 * The behaviour every VectorStore owes its callers, run against each
 * implementation (Qdrant through the schema-checking test server, the
 * ClickHouse table on chdb). Expected results come from a brute-force cosine
 * reference over the same points, never from the store under test.
 */
import fc from 'fast-check';
import { validate as isUuid, version as uuidVersion } from 'uuid';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/core/errors.ts';
import {
  pointIdFor,
  type PatternPayload,
  type VectorMatch,
  type VectorPoint,
  type VectorStore,
} from '../../src/stores/vector-store.ts';

export interface StoreFixture {
  readonly store: VectorStore;
  /** Another store over the same collection, as a second process would open it. */
  reopen(): Promise<VectorStore>;
  /** Closes every store it made and removes the collection; may assert on the backend (e.g. no schema violations). */
  cleanup(): Promise<void>;
}

/** Both stores keep Float32 components; Float32 cosine agrees with the Float64 reference to about 1e-7. */
const SCORE_TOLERANCE = 1e-5;

interface Reference {
  readonly errorHash: string;
  readonly score: number;
}

interface ReferenceQuery {
  readonly limit: number;
  readonly service?: string;
  readonly level?: string;
  readonly excludeErrorHash?: string;
  readonly minScore?: number;
}

function cosine(a: readonly number[], b: readonly number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  a.forEach((value, i) => {
    const x = Math.fround(value);
    const y = Math.fround(b[i] ?? 0);
    dot += x * y;
    na += x * x;
    nb += y * y;
  });
  return dot / Math.sqrt(na * nb);
}

/** The last write of each hash wins, as in the stores. */
function latest(points: readonly VectorPoint[]): VectorPoint[] {
  return [...new Map(points.map((p) => [p.errorHash, p])).values()];
}

function bruteForce(points: readonly VectorPoint[], query: readonly number[], options: ReferenceQuery): Reference[] {
  return latest(points)
    .filter((p) => options.service === undefined || p.payload.service === options.service)
    .filter((p) => options.level === undefined || p.payload.level === options.level)
    .filter((p) => p.errorHash !== options.excludeErrorHash)
    .map((p) => ({ errorHash: p.errorHash, score: cosine(query, p.vector) }))
    .filter((r) => options.minScore === undefined || r.score >= options.minScore)
    .sort((a, b) => b.score - a.score)
    .slice(0, options.limit);
}

/**
 * Tie-tolerant comparison with the reference: the same number of matches,
 * the same score at every rank, every reported score the true score of that
 * point, no point twice, and nothing scoring below the reference's last rank.
 */
function expectRanking(
  actual: readonly VectorMatch[],
  expected: readonly Reference[],
  points: readonly VectorPoint[],
  query: readonly number[],
): void {
  const byHash = new Map(latest(points).map((p) => [p.errorHash, p]));
  expect(actual.map((m) => m.score)).toHaveLength(expected.length);
  actual.forEach((match, rank) => {
    expect(Math.abs(match.score - (expected[rank]?.score ?? Number.NaN)), `score at rank ${rank}`).toBeLessThanOrEqual(
      SCORE_TOLERANCE,
    );
    const point = byHash.get(match.errorHash);
    expect(point, `match ${match.errorHash} is a stored point`).toBeDefined();
    expect(Math.abs(match.score - cosine(query, point?.vector ?? []))).toBeLessThanOrEqual(SCORE_TOLERANCE);
  });
  expect(new Set(actual.map((m) => m.errorHash)).size).toBe(actual.length);
}

function payload(errorHash: string, overrides: Partial<PatternPayload> = {}): PatternPayload {
  return {
    error_hash: errorHash,
    template: `pattern <*> ${errorHash}`,
    service: 'checkout',
    level: 'ERROR',
    first_seen: '2024-05-01T12:00:00.000Z',
    model: 'contract-model-v1',
    ...overrides,
  };
}

function point(errorHash: string, vector: readonly number[], overrides: Partial<PatternPayload> = {}): VectorPoint {
  return { errorHash, vector, payload: payload(errorHash, overrides) };
}

/** Spread over directions, services and levels; 8 points the same way as 2 (a tie). */
const knownPoints: readonly VectorPoint[] = [
  point('1', [1, 0, 0, 0]),
  point('2', [0.9, 0.1, 0, 0], { service: 'payments' }),
  point('3', [0.7, 0.7, 0, 0], { level: 'WARN' }),
  point('4', [0, 1, 0, 0], { service: 'payments', level: 'WARN' }),
  point('5', [0, 0, 1, 0]),
  point('6', [-1, 0, 0, 0], { service: 'payments' }),
  point('7', [0.5, 0.2, 0.3, 0.1], { level: 'FATAL' }),
  point('8', [1.8, 0.2, 0, 0], { service: 'search' }),
  point('9', [0.3, -0.4, 0.5, 0.6]),
  point('18446744073709551615', [0.6, 0.3, -0.2, 0.1], { service: 'payments', level: 'FATAL' }),
];
const knownQuery = [1, 0.15, 0.05, 0];

export function vectorStoreContract(name: string, makeStore: () => Promise<StoreFixture>): void {
  describe(`${name}: VectorStore contract`, () => {
    let fixture: StoreFixture | undefined;

    async function open(): Promise<StoreFixture> {
      fixture = await makeStore();
      return fixture;
    }

    async function openWith(points: readonly VectorPoint[], dimension = 4): Promise<VectorStore> {
      const { store } = await open();
      await store.ensureCollection(dimension);
      await store.upsert(points);
      return store;
    }

    afterEach(async () => {
      const current = fixture;
      fixture = undefined;
      await current?.cleanup();
    });

    describe('collection', () => {
      it('ensureCollection is idempotent, also from a second instance', async () => {
        const { store, reopen } = await open();
        await store.ensureCollection(4);
        await store.ensureCollection(4);
        await (await reopen()).ensureCollection(4);
        expect(await store.count()).toBe(0);
      });

      it('rejects another dimension for an existing collection, naming both', async () => {
        const { store, reopen } = await open();
        await store.ensureCollection(4);
        const other = await reopen();
        for (const s of [store, other]) {
          await expect(s.ensureCollection(8)).rejects.toMatchObject({
            code: ErrorCodes.CONFIG_INVALID,
            retriable: false,
            message: expect.stringMatching(/holds 4-dimensional vectors, but 8 dimensions were requested/),
          });
        }
      });

      it('a second instance learns the dimension from the collection itself', async () => {
        const { store, reopen } = await open();
        await store.ensureCollection(4);
        await store.upsert(knownPoints);
        const other = await reopen();
        await expect(other.upsert([point('77', [1, 2, 3])])).rejects.toMatchObject({
          code: ErrorCodes.INPUT_INVALID,
          message: expect.stringMatching(/has 3 dimensions, the collection has 4/),
        });
        expect(await other.count()).toBe(knownPoints.length);
        expectRanking(
          await other.search(knownQuery, { limit: 3 }),
          bruteForce(knownPoints, knownQuery, { limit: 3 }),
          knownPoints,
          knownQuery,
        );
      });

      it('using a collection before ensureCollection says so', async () => {
        const { store } = await open();
        for (const attempt of [
          () => store.count(),
          () => store.upsert([point('1', [1, 0, 0, 0])]),
          () => store.search([1, 0, 0, 0], { limit: 1 }),
          () => store.existing(['1']),
        ]) {
          await expect(attempt()).rejects.toMatchObject({
            code: ErrorCodes.SINK_REJECTED,
            retriable: false,
            message: expect.stringMatching(/does not exist: call ensureCollection/),
          });
        }
      });
    });

    describe('upsert', () => {
      it('is idempotent: the same points twice leave the count and every search unchanged', async () => {
        const store = await openWith(knownPoints);
        const count = await store.count();
        const before = await store.search(knownQuery, { limit: 10 });
        await store.upsert(knownPoints);
        expect(await store.count()).toBe(count);
        expect(count).toBe(knownPoints.length);
        const after = await store.search(knownQuery, { limit: 10 });
        expect(after.map((m) => [m.id, m.score])).toEqual(before.map((m) => [m.id, m.score]));
      });

      it('replaces a point written again: the last vector and payload win', async () => {
        const store = await openWith(knownPoints);
        const moved = point('1', [0, 0, 0, 1], { template: 'rewritten <*>', level: 'FATAL' });
        await store.upsert([moved]);
        expect(await store.count()).toBe(knownPoints.length);
        const points = [...knownPoints, moved];
        const results = await store.search(knownQuery, { limit: knownPoints.length });
        expectRanking(results, bruteForce(points, knownQuery, { limit: knownPoints.length }), points, knownQuery);
        expect(results.find((m) => m.errorHash === '1')?.payload).toEqual(moved.payload);
      });

      it('keeps the last of one hash given twice in one batch', async () => {
        const { store } = await open();
        await store.ensureCollection(4);
        const first = point('5', [1, 0, 0, 0], { template: 'first' });
        const second = point('5', [0, 1, 0, 0], { template: 'second' });
        await store.upsert([first, point('6', [0, 0, 1, 0]), second]);
        expect(await store.count()).toBe(2);
        const [best] = await store.search([0, 1, 0, 0], { limit: 1 });
        expect(best?.payload.template).toBe('second');
        expect(best?.score).toBeCloseTo(1, 5);
      });

      it('keeps the model that made each vector with the point', async () => {
        const store = await openWith([point('11', [1, 0, 0, 0], { model: 'model-a' }), point('12', [0, 1, 0, 0])]);
        const results = await store.search([1, 0.5, 0, 0], { limit: 2 });
        expect(Object.fromEntries(results.map((m) => [m.errorHash, m.payload.model]))).toEqual({
          '11': 'model-a',
          '12': 'contract-model-v1',
        });
      });

      it('accepts an empty batch', async () => {
        const store = await openWith([]);
        await store.upsert([]);
        expect(await store.count()).toBe(0);
      });

      it('ids are UUIDv5 of the error hash, the same from every writer', async () => {
        const store = await openWith(knownPoints);
        const results = await store.search(knownQuery, { limit: knownPoints.length });
        expect(results).toHaveLength(knownPoints.length);
        for (const match of results) {
          expect(isUuid(match.id) && uuidVersion(match.id)).toBe(5);
          expect(match.id).toBe(pointIdFor(match.errorHash));
        }
        expect(new Set(results.map((m) => m.id)).size).toBe(results.length);
      });

      it('returns payloads as written, first_seen in canonical UTC form and hashes beyond 2^53 exact', async () => {
        const written = point('18446744073709551557', [0.2, 0.4, 0.1, 0.3], {
          template: 'user "<*>" can\'t pay: ünïcödé \\ <*>',
          service: 'checkout-eu',
          level: 'WARN',
          first_seen: '2024-03-05T10:20:30.5+02:00',
        });
        const store = await openWith([written]);
        const [match] = await store.search([0.2, 0.4, 0.1, 0.3], { limit: 1 });
        expect(match?.errorHash).toBe('18446744073709551557');
        expect(match?.payload).toEqual({ ...written.payload, first_seen: '2024-03-05T08:20:30.500Z' });
      });
    });

    describe('existing', () => {
      it('names exactly the hashes that have a point, from any instance', async () => {
        const store = await openWith(knownPoints);
        const asked = ['1', '18446744073709551615', '404', '9', '18446744073709551614'];
        expect(await store.existing(asked)).toEqual(new Set(['1', '18446744073709551615', '9']));
        expect(await store.existing([])).toEqual(new Set());
        const other = await fixture!.reopen();
        expect(await other.existing(knownPoints.map((p) => p.errorHash))).toEqual(
          new Set(knownPoints.map((p) => p.errorHash)),
        );
      });

      it('given a model, names only the points that model made, also after a point was rewritten', async () => {
        const store = await openWith([
          point('1', [1, 0, 0, 0], { model: 'model-a' }),
          point('2', [0, 1, 0, 0], { model: 'model-b' }),
          point('3', [0, 0, 1, 0], { model: 'model-a' }),
        ]);
        expect(await store.existing(['1', '2', '3', '4'], 'model-a')).toEqual(new Set(['1', '3']));
        await store.upsert([point('3', [0, 0, 0, 1], { model: 'model-b' })]);
        expect(await store.existing(['1', '2', '3'], 'model-a')).toEqual(new Set(['1']));
        expect(await store.existing(['1', '2', '3'], 'model-b')).toEqual(new Set(['2', '3']));
        expect(await store.existing(['1', '2', '3'], 'model-c')).toEqual(new Set());
      });

      it('rejects a hash that is no UInt64 and says so before the collection is asked', async () => {
        const store = await openWith(knownPoints);
        await expect(store.existing(['1', 'x1'])).rejects.toMatchObject({
          code: ErrorCodes.INPUT_INVALID,
          message: expect.stringMatching(/errorHashes\[1\] must be a UInt64/),
        });
      });
    });

    describe('search', () => {
      it('orders by cosine similarity as the brute-force reference does', async () => {
        const store = await openWith(knownPoints);
        for (const query of [knownQuery, [0, 1, 0, 0], [-0.2, 0.1, 0.9, -0.3], [0.25, 0.25, 0.25, 0.25]]) {
          const results = await store.search(query, { limit: knownPoints.length });
          expectRanking(results, bruteForce(knownPoints, query, { limit: knownPoints.length }), knownPoints, query);
          const scores = results.map((m) => m.score);
          expect(scores).toEqual([...scores].sort((a, b) => b - a));
          for (const s of scores) expect(Math.abs(s)).toBeLessThanOrEqual(1 + SCORE_TOLERANCE);
        }
      });

      it('returns at most limit matches', async () => {
        const store = await openWith(knownPoints);
        for (const limit of [1, 3, knownPoints.length, 1000]) {
          const results = await store.search(knownQuery, { limit });
          expectRanking(results, bruteForce(knownPoints, knownQuery, { limit }), knownPoints, knownQuery);
        }
      });

      it('filters by service, by level and by both', async () => {
        const store = await openWith(knownPoints);
        const filters = [
          { service: 'payments' },
          { level: 'WARN' },
          { service: 'payments', level: 'FATAL' },
          { service: 'nobody' },
        ];
        for (const filter of filters) {
          const results = await store.search(knownQuery, { limit: 5, filter });
          const expected = bruteForce(knownPoints, knownQuery, { limit: 5, ...filter });
          expectRanking(results, expected, knownPoints, knownQuery);
          for (const m of results) {
            if (filter.service !== undefined) expect(m.payload.service).toBe(filter.service);
            if (filter.level !== undefined) expect(m.payload.level).toBe(filter.level);
          }
        }
      });

      it('excludeErrorHash leaves that pattern out and still fills the limit', async () => {
        const store = await openWith(knownPoints);
        const self = knownPoints[1] as VectorPoint;
        const results = await store.search(self.vector, { limit: 4, excludeErrorHash: self.errorHash });
        expect(results.map((m) => m.errorHash)).not.toContain(self.errorHash);
        expectRanking(
          results,
          bruteForce(knownPoints, self.vector, { limit: 4, excludeErrorHash: self.errorHash }),
          knownPoints,
          self.vector,
        );
        const filtered = await store.search(self.vector, {
          limit: 2,
          excludeErrorHash: self.errorHash,
          filter: { service: 'payments' },
        });
        expectRanking(
          filtered,
          bruteForce(knownPoints, self.vector, { limit: 2, excludeErrorHash: self.errorHash, service: 'payments' }),
          knownPoints,
          self.vector,
        );
      });

      it('minScore keeps only matches at least that similar', async () => {
        const store = await openWith(knownPoints);
        const all = bruteForce(knownPoints, knownQuery, { limit: knownPoints.length });
        // Thresholds halfway between clearly separated neighbouring scores, so Float32 rounding cannot move a point
        // across.
        const ranks = all
          .slice(0, -1)
          .flatMap((r, rank) => (r.score - (all[rank + 1]?.score ?? 0) > 0.01 ? [rank] : []));
        expect(ranks.length).toBeGreaterThanOrEqual(3);
        for (const rank of ranks) {
          const minScore = ((all[rank]?.score ?? 0) + (all[rank + 1]?.score ?? 0)) / 2;
          const results = await store.search(knownQuery, { limit: knownPoints.length, minScore });
          expect(results).toHaveLength(rank + 1);
          expectRanking(
            results,
            bruteForce(knownPoints, knownQuery, { limit: knownPoints.length, minScore }),
            knownPoints,
            knownQuery,
          );
        }
        const negative = await store.search(knownQuery, { limit: knownPoints.length, minScore: -1 });
        expect(negative).toHaveLength(knownPoints.length);
      });

      it('matches the brute-force top-k for random point sets (ties allowed)', async () => {
        const pointsArbitrary = fc.integer({ min: 2, max: 6 }).chain((dimension) =>
          fc.record({
            dimension: fc.constant(dimension),
            points: fc.uniqueArray(
              fc.record({
                hash: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String),
                vector: fc
                  .array(fc.integer({ min: -4, max: 4 }), { minLength: dimension, maxLength: dimension })
                  .filter((v) => v.some((x) => x !== 0)),
                service: fc.constantFrom('a', 'b'),
              }),
              { minLength: 1, maxLength: 30, selector: (p) => p.hash },
            ),
            query: fc
              .array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: dimension, maxLength: dimension })
              .filter((v) => v.some((x) => Math.abs(x) > 1e-3)),
            limit: fc.integer({ min: 1, max: 12 }),
            service: fc.option(fc.constantFrom('a', 'b'), { nil: undefined }),
          }),
        );
        await fc.assert(
          fc.asyncProperty(pointsArbitrary, async ({ dimension, points, query, limit, service }) => {
            const run = await makeStore();
            try {
              await run.store.ensureCollection(dimension);
              const vectorPoints = points.map((p) => point(p.hash, p.vector, { service: p.service }));
              await run.store.upsert(vectorPoints);
              const results = await run.store.search(query, {
                limit,
                ...(service === undefined ? {} : { filter: { service } }),
              });
              expectRanking(
                results,
                bruteForce(vectorPoints, query, { limit, ...(service === undefined ? {} : { service }) }),
                vectorPoints,
                query,
              );
            } finally {
              await run.cleanup();
            }
          }),
          { numRuns: 25 },
        );
      });
    });

    describe('input validation', () => {
      const invalidPoints: ReadonlyArray<readonly [string, unknown, RegExp]> = [
        [
          'a vector of the wrong length',
          point('1', [1, 0, 0]),
          /points\[0\]\.vector has 3 dimensions, the collection has 4/,
        ],
        ['an empty vector', point('1', []), /points\[0\]\.vector must be a non-empty array/],
        ['a NaN component', point('1', [1, Number.NaN, 0, 0]), /points\[0\]\.vector\[1\] must be a finite number/],
        [
          'an infinite component',
          point('1', [1, 0, Number.POSITIVE_INFINITY, 0]),
          /points\[0\]\.vector\[2\] must be a finite number/,
        ],
        ['a component beyond Float32', point('1', [1e39, 0, 0, 0]), /within Float32 range/],
        [
          'a string component',
          { ...point('1', [1, 0, 0, 0]), vector: [1, '0', 0, 0] },
          /points\[0\]\.vector\[1\] must be a finite number/,
        ],
        ['a zero vector', point('1', [0, 0, 0, 0]), /all zeros/],
        ['a non-numeric hash', point('abc', [1, 0, 0, 0]), /errorHash must be a UInt64 in decimal/],
        ['a negative hash', point('-1', [1, 0, 0, 0]), /errorHash must be a UInt64/],
        ['a hash with leading zeros', point('007', [1, 0, 0, 0]), /without leading zeros/],
        ['a hash beyond UInt64', point('18446744073709551616', [1, 0, 0, 0]), /errorHash must be a UInt64/],
        [
          'a payload hash differing from the point',
          { ...point('1', [1, 0, 0, 0]), payload: payload('2') },
          /payload\.error_hash \("2"\) differs from errorHash \(1\)/,
        ],
        ['an empty service', point('1', [1, 0, 0, 0], { service: '' }), /payload\.service must be a non-empty string/],
        ['an empty model', point('1', [1, 0, 0, 0], { model: '' }), /payload\.model must be a non-empty string/],
        [
          'a missing level',
          { ...point('1', [1, 0, 0, 0]), payload: { ...payload('1'), level: undefined } },
          /payload\.level must be a non-empty string/,
        ],
        [
          'a first_seen that is no date',
          point('1', [1, 0, 0, 0], { first_seen: 'yesterday' }),
          /first_seen must be an ISO-8601 date-time/,
        ],
        [
          'an impossible date',
          point('1', [1, 0, 0, 0], { first_seen: '2024-02-31T00:00:00Z' }),
          /first_seen must be an ISO-8601 date-time/,
        ],
      ];

      for (const [what, bad, message] of invalidPoints) {
        it(`upsert rejects ${what}, writing nothing of the batch`, async () => {
          const store = await openWith([]);
          await expect(store.upsert([point('42', [0, 1, 0, 0]), bad as VectorPoint])).rejects.toMatchObject({
            code: ErrorCodes.INPUT_INVALID,
            retriable: false,
            message: expect.stringMatching(message.source.replace('points\\[0\\]', 'points\\[1\\]')),
          });
          expect(await store.count()).toBe(0);
        });
      }

      const invalidSearches: ReadonlyArray<readonly [string, unknown, unknown, RegExp]> = [
        ['limit 0', [1, 0, 0, 0], { limit: 0 }, /limit must be an integer between 1 and 1000, got 0/],
        ['limit 1001', [1, 0, 0, 0], { limit: 1001 }, /limit must be an integer between 1 and 1000/],
        ['a fractional limit', [1, 0, 0, 0], { limit: 2.5 }, /limit must be an integer/],
        ['minScore above 1', [1, 0, 0, 0], { limit: 1, minScore: 1.5 }, /minScore must be a number between -1 and 1/],
        ['a NaN minScore', [1, 0, 0, 0], { limit: 1, minScore: Number.NaN }, /minScore must be a number/],
        [
          'a malformed excludeErrorHash',
          [1, 0, 0, 0],
          { limit: 1, excludeErrorHash: '12a' },
          /excludeErrorHash must be a UInt64/,
        ],
        [
          'an empty service filter',
          [1, 0, 0, 0],
          { limit: 1, filter: { service: '' } },
          /filter\.service must be a non-empty string/,
        ],
        ['a query of the wrong length', [1, 0, 0], { limit: 1 }, /query vector has 3 dimensions, the collection has 4/],
        ['a zero query', [0, 0, 0, 0], { limit: 1 }, /query vector is all zeros/],
        ['a NaN query component', [Number.NaN, 1, 0, 0], { limit: 1 }, /query vector\[0\] must be a finite number/],
      ];

      for (const [what, vector, options, message] of invalidSearches) {
        it(`search rejects ${what}`, async () => {
          const store = await openWith(knownPoints);
          await expect(store.search(vector as number[], options as { limit: number })).rejects.toMatchObject({
            code: ErrorCodes.INPUT_INVALID,
            retriable: false,
            message: expect.stringMatching(message),
          });
        });
      }

      it('ensureCollection rejects dimensions that are not positive integers up to 65536', async () => {
        const { store } = await open();
        for (const dimension of [0, -3, 2.5, Number.NaN, 65537]) {
          await expect(store.ensureCollection(dimension)).rejects.toMatchObject({
            code: ErrorCodes.INPUT_INVALID,
            message: expect.stringMatching(/dimension must be an integer between 1 and 65536/),
          });
        }
      });

      it('pointIdFor rejects what is not a canonical UInt64', () => {
        expect(() => pointIdFor('0x1f')).toThrow(/error_hash must be a UInt64 in decimal/);
        expect(pointIdFor('0')).not.toBe(pointIdFor('1'));
      });
    });

    describe('lifecycle', () => {
      it('reports healthy once reachable, also before the collection exists', async () => {
        const { store } = await open();
        expect((await store.health()).ok).toBe(true);
        await store.ensureCollection(4);
        expect(await store.health()).toEqual({ ok: true });
      });

      it('close is idempotent, and a closed store refuses work and reports unhealthy', async () => {
        const store = await openWith(knownPoints);
        await store.close();
        await store.close();
        expect((await store.health()).ok).toBe(false);
        await expect(store.search(knownQuery, { limit: 1 })).rejects.toMatchObject({ code: ErrorCodes.SHUTDOWN });
        await expect(store.upsert(knownPoints)).rejects.toMatchObject({ code: ErrorCodes.SHUTDOWN });
        await expect(store.count()).rejects.toMatchObject({ code: ErrorCodes.SHUTDOWN });
      });
    });
  });
}
