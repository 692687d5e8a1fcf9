/**
 * Load for the Kafka benchmarks: records from the project's generator
 * (src/sources/generator.ts), trimmed to about 350 bytes by default (the
 * generator's full records carry every optional field and average ~600
 * bytes; `--record full` keeps them), produced with plain kafkajs so the
 * producer is not what is measured; and the baseline consumer.
 */
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, type Producer } from 'kafkajs';
import { lastValueFrom, concatMap, ignoreElements } from 'rxjs';
import { generateLogs } from '../../src/sources/generator.ts';
import { DEFAULT_FETCH_MAX_BYTES, DEFAULT_FETCH_MAX_BYTES_PER_PARTITION } from '../../src/sources/kafka-topics.ts';
import { BENCH_KAFKA_BROKERS } from './services.ts';

export type RecordShape = 'compact' | 'full';

/** Fields many applications' logs do not carry; dropping them brings the generator's records to ~350 bytes. */
const COMPACT_DROPS = ['trace_id', 'span_id', 'session_id', 'request_id', 'attributes', 'version', 'region'] as const;

export function shapeRecord(value: string, shape: RecordShape): string {
  if (shape === 'full') return value;
  const json = JSON.parse(value) as Record<string, unknown>;
  for (const field of COMPACT_DROPS) delete json[field];
  return JSON.stringify(json);
}

/**
 * A record whose log_id and timestamp are filled in when it is sent: the
 * timestamp is the produce time, which is how end-to-end latency is read back
 * from ClickHouse (`timestamp` is stored as DateTime64(3)).
 */
export interface RecordTemplate {
  readonly key: string;
  /** Everything after the timestamp, starting with the comma. */
  readonly rest: string;
}

export function toTemplate(value: string, key: string): RecordTemplate {
  const { log_id: _id, timestamp: _ts, ...rest } = JSON.parse(value) as Record<string, unknown>;
  const body = JSON.stringify(rest);
  return { key, rest: body === '{}' ? '}' : `,${body.slice(1)}` };
}

export function fillTemplate(template: RecordTemplate, producedAt: number): string {
  return `{"log_id":"${randomUUID()}","timestamp":"${new Date(producedAt).toISOString()}"${template.rest}`;
}

export function kafkaClient(clientId: string): Kafka {
  process.env['KAFKAJS_NO_PARTITIONER_WARNING'] ??= '1';
  return new Kafka({
    clientId,
    brokers: BENCH_KAFKA_BROKERS,
    logLevel: logLevel.ERROR,
    retry: { retries: 8, initialRetryTime: 300 },
  });
}

export async function createTopic(kafka: Kafka, topic: string, partitions: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [{ topic, numPartitions: partitions, replicationFactor: -1 }],
      waitForLeaders: true,
    });
  } finally {
    await admin.disconnect();
  }
}

export async function deleteTopics(kafka: Kafka, topics: readonly string[]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const doomed = topics.filter((t) => existing.has(t));
    if (doomed.length > 0) await admin.deleteTopics({ topics: doomed, timeout: 30_000 });
  } catch {
    // Leftover topics only cost disk; the benchmark's figures are already taken.
  } finally {
    await admin.disconnect();
  }
}

/** Sample records from the generator (realistic mix of services, levels, messages, stack traces). */
export async function sampleRecords(
  count: number,
  seed: number,
  shape: RecordShape,
): Promise<Array<{ key: string; value: string }>> {
  const out: Array<{ key: string; value: string }> = [];
  const rate = Math.max(1_000, Math.min(50_000, count));
  await lastValueFrom(
    generateLogs({
      seed,
      rate,
      durationMs: Math.ceil((count * 1.1) / rate + 1) * 1000,
      startTime: Date.now() - 3_600_000,
      speed: Infinity,
      dailyShape: false,
    }).pipe(
      concatMap(async ({ logs }) => {
        for (const log of logs)
          if (out.length < count) out.push({ key: log.key, value: shapeRecord(log.value, shape) });
      }),
      ignoreElements(),
    ),
    { defaultValue: undefined },
  );
  return out.slice(0, count);
}

export interface ProduceReport {
  readonly records: number;
  readonly bytes: number;
  readonly seconds: number;
}

/**
 * Streams `count` generated records to `topic` as fast as the broker takes
 * them, a few sends in flight, without holding them all in memory.
 */
