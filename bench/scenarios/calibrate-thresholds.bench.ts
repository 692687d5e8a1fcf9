/**
 * Chooses the similarity thresholds of each embedding space on labelled logs
 * and reports how they do on logs they were not chosen on
 * (bench/support/novelty-calibration.ts has the method; README.md,
 * "Thresholds per embedding space", how to recalibrate for another model).
 * Both the hashing embedder and the default one (the local model when its
 * files are present) run in the same process, on the same cases.
 *
 * - novelty threshold: on the tuning half of Loghub-2k, the threshold that
 *   best separates new events' first patterns (must be novel) from known
 *   events' patterns seen again with a value kept (must not be);
 * - "similar" cut-off: the 95th percentile of each tuning pattern's nearest
 *   pattern from another system (certainly unrelated), no higher than the
 *   novelty threshold (what keeps a pattern from being novel is similar).
 * The held-out half gives the figures; the paraphrase pairs
 * (test/fixtures/log-paraphrases.json), never tuned on, say how a message in
 * other words fares.
 */
import type { Embedder } from '../../src/clients/embeddings.ts';
import { spaceThresholds } from '../../src/domain/novelty.ts';
import { loadLoghubDataset } from '../support/loghub.ts';
import {
  benchEmbedders,
  bestSeparatingThreshold,
  datasetPatterns,
  HELD_OUT_DATASETS,
  judgeReplay,
  knownVariants,
  nearestUnrelated,
  noveltyFigures,
  quantile,
  shareAtLeast,
  TUNING_DATASETS,
  type JudgedCase,
  type StoredPattern,
} from '../support/novelty-calibration.ts';
import { loadParaphrases } from '../support/paraphrases.ts';
import type { Benchmark, BenchContext, BenchOutput, BenchRow } from '../support/types.ts';

/** Share of patterns allowed an unrelated neighbour above the "similar" cut-off. */
const UNRELATED_QUANTILE = 0.95;

interface Half {
  readonly cases: JudgedCase[];
  readonly patterns: StoredPattern[][];
}

async function half(names: readonly string[], embedder: Embedder): Promise<Half> {
  const embed = (texts: readonly string[]) => embedder.embed(texts);
  const cases: JudgedCase[] = [];
  const patterns: StoredPattern[][] = [];
  for (const name of names) {
    const dataset = loadLoghubDataset(name);
    const stored = await datasetPatterns(dataset, embed);
    patterns.push(stored);
    cases.push(...judgeReplay(stored), ...(await knownVariants(dataset, stored, embed)));
  }
  return { cases, patterns };
}

export interface Calibration {
  readonly novelty: number;
  readonly similar: number;
}

export function calibrate(tuning: Half): Calibration {
  const novelty = bestSeparatingThreshold(tuning.cases);
  const unrelated = Math.round(quantile(nearestUnrelated(tuning.patterns), UNRELATED_QUANTILE) * 100) / 100;
  return { novelty, similar: Math.min(novelty, unrelated) };
}

function dot(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i]! * b[i]!;
  return sum;
}

