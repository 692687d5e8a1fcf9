/**
 * The comparison detector of issue 16's "Measure it": a rolling Gaussian, the
 * plain baseline that count-series anomaly detectors are held against. Each
 * window's count is compared with the mean and sample standard deviation of
 * the `window` counts just before it (the current one excluded, incidents
 * included: it knows nothing of labels); |z| >= k is anomalous, above a spike,
 * below a drop (a silence when the count is zero). The anomalous windows then
 * go through the same alert lifecycle as `detectSeries` (AlertLifecycleState
 * of src/domain/anomaly.ts with the settings src/app/commands/detect-series.ts
 * scales to the series' interval), so both detectors are compared on alert
 * openings with the same pending, resolve and cooldown rules, and only the
 * scoring differs.
 */
import { scaledSettings, type SeriesOpening, type SeriesRow } from '../../src/app/commands/detect-series.ts';
import { AlertLifecycleState, type AnomalyKind } from '../../src/domain/anomaly.ts';

export interface RollingGaussianSettings {
  /** Trailing windows the mean and standard deviation are taken over (at least 2). */
  readonly window: number;
  /** |z| at or above which a window is anomalous. */
  readonly k: number;
  /**
   * Least standard deviation used, in counts: a trailing window of equal counts (all zeros on a sparse series)
   * has none, and any change would be an infinite z.
   */
  readonly minStddev: number;
}

export interface GaussianScore {
  readonly mean: number;
  readonly stddev: number;
  readonly z: number;
  readonly kind: AnomalyKind | null;
}

export function checkGaussianSettings(settings: RollingGaussianSettings): void {
  const problems: string[] = [];
  if (!Number.isSafeInteger(settings.window) || settings.window < 2)
    problems.push(`window must be an integer >= 2, got ${settings.window}`);
  if (!(settings.k > 0) || !Number.isFinite(settings.k))
    problems.push(`k must be a positive number, got ${settings.k}`);
  if (!(settings.minStddev > 0) || !Number.isFinite(settings.minStddev))
    problems.push(`minStddev must be a positive number, got ${settings.minStddev}`);
  if (problems.length > 0) throw new RangeError(`rolling Gaussian: ${problems.join('; ')}`);
}

/**
 * Scores `values[from..]`, each against the `window` values before it; `from` must leave a full window behind it.
 * Sums are kept running: exact for whole counts, which is what the bench feeds it.
 */
export function rollingGaussianScores(
  values: readonly number[],
  from: number,
  settings: RollingGaussianSettings,
): GaussianScore[] {
  checkGaussianSettings(settings);
  const { window, k, minStddev } = settings;
  if (!Number.isSafeInteger(from) || from < window || from > values.length)
    throw new RangeError(`rolling Gaussian: scoring must start at a row in ${window}..${values.length}, got ${from}`);
  let sum = 0;
  let sumSquares = 0;
  for (let i = from - window; i < from; i++) {
    sum += values[i]!;
    sumSquares += values[i]! * values[i]!;
  }
  const scores: GaussianScore[] = [];
  for (let i = from; i < values.length; i++) {
    const value = values[i]!;
    const mean = sum / window;
    const variance = Math.max(0, (sumSquares - sum * mean) / (window - 1));
    const stddev = Math.max(Math.sqrt(variance), minStddev);
    const z = (value - mean) / stddev;
    const kind: AnomalyKind | null = z >= k ? 'spike' : z <= -k ? (value === 0 ? 'silence' : 'drop') : null;
    scores.push({ mean, stddev, z, kind });
    const leaving = values[i - window]!;
    sum += value - leaving;
    sumSquares += value * value - leaving * leaving;
  }
  return scores;
}

const SERIES = { service: 'series', environment: 'rolling-gaussian', level: 'INFO' } as const;

/** Alert openings of the rolling Gaussian on the rows after `trainRows`, as `detectSeries` reports its own. */
export function rollingGaussianOpenings(
  rows: readonly SeriesRow[],
  intervalMs: number,
  trainRows: number,
  settings: RollingGaussianSettings,
): SeriesOpening[] {
  if (trainRows >= rows.length)
    throw new RangeError(`rolling Gaussian: ${trainRows} training rows leave none of ${rows.length} to score`);
  const scores = rollingGaussianScores(
    rows.map((row) => row.value),
    trainRows,
    settings,
  );
  const lifecycle = new AlertLifecycleState(scaledSettings(intervalMs).lifecycle);
  const openings: SeriesOpening[] = [];
  scores.forEach((scored, i) => {
    const row = rows[trainRows + i]!;
    const events = lifecycle.apply({
      ...SERIES,
      start: row.start,
      end: row.start + intervalMs,
      count: row.value,
      kind: scored.kind,
      score: scored.z,
      expected: scored.mean,
    });
    for (const event of events)
      if (event.type === 'opened') openings.push({ timestamp: row.timestamp, kind: event.rule, score: event.score });
  });
  return openings;
}
