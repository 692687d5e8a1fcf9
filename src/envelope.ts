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

/** Ack and fail settle an envelope once; later calls are ignored so a double ack can never move offsets twice. */
export function createEnvelope<T>(init: EnvelopeInit<T>, handlers: AckHandlers): Envelope<T> {
  let settled = false;
  return {
    value: init.value,
    key: init.key ?? null,
    eventTime: init.eventTime,
    origin: init.origin,
    sizeBytes: init.sizeBytes ?? 0,
    ack() {
      if (settled) return;
      settled = true;
      handlers.onAck();
    },
    fail(error: unknown) {
      if (settled) return;
      settled = true;
      handlers.onFail(error);
    },
  };
}

/** A copy carrying a new value but settling the same upstream record. */
export function withValue<T, U>(envelope: Envelope<T>, value: U): Envelope<U> {
  return {
    value,
    key: envelope.key,
    eventTime: envelope.eventTime,
    origin: envelope.origin,
    sizeBytes: envelope.sizeBytes,
    ack: () => envelope.ack(),
    fail: (error: unknown) => envelope.fail(error),
  };
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
        { value: envelope.value, key: envelope.key, eventTime: envelope.eventTime, origin: envelope.origin, sizeBytes: envelope.sizeBytes },
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
