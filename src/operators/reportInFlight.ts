import { asyncScheduler, connect, endWith, finalize, ignoreElements, interval, merge, takeUntil, tap } from 'rxjs';
import type { MonoTypeOperatorFunction, SchedulerLike } from 'rxjs';

export interface ReportInFlightOptions {
  /**
   * Also reported this often (scheduler time, default 1 s), so a graph stuck waiting on an outage still shows its
   * backlog.
   */
  readonly periodMs?: number;
  readonly scheduler?: SchedulerLike;
}

/**
 * Passes values through and reports `read()` (records read but not yet
 * acknowledged, say) to `report` on every value, every `periodMs` while the
 * stream runs, and once more when it ends. Placed after the stage that acks,
 * each value is a moment the count changed; the period covers the waits
 * between them.
 */
export function reportInFlight<T>(
  read: () => number,
  report: (count: number) => void,
  options: ReportInFlightOptions = {},
): MonoTypeOperatorFunction<T> {
  const periodMs = options.periodMs ?? 1_000;
  if (!(periodMs > 0)) throw new RangeError(`reportInFlight: periodMs must be > 0, got ${periodMs}`);
  const scheduler = options.scheduler ?? asyncScheduler;
  const sample = (): void => report(read());
  return connect((shared) =>
    merge(
      shared.pipe(tap(sample)),
      interval(periodMs, scheduler).pipe(
        tap(sample),
        ignoreElements(),
        // The ticks end with the stream, or they would keep it open.
        takeUntil(shared.pipe(ignoreElements(), endWith(null))),
      ),
    ).pipe(finalize(sample)),
  );
}
