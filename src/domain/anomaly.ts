/**
 * Anomaly scoring of per-minute counts and the alert lifecycle, free of I/O,
 * clocks and RxJS so that the detector's decisions are a deterministic
 * function of its inputs (windows, baselines, settings, silences) and its
 * state can be checkpointed and restored exactly. The operators
 * `scoreWindows` and `alertLifecycle` drive these.
 *
 * Scoring. A closed window's count for (service, environment, level) is
 * compared with the baseline of its weekly slot (`lookupBaseline`). When the
 * expected count is at least `minCount`, the score is a z-score whose spread
 * is calibrated per side from the slot's and the series' quantiles
 * (`bandSpread`), so a heavy-tailed series gets a wide band and a calm one a
 * narrow band; below that the counts are too sparse for a normal
 * approximation and the score is the Poisson tail probability, reported on
 * the same scale as a z-score (the standard normal quantile of the tail), so
 * one `score` column compares across methods; above the mean a sparse count
 * must also clear the calibrated band, since a bursty sparse series is far
 * noisier than Poisson; two adjacent sparse windows each past the square root
 * of the Poisson tail are a spike too (`sparseRunTail`). The band reads the
 * series' pooled spread as a negative binomial variance (`pooledSpreadAt`),
 * and above the mean a dense count's score is capped by its Poisson tail,
 * since counts are never less noisy than Poisson, skew included. The baseline
 * may first be scaled by the series' adaptive level
 * (src/domain/adaptive-level.ts, applied by `scoreWindows`). A count above the
 * band is a spike, a non-zero count below it a drop, and a zero count where
 * the typical minute has at least `minExpectedForSilence` events a silence.
 *
 * Lifecycle (Prometheus' `for` plus Alertmanager's repeat interval and
 * silences), per dedup key `rule:service:environment:level`: inactive ->
 * pending on the first anomalous window -> open once `pendingWindows`
 * consecutive windows are anomalous -> resolved once `resolveWindows`
 * consecutive windows are normal. A pending alert whose next window is
 * normal lapses, reported as `resolved` so that its pending row is closed.
 * Time is window (event) time throughout, never the wall clock.
 */
import { z } from 'zod';
import { ErrorCodes, LogflowError } from '../core/errors.ts';

// ---------------------------------------------------------------------------
// Series and baselines

export interface SeriesKey {
  readonly service: string;
  readonly environment: string;
  readonly level: string;
}

/**
 * Statistics of the per-minute counts of one series in one weekly slot, as
 * the `anomaly_baselines` table holds them. Slots are in UTC: `hourOfDay`
 * 0-23 and `dayOfWeek` 1 = Monday .. 7 = Sunday, which is ClickHouse's
 * `toDayOfWeek(t)` (default mode) evaluated on a `DateTime('UTC')`; the
 * baseline job must use that timezone or slots shift by the offset.
 * Baselines pooled by a fallback carry `ANY_DAY` / `ANY_HOUR` in the fields
 * they were pooled over.
 */
export interface Baseline extends SeriesKey {
  readonly hourOfDay: number;
  readonly dayOfWeek: number;
  readonly mean: number;
  readonly stddev: number;
  readonly median: number;
  /**
   * Lower quantiles, which calibrate the drop side of the band. Optional: rows
   * computed before sql/clickhouse/006_baseline_lower_quantiles.sql read as
   * NaN, and the drop side then falls back to the stddev.
   */
  readonly p01?: number;
  readonly p05?: number;
  readonly p95: number;
  readonly p99: number;
  readonly upperThreshold: number;
  readonly lowerThreshold: number;
  readonly sampleCount: number;
  /**
   * The spread of the whole series, pooled over its week, as a fraction of
   * the mean on each side; attached by `indexBaselines`, never stored. See
   * `bandSpread` for why a slot is judged by it too.
   */
  readonly seriesSpread?: RelativeSpread;
}

/** Half-widths of a band as fractions of its mean. */
export interface RelativeSpread {
  readonly above: number;
  readonly below: number;
  /**
   * Each side's variance beyond a Poisson law's, as phi in var = mean + phi * mean^2 (a negative binomial law), read
   * from the same quantiles at the pooled mean (`overdispersionOf`), so `bandSpread` can carry the spread to a slot's
   * mean as counts' variance scales (`pooledSpreadAt`). Absent, the fractions scale in proportion to the mean.
   */
  readonly overdispersion?: { readonly above: number; readonly below: number };
  /**
   * Present when the series' upper tail is heavier than an exponential one (see `heavyTail`): its Pareto index and
   * its p99's distance from the mean as a fraction of the mean, from which `bandSpread` extrapolates the tail.
   */
  readonly heavyTail?: { readonly index: number; readonly p99Excess: number };
}

/** `dayOfWeek` of a baseline pooled over every day (ClickHouse's day numbers start at 1, so 0 is free). */
export const ANY_DAY = 0;
/** `hourOfDay` of a baseline pooled over every hour. */
export const ANY_HOUR = -1;

/**
 * Below this many sampled minutes a slot's mean and stddev are too noisy to
 * judge one minute by (the relative standard error of a stddev is about
 * 1/sqrt(2n): 13% at 30), so the lookup falls back to a wider pool. A slot
 * over four weeks holds 240 minutes, so only sparse or new series are thin.
 */
export const DEFAULT_MIN_BASELINE_SAMPLES = 30;

/** Which pool a looked-up baseline comes from, most specific first. */
export type BaselineFallback = 'slot' | 'hour' | 'overall' | 'none';

export interface BaselineLookup {
  readonly baseline: Baseline | undefined;
  readonly fallback: BaselineFallback;
}

interface SeriesBaselines {
  readonly slots: Map<number, Baseline>;
  /** Index = hour of day; pooled over the days of that hour. */
  readonly byHour: (Baseline | undefined)[];
  readonly overall: Baseline;
  /** Days of week (1-7) with at least one row. */
  readonly days: ReadonlySet<number>;
}

/** Baselines grouped per series with the fallback pools precomputed; build with `indexBaselines`. */
export interface BaselineIndex {
  readonly minSamples: number;
  /** @internal keyed by `seriesId` */
  readonly series: ReadonlyMap<string, SeriesBaselines>;
}

const MS_PER_HOUR = 3_600_000;
const MS_PER_DAY = 86_400_000;

function seriesId(series: SeriesKey): string {
  return JSON.stringify([series.service, series.environment, series.level]);
}

function slotId(dayOfWeek: number, hourOfDay: number): number {
  return dayOfWeek * 24 + hourOfDay;
}

/** UTC hour of day (0-23) and ClickHouse day of week (1 = Monday .. 7 = Sunday) of an epoch-ms instant. */
export function weeklySlotOf(epochMs: number): { readonly hourOfDay: number; readonly dayOfWeek: number } {
  const days = Math.floor(epochMs / MS_PER_DAY);
  const msOfDay = epochMs - days * MS_PER_DAY;
  // 1970-01-01 was a Thursday, day 4.
  const dayOfWeek = ((((days + 3) % 7) + 7) % 7) + 1;
  return { hourOfDay: Math.floor(msOfDay / MS_PER_HOUR), dayOfWeek };
}

