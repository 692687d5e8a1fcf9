import { take, VirtualAction, VirtualTimeScheduler } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.ts';
import { cronSchedule } from '../../src/sources/schedule.ts';

describe('cronSchedule', () => {
  it('fires at each scheduled time, in virtual time', () => {
    const scheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
    scheduler.run(({ expectObservable }) => {
      // Virtual time starts at 0 = 1970-01-01T00:00Z, a Thursday; "every day at 02:00".
      const fired = cronSchedule('0 2 * * *', { scheduler }).pipe(take(2));
      const h = 3_600_000;
      expectObservable(fired).toBe(`${2 * h}ms a ${24 * h - 1}ms (b|)`, {
        a: new Date(2 * h),
        b: new Date(26 * h),
      });
    });
  });

  it('arms no further timer once its consumer stops in next()', () => {
    const scheduler = new VirtualTimeScheduler(VirtualAction, Number.POSITIVE_INFINITY);
    const fired: Date[] = [];
    cronSchedule('0 2 * * *', { scheduler })
      .pipe(take(2))
      .subscribe((at) => fired.push(at));
    scheduler.flush();
    expect(fired).toHaveLength(2);
    // With a leaked timer the flush runs on, one firing a day, until the cron has no next run.
    expect(scheduler.now()).toBe(26 * 3_600_000);
  });

  it('rejects a malformed expression with a message naming it', () => {
    expect(() => cronSchedule('61 * * * *')).toThrow(ConfigError);
    expect(() => cronSchedule('61 * * * *')).toThrow(/cron expression "61 \* \* \* \*"/);
  });
});
