/**
 * Topics inside the process for embedded mode, with Kafka's contract:
 * partitions chosen by key, offsets per partition, consumer groups with
 * committed offsets, records committed only once acknowledged, and
 * consumption that pauses while too much is in flight. Retention follows the
 * slowest group's commit, bounded by `maxRetainedPerPartition`.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { Observable } from 'rxjs';
import { probe, type HealthCheck } from '../core/component.ts';
import type { Chunk } from '../core/chunk.ts';
import type { Envelope } from '../core/envelope.ts';
import { LogflowError, ErrorCodes } from '../core/errors.ts';
import {
  DeliveryTracker,
  partitionForKey,
  type ConsumedRecord,
  type OutgoingMessage,
  type SubscribeOptions,
  type TopicProducer,
  type Topics,
  type TopicSubscription,
} from './topics.ts';

/**
 * The records of one partition that one send appended, stored as a few flat
 * arrays rather than an object and a Buffer per record: what a partition
 * retains is then little more than its payload bytes, and the garbage
 * collector walks a handful of objects per send instead of several per record.
 * A record's ConsumedRecord is built when it is delivered, and dies young.
 */
interface Segment {
  /** Offset of the segment's first record. */
  readonly first: number;
  readonly count: number;
  readonly keys: readonly (string | null)[];
  /** Payloads back to back: record i spans ends[i - 1] (0 for the first) to ends[i]. */
  readonly data: Buffer;
  readonly ends: Uint32Array;
  readonly timestamps: Float64Array;
  /** Undefined when no record of the segment carries headers. */
  readonly headers: readonly Readonly<Record<string, string>>[] | undefined;
}

interface Partition {
  /** First offset still held; records below it were trimmed. */
  base: number;
  /** Offset the next appended record gets. */
  end: number;
  /** Ascending; the first may start below `base` (its head is trimmed but not yet released). */
  segments: Segment[];
}

