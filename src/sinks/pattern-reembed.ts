/**
 * Re-embedding after a change of embedder (README.md, "Local embeddings").
 * Each embedder writes to a collection of its own (src/app/resources.ts,
 * vectorCollection), so after a switch the new collection would hold only the
 * patterns seen since, and novelty checks and "similar patterns" would miss
 * the rest. This walks every pattern error_patterns knows, in pages, and
 * writes the ones the collection lacks, embedded through the embedding cache,
 * with the payload vectorize writes (src/sinks/pattern-vectors.ts).
 *
 * Resumable by construction: what is missing is asked of the collection
 * itself, page by page, and upserts are idempotent, so a restart continues
 * where the last run stopped and a second run writes nothing. It raises no
 * alerts and leaves error_patterns.has_embedding alone: that flag says that
 * vectorize judged the pattern when it first saw it, in whichever space.
 */
import pLimit from 'p-limit';
import type { Embedder } from '../clients/embeddings.ts';
import { isRetriable } from '../core/errors.ts';
import type { EmbeddingCache } from '../stores/embedding-cache.ts';
import { embeddingCacheKey } from '../stores/embedding-cache.ts';
import type { ErrorPatternStore, KnownPattern } from '../stores/error-patterns.ts';
import { isFatal } from './pattern-batch.ts';
import type { VectorPoint, VectorStore } from '../stores/vector-store.ts';

export interface ReembedOptions {
  /** Patterns read, looked up and embedded as one. */
  readonly pageSize: number;
  /** Pages in flight at once (the embedder batches each page's templates itself). */
  readonly concurrency: number;
  /** Runs one step (a page read, a lookup, an embedding, an upsert), retrying it while it fails retriably. */
  readonly attempt: <T>(step: () => Promise<T>) => Promise<T>;
  /** Told after each round of pages: patterns checked so far of `total`, and how many of them were written. */
  readonly onProgress?: (progress: ReembedProgress) => void;
  /** Told of a pattern whose template the embedder refuses; it is left out and the walk goes on. */
  readonly onRefused?: (errorHash: string, error: unknown) => void;
}

export interface ReembedProgress {
  readonly checked: number;
  readonly total: number;
  readonly written: number;
}

export interface ReembedSources {
  readonly patterns: ErrorPatternStore;
  readonly vectorStore: VectorStore;
  readonly embedder: Embedder;
  readonly cache: EmbeddingCache;
}

export const DEFAULT_REEMBED_OPTIONS = { pageSize: 256, concurrency: 2 } as const;

