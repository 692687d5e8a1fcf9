/**
 * Message normalization on the eight labelled Loghub-2k samples: how lines
 * are grouped by errorHash, scored with grouping accuracy (GA) and Loghub-2.0's
 * F1 of grouping (FGA), on the original and the corrected labels, and
 * single-core throughput of `normalizeMessage`.
 *
 * Validation as a held-out check would do it, leave one dataset out: each of
 * the 8 folds holds one dataset out, chooses whatever is chosen from data on
 * the other 7 and scores the held-out one. The normalizer has one fixed
 * configuration: no rule, list or threshold of src/domain/normalizer.ts is
 * fitted by code, so nothing is chosen per fold and a fold's held-out score is
 * its dataset's score; the worst fold is reported beside the mean. What no
 * fold can undo is that the rules were written by people who saw all 8.
 *
 * Baseline, measured in the same run: the trivial masker from the datasets'
 * README (every whitespace-separated token containing a digit becomes `<*>`),
 * grouped by its template. Its throughput is for the template alone, without
 * any hashing, so the ratio understates what the normalizer does per line.
 *
 * Throughput: after a warm-up, each measurement repeats the dataset until at
 * least `--seconds` (default 1; `--quick`: 0.25) have passed; the best of
 * `--rounds` (default 3; `--quick`: 1) measurements is kept, alternating
 * normalizer and baseline, since other work on the machine only slows a run
 * down. The average row uses the harmonic mean of the per-dataset rates (the
 * rate over equal numbers of lines from each dataset). `--accuracy-only` skips
 * the throughput measurements.
 */
import { normalizeMessage } from '../../src/domain/normalizer.ts';
import { groupingScores, loadLoghubDataset, LOGHUB_DATASETS, LOGHUB_DIR, maskDigitTokens } from '../support/loghub.ts';
import type { GroupingScores, LabelledDataset } from '../support/loghub.ts';
import { numberArg } from '../support/args.ts';
import type { Benchmark, BenchContext, BenchOutput, BenchRow } from '../support/types.ts';

const GA_TARGET = '>= 0.95 (average)';
const THROUGHPUT_TARGET = '>= 1,000,000 lines/s';

/** Keeps results observable so the JIT cannot drop the work. */
let sink = 0;

function passNormalizer(messages: readonly string[]): void {
  for (let i = 0; i < messages.length; i++) sink += normalizeMessage(messages[i] as string).errorHash.length;
}

function passBaseline(messages: readonly string[]): void {
  for (let i = 0; i < messages.length; i++) sink += maskDigitTokens(messages[i] as string).length;
}

/** Lines per second of one measurement: whole passes over the dataset until `seconds` have passed. */
function measure(pass: (messages: readonly string[]) => void, messages: readonly string[], seconds: number): number {
  const started = performance.now();
  let lines = 0;
  let elapsed = 0;
  do {
    pass(messages);
    lines += messages.length;
    elapsed = (performance.now() - started) / 1000;
  } while (elapsed < seconds);
  return lines / elapsed;
}

function harmonicMean(values: readonly number[]): number {
  return values.length / values.reduce((sum, value) => sum + 1 / value, 0);
}

