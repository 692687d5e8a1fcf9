/**
 * The engine's one retry loop: exponential backoff with optional full jitter,
 * retrying only errors that declare themselves retriable (`isRetriable`).
 * Waits run on an RxJS scheduler so tests drive them in virtual time.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import {
  asyncScheduler,
  defer,
  finalize,
  lastValueFrom,
  last,
  merge,
  Observable,
  retry as resubscribeOnError,
  take,
  throwError,
  timer,
} from 'rxjs';
import type { ObservableInput, SchedulerLike } from 'rxjs';
import { errorCode, ErrorCodes, isRetriable, LogflowError } from './errors.ts';
import { abbreviate } from './text.ts';

export interface RetryPolicy {
  /** Total attempts including the first; 1 means no retry. */
  readonly maxAttempts: number;
  /** Delay before the second attempt; doubles before each further one. */
  readonly baseDelayMs: number;
  /** Upper bound of any single delay (applied before jitter). */
  readonly maxDelayMs: number;
  /** 'full': uniform in [0, exponential delay) (AWS "full jitter"); 'none': the exponential delay itself. */
  readonly jitter: 'full' | 'none';
}

export interface RetryInfo {
  /** The attempt that just failed, 1-based. */
  readonly attempt: number;
  readonly delayMs: number;
  readonly error: unknown;
}

export interface RetryOptions extends RetryPolicy {
  readonly scheduler?: SchedulerLike;
  /**
   * Once aborted, no further attempt starts and a pending wait ends with a SHUTDOWN error; an attempt already running
   * is awaited.
   */
  readonly signal?: AbortSignal;
  /** Called before each wait; for logs and metrics. */
  readonly onRetry?: (info: RetryInfo) => void;
  /** Source of uniform numbers in [0, 1) for jitter; injectable for deterministic tests. */
  readonly random?: () => number;
  /**
   * Told when this loop starts failing and when it stops; defaults to the reporter of the pipeline it runs in
   * (`withRetryReporter`).
   */
  readonly reporter?: RetryReporter;
  /** The dependency this loop waits for, as health names it; default: derived from the error's stage and code. */
  readonly component?: string;
}

/**
 * Where retry loops say that a dependency is failing and that it came back
 * (the runner passes its Health): each loop is one holder, so an episode lasts
 * until the last loop waiting for that dependency got through.
 */
export interface RetryReporter {
  failing(component: string, reason: string, holder: object): void;
  recovered(component: string, holder: object): void;
  /**
   * Told once per retry (before its wait), with the stage that failed; the runner counts these in `retries_total`
   * (src/core/metrics.ts), so every loop of a pipeline is counted without each caller passing its metrics.
   */
  retried?(stage: string): void;
}

const ambientReporter = new AsyncLocalStorage<RetryReporter>();

/**
 * Runs `fn` so that every retry loop started from it, synchronously or from
 * the callbacks and promises it creates, reports to `reporter`. The runner
 * builds and subscribes each pipeline inside one, so pipelines need not pass
 * their health to each of their retry calls.
 */
export function withRetryReporter<T>(reporter: RetryReporter, fn: () => T): T {
  return ambientReporter.run(reporter, fn);
}

/** The stage a failure happened in, as the error says; `pipeline` when it does not. */
export function retryStage(error: unknown): string {
  return error instanceof LogflowError && error.stage !== undefined ? error.stage : 'pipeline';
}

/** The health component a failing loop marks degraded: the stage and kind of failure. */
export function retryComponent(error: unknown): string {
  return `${retryStage(error)}:${errorCode(error)}`;
}

function retryReason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return abbreviate(message, 300);
}

/**
 * Thrown when every attempt failed with a retriable error. It keeps the last
 * error's code (so dead-letter reasons and metrics stay meaningful) and its
 * cause, but is itself not retriable: an outer retry loop must not multiply
 * the attempts of an inner one.
 */
export class RetryExhaustedError extends LogflowError {
  readonly attempts: number;
  constructor(lastError: unknown, attempts: number) {
    const stage = lastError instanceof LogflowError ? lastError.stage : undefined;
    super(
      errorCode(lastError),
      `gave up after ${attempts} attempts: ${lastError instanceof Error ? lastError.message : String(lastError)}`,
      {
        retriable: false,
        cause: lastError,
        details: { attempts },
        ...(stage === undefined ? {} : { stage }),
      },
    );
    this.name = 'RetryExhaustedError';
    this.attempts = attempts;
  }
}

/**
 * For writes a pipeline cannot skip (its records stay unacknowledged until
 * they succeed): retry retriable failures for as long as the process runs,
 * backing off to 10 s; the source pauses meanwhile because nothing is acked.
 */
