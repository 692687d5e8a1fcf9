import { interval, map, type Observable, take, VirtualAction, VirtualTimeScheduler } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { EventTimeScheduler } from '../../src/core/event-time-scheduler.ts';
import { cronSchedule } from '../../src/sources/schedule.ts';

const h = 3_600_000;

describe('EventTimeScheduler', () => {
  it('reads event time as origin plus the wall time since, times the speed', () => {
    const wall = new TestScheduler(() => undefined);
    wall.run(({ flush }) => {
      const events = new EventTimeScheduler(0, 20, wall);
      expect(events.now()).toBe(0);
      wall.schedule(() => expect(events.now()).toBe(20 * 90_000), 90_000);
      flush();
    });
  });

  /** What a source emits, each with the wall time it came at; marbles of hours of frames are slow to parse. */
  const recorded = <T>(wall: VirtualTimeScheduler, source: Observable<T>) => {
    const seen: [number, T][] = [];
    source.subscribe((value) => seen.push([wall.now(), value]));
    wall.flush();
    return seen;
  };

  it('fires a cron source at event-time instants: a daily 02:00 job after 6 wall minutes at x20', () => {
    const wall = new VirtualTimeScheduler(VirtualAction, Number.POSITIVE_INFINITY);
    const events = new EventTimeScheduler(0, 20, wall);
    // 2 h of event time is 6 wall minutes; the next day's run 72 wall minutes after that.
    expect(recorded(wall, cronSchedule('0 2 * * *', { scheduler: events }).pipe(take(2)))).toEqual([
      [(2 * h) / 20, new Date(2 * h)],
      [(26 * h) / 20, new Date(26 * h)],
    ]);
  });

  it('keeps every period of an interval in event time, not only the first', () => {
    const wall = new VirtualTimeScheduler(VirtualAction, Number.POSITIVE_INFINITY);
    const events = new EventTimeScheduler(0, 10, wall);
    const ticks = interval(10_000, events).pipe(
      take(3),
      map(() => events.now()),
    );
    expect(recorded(wall, ticks)).toEqual([
      [1_000, 10_000],
      [2_000, 20_000],
      [3_000, 30_000],
    ]);
  });

  it('refuses a speed that is not a positive finite number', () => {
    expect(() => new EventTimeScheduler(0, 0)).toThrow(/speed must be > 0/);
    expect(() => new EventTimeScheduler(0, Number.POSITIVE_INFINITY)).toThrow(/speed must be > 0/);
  });
});