/**
 * Combines slots as if their samples had been pooled: exact for the mean and
 * the variance; the quantiles and thresholds, which cannot be pooled from
 * summaries, are sample-weighted averages.
 */
export function poolBaselines(parts: readonly Baseline[], hourOfDay: number, dayOfWeek: number): Baseline | undefined {
  const first = parts[0];
  if (first === undefined) return undefined;
  let samples = 0;
  for (const part of parts) samples += part.sampleCount;
  const weightOf = (part: Baseline): number => (samples > 0 ? part.sampleCount / samples : 1 / parts.length);
  const weighted = (field: (part: Baseline) => number): number => {
    let sum = 0;
    for (const part of parts) sum += weightOf(part) * field(part);
    return sum;
  };
  const mean = weighted((part) => part.mean);
  const variance = weighted((part) => finiteOr(part.stddev, 0) ** 2 + (part.mean - mean) ** 2);
  return {
    service: first.service,
    environment: first.environment,
    level: first.level,
    hourOfDay,
    dayOfWeek,
    mean,
    stddev: Math.sqrt(variance),
    median: weighted((part) => part.median),
    p01: weighted((part) => part.p01 ?? Number.NaN),
    p05: weighted((part) => part.p05 ?? Number.NaN),
    p95: weighted((part) => part.p95),
    p99: weighted((part) => part.p99),
    upperThreshold: weighted((part) => part.upperThreshold),
    lowerThreshold: weighted((part) => part.lowerThreshold),
    sampleCount: samples,
  };
}

/**
 * Indexes baseline rows for `lookupBaseline`. A slot given twice keeps the
 * later row (the table is a ReplacingMergeTree, so an unmerged read can
 * return both versions; pass rows oldest first).
 */
export function indexBaselines(
  baselines: Iterable<Baseline>,
  options: { readonly minSamples?: number } = {},
): BaselineIndex {
  const minSamples = options.minSamples ?? DEFAULT_MIN_BASELINE_SAMPLES;
  if (!(minSamples >= 0)) throw new RangeError(`indexBaselines: minSamples must be >= 0, got ${minSamples}`);
  const slotsBySeries = new Map<string, Map<number, Baseline>>();
  for (const baseline of baselines) {
    const id = seriesId(baseline);
    let slots = slotsBySeries.get(id);
    if (slots === undefined) {
      slots = new Map();
      slotsBySeries.set(id, slots);
    }
    slots.set(slotId(baseline.dayOfWeek, baseline.hourOfDay), baseline);
  }
  const series = new Map<string, SeriesBaselines>();
  for (const [id, rows] of slotsBySeries) {
    const all = [...rows.values()];
    const pooled = poolBaselines(all, ANY_HOUR, ANY_DAY)!;
    const seriesSpread = relativeSpread(pooled);
    const withSpread = (baseline: Baseline): Baseline =>
      seriesSpread === undefined ? baseline : { ...baseline, seriesSpread };
    const slots = new Map<number, Baseline>();
    for (const [slot, row] of rows) slots.set(slot, withSpread(row));
    const byHour: (Baseline | undefined)[] = [];
    for (let hour = 0; hour < 24; hour++) {
      const pooledHour = poolBaselines(
        all.filter((slot) => slot.hourOfDay === hour),
        hour,
        ANY_DAY,
      );
      byHour.push(pooledHour === undefined ? undefined : withSpread(pooledHour));
    }
    series.set(id, { slots, byHour, overall: withSpread(pooled), days: new Set(all.map((row) => row.dayOfWeek)) });
  }
  return { minSamples, series };
}

/**
 * The baseline for the window starting at `windowStart`: its own weekly slot;
 * when that is missing or thin, the same hour pooled over every day; then the
 * series pooled over the whole week; else none. Thin means fewer than the
 * index's `minSamples` sampled minutes; a thin pool is never returned, since
 * judging a minute by a handful of samples raises more false alarms than it
 * catches.
 *
 * A day of week the series has no row for at all is none: its history has
 * not reached that day yet (the baseline job copies its first week's hour
 * statistics to the days it saw only), and judging a Saturday by the
 * weekdays' level would call every first weekend a drop, or the first Monday
 * after a weekend start a spike. Baselines pooled over the whole history
 * (`ANY_DAY` rows, or the job's first-day rows on every day) are not affected.
 */
export function lookupBaseline(index: BaselineIndex, series: SeriesKey, windowStart: number): BaselineLookup {
  const baselines = index.series.get(seriesId(series));
  if (baselines === undefined) return { baseline: undefined, fallback: 'none' };
  const { hourOfDay, dayOfWeek } = weeklySlotOf(windowStart);
  const thick = (baseline: Baseline | undefined): baseline is Baseline =>
    baseline !== undefined && baseline.sampleCount >= index.minSamples;
  const slot = baselines.slots.get(slotId(dayOfWeek, hourOfDay));
  if (thick(slot)) return { baseline: slot, fallback: 'slot' };
  if (!baselines.days.has(dayOfWeek) && !baselines.days.has(ANY_DAY)) return { baseline: undefined, fallback: 'none' };
  const hour = baselines.byHour[hourOfDay];
  if (thick(hour)) return { baseline: hour, fallback: 'hour' };
  if (thick(baselines.overall)) return { baseline: baselines.overall, fallback: 'overall' };
  return { baseline: undefined, fallback: 'none' };
}

// ---------------------------------------------------------------------------
// Detector settings

export interface DetectorSettings {
  /** z-score at or above which a window is a spike (the services table's `sensitivity`). */
  readonly zThreshold: number;
  /** Expected count per window below which counts are sparse and scored with a Poisson tail (`min_count`). */
  readonly minCount: number;
  /** Absolute floor of the standard deviation a z-score divides by. */
  readonly stddevFloor: number;
  /** Floor of the standard deviation as a fraction of the expected count. */
  readonly stddevFloorFraction: number;
  /** Poisson tail probability at or below which a sparse count is a spike. */
  readonly poissonTail: number;
  /**
   * Least rate assumed by the Poisson test, so that a baseline of (nearly) zero does not make one stray event a spike.
   */
  readonly poissonMeanFloor: number;
  /** Whether drops to zero are anomalies (`silence_detection`). */
  readonly silenceDetection: boolean;
  /** Events the typical minute must have before a zero counts as silence. */
  readonly minExpectedForSilence: number;
  /** Whether the service is scored at all (`monitoring_enabled`). */
  readonly enabled: boolean;
  /** Whether the service's alerts produce lifecycle events (`alerting_enabled`). */
  readonly alerting: boolean;
}

/**
 * Defaults, and why:
 * - zThreshold 3, minCount 10: the seed's `anomaly.z_threshold` and `anomaly.min_count`.
 * - stddev floor max(1, 0.1 * expected, sqrt(expected)), with the measured
 *   stddev if larger: counts are never less noisy than Poisson (sqrt), a very
 *   regular high-volume series should not alert on a few percent (10%), and
 *   a flat baseline (stddev 0) must not make any change infinite (1).
 * - poissonTail 1e-4 (a z of about 3.7): stricter than the z-score's one-sided
 *   1.35e-3 because sparse error counts come in bursts (one failure, several
 *   lines), more often than a Poisson law allows.
 * - poissonMeanFloor 0.5: a few weeks without events are weak evidence of a
 *   rate of zero; at 0.5 it takes 6 events in a minute to be a spike.
 * - minExpectedForSilence 5: a true rate of 5 gives an empty minute with
 *   probability e^-5 = 0.7%, and two in a row (the default pendingWindows)
 *   4.5e-5.
 */