export const RETRY_UNTIL_STOPPED: RetryPolicy = Object.freeze({
  maxAttempts: Number.MAX_SAFE_INTEGER,
  baseDelayMs: 200,
  maxDelayMs: 10_000,
  jitter: 'full',
});

/** Delay to wait after the `attempt`-th failure (1-based). */
export function backoffDelay(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const exponential = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return policy.jitter === 'full' ? Math.floor(random() * exponential) : exponential;
}

export function validateRetryPolicy(policy: RetryPolicy): void {
  if (!Number.isInteger(policy.maxAttempts) || policy.maxAttempts < 1) {
    throw new RangeError(`retry: maxAttempts must be an integer >= 1, got ${policy.maxAttempts}`);
  }
  if (!(policy.baseDelayMs >= 0)) throw new RangeError(`retry: baseDelayMs must be >= 0, got ${policy.baseDelayMs}`);
  if (!(policy.maxDelayMs >= 0)) throw new RangeError(`retry: maxDelayMs must be >= 0, got ${policy.maxDelayMs}`);
  if (policy.jitter !== 'full' && policy.jitter !== 'none')
    throw new RangeError(`retry: jitter must be 'full' or 'none', got ${String(policy.jitter)}`);
}

/**
 * Observable form of the retry loop: subscribes to `fn(attempt)` until an
 * attempt succeeds, and emits the LAST value of the successful attempt (an
 * attempt counts as successful only once it completes, so a failing attempt
 * never leaks partial output). Errors:
 * - not retriable: rethrown as is, at once;
 * - retriable but `maxAttempts` reached: `RetryExhaustedError` (cause = last error);
 * - signal aborted: `LogflowError` SHUTDOWN (cause = last error, if any).
 */
export function retrying<T>(fn: (attempt: number) => ObservableInput<T>, options: RetryOptions): Observable<T> {
  validateRetryPolicy(options);
  const scheduler = options.scheduler ?? asyncScheduler;
  const random = options.random ?? Math.random;
  const { signal, onRetry } = options;

  return defer(() => {
    let attempt = 0;
    const reporter = options.reporter ?? ambientReporter.getStore();
    const holder = {};
    // Every component this loop has seen fail stays held until the loop ends: one outage whose errors alternate
    // between kinds (refused, then timed out under load, then refused) is one episode per kind, not a new "is
    // failing" line each time the kind changes back.
    const failingAs = new Set<string>();
    const report = (error: unknown) => {
      if (reporter === undefined) return;
      const component = options.component ?? retryComponent(error);
      failingAs.add(component);
      reporter.failing(component, retryReason(error), holder);
    };
    return defer(() => {
      if (signal?.aborted) return throwError(() => abortedError(attempt, undefined));
      attempt += 1;
      return fn(attempt);
    }).pipe(
      last(),
      resubscribeOnError({
        delay: (error: unknown) => {
          if (!isRetriable(error)) return throwError(() => error);
          if (attempt >= options.maxAttempts) return throwError(() => new RetryExhaustedError(error, attempt));
          if (signal?.aborted) return throwError(() => abortedError(attempt, error));
          const delayMs = backoffDelay(attempt, options, random);
          report(error);
          reporter?.retried?.(retryStage(error));
          onRetry?.({ attempt, delayMs, error });
          const wait = timer(delayMs, scheduler);
          return signal === undefined
            ? wait
            : merge(
                wait,
                abortAsError(signal, () => abortedError(attempt, error)),
              ).pipe(take(1));
        },
      }),
      // Succeeded, gave up or was unsubscribed: either way this loop no longer waits for the dependency.
      finalize(() => {
        for (const component of failingAs) reporter?.recovered(component, holder);
      }),
    );
  });
}

/** Promise form of `retrying` with the same policy and errors; `fn` usually returns a Promise. */
export function retry<T>(fn: (attempt: number) => ObservableInput<T>, options: RetryOptions): Promise<T> {
  return lastValueFrom(retrying(fn, options));
}

function abortedError(attempts: number, lastError: unknown): LogflowError {
  return new LogflowError(ErrorCodes.SHUTDOWN, `retry aborted after ${attempts} attempt(s)`, {
    retriable: false,
    details: { attempts },
    ...(lastError === undefined ? {} : { cause: lastError }),
  });
}

function abortAsError(signal: AbortSignal, makeError: () => unknown): Observable<never> {
  return new Observable<never>((subscriber) => {
    const onAbort = (): void => subscriber.error(makeError());
    if (signal.aborted) {
      onAbort();
      return undefined;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    return () => signal.removeEventListener('abort', onAbort);
  });
}
