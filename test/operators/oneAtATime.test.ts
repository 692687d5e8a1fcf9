import { concatMap, delay, pipe } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { oneAtATime } from '../../src/operators/oneAtATime.ts';

function newTestScheduler(): TestScheduler {
  return new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
}

describe('oneAtATime', () => {
  it('lets the next value into the first stage only once the previous one left the last', () => {
    const scheduler = newTestScheduler();
    scheduler.run(({ cold, expectObservable, flush }) => {
      const entered: Array<[string, number]> = [];
      const stages = pipe(
        concatMap((v: string) => {
          entered.push([v, scheduler.now()]);
          return cold('1ms (x|)', { x: v });
        }),
        delay(3),
      );
      // As a plain pipe, b would enter the first stage at 1 ms, while a is still delayed.
      expectObservable(cold('(ab|)').pipe(oneAtATime(stages))).toBe('4ms a 3ms (b|)');
      flush();
      expect(entered).toEqual([
        ['a', 0],
        ['b', 4],
      ]);
    });
  });
});
