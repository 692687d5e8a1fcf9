import fc from 'fast-check';
import { filter, from, lastValueFrom, toArray } from 'rxjs';
import type { Observable } from 'rxjs';
import { describe, expect, it } from 'vitest';
import {
  AlertLifecycleState,
  alertDedupKey,
  DEFAULT_DETECTOR_SETTINGS,
  indexBaselines,
  lookupBaseline,
  mergeDetectorSettings,
} from '../../src/domain/anomaly.ts';
import type {
  AlertEvent,
  AlertEventType,
  AlertKey,
  AlertRule,
  Baseline,
  LifecycleInput,
  LifecycleSettings,
  SeriesKey,
} from '../../src/domain/anomaly.ts';
import { LogflowError } from '../../src/core/errors.ts';
import { alertLifecycle } from '../../src/operators/alertLifecycle.ts';
import { scoreWindows } from '../../src/operators/scoreWindows.ts';
import { windowByEventTime } from '../../src/operators/windowByEventTime.ts';
import type { WindowResult } from '../../src/operators/windowByEventTime.ts';

const MINUTE = 60_000;
const RULES: readonly AlertRule[] = ['spike', 'drop', 'silence'];
const SERIES: readonly SeriesKey[] = [
  { service: 'api', environment: 'prod', level: 'ERROR' },
  { service: 'api', environment: 'prod', level: 'INFO' },
  { service: 'billing', environment: 'staging', level: 'ERROR' },
];

function collectSync<T>(observable: Observable<T>): T[] {
  const values: T[] = [];
  observable.subscribe({
    next: (value) => values.push(value),
    error: (error: unknown) => {
      throw error;
    },
  });
  return values;
}

function window(
  series: SeriesKey,
  minute: number,
  kind: AlertRule | null,
  extra: Partial<LifecycleInput> = {},
): LifecycleInput {
  return {
    ...series,
    start: minute * MINUTE,
    end: (minute + 1) * MINUTE,
    count: kind === 'spike' ? 50 : kind === 'silence' ? 0 : kind === 'drop' ? 3 : 10,
    kind,
    score: kind === 'spike' ? 5 : kind === 'drop' ? -5 : 0,
    expected: 10,
    ...extra,
  };
}

const types = (events: readonly AlertEvent[]): string[] =>
  events.map((event) => `${event.type}@${event.windowEnd / MINUTE - 1}`);

// ---------------------------------------------------------------------------
// Generated runs: every minute, one window per series (zero-filled, as windowByEventTime emits them).

interface Step {
  readonly kind: AlertRule | null;
  readonly alerting: boolean;
  /** Whether a silence covers each rule's alert of this series at this window. */
  readonly silencedSpike: boolean;
  readonly silencedSilence: boolean;
}

interface Run {
  readonly settings: LifecycleSettings;
  readonly windows: readonly LifecycleInput[];
  readonly silenced: ReadonlySet<string>;
}

const stepArbitrary: fc.Arbitrary<Step> = fc.record({
  kind: fc.constantFrom<AlertRule | null>('spike', 'spike', 'drop', 'silence', null, null, null),
  alerting: fc.constantFrom(true, true, true, true, false),
  silencedSpike: fc.constantFrom(false, false, false, true),
  silencedSilence: fc.constantFrom(false, false, false, true),
});

const runArbitrary: fc.Arbitrary<Run> = fc
  .record({
    pendingWindows: fc.integer({ min: 1, max: 4 }),
    resolveWindows: fc.integer({ min: 1, max: 6 }),
    cooldownMinutes: fc.integer({ min: 0, max: 6 }),
    firstMinute: fc.integer({ min: 0, max: 100_000 }),
    minutes: fc.array(fc.array(stepArbitrary, { minLength: SERIES.length, maxLength: SERIES.length }), {
      maxLength: 60,
    }),
  })
  .map(({ pendingWindows, resolveWindows, cooldownMinutes, firstMinute, minutes }) => {
    const windows: LifecycleInput[] = [];
    const silenced = new Set<string>();
    minutes.forEach((steps, offset) => {
      steps.forEach((step, index) => {
        const input = window(SERIES[index]!, firstMinute + offset, step.kind, {
          alerting: step.alerting,
          score: offset + index / 10,
        });
        windows.push(input);
        if (step.silencedSpike) silenced.add(`${alertDedupKey('spike', input)}@${input.end}`);
        if (step.silencedSilence) silenced.add(`${alertDedupKey('silence', input)}@${input.end}`);
      });
    });
    return { settings: { pendingWindows, resolveWindows, cooldownMs: cooldownMinutes * MINUTE }, windows, silenced };
  });

