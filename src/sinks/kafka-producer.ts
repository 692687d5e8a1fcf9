/**
 * The Kafka producer behind `Topics.producer()` in server mode: acks=all, idempotent (one request in flight), so a
 * send that resolved is durably on the broker and a retried send never duplicates. Failures are classified by the
 * shared kafkajs table; the caller's retry loop (src/core/retry.ts) decides what to retry.
 */
import type { Producer } from 'kafkajs';
import { probe, type HealthCheck } from '../core/component.ts';
import { classify } from '../core/errors.ts';
import { kafkaErrorRules } from '../clients/kafka-errors.ts';
import type { OutgoingMessage, TopicProducer } from '../sources/topics.ts';

export class KafkaProducer implements TopicProducer {
  readonly name = 'kafka-producer';
  private connected: Promise<void> | undefined;

  constructor(private readonly producer: Producer) {}

  async send(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    if (messages.length === 0) return;
    try {
      this.connected ??= this.producer.connect();
      await this.connected;
      await this.producer.send({
        topic,
        acks: -1,
        messages: messages.map((m) => ({
          key: m.key,
          value: m.value,
          ...(m.headers === undefined ? {} : { headers: { ...m.headers } }),
          ...(m.timestamp === undefined ? {} : { timestamp: String(m.timestamp) }),
        })),
      });
    } catch (error) {
      if (this.connected !== undefined && /not connected|disconnected/i.test((error as Error).message))
        this.connected = undefined;
      throw classify(error, kafkaErrorRules, 'sink');
    }
  }

  async health(): Promise<HealthCheck> {
    return probe(async () => {
      this.connected ??= this.producer.connect();
      await this.connected;
    });
  }

  async close(): Promise<void> {
    if (this.connected !== undefined) await this.producer.disconnect();
    this.connected = undefined;
  }
}
