import fc from 'fast-check';
import { concat, from, Subject, throwError } from 'rxjs';
import type { Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/core/errors.ts';
import { windowByEventTime } from '../../src/operators/windowByEventTime.ts';
import type { WindowOutput } from '../../src/operators/windowByEventTime.ts';
import { WindowState } from '../../src/domain/window-state.ts';
import type { WindowResult, WindowStateOptions, WindowStateSnapshot } from '../../src/domain/window-state.ts';

interface Log {
  readonly id: number;
  readonly key: string;
  readonly t: number;
  readonly p: number;
}

const accessors = {
  keyOf: (e: Log) => e.key,
  timeOf: (e: Log) => e.t,
  partitionOf: (e: Log) => e.p,
} as const;

const log = (id: number, t: number, p = 0, key = 'k'): Log => ({ id, key, t, p });
const win = (start: number, end: number, count: number, key = 'k'): WindowResult => ({
  kind: 'window',
  key,
  start,
  end,
  count,
});

function newTestScheduler(): TestScheduler {
  return new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
}

function collectSync<T>(observable: Observable<T>): { values: T[]; error: unknown; completed: boolean } {
  const result = { values: [] as T[], error: undefined as unknown, completed: false };
  observable.subscribe({
    next: (value) => result.values.push(value),
    error: (error: unknown) => (result.error = error),
    complete: () => (result.completed = true),
  });
  return result;
}

describe('windowByEventTime: emission timing (marbles)', () => {
  it('emits a window in the frame of the event whose watermark closes it, and flushes open windows on complete', () => {
    newTestScheduler().run(({ cold, expectObservable }) => {
      const source = cold<Log>('a-b-c--d|', { a: log(0, 1), b: log(1, 5), c: log(2, 12), d: log(3, 25) });
      const result = source.pipe(windowByEventTime({ ...accessors, sizeMs: 10 }));
      expectObservable(result).toBe('----x--y(z|)', { x: win(0, 10, 2), y: win(10, 20, 1), z: win(20, 30, 1) });
    });
  });

  it('waits for out-of-orderness and grace before closing, and orders a batch of closes by (end, key)', () => {
    newTestScheduler().run(({ cold, expectObservable }) => {
      const source = cold<Log>('abcd-e 9ms |', {
        a: log(0, 1, 0, 'web'),
        b: log(1, 2, 0, 'api'),
        c: log(2, 13, 0, 'web'),
        // Still within the out-of-orderness bound (watermark 13 - 3 = 10 < 10 + grace 2).
        d: log(3, 8, 0, 'api'),
        // Watermark 35 - 3 = 32 closes [0,10), [10,20) and [20,30) at once.
        e: log(4, 35, 0, 'db'),
      });
      const result = source.pipe(
        windowByEventTime({ ...accessors, sizeMs: 10, allowedOutOfOrdernessMs: 3, graceMs: 2 }),
      );
      // The flush on complete closes [30,40), zero-filling the known keys.
      expectObservable(result).toBe('-----(pqrstu) 2ms (vwx|)', {
        p: win(0, 10, 2, 'api'),
        q: win(0, 10, 1, 'web'),
        r: win(10, 20, 0, 'api'),
        s: win(10, 20, 1, 'web'),
        t: win(20, 30, 0, 'api'),
        u: win(20, 30, 0, 'web'),
        v: win(30, 40, 0, 'api'),
        w: win(30, 40, 1, 'db'),
        x: win(30, 40, 0, 'web'),
      });
    });
  });

  it('emits progress marks after each close when asked to', () => {
    newTestScheduler().run(({ cold, expectObservable }) => {
      const source = cold<Log>('a-b 9ms |', { a: log(0, 3), b: log(1, 14) });
      const result = source.pipe(windowByEventTime({ ...accessors, sizeMs: 10, emitWatermarks: true }));
      expectObservable(result).toBe('w-(xy) 6ms (zv|)', {
        w: { kind: 'watermark', watermark: 3 },
        x: win(0, 10, 1),
        y: { kind: 'watermark', watermark: 14 },
        z: win(10, 20, 1),
        v: { kind: 'watermark', watermark: 20 },
      });
    });
  });

  it('routes a late event to the late output, in its own frame, with the watermark it arrived behind', () => {
    newTestScheduler().run(({ cold, expectObservable }) => {
      const a = log(0, 21);
      const b = log(1, 4);
      const result = cold<Log>('a-b|', { a, b }).pipe(windowByEventTime({ ...accessors, sizeMs: 10 }));
      expectObservable(result).toBe('--l(x|)', { l: { kind: 'late', event: b, watermark: 21 }, x: win(20, 30, 1) });
    });
  });

  it('does not flush on complete when flushOnComplete is false', () => {
    newTestScheduler().run(({ cold, expectObservable }) => {
      const result = cold<Log>('ab|', { a: log(0, 1), b: log(1, 12) }).pipe(
        windowByEventTime({ ...accessors, sizeMs: 10, flushOnComplete: false }),
      );
      expectObservable(result).toBe('-x|', { x: win(0, 10, 1) });
    });
  });

  it('forwards a source error without flushing', () => {
    newTestScheduler().run(({ cold, expectObservable }) => {
      const result = cold<Log>('a-#', { a: log(0, 1) }, new Error('boom')).pipe(
        windowByEventTime({ ...accessors, sizeMs: 10 }),
      );
      expectObservable(result).toBe('--#', undefined, new Error('boom'));
    });
  });
});

describe('windowByEventTime: idle partitions (marbles)', () => {
  it('releases the watermark exactly idleTimeoutMs after the lagging partition went silent', () => {
    newTestScheduler().run(({ cold, expectObservable }) => {
      const source = cold<Log>('ab 8ms c 89ms |', { a: log(0, 2, 1), b: log(1, 3, 0), c: log(2, 35, 0) });
      const result = source.pipe(windowByEventTime({ ...accessors, sizeMs: 10, idleTimeoutMs: 50 }));
      // Partition 1 is silent from frame 0: at 50 only partition 0 (at 35) holds the watermark.
      expectObservable(result).toBe('50ms (xyz) 45ms (w|)', {
        x: win(0, 10, 2),
        y: win(10, 20, 0),
        z: win(20, 30, 0),
        w: win(30, 40, 1),
      });
    });
  });

  it('lets an idle partition rejoin: its old events are late, and it holds the watermark back again', () => {
    newTestScheduler().run(({ cold, expectObservable }) => {
      const late = log(3, 20, 1);
      const source = cold<Log>('ab 8ms c 59ms de 8ms f 69ms |', {
        a: log(0, 2, 1),
        b: log(1, 3, 0),
        c: log(2, 35, 0),
        d: late,
        e: log(4, 36, 1),
        f: log(5, 60, 0),
      });
      const result = source.pipe(windowByEventTime({ ...accessors, sizeMs: 10, idleTimeoutMs: 50 }));
      // 50: partition 1 idle, watermark 35. 70: partition 1 rejoins with a late event, then holds the watermark at 36
      // although partition 0 reaches 60 at 80. 121: partition 1 idle again, watermark 60.
      expectObservable(result).toBe('50ms (xyz) 15ms l 50ms (pqr) 24ms (s|)', {
        x: win(0, 10, 2),
        y: win(10, 20, 0),
        z: win(20, 30, 0),
        l: { kind: 'late', event: late, watermark: 35 },
        p: win(30, 40, 2),
        q: win(40, 50, 0),
        r: win(50, 60, 0),
        s: win(60, 70, 1),
      });
    });
  });

  it('holds the watermark for expected partitions until they deliver or go idle', () => {
    newTestScheduler().run(({ cold, expectObservable }) => {
      const source = cold<Log>('a 9ms b', { a: log(0, 5, 0), b: log(1, 27, 0) });
      const result = source.pipe(
        windowByEventTime({ ...accessors, sizeMs: 10, idleTimeoutMs: 30, expectedPartitions: [0, 1] }),
      );
      expectObservable(result, '^ 100ms !').toBe('30ms (xy)', { x: win(0, 10, 1), y: win(10, 20, 0) });
    });
  });

  it('with advanceWithProcessingTime, a silent stream keeps closing (zero-filled) windows as processing time passes', () => {
    newTestScheduler().run(({ cold, expectObservable }) => {
      const source = cold<Log>('a', { a: log(0, 5) });
      const result = source.pipe(
        windowByEventTime({
          ...accessors,
          sizeMs: 10,
          keyTtlMs: 30,
          idleTimeoutMs: 20,
          advanceWithProcessingTime: true,
        }),
      );
      // Idle from 20 with watermark 5; event time then moves 1:1 with processing time, closing a window every 10 ms
      // while the key is within its ttl (windows starting before 0 + 30).
      expectObservable(result, '^ 100ms !').toBe('25ms x 9ms y 9ms z', {
        x: win(0, 10, 1),
        y: win(10, 20, 0),
        z: win(20, 30, 0),
      });
    });
  });

  it('closes the windows of a lone partition that stopped, as detect holds it: idle from resubscription, then with processing time, zero-filled', () => {
    // One state per partition, fed before this subscription (say by the previous process, at processing time -100).
    const state = new WindowState({ sizeMs: 10, keyTtlMs: 40, idleTimeoutMs: 20, advanceWithProcessingTime: true });
    state.add('k', 5, 0, 1, -100, { window: () => undefined });
    newTestScheduler().run(({ cold, expectObservable }) => {
      const silent = cold<Log>('-');
      const result = silent.pipe(windowByEventTime({ ...accessors, state }));
      // Resumed at 0, idle at 20 with watermark 5; then one window per 10 ms of processing time: the count, then the
      // silence as zeros while the key is within its ttl (windows starting before 0 + 40).
      expectObservable(result, '^ 100ms !').toBe('25ms x 9ms y 9ms z 9ms w', {
        x: win(0, 10, 1),
        y: win(10, 20, 0),
        z: win(20, 30, 0),
        w: win(30, 40, 0),
      });
    });
    // Past its ttl the key is gone; the watermark kept moving at each deadline, the last at 95 before unsubscription.
    expect(state.keyCount).toBe(0);
    expect(state.watermark).toBe(5 + 95 - 20);
  });

  it('reports an event behind a watermark that idleness moved as late, with that watermark, and counts it nowhere', () => {
    const state = new WindowState({ sizeMs: 10, idleTimeoutMs: 20, advanceWithProcessingTime: true });
    const straggler = log(1, 12);
    newTestScheduler().run(({ cold, expectObservable }) => {
      const source = cold<Log>('a 39ms b', { a: log(0, 5), b: straggler });
      const result = source.pipe(windowByEventTime({ ...accessors, state }));
      // Idle at 20: the watermark reaches 10 at 25 and 20 at 35, so the event of time 12 arriving at 40 is late. It makes
      // the partition active again (watermark held at 20) until it idles at 60; then 20 + (t - 68) reaches 30 at 78.
      expectObservable(result, '^ 80ms !').toBe('25ms x 9ms y 4ms l 37ms z', {
        x: win(0, 10, 1),
        y: win(10, 20, 0),
        l: { kind: 'late', event: straggler, watermark: 20 },
        z: win(20, 30, 0),
      });
    });
    expect(state.counters.lateEvents).toBe(1);
  });

  it('stops its timer on unsubscribe', () => {
    const state = new WindowState({ sizeMs: 10, idleTimeoutMs: 20, expectedPartitions: [0, 1] });
    newTestScheduler().run(({ cold, expectObservable }) => {
      const source = cold<Log>('a', { a: log(0, 5) });
      const result = source.pipe(windowByEventTime({ ...accessors, state }));
      expectObservable(result, '^ 10ms !').toBe('');
    });
    // A live timer would have found both partitions idle at frame 20 and released the watermark to 5.
    expect(state.watermark).toBe(-Infinity);
  });
});

describe('windowByEventTime: chunking, checkpoints and errors', () => {
  const scenario = fc
    .record({
      outOfOrderness: fc.integer({ min: 0, max: 30 }),
      grace: fc.integer({ min: 0, max: 10 }),
      items: fc.array(
        fc.record({
          gap: fc.integer({ min: 0, max: 10 }),
          back: fc.integer({ min: 0, max: 1000 }),
          key: fc.constantFrom('a', 'b', 'c'),
          p: fc.integer({ min: 0, max: 2 }),
          late: fc.boolean(),
        }),
        { maxLength: 60 },
      ),
    })
    .map(({ outOfOrderness, grace, items }) => {
      let time = 0;
      const events = items.map((item, id): Log => {
        time += item.gap;
        // Mostly within the bound; some far behind, to exercise the late output too.
        const behind =
          item.late && item.back % 5 === 0
            ? outOfOrderness + grace + 10 + (item.back % 40)
            : item.back % (outOfOrderness + 1);
        return { id, key: item.key, t: time - behind, p: item.p };
      });
      return {
        options: {
          sizeMs: 10,
          allowedOutOfOrdernessMs: outOfOrderness,
          graceMs: grace,
          keyTtlMs: 40,
        } satisfies WindowStateOptions,
        events,
      };
    });

  function coreOutput(options: WindowStateOptions, events: readonly Log[]): WindowOutput<Log>[] {
    const state = new WindowState(options);
    const out: WindowOutput<Log>[] = [];
    const sink = { window: (w: WindowResult) => out.push(w) };
    for (const e of events)
      if (!state.add(e.key, e.t, e.p, 1, 0, sink)) out.push({ kind: 'late', event: e, watermark: state.watermark });
    state.flush(sink);
    return out;
  }

  it('gives the same output as the core fed event by event, whatever the chunking and the processing-time gaps', () => {
    fc.assert(
      fc.property(
        scenario,
        fc.array(fc.record({ size: fc.integer({ min: 1, max: 10 }), pause: fc.integer({ min: 0, max: 20 }) }), {
          minLength: 1,
        }),
        ({ options, events }, chunking) => {
          const expected = coreOutput(options, events);
          const actual: WindowOutput<Log>[] = [];
          const scheduler = newTestScheduler();
          scheduler.run(() => {
            const subject = new Subject<Log>();
            // Idle timeout beyond the whole run: chunking and pauses alone must not change anything.
            subject
              .pipe(windowByEventTime({ ...accessors, ...options, idleTimeoutMs: 100_000, scheduler }))
              .subscribe((o) => actual.push(o));
            let at = 0;
            let next = 0;
            for (let i = 0; next < events.length; i++) {
              const { size, pause } = chunking[i % chunking.length]!;
              const chunk = events.slice(next, next + size);
              next += size;
              at += pause;
              scheduler.schedule(() => chunk.forEach((e) => subject.next(e)), at);
            }
            scheduler.schedule(() => subject.complete(), at + 1);
          });
          expect(actual).toEqual(expected);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('continues from a caller-owned state snapshot exactly as an uninterrupted run (restoreFrom)', () => {
    fc.assert(
      fc.property(scenario, fc.nat(), ({ options, events }, cut) => {
        const split = cut % (events.length + 1);
        const uninterrupted = collectSync(from(events).pipe(windowByEventTime({ ...accessors, ...options }))).values;
        const state = new WindowState(options);
        const first = collectSync(
          from(events.slice(0, split)).pipe(windowByEventTime({ ...accessors, state, flushOnComplete: false })),
        ).values;
        const restoreFrom = JSON.parse(JSON.stringify(state.snapshot())) as WindowStateSnapshot;
        const second = collectSync(
          from(events.slice(split)).pipe(windowByEventTime({ ...accessors, ...options, restoreFrom })),
        ).values;
        expect([...first, ...second]).toEqual(uninterrupted);
      }),
      { numRuns: 200 },
    );
  });

  it('errors with an InputError when an event has no usable time, and with the accessor error when one throws', () => {
    const bad = collectSync(
      from([log(0, 1), log(1, Number.NaN)]).pipe(windowByEventTime({ ...accessors, sizeMs: 10 })),
    );
    expect(bad.error).toBeInstanceOf(InputError);
    expect(bad.completed).toBe(false);

    const failure = new Error('no key');
    const throwing = collectSync(
      from([log(0, 1)]).pipe(
        windowByEventTime<Log>({
          ...accessors,
          keyOf: () => {
            throw failure;
          },
          sizeMs: 10,
        }),
      ),
    );
    expect(throwing.error).toBe(failure);
  });

  it('validates options when the operator is built, not when it is subscribed', () => {
    expect(() => windowByEventTime({ ...accessors, sizeMs: 10, advanceMs: 4 })).toThrow(RangeError);
  });

  it('uses partition 0 and weight 1 by default, and weightOf when given', () => {
    const events = [log(0, 1), log(1, 2), log(2, 3)];
    const counted = collectSync(
      from(events).pipe(windowByEventTime({ keyOf: accessors.keyOf, timeOf: accessors.timeOf, sizeMs: 10 })),
    ).values;
    expect(counted).toEqual([win(0, 10, 3)]);
    const weighted = collectSync(
      from(events).pipe(windowByEventTime({ ...accessors, weightOf: (e) => e.id * 10, sizeMs: 10 })),
    ).values;
    expect(weighted).toEqual([win(0, 10, 30)]);
  });

  it('keeps separate state per subscription', () => {
    const source = concat(
      from([log(0, 1), log(1, 15)]),
      throwError(() => new Error('stop')),
    );
    const operator = windowByEventTime({ ...accessors, sizeMs: 10 });
    const first = collectSync(source.pipe(operator));
    const second = collectSync(source.pipe(operator));
    expect(first.values).toEqual([win(0, 10, 1)]);
    expect(second.values).toEqual(first.values);
  });
});