export const DEFAULT_DETECTOR_SETTINGS: DetectorSettings = Object.freeze({
  zThreshold: 3,
  minCount: 10,
  stddevFloor: 1,
  stddevFloorFraction: 0.1,
  poissonTail: 1e-4,
  poissonMeanFloor: 0.5,
  silenceDetection: true,
  minExpectedForSilence: 5,
  enabled: true,
  alerting: true,
});

/** The detection columns of a `services` row, as the services repository returns them. */
export interface ServiceDetectionColumns {
  readonly sensitivity?: number;
  readonly minCount?: number;
  readonly silenceDetection?: boolean;
  readonly monitoringEnabled?: boolean;
  readonly alertingEnabled?: boolean;
}

/** The per-service part of the settings, to merge over the global ones with `mergeDetectorSettings`. */
export function serviceDetectorOverrides(service: ServiceDetectionColumns): Partial<DetectorSettings> {
  const overrides: { -readonly [K in keyof DetectorSettings]?: DetectorSettings[K] } = {};
  if (service.sensitivity !== undefined) overrides.zThreshold = service.sensitivity;
  if (service.minCount !== undefined) overrides.minCount = service.minCount;
  if (service.silenceDetection !== undefined) overrides.silenceDetection = service.silenceDetection;
  if (service.monitoringEnabled !== undefined) overrides.enabled = service.monitoringEnabled;
  if (service.alertingEnabled !== undefined) overrides.alerting = service.alertingEnabled;
  return overrides;
}

/**
 * Later overrides win field by field; undefined fields (from a partially
 * filled object) are ignored. Throws a RangeError naming every invalid field,
 * so a bad service row fails where it is loaded, not at the first window.
 */
export function mergeDetectorSettings(
  base: DetectorSettings,
  ...overrides: readonly Partial<DetectorSettings>[]
): DetectorSettings {
  const merged: Record<string, unknown> = { ...base };
  for (const override of overrides) {
    for (const [field, value] of Object.entries(override)) if (value !== undefined) merged[field] = value;
  }
  const settings = merged as unknown as DetectorSettings;
  const problems: string[] = [];
  const check = (ok: boolean, problem: string): void => {
    if (!ok) problems.push(problem);
  };
  check(
    settings.zThreshold > 0 && Number.isFinite(settings.zThreshold),
    `zThreshold must be a positive number, got ${settings.zThreshold}`,
  );
  check(
    settings.minCount >= 0 && Number.isFinite(settings.minCount),
    `minCount must be >= 0, got ${settings.minCount}`,
  );
  check(
    settings.stddevFloor > 0 && Number.isFinite(settings.stddevFloor),
    `stddevFloor must be a positive number, got ${settings.stddevFloor}`,
  );
  check(
    settings.stddevFloorFraction >= 0 && Number.isFinite(settings.stddevFloorFraction),
    `stddevFloorFraction must be >= 0, got ${settings.stddevFloorFraction}`,
  );
  check(
    settings.poissonTail > 0 && settings.poissonTail < 1,
    `poissonTail must be in (0, 1), got ${settings.poissonTail}`,
  );
  check(
    settings.poissonMeanFloor > 0 && Number.isFinite(settings.poissonMeanFloor),
    `poissonMeanFloor must be a positive number, got ${settings.poissonMeanFloor}`,
  );
  check(
    settings.minExpectedForSilence >= 0 && Number.isFinite(settings.minExpectedForSilence),
    `minExpectedForSilence must be >= 0, got ${settings.minExpectedForSilence}`,
  );
  for (const flag of ['silenceDetection', 'enabled', 'alerting'] as const)
    check(typeof settings[flag] === 'boolean', `${flag} must be a boolean`);
  if (problems.length > 0) throw new RangeError(`invalid detector settings: ${problems.join('; ')}`);
  return Object.freeze({ ...settings });
}

// ---------------------------------------------------------------------------
// Poisson tails and the normal quantile

const LOG_FACTORIAL_TABLE_SIZE = 256;
const LOG_FACTORIALS = ((): Float64Array => {
  const table = new Float64Array(LOG_FACTORIAL_TABLE_SIZE);
  for (let n = 2; n < LOG_FACTORIAL_TABLE_SIZE; n++) table[n] = table[n - 1]! + Math.log(n);
  return table;
})();
const HALF_LOG_TWO_PI = 0.5 * Math.log(2 * Math.PI);

/** ln(n!) for a non-negative integer n. */
export function logFactorial(n: number): number {
  if (n < LOG_FACTORIAL_TABLE_SIZE) return LOG_FACTORIALS[n]!;
  // Stirling's series; past 256 the first omitted term is below 1e-19.
  const inverse = 1 / n;
  const inverseSquared = inverse * inverse;
  return (
    n * Math.log(n) -
    n +
    0.5 * Math.log(n) +
    HALF_LOG_TWO_PI +
    inverse * (1 / 12 - inverseSquared * (1 / 360 - inverseSquared / 1260))
  );
}

function logPoissonPmf(k: number, lambda: number): number {
  return k * Math.log(lambda) - lambda - logFactorial(k);
}

/** Relative size below which the rest of a tail series no longer changes its double-precision sum. */
const NEGLIGIBLE = 1e-17;

/**
 * ln P(X >= k) for X ~ Poisson(lambda), k an integer. Each tail is summed on
 * the side of the mean where its terms shrink, relative to its largest term
 * and in log space, so it neither underflows (P(X >= 1000 | 1) is e^-5914)
 * nor loses digits to 1 - CDF; the other side is the complement of the
 * opposite tail, which is then at least about one half.
 */
export function poissonLogUpperTail(k: number, lambda: number): number {
  if (k <= 0) return 0;
  if (lambda <= 0) return -Infinity;
  if (k <= lambda) return Math.log1p(-Math.exp(poissonLogLowerTail(k - 1, lambda)));
  let term = 1;
  let sum = 1;
  for (let i = k + 1; term > sum * NEGLIGIBLE; i++) {
    term *= lambda / i;
    sum += term;
  }
  return logPoissonPmf(k, lambda) + Math.log(sum);
}

/** ln P(X <= k) for X ~ Poisson(lambda), k an integer; see `poissonLogUpperTail`. */
export function poissonLogLowerTail(k: number, lambda: number): number {
  if (k < 0) return -Infinity;
  if (lambda <= 0) return 0;
  if (k >= lambda) return Math.log1p(-Math.exp(poissonLogUpperTail(k + 1, lambda)));
  let term = 1;
  let sum = 1;
  for (let i = k; i > 0 && term > sum * NEGLIGIBLE; i--) {
    term *= i / lambda;
    sum += term;
  }
  return logPoissonPmf(k, lambda) + Math.log(sum);
}

