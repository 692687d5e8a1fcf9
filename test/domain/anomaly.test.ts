import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ANY_DAY,
  ANY_HOUR,
  bandSpread,
  DEFAULT_DETECTOR_SETTINGS,
  indexBaselines,
  lookupBaseline,
  mergeDetectorSettings,
  normalQuantile,
  poissonLowerTail,
  poissonUpperTail,
  score,
  resolveLifecycleSettings,
  serviceDetectorOverrides,
  transitionAlert,
  weeklySlotOf,
} from '../../src/domain/anomaly.ts';
import type { Baseline, DetectorSettings, SeriesKey } from '../../src/domain/anomaly.ts';

const series: SeriesKey = { service: 'api-gateway', environment: 'prod', level: 'ERROR' };

/**
 * A slot of normally distributed counts: its upper quantiles lie where a normal law puts them, so the calibrated
 * spread (`bandSpread`) equals the stddev. (Before calibration the quantiles were unused and this fixture had p95 =
 * 1.5 x mean, p99 = 2 x mean, which describes a heavy-tailed slot and now widens the band.)
 */
function baseline(overrides: Partial<Baseline> = {}): Baseline {
  const mean = overrides.mean ?? 100;
  const stddev = overrides.stddev ?? 10;
  return {
    ...series,
    hourOfDay: 0,
    dayOfWeek: 1,
    mean,
    stddev,
    median: mean,
    p95: mean + Z95 * stddev,
    p99: mean + Z99 * stddev,
    upperThreshold: mean + 30,
    lowerThreshold: Math.max(0, mean - 30),
    sampleCount: 240,
    ...overrides,
  };
}

const Z95 = 1.6448536269514722;
const Z99 = 2.3263478740408408;

const settings = (overrides: Partial<DetectorSettings> = {}): DetectorSettings =>
  mergeDetectorSettings(DEFAULT_DETECTOR_SETTINGS, overrides);

/**
 * Poisson tails by plain summation of the pmf recurrence, each tail summed from its small end; fine for lambda <= 50.
 */
function referenceTails(lambda: number): { upper: (k: number) => number; lower: (k: number) => number } {
  const terms: number[] = [Math.exp(-lambda)];
  for (let i = 1; i <= 400; i++) terms.push((terms[i - 1]! * lambda) / i);
  return {
    upper: (k) => {
      let sum = 0;
      for (let i = terms.length - 1; i >= Math.max(k, 0); i--) sum += terms[i]!;
      return sum;
    },
    lower: (k) => {
      let sum = 0;
      for (let i = 0; i <= k; i++) sum += terms[i]!;
      return sum;
    },
  };
}

describe('weeklySlotOf', () => {
  it('uses UTC hours and ClickHouse day numbers, Monday = 1 .. Sunday = 7', () => {
    expect(weeklySlotOf(Date.parse('2024-01-01T00:00:00Z'))).toEqual({ hourOfDay: 0, dayOfWeek: 1 });
    expect(weeklySlotOf(Date.parse('2024-01-07T23:59:59.999Z'))).toEqual({ hourOfDay: 23, dayOfWeek: 7 });
    expect(weeklySlotOf(Date.parse('1969-12-31T13:30:00Z'))).toEqual({ hourOfDay: 13, dayOfWeek: 3 });
  });

  it('agrees with Date for any instant (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: -8_640_000_000_000, max: 8_640_000_000_000 }), (ms) => {
        const date = new Date(ms);
        expect(weeklySlotOf(ms)).toEqual({
          hourOfDay: date.getUTCHours(),
          dayOfWeek: date.getUTCDay() === 0 ? 7 : date.getUTCDay(),
        });
      }),
    );
  });
});