const silenceCheck =
  (silenced: ReadonlySet<string>) =>
  (alert: AlertKey, at: number): boolean =>
    silenced.has(`${alert.dedupKey}@${at}`);

/**
 * The lifecycle recomputed from each key's whole history at every window
 * (streaks ending there), rather than carried as a state machine:
 * open(i) = anomalousStreak(i) >= P or (open(i-1) and normalStreak(i) < M).
 */
function referenceEvents(run: Run): AlertEvent[] {
  const { pendingWindows: P, resolveWindows: M, cooldownMs } = run.settings;
  const ordered: { position: number; rule: number; event: AlertEvent }[] = [];
  for (const series of SERIES) {
    const history = run.windows
      .map((w, position) => ({ w, position }))
      .filter(
        ({ w }) =>
          w.service === series.service &&
          w.environment === series.environment &&
          w.level === series.level &&
          w.alerting !== false,
      );
    RULES.forEach((rule, ruleIndex) => {
      const dedupKey = alertDedupKey(rule, series);
      const anomalous = history.map(({ w }) => w.kind === rule);
      const streak = (i: number, value: boolean): number => {
        let length = 0;
        while (i - length >= 0 && anomalous[i - length] === value) length++;
        return length;
      };
      const open: boolean[] = [];
      let episodeStart = -1;
      let lastDelivered: number | null = null;
      history.forEach(({ w, position }, i) => {
        const wasOpen = i > 0 && open[i - 1]!;
        open.push(streak(i, true) >= P || (wasOpen && streak(i, false) < M));
        const silenced = run.silenced.has(`${dedupKey}@${w.end}`);
        const emit = (
          type: AlertEventType,
          anomalousWindows: number,
          normalWindows: number,
          eventSilenced = silenced,
        ): void => {
          ordered.push({
            position,
            rule: ruleIndex,
            event: {
              dedupKey,
              rule,
              ...series,
              type,
              windowStart: w.start,
              windowEnd: w.end,
              score: w.score,
              observed: w.count,
              expected: w.expected,
              anomalousWindows,
              normalWindows,
              silenced: eventSilenced,
            },
          });
        };
        const anomalousSinceEpisodeStart = (): number => anomalous.slice(episodeStart, i + 1).filter(Boolean).length;
        if (!wasOpen && open[i]) {
          episodeStart = i - P + 1;
          lastDelivered = silenced ? null : w.end;
          emit('opened', P, 0);
        } else if (!wasOpen && anomalous[i] && streak(i, true) === 1) {
          emit('pending', 1, 0);
        } else if (!wasOpen && !anomalous[i] && i > 0 && anomalous[i - 1]) {
          emit('resolved', streak(i - 1, true), 1);
        } else if (wasOpen && !open[i]) {
          emit('resolved', anomalousSinceEpisodeStart(), M);
        } else if (
          wasOpen &&
          anomalous[i] &&
          !silenced &&
          (lastDelivered === null || w.end - lastDelivered >= cooldownMs)
        ) {
          lastDelivered = w.end;
          emit('renotify', anomalousSinceEpisodeStart(), 0, false);
        }
      });
    });
  }
  return ordered.sort((a, b) => a.position - b.position || a.rule - b.rule).map(({ event }) => event);
}

function run(windows: readonly LifecycleInput[], options: Parameters<typeof alertLifecycle>[0]): AlertEvent[] {
  return collectSync(from(windows).pipe(alertLifecycle(options)));
}

