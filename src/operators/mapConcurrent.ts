import { defer, EMPTY, mergeMap, of } from 'rxjs';
import type { Observable, OperatorFunction } from 'rxjs';
import { withValue } from '../core/envelope.ts';
import type { Envelope } from '../core/envelope.ts';

export interface MapConcurrentOptions {
  /** At most this many calls of `fn` run at once (and, when ordered, at most this many results wait to be emitted). */
  readonly concurrency: number;
  /** Emit in input order instead of completion order. Default false. */
  readonly ordered?: boolean;
}

type Outcome<U> = { readonly ok: true; readonly value: U } | { readonly ok: false; readonly error: unknown };

/**
 * Async map over envelopes with a concurrency bound that keeps ack semantics:
 * the output envelope carries the new value but settles the original record,
 * so whichever sink writes it acknowledges the source offset.
 *
 * A rejected (or throwing) `fn` fails that envelope and emits nothing for it;
 * the stream goes on, because one bad record must not stop a partition.
 *
 * Ordered mode holds a slot until the item's turn to be emitted comes (the
 * Akka `mapAsync` rule), so a slow head item bounds both the calls in flight
 * and the finished results waiting behind it to `concurrency`.
 *
 * A source error is forwarded at once; envelopes still in flight are then
 * neither acked nor failed and are redelivered (at-least-once).
 */
export function mapConcurrent<T, U>(
  fn: (value: T, envelope: Envelope<T>) => Promise<U>,
  options: MapConcurrentOptions,
): OperatorFunction<Envelope<T>, Envelope<U>> {
  const { concurrency, ordered = false } = options;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`mapConcurrent: concurrency must be an integer >= 1, got ${concurrency}`);
  }

  return (source) =>
    defer(() => {
      // Resolved when the previously admitted item has been emitted (or dropped); only used when ordered.
      let previousTurn: Promise<void> = Promise.resolve();

      return source.pipe(
        mergeMap((envelope): Observable<Envelope<U>> => {
          const myTurn = ordered ? previousTurn : Promise.resolve();
          let endTurn: () => void = noop;
          if (ordered) previousTurn = new Promise<void>((resolve) => (endTurn = resolve));

          return defer(async () => {
            const outcome = await attempt(fn, envelope);
            await myTurn;
            return outcome;
          }).pipe(
            mergeMap((outcome) => {
              endTurn();
              if (outcome.ok) return of(withValue(envelope, outcome.value));
              envelope.fail(outcome.error);
              return EMPTY;
            }),
          );
        }, concurrency),
      );
    });
}

async function attempt<T, U>(
  fn: (value: T, envelope: Envelope<T>) => Promise<U>,
  envelope: Envelope<T>,
): Promise<Outcome<U>> {
  try {
    return { ok: true, value: await fn(envelope.value, envelope) };
  } catch (error) {
    return { ok: false, error };
  }
}

function noop(): void {}
