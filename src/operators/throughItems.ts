import { concatMap, endWith, from, ignoreElements } from 'rxjs';
import type { MonoTypeOperatorFunction, OperatorFunction } from 'rxjs';

/**
 * Runs the items of each batch (`itemsOf`) through an item operator made for
 * that batch, and emits the batch once they have all come out: the way to
 * apply a per-record operator (retryWithBackoff) inside a
 * batched graph. One batch at a time, in order.
 */
export function throughItems<B, T>(
  itemsOf: (batch: B) => readonly T[],
  operatorFor: (batch: B) => OperatorFunction<T, unknown>,
): MonoTypeOperatorFunction<B> {
  return concatMap((batch: B) => from(itemsOf(batch)).pipe(operatorFor(batch), ignoreElements(), endWith(batch)));
}