describe('alertLifecycle', () => {
  const api = SERIES[0]!;

  it('goes pending on the first anomalous window, opens after pendingWindows in a row, resolves after resolveWindows normal ones', () => {
    const kinds: (AlertRule | null)[] = [
      'spike',
      null,
      'spike',
      'spike',
      'spike',
      null,
      'spike',
      null,
      null,
      null,
      'spike',
    ];
    const events = run(
      kinds.map((kind, minute) => window(api, minute, kind)),
      { pendingWindows: 3, resolveWindows: 3, cooldownMs: 60 * MINUTE },
    );
    expect(types(events)).toEqual(['pending@0', 'resolved@1', 'pending@2', 'opened@4', 'resolved@9', 'pending@10']);
    expect(events[3]).toEqual({
      type: 'opened',
      dedupKey: 'spike:api:prod:ERROR',
      rule: 'spike',
      ...api,
      windowStart: 4 * MINUTE,
      windowEnd: 5 * MINUTE,
      score: 5,
      observed: 50,
      expected: 10,
      anomalousWindows: 3,
      normalWindows: 0,
      silenced: false,
    });
    expect(events[4]).toMatchObject({ anomalousWindows: 4, normalWindows: 3, observed: 10 });
  });

  it('opens at once with pendingWindows 1, and keys spike and silence alerts apart', () => {
    const events = run([window(api, 0, 'silence'), window(api, 1, 'spike'), window(api, 2, null)], {
      pendingWindows: 1,
      resolveWindows: 1,
    });
    expect(events.map((event) => `${event.type} ${event.dedupKey} @${event.windowEnd / MINUTE - 1}`)).toEqual([
      'opened silence:api:prod:ERROR @0',
      'opened spike:api:prod:ERROR @1',
      'resolved silence:api:prod:ERROR @1',
      'resolved spike:api:prod:ERROR @2',
    ]);
  });

  it('re-notifies while firing only once the cooldown of window time has passed', () => {
    const kinds: (AlertRule | null)[] = Array.from({ length: 12 }, () => 'spike');
    const events = run(
      kinds.map((kind, minute) => window(api, minute, kind)),
      { pendingWindows: 2, cooldownMs: 4 * MINUTE },
    );
    expect(types(events)).toEqual(['pending@0', 'opened@1', 'renotify@5', 'renotify@9']);
  });

  it('marks events under a silence, holds re-notification while silenced and sends it once the silence ends', () => {
    const silencedUntil = 6 * MINUTE;
    const isSilenced = (alert: AlertKey, at: number): boolean => alert.rule === 'spike' && at <= silencedUntil;
    const kinds: (AlertRule | null)[] = ['spike', 'spike', 'spike', 'spike', 'spike', 'spike', 'spike', 'spike', null];
    const events = run(
      kinds.map((kind, minute) => window(api, minute, kind)),
      { pendingWindows: 2, resolveWindows: 1, cooldownMs: 30 * MINUTE, isSilenced },
    );
    expect(
      events.map((event) => `${event.type}@${event.windowEnd / MINUTE - 1}${event.silenced ? ' silenced' : ''}`),
    ).toEqual(['pending@0 silenced', 'opened@1 silenced', 'renotify@6', 'resolved@8']);
  });

  it('produces nothing for a service with alerting disabled and leaves its alerts as they were', () => {
    const events = run(
      [
        window(api, 0, 'spike'),
        window(api, 1, 'spike', { alerting: false }),
        window(api, 2, null, { alerting: false }),
        window(api, 3, 'spike'),
      ],
      { pendingWindows: 2 },
    );
    expect(types(events)).toEqual(['pending@0', 'opened@3']);
  });

  it('holds only pending and open alerts', () => {
    const state = new AlertLifecycleState({ pendingWindows: 1, resolveWindows: 2 });
    const windows = SERIES.flatMap((series) => [
      window(series, 0, 'spike'),
      window(series, 1, null),
      window(series, 2, null),
    ]).sort((a, b) => a.end - b.end);
    collectSync(from(windows.filter((w) => w.end <= MINUTE)).pipe(alertLifecycle({ state })));
    expect(state.activeAlerts).toBe(3);
    collectSync(from(windows.filter((w) => w.end > MINUTE)).pipe(alertLifecycle({ state })));
    expect(state.activeAlerts).toBe(0);
    expect(state.snapshot().alerts).toEqual([]);
  });

  it('skips windows it has already applied', () => {
    const state = new AlertLifecycleState({ pendingWindows: 1 });
    expect(types(state.apply(window(api, 5, 'spike')))).toEqual(['opened@5']);
    expect(state.apply(window(api, 5, 'spike'))).toEqual([]);
    expect(state.apply(window(api, 3, 'spike'))).toEqual([]);
    expect(state.skippedWindows).toBe(2);
  });

  it('validates its settings when built, and a snapshot when restoring', () => {
    expect(() => alertLifecycle({ pendingWindows: 0 })).toThrow(RangeError);
    expect(() => alertLifecycle({ resolveWindows: 1.5 })).toThrow(RangeError);
    expect(() => alertLifecycle({ cooldownMs: -1 })).toThrow(RangeError);
    expect(() => AlertLifecycleState.fromSnapshot({ version: 2, highWatermark: null, alerts: [] })).toThrow(
      LogflowError,
    );
    expect(() =>
      AlertLifecycleState.fromSnapshot({ version: 1, highWatermark: 0, alerts: [{ dedupKey: 'x' }] }),
    ).toThrow(/malformed/);
  });

  it('keeps state per subscription unless a state is passed in', () => {
    const operator = alertLifecycle({ pendingWindows: 1 });
    const source = from([window(api, 0, 'spike')]);
    expect(types(collectSync(source.pipe(operator)))).toEqual(['opened@0']);
    expect(types(collectSync(source.pipe(operator)))).toEqual(['opened@0']);
  });

  it('matches a reference recomputed from each key’s history (property)', () => {
    fc.assert(
      fc.property(runArbitrary, (generated) => {
        const events = run(generated.windows, { ...generated.settings, isSilenced: silenceCheck(generated.silenced) });
        expect(events).toEqual(referenceEvents(generated));
      }),
      { numRuns: 300 },
    );
  });

  it('keeps at most one open alert per key, resolves only after resolveWindows normal windows, never re-notifies within the cooldown (property)', () => {
    fc.assert(
      fc.property(runArbitrary, (generated) => {
        const { pendingWindows, resolveWindows, cooldownMs } = generated.settings;
        const events = run(generated.windows, { ...generated.settings, isSilenced: silenceCheck(generated.silenced) });
        const status = new Map<string, 'pending' | 'open'>();
        const lastDelivered = new Map<string, number>();
        for (const event of events) {
          const current = status.get(event.dedupKey);
          const applied = generated.windows.filter(
            (w) => alertDedupKey(event.rule, w) === event.dedupKey && w.alerting !== false && w.end <= event.windowEnd,
          );
          const lastKinds = applied.slice(-Math.max(pendingWindows, resolveWindows)).map((w) => w.kind === event.rule);
          switch (event.type) {
            case 'pending':
              expect(current).toBeUndefined();
              status.set(event.dedupKey, 'pending');
              break;
            case 'opened':
              expect(current).not.toBe('open');
              expect(lastKinds.slice(-pendingWindows)).toEqual(Array.from({ length: pendingWindows }, () => true));
              status.set(event.dedupKey, 'open');
              if (!event.silenced) lastDelivered.set(event.dedupKey, event.windowEnd);
              break;
            case 'renotify': {
              expect(current).toBe('open');
              expect(event.silenced).toBe(false);
              const previous = lastDelivered.get(event.dedupKey);
              if (previous !== undefined) expect(event.windowEnd - previous).toBeGreaterThanOrEqual(cooldownMs);
              lastDelivered.set(event.dedupKey, event.windowEnd);
              break;
            }
            case 'resolved':
              expect(current).toBeDefined();
              if (current === 'open')
                expect(lastKinds.slice(-resolveWindows)).toEqual(Array.from({ length: resolveWindows }, () => false));
              else expect(lastKinds.slice(-1)).toEqual([false]);
              status.delete(event.dedupKey);
              lastDelivered.delete(event.dedupKey);
              break;
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('gives the same remaining events after a snapshot, JSON round trip and restore, even when windows before it are replayed (property)', () => {
    fc.assert(
      fc.property(
        runArbitrary,
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 0, max: 10 }),
        (generated, cutFraction, replayed) => {
          const isSilenced = silenceCheck(generated.silenced);
          const uninterrupted = run(generated.windows, { ...generated.settings, isSilenced });

          const cut = Math.floor(cutFraction * generated.windows.length);
          const state = new AlertLifecycleState(generated.settings);
          const before = run(generated.windows.slice(0, cut), { state, isSilenced });
          const checkpoint: unknown = JSON.parse(JSON.stringify(state.snapshot()));
          const after = run(generated.windows.slice(Math.max(0, cut - replayed)), {
            ...generated.settings,
            restoreFrom: checkpoint as ReturnType<AlertLifecycleState['snapshot']>,
            isSilenced,
          });

          expect([...before, ...after]).toEqual(uninterrupted);
          const opened = [...before, ...after]
            .filter((event) => event.type === 'opened')
            .map((event) => `${event.dedupKey}@${event.windowEnd}`);
          expect(new Set(opened).size).toBe(opened.length);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('windows to alert events, end to end', () => {
  interface Log {
    readonly service: string;
    readonly environment: string;
    readonly level: string;
    readonly time: number;
  }

  it('turns a burst of errors and a silent service into opened and resolved alerts', async () => {
    const monday = Date.parse('2024-01-01T00:00:00Z');
    const errors: SeriesKey = { service: 'api', environment: 'prod', level: 'ERROR' };
    const info: SeriesKey = { service: 'api', environment: 'prod', level: 'INFO' };
    const baselineRows: Baseline[] = [];
    for (let hourOfDay = 0; hourOfDay < 24; hourOfDay++) {
      for (let dayOfWeek = 1; dayOfWeek <= 7; dayOfWeek++) {
        const common = { hourOfDay, dayOfWeek, p95: 0, p99: 0, upperThreshold: 0, lowerThreshold: 0, sampleCount: 240 };
        baselineRows.push({ ...errors, ...common, mean: 2, stddev: 1.4, median: 2 });
        baselineRows.push({ ...info, ...common, mean: 30, stddev: 5.5, median: 30 });
      }
    }
    const index = indexBaselines(baselineRows);

    // ERROR: 2 a minute, 20 in minutes 5-7. INFO: 30 a minute, none in minutes 5-7. Both continue to minute 14.
    const logs: Log[] = [];
    for (let minute = 0; minute < 15; minute++) {
      const burst = minute >= 5 && minute <= 7;
      const perMinute: [SeriesKey, number][] = [
        [errors, burst ? 20 : 2],
        [info, burst ? 0 : 30],
      ];
      for (const [series, count] of perMinute) {
        for (let i = 0; i < count; i++)
          logs.push({ ...series, time: monday + minute * MINUTE + Math.floor((i * MINUTE) / count) });
      }
    }
    logs.sort((a, b) => a.time - b.time);

    const settings = mergeDetectorSettings(DEFAULT_DETECTOR_SETTINGS, {});
    const events = await lastValueFrom(
      from(logs).pipe(
        windowByEventTime<Log>({
          keyOf: (log) => `${log.service}|${log.environment}|${log.level}`,
          timeOf: (log) => log.time,
          sizeMs: MINUTE,
        }),
        filter((output): output is WindowResult => output.kind === 'window'),
        scoreWindows({
          parseKey: (key) => {
            const [service = '', environment = '', level = ''] = key.split('|');
            return { service, environment, level };
          },
          baselineFor: (series, windowStart) => lookupBaseline(index, series, windowStart).baseline,
          settingsFor: () => settings,
        }),
        alertLifecycle({ pendingWindows: 2, resolveWindows: 5, cooldownMs: 30 * MINUTE }),
        toArray(),
      ),
    );

    expect(events.map((event) => `${event.type} ${event.dedupKey} @${(event.windowStart - monday) / MINUTE}`)).toEqual([
      'pending spike:api:prod:ERROR @5',
      'pending silence:api:prod:INFO @5',
      'opened spike:api:prod:ERROR @6',
      'opened silence:api:prod:INFO @6',
      'resolved spike:api:prod:ERROR @12',
      'resolved silence:api:prod:INFO @12',
    ]);
    expect(events[2]).toMatchObject({ observed: 20, expected: 2, anomalousWindows: 2, silenced: false });
    expect(events[3]).toMatchObject({ observed: 0, expected: 30, anomalousWindows: 2 });
    expect(events[4]).toMatchObject({ observed: 2, anomalousWindows: 3, normalWindows: 5 });
  });
});
