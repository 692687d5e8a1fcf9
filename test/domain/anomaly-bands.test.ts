/**
 * Drops and calibration (src/domain/anomaly.ts `bandSpread`, `score`) on seeded synthetic series, with baselines from
 * src/domain/series-baselines.ts, through the alert lifecycle the detect pipeline uses.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AlertLifecycleState,
  DEFAULT_DETECTOR_SETTINGS,
  bandSpread,
  indexBaselines,
  lookupBaseline,
  mergeDetectorSettings,
  normalQuantile,
  poissonLogLowerTail,
  poissonQuantile,
  poissonUpperTail,
  score,
  sparseRunTail,
  type AlertEvent,
  type Baseline,
  type BaselineIndex,
  type SeriesKey,
} from '../../src/domain/anomaly.ts';
import {
  baselineGranularity,
  computeSeriesBaselines,
  quantileInclusive,
  slotStatistics,
} from '../../src/domain/series-baselines.ts';
import { burstySeries, calmSeries, type SeriesPoint } from '../support/synthetic-series.ts';

const MINUTE = 60_000;
const DAY = 86_400_000;
const FROM = Date.UTC(2026, 0, 5); // a Monday
const series: SeriesKey = { service: 'checkout', environment: 'prod', level: 'INFO' };
const settings = DEFAULT_DETECTOR_SETTINGS;

/** 24 hourly Monday slots of `series`, each with the given mean, quantiles and stddev; the rest as `lower` says. */
function hourlySlots(
  mean: number,
  p95: number,
  p99: number,
  stddev: number,
  lower: Pick<Baseline, 'median' | 'p01' | 'p05'>,
): Baseline[] {
  return Array.from({ length: 24 }, (_, hourOfDay) => ({
    ...series,
    hourOfDay,
    dayOfWeek: 1,
    mean,
    stddev,
    ...lower,
    p95,
    p99,
    upperThreshold: 0,
    lowerThreshold: 0,
    sampleCount: 240,
  }));
}

function indexOf(history: readonly SeriesPoint[], strip = false): BaselineIndex {
  const last = history[history.length - 1]!;
  let rows = computeSeriesBaselines(series, history, {
    historyMs: last.start + MINUTE - history[0]!.start,
    zThreshold: 3,
  });
  // What the detector did before calibration: no quantiles, so both sides use the stddev.
  if (strip) rows = rows.map((row): Baseline => ({ ...row, p01: NaN, p05: NaN, p95: NaN, p99: NaN }));
  return indexBaselines(rows);
}

/** Scores and applies each window as scoreWindows and alertLifecycle do; returns the lifecycle events. */
function replay(points: readonly SeriesPoint[], index: BaselineIndex, state = new AlertLifecycleState()): AlertEvent[] {
  const events: AlertEvent[] = [];
  for (const { start, count } of points) {
    const scored = score(count, lookupBaseline(index, series, start).baseline, settings);
    events.push(...state.apply({ ...series, start, end: start + MINUTE, count, ...scored }));
  }
  return events;
}

const openings = (events: readonly AlertEvent[]) => events.filter((event) => event.type === 'opened');

