/**
 * Adaptive levels (src/domain/adaptive-level.ts) on their own, and through `scoreWindows` and the alert lifecycle as
 * detect and detect-series run them: following a slow level change, learning nothing from anomalous windows, and
 * giving the same scores and alert events after a checkpoint (a changelog of entries, as the checkpoint store keeps
 * it) and a restore as an uninterrupted run.
 */
import fc from 'fast-check';
import { from, lastValueFrom, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { AdaptiveLevels, type LevelEntry } from '../../src/domain/adaptive-level.ts';
import {
  AlertLifecycleState,
  DEFAULT_DETECTOR_SETTINGS,
  indexBaselines,
  lookupBaseline,
  score,
  type AlertEvent,
  type AnomalyKind,
  type Baseline,
  type BaselineIndex,
  type ScoredWindow,
  type SeriesKey,
} from '../../src/domain/anomaly.ts';
import { computeSeriesBaselines } from '../../src/domain/series-baselines.ts';
import { scoreWindows } from '../../src/operators/scoreWindows.ts';
import { burstySeries, calmSeries, poisson, seededRandom, type SeriesPoint } from '../support/synthetic-series.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const FROM = Date.UTC(2026, 0, 5); // a Monday
const KEY = 'checkout';
const series: SeriesKey = { service: 'checkout', environment: 'prod', level: 'INFO' };

function indexOf(history: readonly SeriesPoint[]): BaselineIndex {
  const last = history[history.length - 1]!;
  return indexBaselines(
    computeSeriesBaselines(series, history, { historyMs: last.start + MINUTE - history[0]!.start, zThreshold: 3 }),
  );
}

/** The windows through scoreWindows and the lifecycle, as src/pipelines/detect.ts chains them. */
async function run(
  points: readonly SeriesPoint[],
  index: BaselineIndex,
  state: { readonly levels?: AdaptiveLevels; readonly lifecycle?: AlertLifecycleState } = {},
): Promise<{ scored: ScoredWindow[]; events: AlertEvent[] }> {
  const lifecycle = state.lifecycle ?? new AlertLifecycleState();
  const scored = await lastValueFrom(
    from(points.map((p) => ({ key: KEY, start: p.start, end: p.start + MINUTE, count: p.count }))).pipe(
      scoreWindows({
        parseKey: () => series,
        baselineFor: (s, start) => lookupBaseline(index, s, start).baseline,
        settingsFor: () => DEFAULT_DETECTOR_SETTINGS,
        ...(state.levels === undefined ? {} : { levels: state.levels }),
      }),
      toArray(),
    ),
  );
  return { scored, events: scored.flatMap((window) => lifecycle.apply(window)) };
}

/** A slot whose counts vary as Poisson's do. */
const poissonSlot = (mean: number) => ({ mean, stddev: Math.sqrt(mean) });

const baseline: Baseline = {
  ...series,
  hourOfDay: 0,
  dayOfWeek: 1,
  mean: 100,
  stddev: 10,
  median: 100,
  p01: 77,
  p05: 84,
  p95: 116,
  p99: 123,
  upperThreshold: 130,
  lowerThreshold: 70,
  sampleCount: 240,
};

describe('AdaptiveLevels', () => {
  it('starts at the weekly baseline and follows counts that run at twice it', () => {
    const levels = new AdaptiveLevels();
    expect(levels.factor(KEY, FROM)).toBe(1);
    expect(levels.adapt(baseline, KEY, FROM)).toBe(baseline);
    for (let i = 1; i <= 6 * 60; i++) levels.observe(KEY, FROM + i * MINUTE, 200, poissonSlot(100), null);
    const factor = levels.factor(KEY, FROM + 361 * MINUTE);
    // Six half-lives in: (2 * 85.6 windows' weight * 100 + 100) / (85.6 * 100 + 100), 1.99 to two places.
    expect(factor).toBeGreaterThan(1.98);
    expect(factor).toBeLessThan(2);
    const adapted = levels.adapt(baseline, KEY, FROM + 361 * MINUTE)!;
    expect(adapted.mean).toBeCloseTo(100 * factor, 9);
    expect(adapted.p95).toBeCloseTo(116 * factor, 9);
    expect(adapted.p01).toBeCloseTo(77 * factor, 9);
    expect(adapted.sampleCount).toBe(240);
  });

  it('learns nothing from anomalous windows, nor from windows without a baseline, nor from a replayed window', () => {
    const levels = new AdaptiveLevels();
    levels.observe(KEY, FROM + MINUTE, 1_000, poissonSlot(100), 'spike');
    levels.observe(KEY, FROM + 2 * MINUTE, 1_000, undefined, null);
    expect(levels.factor(KEY, FROM + 2 * MINUTE)).toBe(1);
    levels.observe(KEY, FROM + 3 * MINUTE, 300, poissonSlot(100), null);
    const once = levels.factor(KEY, FROM + 4 * MINUTE);
    expect(once).toBeGreaterThan(1);
    levels.observe(KEY, FROM + 3 * MINUTE, 300, poissonSlot(100), null);
    expect(levels.factor(KEY, FROM + 4 * MINUTE)).toBe(once);
  });

  it('takes a spike or drop that holds for two hours as a level shift, learning what it held back; never a silence', () => {
    const shifted = new AdaptiveLevels();
    const silent = new AdaptiveLevels();
    // 119 minutes at twice the level, every one a spike: held back.
    for (let i = 1; i < 120; i++) {
      shifted.observe(KEY, FROM + i * MINUTE, 200, poissonSlot(100), 'spike');
      silent.observe(KEY, FROM + i * MINUTE, 0, poissonSlot(100), 'silence');
    }
    expect(shifted.factor(KEY, FROM + 119 * MINUTE)).toBe(1);
    // Inside the band but still above the level: learned alone, (150 + 100) / (100 + 100), and the anomaly goes on.
    shifted.observe(KEY, FROM + 120 * MINUTE, 150, poissonSlot(100), null);
    expect(shifted.factor(KEY, FROM + 120 * MINUTE)).toBeCloseTo(1.25, 9);
    // Two hours after the first: the whole shift is learned at once (about 65 windows' weight at 2 against the prior).
    shifted.observe(KEY, FROM + 121 * MINUTE, 200, poissonSlot(100), 'spike');
    expect(shifted.factor(KEY, FROM + 121 * MINUTE)).toBeGreaterThan(1.9);
    for (let i = 122; i < 240; i++) silent.observe(KEY, FROM + i * MINUTE, 0, poissonSlot(100), 'silence');
    expect(silent.factor(KEY, FROM + 240 * MINUTE)).toBe(1);
  });

  it('starts the two hours again after five normal windows on the other side of the level', () => {
    const levels = new AdaptiveLevels();
    let minute = 0;
    const observe = (count: number, anomaly: 'spike' | null) =>
      levels.observe(KEY, FROM + ++minute * MINUTE, count, poissonSlot(100), anomaly);
    for (let i = 0; i < 100; i++) observe(200, 'spike');
    for (let i = 0; i < 5; i++) observe(95, null);
    for (let i = 0; i < 100; i++) observe(200, 'spike');
    // 205 minutes since the first spike, 100 since the anomaly started again: of it all only the five normal windows
    // are learned, long decayed.
    expect(levels.factor(KEY, FROM + minute * MINUTE)).toBeLessThan(1.01);
  });

  it('is moved little by a sparse series’ few events (the prior), and returns to 1 as its windows age', () => {
    // A half-life so long that ten minutes hardly decay: 40 events where 10 were expected, against a prior of 100
    // events at 1, is (40 + 100) / (10 + 100).
    const undecayed = new AdaptiveLevels({ halfLifeMs: 1e15 });
    for (let i = 1; i <= 10; i++) undecayed.observe(KEY, FROM + i * MINUTE, 4, poissonSlot(1), null);
    expect(undecayed.factor(KEY, FROM + 10 * MINUTE)).toBeCloseTo(140 / 110, 9);
    const levels = new AdaptiveLevels();
    for (let i = 1; i <= 60; i++) levels.observe(KEY, FROM + i * MINUTE, 40, poissonSlot(10), null);
    expect(levels.factor(KEY, FROM + 60 * MINUTE)).toBeGreaterThan(2);
    // 20 half-lives later the windows weigh a millionth of what they did.
    expect(levels.factor(KEY, FROM + 60 * MINUTE + 20 * HOUR)).toBeCloseTo(1, 4);
  });

  it('hands out only the series observed since the last checkpoint, and restores from those entries', () => {
    const levels = new AdaptiveLevels();
    levels.startChangelog('nothing');
    levels.observe('a', FROM + MINUTE, 10, poissonSlot(5), null);
    levels.observe('b', FROM + MINUTE, 10, poissonSlot(5), null);
    const first = levels.takeChanges();
    expect([...first.keys()].sort()).toEqual(['a', 'b']);
    levels.observe('b', FROM + 2 * MINUTE, 10, poissonSlot(5), null);
    const second = levels.takeChanges();
    expect([...second.keys()]).toEqual(['b']);
    const store = new Map<string, unknown>([...first, ...second]);
    const restored = AdaptiveLevels.fromEntries(JSON.parse(JSON.stringify([...store])) as [string, unknown][]);
    expect(restored.snapshot()).toEqual(levels.snapshot());
    expect(() => AdaptiveLevels.fromEntries([['a', [1, 'x', 3]]])).toThrow(/adaptive level entry of key "a"/);
    expect(() => new AdaptiveLevels({ halfLifeMs: 0 })).toThrow(/halfLifeMs must be a finite number > 0/);
  });

  it('learns a level from an overdispersed slot’s windows more slowly, by the inverse of its dispersion', () => {
    const poissonLike = new AdaptiveLevels();
    const bursty = new AdaptiveLevels();
    const pooledBursty = new AdaptiveLevels();
    // Each window worth a 25th of a Poisson one is the same as Poisson windows against a prior 25 times as heavy.
    const heavierPrior = new AdaptiveLevels({ priorEvents: 25 * 100 });
    for (let i = 1; i <= 30; i++) {
      const end = FROM + i * MINUTE;
      poissonLike.observe(KEY, end, 200, poissonSlot(100), null);
      heavierPrior.observe(KEY, end, 200, poissonSlot(100), null);
      // Variance 25 times the mean, read from the slot's stddev or from the series' pooled spread.
      bursty.observe(KEY, end, 200, { mean: 100, stddev: 50 }, null);
      pooledBursty.observe(KEY, end, 200, { mean: 100, stddev: 10, seriesSpread: { above: 0.5, below: 0.1 } }, null);
    }
    const at = FROM + 30 * MINUTE;
    expect(poissonLike.factor(KEY, at)).toBeGreaterThan(1.9);
    expect(bursty.factor(KEY, at)).toBeCloseTo(heavierPrior.factor(KEY, at), 12);
    expect(pooledBursty.factor(KEY, at)).toBeCloseTo(heavierPrior.factor(KEY, at), 12);
    expect(bursty.factor(KEY, at)).toBeLessThan(1.6);
  });
});

describe('a slow level change', () => {
  /** Four weeks at a calm level, then a Wednesday on which traffic doubles between 06:00 and 18:00 and stays. */
  function doubling(seed: number): { history: SeriesPoint[]; week: SeriesPoint[]; doubledFrom: number } {
    const history = calmSeries(seed, FROM, 28 * 1440, MINUTE, 300);
    const random = seededRandom(seed + 1);
    const weekFrom = FROM + 28 * DAY;
    const rampFrom = weekFrom + 2 * DAY + 6 * HOUR;
    const rampTo = rampFrom + 12 * HOUR;
    const week = calmSeries(seed + 2, weekFrom, 4 * 1440, MINUTE, 300).map((point) => {
      const growth = Math.min(1, Math.max(0, (point.start - rampFrom) / (rampTo - rampFrom)));
      const hour = new Date(point.start).getUTCHours();
      const level = 300 * (1 + 0.3 * Math.sin((2 * Math.PI * hour) / 24)) * (1 + growth);
      return { start: point.start, count: poisson(random, level) };
    });
    return { history, week, doubledFrom: rampTo };
  }

  it('stops alerting within hours with adaptive levels, where the weekly baseline alone keeps alerting', async () => {
    for (const seed of [3, 4]) {
      const { history, week, doubledFrom } = doubling(seed);
      const index = indexOf(history);
      const fixed = await run(week, index);
      const adaptive = await run(week, index, { levels: new AdaptiveLevels() });
      const anomalousAfter = (scored: readonly ScoredWindow[], from: number) =>
        scored.filter((window) => window.start >= from && window.anomalous).length;
      // The last day, at twice the level from 6 hours after the rise ended: the weekly baseline calls nearly every
      // window a spike.
      const after = doubledFrom + 6 * HOUR;
      const windowsAfter = week.filter((point) => point.start >= after).length;
      expect(windowsAfter).toBe(1440);
      expect(anomalousAfter(fixed.scored, after), `seed ${seed}`).toBeGreaterThan(0.95 * windowsAfter);
      expect(anomalousAfter(adaptive.scored, after), `seed ${seed}`).toBeLessThan(10);
      const lastEvent = (events: readonly AlertEvent[]) => events[events.length - 1];
      // The fixed detector's spike alert is still open at the end; the adaptive one's (if it opened) has resolved.
      expect(lastEvent(fixed.events.filter((e) => e.rule === 'spike'))?.type, `seed ${seed}`).not.toBe('resolved');
      const adaptiveSpike = adaptive.events.filter((e) => e.rule === 'spike' && e.windowStart >= after);
      expect(
        adaptiveSpike.filter((e) => e.type === 'opened'),
        `seed ${seed}`,
      ).toEqual([]);
    }
  });

  it('still opens on an incident: a spike to four times normal is not learned while it lasts', async () => {
    const history = calmSeries(9, FROM, 28 * 1440, MINUTE, 300);
    const week = calmSeries(10, FROM + 28 * DAY, 1440, MINUTE, 300).map((point, i) =>
      i >= 600 && i < 660 ? { ...point, count: point.count * 4 } : point,
    );
    const levels = new AdaptiveLevels();
    const { scored, events } = await run(week, indexOf(history), { levels });
    expect(events.filter((e) => e.type === 'opened').map((e) => [e.rule, e.windowStart])).toEqual([
      ['spike', week[601]!.start],
    ]);
    // Every window of the hour stayed a spike: the incident taught the level nothing.
    expect(scored.slice(600, 660).every((window) => window.kind === 'spike')).toBe(true);
    expect(levels.factor(KEY, week[660]!.start)).toBeLessThan(1.1);
  });
});

describe('scoring with adaptive levels (properties)', () => {
  const history = burstySeries(31, FROM, 14 * 1440, MINUTE, 20);
  const index = indexOf(history);
  const at = FROM + 14 * DAY + 9 * HOUR;
  const weekly = lookupBaseline(index, series, at).baseline!;
  const observations = fc.array(
    fc.record({
      count: fc.integer({ min: 0, max: 500 }),
      anomaly: fc.constantFrom<AnomalyKind | null>(null, null, 'spike', 'drop', 'silence'),
      gap: fc.integer({ min: 1, max: 90 }),
    }),
    { maxLength: 60 },
  );
  const levelsAfter = (
    seen: readonly { count: number; anomaly: AnomalyKind | null; gap: number }[],
  ): AdaptiveLevels => {
    const levels = new AdaptiveLevels();
    let end = at - 24 * HOUR;
    for (const { count, anomaly, gap } of seen) levels.observe(KEY, (end += gap * MINUTE), count, weekly, anomaly);
    return levels;
  };

  it('is monotonic in the count’s distance from the band, whatever the level learned (property)', () => {
    fc.assert(
      fc.property(
        observations,
        fc.integer({ min: 0, max: 3_000 }),
        fc.integer({ min: 0, max: 3_000 }),
        (seen, a, b) => {
          const adapted = levelsAfter(seen).adapt(weekly, KEY, at);
          const [low, high] = a <= b ? [a, b] : [b, a];
          const lowScore = score(low, adapted, DEFAULT_DETECTOR_SETTINGS);
          const highScore = score(high, adapted, DEFAULT_DETECTOR_SETTINGS);
          // Further above: not smaller; further below: not larger (the same statement read from either end).
          expect(highScore.score).toBeGreaterThanOrEqual(lowScore.score);
          if (lowScore.kind === 'spike') expect(highScore.kind).toBe('spike');
          if (highScore.kind === 'drop' && low > 0) expect(lowScore.kind).toBe('drop');
        },
      ),
      { numRuns: 300 },
    );
  });

  it('is deterministic: the same windows observed give the same levels and scores (property)', () => {
    fc.assert(
      fc.property(observations, fc.integer({ min: 0, max: 3_000 }), (seen, count) => {
        const one = levelsAfter(seen);
        const two = levelsAfter(seen);
        expect(two.snapshot()).toEqual(one.snapshot());
        expect(score(count, two.adapt(weekly, KEY, at), DEFAULT_DETECTOR_SETTINGS)).toEqual(
          score(count, one.adapt(weekly, KEY, at), DEFAULT_DETECTOR_SETTINGS),
        );
      }),
      { numRuns: 100 },
    );
  });

  it('gives the same scores and alert events after checkpoints and a restore at any window as an uninterrupted run (property)', async () => {
    // A day of a bursty series with a level change and a drop, so levels move, windows are anomalous and alerts open.
    const day = burstySeries(32, FROM + 14 * DAY, 1440, MINUTE, 20).map((point, i) =>
      i >= 300 && i < 330
        ? { ...point, count: Math.round(point.count / 4) }
        : i >= 700
          ? { ...point, count: point.count * 2 }
          : point,
    );
    const whole = await run(day, index, { levels: new AdaptiveLevels() });
    expect(whole.events.some((event) => event.type === 'opened')).toBe(true);
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.integer({ min: 1, max: day.length - 1 }), { minLength: 1, maxLength: 4 }),
        async (cuts) => {
          const [restoreAt, ...checkpoints] = [...cuts].sort((a, b) => b - a);
          // The store's entries as the checkpoint sink writes them: each checkpoint upserts the levels that changed.
          const store = new Map<string, LevelEntry>();
          const levels = new AdaptiveLevels();
          levels.startChangelog('nothing');
          const lifecycle = new AlertLifecycleState();
          const scored: ScoredWindow[] = [];
          const events: AlertEvent[] = [];
          let done = 0;
          for (const cut of [...checkpoints.reverse(), restoreAt!]) {
            const part = await run(day.slice(done, cut), index, { levels, lifecycle });
            scored.push(...part.scored);
            events.push(...part.events);
            for (const [key, entry] of levels.takeChanges()) store.set(key, entry);
            done = cut;
          }
          const restoredLevels = AdaptiveLevels.fromEntries(
            JSON.parse(JSON.stringify([...store])) as [string, unknown][],
          );
          restoredLevels.startChangelog('this state');
          const restoredLifecycle = AlertLifecycleState.fromSnapshot(JSON.parse(JSON.stringify(lifecycle.snapshot())));
          const rest = await run(day.slice(done), index, { levels: restoredLevels, lifecycle: restoredLifecycle });
          expect([...scored, ...rest.scored]).toEqual(whole.scored);
          expect([...events, ...rest.events]).toEqual(whole.events);
        },
      ),
      { numRuns: 30 },
    );
  });
});
