import { concatMap } from 'rxjs';
import type { MonoTypeOperatorFunction } from 'rxjs';
import type { Envelope } from '../core/envelope.ts';
import { retry, validateRetryPolicy } from '../core/retry.ts';
import type { RetryOptions } from '../core/retry.ts';

export interface SettledBatch {
  /** Every record the batch covers, written or to be dead-lettered. */
  readonly records: readonly Envelope<unknown>[];
  readonly failures: readonly unknown[];
}

/**
 * The end of a batched graph: sends the batch's failures to the dead-letter
 * output (`send`, retried with backoff while it fails retriably), then acks
 * every record of the batch, so a record is committed only once it is
 * written or its letter is. A send that fails for good errors the stream:
 * nothing past it is acked, and it is read again after a restart.
 */
export function deadLetterAndAck<B extends SettledBatch>(
  send: (failures: B['failures']) => Promise<void>,
  options: Omit<RetryOptions, 'onRetry'>,
): MonoTypeOperatorFunction<B> {
  validateRetryPolicy(options);
  return concatMap(async (batch: B) => {
    if (batch.failures.length > 0) await retry(() => send(batch.failures), options);
    for (const record of batch.records) record.ack();
    return batch;
  });
}
