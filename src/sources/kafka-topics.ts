/**
 * Kafka through kafkajs. Records are acknowledged individually or as chunks (one per fetched batch, cut to the
 * in-flight bounds) and committed
 * per partition only up to the acknowledged watermark (never kafkajs's
 * auto-commit, which commits what was merely read). Back-pressure is the
 * eachBatch handler itself: it waits for in-flight records to drain before
 * handing out more, so a slow sink stops the fetch loop instead of growing
 * a buffer, while heartbeats keep the membership alive.
 */
import { Kafka, logLevel as kafkaLogLevel, type Consumer, type KafkaConfig, type ITopicConfig } from 'kafkajs';
import { Observable } from 'rxjs';
import { probe, type HealthCheck } from '../core/component.ts';
import type { Chunk } from '../core/chunk.ts';
import type { Envelope } from '../core/envelope.ts';
import { classify, ErrorCodes, LogflowError } from '../core/errors.ts';
import { kafkaErrorRules } from '../clients/kafka-errors.ts';
import { KafkaProducer } from '../sinks/kafka-producer.ts';
import type { Logger } from '../core/logger.ts';
import { retry } from '../core/retry.ts';
import {
  DeliveryTracker,
  type ConsumedRecord,
  type SubscribeOptions,
  type TopicPartition,
  type TopicProducer,
  type Topics,
  type TopicSubscription,
} from './topics.ts';

export interface KafkaTopicsOptions {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly logger?: Logger;
  /** Upper bound of one fetch per partition; bounds memory together with maxInFlight*. */
  readonly maxBytesPerPartition?: number;
  /** Upper bound of one fetch over all partitions. */
  readonly maxBytes?: number;
}

/**
 * Fetch sizes: a few MiB per fetch amortize kafkajs's per-fetch work (and each chunk's) over thousands of records;
 * bench/scenarios/ingest-e2e.bench.ts reads its baseline with the same sizes.
 */
export const DEFAULT_FETCH_MAX_BYTES = 16 * 1024 * 1024;
export const DEFAULT_FETCH_MAX_BYTES_PER_PARTITION = 4 * 1024 * 1024;

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

// kafkajs warns on every start that v2 changed its default partitioner; logflow has always used the v2
// (Java-compatible) one.
process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';

export class KafkaTopics implements Topics {
  readonly kind = 'kafka' as const;
  readonly name = 'kafka';
  private readonly kafka: Kafka;
  private readonly admin;
  private adminConnected: Promise<void> | undefined;
  private sharedProducer: KafkaProducer | undefined;
  private readonly subscriptions = new Set<KafkaSubscription>();

  constructor(private readonly options: KafkaTopicsOptions) {
    if (options.brokers.length === 0) throw new RangeError('Kafka needs at least one broker');
    const config: KafkaConfig = {
      clientId: options.clientId,
      brokers: [...options.brokers],
      logLevel: kafkaLogLevel.WARN,
      logCreator:
        () =>
        ({ namespace, level, log }) => {
          const { message, ...extra } = log;
          const target = options.logger;
          if (target === undefined) return;
          const payload = { namespace, ...extra };
          if (level <= kafkaLogLevel.ERROR) target.error(payload, message);
          else if (level === kafkaLogLevel.WARN) target.warn(payload, message);
          else target.debug(payload, message);
        },
      retry: { initialRetryTime: 300, retries: 8 },
    };
    this.kafka = new Kafka(config);
    this.admin = this.kafka.admin();
  }

  private async connectedAdmin() {
    this.adminConnected ??= this.admin.connect();
    await this.adminConnected;
    return this.admin;
  }

  async ensureTopic(topic: string, partitions: number): Promise<void> {
    const admin = await this.connectedAdmin();
    const spec: ITopicConfig = { topic, numPartitions: partitions, replicationFactor: -1 };
    // A broker just started, or two pipelines creating the same topics at once, answer with retriable
    // errors ("does not host this topic-partition") for a moment: retried a bounded number of times.
    await retry(
      async () => {
        try {
          // Asking first keeps kafkajs from logging TOPIC_ALREADY_EXISTS as an error on every start.
          if ((await admin.listTopics()).includes(topic)) return;
          await admin.createTopics({ topics: [spec], waitForLeaders: true });
        } catch (error) {
          throw classify(error, kafkaErrorRules, 'source');
        }
      },
      { maxAttempts: 8, baseDelayMs: 250, maxDelayMs: 4_000, jitter: 'full' },
    );
  }

  async partitionCount(topic: string): Promise<number> {
    const admin = await this.connectedAdmin();
    const meta = await admin.fetchTopicMetadata({ topics: [topic] });
    return meta.topics[0]?.partitions.length ?? 0;
  }

  async endOffsets(topic: string): Promise<ReadonlyMap<number, number>> {
    const admin = await this.connectedAdmin();
    const offsets = await admin.fetchTopicOffsets(topic);
    return new Map(offsets.map((o) => [o.partition, Number(o.high)]));
  }

