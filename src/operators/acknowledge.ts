import { tap, type MonoTypeOperatorFunction } from 'rxjs';
import type { Chunk } from '../core/chunk.ts';

/**
 * Ends a graph: acknowledges each chunk that reached it, so its source may
 * commit past the chunk's range. Put it after the last sink the records must
 * reach; `onAck` sees the chunk afterwards (metrics).
 */
export function acknowledge<T>(onAck?: (chunk: Chunk<T>) => void): MonoTypeOperatorFunction<Chunk<T>> {
  return tap((chunk) => {
    chunk.ack();
    onAck?.(chunk);
  });
}
