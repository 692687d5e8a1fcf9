import fc from 'fast-check';
import { of, throwError, VirtualTimeScheduler } from 'rxjs';
import type { Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { ErrorCodes, InputError, LogflowError } from '../../src/core/errors.ts';
import { backoffDelay, retry, RetryExhaustedError, retrying } from '../../src/core/retry.ts';
import type { RetryInfo, RetryOptions } from '../../src/core/retry.ts';

const transient = (n = 0): LogflowError =>
  new LogflowError(ErrorCodes.SINK_UNAVAILABLE, `down #${n}`, { retriable: true, stage: 'sink' });

function newTestScheduler(): TestScheduler {
  return new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
}

/** Runs a promise whose waits are scheduled on a virtual clock, advancing the clock whenever the promise is idle. */
async function settleInVirtualTime<T>(promise: Promise<T>, scheduler: VirtualTimeScheduler): Promise<T> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  while (!settled) {
    await new Promise((resolve) => setImmediate(resolve));
    scheduler.flush();
  }
  return promise;
}

describe('backoffDelay', () => {
  it('doubles from baseDelayMs and stops at maxDelayMs without jitter', () => {
    const policy = { maxAttempts: 10, baseDelayMs: 100, maxDelayMs: 1000, jitter: 'none' } as const;
    expect([1, 2, 3, 4, 5, 6].map((attempt) => backoffDelay(attempt, policy))).toEqual([
      100, 200, 400, 800, 1000, 1000,
    ]);
  });

  it('draws full jitter uniformly below the capped exponential delay', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 0, max: 5000 }),
        fc.integer({ min: 0, max: 60_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, baseDelayMs, maxDelayMs, draw) => {
          const capped = backoffDelay(attempt, { maxAttempts: 50, baseDelayMs, maxDelayMs, jitter: 'none' });
          const jittered = backoffDelay(
            attempt,
            { maxAttempts: 50, baseDelayMs, maxDelayMs, jitter: 'full' },
            () => draw,
          );
          expect(capped).toBeLessThanOrEqual(maxDelayMs);
          expect(jittered).toBeGreaterThanOrEqual(0);
          expect(jittered).toBeLessThanOrEqual(capped);
          if (capped > 0) expect(jittered).toBeLessThan(capped);
        },
      ),
    );
    expect(backoffDelay(3, { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 1000, jitter: 'full' }, () => 0.25)).toBe(
      100,
    );
  });
});

describe('retry: attempts (properties)', () => {
  const policy = (maxAttempts: number, scheduler: VirtualTimeScheduler): RetryOptions => ({
    maxAttempts,
    baseDelayMs: 7,
    maxDelayMs: 50,
    jitter: 'none',
    scheduler,
  });

  it('makes min(maxAttempts, first success) attempts for retriable errors and waits the backoff between them', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 0, max: 10 }),
        async (maxAttempts, failuresBeforeSuccess) => {
          const scheduler = new VirtualTimeScheduler();
          const attemptTimes: number[] = [];
          const outcome = retry(
            async (attempt) => {
              attemptTimes.push(scheduler.now());
              if (attempt <= failuresBeforeSuccess) throw transient(attempt);
              return `ok after ${attempt}`;
            },
            policy(maxAttempts, scheduler),
          );
          const result = await settleInVirtualTime(outcome, scheduler).then(
            (value) => ({ value }),
            (error: unknown) => ({ error }),
          );

          const expectedAttempts = Math.min(maxAttempts, failuresBeforeSuccess + 1);
          expect(attemptTimes).toHaveLength(expectedAttempts);
          // Brute force: the n-th wait is min(50, 7 * 2^(n-1)).
          let clock = 0;
          const expectedTimes = [0];
          for (let n = 1; n < expectedAttempts; n++) {
            clock += Math.min(50, 7 * 2 ** (n - 1));
            expectedTimes.push(clock);
          }
          expect(attemptTimes).toEqual(expectedTimes);

          if (failuresBeforeSuccess < maxAttempts) {
            expect(result).toEqual({ value: `ok after ${failuresBeforeSuccess + 1}` });
          } else {
            expect('error' in result).toBe(true);
            const error = (result as { error: unknown }).error;
            expect(error).toBeInstanceOf(RetryExhaustedError);
            expect(error).toMatchObject({
              code: ErrorCodes.SINK_UNAVAILABLE,
              retriable: false,
              stage: 'sink',
              attempts: maxAttempts,
            });
            expect((error as Error).cause).toEqual(transient(maxAttempts));
          }
        },
      ),
    );
  });

  it('makes exactly one attempt for a non-retriable error and rethrows it unchanged', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 8 }),
        fc.constantFrom<() => unknown>(
          () => new InputError('bad row'),
          () => new TypeError('bug'),
          () => new LogflowError(ErrorCodes.SINK_REJECTED, 'rejected', { retriable: false }),
          () => 'a string',
        ),
        async (maxAttempts, makeError) => {
          const scheduler = new VirtualTimeScheduler();
          const thrown = makeError();
          let attempts = 0;
          const outcome = retry(
            () => {
              attempts += 1;
              return Promise.reject(thrown);
            },
            policy(maxAttempts, scheduler),
          );
          await expect(settleInVirtualTime(outcome, scheduler)).rejects.toBe(thrown);
          expect(attempts).toBe(1);
        },
      ),
    );
  });
});