export function poissonUpperTail(k: number, lambda: number): number {
  return Math.exp(poissonLogUpperTail(k, lambda));
}

export function poissonLowerTail(k: number, lambda: number): number {
  return Math.exp(poissonLogLowerTail(k, lambda));
}

// Acklam's rational approximation of the standard normal quantile (relative error < 1.15e-9).
const ACKLAM_A = [
  -3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1,
  2.506628277459239,
] as const;
const ACKLAM_B = [
  -5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1,
] as const;
const ACKLAM_C = [
  -7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968,
  2.938163982698783,
] as const;
const ACKLAM_D = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416] as const;
const ACKLAM_LOW = 0.02425;

function acklamTail(q: number): number {
  const [c1, c2, c3, c4, c5, c6] = ACKLAM_C;
  const [d1, d2, d3, d4] = ACKLAM_D;
  return (((((c1 * q + c2) * q + c3) * q + c4) * q + c5) * q + c6) / ((((d1 * q + d2) * q + d3) * q + d4) * q + 1);
}

/**
 * The z with Phi(z) = e^logP, taking the probability as a logarithm so that
 * tails far below the smallest double still get a finite quantile.
 */
export function normalQuantileOfLog(logP: number): number {
  if (logP === -Infinity) return -Infinity;
  if (logP >= 0) return Infinity;
  if (logP < Math.log(ACKLAM_LOW)) return acklamTail(Math.sqrt(-2 * logP));
  const complement = -Math.expm1(logP);
  if (complement < ACKLAM_LOW) return -acklamTail(Math.sqrt(-2 * Math.log(complement)));
  const [a1, a2, a3, a4, a5, a6] = ACKLAM_A;
  const [b1, b2, b3, b4, b5] = ACKLAM_B;
  const q = Math.exp(logP) - 0.5;
  const r = q * q;
  return (
    ((((((a1 * r + a2) * r + a3) * r + a4) * r + a5) * r + a6) * q) /
    (((((b1 * r + b2) * r + b3) * r + b4) * r + b5) * r + 1)
  );
}

/** The z with Phi(z) = p. */
export function normalQuantile(p: number): number {
  return normalQuantileOfLog(Math.log(p));
}

/**
 * Phi^-1(P(X <= j)), each side from the tail that is small there. Scores of
 * neighbouring counts on either side of the mean both go through this one
 * function, so the score has no seam at the mean.
 */
function poissonCdfAsZ(j: number, lambda: number): number {
  return j < lambda
    ? normalQuantileOfLog(poissonLogLowerTail(j, lambda))
    : -normalQuantileOfLog(poissonLogUpperTail(j + 1, lambda));
}

// ---------------------------------------------------------------------------
// Scoring

export type AnomalyKind = 'spike' | 'drop' | 'silence';
export type ScoreMethod = 'zscore' | 'poisson' | 'none';

export interface AnomalyScore {
  readonly anomalous: boolean;
  readonly kind: AnomalyKind | null;
  /**
   * Signed, on the z-score scale: the distance from the mean in units of the
   * spread of the count's side of the band (`bandSpread`), or for Poisson the
   * normal quantile of the tail on the count's side of the mean (P(X >= count)
   * above it, P(X <= count) below), above the mean the less extreme of that and
   * the band's z-score. A dense count above the mean scores at most its
   * Poisson tail's quantile too, and a sparse window that completes a run
   * (`sparseRunTail`) at least the run's. Non-decreasing in the count for a
   * fixed baseline, settings and previous window. 0 with method `none`.
   */
  readonly score: number;
  /** The baseline mean (0 without a baseline). */
  readonly expected: number;
  readonly method: ScoreMethod;
}

function finiteOr(value: number, fallback: number): number {
  return Number.isFinite(value) ? value : fallback;
}

/** Standard normal quantiles of 0.95 and 0.99: a normal slot's p95 and p99 lie this many stddevs above its mean. */
const Z95 = 1.6448536269514722;
const Z99 = 2.3263478740408408;

/** The two half-widths of a slot's band, in counts per window; the score divides by the one on the count's side. */
export interface BandSpread {
  readonly above: number;
  readonly below: number;
  /** Whether each side comes from the slot's quantiles or, when they are missing, from its stddev. */
  readonly aboveFrom: 'quantiles' | 'stddev';
  readonly belowFrom: 'quantiles' | 'stddev';
}

/**
 * Calibration: each side's spread is what quantiles imply for it under a
 * normal law, so a heavy-tailed series gets a wide band and does not alert on
 * its routine bursts while a calm one keeps a narrow band. Two readings, the
 * wider wins:
 * - the slot's own p95 (p05 below): (p95 - mean) / z95. Quantiles are robust
 *   where the stddev is not: one burst in four weeks of history inflates the
 *   stddev (and hid every later spike of the slot) but moves the p95 by one
 *   sample.
 * - the series' spread pooled over its week (`seriesSpread`, a fraction of
 *   the mean, scaled to the slot's mean), which also reads the p99 (p01) and
 *   the p95-p99 spacing (`quantileSpread`). A slot of four weeks holds 240
 *   windows, two or three above its p99, so a heavy tail's rare bursts are
 *   seen by some slots and missed by others; a service that bursts at noon on
 *   Mondays bursts at 3 on Tuesdays too.
 * Each side judges that side only, so a series that bursts upward can still
 * drop.
 *
 * A side whose quantiles are missing (rows computed before the lower
 * quantiles were stored) or on the wrong side of the mean (more than 5% of
 * the mass in rare huge values) uses the stddev, as before calibration. Both
 * sides are floored at max(stddevFloor, stddevFloorFraction * mean,
 * sqrt(mean)): counts are never less noisy than Poisson, and a flat slot must
 * not make any change infinite.
 */
export function bandSpread(baseline: Baseline, expected: number, settings: DetectorSettings): BandSpread {
  const floor = Math.max(settings.stddevFloor, settings.stddevFloorFraction * expected, Math.sqrt(expected));
  const stddev = finiteOr(baseline.stddev, 0);
  const own = quantileSpread(baseline, expected, false);
  const pooled = baseline.seriesSpread;
  const above = Math.max(
    own.above ?? stddev,
    finiteOr(pooledSpreadAt(pooled?.above ?? 0, pooled?.overdispersion?.above, expected), 0),
    pooled?.heavyTail === undefined ? 0 : finiteOr(paretoSpread(pooled.heavyTail, settings.zThreshold) * expected, 0),
    floor,
  );
  const below = Math.max(
    own.below ?? stddev,
    finiteOr(pooledSpreadAt(pooled?.below ?? 0, pooled?.overdispersion?.below, expected), 0),
    floor,
  );
  return {
    above,
    below,
    aboveFrom: own.above === undefined ? 'stddev' : 'quantiles',
    belowFrom: own.below === undefined ? 'stddev' : 'quantiles',
  };
}