describe('baseline statistics in process', () => {
  it('interpolates quantiles between order statistics, as ClickHouse quantilesExactInclusive does', () => {
    expect(quantileInclusive([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantileInclusive([0, 10], 0.95)).toBeCloseTo(9.5, 12);
    expect(quantileInclusive([7], 0.01)).toBe(7);
    expect(slotStatistics([2, 4, 4, 4, 5, 5, 7, 9])).toMatchObject({ mean: 5, stddev: 2, median: 4.5, sampleCount: 8 });
    expect(slotStatistics([])).toBeUndefined();
  });

  it('uses the baseline job’s bootstrap rule: flat under a day, hour of day under a week', () => {
    expect(baselineGranularity(DAY - 1)).toBe('flat');
    expect(baselineGranularity(DAY)).toBe('hour_of_day');
    expect(baselineGranularity(7 * DAY)).toBe('hour_and_day');
    const flat = computeSeriesBaselines(series, [{ start: FROM, count: 4 }], { historyMs: MINUTE, zThreshold: 3 });
    expect(flat).toHaveLength(24 * 7);
    expect(new Set(flat.map((row) => row.mean))).toEqual(new Set([4]));
  });
});

describe('drops', () => {
  const history = calmSeries(11, FROM, 14 * 1440, MINUTE, 60);
  const index = indexOf(history);

  it('opens a drop alert when a calm series falls to a third of normal, and resolves it after', () => {
    const week = calmSeries(12, FROM + 14 * DAY, 1440, MINUTE, 60);
    const dropAt = 600;
    const points = week.map((point, i) =>
      i >= dropAt && i < dropAt + 20 ? { ...point, count: Math.round(point.count / 3) } : point,
    );
    const events = replay(points, index);
    const opened = openings(events);
    expect(opened.map((event) => event.rule)).toEqual(['drop']);
    expect(opened[0]!.windowStart).toBe(week[dropAt + 1]!.start);
    expect(opened[0]!.score).toBeLessThan(-3);
    expect(events.some((event) => event.rule === 'drop' && event.type === 'resolved')).toBe(true);
  });

  it('leaves zero to the silence rule, and needs the count below the band, not merely below the mean', () => {
    const at = FROM + 14 * DAY + 12 * 3_600_000;
    const baseline = lookupBaseline(index, series, at).baseline!;
    expect(score(0, baseline, settings).kind).toBe('silence');
    expect(score(0, baseline, mergeDetectorSettings(settings, { silenceDetection: false })).kind).toBeNull();
    expect(score(Math.round(baseline.mean / 3), baseline, settings).kind).toBe('drop');
    expect(score(Math.round(baseline.mean * 0.9), baseline, settings).kind).toBeNull();
  });

  it('judges sparse counts by the Poisson lower tail', () => {
    const sparse = { ...indexOf(history).series.values().next().value!.overall, mean: 9, median: 9 };
    const tight = mergeDetectorSettings(settings, { poissonTail: 0.01 });
    // P(X <= 2 | 9) = 0.0062, P(X <= 3 | 9) = 0.021.
    expect(score(2, sparse, tight)).toMatchObject({ kind: 'drop', method: 'poisson' });
    expect(score(3, sparse, tight).kind).toBeNull();
  });
});

describe('calibration', () => {
  it('keeps a bursty, heavy-tailed series to a few openings a week, where the stddev band opened dozens', () => {
    for (const seed of [1, 2, 3]) {
      const points = burstySeries(seed, FROM, 21 * 1440, MINUTE, 40);
      const history = points.slice(0, 14 * 1440);
      const week = points.slice(14 * 1440);
      const calibrated = openings(replay(week, indexOf(history))).length;
      const uncalibrated = openings(replay(week, indexOf(history, true))).length;
      expect(calibrated, `seed ${seed}`).toBeLessThanOrEqual(10);
      expect(uncalibrated, `seed ${seed}`).toBeGreaterThan(4 * Math.max(calibrated, 5));
    }
  });

  it('still alerts on a small spike of a calm series, and on nothing else in its week', () => {
    const points = calmSeries(5, FROM, 21 * 1440, MINUTE, 40);
    const index = indexOf(points.slice(0, 14 * 1440));
    const week = points.slice(14 * 1440);
    expect(openings(replay(week, index))).toEqual([]);
    const spikeAt = 3 * 1440 + 200;
    // +60%: for a Poisson series around 40 (sqrt 6.3) a rise of 24 a minute is about 3.5 of its spreads.
    const spiked = week.map((point, i) =>
      i >= spikeAt && i < spikeAt + 5 ? { ...point, count: Math.round(point.count * 1.6) } : point,
    );
    const opened = openings(replay(spiked, index));
    expect(opened.map((event) => event.rule)).toEqual(['spike']);
    expect(opened[0]!.windowStart).toBeLessThanOrEqual(week[spikeAt + 2]!.start);
  });

  it('widens the upper side of a heavy-tailed series beyond its stddev, and leaves a normal series’ at its stddev', () => {
    const base = { ...series, dayOfWeek: 1, median: 100, upperThreshold: 0, lowerThreshold: 0, sampleCount: 240 };
    const normal = (hourOfDay: number): Baseline => ({
      ...base,
      hourOfDay,
      mean: 100,
      stddev: 10,
      p01: 76.74,
      p05: 83.55,
      p95: 116.45,
      p99: 123.26,
    });
    const calm = lookupBaseline(indexBaselines([normal(0), normal(1)]), series, FROM).baseline!;
    expect(bandSpread(calm, 100, settings).above).toBeCloseTo(10, 2);
    expect(bandSpread(calm, 100, settings).below).toBeCloseTo(10, 2);
    // A slot alone cannot tell its p99 from noise; the series' pooled p99 and p95-p99 spacing widen every slot.
    const heavy = lookupBaseline(indexBaselines([normal(0), { ...normal(1), p95: 130, p99: 400 }]), series, FROM)
      .baseline!;
    expect(bandSpread(normal(0), 100, settings).above).toBeCloseTo(10, 2);
    expect(bandSpread(heavy, 100, settings).above).toBeGreaterThan(100);
    expect(bandSpread(heavy, 100, settings).below).toBeCloseTo(10, 2);
  });
});

describe('score properties with calibrated bands', () => {
  const quantiles = fc
    .record({
      mean: fc.double({ min: 0, max: 5000, noNaN: true }),
      stddev: fc.oneof(fc.double({ min: 0, max: 500, noNaN: true }), fc.constant(Number.NaN)),
      gaps: fc.array(fc.double({ min: 0, max: 300, noNaN: true }), { minLength: 4, maxLength: 4 }),
      below: fc.double({ min: 0, max: 1, noNaN: true }),
      missing: fc.constantFrom('none', 'lower', 'all'),
    })
    .map(({ mean, stddev, gaps, below, missing }): Baseline => {
      // Quantiles in order around a median placed below the mean by a fraction of the first gap.
      const median = Math.max(0, mean - below * gaps[0]!);
      const p05 = Math.max(0, median - gaps[0]!);
      const p01 = Math.max(0, p05 - gaps[1]!);
      const p95 = median + gaps[2]!;
      const p99 = p95 + gaps[3]!;
      return {
        ...series,
        hourOfDay: 0,
        dayOfWeek: 1,
        mean,
        stddev,
        median,
        ...(missing === 'none' ? { p01, p05 } : {}),
        p95: missing === 'all' ? NaN : p95,
        p99: missing === 'all' ? NaN : p99,
        upperThreshold: 0,
        lowerThreshold: 0,
        sampleCount: 240,
      };
    });
  const detector = fc
    .record({
      zThreshold: fc.double({ min: 0.5, max: 10, noNaN: true }),
      minCount: fc.integer({ min: 0, max: 50 }),
      poissonTail: fc.double({ min: 1e-12, max: 0.5, noNaN: true }),
    })
    .map((overrides) => mergeDetectorSettings(DEFAULT_DETECTOR_SETTINGS, overrides));
  const count = fc.oneof(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 20_000 }));

  it('grows with the count’s distance from the band on either side, and drops stay drops as the count falls (property)', () => {
    fc.assert(
      fc.property(quantiles, detector, count, count, (baseline, options, a, b) => {
        const [low, high] = a <= b ? [a, b] : [b, a];
        const lowScore = score(low, baseline, options);
        const highScore = score(high, baseline, options);
        expect(highScore.score).toBeGreaterThanOrEqual(lowScore.score);
        // Further from the mean on one side: at least as far on the score's scale.
        if (low >= baseline.mean) expect(Math.abs(highScore.score)).toBeGreaterThanOrEqual(Math.abs(lowScore.score));
        if (high <= baseline.mean) expect(Math.abs(lowScore.score)).toBeGreaterThanOrEqual(Math.abs(highScore.score));
        if (highScore.kind === 'drop' && low > 0) expect(lowScore.kind).toBe('drop');
        if (lowScore.kind === 'spike') expect(highScore.kind).toBe('spike');
        if (lowScore.kind === 'drop') expect(low).toBeLessThan(baseline.mean);
        if (lowScore.kind === 'drop') expect(low).toBeGreaterThan(0);
      }),
      { numRuns: 500 },
    );
  });

  it('is deterministic: the same count, baseline and settings, also after a JSON round trip, give the same score (property)', () => {
    fc.assert(
      fc.property(quantiles, detector, count, (baseline, options, value) => {
        const again = JSON.parse(JSON.stringify(baseline)) as Baseline;
        // JSON turns NaN into null; the store reads null back as NaN.
        for (const field of ['stddev', 'p01', 'p05', 'p95', 'p99'] as const)
          if ((again as unknown as Record<string, unknown>)[field] === null)
            (again as unknown as Record<string, number>)[field] = NaN;
        expect(score(value, again, options)).toEqual(score(value, baseline, options));
        const index = indexBaselines([baseline]);
        expect(score(value, lookupBaseline(index, series, FROM).baseline, options)).toEqual(
          score(value, lookupBaseline(indexBaselines([again]), series, FROM).baseline, options),
        );
      }),
    );
  });

  it('gives the same decisions after a checkpoint and restore of the lifecycle at any window (property)', () => {
    const points = calmSeries(21, FROM, 8 * 1440, MINUTE, 60);
    const index = indexOf(points.slice(0, 7 * 1440));
    const day = points
      .slice(7 * 1440)
      .map((point, i) =>
        (i >= 100 && i < 120) || (i >= 700 && i < 710) ? { ...point, count: Math.round(point.count / 3) } : point,
      );
    const whole = replay(day, index);
    expect(openings(whole).map((event) => event.rule)).toEqual(['drop', 'drop']);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: day.length }), (cut) => {
        const state = new AlertLifecycleState();
        const before = replay(day.slice(0, cut), index, state);
        const restored = AlertLifecycleState.fromSnapshot(JSON.parse(JSON.stringify(state.snapshot())));
        expect([...before, ...replay(day.slice(cut), index, restored)]).toEqual(whole);
      }),
      { numRuns: 40 },
    );
  });
});

