/**
 * The sender of alert webhooks (README.md, "Notifications"): a loop beside
 * the detect graph, never in it, that claims due rows of the
 * alert_notifications outbox (src/stores/postgres/alert-notifications.ts),
 * POSTs each to its receiver and marks it sent, rescheduled or failed. The
 * detector only writes rows in its checkpoint transaction, so a receiver
 * that is slow, down or refusing never holds detection back; the sender's own
 * work is bounded (a batch per claim, `concurrency` requests in flight, a
 * timeout per request).
 *
 * Delivery is at least once to the network: a row is marked sent only after
 * the receiver answered 2xx, so a crash between the answer and the mark sends
 * that row once more (with the same Idempotency-Key, which a receiver can
 * drop). A row marked sent is never posted again, by this process or another.
 */
import pLimit from 'p-limit';
import type { Component, HealthCheck } from '../core/component.ts';
import { classify, ErrorCodes, isRetriable, LogflowError, type ClassificationRule } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { EngineMetrics } from '../core/metrics.ts';
import { backoffDelay, retry, RETRY_UNTIL_STOPPED, validateRetryPolicy, type RetryPolicy } from '../core/retry.ts';
import type { AlertNotificationRepository, PendingNotification } from '../stores/postgres/alert-notifications.ts';

export interface AlertNotifierOptions {
  readonly logger: Logger;
  readonly metrics?: EngineMetrics;
  readonly pipeline?: string;
  /** Requests in flight at once. */
  readonly concurrency?: number;
  /** Rows claimed per round. */
  readonly batchSize?: number;
  /** Wait between rounds when nothing was due (a `wake()` cuts it short). */
  readonly pollMs?: number;
  /** Bound of one POST, connection and answer included. */
  readonly timeoutMs?: number;
  /** Backoff between attempts of one row; after `maxAttempts` it is marked failed. */
  readonly retry?: Partial<RetryPolicy>;
  /** For tests and proxies; the global fetch by default. */
  readonly fetch?: typeof fetch;
}

export const DEFAULT_NOTIFIER_RETRY: RetryPolicy = Object.freeze({
  maxAttempts: 12,
  baseDelayMs: 2_000,
  maxDelayMs: 300_000,
  jitter: 'full',
});

/** Status of a receiver's answer, carried on our error so the rule table can read it. */
class ReceiverAnswer extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly retryAfterMs: number | undefined,
  ) {
    super(message);
    this.name = 'ReceiverAnswer';
  }
}

const statusOf = (e: Error): number | undefined => (e instanceof ReceiverAnswer ? e.status : undefined);

/**
 * A failed delivery, as data: what cannot have reached the receiver or what it asked to have again (connection
 * errors, timeouts, 429, 5xx) is retried; any other answer (4xx, a redirect) is the receiver's final word.
 */
export const webhookErrorRules: readonly ClassificationRule[] = [
  { match: (e) => e.name === 'TimeoutError', code: ErrorCodes.TIMEOUT, retriable: true },
  { match: (e) => statusOf(e) === 429, code: ErrorCodes.UPSTREAM_UNAVAILABLE, retriable: true },
  { match: (e) => (statusOf(e) ?? 0) >= 500, code: ErrorCodes.UPSTREAM_UNAVAILABLE, retriable: true },
  { match: (e) => statusOf(e) !== undefined, code: ErrorCodes.SINK_REJECTED, retriable: false },
  // fetch rejects with a TypeError ("fetch failed") for refused, reset and unresolvable connections.
  { match: (e) => e instanceof TypeError, code: ErrorCodes.UPSTREAM_UNAVAILABLE, retriable: true },
];

/** Webhook URLs carry their secret in the path (Slack's do): logs and stored errors name only the origin. */
export function receiverName(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(invalid URL)';
  }
}

function retryAfterMs(header: string | null): number | undefined {
  if (header === null) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, 3_600_000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.min(Math.max(0, at - Date.now()), 3_600_000);
}

