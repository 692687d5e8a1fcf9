import { map, type OperatorFunction } from 'rxjs';
import { withRecords, type Chunk, type Rejected } from '../core/chunk.ts';
import type { Origin } from '../core/envelope.ts';

/** A raw record as read from a topic: where it came from, its key and its bytes. */
export interface RawRecord extends Origin {
  readonly key: string | null;
  readonly value: Buffer;
}

/**
 * Parses every record of a chunk with `parse`; a record it throws on moves to
 * the chunk's `rejected`, with the error as its reason and its original bytes
 * as the dead letter's payload. The chunk keeps its one acknowledgement, so
 * the rejected record is covered once its letter is written
 * (src/operators/deadLetterRejected.ts).
 */
export function parseRecords<T extends RawRecord, U>(parse: (record: T) => U): OperatorFunction<Chunk<T>, Chunk<U>> {
  return map((chunk) => {
    const parsed: U[] = [];
    let rejected: Rejected[] | undefined;
    for (const record of chunk.records) {
      try {
        parsed.push(parse(record));
      } catch (error) {
        (rejected ??= [...chunk.rejected]).push({
          payload: record.value,
          error,
          stage: 'parse',
          origin: { topic: record.topic, partition: record.partition, offset: record.offset },
          key: record.key,
        });
      }
    }
    return withRecords(chunk, parsed, rejected ?? chunk.rejected);
  });
}
