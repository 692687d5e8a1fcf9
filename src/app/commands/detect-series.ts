/**
 * `logflow detect-series`: the detector replayed on one labelled series, so it
 * can be evaluated on data it was never tuned on. Reads CSV `timestamp,value`
 * (a header line, then one row per window of a regular interval), takes the
 * first `--train-rows` rows as history for the baselines and every later row
 * as one closed window whose count is `value`, and prints `timestamp,kind,score`
 * for each alert that opens.
 *
 * No second detector: baselines come from src/domain/series-baselines.ts (the
 * statistics the baseline job computes in ClickHouse), recomputed on the
 * baseline job's schedule over its look-back, as the `baselines` pipeline
 * does while `detect` runs; windows go through the same `scoreWindows` and
 * `alertLifecycle` operators as in src/pipelines/detect.ts, with the default
 * detector and lifecycle settings. Only what is measured in time or in
 * samples per slot is scaled from the pipeline's 1-minute windows to the
 * series' interval (`scaledSettings`). The levels that adapt the baselines
 * between weekly runs (src/domain/adaptive-level.ts) and the series' last
 * window towards a sparse run (src/domain/sparse-runs.ts) are kept as `detect`
 * keeps them per partition.
 */
import { StringDecoder } from 'node:string_decoder';
import { filter, from, lastValueFrom, map, tap, toArray } from 'rxjs';
import { z } from 'zod';
import {
  AdaptiveLevels,
  DEFAULT_ADAPTIVE_LEVEL_SETTINGS,
  type AdaptiveLevelSettings,
} from '../../domain/adaptive-level.ts';
import {
  AlertLifecycleState,
  DEFAULT_DETECTOR_SETTINGS,
  DEFAULT_LIFECYCLE_SETTINGS,
  DEFAULT_MIN_BASELINE_SAMPLES,
  indexBaselines,
  lookupBaseline,
  type BaselineIndex,
  type LifecycleSettings,
  type SeriesKey,
} from '../../domain/anomaly.ts';
import { computeSeriesBaselines, type WindowCount } from '../../domain/series-baselines.ts';
import { SparseRuns } from '../../domain/sparse-runs.ts';
import { ConfigError, InputError } from '../../core/errors.ts';
import { parseTimestamp } from '../../core/timestamp.ts';
import { alertLifecycle } from '../../operators/alertLifecycle.ts';
import { scoreWindows } from '../../operators/scoreWindows.ts';
import { DEFAULT_BASELINES_CRON } from '../../pipelines/baselines.ts';
import { parseCron } from '../../sources/schedule.ts';

/** One data row of the input. */
export interface SeriesRow {
  /** 1-based line number in the input, for error messages. */
  readonly line: number;
  /** The timestamp as written, echoed in the output so alerts join back to the input. */
  readonly timestamp: string;
  readonly start: number;
  readonly value: number;
}

export interface SeriesOpening {
  readonly timestamp: string;
  readonly kind: string;
  readonly score: number;
}

/** The share of rows taken as history when `--train-rows` is not given. */
export const DEFAULT_TRAIN_FRACTION = 0.15;
/** The baseline job's default look-back (src/pipelines/baselines.ts, `baselines.weeks`). */
const BASELINE_WEEKS = 4;
const PIPELINE_WINDOW_MS = 60_000;
/** Fewest samples a slot needs to be judged by itself at any interval; see `scaledSettings`. */
const MIN_SLOT_SAMPLES = 8;
const SERIES: SeriesKey = { service: 'series', environment: 'detect-series', level: 'INFO' };
const WEEK_MS = 7 * 86_400_000;

export const detectSeriesOptionsSchema = z
  .object({
    trainRows: z
      .string()
      .regex(/^\d+$/, 'must be a whole number of rows')
      .transform(Number)
      .pipe(z.number().int().min(1, 'must be at least 1'))
      .optional(),
  })
  .strict();

export type DetectSeriesOptions = z.input<typeof detectSeriesOptionsSchema>;

const VALUE = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

function unquote(field: string): string {
  const trimmed = field.trim();
  return trimmed.length >= 2 && trimmed.startsWith('"') && trimmed.endsWith('"') ? trimmed.slice(1, -1) : trimmed;
}

/**
 * Parses the CSV text: a header line, then `timestamp,value` rows (blank lines
 * skipped). Throws an InputError naming the line and the reason for the first
 * bad row, or for a series that is not at a regular interval.
 */
