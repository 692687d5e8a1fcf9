/**
 * The paraphrase score (bench/support/paraphrases.ts) on vectors whose
 * answer is known by hand, and the set it is run on: enough pairs, every
 * message distinct, from the Loghub kinds and typical service errors.
 */
import { describe, expect, it } from 'vitest';
import { createLocalEmbedder } from '../../src/clients/embeddings.ts';
import {
  embedParaphrases,
  loadParaphrases,
  scoreEmbedderOnParaphrases,
  scoreParaphraseHalves,
  scoreParaphraseVectors,
  subsetNearestRate,
} from '../../bench/support/paraphrases.ts';

const unit = (...values: number[]): Float32Array => {
  const norm = Math.hypot(...values);
  return Float32Array.from(values, (v) => v / norm);
};

describe('scoreParaphraseVectors', () => {
  it('finds every paraphrase when each pair shares a direction of its own', () => {
    const vectors = [unit(1, 0, 0), unit(1, 0.1, 0), unit(0, 1, 0), unit(0, 1, 0.1), unit(0, 0, 1), unit(0.1, 0, 1)];
    const score = scoreParaphraseVectors(vectors);
    expect(score.pairs).toBe(3);
    expect(score.nearestHits).toBe(6);
    expect(score.nearestRate).toBe(1);
    expect(score.meanGap).toBeGreaterThan(0.9);
  });

  it('counts a message whose nearest is an unrelated one, or only ties with one, as a miss', () => {
    // Pair 0: (x, x+y); pair 1: (y, z). y is nearer to x+y than to z; z is equally far from all, so it ties.
    const vectors = [unit(1, 0, 0), unit(1, 1, 0), unit(0, 1, 0), unit(0, 0, 1)];
    const score = scoreParaphraseVectors(vectors);
    // x: x+y (0.71) beats y (0) and z (0): hit. x+y: x and y both 0.71, tie with unrelated y: miss.
    // y: z 0 vs x+y 0.71: miss. z: 0 to everyone, a tie: miss.
    expect(score.nearestHits).toBe(1);
    // Against the other side only: x's candidates are x+y and z (hit); x+y's are x and y, a tie (miss); y's are x+y
    // and z, x+y nearer (miss); z's are x and y, a tie at 0 (miss).
    expect(score.candidateRate).toBe(1 / 4);
    const s = Math.SQRT1_2;
    // Gaps per message: x: s - (0 + 0)/2; x+y: s - (s + 0)/2; y: 0 - (0 + s)/2; z: 0 - (0 + 0)/2.
    expect(score.meanGap).toBeCloseTo((s + s / 2 - s / 2 + 0) / 4, 6);
    expect(score.meanParaphraseSimilarity).toBeCloseTo(s / 2, 6);
  });

  it('places a paraphrase in the top 5 when fewer than 5 unrelated messages are nearer, though not first', () => {
    const vectors = [
      // Message 0's paraphrase (cosine 0.71) comes third, after both messages of the next pair (0.89).
      unit(1, 0, 0, 0),
      unit(1, 1, 0, 0),
      unit(1, 0, 0.5, 0),
      unit(1, 0, 0.5, 0.05),
      unit(0, 0, 0, 1),
      unit(0, 0, 0.05, 1),
      unit(0, 0, 1, 0),
      unit(0, 0, 1, 0.05),
    ];
    const score = scoreParaphraseVectors(vectors);
    expect(score.nearestHits).toBe(7);
    expect(score.top5Rate).toBe(1);
    // Against the other side: message 0's candidates are the paraphrases (odd), of which (1, 0, 0.5, 0.05) at 0.89
    // still beats its own (0.71); every other text's partner is its nearest candidate.
    expect(score.candidateRate).toBe(7 / 8);
  });

  it('averages the nearest rate over drawn subsets, which are easier when a set has near siblings', () => {
    // Pairs 0 and 1 are near each other's messages: 0's message is nearer to pair 1's than to its own paraphrase.
    const vectors = [
      unit(1, 0, 0, 0),
      unit(1, 1, 0, 0),
      unit(1, 0, 0.5, 0),
      unit(1, 0, 0.5, 0.05),
      unit(0, 0, 0, 1),
      unit(0, 0, 0.05, 1),
    ];
    expect(scoreParaphraseVectors(vectors).nearestRate).toBe(5 / 6);
    // Of the three 2-pair draws, the two without pair 1 or without pair 0 find every paraphrase.
    const drawn = subsetNearestRate(vectors, 2, 600, 7);
    expect(drawn).toBeGreaterThan(5 / 6);
    expect(drawn).toBeLessThan(1);
    expect(subsetNearestRate(vectors, 3, 10, 7)).toBeCloseTo(5 / 6, 12);
  });

  it('refuses a layout that is not whole pairs', () => {
    expect(() => scoreParaphraseVectors([unit(1, 0), unit(0, 1), unit(1, 1)])).toThrow(RangeError);
  });
});

describe('the paraphrase set', () => {
  const pairs = loadParaphrases();

  it('has at least 40 pairs of distinct messages over the Loghub kinds and service errors', () => {
    expect(pairs.length).toBeGreaterThanOrEqual(40);
    const texts = pairs.flatMap((p) => [p.message, p.paraphrase]);
    expect(new Set(texts).size).toBe(texts.length);
    const sources = new Set(pairs.map((p) => p.source));
    for (const kind of ['HDFS', 'Hadoop', 'Spark', 'Zookeeper', 'BGL', 'Apache', 'HealthApp', 'OpenSSH', 'service'])
      expect(sources, kind).toContain(kind);
  });

  it('is scored for any Embedder, here the hashing one', async () => {
    const embedder = createLocalEmbedder();
    const score = await scoreEmbedderOnParaphrases(embedder, pairs);
    await embedder.close();
    expect(score.pairs).toBe(pairs.length);
    expect(score.nearestRate).toBe(score.nearestHits / (2 * pairs.length));
    expect(score.meanGap).toBeCloseTo(score.meanParaphraseSimilarity - score.meanUnrelatedSimilarity, 6);
  });

  it('splits into a service half and a Loghub half, each scored on its own pairs only', async () => {
    const embedder = createLocalEmbedder();
    const vectors = await embedParaphrases(embedder, pairs);
    await embedder.close();
    const halves = scoreParaphraseHalves(vectors, pairs);
    const service = pairs.filter((p) => p.source === 'service').length;
    expect(service).toBeGreaterThanOrEqual(10);
    expect(halves.service.pairs).toBe(service);
    expect(halves.loghub.pairs).toBe(pairs.length - service);
    const serviceVectors = pairs.flatMap((p, i) =>
      p.source === 'service' ? [vectors[2 * i]!, vectors[2 * i + 1]!] : [],
    );
    expect(halves.service.meanGap).toBeCloseTo(scoreParaphraseVectors(serviceVectors).meanGap, 12);
    expect(() => scoreParaphraseHalves(vectors.slice(2), pairs)).toThrow(RangeError);
  });
});