  async committedOffsets(groupId: string, topic: string): Promise<ReadonlyMap<number, number>> {
    const admin = await this.connectedAdmin();
    const [result] = await admin.fetchOffsets({ groupId, topics: [topic] });
    const map = new Map<number, number>();
    for (const p of result?.partitions ?? []) if (Number(p.offset) >= 0) map.set(p.partition, Number(p.offset));
    return map;
  }

  async health(): Promise<HealthCheck> {
    return probe(async () => {
      const admin = await this.connectedAdmin();
      await admin.describeCluster();
    });
  }

  producer(): TopicProducer {
    this.sharedProducer ??= new KafkaProducer(
      this.kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: true }),
    );
    return this.sharedProducer;
  }

  subscribe(options: SubscribeOptions): TopicSubscription {
    if (options.topics.length === 0) throw new RangeError('subscribe needs at least one topic');
    const consumer = this.kafka.consumer({
      groupId: options.groupId,
      maxBytesPerPartition: this.options.maxBytesPerPartition ?? DEFAULT_FETCH_MAX_BYTES_PER_PARTITION,
      maxBytes: this.options.maxBytes ?? DEFAULT_FETCH_MAX_BYTES,
      sessionTimeout: 30_000,
      heartbeatInterval: 3_000,
      allowAutoTopicCreation: false,
      // A consumer that was closed or abandoned must not come back as a zombie member holding partitions.
      retry: { initialRetryTime: 300, retries: 8, restartOnFailure: async () => !subscription.abandoned },
    });
    const subscription: KafkaSubscription = new KafkaSubscription(consumer, options, () =>
      this.subscriptions.delete(subscription),
    );
    this.subscriptions.add(subscription);
    return subscription;
  }

  async close(): Promise<void> {
    // Whatever is still subscribed now is given up without a commit: its records are read again elsewhere.
    await Promise.allSettled([...this.subscriptions].map((s) => s.abandon()));
    await this.sharedProducer?.close();
    if (this.adminConnected !== undefined) await this.admin.disconnect();
  }
}

class KafkaSubscription implements TopicSubscription {
  readonly records$: Observable<Envelope<ConsumedRecord>>;
  readonly chunks$: Observable<Chunk<ConsumedRecord>>;
  private readonly tracker: DeliveryTracker;
  private assigned: TopicPartition[] = [];
  private assignReady: Promise<void> = Promise.resolve();
  private stopped = false;
  private wakeStop: () => void = () => undefined;
  private readonly stopSignal: Promise<void>;
  private commitTimer: NodeJS.Timeout | undefined;
  private runStarted = false;
  private closed = false;
  private failWith: ((error: LogflowError) => void) | undefined;

  constructor(
    private readonly consumer: Consumer,
    private readonly options: SubscribeOptions,
    private readonly onClosed: () => void,
  ) {
    this.tracker = DeliveryTracker.of(options, (error) => this.failWith?.(error));
    this.stopSignal = new Promise((resolve) => {
      this.wakeStop = resolve;
    });
    // Records one by one (a slice of one per record, each its own envelope) or slices as chunks.
    this.records$ = this.read<Envelope<ConsumedRecord>>(1, (slice, next) => {
      for (const record of slice) next(this.tracker.envelope(record));
    });
    this.chunks$ = this.read<Chunk<ConsumedRecord>>(Number.POSITIVE_INFINITY, (slice, next) =>
      next(this.tracker.chunk(slice)),
    );
  }

  private read<T>(
    maxSlice: number,
    emit: (slice: readonly ConsumedRecord[], next: (value: T) => void) => void,
  ): Observable<T> {
    const { options } = this;
    return new Observable<T>((subscriber) => {
      if (this.runStarted) {
        subscriber.error(
          new LogflowError(ErrorCodes.INTERNAL, 'a Kafka subscription can be subscribed once', { stage: 'source' }),
        );
        return;
      }
      this.runStarted = true;
      this.failWith = (error) => subscriber.error(error);
      const stopSubscription = options.stop$.subscribe(() => this.requestStop());
      const next = (value: T) => subscriber.next(value);
      this.start(maxSlice, (slice) => emit(slice, next))
        .then(() => this.stopSignal)
        .then(() => subscriber.complete())
        .catch((error: unknown) => subscriber.error(classify(error, kafkaErrorRules, 'source')));
      return () => {
        stopSubscription.unsubscribe();
        // Fetching stops; the membership stays until close() (commits) or abandon() (does not).
        this.requestStop();
      };
    });
  }

  get inFlight(): { records: number; bytes: number } {
    return this.tracker.inFlight;
  }

