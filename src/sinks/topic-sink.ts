/**
 * Publishes what a chunk's records have to say on a topic (some records may
 * have nothing), then passes the chunk on: a later sink or the ack runs only
 * once the messages are durably accepted.
 */
import { concatMap, from, type MonoTypeOperatorFunction } from 'rxjs';
import type { Chunk } from '../core/chunk.ts';
import { retry, RETRY_UNTIL_STOPPED } from '../core/retry.ts';
import type { OutgoingMessage, TopicProducer } from '../sources/topics.ts';

export interface TopicSinkOptions<T> {
  readonly producer: TopicProducer;
  readonly topic: string;
  /** The record's message, or undefined when it has none for this topic. */
  readonly messageOf: (record: T) => OutgoingMessage | undefined;
  readonly onSent?: (count: number) => void;
}

export function topicSink<T>(options: TopicSinkOptions<T>): MonoTypeOperatorFunction<Chunk<T>> {
  const { producer, topic, messageOf, onSent } = options;
  return concatMap((chunk) => {
    const messages: OutgoingMessage[] = [];
    for (const record of chunk.records) {
      const message = messageOf(record);
      if (message !== undefined) messages.push(message);
    }
    if (messages.length === 0) return [chunk];
    return from(
      retry(() => producer.send(topic, messages), RETRY_UNTIL_STOPPED).then(() => {
        onSent?.(messages.length);
        return chunk;
      }),
    );
  });
}