describe('bursty series: sparse counts and heavy tails', () => {
  /** Slots of one series, each with the given quantiles around its mean. */
  const slots = (mean: number, p95: number, p99: number, stddev: number): Baseline[] =>
    hourlySlots(mean, p95, p99, stddev, {
      median: mean,
      p01: Math.max(0, mean - 2.33 * Math.sqrt(mean)),
      p05: Math.max(0, mean - 1.64 * Math.sqrt(mean)),
    });
  const at = FROM + 9 * 3_600_000;

  it('needs a sparse count above the mean to clear the calibrated band too, not only the Poisson tail', () => {
    // Mean 6, bursts to several times that now and then: p99 at 30 where Poisson's is 13.
    const bursty = lookupBaseline(indexBaselines(slots(6, 14, 30, 6)), series, at).baseline!;
    const calm = lookupBaseline(indexBaselines(slots(6, 10, 12, Math.sqrt(6))), series, at).baseline!;
    // P(X >= 20 | 6) is 1.1e-5, beyond poissonTail: a spike for a calm series, a routine burst for a bursty one.
    expect(score(20, calm, settings)).toMatchObject({ kind: 'spike', method: 'poisson' });
    const routine = score(20, bursty, settings);
    expect(routine).toMatchObject({ kind: null, method: 'poisson' });
    expect(routine.score).toBeLessThan(settings.zThreshold);
    expect(routine.score).toBeGreaterThan(0);
    // Far enough out it is a spike for both.
    expect(score(200, bursty, settings)).toMatchObject({ kind: 'spike', method: 'poisson' });
  });

  it('extrapolates a tail heavier than exponential as Pareto, and leaves a normal or exponential tail as it was', () => {
    // Excess over the mean at p95 and p99: 10 and 14.1 is a normal law's ratio, 10 and 18 an exponential's, 10 and 40
    // a heavy tail's.
    const pooled = (p99: number) =>
      indexBaselines(slots(100, 110, 100 + p99, 6))
        .series.values()
        .next().value!.overall;
    expect(pooled(14.1).seriesSpread!.heavyTail).toBeUndefined();
    expect(pooled(17.9).seriesSpread!.heavyTail).toBeUndefined();
    const heavy = pooled(40).seriesSpread!.heavyTail!;
    expect(heavy.index).toBeCloseTo(Math.log(4) / Math.log(5), 12);
    expect(heavy.p99Excess).toBeCloseTo(0.4, 12);
    // The z = 3 threshold lands where the Pareto tail is exceeded 1.35e-3 of the time: 40 * (0.01 / 1.35e-3)^0.861.
    const spread = bandSpread(pooled(40), 100, settings).above;
    expect(100 + 3 * spread).toBeCloseTo(100 + 40 * (0.01 / 0.0013498980316301) ** heavy.index, 6);
    // A normal reading of the same p99 would have put it at 100 + 3 * 40 / 2.326 = 151.6.
    expect(100 + 3 * spread).toBeGreaterThan(250);
  });

  it('keeps the score non-decreasing in the count through pooled heavy tails and the sparse gate (property)', () => {
    const shape = fc.record({
      mean: fc.double({ min: 0.1, max: 400, noNaN: true }),
      e95: fc.double({ min: 0.5, max: 200, noNaN: true }),
      ratio: fc.double({ min: 1, max: 20, noNaN: true }),
      stddev: fc.double({ min: 0, max: 300, noNaN: true }),
      minCount: fc.integer({ min: 0, max: 50 }),
    });
    fc.assert(
      fc.property(shape, fc.integer({ min: 0, max: 5_000 }), fc.integer({ min: 0, max: 5_000 }), (s, a, b) => {
        const index = indexBaselines(slots(s.mean, s.mean + s.e95, s.mean + s.e95 * s.ratio, s.stddev));
        const baseline = lookupBaseline(index, series, at).baseline!;
        const options = mergeDetectorSettings(settings, { minCount: s.minCount });
        const [low, high] = a <= b ? [a, b] : [b, a];
        const lowScore = score(low, baseline, options);
        const highScore = score(high, baseline, options);
        expect(highScore.score).toBeGreaterThanOrEqual(lowScore.score);
        if (lowScore.kind === 'spike') expect(highScore.kind).toBe('spike');
        if (highScore.kind === 'spike') expect(highScore.score).toBeGreaterThan(0);
        expect(score(high, baseline, options)).toEqual(highScore);
      }),
      { numRuns: 500 },
    );
  });
});

