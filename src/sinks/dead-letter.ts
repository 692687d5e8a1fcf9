/**
 * Dead letters: one record per failure, carrying the original payload (UTF-8
 * when it is valid UTF-8, base64 otherwise), why it failed (code, message,
 * stage), which pipeline, where it came from, and when. A record is acked
 * upstream only once its dead letter is durably written.
 */
import { isUtf8 } from 'node:buffer';
import type { Origin } from '../core/envelope.ts';
import { errorCode, LogflowError, type Stage } from '../core/errors.ts';
import type { TopicProducer } from '../sources/topics.ts';
import { abbreviate, truncateText } from '../core/text.ts';

export interface DeadLetter {
  readonly payload: string;
  readonly payload_encoding: 'utf8' | 'base64' | 'json';
  readonly error_code: string;
  readonly error_message: string;
  readonly stage: string;
  readonly pipeline: string;
  readonly source_topic: string;
  readonly source_partition: number;
  readonly source_offset: number;
  readonly key: string | null;
  readonly failed_at: string;
}

export interface Failure {
  /** The original bytes where available, else the value that failed (serialized as JSON). */
  readonly payload: Buffer | string | unknown;
  readonly error: unknown;
  readonly stage: Stage;
  readonly origin: Origin;
  readonly key: string | null;
}

/** Dead letters must stay small enough for any broker: huge payloads are cut, and say so. */
const MAX_PAYLOAD_BYTES = 512 * 1024;
const MAX_MESSAGE_CHARS = 2_000;

export function toDeadLetter(failure: Failure, pipeline: string, now: Date = new Date()): DeadLetter {
  let payload: string;
  let encoding: DeadLetter['payload_encoding'];
  if (Buffer.isBuffer(failure.payload)) {
    const bytes = failure.payload.subarray(0, MAX_PAYLOAD_BYTES);
    if (isUtf8(bytes)) {
      payload = bytes.toString('utf8');
      encoding = 'utf8';
    } else {
      payload = bytes.toString('base64');
      encoding = 'base64';
    }
  } else if (typeof failure.payload === 'string') {
    payload = truncateText(failure.payload, MAX_PAYLOAD_BYTES);
    encoding = 'utf8';
  } else {
    payload = truncateText(safeJson(failure.payload), MAX_PAYLOAD_BYTES);
    encoding = 'json';
  }
  const message = failure.error instanceof Error ? failure.error.message : String(failure.error);
  return {
    payload,
    payload_encoding: encoding,
    error_code: errorCode(failure.error),
    error_message: abbreviate(message, MAX_MESSAGE_CHARS),
    stage:
      failure.error instanceof LogflowError && failure.error.stage !== undefined ? failure.error.stage : failure.stage,
    pipeline,
    source_topic: failure.origin.topic,
    source_partition: failure.origin.partition,
    source_offset: failure.origin.offset,
    key: failure.key,
    failed_at: now.toISOString(),
  };
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ?? 'null';
  } catch {
    return String(value);
  }
}

export class DeadLetterSink {
  readonly name = 'dead-letter';

  constructor(
    private readonly producer: TopicProducer,
    readonly topic: string,
    private readonly pipeline: string,
    private readonly onDeadLetter?: (letter: DeadLetter) => void,
  ) {}

  /** Resolves once every dead letter is durably on the topic. */
  async send(failures: readonly Failure[]): Promise<void> {
    if (failures.length === 0) return;
    const letters = failures.map((f) => toDeadLetter(f, this.pipeline));
    await this.producer.send(
      this.topic,
      letters.map((letter) => ({
        key: letter.key,
        value: JSON.stringify(letter),
        headers: { 'logflow-error-code': letter.error_code },
      })),
    );
    for (const letter of letters) this.onDeadLetter?.(letter);
  }
}