/**
 * A series' pooled spread carried to a slot whose mean is `expected`, by the variance of counts: a Poisson part equal
 * to the mean plus an overdispersed part growing as the square of the mean (a negative binomial law,
 * var = mean + phi * mean^2). Scaling the pooled spread in proportion to the mean, as its fraction `relative` alone
 * would, is right for the overdispersed part (bursts multiply the level) but not for the Poisson part, which grows as
 * the square root: a series with a daily cycle pools its quiet hours, where Poisson noise is large relative to the
 * mean, and in proportion those would widen its busy hours' band, hiding in a sparse series' busy hours spikes of
 * several times its level. A series no noisier than Poisson (phi 0) gets sqrt(expected), which the band's floor holds
 * anyway, so its slots' own quantiles decide. At the pooled mean this is the pooled reading less the steps of a
 * discrete law (`overdispersionOf` subtracts a Poisson law's own quantile reading, this adds back its variance).
 */
function pooledSpreadAt(relative: number, phi: number | undefined, expected: number): number {
  if (phi === undefined) return relative * expected;
  return Math.sqrt(expected + phi * expected * expected);
}

/**
 * The smallest count whose Poisson(lambda) CDF reaches p, by bisection: a walk up from below the mean took one tail
 * sum per count, thousands of them at a mean of a million (a quarter of a second per baseline), where bisection
 * takes a few dozen.
 */
export function poissonQuantile(p: number, lambda: number): number {
  if (!(lambda > 0)) return 0;
  const logP = Math.log(p);
  const reaches = (k: number): boolean => poissonLogLowerTail(k, lambda) >= logP;
  const sd = Math.sqrt(lambda);
  // Invariant: the CDF at `below` is short of p, at `above` it reaches p.
  let below = Math.floor(lambda - 12 * sd);
  if (below < 0 || reaches(below)) {
    if (reaches(0)) return 0;
    below = 0;
  }
  let above = Math.ceil(lambda + 12 * sd) + 12;
  while (!reaches(above)) above = 2 * above;
  while (above - below > 1) {
    const middle = below + Math.floor((above - below) / 2);
    if (reaches(middle)) above = middle;
    else below = middle;
  }
  return above;
}

/**
 * The variance beyond Poisson's on each side of a pooled baseline, as the phi of a negative binomial law: the pooled
 * quantiles' spread (`quantileSpread` with the tail readings) squared, less what the same reading gives for a Poisson
 * law of the same mean, over the mean squared, at least 0. The Poisson reading is taken from that law's own
 * quantiles, not from sqrt(mean): at a mean of about 1 its p99 and the p95-p99 spacing read a spread of 1.5 counts
 * (the steps of a discrete law), which is no overdispersion at all.
 */
function overdispersionOf(pooled: Baseline, above: number | undefined, below: number | undefined) {
  const mean = pooled.mean;
  const poisson = quantileSpread(
    {
      p01: poissonQuantile(0.01, mean),
      p05: poissonQuantile(0.05, mean),
      p95: poissonQuantile(0.95, mean),
      p99: poissonQuantile(0.99, mean),
    },
    mean,
    true,
  );
  const phi = (spread: number | undefined, poissonSpread: number | undefined): number =>
    Math.max(0, ((spread ?? 0) ** 2 - (poissonSpread ?? Math.sqrt(mean)) ** 2) / (mean * mean));
  return { above: phi(above, poisson.above), below: phi(below, poisson.below) };
}

/**
 * Each side's spread as a normal law would have it given the quantiles of
 * that side. A slot's own is read from its p95 (p05) alone: of 120 to 240
 * samples the p99 is the second or third largest, too noisy to judge by, and
 * the p95-p99 spacing doubles that noise. The series' pooled quantiles
 * average the noise out over its slots, so `tail` reads them too: the
 * distance of the p99 (p01) to the mean and the p95-p99 spacing, which a
 * heavy tail stretches even where the p95 sits close to the mean. Undefined
 * for a side whose quantiles are missing or on the wrong side of the mean.
 */
function quantileSpread(
  baseline: Pick<Baseline, 'p01' | 'p05' | 'p95' | 'p99'>,
  expected: number,
  tail: boolean,
): { above?: number; below?: number } {
  const { p95, p99 } = baseline;
  const p05 = baseline.p05 ?? Number.NaN;
  const p01 = baseline.p01 ?? Number.NaN;
  const spacing = Z99 - Z95;
  const above = (p95 - expected) / Z95;
  const below = (expected - p05) / Z95;
  return {
    ...(Number.isFinite(p95) && Number.isFinite(p99) && p95 > expected
      ? { above: tail ? Math.max(above, (p99 - expected) / Z99, (p99 - p95) / spacing) : above }
      : {}),
    ...(Number.isFinite(p05) && Number.isFinite(p01) && p05 < expected
      ? { below: tail ? Math.max(below, (expected - p01) / Z99, (p05 - p01) / spacing) : below }
      : {}),
  };
}

/**
 * For an exponential tail the p99 lies ln(100) - 1 mean excesses above the mean and the p95 ln(20) - 1, a ratio of
 * 1.80 (a normal law's is z99 / z95 = 1.41); a series whose p99 stands further out than that, relative to its p95,
 * has a tail heavier than exponential (bursts whose size is itself spread over orders of magnitude).
 */
const EXPONENTIAL_P99_P95_RATIO = (Math.log(100) - 1) / (Math.log(20) - 1);

/**
 * The upper tail of a pooled baseline when it is heavier than exponential, read as a Pareto tail through its p95 and
 * p99: the excess over the mean grows as (1 - p)^-index, index = ln(e99 / e95) / ln(5). Undefined otherwise.
 */
function heavyTail(pooled: Baseline): RelativeSpread['heavyTail'] {
  const e95 = pooled.p95 - pooled.mean;
  const e99 = pooled.p99 - pooled.mean;
  if (!(e95 > 0) || !(e99 / e95 > EXPONENTIAL_P99_P95_RATIO)) return undefined;
  return { index: Math.log(e99 / e95) / Math.log(5), p99Excess: e99 / pooled.mean };
}

/**
 * The spread, relative to the mean, that puts the z threshold where a heavy tail says counts are exceeded as rarely
 * as the threshold promises (Phi(-z), 1.35e-3 at z = 3): a normal reading of p95 and p99 places it far too low for a
 * Pareto tail, which keeps stretching past the p99 (a series bursting to 10 times its level now and then gets its
 * 0.1% quantile at about 10 times, where a normal law through its p99 puts it at 5).
 */
function paretoSpread(tail: NonNullable<RelativeSpread['heavyTail']>, zThreshold: number): number {
  const exceedance = Math.exp(normalLogUpperTail(zThreshold));
  return (tail.p99Excess * (0.01 / exceedance) ** tail.index) / zThreshold;
}

const upperTailByZ = new Map<number, number>();

/** ln(1 - Phi(z)), by bisection on `normalQuantileOfLog` (monotone); memoized, since z is a setting. */
function normalLogUpperTail(z: number): number {
  const known = upperTailByZ.get(z);
  if (known !== undefined) return known;
  if (upperTailByZ.size > 64) upperTailByZ.clear();
  let low = -800;
  let high = 0;
  for (let i = 0; i < 100; i++) {
    const mid = (low + high) / 2;
    if (-normalQuantileOfLog(mid) > z) low = mid;
    else high = mid;
  }
  const logTail = (low + high) / 2;
  upperTailByZ.set(z, logTail);
  return logTail;
}

