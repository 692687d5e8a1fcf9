/**
 * A deterministic stand-in for the embeddings endpoint, for benchmarks on a
 * machine with no model: a hashed bag of the text's words and their character
 * trigrams, L2-normalized. Similar wording gives similar vectors; meaning does
 * not, so novelty figures measured with it say how the decision and the
 * normalizer behave on lexical similarity, not how a real model would score.
 */
import { createHash } from 'node:crypto';

export const HASHED_EMBEDDING_DIMENSION = 512;
const TRIGRAM_WEIGHT = 0.5;

function addFeature(vector: Float32Array, feature: string, weight: number): void {
  const digest = createHash('sha1').update(feature).digest();
  const index = digest.readUInt32BE(0) % vector.length;
  // A sign per feature keeps unrelated features from adding up on a shared slot (the hashing trick).
  vector[index]! += (digest[4]! & 1) === 0 ? weight : -weight;
}

export function hashedEmbedding(text: string, dimension = HASHED_EMBEDDING_DIMENSION): Float32Array {
  if (!Number.isSafeInteger(dimension) || dimension < 1)
    throw new RangeError(`dimension must be a positive integer, got ${dimension}`);
  const vector = new Float32Array(dimension);
  // The normalizer's <*> is left out: it stands for values, not for what a message is about.
  for (const word of text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []) {
    addFeature(vector, `w:${word}`, 1);
    const padded = `^${word}$`;
    for (let i = 0; i + 3 <= padded.length; i++) addFeature(vector, `t:${padded.slice(i, i + 3)}`, TRIGRAM_WEIGHT);
  }
  let norm = 0;
  for (const value of vector) norm += value * value;
  norm = Math.sqrt(norm);
  if (norm > 0) for (let i = 0; i < vector.length; i++) vector[i]! /= norm;
  return vector;
}

export function cosine(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new RangeError(`vectors of ${a.length} and ${b.length} dimensions`);
  let dot = 0;
  let normA = 0;
  let normB = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    normA += a[i]! * a[i]!;
    normB += b[i]! * b[i]!;
  }
  return normA === 0 || normB === 0 ? 0 : dot / Math.sqrt(normA * normB);
}
