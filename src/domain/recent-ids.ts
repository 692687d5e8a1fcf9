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
  /** id -> the origin that first carried it. */
  readonly #seen = new Map<string, Origin>();
  /**
   * The remembered ids in arrival order, as a ring: the slot to overwrite
   * next holds the oldest. (Evicting through the Map's own order, keys().next(),
   * slows down as deleted entries pile up at its front; an LRU cache cost
   * several Map operations per record on ingest's hot path.)
   */
  readonly #ring: string[] = [];
  #next = 0;
  readonly #maxIds: number;

  constructor(maxIds: number = DEFAULT_RECENT_IDS) {
    if (!Number.isInteger(maxIds) || maxIds < 1)
      throw new RangeError(`RecentIds: maxIds must be an integer >= 1, got ${maxIds}`);
    this.#maxIds = maxIds;
  }

  /** Where `id` was first seen, when that was another record; otherwise remembers `origin` and returns undefined. */
  firstSeenElsewhere(id: string, origin: Origin): string | undefined {
    const first = this.#seen.get(id);
    if (first === undefined) {
      if (this.#ring.length < this.#maxIds) {
        this.#ring.push(id);
      } else {
        this.#seen.delete(this.#ring[this.#next]!);
        this.#ring[this.#next] = id;
        this.#next = (this.#next + 1) % this.#maxIds;
      }
      this.#seen.set(id, origin);
      return undefined;
    }
    if (first.topic === origin.topic && first.partition === origin.partition && first.offset === origin.offset)
      return undefined;
    return `${first.topic}/${first.partition}@${first.offset}`;
  }
}