export function parseSeriesCsv(text: string): { readonly rows: SeriesRow[]; readonly intervalMs: number } {
  const lines = text.split('\n');
  const rows: SeriesRow[] = [];
  let header = false;
  const fail = (line: number, reason: string): never => {
    throw new InputError(`line ${line}: ${reason}`);
  };
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.endsWith('\r') ? lines[i]!.slice(0, -1) : lines[i]!;
    if (raw.trim() === '') continue;
    const line = i + 1;
    const fields = raw.split(',');
    if (fields.length !== 2) fail(line, `expected 2 fields (timestamp,value), got ${fields.length}`);
    const [timestampField, valueField] = fields.map(unquote) as [string, string];
    if (!header) {
      header = true;
      if (parseTimestamp(timestampField).ok)
        fail(line, 'the first line must be a header (such as timestamp,value), not a data row');
      continue;
    }
    const parsed = parseTimestamp(timestampField);
    if (!parsed.ok) fail(line, `timestamp ${JSON.stringify(timestampField)}: ${parsed.reason}`);
    const start = (parsed as { ms: number }).ms;
    if (valueField === '') fail(line, 'value is missing');
    if (!VALUE.test(valueField)) fail(line, `value ${JSON.stringify(valueField)} is not a number`);
    const value = Number(valueField);
    if (!Number.isFinite(value) || value < 0) fail(line, `value ${valueField} is not a count (a finite number >= 0)`);
    const previous = rows[rows.length - 1];
    if (previous !== undefined && start <= previous.start)
      fail(line, `timestamp ${timestampField} is not after the previous row's (${previous.timestamp})`);
    rows.push({ line, timestamp: timestampField, start, value });
  }
  if (!header) throw new InputError('the input is empty: expected a header line and rows of timestamp,value');
  if (rows.length < 2) throw new InputError(`need at least 2 rows (history and one window), got ${rows.length}`);
  let intervalMs = Infinity;
  for (let i = 1; i < rows.length; i++) intervalMs = Math.min(intervalMs, rows[i]!.start - rows[i - 1]!.start);
  // Missing rows are allowed (they are skipped, not counted as zero), but every row must sit on the series' grid.
  for (let i = 1; i < rows.length; i++) {
    const gap = rows[i]!.start - rows[i - 1]!.start;
    if (gap % intervalMs !== 0)
      fail(
        rows[i]!.line,
        `timestamp ${rows[i]!.timestamp} is ${gap / 1000} s after the previous row, not a multiple of the series' interval (${intervalMs / 1000} s)`,
      );
  }
  return { rows, intervalMs };
}

/**
 * The pipeline's settings carried from 1-minute windows to the series'
 * interval. The detector's thresholds and the lifecycle's window counts
 * (pending, resolve) are about evidence per window and stay as they are. The
 * cooldown, the adaptive level's half-life and its level-shift acceptance are times, kept as the same
 * number of windows. A slot's minimum
 * sample count (30, half of the 60 windows a slot holds in a week of
 * 1-minute windows) keeps that share of a week's slot, with a floor so that
 * a slot of an hourly series is not judged by a handful of samples.
 */
export function scaledSettings(intervalMs: number): {
  readonly minSamples: number;
  readonly lifecycle: LifecycleSettings;
  readonly levels: AdaptiveLevelSettings;
} {
  const scale = intervalMs / PIPELINE_WINDOW_MS;
  return {
    minSamples: Math.min(
      DEFAULT_MIN_BASELINE_SAMPLES,
      Math.max(MIN_SLOT_SAMPLES, Math.ceil(DEFAULT_MIN_BASELINE_SAMPLES / scale)),
    ),
    lifecycle: { ...DEFAULT_LIFECYCLE_SETTINGS, cooldownMs: DEFAULT_LIFECYCLE_SETTINGS.cooldownMs * scale },
    levels: {
      ...DEFAULT_ADAPTIVE_LEVEL_SETTINGS,
      halfLifeMs: DEFAULT_ADAPTIVE_LEVEL_SETTINGS.halfLifeMs * scale,
      acceptAfterMs: DEFAULT_ADAPTIVE_LEVEL_SETTINGS.acceptAfterMs * scale,
    },
  };
}