interface TopicState {
  readonly partitions: Partition[];
  roundRobin: number;
  /** Partition of each key seen, so murmur2 runs once per key rather than once per record. */
  readonly keyPartitions: Map<string, number>;
}

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});
/** Bound on remembered key partitions per topic (keys like error hashes are many). */
const MAX_CACHED_KEYS = 100_000;

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
    if (!Number.isSafeInteger(this.baseOffset) || this.baseOffset < 0)
      throw new RangeError('baseOffset must be a non-negative safe integer');
    if (!Number.isInteger(this.defaultPartitions) || this.defaultPartitions < 1)
      throw new RangeError('defaultPartitions must be >= 1');
  }

  async ensureTopic(topic: string, partitions: number): Promise<void> {
    this.topicState(topic, partitions);
  }

  async partitionCount(topic: string): Promise<number> {
    return this.requireTopic(topic).partitions.length;
  }

  async endOffsets(topic: string): Promise<ReadonlyMap<number, number>> {
    const state = this.requireTopic(topic);
    return new Map(state.partitions.map((p, i) => [i, p.end]));
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
    const tracker = DeliveryTracker.of(options, (error) => failWith?.(error));
    const groupId = options.groupId;
    let subscribed = false;
    let stopped = false;
    let left = false;
    let commitTimer: NodeJS.Timeout | undefined;

    /** Kafka's consumer lag: end offset minus the group's committed offset, per partition. */
    const reportLag = () => {
      if (options.onLag === undefined) return;
      const group = this.committed.get(groupId);
      for (const topic of options.topics) {
        const state = this.topics.get(topic);
        if (state === undefined) continue;
        state.partitions.forEach((part, partition) => {
          const committed = group?.get(topic)?.get(partition) ?? part.base;
          options.onLag!(topic, partition, Math.max(0, part.end - Math.max(committed, part.base)));
        });
      }
    };

    const commit = async (): Promise<void> => {
      const offsets = tracker.committable();
      reportLag();
      if (offsets.length === 0) return;
      const group = this.groupOffsets(groupId);
      for (const { topic, partition, offset } of offsets) {
        let byPartition = group.get(topic);
        if (byPartition === undefined) group.set(topic, (byPartition = new Map()));
        byPartition.set(partition, offset);
      }
      tracker.markCommitted(offsets);
      for (const topic of new Set(offsets.map((o) => o.topic))) this.trim(topic);
      reportLag();
    };

    /** Reads the topics in slices of at most `maxSlice` records of one partition, each handed to `emit`. */
    const read = <T>(
      maxSlice: number,
      emit: (slice: readonly ConsumedRecord[], next: (value: T) => void) => void,
    ): Observable<T> =>
      new Observable<T>((subscriber) => {
        if (subscribed) {
          subscriber.error(
            new LogflowError(ErrorCodes.INTERNAL, 'an in-process subscription can be subscribed once', {
              stage: 'source',
            }),
          );
          return;
        }
        if (this.activeGroups.has(groupId)) {
          subscriber.error(
            new LogflowError(ErrorCodes.INTERNAL, `consumer group ${groupId} already has a member in this process`, {
              stage: 'source',
            }),
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

        const next$ = (value: T) => subscriber.next(value);
        const pump = async () => {
          const assigned = options.topics.map((topic) => ({
            topic,
            partitions: this.topicState(topic).partitions.length,
          }));
          const positions = new Map<string, number[]>();
          const partitionsList = assigned.flatMap(({ topic, partitions }) =>
            Array.from({ length: partitions }, (_, partition) => ({ topic, partition })),
          );
          for (const tp of partitionsList) tracker.assign(tp.topic, tp.partition);
          await options.onAssign?.(partitionsList);
          for (const { topic, partitions } of assigned) {
            const committed = this.committed.get(groupId)?.get(topic);
            const state = this.topicState(topic);
            const starts = Array.from({ length: partitions }, (_, p) => {
              const part = state.partitions[p]!;
              const start = committed?.get(p) ?? (options.fromBeginning === false ? part.end : part.base);
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
              let slice = 0;
              // Held by reference, not index: a commit during delivery may release segments from the array.
              let segment: Segment | undefined;
              while (
                next < part.end &&
                slice < DELIVERY_SLICE &&
                tracker.hasCapacity() &&
                !stopped &&
                !subscriber.closed
              ) {
                // A slice takes what the in-flight bounds leave room for, so a chunk never overshoots them.
                const limit = Math.min(
                  maxSlice,
                  DELIVERY_SLICE - slice,
                  tracker.recordRoom,
                  tracker.maxChunkRecords,
                  part.end - next,
                );
                let byteRoom = tracker.byteRoom;
                const records: ConsumedRecord[] = [];
                while (records.length < limit && byteRoom > 0) {
                  if (segment === undefined || next >= segment.first + segment.count)
                    segment = part.segments[segmentIndex(part.segments, next)]!;
                  const record = recordAt(topic, partition, segment, next - segment.first);
                  byteRoom -= record.value.length;
                  records.push(record);
                  next += 1;
                }
                slice += records.length;
                emit(records, next$);
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

    const records$ = read<Envelope<ConsumedRecord>>(1, (slice, next) => {
      for (const record of slice) next(tracker.envelope(record));
    });
    const chunks$ = read<Chunk<ConsumedRecord>>(Number.POSITIVE_INFINITY, (slice, next) => next(tracker.chunk(slice)));

    return {
      records$,
      chunks$,
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
    if (this.closed)
      throw new LogflowError(ErrorCodes.SINK_UNAVAILABLE, 'in-process topics are closed', { stage: 'sink' });
    if (messages.length === 0) return;
    const state = this.topicState(topic);
    const count = state.partitions.length;
    const now = this.now();
    // Partition of every message first, then one segment per partition, in send order within it.
    const byPartition: number[][] = Array.from({ length: count }, () => []);
    for (let i = 0; i < messages.length; i++) {
      const key = messages[i]!.key;
      let partition: number | undefined;
      if (key === null) {
        partition = partitionForKey(null, count, state.roundRobin);
      } else {
        partition = state.keyPartitions.get(key);
        if (partition === undefined) {
          partition = partitionForKey(key, count, state.roundRobin);
          if (state.keyPartitions.size >= MAX_CACHED_KEYS) state.keyPartitions.clear();
          state.keyPartitions.set(key, partition);
        }
      }
      state.roundRobin += 1;
      byPartition[partition]!.push(i);
    }
    for (let partition = 0; partition < count; partition++) {
      const indices = byPartition[partition]!;
      if (indices.length === 0) continue;
      const part = state.partitions[partition]!;
      part.segments.push(buildSegment(part.end, messages, indices, now));
      part.end += indices.length;
      if (part.end - part.base > this.maxRetained) {
        const drop = part.end - part.base - this.maxRetained;
        this.droppedByRetention += drop;
        release(part, part.base + drop, true);
      }
    }
    this.notify();
  }

  backlog(topic: string): number {
    const state = this.topics.get(topic);
    if (state === undefined) return 0;
    let largest = 0;
    state.partitions.forEach((part, partition) => {
      for (const groupId of this.activeGroups) {
        const offset = this.committed.get(groupId)?.get(topic)?.get(partition);
        if (offset !== undefined) largest = Math.max(largest, part.end - offset);
      }
    });
    return largest;
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
      const upTo = Math.min(min, part.end);
      if (upTo > part.base) release(part, upTo, false);
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
    if (state === undefined)
      throw new LogflowError(ErrorCodes.INPUT_INVALID, `unknown topic ${topic}`, { stage: 'source' });
    return state;
  }

  private topicState(topic: string, partitions = this.defaultPartitions): TopicState {
    let state = this.topics.get(topic);
    if (state === undefined) {
      if (!/^[A-Za-z0-9._-]{1,249}$/.test(topic))
        throw new LogflowError(ErrorCodes.INPUT_INVALID, `invalid topic name "${topic}"`, { stage: 'source' });
      if (!Number.isInteger(partitions) || partitions < 1) throw new RangeError('partitions must be >= 1');
      state = {
        partitions: Array.from({ length: partitions }, () => ({
          base: this.baseOffset,
          end: this.baseOffset,
          segments: [],
        })),
        roundRobin: 0,
        keyPartitions: new Map(),
      };
      this.topics.set(topic, state);
    }
    return state;
  }
}

function buildSegment(
  first: number,
  messages: readonly OutgoingMessage[],
  indices: readonly number[],
  now: number,
): Segment {
  const n = indices.length;
  const ends = new Uint32Array(n);
  const timestamps = new Float64Array(n);
  const keys: (string | null)[] = new Array<string | null>(n);
  let headers: Readonly<Record<string, string>>[] | undefined;
  let bytes = 0;
  for (let j = 0; j < n; j++) {
    const value = messages[indices[j]!]!.value;
    bytes += typeof value === 'string' ? Buffer.byteLength(value) : value.length;
    ends[j] = bytes;
  }
  const data = Buffer.allocUnsafe(bytes);
  let at = 0;
  for (let j = 0; j < n; j++) {
    const message = messages[indices[j]!]!;
    const value = message.value;
    at += typeof value === 'string' ? data.write(value, at) : value.copy(data, at);
    keys[j] = message.key;
    timestamps[j] = message.timestamp ?? now;
    if (message.headers !== undefined) {
      headers ??= new Array<Readonly<Record<string, string>>>(n).fill(NO_HEADERS);
      headers[j] = message.headers;
    }
  }
  return { first, count: n, keys, data, ends, timestamps, headers };
}

/** Index of the segment holding `offset` (which must be held). */
function segmentIndex(segments: readonly Segment[], offset: number): number {
  let lo = 0;
  let hi = segments.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (segments[mid]!.first <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function recordAt(topic: string, partition: number, segment: Segment, i: number): ConsumedRecord {
  return {
    topic,
    partition,
    offset: segment.first + i,
    key: segment.keys[i]!,
    value: segment.data.subarray(i === 0 ? 0 : segment.ends[i - 1]!, segment.ends[i]!),
    timestamp: segment.timestamps[i]!,
    headers: segment.headers?.[i] ?? NO_HEADERS,
  };
}

/**
 * Lets go of the segments wholly below `offset`. The retention bound moves
 * the base exactly there; a trim after commits keeps a partly committed
 * segment readable, as a trim in large steps always has.
 */
function release(part: Partition, offset: number, exact: boolean): void {
  let drop = 0;
  while (drop < part.segments.length && part.segments[drop]!.first + part.segments[drop]!.count <= offset) drop += 1;
  if (drop > 0) part.segments.splice(0, drop);
  const held = part.segments[0]?.first ?? part.end;
  part.base = Math.max(part.base, exact ? offset : Math.min(offset, held));
}
