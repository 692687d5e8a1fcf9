import fc from 'fast-check';
import { from } from 'rxjs';
import type { Observable } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { DEFAULT_DETECTOR_SETTINGS, mergeDetectorSettings, score } from '../../src/domain/anomaly.ts';
import type { Baseline, DetectorSettings, ScoredWindow, SeriesKey } from '../../src/domain/anomaly.ts';
import { InputError } from '../../src/core/errors.ts';
import { SparseRuns } from '../../src/domain/sparse-runs.ts';
import { scoreWindows } from '../../src/operators/scoreWindows.ts';
import { calmSeries } from '../support/synthetic-series.ts';
import type { ScoreWindowsOptions } from '../../src/operators/scoreWindows.ts';
import type { WindowResult } from '../../src/operators/windowByEventTime.ts';

const MINUTE = 60_000;

function collectSync<T>(observable: Observable<T>): { values: T[]; error: unknown } {
  const result = { values: [] as T[], error: undefined as unknown };
  observable.subscribe({
    next: (value) => result.values.push(value),
    error: (error: unknown) => (result.error = error),
  });
  return result;
}

const parseKey = (key: string): SeriesKey => {
  const parts = key.split('|');
  if (parts.length !== 3) throw new InputError(`not a series key: ${key}`, { stage: 'operator' });
  const [service = '', environment = '', level = ''] = parts;
  return { service, environment, level };
};

function baselineOf(series: SeriesKey, mean: number, stddev: number): Baseline {
  return {
    ...series,
    hourOfDay: 0,
    dayOfWeek: 1,
    mean,
    stddev,
    median: mean,
    p95: 0,
    p99: 0,
    upperThreshold: 0,
    lowerThreshold: 0,
    sampleCount: 240,
  };
}

const result = (key: string, minute: number, count: number): WindowResult => ({
  kind: 'window',
  key,
  start: minute * MINUTE,
  end: (minute + 1) * MINUTE,
  count,
});

