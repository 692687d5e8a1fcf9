import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCodes, InputError, LogflowError } from '../../src/core/errors.ts';
import { WindowState } from '../../src/domain/window-state.ts';
import type {
  KeyEntry,
  WindowResult,
  WindowSink,
  WindowStateChanges,
  WindowStateOptions,
} from '../../src/domain/window-state.ts';

interface TestEvent {
  readonly id: number;
  readonly key: string;
  readonly partition: number;
  readonly time: number;
  readonly weight: number;
}

interface Run {
  readonly windows: WindowResult[];
  readonly late: TestEvent[];
  readonly watermarks: number[];
}

function newRun(): Run & { sink: WindowSink } {
  const run = { windows: [] as WindowResult[], late: [] as TestEvent[], watermarks: [] as number[] };
  const sink: WindowSink = { window: (result) => run.windows.push(result), watermark: (wm) => run.watermarks.push(wm) };
  return { ...run, sink };
}

/** Feeds events one by one (processing time = arrival index), then flushes when asked. */
function feed(state: WindowState, events: readonly TestEvent[], run: Run & { sink: WindowSink }, firstIndex = 0): void {
  events.forEach((event, i) => {
    if (!state.add(event.key, event.time, event.partition, event.weight, firstIndex + i, run.sink))
      run.late.push(event);
  });
}

function runAll(options: WindowStateOptions, events: readonly TestEvent[], flush = true): Run & { state: WindowState } {
  const state = new WindowState(options);
  const run = newRun();
  feed(state, events, run);
  if (flush) state.flush(run.sink);
  return { ...run, state };
}

interface ReferenceConfig {
  readonly size: number;
  readonly advance: number;
  readonly outOfOrderness: number;
  readonly grace: number;
  readonly ttl: number;
}

/**
 * Brute-force model, written from the specification rather than the
 * implementation: the watermark after each arrival is recomputed from the
 * whole prefix; an event counts in each window containing it that was not
 * closed on its arrival and is late when there is none; a key's window w is
 * emitted when some counted event of the key, in pane a, has a - k + 1 <= w
 * (its pane is in or before w), w starts less than ttl after pane a, and w was
 * still open when that event arrived. Closed at the end: every window up to
 * the final watermark, and with flush every window starting at or before the
 * highest event time.
 */