describe('lookupBaseline', () => {
  // 2024-01-01 is a Monday: 10:15 UTC falls in slot (day 1, hour 10).
  const mondayTen = Date.parse('2024-01-01T10:15:00Z');

  it('prefers the window’s own weekly slot', () => {
    const own = baseline({ dayOfWeek: 1, hourOfDay: 10, mean: 42 });
    const index = indexBaselines([
      own,
      baseline({ dayOfWeek: 2, hourOfDay: 10, mean: 7 }),
      baseline({ dayOfWeek: 1, hourOfDay: 11, mean: 9 }),
    ]);
    // The slot's row, with the series' pooled spread the index attaches for calibration (`bandSpread`).
    expect(lookupBaseline(index, series, mondayTen)).toEqual({
      baseline: { ...own, seriesSpread: expect.any(Object) },
      fallback: 'slot',
    });
  });

  it('falls back to the same hour pooled over the days when the slot is thin, pooling mean and variance exactly', () => {
    const index = indexBaselines([
      baseline({ dayOfWeek: 1, hourOfDay: 10, mean: 1000, stddev: 0, sampleCount: 5 }),
      baseline({ dayOfWeek: 2, hourOfDay: 10, mean: 10, stddev: 2, median: 9, sampleCount: 40 }),
      baseline({ dayOfWeek: 3, hourOfDay: 10, mean: 20, stddev: 3, median: 19, sampleCount: 60 }),
      baseline({ dayOfWeek: 1, hourOfDay: 11, mean: 5000, sampleCount: 240 }),
    ]);
    const { baseline: pooled, fallback } = lookupBaseline(index, series, mondayTen);
    expect(fallback).toBe('hour');
    const samples = [
      { n: 5, mean: 1000, sd: 0, median: 1000 },
      { n: 40, mean: 10, sd: 2, median: 9 },
      { n: 60, mean: 20, sd: 3, median: 19 },
    ];
    const total = 105;
    const mean = samples.reduce((sum, s) => sum + s.n * s.mean, 0) / total;
    const variance = samples.reduce((sum, s) => sum + s.n * (s.sd ** 2 + (s.mean - mean) ** 2), 0) / total;
    expect(pooled).toMatchObject({ ...series, hourOfDay: 10, dayOfWeek: ANY_DAY, sampleCount: total });
    expect(pooled!.mean).toBeCloseTo(mean, 10);
    expect(pooled!.stddev).toBeCloseTo(Math.sqrt(variance), 10);
    expect(pooled!.median).toBeCloseTo(samples.reduce((sum, s) => sum + s.n * s.median, 0) / total, 10);
  });

  it('falls back to the whole week when the hour is missing or thin, then to none', () => {
    const otherHours = [
      baseline({ dayOfWeek: 4, hourOfDay: 3, mean: 4, sampleCount: 20 }),
      baseline({ dayOfWeek: 5, hourOfDay: 17, mean: 8, sampleCount: 20 }),
    ];
    const overall = lookupBaseline(
      indexBaselines([baseline({ dayOfWeek: 1, hourOfDay: 10, sampleCount: 3 }), ...otherHours]),
      series,
      mondayTen,
    );
    expect(overall.fallback).toBe('overall');
    expect(overall.baseline).toMatchObject({ hourOfDay: ANY_HOUR, dayOfWeek: ANY_DAY, sampleCount: 43 });

    expect(lookupBaseline(indexBaselines(otherHours, { minSamples: 41 }), series, mondayTen)).toEqual({
      baseline: undefined,
      fallback: 'none',
    });
    expect(lookupBaseline(indexBaselines(otherHours), { ...series, level: 'WARN' }, mondayTen)).toEqual({
      baseline: undefined,
      fallback: 'none',
    });
  });

  it('judges no window of a day of week the history has not reached, so a first week does not make weekends drops', () => {
    // The baseline job's first week: Monday to Friday's hour statistics, copied to the days it saw.
    const weekdays = [1, 2, 3, 4, 5].flatMap((dayOfWeek) =>
      Array.from({ length: 24 }, (_, hourOfDay) => baseline({ dayOfWeek, hourOfDay, mean: 100 })),
    );
    const index = indexBaselines(weekdays);
    const saturday = Date.parse('2024-01-06T10:15:00Z');
    expect(lookupBaseline(index, series, saturday)).toEqual({ baseline: undefined, fallback: 'none' });
    expect(score(30, lookupBaseline(index, series, saturday).baseline, settings()).anomalous).toBe(false);
    expect(lookupBaseline(index, series, mondayTen).fallback).toBe('slot');
    // A day seen for some hours still falls back to its hour pooled over the days.
    const partial = indexBaselines([...weekdays, baseline({ dayOfWeek: 6, hourOfDay: 0, sampleCount: 3 })]);
    expect(lookupBaseline(partial, series, saturday).fallback).toBe('hour');
    // Rows pooled over every day (dayOfWeek ANY_DAY) stand for every day.
    const pooled = indexBaselines([baseline({ dayOfWeek: ANY_DAY, hourOfDay: 10 })]);
    expect(lookupBaseline(pooled, series, saturday).fallback).toBe('hour');
  });

  it('keeps the later of two rows for one slot, as an unmerged ReplacingMergeTree read may return both', () => {
    const newer = baseline({ dayOfWeek: 1, hourOfDay: 10, mean: 77 });
    const index = indexBaselines([baseline({ dayOfWeek: 1, hourOfDay: 10, mean: 11 }), newer]);
    expect(lookupBaseline(index, series, mondayTen).baseline).toMatchObject(newer);
  });

  it('never returns a thin baseline, and returns the most specific thick one (property)', () => {
    const slot = fc.record({
      dayOfWeek: fc.integer({ min: 1, max: 7 }),
      hourOfDay: fc.integer({ min: 0, max: 23 }),
      sampleCount: fc.integer({ min: 0, max: 80 }),
    });
    fc.assert(
      fc.property(
        fc.uniqueArray(slot, { selector: (s) => `${s.dayOfWeek}/${s.hourOfDay}`, maxLength: 12 }),
        fc.integer({ min: 0, max: 7 * 86_400_000 - 1 }),
        (slots, offset) => {
          const at = Date.parse('2024-01-01T00:00:00Z') + offset;
          const { dayOfWeek, hourOfDay } = weeklySlotOf(at);
          const index = indexBaselines(slots.map((s) => baseline(s)));
          const found = lookupBaseline(index, series, at);
          const sum = (list: typeof slots): number => list.reduce((total, s) => total + s.sampleCount, 0);
          const own = slots.find((s) => s.dayOfWeek === dayOfWeek && s.hourOfDay === hourOfDay);
          // A day of week without any row has not been reached by the history yet: not judged (the first-week rule).
          const expected =
            own !== undefined && own.sampleCount >= 30
              ? 'slot'
              : !slots.some((s) => s.dayOfWeek === dayOfWeek)
                ? 'none'
                : sum(slots.filter((s) => s.hourOfDay === hourOfDay)) >= 30 &&
                    slots.some((s) => s.hourOfDay === hourOfDay)
                  ? 'hour'
                  : slots.length > 0 && sum(slots) >= 30
                    ? 'overall'
                    : 'none';
          expect(found.fallback).toBe(expected);
          if (found.baseline !== undefined) expect(found.baseline.sampleCount).toBeGreaterThanOrEqual(30);
        },
      ),
    );
  });
});

