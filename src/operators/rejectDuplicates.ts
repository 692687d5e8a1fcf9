import { defer, map, type MonoTypeOperatorFunction } from 'rxjs';
import { withRecords, type Chunk, type Rejected } from '../core/chunk.ts';
import type { Origin } from '../core/envelope.ts';
import { InputError } from '../core/errors.ts';
import { RecentIds } from '../domain/recent-ids.ts';

export interface RejectDuplicatesOptions<T> {
  /** The id that must be unique among recent records. */
  readonly idOf: (record: T) => string;
  readonly originOf: (record: T) => Origin;
  /** What the dead letter carries for a duplicate. */
  readonly payloadOf: (record: T) => unknown;
  readonly keyOf?: (record: T) => string | null;
  /** Ids remembered (src/domain/recent-ids.ts); the oldest is forgotten first. */
  readonly maxIds?: number;
}

/**
 * Moves a record whose id another recent record already carried to the
 * chunk's `rejected`, naming where the id was first seen. The same record
 * read again (a replay after a crash or a rebalance: same topic, partition
 * and offset) is not a duplicate and passes. State is per subscription.
 */
export function rejectDuplicates<T>(options: RejectDuplicatesOptions<T>): MonoTypeOperatorFunction<Chunk<T>> {
  const { idOf, originOf, payloadOf, keyOf } = options;
  return (source) =>
    defer(() => {
      const recent = new RecentIds(options.maxIds);
      return source.pipe(
        map((chunk) => {
          let kept: T[] | undefined;
          let rejected: Rejected[] | undefined;
          const { records } = chunk;
          for (let i = 0; i < records.length; i++) {
            const record = records[i]!;
            const id = idOf(record);
            const origin = originOf(record);
            const firstSeen = recent.firstSeenElsewhere(id, origin);
            if (firstSeen === undefined) {
              kept?.push(record);
              continue;
            }
            kept ??= records.slice(0, i);
            (rejected ??= [...chunk.rejected]).push({
              payload: payloadOf(record),
              error: new InputError(`duplicate log_id ${id}: already ingested from ${firstSeen}`),
              stage: 'parse',
              origin,
              key: keyOf === undefined ? null : keyOf(record),
            });
          }
          return kept === undefined ? chunk : withRecords(chunk, kept, rejected);
        }),
      );
    });
}
