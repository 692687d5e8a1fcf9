/**
 * A scheduler whose clock is event time running `speed` times faster than
 * the wall clock from `origin` on, as `npm start`'s demo time does
 * (src/app/embedded.ts). A cron source or an interval given this scheduler
 * fires at event-time instants: a weekly job runs every 8.4 hours at x20.
 */
import { asyncScheduler, type SchedulerAction, type SchedulerLike, type Subscription } from 'rxjs';

export class EventTimeScheduler implements SchedulerLike {
  readonly #origin: number;
  readonly #speed: number;
  readonly #wall: SchedulerLike;

  constructor(origin: number, speed: number, wall: SchedulerLike = asyncScheduler) {
    if (!(speed > 0) || !Number.isFinite(speed)) throw new RangeError(`event time speed must be > 0, got ${speed}`);
    this.#origin = origin;
    this.#speed = speed;
    this.#wall = wall;
  }

  now(): number {
    return this.#origin + (this.#wall.now() - this.#origin) * this.#speed;
  }

  schedule<T>(work: (this: SchedulerAction<T>, state?: T) => void, delay = 0, state?: T): Subscription {
    const speed = this.#speed;
    return this.#wall.schedule(
      function (this: SchedulerAction<T>, next?: T) {
        work.call(scaledAction(this, speed), next);
      },
      delay / speed,
      state,
    );
  }
}

/** The action as the work sees it: a periodic source (interval) reschedules through it, and that delay is event time too. */
function scaledAction<T>(action: SchedulerAction<T>, speed: number): SchedulerAction<T> {
  return Object.assign(Object.create(action) as SchedulerAction<T>, {
    schedule: (again?: T, againDelay = 0) => action.schedule(again, againDelay / speed),
    unsubscribe: () => action.unsubscribe(),
  });
}