describe('detector settings', () => {
  it('merges service overrides field by field over the defaults', () => {
    const merged = mergeDetectorSettings(
      DEFAULT_DETECTOR_SETTINGS,
      { poissonTail: 1e-6 },
      serviceDetectorOverrides({ sensitivity: 4.5, minCount: 20, silenceDetection: false, alertingEnabled: false }),
    );
    expect(merged).toEqual({
      ...DEFAULT_DETECTOR_SETTINGS,
      poissonTail: 1e-6,
      zThreshold: 4.5,
      minCount: 20,
      silenceDetection: false,
      alerting: false,
    });
    expect(serviceDetectorOverrides({ monitoringEnabled: false })).toEqual({ enabled: false });
  });

  it('ignores fields left undefined', () => {
    const partial = { zThreshold: undefined, minCount: 3 } as unknown as Partial<DetectorSettings>;
    expect(mergeDetectorSettings(DEFAULT_DETECTOR_SETTINGS, partial)).toEqual({
      ...DEFAULT_DETECTOR_SETTINGS,
      minCount: 3,
    });
  });

  it('reports every invalid field at once', () => {
    expect(() =>
      mergeDetectorSettings(DEFAULT_DETECTOR_SETTINGS, { zThreshold: 0, poissonTail: 2, minCount: -1 }),
    ).toThrow(/zThreshold.*minCount.*poissonTail/);
  });
});