describe('retry: marbles (virtual time)', () => {
  it('waits base, 2*base, 4*base between attempts without jitter', () => {
    const scheduler = newTestScheduler();
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const failing = cold<string>('#', undefined, transient());
      const succeeding = cold('--a|', { a: 'done' });
      const result = retrying((attempt) => (attempt < 4 ? failing : succeeding), {
        maxAttempts: 5,
        baseDelayMs: 10,
        maxDelayMs: 1000,
        jitter: 'none',
        scheduler,
      });
      expectObservable(result).toBe('73ms (a|)', { a: 'done' });
      expectSubscriptions(failing.subscriptions).toBe(['(^!)', '10ms (^!)', '30ms (^!)']);
      expectSubscriptions(succeeding.subscriptions).toBe(['70ms ^--!']);
    });
  });

  it('caps each delay at maxDelayMs', () => {
    const scheduler = newTestScheduler();
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const failing = cold<string>('#', undefined, transient());
      const result = retrying(() => failing, {
        maxAttempts: 4,
        baseDelayMs: 10,
        maxDelayMs: 15,
        jitter: 'none',
        scheduler,
      });
      expectObservable(result).toBe('40ms #', undefined, new RetryExhaustedError(transient(), 4));
      expectSubscriptions(failing.subscriptions).toBe(['(^!)', '10ms (^!)', '25ms (^!)', '40ms (^!)']);
    });
  });

  it('uses the injected random source for full jitter and reports each retry', () => {
    const scheduler = newTestScheduler();
    const retries: RetryInfo[] = [];
    scheduler.run(({ cold, expectObservable }) => {
      const failing = cold<string>('#', undefined, transient());
      const result = retrying((attempt) => (attempt < 3 ? failing : of('ok')), {
        maxAttempts: 3,
        baseDelayMs: 10,
        maxDelayMs: 1000,
        jitter: 'full',
        random: () => 0.5,
        scheduler,
        onRetry: (info) => retries.push(info),
      });
      expectObservable(result).toBe('15ms (a|)', { a: 'ok' });
    });
    expect(retries.map(({ attempt, delayMs }) => ({ attempt, delayMs }))).toEqual([
      { attempt: 1, delayMs: 5 },
      { attempt: 2, delayMs: 10 },
    ]);
  });

  it('emits only the last value of the successful attempt, nothing of a failed one', () => {
    const scheduler = newTestScheduler();
    scheduler.run(({ cold, expectObservable }) => {
      const attempts: Observable<string>[] = [
        cold('a#', { a: 'partial' }, transient()),
        cold('bc|', { b: 'first', c: 'last' }),
      ];
      const result = retrying((attempt) => attempts[attempt - 1] ?? throwError(() => new Error('unexpected attempt')), {
        maxAttempts: 3,
        baseDelayMs: 5,
        maxDelayMs: 5,
        jitter: 'none',
        scheduler,
      });
      expectObservable(result).toBe('8ms (c|)', { c: 'last' });
    });
  });

  it('ends a pending wait at once with SHUTDOWN when the signal aborts, without another attempt', () => {
    const scheduler = newTestScheduler();
    const controller = new AbortController();
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const failing = cold<string>('#', undefined, transient());
      const result = retrying(() => failing, {
        maxAttempts: 5,
        baseDelayMs: 10,
        maxDelayMs: 100,
        jitter: 'none',
        scheduler,
        signal: controller.signal,
      });
      scheduler.schedule(() => controller.abort(), 25);
      expectObservable(result).toBe(
        '25ms #',
        undefined,
        new LogflowError(ErrorCodes.SHUTDOWN, 'retry aborted after 2 attempt(s)', {
          retriable: false,
          details: { attempts: 2 },
          cause: transient(),
        }),
      );
      expectSubscriptions(failing.subscriptions).toBe(['(^!)', '10ms (^!)']);
    });
  });
});

describe('retry: abort and validation', () => {
  it('starts no attempt when the signal is already aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    let attempts = 0;
    const outcome = retry(
      async () => {
        attempts += 1;
        return 1;
      },
      { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 1, jitter: 'none', signal: controller.signal },
    );
    await expect(outcome).rejects.toMatchObject({ code: ErrorCodes.SHUTDOWN, retriable: false });
    expect(attempts).toBe(0);
  });

  it('lets an attempt already running finish and returns its result after an abort', async () => {
    const controller = new AbortController();
    let finish: (value: string) => void = () => {};
    const outcome = retry(() => new Promise<string>((resolve) => (finish = resolve)), {
      maxAttempts: 3,
      baseDelayMs: 1,
      maxDelayMs: 1,
      jitter: 'none',
      signal: controller.signal,
    });
    controller.abort();
    finish('written');
    await expect(outcome).resolves.toBe('written');
  });

  it('rejects invalid policies', () => {
    const valid: RetryOptions = { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 10, jitter: 'none' };
    expect(() => retrying(() => of(1), { ...valid, maxAttempts: 0 })).toThrow(RangeError);
    expect(() => retrying(() => of(1), { ...valid, baseDelayMs: -1 })).toThrow(RangeError);
    expect(() => retrying(() => of(1), { ...valid, maxDelayMs: Number.NaN })).toThrow(RangeError);
  });
});