function referenceRun(
  config: ReferenceConfig,
  events: readonly TestEvent[],
  flush = true,
): { windows: WindowResult[]; late: TestEvent[] } {
  const { size, advance, outOfOrderness, grace, ttl } = config;
  const k = size / advance;
  const isClosed = (w: number, watermark: number): boolean => w * advance + size + grace <= watermark;
  const maxByPartition = new Map<number, number>();
  let watermark = -Infinity;
  const late: TestEvent[] = [];
  const counts = new Map<string, Map<number, number>>();
  const emitted = new Map<string, Set<number>>();
  const lastClosedAtEnd = (): number => {
    let last = Math.floor((watermark - grace - size) / advance);
    if (flush && events.length > 0) last = Math.max(last, Math.floor(Math.max(...events.map((e) => e.time)) / advance));
    return last;
  };
  const accepted: { event: TestEvent; watermark: number }[] = [];
  for (const event of events) {
    const pane = Math.floor(event.time / advance);
    const open: number[] = [];
    for (let w = pane - k + 1; w <= pane; w++) if (!isClosed(w, watermark)) open.push(w);
    if (open.length === 0) late.push(event);
    else {
      accepted.push({ event, watermark });
      const byWindow = counts.get(event.key) ?? new Map<number, number>();
      counts.set(event.key, byWindow);
      for (const w of open) byWindow.set(w, (byWindow.get(w) ?? 0) + event.weight);
    }
    maxByPartition.set(event.partition, Math.max(maxByPartition.get(event.partition) ?? -Infinity, event.time));
    watermark = Math.max(watermark, Math.min(...maxByPartition.values()) - outOfOrderness);
  }
  const lastClosed = lastClosedAtEnd();
  for (const { event, watermark: atArrival } of accepted) {
    const pane = Math.floor(event.time / advance);
    const windows = emitted.get(event.key) ?? new Set<number>();
    emitted.set(event.key, windows);
    for (let w = pane - k + 1; w <= lastClosed && (w - pane) * advance < ttl; w++) {
      if (!isClosed(w, atArrival)) windows.add(w);
    }
  }
  const windows: WindowResult[] = [];
  for (const [key, set] of emitted) {
    for (const w of set)
      windows.push({
        kind: 'window',
        key,
        start: w * advance,
        end: w * advance + size,
        count: counts.get(key)?.get(w) ?? 0,
      });
  }
  windows.sort((a, b) => a.end - b.end || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { windows, late };
}

const KEYS = ['api', 'auth', 'db', 'web', 'Zed'];

interface Scenario {
  readonly config: ReferenceConfig;
  readonly events: TestEvent[];
}

/**
 * Sorted base times, each moved back by at most the allowed out-of-orderness
 * (so no ordinary event can be late, whatever the partitions), plus
 * optionally events placed well behind the stream at random positions, most
 * of which the reference finds late.
 */
function scenarioArbitrary(options: {
  hopping: boolean;
  withLate: boolean;
  withWeights: boolean;
}): fc.Arbitrary<Scenario> {
  return fc
    .record({
      advance: fc.constantFrom(5, 10, 25),
      panes: options.hopping ? fc.integer({ min: 2, max: 4 }) : fc.constant(1),
      outOfOrderness: fc.integer({ min: 0, max: 40 }),
      grace: fc.integer({ min: 0, max: 20 }),
      ttlPanes: fc.integer({ min: 1, max: 8 }),
      ttlExtra: fc.integer({ min: 0, max: 4 }),
      start: fc.integer({ min: -300, max: 300 }),
      base: fc.array(
        fc.record({
          gap: fc.integer({ min: 0, max: 12 }),
          key: fc.constantFrom(...KEYS),
          partition: fc.integer({ min: 0, max: 2 }),
          back: fc.double({ min: 0, max: 1, noNaN: true }),
          weight: options.withWeights ? fc.integer({ min: 0, max: 3 }) : fc.constant(1),
        }),
        { maxLength: 70 },
      ),
      stragglers: options.withLate
        ? fc.array(
            fc.record({
              at: fc.nat(),
              behind: fc.integer({ min: 0, max: 60 }),
              key: fc.constantFrom(...KEYS),
              partition: fc.integer({ min: 0, max: 2 }),
            }),
            { maxLength: 8 },
          )
        : fc.constant([]),
    })
    .map((g) => {
      const size = g.advance * g.panes;
      const config: ReferenceConfig = {
        size,
        advance: g.advance,
        outOfOrderness: g.outOfOrderness,
        grace: g.grace,
        ttl: g.ttlPanes * g.advance - g.ttlExtra,
      };
      let time = g.start;
      const events: TestEvent[] = g.base.map((b, id) => {
        time += b.gap;
        return {
          id,
          key: b.key,
          partition: b.partition,
          time: time - Math.floor(b.back * g.outOfOrderness),
          weight: b.weight,
        };
      });
      let id = events.length;
      for (const s of g.stragglers) {
        if (events.length === 0) break;
        const at = s.at % events.length;
        const behind = events[at]!.time - g.outOfOrderness - g.grace - size - s.behind;
        events.splice(at, 0, { id: id++, key: s.key, partition: s.partition, time: behind, weight: 1 });
      }
      return { config, events };
    });
}

function stateOptions(config: ReferenceConfig): WindowStateOptions {
  return {
    sizeMs: config.size,
    advanceMs: config.advance,
    allowedOutOfOrdernessMs: config.outOfOrderness,
    graceMs: config.grace,
    keyTtlMs: config.ttl,
  };
}

const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);