describe('Poisson tails and the normal quantile', () => {
  it('match values computed at 40 digits (mpmath)', () => {
    expect(poissonUpperTail(10, 2)).toBeCloseTo(4.649807501726381e-5, 18);
    expect(poissonUpperTail(9, 2)).toBeCloseTo(2.374473282611618e-4, 17);
    expect(poissonUpperTail(6, 0.5)).toBeCloseTo(1.416493732234249e-5, 18);
    expect(poissonUpperTail(21, 5)).toBeCloseTo(8.109250459888173e-8, 20);
    expect(poissonLowerTail(0, 6)).toBeCloseTo(2.478752176666358e-3, 17);
    expect(normalQuantile(0.025)).toBeCloseTo(-1.959963984540054, 8);
    expect(normalQuantile(1e-10)).toBeCloseTo(-6.361340902404056, 7);
    expect(normalQuantile(0.5)).toBe(0);
  });

  it('stay exact for large means, on either side of the mean (mpmath values for lambda = 1000)', () => {
    expect(poissonUpperTail(1100, 1000)).toBeCloseTo(9.626304058665572e-4, 15);
    expect(poissonLowerTail(900, 1000)).toBeCloseTo(6.977673277963068e-4, 15);
    expect(poissonUpperTail(900, 1000)).toBeCloseTo(0.999377402215725, 14);
    // Summing from the far side of the mode would overflow: the terms grow by e^1000 before they shrink.
    expect(poissonUpperTail(1, 1000)).toBe(1);
    expect(poissonLowerTail(5000, 1000)).toBe(1);
  });

  it('stay finite in log space far beyond the smallest double', () => {
    // ln P(X >= 1000 | 1) = ln(e^-1 / 1000!) + ln(1 + 1/1001 + ...), and Stirling is exact to double precision there.
    const tail = poissonUpperTail(1000, 1);
    expect(tail).toBe(0);
    const scored = score(1000, baseline({ mean: 1, stddev: 1, median: 1 }), settings());
    expect(Number.isFinite(scored.score)).toBe(true);
    expect(scored.score).toBeGreaterThan(100);
  });

  it('agree with plain summation and complement each other (property)', () => {
    fc.assert(
      fc.property(fc.double({ min: 0.01, max: 50, noNaN: true }), fc.integer({ min: 0, max: 150 }), (lambda, k) => {
        const reference = referenceTails(lambda);
        const upper = poissonUpperTail(k, lambda);
        const lower = poissonLowerTail(k, lambda);
        expect(Math.abs(upper - reference.upper(k))).toBeLessThanOrEqual(1e-12 * reference.upper(k) + 1e-300);
        expect(Math.abs(lower - reference.lower(k))).toBeLessThanOrEqual(1e-12 * reference.lower(k) + 1e-300);
        expect(upper + poissonLowerTail(k - 1, lambda)).toBeCloseTo(1, 12);
      }),
    );
  });
});