/** A pooled baseline's quantile spreads relative to its mean; undefined when neither side has quantiles. */
function relativeSpread(pooled: Baseline): RelativeSpread | undefined {
  if (!(pooled.mean > 0)) return undefined;
  const { above, below } = quantileSpread(pooled, pooled.mean, true);
  if (above === undefined && below === undefined) return undefined;
  const tail = heavyTail(pooled);
  return {
    above: (above ?? 0) / pooled.mean,
    below: (below ?? 0) / pooled.mean,
    overdispersion: overdispersionOf(pooled, above, below),
    ...(tail ? { heavyTail: tail } : {}),
  };
}

/**
 * Scores one window's count against its baseline. Without a baseline (or
 * for a service with monitoring disabled) nothing is anomalous, whatever the
 * count: a missing baseline more often means "not computed yet" than "never
 * seen", and a fresh install must not alert on every busy series. A series
 * that has history but none in this slot is covered by the lookup fallbacks.
 *
 * Above the band is a spike; below it a drop, except at zero, which is the
 * silence rule's alone (so `silenceDetection: false` keeps empty windows
 * quiet, and a stop reads as one silence rather than a drop and a silence).
 *
 * Baselines from the database may hold NaN (stddevSamp of one sample): a
 * non-finite stddev counts as 0, leaving the floors to apply; a non-finite or
 * negative mean is no baseline.
 *
 * `previousRunTail` is the previous window's `sparseRunTail` when it ended
 * where this one starts (`scoreWindows` keeps it per series); without it the
 * window is judged alone.
 */
export function score(
  count: number,
  baseline: Baseline | undefined,
  settings: DetectorSettings,
  previousRunTail?: number,
): AnomalyScore {
  return scoreWithRunTail(count, baseline, settings, previousRunTail).score;
}

/** A window's score and its own evidence towards a sparse run (`sparseRunTail`), from one pass over its baseline. */
export interface ScoreAndRunTail {
  readonly score: AnomalyScore;
  readonly runTail: number | undefined;
}

/**
 * `score` and `sparseRunTail` of one window at once: `scoreWindows` needs both for every window, and the run's
 * evidence is the band check and Poisson tail the score has just computed.
 */
export function scoreWithRunTail(
  count: number,
  baseline: Baseline | undefined,
  settings: DetectorSettings,
  previousRunTail?: number,
): ScoreAndRunTail {
  if (!(count >= 0) || !Number.isFinite(count))
    throw new RangeError(`score: count must be a finite number >= 0, got ${count}`);
  const expected =
    baseline !== undefined && Number.isFinite(baseline.mean) && baseline.mean >= 0 ? baseline.mean : undefined;
  if (!settings.enabled || baseline === undefined || expected === undefined)
    return {
      score: { anomalous: false, kind: null, score: 0, expected: expected ?? 0, method: 'none' },
      runTail: undefined,
    };

  // The median guards against bursty series (a batch job logging every few minutes) where empty minutes are normal
  // although the mean is high.
  const typicalCount = Number.isFinite(baseline.median) ? Math.min(expected, baseline.median) : expected;
  const silent = settings.silenceDetection && count === 0 && typicalCount >= settings.minExpectedForSilence;

  if (expected >= settings.minCount) {
    const spread = bandSpread(baseline, expected, settings);
    const z = count >= expected ? (count - expected) / spread.above : (count - expected) / spread.below;
    // The band's z-score reads a normal law, whose upper tail is lighter than a Poisson count's (skewed by
    // 1/sqrt(mean): at a mean of 20, 3 Poisson stddevs above it are passed twice as often as a normal law says), and a
    // count is never less noisy than Poisson. So above the mean the score is also at most the Poisson tail's, on the
    // same scale; for an overdispersed series the band is far wider and decides alone. Below the mean a Poisson
    // count's tail is lighter than the normal one, so the band decides.
    const poissonZ = count > expected ? poissonCdfAsZ(Math.floor(count) - 1, expected) : Infinity;
    const zScore = count > expected ? lessExtreme(z, poissonZ) : z;
    const spike = zScore >= settings.zThreshold;
    const drop = count > 0 && z <= -settings.zThreshold;
    return { score: scored(spike, drop, silent, zScore, expected, 'zscore'), runTail: undefined };
  }

  const lambda = Math.max(expected, settings.poissonMeanFloor);
  // Fractional counts (weighted windows) are scored as the whole events they contain.
  const events = Math.floor(count);
  const tail = Math.log(settings.poissonTail);
  // A Poisson law is the least noise a count can have, not the noise it has: a sparse series that bursts (a retry
  // storm logging a few dozen errors) has a far heavier upper tail, which its quantiles show, and judged by Poisson
  // alone every routine burst is a spike. So above the mean a sparse count must also lie outside the calibrated band
  // the dense path judges by (`bandSpread`, never narrower than Poisson's sqrt(mean)), at the dense path's threshold,
  // so the two paths agree at the `minCount` seam. Below the mean the Poisson tail stays the only test: bursts
  // stretch the upper tail, a sparse count's fall is bounded by zero, and zero is the silence rule's.
  const above = count > expected ? (count - expected) / bandSpread(baseline, expected, settings).above : -Infinity;
  const ownTail = events > lambda ? poissonLogUpperTail(events, lambda) : 0;
  // This window's evidence towards a run (`sparseRunTail`): above the Poisson mean and clear of the band on its own.
  const runTail = events > lambda && above >= settings.zThreshold ? ownTail : undefined;
  // A run of two windows: the less extreme of the two tails, squared, bounds the chance that two independent windows
  // of the series are both that far out.
  const pairTail = previousRunTail !== undefined && runTail !== undefined ? 2 * Math.max(previousRunTail, runTail) : 0;
  const spike = events > lambda && Math.min(ownTail, pairTail) <= tail && above >= settings.zThreshold;
  const drop = events > 0 && events < lambda && poissonLogLowerTail(events, lambda) <= tail;
  const poissonZ = events >= lambda ? poissonCdfAsZ(events - 1, lambda) : poissonCdfAsZ(events, lambda);
  const pairZ = pairTail < 0 ? -normalQuantileOfLog(pairTail) : -Infinity;
  return {
    score: scored(spike, drop, silent, lessExtreme(Math.max(poissonZ, pairZ), above), expected, 'poisson'),
    runTail,
  };
}

/**
 * A sparse window's evidence towards a run: the log of its Poisson upper tail when its count is above the mean and
 * clears the calibrated band on its own (`score`'s band check), else undefined; a count that is not a count throws, as
 * in `score`. `score` takes the previous window's (when the two are adjacent) as `previousRunTail`.
 *
 * Why: at a mean of about 1, `poissonTail` (1e-4) takes 7 or more events in one window, so an incident that lifts a
 * sparse series to 5 a window for half an hour is never a spike however long it lasts, while a dense series' z-score
 * sees it. Two adjacent windows that are each past sqrt(poissonTail) are, for independent Poisson counts, as unlikely
 * as one window past poissonTail, so a run of them is held to the same false-alarm rate as a single window, and the
 * single-window test is unchanged. Only the Poisson part is relaxed: each window must still clear the calibrated band
 * at the full threshold, since a bursty series' windows are not independent (a burst lasts several windows) and its
 * band, not Poisson, describes its noise.
 */
