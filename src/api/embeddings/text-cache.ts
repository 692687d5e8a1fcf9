/**
 * Embeddings of arbitrary texts with the embedding cache in front, for the
 * embeddings service. vectorize keys its cache by error hash
 * (src/pipelines/vectorize.ts); a service's caller sends text, so the key is
 * a digest of the text, under the model name and dimension: vectors of
 * another model or size are never served from it, whichever embedder the
 * process has by default.
 */
import { createHash } from 'node:crypto';
import type { Embedder } from '../../clients/embeddings.ts';
import type { EmbeddingCache } from '../../stores/embedding-cache.ts';

export function textCacheKey(model: string, dimension: number, text: string): string {
  return `${model}:${dimension}:${createHash('sha256').update(text).digest('base64url')}`;
}

export interface CachedEmbeddings {
  readonly vectors: Float32Array[];
  /** Distinct texts of the call answered from the cache, and embedded now. */
  readonly cacheHits: number;
  readonly embedded: number;
}

export async function embedWithCache(
  embedder: Embedder,
  cache: EmbeddingCache,
  texts: readonly string[],
): Promise<CachedEmbeddings> {
  // A batch often repeats a text (one template, many lines): each distinct text is looked up and embedded once.
  const distinct = [...new Set(texts)];
  const found = new Map<string, Float32Array>();
  // A remote embedder learns its dimension from its first answer; until then there is no key to read.
  const known = embedder.dimension;
  if (known !== undefined) {
    const cached = await cache.getMany(distinct.map((t) => textCacheKey(embedder.model, known, t)));
    cached.forEach((vector, i) => {
      if (vector !== null && vector.length === known) found.set(distinct[i]!, vector);
    });
  }
  const missing = distinct.filter((t) => !found.has(t));
  if (missing.length > 0) {
    const fresh = await embedder.embed(missing);
    missing.forEach((text, i) => found.set(text, fresh[i]!));
    await cache.setMany(
      missing.map((text, i) => ({ key: textCacheKey(embedder.model, fresh[i]!.length, text), vector: fresh[i]! })),
    );
  }
  return {
    vectors: texts.map((t) => found.get(t)!),
    cacheHits: distinct.length - missing.length,
    embedded: missing.length,
  };
}
