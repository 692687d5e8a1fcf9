/**
 * The record that travels through every pipeline. Nothing upstream is
 * acknowledged until every sink the record must reach has durably written it
 * (or the dead-letter sink has), so a source can commit offsets safely.
 */

export interface Origin {
  readonly topic: string;
  readonly partition: number;
  /** Kafka offsets are int64; below 2^53 they are exact as numbers, which covers any real topic. */
  readonly offset: number;
}

export interface Envelope<T> {
  readonly value: T;
  readonly key: string | null;
  /** Event time, epoch milliseconds. */
  readonly eventTime: number;
  readonly origin: Origin;
  /** Serialized size, used by byte-bounded buffers. */
  readonly sizeBytes: number;
  ack(): void;
  fail(error: unknown): void;
}

export interface AckHandlers {
  readonly onAck: () => void;
  readonly onFail: (error: unknown) => void;
}

export interface EnvelopeInit<T> {
  readonly value: T;
  readonly key?: string | null;
  readonly eventTime: number;
  readonly origin: Origin;
  readonly sizeBytes?: number;
}

/**
 * Ack and fail settle once, whoever calls them and how often: a double ack can
 * never move offsets twice. A subclass says what settling does. Envelopes and
 * chunks (src/core/chunk.ts) both settle this way.
 */
export abstract class SettlesOnce {
  #settled = false;

  ack(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.settleAck();
  }

  fail(error: unknown): void {
    if (this.#settled) return;
    this.#settled = true;
    this.settleFail(error);
  }

  /** Runs on the first ack or fail only. */
  protected abstract settleAck(): void;
  protected abstract settleFail(error: unknown): void;
}

/**
 * Envelopes are made per record on every hot path, so they are class
 * instances: ack and fail live on the prototype instead of being two fresh
 * closures per record, and the private fields stay out of sight of spreads,
 * logs and equality checks. Sources subclass it to keep their per-record cost
 * at one object.
 */
export abstract class SettlingEnvelope<T> extends SettlesOnce implements Envelope<T> {
  constructor(
    readonly value: T,
    readonly key: string | null,
    readonly eventTime: number,
    readonly origin: Origin,
    readonly sizeBytes: number,
  ) {
    super();
  }
}

class SettleOnce<T> extends SettlingEnvelope<T> {
  readonly #handlers: AckHandlers;

  constructor(init: EnvelopeInit<T>, handlers: AckHandlers) {
    super(init.value, init.key ?? null, init.eventTime, init.origin, init.sizeBytes ?? 0);
    this.#handlers = handlers;
  }

  protected settleAck(): void {
    this.#handlers.onAck();
  }

  protected settleFail(error: unknown): void {
    this.#handlers.onFail(error);
  }
}

class Derived<T, U> implements Envelope<U> {
  readonly value: U;
  readonly key: string | null;
  readonly eventTime: number;
  readonly origin: Origin;
  readonly sizeBytes: number;
  readonly #parent: Envelope<T>;

  constructor(parent: Envelope<T>, value: U) {
    this.value = value;
    this.key = parent.key;
    this.eventTime = parent.eventTime;
    this.origin = parent.origin;
    this.sizeBytes = parent.sizeBytes;
    this.#parent = parent;
  }

  ack(): void {
    this.#parent.ack();
  }

  fail(error: unknown): void {
    this.#parent.fail(error);
  }
}

/** Ack and fail settle an envelope once; later calls are ignored so a double ack can never move offsets twice. */
export function createEnvelope<T>(init: EnvelopeInit<T>, handlers: AckHandlers): Envelope<T> {
  return new SettleOnce(init, handlers);
}

/** A copy carrying a new value but settling the same upstream record. */
export function withValue<T, U>(envelope: Envelope<T>, value: U): Envelope<U> {
  return new Derived(envelope, value);
}

/**
 * Splits one envelope into `ways` children that must all ack before the
 * parent acks; the first failure fails the parent. Used when one record fans
 * out to several sinks (ClickHouse and the vectorization topic, say).
 */
export function fanOut<T>(envelope: Envelope<T>, ways: number): Envelope<T>[] {
  if (!Number.isInteger(ways) || ways < 1) throw new RangeError(`fanOut needs ways >= 1, got ${ways}`);
  let pending = ways;
  let failed = false;
  const children: Envelope<T>[] = [];
  for (let i = 0; i < ways; i++) {
    children.push(
      createEnvelope(
        {
          value: envelope.value,
          key: envelope.key,
          eventTime: envelope.eventTime,
          origin: envelope.origin,
          sizeBytes: envelope.sizeBytes,
        },
        {
          onAck: () => {
            pending -= 1;
            if (pending === 0 && !failed) envelope.ack();
          },
          onFail: (error) => {
            if (failed) return;
            failed = true;
            envelope.fail(error);
          },
        },
      ),
    );
  }
  return children;
}
