import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { reportInFlight } from '../../src/operators/reportInFlight.ts';

function newTestScheduler(): TestScheduler {
  return new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
}

describe('reportInFlight', () => {
  it('passes values through and reports on each value, every period while running, and once at the end', () => {
    const scheduler = newTestScheduler();
    scheduler.run(({ cold, expectObservable, flush }) => {
      let inFlight = 0;
      const reports: Array<{ at: number; count: number }> = [];
      const source = cold<number>('a 4ms b 9ms |', { a: 1, b: 2 });
      const counted = source.pipe(
        // What the stage before would do: each value changes the count.
        reportInFlight(
          () => inFlight,
          (count) => reports.push({ at: scheduler.now(), count }),
          { periodMs: 4, scheduler },
        ),
      );
      scheduler.schedule(() => (inFlight = 7), 2);
      scheduler.schedule(() => (inFlight = 3), 9);
      scheduler.schedule(() => (inFlight = 0), 12);
      expectObservable(counted).toBe('a 4ms b 9ms |', { a: 1, b: 2 });
      flush();
      // Values at 0 and 5, ticks at 4, 8, 12, the end at 15 (the tick of 16 never comes).
      expect(reports).toEqual([
        { at: 0, count: 0 },
        { at: 4, count: 7 },
        { at: 5, count: 7 },
        { at: 8, count: 7 },
        { at: 12, count: 0 },
        { at: 15, count: 0 },
      ]);
    });
  });

  it('forwards an error and still reports the last count', () => {
    const scheduler = newTestScheduler();
    scheduler.run(({ cold, expectObservable, flush }) => {
      const reports: number[] = [];
      const failed = cold<number>('a 2ms #', { a: 1 }).pipe(
        reportInFlight(
          () => 5,
          (count) => reports.push(count),
          { periodMs: 10, scheduler },
        ),
      );
      expectObservable(failed).toBe('a 2ms #', { a: 1 });
      flush();
      expect(reports).toEqual([5, 5]);
    });
  });

  it('refuses a period that is not positive', () => {
    expect(() =>
      reportInFlight(
        () => 0,
        () => undefined,
        { periodMs: 0 },
      ),
    ).toThrow(RangeError);
  });
});
