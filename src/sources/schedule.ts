/**
 * A cron source: emits the scheduled time of each firing. croner parses the
 * expression and computes the next run; the waiting is done on an RxJS
 * scheduler, so a marble test can fire a weekly job in virtual time.
 */
import { Cron } from 'croner';
import { asyncScheduler, concat, EMPTY, Observable, of, type SchedulerLike, takeUntil } from 'rxjs';
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

/**
 * When a scheduled job (baselines, retention) runs: once (`--once`, at `--now` or the scheduler's now), or at `--now`
 * if given and then at each firing of its cron until the pipeline stops.
 */
export function scheduledRuns(
  options: { readonly once: boolean; readonly now?: string | undefined },
  cron: string,
  ctx: { readonly scheduler: SchedulerLike; readonly stopping$: Observable<unknown> },
): Observable<Date> {
  const at = options.now === undefined ? undefined : new Date(options.now);
  if (options.once) return of(at ?? new Date(ctx.scheduler.now()));
  return concat(at === undefined ? EMPTY : of(at), cronSchedule(cron, { scheduler: ctx.scheduler })).pipe(
    takeUntil(ctx.stopping$),
  );
}
