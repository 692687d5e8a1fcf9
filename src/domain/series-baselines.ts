/**
 * Baselines of one series from its window counts, in process: what the
 * weekly baseline job (src/stores/baselines.ts) computes inside ClickHouse,
 * for callers that hold the counts themselves (`logflow detect-series`).
 * The two follow one specification, held to agreement by a test that runs
 * both on the same counts (test/domain/series-baselines.test.ts and
 * test/pipelines/baselines.test.ts):
 * - statistics per slot: the mean, the population stddev (`stddevPop`) and
 *   the quantiles 0.01, 0.05, 0.5, 0.95, 0.99 interpolated between order
 *   statistics (`quantilesExactInclusive`, R's type 7);
 * - thresholds: mean + z * max(stddev, 1) and max(0, mean - z * stddev);
 * - granularity by the length of the history (`baselineGranularity`): under a
 *   day every slot gets the series' overall statistics, under a week the
 *   statistics of its hour of day, copied to the days of week the history saw
 *   at that hour (a day not reached yet has no rows, and `lookupBaseline`
 *   judges none of its windows), after that each (hour of day, day of week)
 *   slot its own.
 */
import { weeklySlotOf, type Baseline, type SeriesKey } from './anomaly.ts';

export type BaselineGranularity = 'flat' | 'hour_of_day' | 'hour_and_day';

const DAY_MS = 86_400_000;

/** The bootstrap rule for short histories, shared with the baseline job. */
export function baselineGranularity(historyMs: number): BaselineGranularity {
  return historyMs < DAY_MS ? 'flat' : historyMs < 7 * DAY_MS ? 'hour_of_day' : 'hour_and_day';
}

/** The quantile at `level` of ascending `sorted`, interpolated linearly between order statistics (R type 7). */
export function quantileInclusive(sorted: readonly number[], level: number): number {
  if (sorted.length === 0) return Number.NaN;
  const position = level * (sorted.length - 1);
  const below = Math.floor(position);
  const low = sorted[below]!;
  const high = sorted[Math.min(below + 1, sorted.length - 1)]!;
  return low + (high - low) * (position - below);
}

export interface SlotStatistics {
  readonly mean: number;
  readonly stddev: number;
  readonly median: number;
  readonly p01: number;
  readonly p05: number;
  readonly p95: number;
  readonly p99: number;
  readonly sampleCount: number;
}

/** The statistics the baseline job keeps per slot, of the counts given; undefined for none. */
export function slotStatistics(counts: readonly number[]): SlotStatistics | undefined {
  if (counts.length === 0) return undefined;
  let sum = 0;
  for (const count of counts) sum += count;
  const mean = sum / counts.length;
  let squares = 0;
  for (const count of counts) squares += (count - mean) ** 2;
  const sorted = [...counts].sort((a, b) => a - b);
  return {
    mean,
    stddev: Math.sqrt(squares / counts.length),
    median: quantileInclusive(sorted, 0.5),
    p01: quantileInclusive(sorted, 0.01),
    p05: quantileInclusive(sorted, 0.05),
    p95: quantileInclusive(sorted, 0.95),
    p99: quantileInclusive(sorted, 0.99),
    sampleCount: counts.length,
  };
}

/** A window's count; `start` is the window's start in epoch ms. */
export interface WindowCount {
  readonly start: number;
  readonly count: number;
}

/**
 * The 24 x 7 baselines of one series from the counts of its windows over
 * `historyMs` (the span the counts cover, from the series' first window to
 * the baseline run). Windows are taken as given: the baseline job zero-fills
 * the minutes of a log series, and a caller with counts of its own decides
 * what a missing window means.
 */
export function computeSeriesBaselines(
  series: SeriesKey,
  counts: readonly WindowCount[],
  options: { readonly historyMs: number; readonly zThreshold: number },
): Baseline[] {
  const granularity = baselineGranularity(options.historyMs);
  const groups = new Map<number, number[]>();
  /** Slots (day * 24 + hour) the history saw. */
  const seen = new Set<number>();
  for (const { start, count } of counts) {
    const { hourOfDay, dayOfWeek } = weeklySlotOf(start);
    seen.add(dayOfWeek * 24 + hourOfDay);
    const group = granularity === 'flat' ? 0 : granularity === 'hour_of_day' ? hourOfDay : dayOfWeek * 24 + hourOfDay;
    let list = groups.get(group);
    if (list === undefined) groups.set(group, (list = []));
    list.push(count);
  }
  const baselines: Baseline[] = [];
  for (let dayOfWeek = 1; dayOfWeek <= 7; dayOfWeek++) {
    for (let hourOfDay = 0; hourOfDay < 24; hourOfDay++) {
      const group = granularity === 'flat' ? 0 : granularity === 'hour_of_day' ? hourOfDay : dayOfWeek * 24 + hourOfDay;
      if (granularity === 'hour_of_day' && !seen.has(dayOfWeek * 24 + hourOfDay)) continue;
      const counted = groups.get(group);
      const stats = counted === undefined ? undefined : slotStatistics(counted);
      if (stats === undefined) continue;
      baselines.push({
        ...series,
        hourOfDay,
        dayOfWeek,
        ...stats,
        upperThreshold: stats.mean + options.zThreshold * Math.max(stats.stddev, 1),
        lowerThreshold: Math.max(0, stats.mean - options.zThreshold * stats.stddev),
      });
    }
  }
  return baselines;
}
