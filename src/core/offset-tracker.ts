/**
 * Which offset a source may commit, per partition, when records are
 * acknowledged out of order (concurrent sinks, retries, dead-lettering).
 * Kafka semantics: the committed offset is the NEXT offset to read, so it is
 * the highest offset below which every tracked record is acknowledged, plus one.
 */
import { ErrorCodes, LogflowError } from './errors.ts';
import type { Origin } from './envelope.ts';

/** Compacts the head of the deque once this many slots are dead, keeping pops O(1) amortized. */
const COMPACT_AFTER = 1024;

export class OffsetTracker {
  /** Tracked offsets not yet released, ascending; `head` indexes the oldest. */
  private pending: number[] = [];
  /** Parallel to `pending`: acknowledged yet? Arrays, not a Map: this runs for every record. */
  private acked: boolean[] = [];
  private head = 0;
  private lastTracked: number | null = null;
  private unacked = 0;
  private position: number | null = null;
  private lastCommitted: number | null = null;
  private readonly label: string;

  constructor(label = 'partition') {
    this.label = label;
  }

  /**
   * Records that `offset` entered the pipeline. Offsets must increase; gaps (compaction, transaction markers) are fine.
   */
  track(offset: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0)
      throw this.error(`offset must be a non-negative safe integer, got ${offset}`, offset);
    if (this.lastTracked !== null && offset <= this.lastTracked) {
      throw this.error(`offsets must increase: tracked ${offset} after ${this.lastTracked}`, offset);
    }
    this.lastTracked = offset;
    this.pending.push(offset);
    this.acked.push(false);
    this.unacked += 1;
  }

  /**
   * Marks a tracked offset as done, in any order. Acking an untracked or already acked offset is a programmer error.
   */
  ack(offset: number): void {
    const index = this.indexOf(offset);
    if (index < 0) throw this.error(`ack of untracked (or already released) offset ${offset}`, offset);
    if (this.acked[index] === true) throw this.error(`offset ${offset} acked twice`, offset);
    this.acked[index] = true;
    this.unacked -= 1;
    this.releaseAckedHead();
  }

  /** Number of tracked offsets not yet acknowledged. */
  get inFlight(): number {
    return this.unacked;
  }

  /** Highest contiguous acknowledged tracked offset + 1, whether committed or not; null until one is acknowledged. */
  get commitPoint(): number | null {
    return this.position;
  }

  /** The offset to commit now, or null when there is nothing new since `markCommitted`. */
  committable(): number | null {
    if (this.position === null) return null;
    if (this.lastCommitted !== null && this.position <= this.lastCommitted) return null;
    return this.position;
  }

  /** Records that `offset` (a value from `committable()`) was committed, so it is not offered again. */
  markCommitted(offset: number): void {
    if (this.position === null || offset > this.position) {
      throw this.error(`cannot mark ${offset} committed: commit point is ${String(this.position)}`, offset);
    }
    if (this.lastCommitted === null || offset > this.lastCommitted) this.lastCommitted = offset;
  }

  /**
   * Where `offset` sits among the unreleased ones, or -1. Offsets are nearly always contiguous, so the first guess
   * hits.
   */
  private indexOf(offset: number): number {
    const { pending } = this;
    let low = this.head;
    let high = pending.length - 1;
    if (low > high) return -1;
    const guess = low + (offset - pending[low]!);
    if (guess >= low && guess <= high && pending[guess] === offset) return guess;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      const value = pending[mid]!;
      if (value === offset) return mid;
      if (value < offset) low = mid + 1;
      else high = mid - 1;
    }
    return -1;
  }

  private releaseAckedHead(): void {
    while (this.head < this.pending.length && this.acked[this.head] === true) {
      this.position = this.pending[this.head]! + 1;
      this.head += 1;
    }
    if (this.head === this.pending.length) {
      this.pending = [];
      this.acked = [];
      this.head = 0;
    } else if (this.head >= COMPACT_AFTER && this.head * 2 >= this.pending.length) {
      this.pending = this.pending.slice(this.head);
      this.acked = this.acked.slice(this.head);
      this.head = 0;
    }
  }

  private error(message: string, offset: number): LogflowError {
    return new LogflowError(ErrorCodes.INTERNAL, `offset tracker (${this.label}): ${message}`, {
      stage: 'source',
      details: { offset },
    });
  }
}

export interface TopicPartitionOffset {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
}

/** One OffsetTracker per topic/partition, addressed by an Envelope's origin. */
export class PartitionOffsets {
  private readonly trackers = new Map<string, Map<number, OffsetTracker>>();
  private unacked = 0;

  track(origin: Origin): void {
    let partitions = this.trackers.get(origin.topic);
    if (partitions === undefined) {
      partitions = new Map();
      this.trackers.set(origin.topic, partitions);
    }
    let tracker = partitions.get(origin.partition);
    if (tracker === undefined) {
      tracker = new OffsetTracker(`${origin.topic}/${origin.partition}`);
      partitions.set(origin.partition, tracker);
    }
    tracker.track(origin.offset);
    this.unacked += 1;
  }

  ack(origin: Origin): void {
    const tracker = this.trackers.get(origin.topic)?.get(origin.partition);
    if (tracker === undefined) {
      throw new LogflowError(
        ErrorCodes.INTERNAL,
        `offset tracker: ack for untracked partition ${origin.topic}/${origin.partition}`,
        {
          stage: 'source',
          details: { ...origin },
        },
      );
    }
    tracker.ack(origin.offset);
    this.unacked -= 1;
  }

  /** The tracker of one partition, if anything was tracked there. */
  get(topic: string, partition: number): OffsetTracker | undefined {
    return this.trackers.get(topic)?.get(partition);
  }

  /** Every partition with something new to commit. */
  committable(): TopicPartitionOffset[] {
    const result: TopicPartitionOffset[] = [];
    for (const [topic, partitions] of this.trackers) {
      for (const [partition, tracker] of partitions) {
        const offset = tracker.committable();
        if (offset !== null) result.push({ topic, partition, offset });
      }
    }
    return result;
  }

  markCommitted(offsets: readonly TopicPartitionOffset[]): void {
    for (const { topic, partition, offset } of offsets) {
      const tracker = this.get(topic, partition);
      if (tracker === undefined) {
        throw new LogflowError(
          ErrorCodes.INTERNAL,
          `offset tracker: commit for untracked partition ${topic}/${partition}`,
          { stage: 'source' },
        );
      }
      tracker.markCommitted(offset);
    }
  }

  /** Forgets a partition, e.g. when a rebalance revokes it; its in-flight records will be redelivered elsewhere. */
  remove(topic: string, partition: number): void {
    const partitions = this.trackers.get(topic);
    const tracker = partitions?.get(partition);
    if (tracker === undefined) return;
    this.unacked -= tracker.inFlight;
    partitions?.delete(partition);
    if (partitions?.size === 0) this.trackers.delete(topic);
  }

  /** Unacknowledged records over all partitions; a source pauses above its bound. */
  get inFlight(): number {
    return this.unacked;
  }
}