const benchmark: Benchmark = {
  name: 'calibrate-thresholds',
  description:
    'novelty threshold and "similar" cut-off per embedder: chosen on half of Loghub-2k, reported on the other half',
  async run(ctx: BenchContext): Promise<BenchOutput> {
    const rows: BenchRow[] = [];
    const notes: string[] = [
      `tuning datasets: ${TUNING_DATASETS.join(', ')}; held out: ${HELD_OUT_DATASETS.join(', ')}`,
    ];
    const embedders = await benchEmbedders();
    const pairs = loadParaphrases();
    try {
      for (const embedder of embedders) {
        const phase = ctx.phase(embedder.model, 2);
        const tuning = await half(TUNING_DATASETS, embedder);
        phase.tick(1);
        const heldOut = await half(HELD_OUT_DATASETS, embedder);
        phase.done();
        const chosen = calibrate(tuning);
        const inUse = spaceThresholds(embedder.model);
        const m = embedder.model;
        rows.push(
          {
            scenario: `${m}: chosen on tuning half`,
            metric: 'novelty threshold',
            value: chosen.novelty,
            unit: 'cosine',
          },
          { scenario: `${m}: chosen on tuning half`, metric: 'similar cut-off', value: chosen.similar, unit: 'cosine' },
          {
            scenario: `${m}: in use (src/domain/novelty.ts)`,
            metric: 'novelty threshold',
            value: inUse.novelty,
            unit: 'cosine',
          },
          {
            scenario: `${m}: in use (src/domain/novelty.ts)`,
            metric: 'similar cut-off',
            value: inUse.similar,
            unit: 'cosine',
          },
        );
        const thresholds = [...new Set([chosen.novelty, inUse.novelty])];
        for (const [label, data] of [
          ['tuning', tuning],
          ['held-out', heldOut],
        ] as const) {
          for (const threshold of thresholds) {
            const f = noveltyFigures(data.cases, threshold);
            const scenario = `${m}, ${label}, novelty at ${threshold}`;
            rows.push(
              { scenario, metric: `new events found (of ${f.newCases})`, value: f.found / f.newCases, unit: 'share' },
              {
                scenario,
                metric: `known patterns falsely novel (of ${f.knownCases})`,
                value: f.falseNovel / f.knownCases,
                unit: 'share',
              },
            );
          }
          const unrelated = nearestUnrelated(data.patterns);
          const known = data.cases.filter((c) => c.kind === 'known').map((c) => c.nearest);
          rows.push(
            {
              scenario: `${m}, ${label}, similar at ${inUse.similar}`,
              metric: `patterns whose nearest other-system pattern is listed (of ${unrelated.length})`,
              value: shareAtLeast(unrelated, inUse.similar),
              unit: 'share',
            },
            {
              scenario: `${m}, ${label}, similar at ${inUse.similar}`,
              metric: `known patterns whose nearest is listed (of ${known.length})`,
              value: shareAtLeast(known, inUse.similar),
              unit: 'share',
            },
          );
        }
        const vectors = await embedder.embed(pairs.flatMap((p) => [p.message, p.paraphrase]));
        const paraphrase = pairs.map((_, i) => dot(vectors[2 * i]!, vectors[2 * i + 1]!));
        rows.push(
          {
            scenario: `${m}, ${pairs.length} paraphrase pairs (never tuned on)`,
            metric: `paraphrase at least the similar cut-off ${inUse.similar}`,
            value: shareAtLeast(paraphrase, inUse.similar),
            unit: 'share',
          },
          {
            scenario: `${m}, ${pairs.length} paraphrase pairs (never tuned on)`,
            metric: `paraphrase at least the novelty threshold ${inUse.novelty}`,
            value: shareAtLeast(paraphrase, inUse.novelty),
            unit: 'share',
          },
        );
        const sorted = (values: number[]) => values.map((v) => v.toFixed(2));
        const q = (values: number[]) => sorted([0.1, 0.25, 0.5, 0.75, 0.9].map((p) => quantile(values, p))).join(' / ');
        for (const [label, data] of [
          ['tuning', tuning],
          ['held-out', heldOut],
        ] as const) {
          const known = data.cases.filter((c) => c.kind === 'known').map((c) => c.nearest);
          const fresh = data.cases.filter((c) => c.kind === 'new').map((c) => c.nearest);
          notes.push(
            `${m}, ${label}: nearest similarity p10/p25/p50/p75/p90: known ${q(known)}; new ${q(fresh)}; ` +
              `nearest other-system ${q(nearestUnrelated(data.patterns))}`,
          );
        }
        if (inUse.calibrated && (inUse.novelty !== chosen.novelty || inUse.similar !== chosen.similar))
          notes.push(
            `${m}: src/domain/novelty.ts uses ${inUse.novelty} / ${inUse.similar}, this run chose ${chosen.novelty} / ${chosen.similar}` +
              (m === 'logflow-local-hash-v1' ? ' (the hashing embedder keeps the 0.85 operators tuned against)' : ''),
          );
      }
    } finally {
      await Promise.all(embedders.map((e) => e.close()));
    }
    return { rows, notes };
  },
};

export default benchmark;