describe('score', () => {
  it('is a z-score against the baseline when the expected count is large enough', () => {
    const scored = score(160, baseline({ mean: 100, stddev: 20 }), settings());
    expect(scored).toEqual({
      anomalous: true,
      kind: 'spike',
      score: expect.closeTo(3, 12),
      expected: 100,
      method: 'zscore',
    });
    expect(score(159, baseline({ mean: 100, stddev: 20 }), settings())).toMatchObject({
      anomalous: false,
      kind: null,
      method: 'zscore',
    });
    expect(score(158, baseline({ mean: 100, stddev: 20 }), settings({ zThreshold: 2.9 }))).toMatchObject({
      anomalous: true,
      kind: 'spike',
    });
    expect(score(40, baseline({ mean: 100, stddev: 20 }), settings()).score).toBe(-3);
  });

  it('floors the standard deviation at max(1, 10% of the mean, sqrt(mean))', () => {
    // Relative floor: a flat series of 400/min does not alert on a few percent.
    expect(score(520, baseline({ mean: 400, stddev: 5 }), settings()).score).toBeCloseTo(3, 12);
    // Poisson floor: counts are never less noisy than sqrt(mean) (below the mean, where the Poisson tail does not cap
    // the score).
    expect(score(10, baseline({ mean: 25, stddev: 1 }), settings()).score).toBeCloseTo(-3, 12);
    expect(bandSpread(baseline({ mean: 25, stddev: 1 }), 25, settings()).above).toBeCloseTo(5, 12);
    // Absolute floor: only below a mean of 1, reachable with minCount 0.
    expect(score(3, baseline({ mean: 0.25, stddev: 0 }), settings({ minCount: 0 })).score).toBeCloseTo(2.75, 12);
    // The measured stddev when it is larger; NaN (stddevSamp of one sample) leaves the floors.
    expect(score(160, baseline({ mean: 100, stddev: 20 }), settings()).score).toBeCloseTo(3, 12);
    expect(score(70, baseline({ mean: 100, stddev: Number.NaN }), settings()).score).toBe(-3);
  });

  it('uses the Poisson tail for sparse counts: P(X >= 10 | 2) = 4.65e-5 is a spike at 1e-4, P(X >= 9 | 2) = 2.4e-4 is not', () => {
    const sparse = baseline({ mean: 2, stddev: 1.4, median: 2 });
    const ten = score(10, sparse, settings());
    expect(ten).toMatchObject({ anomalous: true, kind: 'spike', method: 'poisson', expected: 2 });
    expect(ten.score).toBeCloseTo(-normalQuantile(4.649807501726381e-5), 8);
    expect(score(9, sparse, settings())).toMatchObject({ anomalous: false, kind: null, method: 'poisson' });
    expect(score(9, sparse, settings({ poissonTail: 2.5e-4 }))).toMatchObject({ anomalous: true, kind: 'spike' });
    // Below the mean the score is the quantile of the lower tail.
    expect(score(0, sparse, settings()).score).toBeCloseTo(normalQuantile(Math.exp(-2)), 8);
  });

  it('assumes at least poissonMeanFloor events a minute, so a baseline of zero does not make a stray event a spike', () => {
    const silentSeries = baseline({ mean: 0, stddev: 0, median: 0 });
    expect(score(1, silentSeries, settings()).anomalous).toBe(false);
    // P(X >= 5 | 0.5) = 1.7e-4, P(X >= 6 | 0.5) = 1.4e-5.
    expect(score(5, silentSeries, settings()).anomalous).toBe(false);
    expect(score(6, silentSeries, settings())).toMatchObject({
      anomalous: true,
      kind: 'spike',
      method: 'poisson',
      expected: 0,
    });
  });

  it('scores a whole-event count for fractional (weighted) counts', () => {
    const sparse = baseline({ mean: 2, stddev: 1.4, median: 2 });
    expect(score(10.7, sparse, settings())).toEqual(score(10, sparse, settings()));
  });

  it('calls a drop to zero a silence when the typical minute has at least minExpectedForSilence events', () => {
    expect(score(0, baseline({ mean: 20, stddev: 4, median: 20 }), settings())).toMatchObject({
      anomalous: true,
      kind: 'silence',
      method: 'zscore',
      expected: 20,
    });
    expect(score(0, baseline({ mean: 6, stddev: 2.4, median: 6 }), settings())).toMatchObject({
      anomalous: true,
      kind: 'silence',
      method: 'poisson',
    });
    // One event where twenty are usual is not silence but a drop (z = -19 / sqrt(20)).
    expect(score(1, baseline({ mean: 20, stddev: 4, median: 20 }), settings()).kind).toBe('drop');
    expect(score(0, baseline({ mean: 4, stddev: 2, median: 4 }), settings()).anomalous).toBe(false);
    expect(score(0, baseline({ mean: 4, stddev: 2, median: 4 }), settings({ minExpectedForSilence: 4 })).kind).toBe(
      'silence',
    );
    expect(
      score(0, baseline({ mean: 20, stddev: 4, median: 20 }), settings({ silenceDetection: false })).anomalous,
    ).toBe(false);
  });

  it('does not call zero a silence for a bursty series whose median minute is (nearly) empty', () => {
    expect(score(0, baseline({ mean: 20, stddev: 40, median: 0 }), settings()).anomalous).toBe(false);
    expect(score(0, baseline({ mean: 20, stddev: 40, median: Number.NaN }), settings()).kind).toBe('silence');
  });

  it('never flags anything without a baseline or with monitoring disabled', () => {
    for (const count of [0, 5, 9, 10, 1_000_000]) {
      expect(score(count, undefined, settings())).toEqual({
        anomalous: false,
        kind: null,
        score: 0,
        expected: 0,
        method: 'none',
      });
      expect(score(count, baseline(), settings({ enabled: false }))).toEqual({
        anomalous: false,
        kind: null,
        score: 0,
        expected: 100,
        method: 'none',
      });
    }
    expect(score(50, baseline({ mean: Number.NaN }), settings())).toMatchObject({ anomalous: false, method: 'none' });
  });

  it('rejects counts that are not counts', () => {
    expect(() => score(-1, baseline(), settings())).toThrow(RangeError);
    expect(() => score(Number.NaN, baseline(), settings())).toThrow(RangeError);
  });

  const baselineArbitrary = fc.record({
    mean: fc.oneof(fc.double({ min: 0, max: 30, noNaN: true }), fc.double({ min: 0, max: 5000, noNaN: true })),
    stddev: fc.oneof(fc.double({ min: 0, max: 500, noNaN: true }), fc.constant(Number.NaN)),
    median: fc.double({ min: 0, max: 5000, noNaN: true }),
  });
  const settingsArbitrary = fc.record({
    zThreshold: fc.double({ min: 0.5, max: 10, noNaN: true }),
    minCount: fc.integer({ min: 0, max: 50 }),
    poissonTail: fc.double({ min: 1e-12, max: 0.5, noNaN: true }),
    poissonMeanFloor: fc.double({ min: 0.01, max: 5, noNaN: true }),
    minExpectedForSilence: fc.double({ min: 0, max: 20, noNaN: true }),
    silenceDetection: fc.boolean(),
  });
  const countArbitrary = fc.oneof(
    fc.integer({ min: 0, max: 60 }),
    fc.integer({ min: 0, max: 20_000 }),
    fc.integer({ min: 0, max: 50_000_000 }),
  );

  it('has no seam at the mean: the counts either side of it never step down', () => {
    // Computing the two sides from the two tails separately steps down by ~1e-16 at about 9 means in 10.
    for (let mean = 0.5; mean < 10; mean += 0.0137) {
      const sparse = baseline({ mean, median: mean });
      const firstAbove = Math.ceil(mean);
      expect(score(firstAbove, sparse, settings()).score).toBeGreaterThanOrEqual(
        score(firstAbove - 1, sparse, settings()).score,
      );
    }
  });

  it('is monotone in the count, and spikes stay spikes as the count grows (property)', () => {
    fc.assert(
      fc.property(baselineArbitrary, settingsArbitrary, countArbitrary, countArbitrary, (stats, overrides, a, b) => {
        const [low, high] = a <= b ? [a, b] : [b, a];
        const base = baseline(stats);
        const detector = settings(overrides);
        const lowScore = score(low, base, detector);
        const highScore = score(high, base, detector);
        expect(highScore.score).toBeGreaterThanOrEqual(lowScore.score);
        expect(Number.isNaN(lowScore.score)).toBe(false);
        expect(lowScore.method).toBe(highScore.method);
        if (lowScore.kind === 'spike') expect(highScore.kind).toBe('spike');
      }),
    );
  });

  it('calls silence only at zero and spikes only above the expected count (property)', () => {
    fc.assert(
      fc.property(baselineArbitrary, settingsArbitrary, countArbitrary, (stats, overrides, count) => {
        const scored = score(count, baseline(stats), settings(overrides));
        expect(scored.anomalous).toBe(scored.kind !== null);
        if (scored.kind === 'silence') expect(count).toBe(0);
        if (scored.kind === 'spike') expect(count).toBeGreaterThan(stats.mean);
      }),
    );
  });
});

