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
import { LRUCache } from 'lru-cache';
import type { Origin } from './envelope.ts';

export const DEFAULT_RECENT_IDS = 100_000;

export class RecentIds {
  readonly #seen: LRUCache<string, string>;

  constructor(maxIds: number = DEFAULT_RECENT_IDS) {
    if (!Number.isInteger(maxIds) || maxIds < 1) throw new RangeError(`RecentIds: maxIds must be an integer >= 1, got ${maxIds}`);
    this.#seen = new LRUCache({ max: maxIds });
  }

  /** Where `id` was first seen, when that was another record; otherwise remembers `origin` and returns undefined. */
  firstSeenElsewhere(id: string, origin: Origin): string | undefined {
    const here = `${origin.topic}/${origin.partition}@${origin.offset}`;
    const first = this.#seen.get(id);
    if (first !== undefined && first !== here) return first;
    if (first === undefined) this.#seen.set(id, here);
    return undefined;
  }
}
