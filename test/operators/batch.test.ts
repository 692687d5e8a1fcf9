import fc from 'fast-check';
import { concat, from, map, merge, Subject, throwError, timer } from 'rxjs';
import type { Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { createEnvelope } from '../../src/core/envelope.ts';
import { batch } from '../../src/operators/batch.ts';

interface Item {
  readonly id: number;
  readonly size: number;
}

const sizeOf = (item: Item): number => item.size;

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

/**
 * Reference model, stated differently from the implementation: each batch is
 * the longest prefix of what remains that stays within maxRecords and
 * maxBytes (a single item may exceed maxBytes on its own).
 */
function referenceBatches(items: readonly Item[], maxRecords: number, maxBytes: number): Item[][] {
  const batches: Item[][] = [];
  let rest = items.slice();
  while (rest.length > 0) {
    let length = 1;
    while (length < rest.length && length < maxRecords) {
      const bytes = rest.slice(0, length + 1).reduce((sum, item) => sum + item.size, 0);
      if (bytes > maxBytes) break;
      length += 1;
    }
    batches.push(rest.slice(0, length));
    rest = rest.slice(length);
  }
  return batches;
}

const itemsArbitrary = fc
  .array(fc.nat({ max: 60 }), { maxLength: 80 })
  .map((sizes) => sizes.map((size, id): Item => ({ id, size })));

describe('batch: count and byte bounds (properties)', () => {
  it('matches the reference model; batches stay within bounds, are never empty, and concatenate to the input', () => {
    fc.assert(
      fc.property(
        itemsArbitrary,
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 120 }),
        (items, maxRecords, maxBytes) => {
          const result = collectSync(from(items).pipe(batch({ maxRecords, maxBytes, maxWaitMs: Infinity, sizeOf })));

          expect(result.completed).toBe(true);
          expect(result.values).toEqual(referenceBatches(items, maxRecords, maxBytes));
          expect(result.values.flat()).toEqual(items);
          for (const emitted of result.values) {
            expect(emitted.length).toBeGreaterThan(0);
            expect(emitted.length).toBeLessThanOrEqual(maxRecords);
            const bytes = emitted.reduce((sum, item) => sum + item.size, 0);
            if (emitted.length > 1) expect(bytes).toBeLessThanOrEqual(maxBytes);
          }
        },
      ),
    );
  });

  it('flushes everything buffered before forwarding a source error', () => {
    fc.assert(
      fc.property(
        itemsArbitrary,
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 120 }),
        (items, maxRecords, maxBytes) => {
          const failure = new Error('source broke');
          const events: string[] = [];
          const batches: Item[][] = [];
          concat(
            from(items),
            throwError(() => failure),
          )
            .pipe(batch({ maxRecords, maxBytes, maxWaitMs: Infinity, sizeOf }))
            .subscribe({
              next: (emitted) => {
                batches.push(emitted);
                events.push('batch');
              },
              error: (error: unknown) => {
                expect(error).toBe(failure);
                events.push('error');
              },
            });

          expect(batches).toEqual(referenceBatches(items, maxRecords, maxBytes));
          expect(events.at(-1)).toBe('error');
          expect(events.filter((event) => event === 'error')).toHaveLength(1);
        },
      ),
    );
  });
});