describe("counts' variance: Poisson part and overdispersion", () => {
  /** 24 slots of one day, each with its own mean and quantiles (stddev as given), in order of the hours. */
  const day = (rows: ReadonlyArray<{ mean: number; p05: number; p95: number; p99: number; stddev: number }>) =>
    rows.map(
      (row, hourOfDay): Baseline => ({
        ...series,
        hourOfDay,
        dayOfWeek: 1,
        median: row.mean,
        p01: 0,
        upperThreshold: 0,
        lowerThreshold: 0,
        sampleCount: 240,
        ...row,
      }),
    );
  /** A Poisson series' slot: its quantiles are Poisson's own. */
  const poissonSlot = (mean: number) => ({
    mean,
    p05: poissonQuantile(0.05, mean),
    p95: poissonQuantile(0.95, mean),
    p99: poissonQuantile(0.99, mean),
    stddev: Math.sqrt(mean),
  });
  const hourAt = (hour: number) => FROM + hour * 3_600_000;

  it('reads no overdispersion in a Poisson series with a daily cycle, so its busy hours keep a Poisson band', () => {
    // Quiet nights at 0.5 a minute, busy days at 4: pooled, the nights' Poisson noise is large relative to the mean.
    const slots = day(Array.from({ length: 24 }, (_, hour) => poissonSlot(hour < 12 ? 0.5 : 4)));
    const index = indexBaselines(slots);
    const busy = lookupBaseline(index, series, hourAt(15)).baseline!;
    expect(busy.seriesSpread!.overdispersion).toEqual({ above: 0, below: 0 });
    const spread = bandSpread(busy, busy.mean, settings).above;
    // The slot's own p95 decides, not the pooled fraction scaled to the busy mean (which reads a fifth wider here).
    expect(spread).toBeCloseTo((busy.p95 - busy.mean) / 1.6448536269514722, 12);
    expect(busy.seriesSpread!.above * busy.mean).toBeGreaterThan(1.2 * spread);
  });

  it("carries an overdispersed series' pooled spread to a slot as a negative binomial variance", () => {
    const slots = day(Array.from({ length: 24 }, () => ({ mean: 100, p05: 70, p95: 150, p99: 190, stddev: 30 })));
    const pooled = indexBaselines(slots).series.values().next().value!.overall;
    const { above, overdispersion } = pooled.seriesSpread!;
    expect(overdispersion!.above).toBeGreaterThan(0);
    // At the pooled mean it is about the pooled reading (less the steps of a discrete law, which the Poisson part's
    // reading counts and sqrt(mean) does not); at four times the mean the overdispersed part, growing with the square
    // of the mean, dominates, and the spread grows nearly fourfold.
    expect(bandSpread(pooled, 100, settings).above).toBeCloseTo(above * 100, 0);
    const at400 = bandSpread({ ...pooled, mean: 400, p95: Number.NaN, p99: Number.NaN }, 400, settings).above;
    expect(at400).toBeCloseTo(Math.sqrt(400 + overdispersion!.above * 400 * 400), 9);
    expect(at400).toBeGreaterThan(3.9 * above * 100);
  });

  it("caps a dense count's score above the mean by its Poisson tail, which is heavier than the normal one", () => {
    const poissonLike: Baseline = { ...day([poissonSlot(100)])[0]!, p95: 100 + 1.6448536269514722 * 10 };
    // 130 is 3 stddevs above a Poisson mean of 100, but a Poisson law passes it 0.23% of the time, not 0.13%.
    const scored = score(130, poissonLike, settings);
    expect(scored).toMatchObject({ anomalous: false, kind: null, method: 'zscore' });
    expect(scored.score).toBeCloseTo(-normalQuantile(poissonUpperTail(130, 100)), 9);
    expect(scored.score).toBeLessThan(3);
    expect(score(134, poissonLike, settings)).toMatchObject({ anomalous: true, kind: 'spike' });
    // Below the mean the band decides alone.
    expect(score(70, poissonLike, settings).score).toBeCloseTo(-3, 9);
  });

  it('keeps the score non-decreasing in the count with the Poisson cap (property)', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 10, max: 500, noNaN: true }),
        fc.double({ min: 0, max: 3, noNaN: true }),
        fc.integer({ min: 0, max: 1000 }),
        (mean, relative, count) => {
          const baseline: Baseline = { ...day([poissonSlot(mean)])[0]!, stddev: relative * mean, p95: Number.NaN };
          expect(score(count + 1, baseline, settings).score).toBeGreaterThanOrEqual(
            score(count, baseline, settings).score,
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('sparse runs: two adjacent windows each past sqrt(poissonTail)', () => {
  const at = FROM + 9 * 3_600_000;
  /** A sparse series' baseline with the given quantiles on every hour. */
  const sparse = (mean: number, p95: number, p99: number, stddev: number): Baseline =>
    lookupBaseline(indexBaselines(hourlySlots(mean, p95, p99, stddev, { median: 1, p01: 0, p05: 0 })), series, at)
      .baseline!;
  // Poisson(1.06)'s own p95 and p99.
  const calm = sparse(1.06, 3, 4, Math.sqrt(1.06));

  it('takes 5 events after a window of 5 for a spike at a mean of about 1, where one window needs 8', () => {
    // P(X >= 5 | 1.06) = 5.5e-3: past sqrt(1e-4) = 1e-2, not past 1e-4.
    expect(score(5, calm, settings)).toMatchObject({ anomalous: false, method: 'poisson' });
    const five = sparseRunTail(5, calm, settings)!;
    expect(five).toBeCloseTo(Math.log(poissonUpperTail(5, 1.06)), 12);
    const second = score(5, calm, settings, five);
    expect(second).toMatchObject({ anomalous: true, kind: 'spike', method: 'poisson' });
    // The score is the less extreme of the run's and the band's.
    expect(second.score).toBeCloseTo(
      Math.min(-normalQuantile(poissonUpperTail(5, 1.06) ** 2), (5 - 1.06) / bandSpread(calm, 1.06, settings).above),
      9,
    );
    // A window of 4 (P = 2.3e-2) neither completes a run nor starts one; nor does a count below the mean.
    expect(score(4, calm, settings, five).anomalous).toBe(false);
    expect(score(5, calm, settings, Math.log(poissonUpperTail(4, 1.06))).anomalous).toBe(false);
    expect(sparseRunTail(1, calm, settings)).toBeUndefined();
    // One window still needs 8 on its own (P(X >= 7 | 1.06) = 1.2e-4).
    expect(score(7, calm, settings).anomalous).toBe(false);
    expect(score(8, calm, settings).anomalous).toBe(true);
  });

  it("still holds each window of a run to the calibrated band: a bursty sparse series' bursts span windows", () => {
    // Mean 1.06 with bursts: p99 at 15 where Poisson's is 4.
    const bursty = sparse(1.06, 6, 15, 3);
    expect(sparseRunTail(5, bursty, settings)).toBeUndefined();
    expect(score(5, bursty, settings, Math.log(poissonUpperTail(5, 1.06))).anomalous).toBe(false);
  });

  it('leaves dense counts, and a disabled service, to the single-window test', () => {
    const dense = sparse(20, 28, 31, Math.sqrt(20));
    expect(sparseRunTail(40, dense, settings)).toBeUndefined();
    expect(sparseRunTail(5, calm, mergeDetectorSettings(settings, { enabled: false }))).toBeUndefined();
    expect(sparseRunTail(5, undefined, settings)).toBeUndefined();
  });
});

describe('poissonQuantile', () => {
  it('is the smallest count whose CDF reaches p, from tiny means to a million', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.double({ min: 1e-3, max: 50, noNaN: true }), fc.double({ min: 50, max: 1e6, noNaN: true })),
        fc.constantFrom(1e-4, 0.01, 0.05, 0.5, 0.95, 0.99, 1 - 1e-4),
        (lambda, p) => {
          const k = poissonQuantile(p, lambda);
          expect(poissonLogLowerTail(k, lambda)).toBeGreaterThanOrEqual(Math.log(p));
          if (k > 0) expect(poissonLogLowerTail(k - 1, lambda)).toBeLessThan(Math.log(p));
        },
      ),
      { numRuns: 300 },
    );
  });
});
