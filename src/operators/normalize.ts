import { map } from 'rxjs';
import type { OperatorFunction } from 'rxjs';
import { withRecords, type Chunk } from '../core/chunk.ts';
import { normalizeMessage } from '../domain/normalizer.ts';

/** A record with its message's template and the template's stable hash (decimal UInt64), as ClickHouse stores them. */
export type Normalized<T> = T & { readonly template: string; readonly error_hash: string };

/**
 * Adds `template` and `error_hash` of each record's message (see src/domain/normalizer.ts) to every record of a
 * chunk. The output chunk settles the input's acknowledgement, so acks still reach the source.
 */
export function normalize<T>(messageOf: (record: T) => string): OperatorFunction<Chunk<T>, Chunk<Normalized<T>>> {
  return map((chunk) => {
    const { records } = chunk;
    const out = new Array<Normalized<T>>(records.length);
    for (let i = 0; i < records.length; i++) {
      const record = records[i]!;
      const { template, errorHash } = normalizeMessage(messageOf(record));
      out[i] = { ...record, template, error_hash: errorHash };
    }
    return withRecords(chunk, out);
  });
}