describe('WindowState: tumbling windows against the brute-force model (properties)', () => {
  it('(1) every window count equals the reference count, whatever the arrival order', () => {
    fc.assert(
      fc.property(
        scenarioArbitrary({ hopping: false, withLate: true, withWeights: false }),
        fc.boolean(),
        ({ config, events }, flush) => {
          const actual = runAll(stateOptions(config), events, flush);
          const expected = referenceRun(config, events, flush);
          expect(actual.windows).toEqual(expected.windows);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('(1b) the counts do not depend on how in-bound disorder is arranged: any in-bound rearrangement gives the same windows', () => {
    fc.assert(
      fc.property(
        scenarioArbitrary({ hopping: false, withLate: false, withWeights: false }),
        fc.array(fc.nat(), { minLength: 1 }),
        ({ config, events }, draws) => {
          // A second arrival order: sorted by time, then each event delayed by at most the bound, which keeps every
          // event within the bound of all that arrive before it.
          const sorted = [...events].sort((a, b) => a.time - b.time || a.id - b.id);
          const rearranged = sorted
            .map((event, i) => ({
              event,
              order: event.time + (draws[i % draws.length]! % (config.outOfOrderness + 1)),
            }))
            .sort((a, b) => a.order - b.order || a.event.id - b.event.id)
            .map((x) => x.event);
          expect(runAll(stateOptions(config), rearranged).windows).toEqual(
            runAll(stateOptions(config), events).windows,
          );
          expect(runAll(stateOptions(config), rearranged).late).toEqual([]);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('(2) events behind the watermark + grace appear exactly once on the late output and in no window', () => {
    let lateSeen = 0;
    fc.assert(
      fc.property(scenarioArbitrary({ hopping: false, withLate: true, withWeights: false }), ({ config, events }) => {
        const actual = runAll(stateOptions(config), events);
        const expected = referenceRun(config, events);
        expect(actual.late.map((e) => e.id)).toEqual(expected.late.map((e) => e.id));
        expect(new Set(actual.late.map((e) => e.id)).size).toBe(actual.late.length);
        // A late event in some window would make that window's count exceed the model's, which counts only non-late
        // events.
        expect(actual.windows).toEqual(expected.windows);
        lateSeen += actual.late.length;
      }),
      { numRuns: 300 },
    );
    // Guards against a generator that never actually produces late events.
    expect(lateSeen).toBeGreaterThan(50);
  });

  it('(3) sum of window counts + late count = input count (with flush)', () => {
    fc.assert(
      fc.property(scenarioArbitrary({ hopping: false, withLate: true, withWeights: false }), ({ config, events }) => {
        const state = new WindowState(stateOptions(config));
        const run = newRun();
        feed(state, events, run);
        state.flush(run.sink);
        expect(sum(run.windows.map((w) => w.count)) + run.late.length).toBe(events.length);
        expect(state.counters.lateEvents).toBe(run.late.length);
        expect(state.counters.events).toBe(events.length);
      }),
      { numRuns: 300 },
    );
  });

  it('(4) per key, windows are emitted once each in increasing start order; overall in (end, key) order; watermarks only rise', () => {
    fc.assert(
      fc.property(
        scenarioArbitrary({ hopping: false, withLate: true, withWeights: true }),
        fc.boolean(),
        ({ config, events }, flush) => {
          const run = runAll(stateOptions(config), events, flush);
          const byKey = new Map<string, number[]>();
          for (const w of run.windows) byKey.set(w.key, [...(byKey.get(w.key) ?? []), w.start]);
          for (const starts of byKey.values()) {
            for (let i = 1; i < starts.length; i++) expect(starts[i]!).toBeGreaterThan(starts[i - 1]!);
          }
          for (let i = 1; i < run.windows.length; i++) {
            const [a, b] = [run.windows[i - 1]!, run.windows[i]!];
            expect(a.end < b.end || (a.end === b.end && a.key < b.key)).toBe(true);
          }
          for (let i = 1; i < run.watermarks.length; i++)
            expect(run.watermarks[i]!).toBeGreaterThan(run.watermarks[i - 1]!);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('(5) snapshot + JSON round trip + restore at a random point gives the same output as an uninterrupted run', () => {
    fc.assert(
      fc.property(
        scenarioArbitrary({ hopping: false, withLate: true, withWeights: true }),
        fc.nat(),
        fc.integer({ min: 1, max: 6 }),
        ({ config, events }, cut, maxKeys) => {
          // A small maxKeys makes eviction (and its LRU order) part of what must survive the restore.
          const options = { ...stateOptions(config), maxKeys };
          const uninterrupted = runAll(options, events);
          const split = events.length === 0 ? 0 : cut % (events.length + 1);
          const first = new WindowState(options);
          const run = newRun();
          feed(first, events.slice(0, split), run);
          const snapshot: unknown = JSON.parse(JSON.stringify(first.snapshot()));
          const second = WindowState.fromSnapshot(snapshot, options);
          feed(second, events.slice(split), run, split);
          second.flush(run.sink);
          expect(run.windows).toEqual(uninterrupted.windows);
          expect(run.late.map((e) => e.id)).toEqual(uninterrupted.late.map((e) => e.id));
          expect(run.watermarks).toEqual(uninterrupted.watermarks);
          const straight = new WindowState(options);
          const straightRun = newRun();
          feed(straight, events, straightRun);
          straight.flush(straightRun.sink);
          expect(second.counters).toEqual(straight.counters);
          expect(second.snapshot()).toEqual(straight.snapshot());
        },
      ),
      { numRuns: 300 },
    );
  });

  it('(5b) a changelog checkpointed at random points and restored gives the same state and output as an uninterrupted run', () => {
    fc.assert(
      fc.property(
        fc.boolean().chain((hopping) => scenarioArbitrary({ hopping, withLate: true, withWeights: true })),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.nat(),
        fc.integer({ min: 1, max: 6 }),
        ({ config, events }, cuts, restoreAt, maxKeys) => {
          const options = { ...stateOptions(config), maxKeys };
          const uninterrupted = runAll(options, events);
          const split = events.length === 0 ? 0 : restoreAt % (events.length + 1);
          const checkpoints = new Set(cuts.map((c) => c % (split + 1)));
          // The store a checkpoint writes to: one header, one entry per key, as the detector's tables hold them.
          let header: unknown;
          const entries = new Map<string, KeyEntry>();
          let written = 0;
          const write = (changes: WindowStateChanges) => {
            header = JSON.parse(JSON.stringify(changes.header));
            for (const key of changes.removed) entries.delete(key);
            for (const [key, entry] of changes.upserts) entries.set(key, JSON.parse(JSON.stringify(entry)) as KeyEntry);
            written += changes.upserts.size;
          };
          const first = new WindowState(options);
          first.startChangelog('nothing');
          const run = newRun();
          for (let i = 0; i < split; i++) {
            feed(first, events.slice(i, i + 1), run, i);
            if (checkpoints.has(i + 1)) write(first.takeChanges());
          }
          write(first.takeChanges());
          // Keys untouched since the previous checkpoint are not rewritten.
          expect(first.takeChanges().upserts.size).toBe(0);
          expect(written).toBeLessThanOrEqual(split + checkpoints.size + 1);
          const second = WindowState.fromChangelog(header, entries, options);
          feed(second, events.slice(split), run, split);
          second.flush(run.sink);
          expect(run.windows).toEqual(uninterrupted.windows);
          expect(run.late.map((e) => e.id)).toEqual(uninterrupted.late.map((e) => e.id));
          expect(run.watermarks).toEqual(uninterrupted.watermarks);
          expect(second.counters).toEqual(uninterrupted.state.counters);
          expect(second.snapshot()).toEqual(uninterrupted.state.snapshot());
        },
      ),
      { numRuns: 300 },
    );
  });

  it('(6) zero-fill: each known key gets a window for every index from its first window to the last closed one, within its ttl', () => {
    fc.assert(
      fc.property(
        scenarioArbitrary({ hopping: false, withLate: false, withWeights: false }),
        fc.boolean(),
        ({ config, events }, flush) => {
          const { windows, state } = runAll(stateOptions(config), events, flush);
          // Stated directly for tumbling windows without late events: window w of key k is emitted when k had an event
          // in some window a <= w such that w starts less than ttl after a, for every w up to the last closed window.
          const closedByWatermark = Math.floor((state.watermark - config.grace) / config.size) - 1;
          const closedByFlush =
            flush && events.length > 0 ? Math.floor(Math.max(...events.map((e) => e.time)) / config.size) : -Infinity;
          const lastClosed = Math.max(closedByWatermark, closedByFlush);
          for (const key of new Set(events.map((e) => e.key))) {
            const active = [
              ...new Set(events.filter((e) => e.key === key).map((e) => Math.floor(e.time / config.size))),
            ];
            const expected: number[] = [];
            for (let w = Math.min(...active); w <= lastClosed; w++) {
              if (active.some((a) => a <= w && (w - a) * config.size < config.ttl)) expected.push(w);
            }
            const emitted = windows.filter((w) => w.key === key);
            expect(emitted.map((w) => w.start / config.size)).toEqual(expected);
            for (const w of emitted) {
              expect(w.count).toBe(
                events.filter((e) => e.key === key && Math.floor(e.time / config.size) === w.start / config.size)
                  .length,
              );
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('WindowState: hopping windows against the brute-force model (properties)', () => {
  it('counts, zero-fill, lateness (Flink: late only when every window of the event is closed) and weights match', () => {
    let partiallyLate = 0;
    fc.assert(
      fc.property(
        scenarioArbitrary({ hopping: true, withLate: true, withWeights: true }),
        fc.boolean(),
        ({ config, events }, flush) => {
          const state = new WindowState(stateOptions(config));
          const run = newRun();
          feed(state, events, run);
          if (flush) state.flush(run.sink);
          const expected = referenceRun(config, events, flush);
          expect(run.windows).toEqual(expected.windows);
          expect(run.late.map((e) => e.id)).toEqual(expected.late.map((e) => e.id));
          partiallyLate += state.counters.partiallyLateEvents;
        },
      ),
      { numRuns: 400 },
    );
    expect(partiallyLate).toBeGreaterThan(0);
  });

  it('survives snapshot and restore at any point', () => {
    fc.assert(
      fc.property(
        scenarioArbitrary({ hopping: true, withLate: true, withWeights: true }),
        fc.nat(),
        ({ config, events }, cut) => {
          const options = stateOptions(config);
          const uninterrupted = runAll(options, events);
          const split = events.length === 0 ? 0 : cut % (events.length + 1);
          const first = new WindowState(options);
          const run = newRun();
          feed(first, events.slice(0, split), run);
          const second = WindowState.fromSnapshot(JSON.parse(JSON.stringify(first.snapshot())), options);
          feed(second, events.slice(split), run, split);
          second.flush(run.sink);
          expect(run.windows).toEqual(uninterrupted.windows);
          expect(run.late).toEqual(uninterrupted.late);
        },
      ),
      { numRuns: 200 },
    );
  });
});

const ev = (id: number, key: string, time: number, partition = 0, weight = 1): TestEvent => ({
  id,
  key,
  partition,
  time,
  weight,
});

describe('WindowState: examples', () => {
  it('closes a tumbling window when the watermark passes end + grace, once, with zero-fill for known keys', () => {
    const state = new WindowState({ sizeMs: 10, allowedOutOfOrdernessMs: 2, graceMs: 3, keyTtlMs: 30 });
    const run = newRun();
    feed(state, [ev(0, 'a', 1), ev(1, 'b', 4), ev(2, 'a', 9), ev(3, 'a', 14)], run);
    expect(run.windows).toEqual([]);
    // watermark = 15 - 2 = 13 = end(10) + grace(3): window [0, 10) closes.
    feed(state, [ev(4, 'a', 15)], run);
    expect(run.windows).toEqual([
      { kind: 'window', key: 'a', start: 0, end: 10, count: 2 },
      { kind: 'window', key: 'b', start: 0, end: 10, count: 1 },
    ]);
    expect(state.watermark).toBe(13);
    // A jump closes [10,20) .. [30,40): 'b' is zero-filled while within its ttl (windows starting < 0 + 30).
    feed(state, [ev(5, 'a', 45)], run);
    expect(run.windows.slice(2)).toEqual([
      { kind: 'window', key: 'a', start: 10, end: 20, count: 2 },
      { kind: 'window', key: 'b', start: 10, end: 20, count: 0 },
      { kind: 'window', key: 'a', start: 20, end: 30, count: 0 },
      { kind: 'window', key: 'b', start: 20, end: 30, count: 0 },
      { kind: 'window', key: 'a', start: 30, end: 40, count: 0 },
    ]);
    expect(state.keyCount).toBe(1);
    expect(state.counters.expiredKeys).toBe(1);
  });

  it('sends an event whose window has closed to the late output and counts it', () => {
    const state = new WindowState({ sizeMs: 10 });
    const run = newRun();
    feed(state, [ev(0, 'a', 25), ev(1, 'a', 9), ev(2, 'a', 19), ev(3, 'a', 20)], run);
    expect(run.late.map((e) => e.id)).toEqual([1, 2]);
    expect(state.counters.lateEvents).toBe(2);
    state.flush(run.sink);
    expect(run.windows).toEqual([{ kind: 'window', key: 'a', start: 20, end: 30, count: 2 }]);
  });

  it('holds the watermark at the slowest partition until every partition has advanced', () => {
    const state = new WindowState({ sizeMs: 10, expectedPartitions: [0, 1] });
    const run = newRun();
    feed(state, [ev(0, 'a', 5, 0), ev(1, 'a', 50, 0)], run);
    expect(state.watermark).toBe(-Infinity);
    feed(state, [ev(2, 'a', 7, 1)], run);
    expect(state.watermark).toBe(7);
    expect(run.windows).toEqual([]);
    feed(state, [ev(3, 'a', 31, 1)], run);
    expect(state.watermark).toBe(31);
    expect(run.windows.map((w) => [w.start, w.count])).toEqual([
      [0, 2],
      [10, 0],
      [20, 0],
    ]);
  });

  it('releases the watermark from an idle partition, flushes to the highest when all are idle, and lets the partition rejoin', () => {
    const state = new WindowState({ sizeMs: 10, idleTimeoutMs: 100 });
    const run = newRun();
    state.add('a', 3, 1, 1, 0, run.sink);
    state.add('a', 5, 0, 1, 10, run.sink);
    state.add('a', 44, 0, 1, 60, run.sink);
    expect(state.watermark).toBe(3);
    expect(state.nextDeadline()).toBe(100);
    state.advanceProcessingTime(99, run.sink);
    expect(run.windows).toEqual([]);
    // Partition 1 has been silent for 100 ms: only partition 0 (at 44) holds the watermark now.
    state.advanceProcessingTime(110, run.sink);
    expect(state.watermark).toBe(44);
    expect(run.windows.map((w) => w.start)).toEqual([0, 10, 20, 30]);
    expect(state.nextDeadline()).toBe(160);
    // Partition 1 rejoins: its old event is late, but it holds the watermark again.
    expect(state.add('a', 41, 1, 1, 120, run.sink)).toBe(true);
    expect(state.add('a', 12, 1, 1, 121, run.sink)).toBe(false);
    state.add('a', 90, 0, 1, 130, run.sink);
    expect(state.watermark).toBe(44);
    // Both idle: the watermark moves to the highest event time seen.
    state.advanceProcessingTime(230, run.sink);
    expect(state.watermark).toBe(90);
    expect(run.windows.map((w) => [w.start, w.count])).toEqual([
      [0, 2],
      [10, 0],
      [20, 0],
      [30, 0],
      [40, 2],
      [50, 0],
      [60, 0],
      [70, 0],
      [80, 0],
    ]);
    expect(state.nextDeadline()).toBe(Infinity);
  });

  it('advances with processing time when every partition is idle, if asked to', () => {
    const state = new WindowState({ sizeMs: 10, idleTimeoutMs: 50, advanceWithProcessingTime: true, keyTtlMs: 1000 });
    const run = newRun();
    state.add('a', 100, 0, 1, 0, run.sink);
    state.advanceProcessingTime(50, run.sink);
    expect(state.watermark).toBe(100);
    expect(run.windows.map((w) => w.start)).toEqual([]);
    // Event time advances 1:1 with processing time from the moment all went idle (50): [100,110) closes at 60.
    expect(state.nextDeadline()).toBe(60);
    state.advanceProcessingTime(60, run.sink);
    expect(run.windows).toEqual([{ kind: 'window', key: 'a', start: 100, end: 110, count: 1 }]);
    state.advanceProcessingTime(95, run.sink);
    expect(run.windows.map((w) => [w.start, w.count])).toEqual([
      [100, 1],
      [110, 0],
      [120, 0],
      [130, 0],
    ]);
    expect(state.nextDeadline()).toBe(100);
  });

  it('expected partitions hold the watermark before their first event until they go idle', () => {
    const state = new WindowState({ sizeMs: 10, idleTimeoutMs: 100, expectedPartitions: [0, 1] });
    const run = newRun();
    state.resume(1000);
    state.add('a', 5, 0, 1, 1000, run.sink);
    state.add('a', 50, 0, 1, 1010, run.sink);
    expect(state.watermark).toBe(-Infinity);
    expect(state.nextDeadline()).toBe(1100);
    state.advanceProcessingTime(1100, run.sink);
    expect(state.watermark).toBe(50);
    expect(run.windows.map((w) => w.start)).toEqual([0, 10, 20, 30, 40]);
  });

  it('resume does not count time spent unsubscribed as idleness', () => {
    const state = new WindowState({ sizeMs: 10, idleTimeoutMs: 100 });
    const run = newRun();
    state.add('a', 3, 1, 1, 0, run.sink);
    state.add('a', 5, 0, 1, 40, run.sink);
    const restored = WindowState.fromSnapshot(JSON.parse(JSON.stringify(state.snapshot())), {
      sizeMs: 10,
      idleTimeoutMs: 100,
    });
    restored.resume(10_000);
    expect(restored.nextDeadline()).toBe(9_960 + 100);
    restored.advanceProcessingTime(10_059, run.sink);
    expect(restored.watermark).toBe(3);
  });

  it('evicts the least recently seen key beyond maxKeys and counts what it held', () => {
    const state = new WindowState({ sizeMs: 10, maxKeys: 2 });
    const run = newRun();
    feed(state, [ev(0, 'a', 1, 0, 2), ev(1, 'b', 2), ev(2, 'a', 3, 0, 5), ev(3, 'c', 4)], run);
    expect(state.keyCount).toBe(2);
    expect(state.counters.evictedKeys).toBe(1);
    expect(state.counters.evictedWeight).toBe(1);
    state.flush(run.sink);
    expect(run.windows.map((w) => [w.key, w.count])).toEqual([
      ['a', 7],
      ['c', 1],
    ]);
  });

  it('keeps a far-future pane sparse and still counts it, without walking every empty window in between', () => {
    // Partition 1 holds the watermark back, so the early panes stay open beside the far one.
    const state = new WindowState({ sizeMs: 1, keyTtlMs: 3, expectedPartitions: [0, 1] });
    const run = newRun();
    feed(state, [ev(0, 'a', 0, 0), ev(1, 'a', 1_000_000_000, 0), ev(2, 'a', 1, 1)], run);
    expect(run.windows).toEqual([{ kind: 'window', key: 'a', start: 0, end: 1, count: 1 }]);
    state.flush(run.sink);
    expect(run.windows).toEqual([
      { kind: 'window', key: 'a', start: 0, end: 1, count: 1 },
      { kind: 'window', key: 'a', start: 1, end: 2, count: 1 },
      { kind: 'window', key: 'a', start: 2, end: 3, count: 0 },
      { kind: 'window', key: 'a', start: 3, end: 4, count: 0 },
      { kind: 'window', key: 'a', start: 1_000_000_000, end: 1_000_000_001, count: 1 },
    ]);
    const snapshot = JSON.parse(JSON.stringify(state.snapshot())) as { keys: unknown[] };
    expect(snapshot.keys).toHaveLength(1);
  });

  it('moves a far pane into the ring as zero-filled windows walk up to it', () => {
    const state = new WindowState({ sizeMs: 1, keyTtlMs: Infinity, expectedPartitions: [0, 1] });
    const run = newRun();
    feed(state, [ev(0, 'a', 0, 0), ev(1, 'a', 5_000, 0)], run);
    state.flush(run.sink);
    expect(run.windows).toHaveLength(5_001);
    expect(run.windows.filter((w) => w.count > 0).map((w) => w.start)).toEqual([0, 5_000]);
  });

  it('restores a sparse pane from a snapshot', () => {
    const options = { sizeMs: 1, keyTtlMs: 2, expectedPartitions: [0, 1] };
    const state = new WindowState(options);
    const run = newRun();
    feed(state, [ev(0, 'a', 0), ev(1, 'a', 10_000), ev(2, 'b', 9_999)], run);
    const restored = WindowState.fromSnapshot(JSON.parse(JSON.stringify(state.snapshot())), options);
    restored.flush(run.sink);
    expect(run.windows.map((w) => [w.key, w.start, w.count])).toEqual([
      ['a', 0, 1],
      ['a', 1, 0],
      ['b', 9_999, 1],
      ['a', 10_000, 1],
      ['b', 10_000, 0],
    ]);
  });

  it('counts an event with weight 0 as activity for zero-fill', () => {
    const state = new WindowState({ sizeMs: 10, keyTtlMs: 20 });
    const run = newRun();
    feed(state, [ev(0, 'a', 5, 0, 0), ev(1, 'b', 35)], run);
    expect(run.windows.filter((w) => w.key === 'a').map((w) => [w.start, w.count])).toEqual([
      [0, 0],
      [10, 0],
    ]);
  });

  it('rejects invalid options, malformed snapshots, mismatched geometry and non-finite event times', () => {
    expect(() => new WindowState({ sizeMs: 0 })).toThrow(RangeError);
    expect(() => new WindowState({ sizeMs: 10, advanceMs: 3 })).toThrow(/multiple/);
    expect(() => new WindowState({ sizeMs: 10, graceMs: -1 })).toThrow(/graceMs/);
    expect(() => new WindowState({ sizeMs: 10, advanceWithProcessingTime: true })).toThrow(/idleTimeoutMs/);
    expect(() => new WindowState({ sizeMs: 10, maxKeys: 0 })).toThrow(/maxKeys/);

    const malformed = captureError(() => WindowState.fromSnapshot({ version: 2 }, { sizeMs: 10 }));
    expect(malformed).toBeInstanceOf(LogflowError);
    expect((malformed as LogflowError).code).toBe(ErrorCodes.INPUT_INVALID);

    const withKey = new WindowState({ sizeMs: 10 });
    withKey.add('a', 25, 0, 1, 0, newRun().sink);
    const saved = withKey.snapshot();
    const inconsistent = { ...saved, keys: saved.keys.map((k) => ({ ...k, panes: [[k.nextWindow - 1, 1]] })) };
    expect((captureError(() => WindowState.fromSnapshot(inconsistent, { sizeMs: 10 })) as LogflowError).code).toBe(
      ErrorCodes.INPUT_INVALID,
    );

    const snapshot = new WindowState({ sizeMs: 10 }).snapshot();
    const mismatch = captureError(() => WindowState.fromSnapshot(snapshot, { sizeMs: 20 }));
    expect((mismatch as LogflowError).code).toBe(ErrorCodes.CONFIG_INVALID);

    const state = new WindowState({ sizeMs: 10 });
    expect(() => state.add('a', Number.NaN, 0, 1, 0, newRun().sink)).toThrow(InputError);
    expect(() => state.add('a', 1, 0, Infinity, 0, newRun().sink)).toThrow(InputError);
    expect(state.counters.events).toBe(0);
  });
});

function captureError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}
