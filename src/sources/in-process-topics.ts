/**
 * Topics inside the process for embedded mode, with Kafka's contract:
 * partitions chosen by key, offsets per partition, consumer groups with
 * committed offsets, records committed only once acknowledged, and
 * consumption that pauses while too much is in flight. Retention follows the
 * slowest group's commit, bounded by `maxRetainedPerPartition`.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { Observable } from 'rxjs';
import { probe, type HealthCheck } from '../component.ts';
import type { Envelope } from '../envelope.ts';
import { LogflowError, ErrorCodes } from '../errors.ts';
import {
  DEFAULT_MAX_IN_FLIGHT_BYTES,
  DEFAULT_MAX_IN_FLIGHT_RECORDS,
  DeliveryTracker,
  partitionForKey,
  type ConsumedRecord,
  type OutgoingMessage,
  type SubscribeOptions,
  type TopicProducer,
  type Topics,
  type TopicSubscription,
} from '../topics.ts';

interface Partition {
  /** Offset of records[0]; records below it were trimmed. */
  base: number;
  records: ConsumedRecord[];
}

interface TopicState {
  readonly partitions: Partition[];
  roundRobin: number;
}

export interface InProcessTopicsOptions {
  /** Partitions of a topic created implicitly by a producer (Kafka's auto.create.topics). */
  readonly defaultPartitions?: number;
  readonly maxRetainedPerPartition?: number;
  /** Processing-time source for record timestamps (tests pin it). */
  readonly now?: () => number;
  /**
   * First offset of every partition. The topics live only as long as the
   * process, while the exactly-once ledger and detector checkpoints persist:
   * starting each run's offsets above every earlier run's (microseconds since
   * the epoch by default) keeps a new run's records from being mistaken for
   * an old run's. This holds while a partition takes fewer than a million
   * records per second of the run, far above what one process appends.
   */
  readonly baseOffset?: number;
}

/** Records delivered from one partition before the loop moves to the next, so partitions interleave fairly. */
const DELIVERY_SLICE = 512;

export class InProcessTopics implements Topics {
  readonly kind = 'in-process' as const;
  readonly name = 'in-process-topics';
  private readonly topics = new Map<string, TopicState>();
  private readonly committed = new Map<string, Map<string, Map<number, number>>>();
  private readonly activeGroups = new Set<string>();
  private readonly listeners = new Set<() => void>();
  private readonly defaultPartitions: number;
  private readonly maxRetained: number;
  private readonly now: () => number;
  private readonly baseOffset: number;
  private closed = false;
  /** Records dropped by the retention bound before every group read them. */
  droppedByRetention = 0;

  constructor(options: InProcessTopicsOptions = {}) {
    this.defaultPartitions = options.defaultPartitions ?? 4;
    this.maxRetained = options.maxRetainedPerPartition ?? 2_000_000;
    this.now = options.now ?? Date.now;
    this.baseOffset = options.baseOffset ?? Date.now() * 1000;
    if (!Number.isSafeInteger(this.baseOffset) || this.baseOffset < 0) throw new RangeError('baseOffset must be a non-negative safe integer');
    if (!Number.isInteger(this.defaultPartitions) || this.defaultPartitions < 1) throw new RangeError('defaultPartitions must be >= 1');
  }

  async ensureTopic(topic: string, partitions: number): Promise<void> {
    this.topicState(topic, partitions);
  }

  async partitionCount(topic: string): Promise<number> {
    return this.requireTopic(topic).partitions.length;
  }

  async endOffsets(topic: string): Promise<ReadonlyMap<number, number>> {
    const state = this.requireTopic(topic);
    return new Map(state.partitions.map((p, i) => [i, p.base + p.records.length]));
  }

  async committedOffsets(groupId: string, topic: string): Promise<ReadonlyMap<number, number>> {
    return new Map(this.committed.get(groupId)?.get(topic) ?? []);
  }