describe('batch: maxWait in virtual time (property)', () => {
  /**
   * Items arrive at even times and maxWait is odd, so an arrival never ties
   * with a timer; the reference replays arrivals and due timers in time order.
   */
  function referenceTimeline(
    arrivals: readonly { item: Item; at: number }[],
    completeAt: number,
    maxRecords: number,
    maxBytes: number,
    maxWaitMs: number,
  ): { at: number; ids: number[] }[] {
    const out: { at: number; ids: number[] }[] = [];
    let current: Item[] = [];
    let openedAt = 0;
    const bytesOf = (batchItems: Item[]): number => batchItems.reduce((sum, item) => sum + item.size, 0);
    for (const { item, at } of arrivals) {
      if (current.length > 0 && at > openedAt + maxWaitMs) {
        out.push({ at: openedAt + maxWaitMs, ids: current.map((i) => i.id) });
        current = [];
      }
      if (current.length > 0 && bytesOf([...current, item]) > maxBytes) {
        out.push({ at, ids: current.map((i) => i.id) });
        current = [];
      }
      if (current.length === 0) openedAt = at;
      current.push(item);
      if (current.length === maxRecords || bytesOf(current) > maxBytes) {
        out.push({ at, ids: current.map((i) => i.id) });
        current = [];
      }
    }
    if (current.length > 0) out.push({ at: Math.min(openedAt + maxWaitMs, completeAt), ids: current.map((i) => i.id) });
    return out;
  }

  it('emits each batch when full, oversized, maxWait after its first item, or on complete — as the reference says', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ size: fc.nat({ max: 40 }), gap: fc.integer({ min: 1, max: 8 }) }), { maxLength: 40 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 100 }),
        fc.integer({ min: 0, max: 10 }).map((n) => 2 * n + 1),
        fc.integer({ min: 1, max: 8 }),
        (specs, maxRecords, maxBytes, maxWaitMs, tailGap) => {
          let clock = 0;
          const arrivals = specs.map((spec, id) => {
            clock += 2 * spec.gap;
            return { item: { id, size: spec.size }, at: clock };
          });
          const completeAt = clock + 2 * tailGap;

          const scheduler = newTestScheduler();
          const observed: { at: number; ids: number[] }[] = [];
          let completedAt = -1;
          scheduler.run(() => {
            const source = merge(
              ...arrivals.map(({ item, at }) => timer(at, scheduler).pipe(map(() => item))),
              timer(completeAt, scheduler).pipe(map(() => null)),
            );
            const items$ = new Subject<Item>();
            source.subscribe((value) => (value === null ? items$.complete() : items$.next(value)));
            items$.pipe(batch({ maxRecords, maxBytes, maxWaitMs, scheduler, sizeOf })).subscribe({
              next: (emitted) => observed.push({ at: scheduler.now(), ids: emitted.map((i) => i.id) }),
              complete: () => (completedAt = scheduler.now()),
            });
          });

          expect(observed).toEqual(referenceTimeline(arrivals, completeAt, maxRecords, maxBytes, maxWaitMs));
          expect(completedAt).toBe(completeAt);
        },
      ),
    );
  });
});

