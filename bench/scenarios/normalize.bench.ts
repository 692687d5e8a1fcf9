/**
 * Message normalization on the eight labelled Loghub-2k samples: grouping
 * accuracy (GA, lines grouped by errorHash; original and Loghub-2.0 corrected
 * labels) and single-core throughput of `normalizeMessage`.
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
 * rate over equal numbers of lines from each dataset).
 */
import { normalizeMessage } from '../../src/domain/normalizer.ts';
import {
  groupingAccuracy,
  loadLoghubDataset,
  LOGHUB_DATASETS,
  LOGHUB_DIR,
  maskDigitTokens,
} from '../support/loghub.ts';
import type { LabelledDataset } from '../support/loghub.ts';
import { numberArg } from '../support/args.ts';
import type { Benchmark, BenchContext, BenchRow } from '../support/types.ts';

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

interface DatasetResult {
  readonly name: string;
  readonly gaOriginal: number;
  readonly gaCorrected: number;
  readonly baselineGaOriginal: number;
  readonly baselineGaCorrected: number;
  readonly linesPerSecond: number;
  readonly baselineLinesPerSecond: number;
}

function accuracy(dataset: LabelledDataset): Omit<DatasetResult, 'name' | 'linesPerSecond' | 'baselineLinesPerSecond'> {
  const hashes = dataset.messages.map((message) => normalizeMessage(message).errorHash);
  const baseline = dataset.messages.map(maskDigitTokens);
  return {
    gaOriginal: groupingAccuracy(hashes, dataset.originalLabels),
    gaCorrected: groupingAccuracy(hashes, dataset.correctedLabels),
    baselineGaOriginal: groupingAccuracy(baseline, dataset.originalLabels),
    baselineGaCorrected: groupingAccuracy(baseline, dataset.correctedLabels),
  };
}

const benchmark: Benchmark = {
  name: 'normalize',
  description:
    'Message normalization on Loghub-2k (8 datasets): grouping accuracy and single-core lines/s vs the digit-token masker',
  async run(ctx: BenchContext): Promise<readonly BenchRow[]> {
    const quick = ctx.args.includes('--quick');
    const seconds = numberArg(ctx.args, 'seconds', quick ? 0.25 : 1);
    const rounds = Math.floor(numberArg(ctx.args, 'rounds', quick ? 1 : 3));
    ctx.log(`datasets: ${LOGHUB_DIR}; ${rounds} round(s) of >= ${seconds} s per dataset and method`);

    const loading = ctx.phase('load datasets', LOGHUB_DATASETS.length);
    const datasets: LabelledDataset[] = [];
    for (const name of LOGHUB_DATASETS) {
      datasets.push(loadLoghubDataset(name));
      loading.tick(datasets.length);
    }
    loading.done();

    const all = datasets.flatMap((dataset) => dataset.messages);
    const warming = ctx.phase('warm up', 2);
    measure(passNormalizer, all, Math.min(1, seconds));
    warming.tick(1);
    measure(passBaseline, all, Math.min(1, seconds));
    warming.done();

    const results: DatasetResult[] = [];
    for (const dataset of datasets) {
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
      results.push({
        name: dataset.name,
        ...accuracy(dataset),
        linesPerSecond: best,
        baselineLinesPerSecond: bestBaseline,
      });
    }
    if (sink === 0) ctx.log('(no output measured)');

    const rows: BenchRow[] = [];
    for (const result of results) {
      const scenario = `normalize ${result.name}`;
      rows.push(
        {
          scenario,
          metric: 'GA (original labels)',
          value: result.gaOriginal,
          unit: 'fraction',
          baseline: result.baselineGaOriginal,
        },
        {
          scenario,
          metric: 'GA (corrected labels)',
          value: result.gaCorrected,
          unit: 'fraction',
          baseline: result.baselineGaCorrected,
        },
        {
          scenario,
          metric: 'throughput',
          value: result.linesPerSecond,
          unit: 'lines/s',
          baseline: result.baselineLinesPerSecond,
        },
      );
    }
    const scenario = `normalize average (${results.length} datasets)`;
    rows.push(
      {
        scenario,
        metric: 'GA (original labels)',
        value: mean(results.map((r) => r.gaOriginal)),
        unit: 'fraction',
        baseline: mean(results.map((r) => r.baselineGaOriginal)),
        target: GA_TARGET,
      },
      {
        scenario,
        metric: 'GA (corrected labels)',
        value: mean(results.map((r) => r.gaCorrected)),
        unit: 'fraction',
        baseline: mean(results.map((r) => r.baselineGaCorrected)),
      },
      {
        scenario,
        metric: 'throughput (harmonic mean)',
        value: harmonicMean(results.map((r) => r.linesPerSecond)),
        unit: 'lines/s',
        baseline: harmonicMean(results.map((r) => r.baselineLinesPerSecond)),
        target: THROUGHPUT_TARGET,
      },
    );
    return rows;
  },
};

export default benchmark;
