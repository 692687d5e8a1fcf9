import { catchError, EMPTY, map, mergeMap } from 'rxjs';
import type { ObservableInput, OperatorFunction } from 'rxjs';
import { withValue } from '../core/envelope.ts';
import type { Envelope } from '../core/envelope.ts';
import { retrying, validateRetryPolicy } from '../core/retry.ts';
import type { RetryInfo, RetryOptions } from '../core/retry.ts';

export interface RetryWithBackoffOptions<T> extends Omit<RetryOptions, 'onRetry'> {
  /** Items processed at once; default 1, which also keeps input order. */
  readonly concurrency?: number;
  readonly onRetry?: (info: RetryInfo, envelope: Envelope<T>) => void;
}

/**
 * A sink stage with the engine's retry policy (src/core/retry.ts) applied per item:
 * `fn(value, envelope, attempt)` is retried while it fails with retriable
 * errors. On success the output envelope carries the result and settles the
 * original record; when the error is not retriable, attempts are exhausted
 * (`RetryExhaustedError`) or the signal aborts, the envelope is failed with
 * that error (so it goes to the dead-letter path) and the stream goes on.
 *
 * It retries the per-item call rather than resubscribing the source, because
 * resubscribing a Kafka source would replay records, not retry a write.
 */
export function retryWithBackoff<T, U>(
  fn: (value: T, envelope: Envelope<T>, attempt: number) => ObservableInput<U>,
  options: RetryWithBackoffOptions<T>,
): OperatorFunction<Envelope<T>, Envelope<U>> {
  const { concurrency = 1, onRetry, ...retryOptions } = options;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`retryWithBackoff: concurrency must be an integer >= 1, got ${concurrency}`);
  }
  validateRetryPolicy(retryOptions);

  return mergeMap(
    (envelope: Envelope<T>) =>
      retrying((attempt) => fn(envelope.value, envelope, attempt), {
        ...retryOptions,
        ...(onRetry === undefined ? {} : { onRetry: (info: RetryInfo) => onRetry(info, envelope) }),
      }).pipe(
        map((result) => withValue(envelope, result)),
        catchError((error: unknown) => {
          envelope.fail(error);
          return EMPTY;
        }),
      ),
    concurrency,
  );
}
