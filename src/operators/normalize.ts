import { map } from 'rxjs';
import type { OperatorFunction } from 'rxjs';
import { withValue } from '../core/envelope.ts';
import type { Envelope } from '../core/envelope.ts';
import { normalizeMessage } from '../domain/normalizer.ts';

/** A record with its message's template and the template's stable hash (decimal UInt64), as ClickHouse stores them. */
export type Normalized<T> = T & { readonly template: string; readonly error_hash: string };

/**
 * Adds `template` and `error_hash` to each record (see src/domain/normalizer.ts).
 * The output envelope settles the input's, so acks still reach the source.
 */
export function normalize<T extends { readonly message: string }>(): OperatorFunction<
  Envelope<T>,
  Envelope<Normalized<T>>
> {
  return map((envelope) => {
    const { template, errorHash } = normalizeMessage(envelope.value.message);
    return withValue(envelope, { ...envelope.value, template, error_hash: errorHash });
  });
}
