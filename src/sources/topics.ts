/**
 * Topics as pipelines see them, whether Kafka (server mode) or in-process
 * (embedded mode): partitions, keys, offsets, consumer groups, and records
 * that are committed only once acknowledged.
 */
import type { Observable } from 'rxjs';
import type { Component } from '../core/component.ts';
import { ChunkAck, createChunk, type Chunk } from '../core/chunk.ts';
import { SettlingEnvelope, type Envelope, type Origin } from '../core/envelope.ts';
import { LogflowError, ErrorCodes } from '../core/errors.ts';
import { PartitionOffsets, type TopicPartitionOffset } from '../core/offset-tracker.ts';

export interface ConsumedRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly key: string | null;
  readonly value: Buffer;
  /** Broker (or append) time, epoch ms; pipelines derive event time from the payload. */
  readonly timestamp: number;
  readonly headers: Readonly<Record<string, string>>;
}

export interface OutgoingMessage {
  readonly key: string | null;
  readonly value: Buffer | string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly timestamp?: number;
}

export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

export interface SubscribeOptions {
  readonly groupId: string;
  readonly topics: readonly string[];
  /**
   * Where a group with no committed offset starts. Default true: nothing produced before the first start is skipped.
   */
  readonly fromBeginning?: boolean;
  /** Consumption pauses while more records than this are read but unacknowledged. */
  readonly maxInFlightRecords?: number;
  /** ... or while their payload bytes exceed this. */
  readonly maxInFlightBytes?: number;
  /**
   * Records a chunk holds at most (never more than a quarter of maxInFlightRecords). Smaller chunks keep less alive
   * between a pipeline's stages while one is worked on: what the garbage collector's scavenges copy and promote.
   */
  readonly maxChunkRecords?: number;
  /** How often acknowledged offsets are committed while running. */
  readonly commitIntervalMs?: number;
  /** Emits once to stop reading; records$ then completes (after which close() commits). */
  readonly stop$: Observable<void>;
  /** Called when partitions are assigned, before their records flow (restore state here). */
  readonly onAssign?: (partitions: readonly TopicPartition[]) => Promise<void>;
  /** Called when partitions are taken away (flush or checkpoint here). */
  readonly onRevoke?: (partitions: readonly TopicPartition[]) => Promise<void>;
  /** Consumer lag per partition, when the transport knows it. */
  readonly onLag?: (topic: string, partition: number, lag: number) => void;
}

export interface TopicSubscription {
  /**
   * Every record as an envelope. Acking marks it done; failing it means not
   * even the dead-letter topic could take it, so the stream errors and
   * nothing past it is ever committed (it is redelivered after a restart).
   */
  readonly records$: Observable<Envelope<ConsumedRecord>>;
  /**
   * The same records as chunks: a run of one partition's records with one
   * acknowledgement for their offset range (kafkajs's eachBatch, cut to the
   * in-flight bounds). The source tracks one entry per chunk, not per record,
   * so this is the stream for pipelines that handle records in bulk. A
   * subscription is read either as records$ or as chunks$, once.
   */
  readonly chunks$: Observable<Chunk<ConsumedRecord>>;
  /** Commits what is acknowledged and leaves the group. Call after the graph drained. */
  close(): Promise<void>;
  /** Commits what is acknowledged now. */
  commit(): Promise<void>;
  readonly inFlight: { readonly records: number; readonly bytes: number };
}

export interface TopicProducer extends Component {
  /** Resolves once the messages are durably accepted (acks=all on Kafka). */
  send(topic: string, messages: readonly OutgoingMessage[]): Promise<void>;
}

