import { catchError, concatMap, endWith, from, ignoreElements, map, of } from 'rxjs';
import type { MonoTypeOperatorFunction } from 'rxjs';
import type { Envelope } from '../core/envelope.ts';
import { retrying, validateRetryPolicy } from '../core/retry.ts';
import type { RetryOptions } from '../core/retry.ts';
import { retryWithBackoff } from './retryWithBackoff.ts';

/**
 * A batched write that one bad item cannot block: the items of each batch
 * (`itemsOf`) are written with one `write` call, retried with backoff while it
 * fails retriably. When it fails for good, each item is written alone
 * (retryWithBackoff), so only the items that fail alone are failed, each
 * with its own error, and the others go through. Emits each batch, one at a
 * time and in order, once every item is written or failed.
 */
export function isolateFailures<B, T>(
  itemsOf: (batch: B) => readonly Envelope<T>[],
  write: (values: readonly T[], batch: B) => Promise<unknown>,
  options: Omit<RetryOptions, 'onRetry'>,
): MonoTypeOperatorFunction<B> {
  validateRetryPolicy(options);
  return concatMap((batch: B) => {
    const items = itemsOf(batch);
    if (items.length === 0) return of(batch);
    return retrying(
      () =>
        write(
          items.map((item) => item.value),
          batch,
        ),
      options,
    ).pipe(
      map(() => batch),
      catchError((error: unknown) => {
        if (items.length === 1) {
          items[0]!.fail(error);
          return of(batch);
        }
        return from(items).pipe(
          retryWithBackoff((value) => write([value], batch), options),
          ignoreElements(),
          endWith(batch),
        );
      }),
    );
  });
}
