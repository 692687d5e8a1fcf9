/**
 * Duplicate log_ids: a producer that retries a send without idempotence, or
 * two systems that reuse one id, would otherwise store one log twice. Ingest
 * remembers which record first carried each recent log_id; another record
 * with that id is a duplicate and goes to the dead-letter topic. The same
 * record read again (a replay after a crash or a rebalance) is not a
 * duplicate: it has the same topic, partition and offset. Memory is bounded:
 * ids older than the last `maxIds` are forgotten, so the check covers a
 * window of recent traffic, not all history.
 */
import type { Origin } from '../core/envelope.ts';

export const DEFAULT_RECENT_IDS = 100_000;

export class RecentIds {
  /** id -> its slot in the rings below. */
  readonly #slotOf = new Map<string, number>();
  /**
   * The remembered ids and where each was first seen, in arrival order, as
   * rings: the slot to overwrite next holds the oldest. (Evicting through the
   * Map's own order, keys().next(), slows down as deleted entries pile up at
   * its front; an LRU cache cost several Map operations per record on ingest's
   * hot path.) Origins are copied into typed arrays rather than kept as the
   * caller's objects: ingest's origin is the consumed record, whose value is a
   * view of a whole Kafka fetch response, so keeping 100,000 of them kept
   * every recent fetch alive and gave the collector that many more objects to
   * mark on every major collection.
   */
  readonly #ids: string[] = [];
  readonly #topics: string[] = [];
  readonly #partitions: Int32Array;
  readonly #offsets: Float64Array;
  #next = 0;
  readonly #maxIds: number;

  constructor(maxIds: number = DEFAULT_RECENT_IDS) {
    if (!Number.isInteger(maxIds) || maxIds < 1)
      throw new RangeError(`RecentIds: maxIds must be an integer >= 1, got ${maxIds}`);
    this.#maxIds = maxIds;
    this.#partitions = new Int32Array(maxIds);
    this.#offsets = new Float64Array(maxIds);
  }

  /** Where `id` was first seen, when that was another record; otherwise remembers `origin` and returns undefined. */
  firstSeenElsewhere(id: string, origin: Origin): string | undefined {
    const slot = this.#slotOf.get(id);
    if (slot === undefined) {
      this.#remember(id, origin);
      return undefined;
    }
    const topic = this.#topics[slot]!;
    const partition = this.#partitions[slot]!;
    const offset = this.#offsets[slot]!;
    if (topic === origin.topic && partition === origin.partition && offset === origin.offset) return undefined;
    return `${topic}/${partition}@${offset}`;
  }

  #remember(id: string, origin: Origin): void {
    let slot: number;
    if (this.#ids.length < this.#maxIds) {
      slot = this.#ids.length;
      this.#ids.push(id);
      this.#topics.push(origin.topic);
    } else {
      slot = this.#next;
      this.#slotOf.delete(this.#ids[slot]!);
      this.#ids[slot] = id;
      this.#topics[slot] = origin.topic;
      this.#next = (slot + 1) % this.#maxIds;
    }
    this.#partitions[slot] = origin.partition;
    this.#offsets[slot] = origin.offset;
    this.#slotOf.set(id, slot);
  }
}