export function sparseRunTail(
  count: number,
  baseline: Baseline | undefined,
  settings: DetectorSettings,
): number | undefined {
  return scoreWithRunTail(count, baseline, settings).runTail;
}

/**
 * Of two scores of one count, the one nearer 0 when they agree on the side, else 0: the median of the two and 0,
 * non-decreasing in each, so the combined score stays non-decreasing in the count. Below the mean the band's score is
 * -Infinity, which leaves the Poisson score (or 0 where that is above 0).
 */
function lessExtreme(a: number, b: number): number {
  return Math.max(Math.min(a, b), Math.min(Math.max(a, b), 0));
}

function scored(
  spike: boolean,
  drop: boolean,
  silent: boolean,
  z: number,
  expected: number,
  method: ScoreMethod,
): AnomalyScore {
  const kind: AnomalyKind | null = spike ? 'spike' : silent ? 'silence' : drop ? 'drop' : null;
  return { anomalous: kind !== null, kind, score: z, expected, method };
}

/** A closed window with its series and score, as `scoreWindows` emits it and `alertLifecycle` consumes it. */
export interface ScoredWindow extends SeriesKey, AnomalyScore {
  readonly key: string;
  readonly start: number;
  readonly end: number;
  readonly count: number;
  /** The service's `alerting` setting: false keeps the window away from the alert lifecycle. */
  readonly alerting: boolean;
  /**
   * For a normal window, the rule of the spike or drop its series' adaptive level still holds
   * (`AdaptiveLevels.heldAnomaly`, src/domain/adaptive-level.ts): that rule's open alert neither resolves nor counts
   * the window towards resolving.
   */
  readonly held?: 'spike' | 'drop';
}

// ---------------------------------------------------------------------------
// Alert lifecycle

export type AlertRule = AnomalyKind;
export const ALERT_RULES: readonly AlertRule[] = ['spike', 'drop', 'silence'];

export interface AlertKey extends SeriesKey {
  readonly dedupKey: string;
  readonly rule: AlertRule;
}

/**
 * `rule:service:environment:level`. Service names cannot hold a colon (the
 * services table's name check) and levels are a fixed set, so only an
 * environment with a colon could make two keys collide.
 */
export function alertDedupKey(rule: AlertRule, series: SeriesKey): string {
  return `${rule}:${series.service}:${series.environment}:${series.level}`;
}

export interface LifecycleSettings {
  /** Consecutive anomalous windows before an alert opens; 1 opens on the first. */
  readonly pendingWindows: number;
  /** Consecutive normal windows before an open alert resolves. */
  readonly resolveWindows: number;
  /** Least window (event) time between two delivered notifications of one open alert. */
  readonly cooldownMs: number;
}

/** The seed's `anomaly.pending_windows`, `anomaly.resolve_windows` and `anomaly.cooldown_minutes`. */
export const DEFAULT_LIFECYCLE_SETTINGS: LifecycleSettings = Object.freeze({
  pendingWindows: 2,
  resolveWindows: 5,
  cooldownMs: 30 * 60_000,
});

export function resolveLifecycleSettings(settings: Partial<LifecycleSettings> = {}): LifecycleSettings {
  const resolved = {
    pendingWindows: settings.pendingWindows ?? DEFAULT_LIFECYCLE_SETTINGS.pendingWindows,
    resolveWindows: settings.resolveWindows ?? DEFAULT_LIFECYCLE_SETTINGS.resolveWindows,
    cooldownMs: settings.cooldownMs ?? DEFAULT_LIFECYCLE_SETTINGS.cooldownMs,
  };
  const problems: string[] = [];
  if (!Number.isSafeInteger(resolved.pendingWindows) || resolved.pendingWindows < 1)
    problems.push(`pendingWindows must be an integer >= 1, got ${resolved.pendingWindows}`);
  if (!Number.isSafeInteger(resolved.resolveWindows) || resolved.resolveWindows < 1)
    problems.push(`resolveWindows must be an integer >= 1, got ${resolved.resolveWindows}`);
  if (!(resolved.cooldownMs >= 0) || !Number.isFinite(resolved.cooldownMs))
    problems.push(`cooldownMs must be a finite number >= 0, got ${resolved.cooldownMs}`);
  if (problems.length > 0) throw new RangeError(`invalid alert lifecycle settings: ${problems.join('; ')}`);
  return Object.freeze(resolved);
}

export type AlertEventType = 'pending' | 'opened' | 'renotify' | 'resolved';

/** One change of an alert, to upsert into anomaly_alerts by `dedupKey`. */
export interface AlertEvent extends AlertKey {
  readonly type: AlertEventType;
  readonly windowStart: number;
  readonly windowEnd: number;
  readonly score: number;
  readonly observed: number;
  readonly expected: number;
  /** Anomalous windows since the alert went pending (consecutive until it opened). */
  readonly anomalousWindows: number;
  /** Consecutive normal windows up to this one. */
  readonly normalWindows: number;
  /**
   * A silence covered the alert at `windowEnd`: the event still records the
   * state change, but no one is to be notified. `renotify` is never silenced:
   * while silenced there is nothing to re-notify.
   */
  readonly silenced: boolean;
}

/** Where an active alert is; inactive and resolved alerts have none. */
export interface AlertProgress {
  readonly status: 'pending' | 'open';
  readonly anomalousWindows: number;
  readonly normalWindows: number;
  /** End of the last window applied, so a replayed window is recognised. */
  readonly lastWindowEnd: number;
  /** End of the window of the last delivered (unsilenced) notification of this alert; null if none yet. */
  readonly lastNotifiedAt: number | null;
}

export interface AlertTransition {
  readonly next: AlertProgress | undefined;
  readonly event:
    | {
        readonly type: AlertEventType;
        readonly anomalousWindows: number;
        readonly normalWindows: number;
        readonly silenced: boolean;
      }
    | undefined;
}

/**
 * The lifecycle of one dedup key for one window: a pure function. `silenced`
 * is asked only when the answer matters, at most once. `held`: the window is
 * normal but its series is still in this rule's anomaly (`ScoredWindow.held`);
 * an open alert then stays as it is, its count of normal windows neither
 * growing nor reset.
 */