  private requestStop(): void {
    if (this.stopped) return;
    this.stopped = true;
    // Stop fetching but stay in the group: the final commit needs a live membership.
    if (this.assigned.length > 0) {
      try {
        this.consumer.pause(this.options.topics.map((topic) => ({ topic })));
      } catch {
        // Not running yet: nothing is being fetched.
      }
    }
    this.wakeStop();
  }

  private async start(maxSlice: number, emit: (slice: readonly ConsumedRecord[]) => void): Promise<void> {
    const { consumer, options } = this;
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      const next = Object.entries(payload.memberAssignment).flatMap(([topic, partitions]) =>
        partitions.map((partition) => ({ topic, partition })),
      );
      const previous = this.assigned;
      this.assigned = next;
      // kafkajs re-reads every assigned partition from its committed offset after a rejoin,
      // so records still in flight from before are moot everywhere, kept partitions included.
      for (const tp of previous) this.tracker.revoke(tp.topic, tp.partition);
      for (const tp of next) this.tracker.assign(tp.topic, tp.partition);
      const revoked = previous.filter((p) => !next.some((n) => n.topic === p.topic && n.partition === p.partition));
      // Never rejects: a failing hook fails the stream (unless it is already closed), and eachBatch must not throw for
      // it.
      this.assignReady = (async () => {
        if (revoked.length > 0) await options.onRevoke?.(revoked);
        await options.onAssign?.(next);
      })().catch((error: unknown) => {
        if (!this.closed) this.failWith?.(classify(error, kafkaErrorRules, 'source'));
      });
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [...options.topics], fromBeginning: options.fromBeginning ?? true });
    // Stopped before reading anything (a stop right after the start): joining the group now could wait out a crashed
    // member's session, far past the shutdown bound, to read records nobody will process.
    if (this.stopped) return;
    this.commitTimer = setInterval(() => void this.commit().catch(() => undefined), options.commitIntervalMs ?? 1_000);
    this.commitTimer.unref();
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        await this.assignReady;
        const lagHigh = Number(batch.highWatermark);
        const { messages } = batch;
        let i = 0;
        while (i < messages.length) {
          if (this.stopped || this.closed || !isRunning() || isStale() || this.tracker.failed !== undefined) break;
          while (!this.tracker.hasCapacity() && !this.stopped) {
            const heartbeatTimer = setInterval(() => void heartbeat().catch(() => undefined), 1_000);
            await Promise.race([this.tracker.waitForCapacity(), this.stopSignal]);
            clearInterval(heartbeatTimer);
            if (!isRunning() || isStale()) return;
          }
          if (this.stopped) break;
          // A slice takes what the in-flight bounds leave room for, so a chunk never overshoots them.
          const limit = Math.min(maxSlice, this.tracker.recordRoom, this.tracker.maxChunkRecords);
          let byteRoom = this.tracker.byteRoom;
          const slice: ConsumedRecord[] = [];
          while (i < messages.length && slice.length < limit && byteRoom > 0) {
            const message = messages[i]!;
            i += 1;
            let headers: Record<string, string> | undefined;
            for (const k in message.headers) {
              const v = message.headers[k];
              if (v !== undefined) (headers ??= {})[k] = v.toString();
            }
            const value = message.value ?? Buffer.alloc(0);
            byteRoom -= value.length;
            slice.push({
              topic: batch.topic,
              partition: batch.partition,
              offset: Number(message.offset),
              key: message.key === null ? null : message.key.toString(),
              value,
              timestamp: Number(message.timestamp),
              headers: headers ?? NO_HEADERS,
            });
          }
          const last = slice[slice.length - 1];
          if (last === undefined) continue;
          emit(slice);
          // Moves kafkajs's fetch position only; commits follow acknowledgements.
          resolveOffset(String(last.offset));
          options.onLag?.(batch.topic, batch.partition, Math.max(0, lagHigh - last.offset - 1));
        }
        await heartbeat().catch(() => undefined);
      },
    });
  }

  async commit(): Promise<void> {
    const offsets = this.tracker.committable();
    if (offsets.length === 0) return;
    try {
      await this.consumer.commitOffsets(
        offsets.map((o) => ({ topic: o.topic, partition: o.partition, offset: String(o.offset) })),
      );
      this.tracker.markCommitted(offsets);
    } catch (error) {
      // A rebalance in progress rejects commits; the next commit (or the new owner's replay) covers it.
      throw classify(error, kafkaErrorRules, 'source');
    }
  }

  /** True once given up without a commit; kafkajs must not restart it. */
  abandoned = false;

  /** Leaves the group without committing, as a crash would. */
  async abandon(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abandoned = true;
    this.requestStop();
    if (this.commitTimer !== undefined) clearInterval(this.commitTimer);
    await this.consumer.disconnect().catch(() => undefined);
    this.onClosed();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.requestStop();
    if (this.commitTimer !== undefined) clearInterval(this.commitTimer);
    try {
      if (this.runStarted) await this.commit();
    } finally {
      await this.consumer.disconnect();
      this.onClosed();
    }
  }
}