function chain(error: unknown): string {
  const messages: string[] = [];
  for (let e = error, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) messages.push(e.message);
  return messages.join(': ');
}

export class AlertNotifier implements Component {
  readonly name = 'alert-notifier';
  readonly #repository: AlertNotificationRepository;
  readonly #logger: Logger;
  readonly #options: AlertNotifierOptions;
  readonly #policy: RetryPolicy;
  readonly #limit: ReturnType<typeof pLimit>;
  readonly #batchSize: number;
  readonly #pollMs: number;
  readonly #timeoutMs: number;
  readonly #leaseMs: number;
  readonly #fetch: typeof fetch;
  readonly #abort = new AbortController();
  /** Receivers (origins) whose last attempt failed, so an outage is logged when it starts and when it ends. */
  readonly #failing = new Map<string, string>();
  #storeError: string | undefined;
  #closed = false;
  #loop: Promise<void> | undefined;
  #wakeUp: (() => void) | undefined;
  #woken = false;

  constructor(repository: AlertNotificationRepository, options: AlertNotifierOptions) {
    this.#repository = repository;
    this.#logger = options.logger;
    this.#options = options;
    this.#policy = { ...DEFAULT_NOTIFIER_RETRY, ...options.retry };
    validateRetryPolicy(this.#policy);
    const concurrency = options.concurrency ?? 4;
    this.#batchSize = options.batchSize ?? 50;
    this.#pollMs = options.pollMs ?? 1_000;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    for (const [name, value] of [
      ['concurrency', concurrency],
      ['batchSize', this.#batchSize],
      ['pollMs', this.#pollMs],
      ['timeoutMs', this.#timeoutMs],
    ] as const)
      if (!Number.isSafeInteger(value) || value < 1)
        throw new RangeError(`alert notifier: ${name} must be an integer >= 1, got ${value}`);
    this.#limit = pLimit(concurrency);
    // A claimed row waits at most for the requests queued before it; the lease outlasts that, so no other sender
    // takes a row this one is still working on.
    this.#leaseMs = Math.ceil(this.#batchSize / concurrency) * this.#timeoutMs + 30_000;
    this.#fetch = options.fetch ?? fetch;
  }

  /** Starts the loop; `close()` stops it. */
  start(): this {
    this.#loop ??= this.#run();
    return this;
  }

  /** New rows were queued: start the next round now instead of after the poll interval. */
  wake(): void {
    this.#woken = true;
    this.#wakeUp?.();
  }

  /**
   * One round: claims due rows and delivers them. Returns how many rows it claimed. Exposed for callers that drive
   * the sender themselves (tests, a one-shot flush).
   */
  async runOnce(): Promise<number> {
    return (await this.#round()).claimed;
  }

  async #round(): Promise<{ claimed: number; delivered: number }> {
    const rows = await this.#repository.claim(this.#batchSize, this.#leaseMs);
    const outcomes = await Promise.all(rows.map((row) => this.#limit(() => this.#deliver(row))));
    return { claimed: rows.length, delivered: outcomes.filter(Boolean).length };
  }

  async health(): Promise<HealthCheck> {
    if (this.#storeError !== undefined) return { ok: false, detail: `outbox unreachable: ${this.#storeError}` };
    if (this.#failing.size > 0)
      return {
        ok: false,
        detail: [...this.#failing].map(([receiver, reason]) => `${receiver} failing: ${reason}`).join('; '),
      };
    return { ok: true };
  }

  /** Stops claiming, lets the requests in flight finish (each bounded by the timeout), then returns. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#wakeUp?.();
    // Marking a delivered row retries through a database outage, but not past the shutdown: the row is then sent
    // again by the next sender, which the Idempotency-Key lets the receiver recognise.
    const giveUp = setTimeout(() => this.#abort.abort(), this.#timeoutMs);
    try {
      await this.#loop;
    } finally {
      clearTimeout(giveUp);
    }
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      let again = false;
      try {
        const { claimed, delivered } = await this.#round();
        // A full batch may have left rows due; a delivery may have unblocked the next row of its alert.
        again = claimed === this.#batchSize || delivered > 0;
        if (this.#storeError !== undefined) this.#logger.info('alert notifier: outbox reachable again');
        this.#storeError = undefined;
      } catch (error) {
        if (this.#storeError === undefined)
          this.#logger.warn({ err: error }, 'alert notifier: cannot read the outbox; trying again each poll');
        this.#storeError = chain(error);
      }
      if (!again && !this.#closed) await this.#sleep();
    }
  }

  #sleep(): Promise<void> {
    if (this.#woken) {
      this.#woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#wakeUp = undefined;
        this.#woken = false;
        resolve();
      };
      const timer = setTimeout(done, this.#pollMs);
      this.#wakeUp = done;
    });
  }

  /** True when the receiver took it. */
  async #deliver(row: PendingNotification): Promise<boolean> {
    const receiver = receiverName(row.url);
    const context = { alertId: row.alertId, event: row.event, deliveryId: row.deliveryId, receiver };
    let failure: LogflowError | undefined;
    try {
      await this.#post(row);
    } catch (error) {
      failure = classify(error, webhookErrorRules, 'sink', { code: ErrorCodes.UPSTREAM_UNAVAILABLE, retriable: false });
      failure = new LogflowError(failure.code, `POST to ${receiver} failed: ${chain(error)}`, {
        retriable: failure.retriable,
        stage: 'sink',
        cause: error,
      });
    }
    if (failure === undefined) {
      await retry(() => this.#repository.markSent(row.id), { ...RETRY_UNTIL_STOPPED, signal: this.#abort.signal });
      if (this.#failing.delete(receiver)) this.#logger.info(context, 'alert notifier: receiver answering again');
      this.#logger.info({ ...context, attempts: row.attempts }, 'alert notification delivered');
      this.#options.metrics?.recordsOut.inc({ pipeline: this.#options.pipeline ?? 'detect', stage: 'notify' });
      return true;
    }
    if (isRetriable(failure) && row.attempts < this.#policy.maxAttempts) {
      const cause = failure.cause;
      const asked = cause instanceof ReceiverAnswer ? cause.retryAfterMs : undefined;
      const delayMs = Math.max(backoffDelay(row.attempts, this.#policy), asked ?? 0);
      if (!this.#failing.has(receiver))
        this.#logger.warn({ ...context, err: failure }, 'alert notifier: receiver failing; retrying with backoff');
      this.#failing.set(receiver, failure.message);
      await this.#repository.reschedule(row.id, delayMs, failure.message);
      return false;
    }
    // Refused (a 4xx) or out of attempts: final, and said so once per notification.
    const why = isRetriable(failure) ? `gave up after ${row.attempts} attempts` : 'refused by the receiver';
    this.#logger.error({ ...context, attempts: row.attempts, err: failure }, `alert notification ${why}; not retried`);
    await this.#repository.markFailed(row.id, `${why}: ${failure.message}`);
    return false;
  }

  async #post(row: PendingNotification): Promise<void> {
    const response = await this.#fetch(row.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'user-agent': 'logflow-alert-notifier/1',
        // One key per transition, the same on every attempt: a receiver that sees it twice drops the second.
        'idempotency-key': row.deliveryId,
        'x-logflow-delivery': row.deliveryId,
        'x-logflow-event': row.event,
      },
      body: JSON.stringify(row.payload),
      redirect: 'manual',
      signal: AbortSignal.timeout(this.#timeoutMs),
    });
    // Read the answer whole so the connection can be reused; keep a little of it for the error.
    const text = await response.text().catch(() => '');
    if (response.status >= 200 && response.status < 300) return;
    throw new ReceiverAnswer(
      response.status,
      `HTTP ${response.status}${text === '' ? '' : `: ${text.slice(0, 200)}`}`,
      retryAfterMs(response.headers.get('retry-after')),
    );
  }
}
