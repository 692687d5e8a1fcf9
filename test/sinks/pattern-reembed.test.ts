/**
 * The re-embedding walk on real parts: error_patterns and the vector table on
 * chdb, the hashing embedder, and a remote endpoint (the OpenAI-compatible
 * test server, the one stand-in allowed: a third-party model) for a template
 * the endpoint refuses and a dimension known only once it answers.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalEmbedder, createOpenAIEmbedder, type Embedder } from '../../src/clients/embeddings.ts';
import { openEngines, type Engines } from '../../src/clients/engines.ts';
import { loadConfig } from '../../src/core/config.ts';
import { ErrorCodes, LogflowError } from '../../src/core/errors.ts';
import { migrateAll } from '../../src/app/migrate.ts';
import { reembedMissing, type ReembedOptions, type ReembedProgress } from '../../src/sinks/pattern-reembed.ts';
import { ClickHouseVectorStore } from '../../src/stores/clickhouse-vector.ts';
import { createMemoryEmbeddingCache } from '../../src/stores/embedding-cache.ts';
import { ErrorPatternStore, type PatternObservation } from '../../src/stores/error-patterns.ts';
import { pointIdFor } from '../../src/stores/vector-store.ts';
import { startOpenAIServer, type OpenAITestServer } from '../support/openai-server.ts';

const FIRST_SEEN = Date.UTC(2026, 10, 2, 8, 30, 15, 250);
/** Includes the hash 0 and one beyond 2^53, which a walk in hash order must not skip or round. */
const HASHES = ['0', '18446744073709551615', ...Array.from({ length: 98 }, (_, i) => String(1_000 + i * 7))];

function observation(errorHash: string): PatternObservation {
  return {
    errorHash,
    template: `payment <*> failed with code ${errorHash}`,
    sampleMessage: `payment 42 failed with code ${errorHash}`,
    service: BigInt(errorHash) % 2n === 0n ? 'checkout' : 'billing',
    level: 'ERROR',
    firstSeen: FIRST_SEEN,
    lastSeen: FIRST_SEEN + 60_000,
    occurrences: 3,
  };
}

