import { asyncScheduler, Observable } from 'rxjs';
import type { OperatorFunction, SchedulerLike, Subscription } from 'rxjs';
import { resolveWindowOptions, WindowState } from '../domain/window-state.ts';
import type { WindowResult, WindowSink, WindowStateOptions, WindowStateSnapshot } from '../domain/window-state.ts';

export type { WindowResult } from '../domain/window-state.ts';

export interface LateEvent<T> {
  readonly kind: 'late';
  readonly event: T;
  /** The watermark the event arrived behind. */
  readonly watermark: number;
}

/**
 * Progress mark, emitted after the windows of each advance that moves the
 * closed-window boundary (the first finite watermark and the flush included):
 * every window ending at or before `watermark - grace` has been emitted, so a
 * checkpoint taken here is consistent with the output so far.
 */
export interface WatermarkMark {
  readonly kind: 'watermark';
  readonly watermark: number;
}

export type WindowOutput<T> = WindowResult | LateEvent<T> | WatermarkMark;

const CLOCK_READ_EVERY = 1024;

interface Accessors<T> {
  readonly keyOf: (event: T) => string;
  /** Event time, epoch ms. */
  readonly timeOf: (event: T) => number;
  /** Source partition the watermark is tracked per; default 0. */
  readonly partitionOf?: (event: T) => number;
  /** What the event adds to its windows' counts; default 1. */
  readonly weightOf?: (event: T) => number;
  readonly scheduler?: SchedulerLike;
  /** Emit `{ kind: 'watermark' }` marks; default false. */
  readonly emitWatermarks?: boolean;
  /**
   * On source completion, close every window overlapping the observed event
   * time (see `WindowState.flush`) before completing; default true. Turn it
   * off when completion means "shutting down to resume from a checkpoint",
   * where partial counts would read as drops.
   */
  readonly flushOnComplete?: boolean;
}

export type WindowByEventTimeOptions<T> = Accessors<T> &
  (
    | WindowStateOptions
    /** A state the caller owns, so it can `snapshot()` at checkpoints; its own options apply. */
    | { readonly state: WindowState }
    | (WindowStateOptions & { readonly restoreFrom: WindowStateSnapshot })
  );

/**
 * Keyed event-time windows with per-partition watermarks, idle partitions,
 * grace, zero-filled empty windows, a late-event output and checkpointable
 * state; semantics are documented in src/domain/window-state.ts.
 *
 * Emission timing: windows closed by an event's watermark advance are emitted
 * synchronously while that event is delivered, in (end, key) order; a late
 * event (which can never advance the watermark) yields its `late` record
 * likewise. Windows closed by idleness or by processing-time advance are
 * emitted from a scheduler timer at the deadline. Processing time is read
 * once per synchronous burst of events (at most every 1024 events), so in
 * virtual time idleness is exact and in real time it errs by at most one
 * burst. On a source error nothing is flushed. The late-event counter and the
 * others are on the state (`state.counters`).
 *
 * A state passed in is resumed at subscription (`WindowState.resume`): time
 * spent unsubscribed does not count as partition idleness. One subscription
 * at a time per state.
 */
export function windowByEventTime<T>(options: WindowByEventTimeOptions<T>): OperatorFunction<T, WindowOutput<T>> {
  const { keyOf, timeOf, partitionOf, weightOf } = options;
  const scheduler = options.scheduler ?? asyncScheduler;
  const emitWatermarks = options.emitWatermarks ?? false;
  const flushOnComplete = options.flushOnComplete ?? true;
  // Validate eagerly so a misconfigured pipeline fails at build time, not at first subscription.
  if (!('state' in options)) resolveWindowOptions(options);

  return (source) =>
    new Observable<WindowOutput<T>>((subscriber) => {
      const state =
        'state' in options
          ? options.state
          : 'restoreFrom' in options
            ? WindowState.fromSnapshot(options.restoreFrom, options)
            : new WindowState(options);
      state.resume(scheduler.now());
      const tracksTime = state.tracksProcessingTime;

      const sink: WindowSink = emitWatermarks
        ? {
            window: (result) => subscriber.next(result),
            watermark: (watermark) => subscriber.next({ kind: 'watermark', watermark }),
          }
        : { window: (result) => subscriber.next(result) };

      // Reading the clock per event costs as much as the windowing itself, so one reading serves a synchronous burst
      // (reset by a zero-delay action once the burst yields) and at most CLOCK_READ_EVERY events of it.
      let cachedNow = 0;
      let clockValid = false;
      let eventsSinceRead = 0;
      let clockReset: Subscription | undefined;
      const invalidateClock = (): void => {
        clockValid = false;
        clockReset = undefined;
      };
      const processingTime = (): number => {
        if (clockValid && ++eventsSinceRead < CLOCK_READ_EVERY) return cachedNow;
        if (!clockValid) {
          clockValid = true;
          clockReset = scheduler.schedule(invalidateClock);
        }
        eventsSinceRead = 0;
        cachedNow = scheduler.now();
        return cachedNow;
      };

      let timer: Subscription | undefined;
      const arm = (minimumDelay: number): void => {
        const deadline = state.nextDeadline();
        if (deadline === Infinity) return;
        timer = scheduler.schedule(onTimer, Math.max(minimumDelay, deadline - scheduler.now()));
      };
      const onTimer = (): void => {
        timer = undefined;
        try {
          state.advanceProcessingTime(scheduler.now(), sink);
          // A deadline the tick did not move would re-fire at once forever; wait at least a tick instead.
          arm(1);
        } catch (error) {
          subscriber.error(error);
        }
      };
      if (tracksTime) arm(0);

      const sourceSubscription = source.subscribe({
        next: (event) => {
          try {
            const now = tracksTime ? processingTime() : 0;
            const accepted = state.add(
              keyOf(event),
              timeOf(event),
              partitionOf === undefined ? 0 : partitionOf(event),
              weightOf === undefined ? 1 : weightOf(event),
              now,
              sink,
            );
            if (!accepted) subscriber.next({ kind: 'late', event, watermark: state.watermark });
            if (timer === undefined && tracksTime) arm(0);
          } catch (error) {
            subscriber.error(error);
          }
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => {
          try {
            if (flushOnComplete) state.flush(sink);
          } catch (error) {
            subscriber.error(error);
            return;
          }
          subscriber.complete();
        },
      });

      return () => {
        timer?.unsubscribe();
        clockReset?.unsubscribe();
        sourceSubscription.unsubscribe();
      };
    });
}
