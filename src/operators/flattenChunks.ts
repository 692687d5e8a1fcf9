import { asyncScheduler, Observable, type OperatorFunction, type SchedulerLike } from 'rxjs';
import type { Chunk } from '../core/chunk.ts';

export interface FlattenChunksOptions<T, U> {
  /** Records below this offset are passed by: a state restored from a checkpoint already holds them. */
  readonly fromOffset?: number;
  /** What a record becomes downstream, or undefined to pass it by (it still counts as read); `now` is the chunk's. */
  readonly valueOf: (record: T, now: number) => U | undefined;
  /**
   * Called after each chunk with at least one record at or above `fromOffset`: the offset after its last record,
   * and how many of its records were read.
   */
  readonly onRead?: (nextOffset: number, records: number) => void;
  /** The clock, read once per chunk. */
  readonly scheduler?: SchedulerLike;
}

/**
 * Emits the values of each chunk's records one by one, synchronously while
 * the chunk is delivered: the step from a chunked source into a per-event
 * operator (windowByEventTime). The chunks' acknowledgements stay with
 * whoever holds the chunks.
 */
export function flattenChunks<T extends { readonly offset: number }, U>(
  options: FlattenChunksOptions<T, U>,
): OperatorFunction<Chunk<T>, U> {
  const { valueOf, onRead } = options;
  const scheduler = options.scheduler ?? asyncScheduler;
  const fromOffset = options.fromOffset ?? 0;
  return (source) =>
    new Observable<U>((subscriber) =>
      source.subscribe({
        next: (chunk) => {
          try {
            const { records } = chunk;
            const now = scheduler.now();
            let read = 0;
            let nextOffset = 0;
            for (let i = 0; i < records.length; i++) {
              const record = records[i]!;
              if (record.offset < fromOffset) continue;
              read += 1;
              nextOffset = record.offset + 1;
              const value = valueOf(record, now);
              if (value !== undefined) subscriber.next(value);
            }
            if (read > 0) onRead?.(nextOffset, read);
          } catch (error) {
            subscriber.error(error);
          }
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => subscriber.complete(),
      }),
    );
}
