import fc from 'fast-check';
import { defer, finalize, from, merge, Subject, take } from 'rxjs';
import type { Observable } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { ErrorCodes, LogflowError } from '../../src/core/errors.ts';
import { route } from '../../src/operators/route.ts';

/** A source that counts how often it is subscribed and unsubscribed. */
function counted<T>(source: Observable<T>): {
  source: Observable<T>;
  subscriptions: () => number;
  teardowns: () => number;
} {
  let subscriptions = 0;
  let teardowns = 0;
  return {
    source: defer(() => {
      subscriptions += 1;
      return source.pipe(finalize(() => (teardowns += 1)));
    }),
    subscriptions: () => subscriptions,
    teardowns: () => teardowns,
  };
}

interface Outcome<T> {
  readonly values: T[];
  error: unknown;
  completed: boolean;
}

function record<T>(observable: Observable<T>): Outcome<T> {
  const outcome: Outcome<T> = { values: [], error: undefined, completed: false };
  observable.subscribe({
    next: (value) => outcome.values.push(value),
    error: (error: unknown) => (outcome.error = error),
    complete: () => (outcome.completed = true),
  });
  return outcome;
}

describe('route (property)', () => {
  it('delivers every item of a synchronous source to exactly its output, in order, over one subscription', () => {
    const names = ['info', 'warn', 'error'] as const;
    fc.assert(
      fc.property(
        fc.array(fc.record({ id: fc.nat(), level: fc.constantFrom(...names) }), { maxLength: 50 }),
        fc.constantFrom(...names),
        (items, subscribedFirst) => {
          const { source, subscriptions } = counted(from(items));
          const outputs = route(source, (item) => item.level, names);
          const order = [subscribedFirst, ...names.filter((name) => name !== subscribedFirst)];
          const outcomes = Object.fromEntries(order.map((name) => [name, record(outputs[name])]));

          expect(subscriptions()).toBe(1);
          for (const name of names) {
            expect(outcomes[name]?.values).toEqual(items.filter((item) => item.level === name));
            expect(outcomes[name]?.completed).toBe(true);
          }
        },
      ),
    );
  });
});

describe('route', () => {
  it('waits for every output before subscribing the source, whatever the tick', async () => {
    const { source, subscriptions } = counted(from([1, 2, 3, 4]));
    const { odd, even } = route(source, (n) => (n % 2 === 0 ? 'even' : 'odd'), ['odd', 'even']);
    const odds = record(odd);
    await new Promise((resolve) => setImmediate(resolve));
    expect(subscriptions()).toBe(0);
    expect(odds.values).toEqual([]);
    const evens = record(even);
    expect(subscriptions()).toBe(1);
    expect(odds.values).toEqual([1, 3]);
    expect(evens.values).toEqual([2, 4]);
  });

  it('works with outputs merged into one graph', () => {
    const { valid, invalid } = route(from(['ok', 'bad', 'ok']), (s) => (s === 'ok' ? 'valid' : 'invalid'), [
      'valid',
      'invalid',
    ]);
    const seen = record(merge(valid, invalid));
    expect(seen.values.sort()).toEqual(['bad', 'ok', 'ok']);
    expect(seen.completed).toBe(true);
  });

  it('errors every output on an unknown route name and unsubscribes the source', () => {
    const input = new Subject<string>();
    const { source, teardowns } = counted(input);
    // Casting stands in for an untyped classifier (e.g. a name read from data).
    const outputs = route(source, (s) => s as 'a' | 'b', ['a', 'b']);
    const a = record(outputs.a);
    const b = record(outputs.b);
    input.next('a');
    input.next('c');
    input.next('b');
    expect(a.values).toEqual(['a']);
    expect(b.values).toEqual([]);
    for (const outcome of [a, b]) {
      expect(outcome.error).toBeInstanceOf(LogflowError);
      expect(outcome.error).toMatchObject({ code: ErrorCodes.INTERNAL, retriable: false });
      expect((outcome.error as Error).message).toContain('unknown route "c"');
    }
    expect(teardowns()).toBe(1);
    expect(input.observed).toBe(false);
  });

  it('errors every output when classify throws', () => {
    const outputs = route(from([1]), (): 'x' => {
      throw new TypeError('bug');
    }, ['x']);
    const x = record(outputs.x);
    expect(x.error).toMatchObject({ code: ErrorCodes.INTERNAL });
    expect((x.error as Error).cause).toEqual(new TypeError('bug'));
  });

  it('forwards a source error to every output', () => {
    const input = new Subject<number>();
    const { low, high } = route(input, (n) => (n < 10 ? 'low' : 'high'), ['low', 'high']);
    const lows = record(low);
    const highs = record(high);
    const failure = new Error('broker gone');
    input.error(failure);
    expect(lows.error).toBe(failure);
    expect(highs.error).toBe(failure);
  });

  it('errors instead of dropping an item routed to an output whose subscribers all left', () => {
    const input = new Subject<number>();
    const { low, high } = route(input, (n) => (n < 10 ? 'low' : 'high'), ['low', 'high']);
    const lows: number[] = [];
    low.pipe(take(1)).subscribe((n) => lows.push(n));
    const highs = record(high);
    input.next(1);
    input.next(50);
    input.next(2);
    expect(lows).toEqual([1]);
    expect(highs.values).toEqual([50]);
    expect((highs.error as Error).message).toContain('output "low" has no subscriber left');
    expect(input.observed).toBe(false);
  });

  it('unsubscribes the source when every subscriber left, and resubscribes when all outputs are subscribed again', () => {
    const input = new Subject<number>();
    const { source, subscriptions, teardowns } = counted(input);
    const { low, high } = route(source, (n) => (n < 10 ? 'low' : 'high'), ['low', 'high']);
    const first = [low.subscribe(), high.subscribe()];
    expect(subscriptions()).toBe(1);
    first[0]?.unsubscribe();
    expect(teardowns()).toBe(0);
    first[1]?.unsubscribe();
    expect(teardowns()).toBe(1);

    const lows = record(low);
    const highs = record(high);
    expect(subscriptions()).toBe(2);
    input.next(3);
    input.next(30);
    expect(lows.values).toEqual([3]);
    expect(highs.values).toEqual([30]);
  });

  it('rejects empty or duplicate route names', () => {
    expect(() => route(from([1]), () => 'a' as never, [])).toThrow(RangeError);
    expect(() => route(from([1]), () => 'a', ['a', 'a'])).toThrow(RangeError);
  });
});
