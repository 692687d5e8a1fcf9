/**
 * Calibration of the similarity thresholds of an embedding space
 * (src/domain/novelty.ts: the novelty threshold and the "similar patterns"
 * cut-off) on labelled logs: the Loghub-2k samples (bench/support/loghub.ts),
 * where every line carries the event (true template) it belongs to.
 *
 * Each dataset is replayed in line order as vectorize sees it: a line's
 * pattern is its normalized template (src/domain/normalizer.ts), and a
 * pattern is judged when its error hash is first seen, against every pattern
 * stored before it (the nearest stored pattern's cosine similarity). Two kinds
 * of judged patterns, by the labels:
 * - known: its event was seen before under another hash (the normalizer kept a
 *   value the earlier hash had another of): it must not be novel;
 * - new: the first pattern of an event not seen before: it must be novel.
 * The first pattern of a dataset has nothing to be compared with and is left
 * out. The normalizer masks most values, so few known patterns come up by
 * themselves (1 in the tuning half, 15 in the other): more are made the way
 * they arise, by giving one placeholder of an event's template back the value
 * the event's last line has there (a value the normalizer might have kept: a
 * word, a name), for up to VARIANT_SLOTS placeholders per event, each judged
 * against every pattern of its dataset. For the "similar" cut-off, every
 * pattern's nearest pattern of the other datasets of the same half (another
 * system: certainly unrelated) gives the similarity an unrelated neighbour
 * reaches.
 *
 * Thresholds are chosen on one half of the datasets and reported on the other
 * (bench/scenarios/calibrate-thresholds.bench.ts).
 */
import { createLocalEmbedder, openEmbedder, type Embedder } from '../../src/clients/embeddings.ts';
import { loadConfig } from '../../src/core/config.ts';
import { normalizeMessage } from '../../src/domain/normalizer.ts';
import { isNovel } from '../../src/domain/novelty.ts';
import type { LabelledDataset } from './loghub.ts';

/** Tuning and held-out halves: every other dataset of LOGHUB_DATASETS' order, fixed before any figure was seen. */
export const TUNING_DATASETS = ['HDFS', 'Spark', 'BGL', 'HealthApp'] as const;
export const HELD_OUT_DATASETS = ['Hadoop', 'Zookeeper', 'Apache', 'OpenSSH'] as const;

export interface StoredPattern {
  readonly dataset: string;
  readonly template: string;
  /** The event (Loghub-2.0 corrected EventId) of the pattern's first line. */
  readonly event: string;
  readonly vector: Float32Array;
}

export interface JudgedCase {
  readonly dataset: string;
  readonly kind: 'known' | 'new';
  readonly template: string;
  readonly nearest: number;
  readonly nearestTemplate: string;
}

/** Placeholders per event given their value back: more would let events with many placeholders dominate. */
export const VARIANT_SLOTS = 3;

const PLACEHOLDER = '<*>';

/**
 * `template` with its `slot`-th placeholder replaced by the value `message`
 * has there, undefined when the message does not fit the template (the
 * normalizer changed more than values) or the value is empty.
 */
export function keepOneValue(template: string, message: string, slot: number): string | undefined {
  const parts = template.split(PLACEHOLDER);
  if (slot < 0 || slot >= parts.length - 1) return undefined;
  const escaped = parts.map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  const match = new RegExp(`^${escaped.join('(.*?)')}$`, 's').exec(message);
  const value = match?.[slot + 1];
  if (value === undefined || value === '') return undefined;
  return parts.slice(0, slot + 1).join(PLACEHOLDER) + value + parts.slice(slot + 1).join(PLACEHOLDER);
}

export type Embed = (texts: readonly string[]) => Promise<Float32Array[]>;

function dot(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i]! * b[i]!;
  return sum;
}

/** A dataset's patterns in order of first sight, embedded. */
export async function datasetPatterns(dataset: LabelledDataset, embed: Embed): Promise<StoredPattern[]> {
  const seen = new Set<string>();
  const firsts: { template: string; event: string }[] = [];
  dataset.messages.forEach((message, i) => {
    const { template, errorHash } = normalizeMessage(message);
    if (seen.has(errorHash)) return;
    seen.add(errorHash);
    firsts.push({ template, event: dataset.correctedLabels[i]! });
  });
  const vectors = await embed(firsts.map((f) => f.template));
  return firsts.map((f, i) => ({ dataset: dataset.name, ...f, vector: vectors[i]! }));
}

/** The judged patterns of one dataset's replay, each with its nearest earlier pattern. */
export function judgeReplay(patterns: readonly StoredPattern[]): JudgedCase[] {
  const cases: JudgedCase[] = [];
  const events = new Set<string>();
  patterns.forEach((pattern, i) => {
    if (i > 0) {
      let best = -Infinity;
      let bestTemplate = '';
      for (let j = 0; j < i; j++) {
        const score = dot(pattern.vector, patterns[j]!.vector);
        if (score > best) {
          best = score;
          bestTemplate = patterns[j]!.template;
        }
      }
      cases.push({
        dataset: pattern.dataset,
        kind: events.has(pattern.event) ? 'known' : 'new',
        template: pattern.template,
        nearest: best,
        nearestTemplate: bestTemplate,
      });
    }
    events.add(pattern.event);
  });
  return cases;
}