describe('scoreWindows', () => {
  const defaults = mergeDetectorSettings(DEFAULT_DETECTOR_SETTINGS);

  it('scores each closed window against the baseline of its series and window start', () => {
    const calls: [SeriesKey, number][] = [];
    const options: ScoreWindowsOptions = {
      parseKey,
      baselineFor: (series, windowStart) => {
        calls.push([series, windowStart]);
        return series.level === 'ERROR'
          ? baselineOf(series, 100, 20)
          : series.level === 'INFO'
            ? baselineOf(series, 50, 5)
            : undefined;
      },
      settingsFor: (service) => (service === 'quiet' ? mergeDetectorSettings(defaults, { alerting: false }) : defaults),
    };
    const { values } = collectSync(
      from([result('api|prod|ERROR', 3, 180), result('api|prod|INFO', 3, 0), result('quiet|dev|DEBUG', 4, 7)]).pipe(
        scoreWindows(options),
      ),
    );

    expect(calls).toEqual([
      [{ service: 'api', environment: 'prod', level: 'ERROR' }, 3 * MINUTE],
      [{ service: 'api', environment: 'prod', level: 'INFO' }, 3 * MINUTE],
      [{ service: 'quiet', environment: 'dev', level: 'DEBUG' }, 4 * MINUTE],
    ]);
    expect(values).toEqual<ScoredWindow[]>([
      {
        key: 'api|prod|ERROR',
        service: 'api',
        environment: 'prod',
        level: 'ERROR',
        start: 3 * MINUTE,
        end: 4 * MINUTE,
        count: 180,
        alerting: true,
        anomalous: true,
        kind: 'spike',
        score: 4,
        expected: 100,
        method: 'zscore',
      },
      {
        key: 'api|prod|INFO',
        service: 'api',
        environment: 'prod',
        level: 'INFO',
        start: 3 * MINUTE,
        end: 4 * MINUTE,
        count: 0,
        alerting: true,
        anomalous: true,
        kind: 'silence',
        score: -50 / Math.sqrt(50),
        expected: 50,
        method: 'zscore',
      },
      {
        key: 'quiet|dev|DEBUG',
        service: 'quiet',
        environment: 'dev',
        level: 'DEBUG',
        start: 4 * MINUTE,
        end: 5 * MINUTE,
        count: 7,
        alerting: false,
        anomalous: false,
        kind: null,
        score: 0,
        expected: 0,
        method: 'none',
      },
    ]);
  });

  it('with runs, judges a sparse window right after one past sqrt(poissonTail) as the second window of a run', () => {
    // Mean 1.06: P(X >= 5) = 5.5e-3, past sqrt(1e-4) but not past 1e-4.
    const windows = [result('api|prod|ERROR', 0, 5), result('api|prod|ERROR', 1, 5), result('api|prod|ERROR', 3, 5)];
    const options = (runs?: SparseRuns): ScoreWindowsOptions => ({
      parseKey,
      baselineFor: (series) => baselineOf(series, 1.06, Math.sqrt(1.06)),
      settingsFor: () => defaults,
      ...(runs === undefined ? {} : { runs }),
    });
    const runs = new SparseRuns();
    const kinds = (scored: ScoredWindow[]) => scored.map((window) => window.kind);
    // The window after a gap (minute 2 closed with no events) starts no run with minute 1.
    expect(kinds(collectSync(from(windows).pipe(scoreWindows(options(runs)))).values)).toEqual([null, 'spike', null]);
    expect(runs.snapshot()).toEqual([['api|prod|ERROR', [4 * MINUTE, expect.any(Number)]]]);
    expect(kinds(collectSync(from(windows).pipe(scoreWindows(options()))).values)).toEqual([null, null, null]);
  });

  it('with runs restored from its changelog at any window, scores as an uninterrupted run (property)', () => {
    // A sparse series around 1 a minute, raised to 5 for a few stretches so that runs form.
    const points = calmSeries(7, 0, 600, MINUTE, 1).map((point, i) =>
      i % 100 >= 40 && i % 100 < 50 ? { ...point, count: point.count + 4 } : point,
    );
    const windows = points.map((point) => result('api|prod|ERROR', point.start / MINUTE, point.count));
    const options = (runs: SparseRuns): ScoreWindowsOptions => ({
      parseKey,
      baselineFor: (series) => baselineOf(series, 1.06, Math.sqrt(1.06)),
      settingsFor: () => defaults,
      runs,
    });
    const whole = collectSync(from(windows).pipe(scoreWindows(options(new SparseRuns())))).values;
    expect(whole.filter((window) => window.kind === 'spike').length).toBeGreaterThan(0);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: windows.length - 1 }), (cut) => {
        const runs = new SparseRuns();
        runs.startChangelog('nothing');
        const before = collectSync(from(windows.slice(0, cut)).pipe(scoreWindows(options(runs)))).values;
        const restored = SparseRuns.fromEntries(
          JSON.parse(JSON.stringify([...runs.takeChanges()])) as [string, unknown][],
        );
        const after = collectSync(from(windows.slice(cut)).pipe(scoreWindows(options(restored)))).values;
        expect([...before, ...after]).toEqual(whole);
      }),
      { numRuns: 50 },
    );
  });

  it('still emits the windows of a service with monitoring disabled, unscored, without looking up a baseline', () => {
    let lookups = 0;
    const { values } = collectSync(
      from([result('api|prod|ERROR', 0, 10_000)]).pipe(
        scoreWindows({
          parseKey,
          baselineFor: (series) => {
            lookups++;
            return baselineOf(series, 1, 1);
          },
          settingsFor: () => mergeDetectorSettings(defaults, { enabled: false }),
        }),
      ),
    );
    expect(lookups).toBe(0);
    expect(values).toMatchObject([{ count: 10_000, anomalous: false, kind: null, method: 'none' }]);
  });

  it('passes on the error of a key it cannot parse', () => {
    const { values, error } = collectSync(
      from([result('api|prod|ERROR', 0, 1), result('garbage', 1, 1)]).pipe(
        scoreWindows({ parseKey, baselineFor: () => undefined, settingsFor: () => defaults }),
      ),
    );
    expect(values).toHaveLength(1);
    expect(error).toBeInstanceOf(InputError);
  });

  it('is the pointwise score of each window, whatever the sequence (property)', () => {
    const settingsByService: Record<string, DetectorSettings> = {
      a: defaults,
      b: mergeDetectorSettings(defaults, { zThreshold: 2, minCount: 0, silenceDetection: false }),
    };
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            service: fc.constantFrom('a', 'b'),
            minute: fc.integer({ min: 0, max: 10_000 }),
            count: fc.nat({ max: 500 }),
            mean: fc.double({ min: 0, max: 200, noNaN: true }),
          }),
          { maxLength: 30 },
        ),
        (rows) => {
          const means = new Map(rows.map((row) => [`${row.service}|env|ERROR@${row.minute * MINUTE}`, row.mean]));
          const baselineFor = (series: SeriesKey, windowStart: number): Baseline | undefined => {
            const mean = means.get(`${series.service}|${series.environment}|${series.level}@${windowStart}`);
            return mean === undefined ? undefined : baselineOf(series, mean, Math.sqrt(mean));
          };
          const windows = rows.map((row) => result(`${row.service}|env|ERROR`, row.minute, row.count));
          const { values } = collectSync(
            from(windows).pipe(
              scoreWindows({ parseKey, baselineFor, settingsFor: (service) => settingsByService[service]! }),
            ),
          );
          expect(values).toHaveLength(windows.length);
          values.forEach((scored, i) => {
            const window = windows[i]!;
            const series = parseKey(window.key);
            expect(scored).toEqual({
              ...window,
              ...series,
              alerting: true,
              ...score(window.count, baselineFor(series, window.start), settingsByService[series.service]!),
            });
          });
        },
      ),
    );
  });
});