describe('re-embedding known patterns', () => {
  let work = '';
  let engines: Engines;
  let patterns: ErrorPatternStore;
  let server: OpenAITestServer;
  let table = 0;

  const attemptOnce: ReembedOptions['attempt'] = (step) => step();
  const storeFor = async (embedder: Embedder): Promise<ClickHouseVectorStore> => {
    const store = new ClickHouseVectorStore({ client: engines.clickhouse, table: `reembed_${++table}` });
    if (embedder.dimension !== undefined) await store.ensureCollection(embedder.dimension);
    return store;
  };

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'logflow-reembed-walk-'));
    engines = await openEngines(loadConfig({ LOGFLOW_DATA_DIR: work }), { createDatabases: true });
    await migrateAll(engines);
    patterns = new ErrorPatternStore(engines.clickhouse);
    await patterns.markEmbedded(HASHES.map(observation), pointIdFor);
    server = await startOpenAIServer({ embeddingDimension: 24 });
  });
  afterAll(async () => {
    await server?.close();
    await engines?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('writes every pattern the collection lacks, with the payload vectorize writes, and resumes after a stop', async () => {
    const embedder = createLocalEmbedder();
    const cache = createMemoryEmbeddingCache();
    const vectorStore = await storeFor(embedder);
    const sources = { patterns, vectorStore, embedder, cache };
    // Patterns vectorize wrote after the switch are in the collection already: the walk leaves them alone.
    const [early] = await embedder.embed([observation('1007').template]);
    await vectorStore.upsert([
      {
        errorHash: '1007',
        vector: [...early!],
        payload: {
          error_hash: '1007',
          template: observation('1007').template,
          service: 'checkout',
          level: 'ERROR',
          first_seen: new Date(FIRST_SEEN).toISOString(),
          model: embedder.model,
        },
      },
    ]);

    // A stop after the ninth step (the count, the collection, and for two pages a read, a lookup and an embedding,
    // then one page's upsert) ends the first run part way, with one page written.
    let steps = 0;
    const stoppingAfter9: ReembedOptions['attempt'] = async (step) => {
      if (++steps > 9) throw new LogflowError(ErrorCodes.SHUTDOWN, 'stopping');
      return step();
    };
    await expect(
      reembedMissing(sources, { pageSize: 16, concurrency: 2, attempt: stoppingAfter9 }),
    ).rejects.toMatchObject({ code: ErrorCodes.SHUTDOWN });
    const afterStop = await vectorStore.count();
    expect(afterStop).toBeGreaterThan(1);
    expect(afterStop).toBeLessThan(HASHES.length);

    const reported: ReembedProgress[] = [];
    const resumed = await reembedMissing(sources, {
      pageSize: 16,
      concurrency: 2,
      attempt: attemptOnce,
      onProgress: (p) => reported.push(p),
    });
    expect(resumed).toEqual({ checked: HASHES.length, total: HASHES.length, written: HASHES.length - afterStop });
    expect(reported.map((p) => p.checked)).toEqual([32, 64, 96, 100]);
    expect(await vectorStore.existing(HASHES)).toEqual(new Set(HASHES));
    expect(await vectorStore.count()).toBe(HASHES.length);

    const again = await reembedMissing(sources, { pageSize: 16, concurrency: 2, attempt: attemptOnce });
    expect(again).toEqual({ checked: HASHES.length, total: HASHES.length, written: 0 });

    const wanted = observation('18446744073709551615');
    const [vector] = await embedder.embed([wanted.template]);
    const [match] = await vectorStore.search([...vector!], { limit: 1 });
    expect(match).toMatchObject({
      errorHash: wanted.errorHash,
      payload: {
        error_hash: wanted.errorHash,
        template: wanted.template,
        service: 'billing',
        level: 'ERROR',
        first_seen: new Date(FIRST_SEEN).toISOString(),
        model: embedder.model,
      },
    });
    expect(match!.score).toBeCloseTo(1, 5);
  });

  it('rewrites the points another model left in the collection, so its space is not mixed with this one', async () => {
    const embedder = createLocalEmbedder();
    const vectorStore = await storeFor(embedder);
    const sources = { patterns, vectorStore, embedder, cache: createMemoryEmbeddingCache() };
    // A remote endpoint whose model changed at the same dimension writes to the same collection.
    await vectorStore.upsert(
      HASHES.map((errorHash, i) => ({
        errorHash,
        vector: Array.from({ length: embedder.dimension! }, (_, j) => (j === i % embedder.dimension! ? 1 : 0)),
        payload: {
          error_hash: errorHash,
          template: observation(errorHash).template,
          service: 'checkout',
          level: 'ERROR',
          first_seen: new Date(FIRST_SEEN).toISOString(),
          model: 'older-model',
        },
      })),
    );
    const outcome = await reembedMissing(sources, { pageSize: 32, concurrency: 2, attempt: attemptOnce });
    expect(outcome).toEqual({ checked: HASHES.length, total: HASHES.length, written: HASHES.length });
    expect(await vectorStore.count()).toBe(HASHES.length);
    expect(await vectorStore.existing(HASHES, 'older-model')).toEqual(new Set());
    expect(await vectorStore.existing(HASHES, embedder.model)).toEqual(new Set(HASHES));
  });

  it('embeds through the cache, makes the collection once a remote endpoint answers, and leaves out a template it refuses', async () => {
    const embedder = createOpenAIEmbedder({ url: server.url, model: 'reembed-remote', maxRetries: 0 });
    const cache = createMemoryEmbeddingCache();
    const vectorStore = await storeFor(embedder);
    const sources = { patterns, vectorStore, embedder, cache };
    const refused: string[] = [];
    const allow = server.failInput(observation('1014').template);
    try {
      const outcome = await reembedMissing(sources, {
        pageSize: 40,
        concurrency: 3,
        attempt: attemptOnce,
        onRefused: (hash) => refused.push(hash),
      });
      expect(refused).toEqual(['1014']);
      expect(outcome).toEqual({ checked: HASHES.length, total: HASHES.length, written: HASHES.length - 1 });
    } finally {
      allow();
    }
    expect(await vectorStore.existing(HASHES)).toEqual(new Set(HASHES.filter((h) => h !== '1014')));

    // A later run owes only the refused one; every other template comes from the cache or is not asked at all.
    const before = server.embeddedInputs().length;
    expect(await reembedMissing(sources, { pageSize: 40, concurrency: 3, attempt: attemptOnce })).toMatchObject({
      written: 1,
    });
    expect(server.embeddedInputs().slice(before)).toEqual([observation('1014').template]);
    await embedder.close();
  });
});
