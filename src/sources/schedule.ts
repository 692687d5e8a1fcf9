/**
 * A cron source: emits the scheduled time of each firing. croner parses the
 * expression and computes the next run; the waiting is done on an RxJS
 * scheduler, so a marble test can fire a weekly job in virtual time.
 */
import { Cron } from 'croner';
import { asyncScheduler, Observable, type SchedulerLike } from 'rxjs';
import { ConfigError } from '../core/errors.ts';

export interface ScheduleOptions {
  readonly timezone?: string;
  readonly scheduler?: SchedulerLike;
}

/** Throws a ConfigError naming the expression when croner cannot parse it. */
export function parseCron(expression: string, timezone = 'UTC'): Cron {
  try {
    return new Cron(expression, { paused: true, timezone });
  } catch (error) {
    throw new ConfigError([`cron expression "${expression}": ${(error as Error).message}`]);
  }
}

export function cronSchedule(expression: string, options: ScheduleOptions = {}): Observable<Date> {
  const cron = parseCron(expression, options.timezone ?? 'UTC');
  const scheduler = options.scheduler ?? asyncScheduler;
  return new Observable<Date>((subscriber) => {
    let after = new Date(scheduler.now());
    let action: { unsubscribe(): void } | undefined;
    const arm = () => {
      const next = cron.nextRun(after);
      if (next === null) {
        subscriber.complete();
        return;
      }
      action = scheduler.schedule(
        () => {
          after = next;
          subscriber.next(next);
          // A consumer that stops in next() (take(n)) has already run the teardown: arming again would leak a timer.
          if (!subscriber.closed) arm();
        },
        Math.max(0, next.getTime() - scheduler.now()),
      );
    };
    arm();
    return () => action?.unsubscribe();
  });
}