describe('batch: marbles', () => {
  it('flushes maxWait after the first item of the batch, and the remainder on complete', () => {
    const scheduler = newTestScheduler();
    scheduler.run(({ cold, expectObservable }) => {
      const source = cold<Item>('a 1ms b 10ms c 2ms |', {
        a: { id: 1, size: 1 },
        b: { id: 2, size: 1 },
        c: { id: 3, size: 1 },
      });
      expectObservable(source.pipe(batch({ maxRecords: 10, maxBytes: 100, maxWaitMs: 5, scheduler, sizeOf }))).toBe(
        '5ms x 10ms (y|)',
        {
          x: [
            { id: 1, size: 1 },
            { id: 2, size: 1 },
          ],
          y: [{ id: 3, size: 1 }],
        },
      );
    });
  });

  it('starts the wait at the first item, not when the stream or the previous batch started', () => {
    const scheduler = newTestScheduler();
    scheduler.run(({ hot, expectObservable }) => {
      const source = hot<Item>('---a 9ms b 20ms |', { a: { id: 1, size: 0 }, b: { id: 2, size: 0 } });
      expectObservable(source.pipe(batch({ maxRecords: 10, maxBytes: 100, maxWaitMs: 4, scheduler, sizeOf }))).toBe(
        '7ms x 9ms y 16ms |',
        { x: [{ id: 1, size: 0 }], y: [{ id: 2, size: 0 }] },
      );
    });
  });

  it('flushes at maxRecords without waiting, and the partial rest on complete', () => {
    const scheduler = newTestScheduler();
    scheduler.run(({ cold, expectObservable }) => {
      const values = { a: 'a', b: 'b', c: 'c', d: 'd', e: 'e' };
      expectObservable(
        cold('abcde|', values).pipe(batch({ maxRecords: 2, maxBytes: 100, maxWaitMs: 50, scheduler })),
      ).toBe('-x-y-(z|)', { x: ['a', 'b'], y: ['c', 'd'], z: ['e'] });
    });
  });

  it('flushes before an item that would exceed maxBytes, and emits an oversized item alone at once', () => {
    const scheduler = newTestScheduler();
    scheduler.run(({ cold, expectObservable }) => {
      const items = { a: { id: 1, size: 4 }, b: { id: 2, size: 5 }, c: { id: 3, size: 30 }, d: { id: 4, size: 2 } };
      expectObservable(
        cold<Item>('abcd 20ms |', items).pipe(batch({ maxRecords: 10, maxBytes: 10, maxWaitMs: 8, scheduler, sizeOf })),
      ).toBe('--(xy) 5ms z 12ms |', { x: [items.a, items.b], y: [items.c], z: [items.d] });
    });
  });

  it('counts records with countOf: flushes before an item that would exceed maxRecords, a larger item alone', () => {
    const scheduler = newTestScheduler();
    scheduler.run(({ cold, expectObservable }) => {
      const items = { a: [1, 2, 3], b: [4, 5, 6], c: [7, 8, 9, 10, 11, 12], d: [13], e: [14, 15] };
      expectObservable(
        cold<number[]>('abcde 20ms |', items).pipe(
          batch({ maxRecords: 5, maxBytes: 100, maxWaitMs: 8, scheduler, countOf: (r) => r.length }),
        ),
      ).toBe('-x(yz) 5ms w 13ms |', { x: [items.a], y: [items.b], z: [items.c], w: [items.d, items.e] });
    });
  });

  it('flushes the buffered items, then forwards the error', () => {
    const scheduler = newTestScheduler();
    scheduler.run(({ cold, expectObservable }) => {
      const failure = new Error('boom');
      expectObservable(
        cold('ab#', { a: 'a', b: 'b' }, failure).pipe(
          batch({ maxRecords: 10, maxBytes: 100, maxWaitMs: 50, scheduler }),
        ),
      ).toBe('--(x#)', { x: ['a', 'b'] }, failure);
    });
  });

  it('never emits an empty batch when the timer would fire on an empty buffer, and stops its timer on unsubscribe', () => {
    const scheduler = newTestScheduler();
    scheduler.run(({ cold, expectObservable }) => {
      // The batch closed by size at frame 1 must cancel its timer (no empty batch at frame 5).
      expectObservable(
        cold('ab 10ms |', { a: 'a', b: 'b' }).pipe(batch({ maxRecords: 2, maxBytes: 100, maxWaitMs: 4, scheduler })),
      ).toBe('-x 10ms |', { x: ['a', 'b'] });
      // Unsubscribed at frame 3, before the 5 ms timer of 'a': nothing is emitted afterwards.
      expectObservable(
        cold('a 20ms |', { a: 'a' }).pipe(batch({ maxRecords: 2, maxBytes: 100, maxWaitMs: 5, scheduler })),
        '^ 2ms !',
      ).toBe('');
    });
  });
});

describe('batch: envelopes', () => {
  it('defaults sizeOf to the envelope sizeBytes', () => {
    const envelopes = [10, 10, 10].map((sizeBytes, offset) =>
      createEnvelope(
        { value: offset, eventTime: 0, origin: { topic: 't', partition: 0, offset }, sizeBytes },
        { onAck: () => {}, onFail: () => {} },
      ),
    );
    const result = collectSync(from(envelopes).pipe(batch({ maxRecords: 10, maxBytes: 25, maxWaitMs: Infinity })));
    expect(result.values.map((emitted) => emitted.map((envelope) => envelope.value))).toEqual([[0, 1], [2]]);
  });

  it('rejects invalid bounds', () => {
    expect(() => batch({ maxRecords: 0, maxBytes: 1, maxWaitMs: 1 })).toThrow(RangeError);
    expect(() => batch({ maxRecords: 1.5, maxBytes: 1, maxWaitMs: 1 })).toThrow(RangeError);
    expect(() => batch({ maxRecords: 1, maxBytes: 0, maxWaitMs: 1 })).toThrow(RangeError);
    expect(() => batch({ maxRecords: 1, maxBytes: 1, maxWaitMs: -1 })).toThrow(RangeError);
  });
});