/**
 * Known patterns made from each event's first template and its last line
 * (keepOneValue), judged against every pattern of the dataset.
 */
export async function knownVariants(
  dataset: LabelledDataset,
  patterns: readonly StoredPattern[],
  embed: Embed,
): Promise<JudgedCase[]> {
  const lastLine = new Map<string, string>();
  dataset.messages.forEach((message, i) => lastLine.set(dataset.correctedLabels[i]!, message));
  const variants: string[] = [];
  const seenEvents = new Set<string>();
  const stored = new Set(patterns.map((p) => p.template));
  for (const pattern of patterns) {
    if (seenEvents.has(pattern.event)) continue;
    seenEvents.add(pattern.event);
    const line = lastLine.get(pattern.event)!;
    for (
      let slot = 0, made = 0;
      made < VARIANT_SLOTS && slot < pattern.template.split(PLACEHOLDER).length - 1;
      slot++
    ) {
      const variant = keepOneValue(pattern.template, line, slot);
      if (variant === undefined || stored.has(variant)) continue;
      variants.push(variant);
      made++;
    }
  }
  const vectors = await embed(variants);
  return variants.map((template, i) => {
    let best = -Infinity;
    let bestTemplate = '';
    for (const pattern of patterns) {
      const score = dot(vectors[i]!, pattern.vector);
      if (score > best) {
        best = score;
        bestTemplate = pattern.template;
      }
    }
    return { dataset: dataset.name, kind: 'known', template, nearest: best, nearestTemplate: bestTemplate };
  });
}

/** Per pattern, its nearest pattern among those of the other datasets: how near an unrelated neighbour comes. */
export function nearestUnrelated(byDataset: readonly (readonly StoredPattern[])[]): number[] {
  const out: number[] = [];
  byDataset.forEach((patterns, d) => {
    for (const pattern of patterns) {
      let best = -Infinity;
      byDataset.forEach((others, e) => {
        if (e === d) return;
        for (const other of others) best = Math.max(best, dot(pattern.vector, other.vector));
      });
      out.push(best);
    }
  });
  return out;
}

export interface NoveltyFigures {
  readonly threshold: number;
  readonly newCases: number;
  /** New patterns judged novel. */
  readonly found: number;
  readonly knownCases: number;
  /** Known patterns judged novel: false alerts. */
  readonly falseNovel: number;
}

export function noveltyFigures(cases: readonly JudgedCase[], threshold: number): NoveltyFigures {
  const fresh = cases.filter((c) => c.kind === 'new');
  const known = cases.filter((c) => c.kind === 'known');
  return {
    threshold,
    newCases: fresh.length,
    found: fresh.filter((c) => isNovel(c.nearest, threshold)).length,
    knownCases: known.length,
    falseNovel: known.filter((c) => isNovel(c.nearest, threshold)).length,
  };
}

/**
 * The threshold that best separates the two kinds: the largest share of new
 * patterns found minus share of known ones falsely flagged (Youden's J), at
 * the middle of the lowest range of thresholds that reaches it (on a tie, the
 * one raising fewer alerts), rounded to
 * two decimals (a threshold finer than that is noise on a few hundred cases).
 */
export function bestSeparatingThreshold(cases: readonly JudgedCase[]): number {
  const values = [...new Set(cases.map((c) => c.nearest))].sort((a, b) => a - b);
  if (values.length === 0) throw new RangeError('no judged patterns to calibrate on');
  const fresh = cases.filter((c) => c.kind === 'new').length;
  const known = cases.filter((c) => c.kind === 'known').length;
  if (fresh === 0 || known === 0) throw new RangeError('calibration needs both new and known patterns');
  // A threshold between two consecutive values gives the same verdicts anywhere in that gap.
  const candidates = [values[0]! - 0.01, ...values.slice(1).map((v, i) => (v + values[i]!) / 2), values.at(-1)! + 0.01];
  let bestJ = -Infinity;
  let bestRange: [number, number] = [candidates[0]!, candidates[0]!];
  let runStart: number | undefined;
  for (const [i, t] of candidates.entries()) {
    const f = noveltyFigures(cases, t);
    const j = f.found / fresh - f.falseNovel / known;
    if (j > bestJ + 1e-12) {
      bestJ = j;
      runStart = i;
      bestRange = [t, t];
    } else if (Math.abs(j - bestJ) <= 1e-12 && runStart !== undefined) {
      // Only a contiguous run widens the range: a later tie elsewhere is another range.
      if (candidates[i - 1] === bestRange[1]) bestRange = [bestRange[0], t];
    }
  }
  return Math.round(((bestRange[0] + bestRange[1]) / 2) * 100) / 100;
}

/** The share of `values` at or above `cut`. */
export function shareAtLeast(values: readonly number[], cut: number): number {
  return values.length === 0 ? 0 : values.filter((v) => v >= cut).length / values.length;
}

/** The `q` quantile (0..1) of `values`, linear between order statistics. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) throw new RangeError('quantile of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const at = q * (sorted.length - 1);
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo);
}

/** The hashing embedder, and the default one (openEmbedder: the local model when its files are present) beside it. */
export async function benchEmbedders(): Promise<Embedder[]> {
  const hashing = createLocalEmbedder();
  const chosen = openEmbedder(loadConfig());
  if (chosen.model !== hashing.model) return [hashing, chosen];
  await chosen.close();
  return [hashing];
}
