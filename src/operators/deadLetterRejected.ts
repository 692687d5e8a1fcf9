import { concatMap, from, type MonoTypeOperatorFunction } from 'rxjs';
import { withRecords, type Chunk, type Rejected } from '../core/chunk.ts';

/**
 * Writes the dead letters of a chunk's rejected records (`send` resolves once
 * they are durable) and passes the chunk on without them: its acknowledgement
 * now covers them. Chunks keep their order, which sinks cutting by offset rely
 * on; a chunk with nothing rejected passes at once.
 */
export function deadLetterRejected<T>(
  send: (rejected: readonly Rejected[]) => Promise<void>,
): MonoTypeOperatorFunction<Chunk<T>> {
  return concatMap((chunk) =>
    chunk.rejected.length === 0
      ? [chunk]
      : from(send(chunk.rejected).then(() => withRecords(chunk, chunk.records, []))),
  );
}