describe('transitionAlert with a held level anomaly', () => {
  const settings = resolveLifecycleSettings({ pendingWindows: 1, resolveWindows: 3, cooldownMs: 0 });
  const never = () => false;
  type Step = 'anomalous' | 'normal' | 'held';
  const run = (steps: readonly Step[]) => {
    let progress: ReturnType<typeof transitionAlert>['next'];
    const events: string[] = [];
    steps.forEach((step, i) => {
      const t = transitionAlert(progress, step === 'anomalous', (i + 1) * 60_000, settings, never, step === 'held');
      progress = t.next;
      if (t.event !== undefined && t.event.type !== 'renotify') events.push(`${i}:${t.event.type}`);
    });
    return { events, progress };
  };

  it('keeps an open alert open through held windows, which neither count towards resolving nor reset the count', () => {
    expect(run(['anomalous', 'held', 'held', 'held', 'held']).events).toEqual(['0:opened']);
    expect(run(['anomalous', 'normal', 'held', 'normal', 'held', 'normal']).events).toEqual(['0:opened', '5:resolved']);
    expect(run(['anomalous', 'normal', 'normal', 'held', 'anomalous', 'normal', 'normal', 'normal']).events).toEqual([
      '0:opened',
      '7:resolved',
    ]);
  });

  it('opens nothing on held windows alone, and a held window ends a pending alert like a normal one', () => {
    expect(run(['held', 'held']).events).toEqual([]);
    const pending = resolveLifecycleSettings({ pendingWindows: 2, resolveWindows: 3, cooldownMs: 0 });
    const first = transitionAlert(undefined, true, 60_000, pending, never);
    expect(first.event?.type).toBe('pending');
    expect(transitionAlert(first.next, false, 120_000, pending, never, true)).toMatchObject({
      next: undefined,
      event: { type: 'resolved' },
    });
  });
});