export interface Topics extends Component {
  readonly kind: 'kafka' | 'in-process';
  ensureTopic(topic: string, partitions: number): Promise<void>;
  partitionCount(topic: string): Promise<number>;
  producer(): TopicProducer;
  subscribe(options: SubscribeOptions): TopicSubscription;
  /** Committed offset per partition of a group (the next offset it will read). */
  committedOffsets(groupId: string, topic: string): Promise<ReadonlyMap<number, number>>;
  /** Offset the next produced record of each partition will get. */
  endOffsets(topic: string): Promise<ReadonlyMap<number, number>>;
  /**
   * Records of the topic that the slowest consumer group now reading it has
   * not committed, on its most behind partition; 0 when no group reads it.
   * Only topics that hold their records in memory have it: a producer that
   * can outrun its consumers waits on it rather than fill the process.
   */
  backlog?(topic: string): number;
}

export const DEFAULT_MAX_IN_FLIGHT_RECORDS = 50_000;
export const DEFAULT_MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024;

/** Keys in a Kafka-compatible way: same key, same partition (murmur2, as the Java client and kafkajs do). */
export function partitionForKey(key: string | null, partitions: number, roundRobin: number): number {
  if (key === null) return roundRobin % partitions;
  return toPositive(murmur2(Buffer.from(key))) % partitions;
}

function toPositive(x: number): number {
  return x & 0x7fffffff;
}

function murmur2(data: Buffer): number {
  const seed = 0x9747b28c;
  const m = 0x5bd1e995;
  const r = 24;
  const length = data.length;
  let h = seed ^ length;
  const length4 = Math.floor(length / 4);
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k =
      (data[i4]! & 0xff) +
      ((data[i4 + 1]! & 0xff) << 8) +
      ((data[i4 + 2]! & 0xff) << 16) +
      ((data[i4 + 3]! & 0xff) << 24);
    k = Math.imul(k, m);
    k ^= k >>> r;
    k = Math.imul(k, m);
    h = Math.imul(h, m);
    h ^= k;
  }
  const tail = length & ~3;
  const rest = length % 4;
  if (rest === 3) h ^= (data[tail + 2]! & 0xff) << 16;
  if (rest >= 2) h ^= (data[tail + 1]! & 0xff) << 8;
  if (rest >= 1) {
    h ^= data[tail]! & 0xff;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h;
}

/**
 * What both transports share: offsets tracked per partition, in-flight
 * bounds, envelopes whose acks move the commit point, and a generation per
 * partition so an ack arriving after a revoke cannot touch the new owner's
 * offsets.
 */
export class DeliveryTracker {
  private readonly offsets = new PartitionOffsets();
  /** Per partition, bumped on every assign and revoke; an envelope remembers the one it was made in. */
  private readonly generations = new Map<string, PartitionGeneration>();
  /** The last partition's entry: records come in runs from one partition, so one Map lookup per run. */
  private lastGeneration: PartitionGeneration | undefined;
  private records = 0;
  private bytes = 0;
  private waiters: Array<() => void> = [];
  private failure: LogflowError | undefined;

  /** The tracker of one subscription, with the bounds it asked for (SubscribeOptions) or the defaults. */
  static of(options: SubscribeOptions, onFail: (error: LogflowError) => void): DeliveryTracker {
    return new DeliveryTracker(
      {
        maxRecords: options.maxInFlightRecords ?? DEFAULT_MAX_IN_FLIGHT_RECORDS,
        maxBytes: options.maxInFlightBytes ?? DEFAULT_MAX_IN_FLIGHT_BYTES,
        ...(options.maxChunkRecords === undefined ? {} : { maxChunk: options.maxChunkRecords }),
      },
      onFail,
    );
  }

  constructor(
    private readonly limits: { readonly maxRecords: number; readonly maxBytes: number; readonly maxChunk?: number },
    private readonly onFail: (error: LogflowError) => void,
  ) {
    if (!(limits.maxRecords >= 1) || !(limits.maxBytes >= 1)) {
      throw new RangeError('maxInFlightRecords and maxInFlightBytes must be at least 1');
    }
    if (limits.maxChunk !== undefined && !(Number.isInteger(limits.maxChunk) && limits.maxChunk >= 1)) {
      throw new RangeError('maxChunkRecords must be an integer of at least 1');
    }
  }