  async health(): Promise<HealthCheck> {
    return probe(async () => {
      if (this.closed) throw new Error('closed');
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.notify();
  }

  producer(): TopicProducer {
    return {
      name: 'in-process-producer',
      send: async (topic, messages) => this.append(topic, messages),
      health: () => this.health(),
      close: async () => undefined,
    };
  }

  subscribe(options: SubscribeOptions): TopicSubscription {
    if (options.topics.length === 0) throw new RangeError('subscribe needs at least one topic');
    let failWith: ((error: LogflowError) => void) | undefined;
    const tracker = new DeliveryTracker(
      {
        maxRecords: options.maxInFlightRecords ?? DEFAULT_MAX_IN_FLIGHT_RECORDS,
        maxBytes: options.maxInFlightBytes ?? DEFAULT_MAX_IN_FLIGHT_BYTES,
      },
      (error) => failWith?.(error),
    );
    const groupId = options.groupId;
    let subscribed = false;
    let stopped = false;
    let left = false;
    let commitTimer: NodeJS.Timeout | undefined;

    const commit = async (): Promise<void> => {
      const offsets = tracker.committable();
      if (offsets.length === 0) return;
      const group = this.groupOffsets(groupId);
      for (const { topic, partition, offset } of offsets) {
        let byPartition = group.get(topic);
        if (byPartition === undefined) group.set(topic, (byPartition = new Map()));
        byPartition.set(partition, offset);
      }
      tracker.markCommitted(offsets);
      for (const topic of new Set(offsets.map((o) => o.topic))) this.trim(topic);
    };

    const records$ = new Observable<Envelope<ConsumedRecord>>((subscriber) => {
      if (subscribed) {
        subscriber.error(new LogflowError(ErrorCodes.INTERNAL, 'an in-process subscription can be subscribed once', { stage: 'source' }));
        return;
      }
      if (this.activeGroups.has(groupId)) {
        subscriber.error(
          new LogflowError(ErrorCodes.INTERNAL, `consumer group ${groupId} already has a member in this process`, { stage: 'source' }),
        );
        return;
      }
      subscribed = true;
      this.activeGroups.add(groupId);
      failWith = (error) => subscriber.error(error);
      let wake: (() => void) | undefined;
      const listener = () => wake?.();
      this.listeners.add(listener);
      commitTimer = setInterval(() => void commit(), options.commitIntervalMs ?? 1_000);
      commitTimer.unref();

      const pump = async () => {
        const assigned = options.topics.map((topic) => ({ topic, partitions: this.topicState(topic).partitions.length }));
        const positions = new Map<string, number[]>();
        const partitionsList = assigned.flatMap(({ topic, partitions }) => Array.from({ length: partitions }, (_, partition) => ({ topic, partition })));
        for (const tp of partitionsList) tracker.assign(tp.topic, tp.partition);
        await options.onAssign?.(partitionsList);
        for (const { topic, partitions } of assigned) {
          const committed = this.committed.get(groupId)?.get(topic);
          const state = this.topicState(topic);
          const starts = Array.from({ length: partitions }, (_, p) => {
            const part = state.partitions[p]!;
            const start = committed?.get(p) ?? (options.fromBeginning === false ? part.base + part.records.length : part.base);
            return Math.max(start, part.base);
          });
          positions.set(topic, starts);
          // A group holds retention from the moment it joins, not from its first commit.
          const group = this.groupOffsets(groupId);
          if (!group.has(topic)) group.set(topic, new Map(starts.map((offset, p) => [p, offset])));
        }
        let sinceYield = 0;
        while (!stopped && !this.closed && !subscriber.closed) {
          let delivered = 0;
          for (const { topic, partition } of partitionsList) {
            const part = this.topicState(topic).partitions[partition]!;
            const pos = positions.get(topic)!;
            let next = Math.max(pos[partition]!, part.base);
            const end = part.base + part.records.length;
            let slice = 0;
            while (next < end && slice < DELIVERY_SLICE && tracker.hasCapacity() && !stopped && !subscriber.closed) {
              subscriber.next(tracker.envelope(part.records[next - part.base]!));
              next += 1;
              slice += 1;
            }
            pos[partition] = next;
            delivered += slice;
          }
          if (tracker.failed !== undefined) return;
          sinceYield += delivered;
          if (delivered > 0 && sinceYield >= 4 * DELIVERY_SLICE) {
            sinceYield = 0;
            await yieldToEventLoop();
            continue;
          }
          if (!tracker.hasCapacity()) {
            await tracker.waitForCapacity();
            continue;
          }
          if (delivered === 0) {
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
            wake = undefined;
          }
        }
        if (!subscriber.closed) subscriber.complete();
      };
      const stopSubscription = options.stop$.subscribe(() => {
        stopped = true;
        wake?.();
      });
      pump().catch((error: unknown) => subscriber.error(error));
      return () => {
        stopped = true;
        stopSubscription.unsubscribe();
        this.listeners.delete(listener);
        wake?.();
      };
    });

    return {
      records$,
      get inFlight() {
        return tracker.inFlight;
      },
      commit,
      close: async () => {
        if (left) return;
        left = true;
        stopped = true;
        if (commitTimer !== undefined) clearInterval(commitTimer);
        await commit();
        this.activeGroups.delete(groupId);
      },
    };
  }

  private append(topic: string, messages: readonly OutgoingMessage[]): void {
    if (this.closed) throw new LogflowError(ErrorCodes.SINK_UNAVAILABLE, 'in-process topics are closed', { stage: 'sink' });
    const state = this.topicState(topic);
    const count = state.partitions.length;
    const now = this.now();
    for (const message of messages) {
      const partition = partitionForKey(message.key, count, state.roundRobin++);
      const part = state.partitions[partition]!;
      part.records.push({
        topic,
        partition,
        offset: part.base + part.records.length,
        key: message.key,
        value: typeof message.value === 'string' ? Buffer.from(message.value) : message.value,
        timestamp: message.timestamp ?? now,
        headers: message.headers ?? {},
      });
      if (part.records.length > this.maxRetained) {
        const drop = part.records.length - this.maxRetained;
        part.records.splice(0, drop);
        part.base += drop;
        this.droppedByRetention += drop;
      }
    }
    this.notify();
  }

  /** Drops records every group that reads the topic has committed past. */
  private trim(topic: string): void {
    const state = this.topics.get(topic);
    if (state === undefined) return;
    state.partitions.forEach((part, partition) => {
      let min = Infinity;
      for (const group of this.committed.values()) {
        const offset = group.get(topic)?.get(partition);
        if (offset !== undefined) min = Math.min(min, offset);
      }
      if (!Number.isFinite(min)) return;
      const drop = Math.min(min - part.base, part.records.length);
      // Splicing is O(n): trim in large steps only.
      if (drop >= 10_000 || drop === part.records.length) {
        part.records.splice(0, drop);
        part.base += drop;
      }
    });
  }

  private notify(): void {
    for (const l of this.listeners) l();
  }

  private groupOffsets(groupId: string): Map<string, Map<number, number>> {
    let group = this.committed.get(groupId);
    if (group === undefined) this.committed.set(groupId, (group = new Map()));
    return group;
  }

  private requireTopic(topic: string): TopicState {
    const state = this.topics.get(topic);
    if (state === undefined) throw new LogflowError(ErrorCodes.INPUT_INVALID, `unknown topic ${topic}`, { stage: 'source' });
    return state;
  }

  private topicState(topic: string, partitions = this.defaultPartitions): TopicState {
    let state = this.topics.get(topic);
    if (state === undefined) {
      if (!/^[A-Za-z0-9._-]{1,249}$/.test(topic)) throw new LogflowError(ErrorCodes.INPUT_INVALID, `invalid topic name "${topic}"`, { stage: 'source' });
      if (!Number.isInteger(partitions) || partitions < 1) throw new RangeError('partitions must be >= 1');
      state = { partitions: Array.from({ length: partitions }, () => ({ base: this.baseOffset, records: [] })), roundRobin: 0 };
      this.topics.set(topic, state);
    }
    return state;
  }
}
