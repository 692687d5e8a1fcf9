import { Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { KAFKA_BROKERS, uniqueName } from '../support/services.ts';

describe('Kafka broker (scripts/services.sh)', () => {
  const kafka = new Kafka({ clientId: 'logflow-test', brokers: KAFKA_BROKERS, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  const topic = uniqueName('test-roundtrip');
  afterAll(async () => {
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect();
  });

  it('produces 1,000 messages and consumes them back in a consumer group', async () => {
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 1 }], waitForLeaders: true });

    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const sent = Array.from({ length: 1000 }, (_, i) => ({ key: `svc-${i % 7}`, value: JSON.stringify({ i }) }));
    for (let i = 0; i < sent.length; i += 250) await producer.send({ topic, messages: sent.slice(i, i + 250) });
    await producer.disconnect();

    const consumer = kafka.consumer({ groupId: uniqueName('test-group') });
    const received: number[] = [];
    const keysByPartition = new Map<number, Set<string>>();
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const done = new Promise<void>((resolve) => {
      void consumer.run({
        eachMessage: async ({ partition, message }) => {
          received.push((JSON.parse(message.value?.toString() ?? 'null') as { i: number }).i);
          const keys = keysByPartition.get(partition) ?? new Set<string>();
          keys.add(message.key?.toString() ?? '');
          keysByPartition.set(partition, keys);
          if (received.length === sent.length) resolve();
        },
      });
    });
    await done;
    await consumer.disconnect();

    expect(received.slice().sort((a, b) => a - b)).toEqual(sent.map((_, i) => i));
    // Keyed messages land on one partition per key: the property window state relies on.
    const seen = [...keysByPartition.values()].flatMap((s) => [...s]);
    expect(new Set(seen).size).toBe(seen.length);
  });
});
