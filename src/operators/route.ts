import { Observable, Subject } from 'rxjs';
import type { Subscription } from 'rxjs';
import { ErrorCodes, LogflowError } from '../core/errors.ts';

export type Routes<N extends string, T> = { readonly [K in N]: Observable<T> };

/**
 * Splits `source` into named outputs sharing ONE subscription to it:
 * `const { valid, invalid } = route(source$, (e) => (ok(e) ? 'valid' : 'invalid'), ['valid', 'invalid'])`.
 *
 * Subscription: the source is subscribed only once EVERY output has a
 * subscriber, so nothing is lost however the outputs are subscribed (same
 * tick or not), and a synchronous source is safe. Until then nothing flows.
 * When the last subscriber of all outputs leaves, the source is unsubscribed;
 * subscribing every output again starts a fresh subscription to the source.
 * Source completion and errors reach every output.
 *
 * Nothing is dropped silently: an item classified to a name not in `names`,
 * an item routed to an output whose subscribers have all left while others
 * remain, or a throwing `classify`, errors every output with a LogflowError
 * (INTERNAL) and unsubscribes the source; such a record would otherwise never
 * be acknowledged and would hold its partition's offset back.
 */
export function route<T, const N extends string>(
  source: Observable<T>,
  classify: (item: T) => NoInfer<N>,
  names: readonly N[],
): Routes<N, T> {
  if (names.length === 0) throw new RangeError('route: at least one route name is required');
  if (new Set(names).size !== names.length)
    throw new RangeError(`route: duplicate route names in ${JSON.stringify(names)}`);

  const subscriberCounts = new Map<string, number>(names.map((name) => [name, 0]));

  // One generation per subscription to the source; a new one starts once every subscriber has left.
  interface Generation {
    readonly outputs: ReadonlyMap<string, Subject<T>>;
    connected: boolean;
    finished: boolean;
    subscription: Subscription | null;
  }
  const newGeneration = (): Generation => ({
    outputs: new Map(names.map((name) => [name, new Subject<T>()])),
    connected: false,
    finished: false,
    subscription: null,
  });
  let generation = newGeneration();

  const connect = (gen: Generation): void => {
    gen.connected = true;
    const fail = (error: unknown): void => {
      gen.finished = true;
      for (const output of gen.outputs.values()) output.error(error);
    };
    const subscription = source.subscribe({
      next: (item) => {
        if (gen.finished) return;
        let name: string;
        try {
          name = classify(item);
        } catch (error) {
          fail(new LogflowError(ErrorCodes.INTERNAL, 'route: classify threw', { stage: 'operator', cause: error }));
          return;
        }
        const output = gen.outputs.get(name);
        if (output === undefined) {
          fail(
            new LogflowError(
              ErrorCodes.INTERNAL,
              `route: unknown route ${JSON.stringify(name)}; known: ${names.join(', ')}`,
              { stage: 'operator' },
            ),
          );
        } else if (!output.observed) {
          fail(
            new LogflowError(ErrorCodes.INTERNAL, `route: output ${JSON.stringify(name)} has no subscriber left`, {
              stage: 'operator',
            }),
          );
        } else {
          output.next(item);
        }
      },
      error: (error: unknown) => {
        if (!gen.finished) fail(error);
      },
      complete: () => {
        if (gen.finished) return;
        gen.finished = true;
        for (const output of gen.outputs.values()) output.complete();
      },
    });
    // A synchronous source may have finished, and its subscribers left, before subscribe() returned.
    if (generation === gen) gen.subscription = subscription;
    else subscription.unsubscribe();
  };

  const output = (name: N): Observable<T> =>
    new Observable<T>((subscriber) => {
      const gen = generation;
      const subscription = gen.outputs.get(name)?.subscribe(subscriber);
      subscriberCounts.set(name, (subscriberCounts.get(name) ?? 0) + 1);
      if (!gen.connected && [...subscriberCounts.values()].every((count) => count > 0)) connect(gen);
      return () => {
        subscription?.unsubscribe();
        subscriberCounts.set(name, (subscriberCounts.get(name) ?? 0) - 1);
        if (generation === gen && [...subscriberCounts.values()].every((count) => count === 0)) {
          generation = newGeneration();
          gen.finished = true;
          gen.subscription?.unsubscribe();
        }
      };
    });

  return Object.fromEntries(names.map((name) => [name, output(name)])) as Routes<N, T>;
}
