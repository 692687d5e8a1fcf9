/**
 * The novelty decision of vectorize (src/sinks/pattern-vectors.ts), free of
 * I/O so that it can be measured on its own (bench/scenarios/detect-novelty.bench.ts)
 * with the same rules the pipeline applies.
 */

export interface NoveltyContext {
  /** The pattern already has a stored embedding: it was judged when first seen. */
  readonly alreadyEmbedded: boolean;
  /** Event time of the pattern's request, epoch ms. */
  readonly timestamp: number;
  /** Start of the pattern history, epoch ms. */
  readonly historyStart: number;
  /** Every pattern is new to a fresh system: novelty is judged only after this much event time of history. */
  readonly learningPeriodMs: number;
}

/** Whether a pattern is judged for novelty at all: seen for the first time, after the learning period. */
export function judgedForNovelty(context: NoveltyContext): boolean {
  return !context.alreadyEmbedded && context.timestamp >= context.historyStart + context.learningPeriodMs;
}

/**
 * A judged pattern is novel when no other stored pattern is at least `threshold` similar (cosine similarity);
 * `nearestSimilarity` is undefined when the store holds no other pattern.
 */
export function isNovel(nearestSimilarity: number | undefined, threshold: number): boolean {
  return nearestSimilarity === undefined || nearestSimilarity < threshold;
}
