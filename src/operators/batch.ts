import { asyncScheduler, Observable } from 'rxjs';
import type { OperatorFunction, SchedulerLike, Subscription } from 'rxjs';

export interface BatchOptions<T> {
  /** A batch is emitted as soon as it holds this many items (or records, with `countOf`). */
  readonly maxRecords: number;
  /**
   * A batch is emitted before an item that would push it past this many bytes;
   * an item larger than this on its own travels as a batch of one.
   */
  readonly maxBytes: number;
  /** A batch is emitted this long (scheduler time) after its first item arrived; `Infinity` disables the timer. */
  readonly maxWaitMs: number;
  readonly scheduler?: SchedulerLike;
  /** Defaults to the item's `sizeBytes` (Envelopes carry one), else 0. */
  readonly sizeOf?: (item: T) => number;
  /**
   * How many records an item holds (1 by default): chunks count their records. A batch is then emitted before an
   * item that would push it past `maxRecords` too; a larger item travels alone.
   */
  readonly countOf?: (item: T) => number;
}

/**
 * Groups items into arrays bounded by count, bytes and age.
 *
 * Guarantees: the concatenation of the batches is the input in order; no batch
 * is empty; at most one batch is buffered at a time; on complete the remainder
 * is flushed before completing, and on a source error the remainder is flushed
 * before the error is forwarded, so no item is lost. On unsubscribe the buffer
 * is discarded (its envelopes stay unacknowledged and are redelivered).
 *
 * `bufferTime`/`bufferCount` cannot express the byte bound, and `bufferTime`
 * measures age from the buffer's opening rather than from its first item and
 * emits empty buffers, hence the hand-written subscriber.
 */
export function batch<T>(options: BatchOptions<T>): OperatorFunction<T, T[]> {
  const { maxRecords, maxBytes, maxWaitMs } = options;
  if (!Number.isInteger(maxRecords) || maxRecords < 1)
    throw new RangeError(`batch: maxRecords must be an integer >= 1, got ${maxRecords}`);
  if (!(maxBytes > 0)) throw new RangeError(`batch: maxBytes must be > 0, got ${maxBytes}`);
  if (!(maxWaitMs >= 0)) throw new RangeError(`batch: maxWaitMs must be >= 0, got ${maxWaitMs}`);
  const scheduler = options.scheduler ?? asyncScheduler;
  const sizeOf = options.sizeOf ?? defaultSizeOf;
  const countOf = options.countOf;

  return (source) =>
    new Observable<T[]>((subscriber) => {
      let buffer: T[] = [];
      let bufferedBytes = 0;
      let bufferedCount = 0;
      let timer: Subscription | null = null;

      const flush = (): void => {
        timer?.unsubscribe();
        timer = null;
        if (buffer.length === 0) return;
        // Detach before emitting: a synchronous downstream may push into us again.
        const full = buffer;
        buffer = [];
        bufferedBytes = 0;
        bufferedCount = 0;
        subscriber.next(full);
      };

      const sourceSubscription = source.subscribe({
        next: (item) => {
          const size = sizeOf(item);
          const count = countOf === undefined ? 1 : countOf(item);
          if (buffer.length > 0 && (bufferedBytes + size > maxBytes || bufferedCount + count > maxRecords)) flush();
          buffer.push(item);
          bufferedBytes += size;
          bufferedCount += count;
          // Only a lone oversized item can exceed maxBytes here; nothing could join it, so it leaves at once.
          if (bufferedCount >= maxRecords || bufferedBytes > maxBytes) {
            flush();
          } else if (buffer.length === 1 && maxWaitMs !== Infinity) {
            timer = scheduler.schedule(flush, maxWaitMs);
          }
        },
        error: (error: unknown) => {
          flush();
          subscriber.error(error);
        },
        complete: () => {
          flush();
          subscriber.complete();
        },
      });

      return () => {
        timer?.unsubscribe();
        sourceSubscription.unsubscribe();
        buffer = [];
      };
    });
}

function defaultSizeOf(item: unknown): number {
  if (typeof item === 'object' && item !== null && 'sizeBytes' in item && typeof item.sizeBytes === 'number')
    return item.sizeBytes;
  return 0;
}