  get inFlight(): { records: number; bytes: number } {
    return { records: this.records, bytes: this.bytes };
  }

  get failed(): LogflowError | undefined {
    return this.failure;
  }

  hasCapacity(): boolean {
    return this.records < this.limits.maxRecords && this.bytes < this.limits.maxBytes;
  }

  /** Records that may still be read before the in-flight bound on records is reached (a chunk is cut to it). */
  get recordRoom(): number {
    return this.limits.maxRecords - this.records;
  }

  /**
   * Records a chunk holds at most: a quarter of the in-flight bound, or less when asked (maxChunkRecords). A chunk is
   * acked whole, so one that filled the bound would starve any stage that needs the records after it to finish it
   * (the ClickHouse sink completing a range recorded before a crash, src/sinks/clickhouse.ts): with this, later
   * chunks still fit.
   */
  get maxChunkRecords(): number {
    return Math.max(
      1,
      Math.min(this.limits.maxChunk ?? Number.POSITIVE_INFINITY, Math.floor(this.limits.maxRecords / 4)),
    );
  }

  /** Payload bytes that may still be read before the in-flight bound on bytes is reached. */
  get byteRoom(): number {
    return this.limits.maxBytes - this.bytes;
  }

  /** Resolves when in-flight records drop below the bounds (or at once when they are). */
  waitForCapacity(): Promise<void> {
    if (this.hasCapacity() || this.failure !== undefined) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  assign(topic: string, partition: number): void {
    this.generationOf(topic, partition).current += 1;
  }

  revoke(topic: string, partition: number): void {
    const generation = this.generationOf(topic, partition);
    generation.current += 1;
    // Counted per partition rather than read from its offset tracker, which holds one entry per chunk.
    this.records -= generation.records;
    generation.records = 0;
    this.offsets.remove(topic, partition);
    this.wake();
  }

  /** Wraps a consumed record; its ack moves the partition's commit point. */
  envelope(record: ConsumedRecord): Envelope<ConsumedRecord> {
    const origin = { topic: record.topic, partition: record.partition, offset: record.offset };
    const generation = this.generationOf(record.topic, record.partition);
    this.offsets.track(origin);
    this.records += 1;
    generation.records += 1;
    this.bytes += record.value.length;
    return new TrackedEnvelope(this, record, origin, generation, generation.current);
  }

  /**
   * Wraps consecutive records of one partition (ascending offsets, at least
   * one) as a chunk: one offset-tracker entry, at its last offset, whose ack
   * moves the commit point past the whole range.
   */
  chunk(records: readonly ConsumedRecord[]): Chunk<ConsumedRecord> {
    const first = records[0];
    const last = records[records.length - 1];
    if (first === undefined || last === undefined) throw new RangeError('a chunk needs at least one record');
    const generation = this.generationOf(first.topic, first.partition);
    let bytes = 0;
    for (let i = 0; i < records.length; i++) bytes += records[i]!.value.length;
    const end: Origin = { topic: first.topic, partition: first.partition, offset: last.offset };
    this.offsets.track(end);
    this.records += records.length;
    generation.records += records.length;
    this.bytes += bytes;
    const settle = new TrackedChunkAck(this, first.offset, end, records.length, bytes, generation, generation.current);
    return createChunk(
      {
        topic: first.topic,
        partition: first.partition,
        firstOffset: first.offset,
        lastOffset: last.offset,
        records,
        sizeBytes: bytes,
      },
      settle,
    );
  }

  /** @internal A chunk's ack (TrackedChunkAck calls it once). */
  settleChunkAck(end: Origin, count: number, size: number, generation: PartitionGeneration, madeIn: number): void {
    this.bytes -= size;
    if (generation.current !== madeIn) return;
    this.records -= count;
    generation.records -= count;
    this.offsets.ack(end);
    this.wake();
  }

  /** @internal A chunk's failure (TrackedChunkAck calls it once). */
  settleChunkFail(first: number, end: Origin, size: number, error: unknown): void {
    this.bytes -= size;
    this.recordFailure(`records ${end.topic}/${end.partition}@${first}..${end.offset}`, error);
  }

  /** @internal An envelope's ack (TrackedEnvelope calls it once). */
  settleAck(origin: Origin, size: number, generation: PartitionGeneration, madeIn: number): void {
    this.bytes -= size;
    // An ack for a revoked partition is moot: the new owner re-reads from the last commit.
    if (generation.current !== madeIn) return;
    this.records -= 1;
    generation.records -= 1;
    this.offsets.ack(origin);
    this.wake();
  }

  /** @internal An envelope's failure (TrackedEnvelope calls it once). */
  settleFail(record: ConsumedRecord, error: unknown): void {
    this.bytes -= record.value.length;
    this.recordFailure(`record ${record.topic}/${record.partition}@${record.offset}`, error);
  }

  private recordFailure(what: string, error: unknown): void {
    if (this.failure !== undefined) return;
    this.failure =
      error instanceof LogflowError && error.stage === 'source'
        ? error
        : new LogflowError(
            ErrorCodes.INTERNAL,
            `${what} could not be processed nor dead-lettered: ${(error as Error)?.message ?? String(error)}`,
            { stage: 'source', cause: error },
          );
    this.wake();
    this.onFail(this.failure);
  }

  private generationOf(topic: string, partition: number): PartitionGeneration {
    const last = this.lastGeneration;
    if (last !== undefined && last.topic === topic && last.partition === partition) return last;
    const key = `${topic}\u0000${partition}`;
    let entry = this.generations.get(key);
    if (entry === undefined) {
      entry = { topic, partition, current: 0, records: 0 };
      this.generations.set(key, entry);
    }
    this.lastGeneration = entry;
    return entry;
  }

  committable(): TopicPartitionOffset[] {
    return this.offsets.committable();
  }

  markCommitted(offsets: readonly TopicPartitionOffset[]): void {
    this.offsets.markCommitted(offsets.filter((o) => this.offsets.get(o.topic, o.partition) !== undefined));
  }

  private wake(): void {
    if (!this.hasCapacity() && this.failure === undefined) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

interface PartitionGeneration {
  readonly topic: string;
  readonly partition: number;
  current: number;
  /** Records of this generation read and not yet acknowledged. */
  records: number;
}

/** A source chunk's acknowledgement: one object per chunk. */
class TrackedChunkAck extends ChunkAck {
  constructor(
    private readonly tracker: DeliveryTracker,
    private readonly first: number,
    private readonly end: Origin,
    private readonly count: number,
    private readonly size: number,
    private readonly generation: PartitionGeneration,
    private readonly madeIn: number,
  ) {
    super();
  }

  protected settleAck(): void {
    this.tracker.settleChunkAck(this.end, this.count, this.size, this.generation, this.madeIn);
  }

  protected settleFail(error: unknown): void {
    this.tracker.settleChunkFail(this.first, this.end, this.size, error);
  }
}

/** A consumed record's envelope: one object per record, no closures (this is made for every record a source reads). */
class TrackedEnvelope extends SettlingEnvelope<ConsumedRecord> {
  constructor(
    private readonly tracker: DeliveryTracker,
    record: ConsumedRecord,
    origin: Origin,
    private readonly generation: PartitionGeneration,
    private readonly madeIn: number,
  ) {
    super(record, record.key, record.timestamp, origin, record.value.length);
  }

  protected settleAck(): void {
    this.tracker.settleAck(this.origin, this.sizeBytes, this.generation, this.madeIn);
  }

  protected settleFail(error: unknown): void {
    this.tracker.settleFail(this.value, error);
  }
}