/** Replays the windows after the history through the detector; returns each alert opening in order. */
export async function detectSeries(
  rows: readonly SeriesRow[],
  intervalMs: number,
  options: { readonly trainRows?: number | undefined } = {},
): Promise<SeriesOpening[]> {
  const trainRows = options.trainRows ?? Math.max(1, Math.floor(rows.length * DEFAULT_TRAIN_FRACTION));
  if (trainRows >= rows.length)
    throw new ConfigError([
      `--train-rows ${trainRows} leaves no row to score: the input has ${rows.length} rows after its header`,
    ]);
  const { minSamples, lifecycle, levels } = scaledSettings(intervalMs);
  const zThreshold = DEFAULT_DETECTOR_SETTINGS.zThreshold;
  const cron = parseCron(DEFAULT_BASELINES_CRON);
  const counts: WindowCount[] = rows.map((row) => ({ start: row.start, count: row.value }));
  const firstStart = rows[0]!.start;

  /** What the baseline job would write at `at`: the windows of the look-back that started before it. */
  const baselinesAt = (at: number): BaselineIndex => {
    const lookBack = at - BASELINE_WEEKS * WEEK_MS;
    const history = counts.filter((point) => point.start >= lookBack && point.start < at);
    const historyMs = at - Math.max(lookBack, firstStart);
    return indexBaselines(computeSeriesBaselines(SERIES, history, { historyMs, zThreshold }), { minSamples });
  };

  const firstScored = rows[trainRows]!.start;
  let baselines = baselinesAt(firstScored);
  let nextRun = cron.nextRun(new Date(firstScored))?.getTime() ?? Infinity;
  const timestamps = new Map(rows.map((row) => [row.start, row.timestamp]));

  const windows$ = from(rows.slice(trainRows)).pipe(
    // The weekly baseline run falls between two windows: the windows after it are judged by its baselines.
    tap((row) => {
      if (row.start < nextRun) return;
      while (nextRun <= row.start) {
        baselines = baselinesAt(nextRun);
        nextRun = cron.nextRun(new Date(nextRun))?.getTime() ?? Infinity;
      }
    }),
    map((row) => ({ key: 'series', start: row.start, end: row.start + intervalMs, count: row.value })),
    scoreWindows({
      parseKey: () => SERIES,
      baselineFor: (series, start) => lookupBaseline(baselines, series, start).baseline,
      settingsFor: () => DEFAULT_DETECTOR_SETTINGS,
      levels: new AdaptiveLevels(levels),
      runs: new SparseRuns(),
    }),
    alertLifecycle({ state: new AlertLifecycleState(lifecycle) }),
    filter((event) => event.type === 'opened'),
    map(
      (event): SeriesOpening => ({
        timestamp: timestamps.get(event.windowStart)!,
        kind: event.rule,
        score: event.score,
      }),
    ),
    toArray(),
  );
  return lastValueFrom(windows$);
}

export function formatOpening(opening: SeriesOpening): string {
  const score = Number.isFinite(opening.score) ? opening.score.toFixed(3) : String(opening.score);
  return `${opening.timestamp},${opening.kind},${score}\n`;
}

/** The command: CSV on `input`, `timestamp,kind,score` lines (after a header) on `output`. */
export async function runDetectSeries(
  input: NodeJS.ReadableStream,
  output: NodeJS.WritableStream,
  options: DetectSeriesOptions,
): Promise<{ readonly rows: number; readonly openings: number }> {
  const checked = detectSeriesOptionsSchema.safeParse(options);
  if (!checked.success)
    throw new ConfigError(
      checked.error.issues.map(
        (issue) => `--${issue.path.join('.') === 'trainRows' ? 'train-rows' : issue.path.join('.')}: ${issue.message}`,
      ),
    );
  const decoder = new StringDecoder('utf8');
  let text = '';
  for await (const chunk of input) text += typeof chunk === 'string' ? chunk : decoder.write(chunk);
  text += decoder.end();
  const { rows, intervalMs } = parseSeriesCsv(text);
  const openings = await detectSeries(rows, intervalMs, checked.data);
  let out = 'timestamp,kind,score\n';
  for (const opening of openings) out += formatOpening(opening);
  await new Promise<void>((resolve, reject) => {
    output.write(out, (error) => (error ? reject(error) : resolve()));
  });
  return { rows: rows.length, openings: openings.length };
}