/** Writes every known pattern the embedder's collection lacks; resolves with the final progress. */
export async function reembedMissing(sources: ReembedSources, options: ReembedOptions): Promise<ReembedProgress> {
  const { patterns, vectorStore } = sources;
  const { attempt, pageSize, concurrency } = options;
  if (!Number.isInteger(pageSize) || pageSize < 1) throw new RangeError(`pageSize must be >= 1, got ${pageSize}`);
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new RangeError(`concurrency must be >= 1, got ${concurrency}`);
  const total = await attempt(() => patterns.count());
  let progress: ReembedProgress = { checked: 0, total, written: 0 };
  const { dimension } = sources.embedder;
  // A remote endpoint's dimension is known once it answers: its collection is made when the first vector arrives.
  let collectionReady = dimension === undefined ? undefined : attempt(() => vectorStore.ensureCollection(dimension));
  const limit = pLimit(concurrency);

  const writePage = async (page: readonly KnownPattern[]): Promise<number> => {
    const known = await attempt(async () => {
      // Before a remote endpoint's first vector says the dimension, the collection is not asked (it may not exist):
      // the first pages count as missing, and writing them again is idempotent, their vectors mostly cache hits.
      if (collectionReady === undefined) return new Set<string>();
      await collectionReady;
      return vectorStore.existing(
        page.map((p) => p.error_hash),
        sources.embedder.model,
      );
    });
    const missing = page.filter((p) => !known.has(p.error_hash));
    if (missing.length === 0) return 0;
    const embedded = await embedAll(sources, missing, options);
    if (embedded.length === 0) return 0;
    collectionReady ??= attempt(() => vectorStore.ensureCollection(embedded[0]!.vector.length));
    await collectionReady;
    await attempt(() => vectorStore.upsert(embedded.map((e) => pointOf(e.pattern, e.vector, sources.embedder.model))));
    return embedded.length;
  };

  let after: string | undefined;
  for (;;) {
    // A round of `concurrency` pages: memory stays at that many pages, whatever the table holds.
    const pages: KnownPattern[][] = [];
    for (let i = 0; i < concurrency; i++) {
      const page = await attempt(() => patterns.page(after, pageSize));
      if (page.length === 0) break;
      pages.push(page);
      after = page.at(-1)!.error_hash;
      if (page.length < pageSize) break;
    }
    if (pages.length === 0) break;
    // Settled, not raced: a failed page must not leave another page's write running after the walk ended.
    const settled = await Promise.allSettled(pages.map((page) => limit(() => writePage(page))));
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    const written = settled.map((s) => (s.status === 'fulfilled' ? s.value : 0));
    const checked = progress.checked + pages.reduce((n, p) => n + p.length, 0);
    // Patterns first seen during the walk can take it past the count read at its start.
    progress = {
      checked,
      total: Math.max(total, checked),
      written: progress.written + written.reduce((a, b) => a + b, 0),
    };
    options.onProgress?.(progress);
    if (pages.at(-1)!.length < pageSize) break;
  }
  return progress;
}

interface Embedded {
  readonly pattern: KnownPattern;
  readonly vector: Float32Array;
}

/** Vectors of the patterns' templates, cache first, the misses in one request (one by one if it is refused). */
async function embedAll(
  sources: ReembedSources,
  patterns: readonly KnownPattern[],
  options: ReembedOptions,
): Promise<Embedded[]> {
  const { embedder, cache } = sources;
  const keyOf = (p: KnownPattern) => embeddingCacheKey(embedder.model, p.error_hash, embedder.dimension);
  const cached = await cache.getMany(patterns.map(keyOf));
  const hits: Embedded[] = [];
  const misses: KnownPattern[] = [];
  patterns.forEach((pattern, i) => {
    const vector = cached[i];
    if (vector === null || vector === undefined) misses.push(pattern);
    else hits.push({ pattern, vector });
  });
  if (misses.length === 0) return hits;
  let vectors: Float32Array[];
  try {
    vectors = await options.attempt(() => embedder.embed(misses.map((p) => p.template)));
  } catch (error) {
    // A stop, a wrong configuration, or an outage `attempt` gave up on: no template is to blame.
    if (isRetriable(error) || isFatal(error)) throw error;
    if (misses.length === 1) {
      options.onRefused?.(misses[0]!.error_hash, error);
      return hits;
    }
    // Refused as a whole: each template alone, so only the one to blame is left out.
    const alone = await Promise.all(misses.map((p) => embedAll(sources, [p], options)));
    return [...hits, ...alone.flat()];
  }
  const fresh = misses.map((pattern, i) => ({ pattern, vector: vectors[i]! }));
  await cache.setMany(fresh.map((e) => ({ key: keyOf(e.pattern), vector: e.vector })));
  return [...hits, ...fresh];
}

/** The point vectorize would write for the pattern (src/sinks/pattern-vectors.ts). */
function pointOf(pattern: KnownPattern, vector: Float32Array, model: string): VectorPoint {
  return {
    errorHash: pattern.error_hash,
    vector: [...vector],
    payload: {
      error_hash: pattern.error_hash,
      template: pattern.template,
      // Vectorize writes the service of the pattern's first request; error_patterns keeps the set, sorted.
      service: pattern.services[0] ?? 'unknown',
      level: pattern.level,
      first_seen: new Date(`${pattern.first_seen.replace(' ', 'T')}Z`).toISOString(),
      model,
    },
  };
}