export function transitionAlert(
  current: AlertProgress | undefined,
  anomalous: boolean,
  windowEnd: number,
  settings: LifecycleSettings,
  silenced: () => boolean,
  held = false,
): AlertTransition {
  const opening = (anomalousWindows: number): AlertTransition => {
    const isSilenced = silenced();
    return {
      next: {
        status: 'open',
        anomalousWindows,
        normalWindows: 0,
        lastWindowEnd: windowEnd,
        lastNotifiedAt: isSilenced ? null : windowEnd,
      },
      event: { type: 'opened', anomalousWindows, normalWindows: 0, silenced: isSilenced },
    };
  };

  if (current === undefined) {
    if (!anomalous) return { next: undefined, event: undefined };
    if (settings.pendingWindows <= 1) return opening(1);
    return {
      next: {
        status: 'pending',
        anomalousWindows: 1,
        normalWindows: 0,
        lastWindowEnd: windowEnd,
        lastNotifiedAt: null,
      },
      event: { type: 'pending', anomalousWindows: 1, normalWindows: 0, silenced: silenced() },
    };
  }

  if (current.status === 'pending') {
    if (!anomalous)
      return {
        next: undefined,
        event: { type: 'resolved', anomalousWindows: current.anomalousWindows, normalWindows: 1, silenced: silenced() },
      };
    const anomalousWindows = current.anomalousWindows + 1;
    if (anomalousWindows >= settings.pendingWindows) return opening(anomalousWindows);
    return { next: { ...current, anomalousWindows, lastWindowEnd: windowEnd }, event: undefined };
  }

  if (!anomalous && held) return { next: { ...current, lastWindowEnd: windowEnd }, event: undefined };

  if (!anomalous) {
    const normalWindows = current.normalWindows + 1;
    if (normalWindows >= settings.resolveWindows) {
      return {
        next: undefined,
        event: { type: 'resolved', anomalousWindows: current.anomalousWindows, normalWindows, silenced: silenced() },
      };
    }
    return { next: { ...current, normalWindows, lastWindowEnd: windowEnd }, event: undefined };
  }

  const anomalousWindows = current.anomalousWindows + 1;
  const cooledDown = current.lastNotifiedAt === null || windowEnd - current.lastNotifiedAt >= settings.cooldownMs;
  if (cooledDown && !silenced()) {
    return {
      next: { ...current, anomalousWindows, normalWindows: 0, lastWindowEnd: windowEnd, lastNotifiedAt: windowEnd },
      event: { type: 'renotify', anomalousWindows, normalWindows: 0, silenced: false },
    };
  }
  return { next: { ...current, anomalousWindows, normalWindows: 0, lastWindowEnd: windowEnd }, event: undefined };
}

/** Decides whether a silence covers an alert at a window time (epoch ms); the caller keeps the silences. */
export type SilenceCheck = (alert: AlertKey, at: number) => boolean;

/** What the lifecycle reads of a scored window. */
export type LifecycleInput = Pick<
  ScoredWindow,
  'service' | 'environment' | 'level' | 'start' | 'end' | 'count' | 'kind' | 'score' | 'expected' | 'held'
> & {
  readonly alerting?: boolean;
};

interface ActiveAlert extends AlertKey {
  progress: AlertProgress;
}

const progressSchema = z.object({
  status: z.enum(['pending', 'open']),
  anomalousWindows: z.number().int().min(1),
  normalWindows: z.number().int().min(0),
  lastWindowEnd: z.number(),
  lastNotifiedAt: z.number().nullable(),
});

const lifecycleSnapshotSchema = z.object({
  version: z.literal(1),
  highWatermark: z.number().nullable(),
  alerts: z.array(
    z.object({
      dedupKey: z.string(),
      rule: z.enum(['spike', 'drop', 'silence']),
      service: z.string(),
      environment: z.string(),
      level: z.string(),
      progress: progressSchema,
    }),
  ),
});

/** JSON-safe; store it with the window state in the same checkpoint. */
export type AlertLifecycleSnapshot = z.infer<typeof lifecycleSnapshotSchema>;

/**
 * The lifecycle of every dedup key: the active (pending or open) alerts only,
 * so state is bounded by the alerts in flight. Deterministic: the events
 * depend only on the windows applied, the settings and the silence check.
 *
 * Windows must be applied in non-decreasing end order, as `windowByEventTime`
 * emits them. A window already applied is recognised and skipped (counted in
 * `skippedWindows`): one ending before the greatest end applied, or one
 * whose alert has already seen its end. So replaying windows from before a
 * checkpoint, after restoring it, emits nothing twice.
 *
 * A window of a service with alerting disabled is not applied: its alerts
 * stay as they are, emitting nothing, until alerting is enabled again.
 */
export class AlertLifecycleState {
  readonly settings: LifecycleSettings;
  private readonly alerts = new Map<string, ActiveAlert>();
  private highWatermark: number | null = null;
  private skipped = 0;

  constructor(settings: Partial<LifecycleSettings> = {}) {
    this.settings = resolveLifecycleSettings(settings);
  }

  /** Rebuilds a state from `snapshot()` output (after a JSON round trip, say), with the settings of now. */
  static fromSnapshot(snapshot: unknown, settings: Partial<LifecycleSettings> = {}): AlertLifecycleState {
    const parsed = lifecycleSnapshotSchema.safeParse(snapshot);
    if (!parsed.success)
      throw new LogflowError(
        ErrorCodes.INPUT_INVALID,
        `alert lifecycle snapshot is malformed: ${parsed.error.message}`,
        { stage: 'operator' },
      );
    const state = new AlertLifecycleState(settings);
    state.highWatermark = parsed.data.highWatermark;
    for (const alert of parsed.data.alerts)
      state.alerts.set(alert.dedupKey, { ...alert, progress: { ...alert.progress } });
    return state;
  }

  /** Pending and open alerts held. */
  get activeAlerts(): number {
    return this.alerts.size;
  }

  /** Windows recognised as already applied. */
  get skippedWindows(): number {
    return this.skipped;
  }

  /** Applies one window to every rule of its series; returns the events it causes, in `ALERT_RULES` order. */
  apply(window: LifecycleInput, isSilenced: SilenceCheck = neverSilenced): AlertEvent[] {
    if (window.alerting === false) return [];
    if (this.highWatermark !== null && window.end < this.highWatermark) {
      this.skipped++;
      return [];
    }
    this.highWatermark = window.end;
    const events: AlertEvent[] = [];
    let replayed = false;
    for (const rule of ALERT_RULES) {
      const dedupKey = alertDedupKey(rule, window);
      const active = this.alerts.get(dedupKey);
      if (active !== undefined && active.progress.lastWindowEnd >= window.end) {
        replayed = true;
        continue;
      }
      const key: AlertKey = {
        dedupKey,
        rule,
        service: window.service,
        environment: window.environment,
        level: window.level,
      };
      const transition = transitionAlert(
        active?.progress,
        window.kind === rule,
        window.end,
        this.settings,
        () => isSilenced(key, window.end),
        window.held === rule,
      );
      if (transition.next === undefined) this.alerts.delete(dedupKey);
      else if (active === undefined) this.alerts.set(dedupKey, { ...key, progress: transition.next });
      else active.progress = transition.next;
      if (transition.event !== undefined) {
        events.push({
          ...key,
          ...transition.event,
          windowStart: window.start,
          windowEnd: window.end,
          score: window.score,
          observed: window.count,
          expected: window.expected,
        });
      }
    }
    if (replayed) this.skipped++;
    return events;
  }

  snapshot(): AlertLifecycleSnapshot {
    const alerts = [...this.alerts.values()]
      .sort((a, b) => (a.dedupKey < b.dedupKey ? -1 : a.dedupKey > b.dedupKey ? 1 : 0))
      .map(({ dedupKey, rule, service, environment, level, progress }) => ({
        dedupKey,
        rule,
        service,
        environment,
        level,
        progress: { ...progress },
      }));
    return { version: 1, highWatermark: this.highWatermark, alerts };
  }
}

const neverSilenced: SilenceCheck = () => false;