export async function produceGenerated(
  producer: Producer,
  topic: string,
  options: { count: number; seed: number; shape: RecordShape; onProgress?: (sent: number) => void },
): Promise<ProduceReport> {
  const rate = 20_000;
  const started = performance.now();
  let sent = 0;
  let bytes = 0;
  const inFlight = new Set<Promise<unknown>>();
  const chunk: Array<{ key: string; value: string }> = [];
  const flush = async () => {
    if (chunk.length === 0) return;
    const messages = chunk.splice(0);
    const sending = producer.send({ topic, acks: -1, messages }).then(() => {
      sent += messages.length;
      options.onProgress?.(sent);
    });
    inFlight.add(sending);
    void sending.finally(() => inFlight.delete(sending)).catch(() => undefined);
    if (inFlight.size >= 8) await Promise.race(inFlight);
  };
  let generated = 0;
  const seconds = Math.ceil(options.count / rate) + 1;
  await lastValueFrom(
    generateLogs({
      seed: options.seed,
      rate,
      durationMs: seconds * 1000,
      startTime: Date.now() - (seconds + 60) * 1000,
      speed: Infinity,
      dailyShape: false,
    }).pipe(
      concatMap(async ({ logs }) => {
        for (const log of logs) {
          if (generated >= options.count) break;
          const value = shapeRecord(log.value, options.shape);
          bytes += Buffer.byteLength(value);
          chunk.push({ key: log.key, value });
          generated += 1;
          // A produce request per partition must stay under the broker's 1 MB message.max.bytes.
          if (chunk.length >= 1_500) await flush();
        }
      }),
      ignoreElements(),
    ),
    { defaultValue: undefined },
  );
  await flush();
  await Promise.all(inFlight);
  if (generated < options.count)
    throw new Error(`the generator gave ${generated} records, fewer than ${options.count}`);
  return { records: sent, bytes, seconds: (performance.now() - started) / 1000 };
}

export interface PacedProducer {
  /** Records sent (acknowledged by the broker) so far. */
  readonly sent: () => number;
  /** Records handed to the client so far. */
  readonly issued: () => number;
  stop(): Promise<void>;
  readonly done: Promise<void>;
}

/**
 * Sends `rate` records per second in 20 ms ticks (so load is smooth, not one
 * burst per second), each stamped with its send time, cycling through a pool
 * of generated templates. A tick that falls behind catches up on the next
 * one (the target is rate x elapsed), so the offered load is the rate even
 * when one send is slow.
 */
export function pacedProducer(
  producer: Producer,
  topic: string,
  options: { rate: number; durationMs: number; pool: readonly RecordTemplate[] },
): PacedProducer {
  let issued = 0;
  let sent = 0;
  let stopped = false;
  let failure: unknown;
  const inFlight = new Set<Promise<unknown>>();
  const started = performance.now();
  let next = 0;
  const done = (async () => {
    while (!stopped && failure === undefined) {
      const elapsed = performance.now() - started;
      if (elapsed >= options.durationMs) break;
      const target = Math.floor((options.rate * elapsed) / 1000);
      // Capped so one produce request per partition stays under the broker's 1 MB message.max.bytes.
      const count = Math.min(target - issued, 2_000);
      if (count > 0) {
        const now = Date.now();
        const messages = new Array<{ key: string; value: string }>(count);
        for (let i = 0; i < count; i++) {
          const template = options.pool[next++ % options.pool.length]!;
          messages[i] = { key: template.key, value: fillTemplate(template, now) };
        }
        issued += count;
        const sending = producer.send({ topic, acks: -1, messages }).then(
          () => {
            sent += count;
          },
          (error: unknown) => {
            failure = error;
          },
        );
        inFlight.add(sending);
        void sending.finally(() => inFlight.delete(sending));
        // Bounded in-flight sends: a broker that cannot keep up slows the producer instead of filling memory.
        if (inFlight.size >= 8) await Promise.race(inFlight);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await Promise.all(inFlight);
    if (failure !== undefined) throw failure;
  })();
  return {
    sent: () => sent,
    issued: () => issued,
    async stop() {
      stopped = true;
      await done;
    },
    done,
  };
}

/**
 * The baseline: a plain kafkajs consumer (eachBatch) that only JSON-parses
 * each record, until `expected` records were read. Returns the time from its
 * first batch to its last record, and the CPU it used in between.
 */
export async function rawConsumer(
  kafka: Kafka,
  topic: string,
  expected: number,
  onRecord?: (count: number) => void,
): Promise<{ firstAt: number; lastAt: number; cpu: NodeJS.CpuUsage; records: number; parsedBytes: number }> {
  // As large fetches as kafkajs takes (the pipeline's consumer uses the same sizes, src/sources/kafka-topics.ts): a
  // baseline held back by small fetches would flatter the pipeline's ratio.
  const consumer = kafka.consumer({
    groupId: `${topic}-raw-baseline`,
    maxBytes: DEFAULT_FETCH_MAX_BYTES,
    maxBytesPerPartition: DEFAULT_FETCH_MAX_BYTES_PER_PARTITION,
  });
  let count = 0;
  let bytes = 0;
  let firstAt = 0;
  let lastAt = 0;
  let cpuStart: NodeJS.CpuUsage | undefined;
  let cpu: NodeJS.CpuUsage = { user: 0, system: 0 };
  let sink = 0;
  let resolveDone: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => {
    resolveDone = resolve;
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      if (firstAt === 0) {
        firstAt = performance.now();
        cpuStart = process.cpuUsage();
      }
      for (const message of batch.messages) {
        if (message.value === null) continue;
        const parsed = JSON.parse(message.value.toString()) as { level?: string };
        sink += parsed.level?.length ?? 0;
        bytes += message.value.length;
        count += 1;
      }
      onRecord?.(count);
      if (count >= expected && lastAt === 0) {
        lastAt = performance.now();
        cpu = process.cpuUsage(cpuStart);
        resolveDone();
      }
    },
  });
  await finished;
  await consumer.disconnect();
  if (sink < 0) throw new Error('unreachable');
  return { firstAt, lastAt, cpu, records: count, parsedBytes: bytes };
}