function mean(values: readonly number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

/** One grouping of a dataset scored against both label sets. */
interface Scores {
  readonly original: GroupingScores;
  readonly corrected: GroupingScores;
}

interface DatasetResult {
  readonly name: string;
  readonly normalizer: Scores;
  readonly baseline: Scores;
  /** Undefined with `--accuracy-only`. */
  readonly linesPerSecond?: number;
  readonly baselineLinesPerSecond?: number;
}

function scores(predicted: readonly string[], dataset: LabelledDataset): Scores {
  return {
    original: groupingScores(predicted, dataset.originalLabels),
    corrected: groupingScores(predicted, dataset.correctedLabels),
  };
}

type Metric = (scores: Scores) => number;

const METRICS: readonly (readonly [string, Metric])[] = [
  ['GA (original labels)', (s) => s.original.ga],
  ['GA (corrected labels)', (s) => s.corrected.ga],
  ['FGA (original labels)', (s) => s.original.fga],
  ['FGA (corrected labels)', (s) => s.corrected.fga],
];

interface Fold {
  readonly heldOut: DatasetResult;
  readonly training: readonly DatasetResult[];
}

/**
 * The leave-one-dataset-out folds. Nothing is fitted on `training` (see the file comment); were a threshold or a list
 * ever chosen from data, it would be chosen here, on the fold's 7 training sets, and the held-out set scored with it.
 */
function leaveOneDatasetOut(results: readonly DatasetResult[]): Fold[] {
  return results.map((heldOut) => ({ heldOut, training: results.filter((result) => result !== heldOut) }));
}

function accuracyRows(results: readonly DatasetResult[]): BenchRow[] {
  const rows: BenchRow[] = [];
  const folds = leaveOneDatasetOut(results);
  for (const { heldOut } of folds) {
    for (const [metric, of] of METRICS) {
      rows.push({
        scenario: `normalize ${heldOut.name} (LODO fold: held out)`,
        metric,
        value: of(heldOut.normalizer),
        unit: 'fraction',
        baseline: of(heldOut.baseline),
      });
    }
  }
  for (const [metric, of] of METRICS) {
    rows.push({
      scenario: `normalize dev: mean of all ${results.length} datasets`,
      metric,
      value: mean(results.map((r) => of(r.normalizer))),
      unit: 'fraction',
      baseline: mean(results.map((r) => of(r.baseline))),
      ...(metric === 'GA (original labels)' ? { target: GA_TARGET } : {}),
    });
  }
  for (const [metric, of] of METRICS) {
    const worst = folds.reduce((a, b) => (of(b.heldOut.normalizer) < of(a.heldOut.normalizer) ? b : a));
    rows.push({
      scenario: `normalize LODO worst fold: ${worst.heldOut.name} held out`,
      metric,
      value: of(worst.heldOut.normalizer),
      unit: 'fraction',
      baseline: of(worst.heldOut.baseline),
    });
  }
  return rows;
}

function throughputRows(results: readonly DatasetResult[]): BenchRow[] {
  const rows: BenchRow[] = [];
  const measured = results.flatMap((r) =>
    r.linesPerSecond === undefined || r.baselineLinesPerSecond === undefined
      ? []
      : [{ name: r.name, value: r.linesPerSecond, baseline: r.baselineLinesPerSecond }],
  );
  if (measured.length === 0) return rows;
  for (const { name, value, baseline } of measured) {
    rows.push({ scenario: `normalize ${name}`, metric: 'throughput', value, unit: 'lines/s', baseline });
  }
  rows.push({
    scenario: `normalize dev: all ${measured.length} datasets`,
    metric: 'throughput (harmonic mean)',
    value: harmonicMean(measured.map((m) => m.value)),
    unit: 'lines/s',
    baseline: harmonicMean(measured.map((m) => m.baseline)),
    target: THROUGHPUT_TARGET,
  });
  return rows;
}

const benchmark: Benchmark = {
  name: 'normalize',
  description:
    'Message normalization on Loghub-2k (8 datasets): GA and FGA per dataset, dev and leave-one-dataset-out, and single-core lines/s vs the digit-token masker',
  async run(ctx: BenchContext): Promise<BenchOutput> {
    const quick = ctx.args.includes('--quick');
    const accuracyOnly = ctx.args.includes('--accuracy-only');
    const seconds = numberArg(ctx.args, 'seconds', quick ? 0.25 : 1);
    const rounds = Math.floor(numberArg(ctx.args, 'rounds', quick ? 1 : 3));
    ctx.log(
      accuracyOnly
        ? `datasets: ${LOGHUB_DIR}; accuracy only`
        : `datasets: ${LOGHUB_DIR}; ${rounds} round(s) of >= ${seconds} s per dataset and method`,
    );

    const loading = ctx.phase('load datasets', LOGHUB_DATASETS.length);
    const datasets: LabelledDataset[] = [];
    for (const name of LOGHUB_DATASETS) {
      datasets.push(loadLoghubDataset(name));
      loading.tick(datasets.length);
    }
    loading.done();

    if (!accuracyOnly) {
      const all = datasets.flatMap((dataset) => dataset.messages);
      const warming = ctx.phase('warm up', 2);
      measure(passNormalizer, all, Math.min(1, seconds));
      warming.tick(1);
      measure(passBaseline, all, Math.min(1, seconds));
      warming.done();
    }

    const results: DatasetResult[] = [];
    for (const dataset of datasets) {
      const accuracy = {
        name: dataset.name,
        normalizer: scores(
          dataset.messages.map((message) => normalizeMessage(message).errorHash),
          dataset,
        ),
        baseline: scores(dataset.messages.map(maskDigitTokens), dataset),
      };
      if (accuracyOnly) {
        results.push(accuracy);
        continue;
      }
      const progress = ctx.phase(`throughput ${dataset.name}`, rounds * 2);
      let best = 0;
      let bestBaseline = 0;
      for (let round = 0; round < rounds; round++) {
        best = Math.max(best, measure(passNormalizer, dataset.messages, seconds));
        progress.tick(round * 2 + 1);
        bestBaseline = Math.max(bestBaseline, measure(passBaseline, dataset.messages, seconds));
        progress.tick(round * 2 + 2);
      }
      progress.done();
      results.push({ ...accuracy, linesPerSecond: best, baselineLinesPerSecond: bestBaseline });
    }
    if (sink === 0 && !accuracyOnly) ctx.log('(no output measured)');

    return {
      rows: [...accuracyRows(results), ...throughputRows(results)],
      notes: [
        "LODO: the configuration is fixed (no rule, list or threshold is chosen from data), so each fold chooses nothing on its 7 training sets and its held-out score is that dataset's score.",
        'FGA: Loghub-2.0 F1 of grouping (a predicted group is correct when it equals one true group exactly).',
      ],
    };
  },
};

export default benchmark;
