import { map, of, tap, throwError } from 'rxjs';
import type { Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { createEnvelope } from '../../src/core/envelope.ts';
import type { Envelope } from '../../src/core/envelope.ts';
import { ErrorCodes, InputError, LogflowError } from '../../src/core/errors.ts';
import { retryWithBackoff } from '../../src/operators/retryWithBackoff.ts';
import { RetryExhaustedError } from '../../src/core/retry.ts';

const transient = (): LogflowError =>
  new LogflowError(ErrorCodes.SINK_UNAVAILABLE, 'clickhouse down', { retriable: true, stage: 'sink' });

function newTestScheduler(): TestScheduler {
  return new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
}

interface Settlement {
  readonly offset: number;
  readonly outcome: 'ack' | 'fail';
  readonly error?: unknown;
  readonly at: number;
}

function makeEnvelopes(
  values: readonly string[],
  scheduler: TestScheduler,
  settlements: Settlement[],
): Record<string, Envelope<string>> {
  return Object.fromEntries(
    values.map((value, offset) => [
      value,
      createEnvelope(
        { value, eventTime: 0, origin: { topic: 'logs', partition: 0, offset } },
        {
          onAck: () => settlements.push({ offset, outcome: 'ack', at: scheduler.now() }),
          onFail: (error) => settlements.push({ offset, outcome: 'fail', error, at: scheduler.now() }),
        },
      ),
    ]),
  );
}

describe('retryWithBackoff (marbles)', () => {
  it('retries each item with exponential backoff, acks successes through the output, fails the rest and goes on', () => {
    const scheduler = newTestScheduler();
    const settlements: Settlement[] = [];
    const failures: Record<string, number> = { a: 2, b: 0, c: Infinity, d: 0 };
    scheduler.run(({ cold, expectObservable }) => {
      const envelopes = makeEnvelopes(['a', 'b', 'c', 'd'], scheduler, settlements);
      const source = cold<Envelope<string>>('a-b-c-d|', envelopes);
      const write = (value: string, _envelope: Envelope<string>, attempt: number): Observable<string> => {
        if (value === 'd') return throwError(() => new InputError('malformed'));
        return attempt <= (failures[value] ?? 0) ? throwError(transient) : of(value.toUpperCase());
      };
      const output = source.pipe(
        retryWithBackoff(write, { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 100, jitter: 'none', scheduler }),
        tap((envelope) => envelope.ack()),
        map((envelope) => envelope.value),
      );
      // a: attempts at 0, 10, 30 (ok). Concurrency 1, so b waits and runs at 30, c fails at 30, 40, 60, d at 60.
      expectObservable(output).toBe('30ms (AB) 26ms |', { A: 'A', B: 'B' });
    });

    expect(settlements.map(({ offset, outcome, at }) => ({ offset, outcome, at }))).toEqual([
      { offset: 0, outcome: 'ack', at: 30 },
      { offset: 1, outcome: 'ack', at: 30 },
      { offset: 2, outcome: 'fail', at: 60 },
      { offset: 3, outcome: 'fail', at: 60 },
    ]);
    const exhausted = settlements[2]?.error;
    expect(exhausted).toBeInstanceOf(RetryExhaustedError);
    expect(exhausted).toMatchObject({ attempts: 3, code: ErrorCodes.SINK_UNAVAILABLE, retriable: false });
    expect(settlements[3]?.error).toEqual(new InputError('malformed'));
  });

  it('runs items side by side with concurrency > 1 and reports retries with their envelope', () => {
    const scheduler = newTestScheduler();
    const settlements: Settlement[] = [];
    const retried: { offset: number; attempt: number; delayMs: number }[] = [];
    scheduler.run(({ cold, expectObservable }) => {
      const envelopes = makeEnvelopes(['a', 'b'], scheduler, settlements);
      const source = cold<Envelope<string>>('ab|', envelopes);
      const write = (value: string, _envelope: Envelope<string>, attempt: number): Observable<string> =>
        value === 'a' && attempt === 1 ? throwError(transient) : cold('---x|', { x: value });
      const output = source.pipe(
        retryWithBackoff(write, {
          maxAttempts: 2,
          baseDelayMs: 5,
          maxDelayMs: 5,
          jitter: 'none',
          scheduler,
          concurrency: 2,
          onRetry: (info, envelope) =>
            retried.push({ offset: envelope.origin.offset, attempt: info.attempt, delayMs: info.delayMs }),
        }),
        map((envelope) => envelope.value),
      );
      // b is written 1..5 while a waits 0..5 and is written 5..9.
      expectObservable(output).toBe('-----b---(a|)', { a: 'a', b: 'b' });
    });
    expect(retried).toEqual([{ offset: 0, attempt: 1, delayMs: 5 }]);
    expect(settlements).toEqual([]);
  });

  it('rejects an invalid policy or concurrency when the operator is built', () => {
    const write = (): Observable<string> => of('x');
    expect(() => retryWithBackoff(write, { maxAttempts: 0, baseDelayMs: 1, maxDelayMs: 1, jitter: 'none' })).toThrow(
      RangeError,
    );
    expect(() =>
      retryWithBackoff(write, { maxAttempts: 1, baseDelayMs: 1, maxDelayMs: 1, jitter: 'none', concurrency: 0 }),
    ).toThrow(RangeError);
  });
});
