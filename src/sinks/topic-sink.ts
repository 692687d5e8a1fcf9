/**
 * Publishes what chunks' records have to say on a topic (some records may
 * have nothing), then passes the chunks on: a later sink or the ack runs only
 * once the messages are durably accepted. Chunks are gathered (by the shared
 * batch operator) while a send is under way, so the sends per second stay few
 * however small the chunks are; each send is one produce request of acks=all.
 */
import { asyncScheduler, concatMap, from, type MonoTypeOperatorFunction, type SchedulerLike } from 'rxjs';
import type { Chunk } from '../core/chunk.ts';
import { retry, RETRY_UNTIL_STOPPED } from '../core/retry.ts';
import { batch } from '../operators/batch.ts';
import type { OutgoingMessage, TopicProducer } from '../sources/topics.ts';

export interface TopicSinkOptions<T> {
  readonly producer: TopicProducer;
  readonly topic: string;
  /** The record's message, or undefined when it has none for this topic. */
  readonly messageOf: (record: T) => OutgoingMessage | undefined;
  readonly onSent?: (count: number) => void;
  /** Records gathered into one send at most (a larger chunk is sent alone). */
  readonly maxRecords?: number;
  /** How long the first chunk of a send waits for others (scheduler time). */
  readonly maxWaitMs?: number;
  readonly scheduler?: SchedulerLike;
}

export function topicSink<T>(options: TopicSinkOptions<T>): MonoTypeOperatorFunction<Chunk<T>> {
  const { producer, topic, messageOf, onSent } = options;
  return (source) =>
    source.pipe(
      batch<Chunk<T>>({
        maxRecords: options.maxRecords ?? 20_000,
        maxBytes: 16 * 1024 * 1024,
        maxWaitMs: options.maxWaitMs ?? 20,
        scheduler: options.scheduler ?? asyncScheduler,
        countOf: (chunk) => chunk.records.length,
      }),
      concatMap((chunks) => {
        const messages: OutgoingMessage[] = [];
        for (const chunk of chunks) {
          for (const record of chunk.records) {
            const message = messageOf(record);
            if (message !== undefined) messages.push(message);
          }
        }
        if (messages.length === 0) return chunks;
        return from(
          retry(() => producer.send(topic, messages), RETRY_UNTIL_STOPPED).then(() => {
            onSent?.(messages.length);
            return chunks;
          }),
        ).pipe(concatMap((sent) => sent));
      }),
    );
}
