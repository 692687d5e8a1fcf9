/**
 * The unit that flows through a batch-native pipeline: records read from one
 * topic-partition in one go, with ONE acknowledgement for their whole offset
 * range (as kafkajs's eachBatch hands them out). A source tracks one entry per
 * chunk instead of one per record, so per-record work is only the record's own.
 *
 * Operators map records to new values and move records that fail to
 * `rejected` (with their reason); the derived chunk settles the same
 * acknowledgement, so a rejected record is covered by the chunk's ack once its
 * dead letter is written (src/operators/deadLetterRejected.ts).
 */
import { SettlesOnce, type Origin } from './envelope.ts';
import type { Stage } from './errors.ts';

/** A record a stage refused, and why: what the dead-letter sink writes. */
export interface Rejected {
  /** The original bytes where available, else the value that failed. */
  readonly payload: unknown;
  readonly error: unknown;
  readonly stage: Stage;
  readonly origin: Origin;
  readonly key: string | null;
}

export interface Chunk<T> {
  readonly topic: string;
  readonly partition: number;
  /** The offset range the acknowledgement covers (records dropped or rejected since are still in it). */
  readonly firstOffset: number;
  readonly lastOffset: number;
  readonly records: readonly T[];
  /** Records refused by a stage and not yet dead-lettered. */
  readonly rejected: readonly Rejected[];
  /** Payload bytes as read, for byte-bounded buffers. */
  readonly sizeBytes: number;
  /** Marks the whole range done; once only. */
  ack(): void;
  /** Not even the dead-letter sink could take a record: the source errors and commits nothing past this range. */
  fail(error: unknown): void;
}

/**
 * A chunk's acknowledgement. A derived chunk and the one it came from share
 * it, so acking either (or both) moves the source's offsets once.
 */
export abstract class ChunkAck extends SettlesOnce {}

class CallbackAck extends ChunkAck {
  constructor(
    private readonly onAck: () => void,
    private readonly onFail: (error: unknown) => void,
  ) {
    super();
  }

  protected settleAck(): void {
    this.onAck();
  }

  protected settleFail(error: unknown): void {
    this.onFail(error);
  }
}

class SettlingChunk<T> implements Chunk<T> {
  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly firstOffset: number,
    readonly lastOffset: number,
    readonly records: readonly T[],
    readonly rejected: readonly Rejected[],
    readonly sizeBytes: number,
    /** @internal Shared with the chunks derived from this one. */
    readonly settle: ChunkAck,
  ) {}

  ack(): void {
    this.settle.ack();
  }

  fail(error: unknown): void {
    this.settle.fail(error);
  }
}

export interface ChunkInit<T> {
  readonly topic: string;
  readonly partition: number;
  readonly firstOffset: number;
  readonly lastOffset: number;
  readonly records: readonly T[];
  readonly rejected?: readonly Rejected[];
  readonly sizeBytes?: number;
}

/** A chunk settled by `settle` (sources pass their own ChunkAck subclass: one object per chunk, no closures). */
export function createChunk<T>(init: ChunkInit<T>, settle: ChunkAck): Chunk<T>;
export function createChunk<T>(
  init: ChunkInit<T>,
  handlers: { readonly onAck: () => void; readonly onFail: (error: unknown) => void },
): Chunk<T>;
export function createChunk<T>(
  init: ChunkInit<T>,
  settle: ChunkAck | { readonly onAck: () => void; readonly onFail: (error: unknown) => void },
): Chunk<T> {
  const ack = settle instanceof ChunkAck ? settle : new CallbackAck(settle.onAck, settle.onFail);
  return new SettlingChunk(
    init.topic,
    init.partition,
    init.firstOffset,
    init.lastOffset,
    init.records,
    init.rejected ?? [],
    init.sizeBytes ?? 0,
    ack,
  );
}

/** The same offset range and acknowledgement with new records (and rejections, which default to the chunk's own). */
export function withRecords<T, U>(
  chunk: Chunk<T>,
  records: readonly U[],
  rejected: readonly Rejected[] = chunk.rejected,
): Chunk<U> {
  return new SettlingChunk(
    chunk.topic,
    chunk.partition,
    chunk.firstOffset,
    chunk.lastOffset,
    records,
    rejected,
    chunk.sizeBytes,
    chunk instanceof SettlingChunk
      ? chunk.settle
      : new CallbackAck(
          () => chunk.ack(),
          (error) => chunk.fail(error),
        ),
  );
}

/** The records' origin within a chunk: one small object, made only where an API needs one. */
export function originOf(chunk: Chunk<unknown>, offset: number): Origin {
  return { topic: chunk.topic, partition: chunk.partition, offset };
}
