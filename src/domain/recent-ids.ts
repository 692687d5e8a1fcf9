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
import { randomBytes } from 'node:crypto';
import type { Origin } from '../core/envelope.ts';
import { fmix32 } from '../core/hash.ts';

export const DEFAULT_RECENT_IDS = 100_000;

export class RecentIds {
  /**
   * id -> its slot in the rings below, as an open-addressing table of slot + 1 (0: empty) with linear probing.
   * A Map<string, number> of 100,000 ids cost 0.7-1.3 µs per record once full (a lookup, an eviction and an
   * insert); this table 0.24-0.42 µs, 1,000,000 random UUIDs through each. Deletion shifts the entries after it
   * back (no tombstones), so probes stay short under churn.
   */
  readonly #table: Int32Array;
  readonly #mask: number;
  /** Each slot's id hash, so an eviction finds its entry without hashing the old id again. */
  readonly #hashes: Int32Array;
  /**
   * The remembered ids and where each was first seen, in arrival order, as
   * rings: the slot to overwrite next holds the oldest. Origins are copied
   * into typed arrays rather than kept as the caller's objects: ingest's
   * origin is the consumed record, whose value is a view of a whole Kafka
   * fetch response, so keeping 100,000 of them kept every recent fetch alive
   * and gave the collector that many more objects to mark on every major
   * collection.
   */
  readonly #ids: string[] = [];
  readonly #topics: string[] = [];
  readonly #partitions: Int32Array;
  readonly #offsets: Float64Array;
  #next = 0;
  readonly #maxIds: number;
  /**
   * Random per instance, as V8 seeds its own string hashes: ids are input from outside, and ids crafted to share
   * one table index would otherwise turn every probe into a scan of all of them.
   */
  readonly #seed = randomBytes(4).readInt32LE(0);

  constructor(maxIds: number = DEFAULT_RECENT_IDS) {
    if (!Number.isInteger(maxIds) || maxIds < 1)
      throw new RangeError(`RecentIds: maxIds must be an integer >= 1, got ${maxIds}`);
    this.#maxIds = maxIds;
    this.#partitions = new Int32Array(maxIds);
    this.#offsets = new Float64Array(maxIds);
    this.#hashes = new Int32Array(maxIds);
    // At most half full, so a miss ends at an empty entry after a probe or two.
    const capacity = 2 ** Math.ceil(Math.log2(maxIds * 2));
    this.#table = new Int32Array(capacity);
    this.#mask = capacity - 1;
  }

  /** Where `id` was first seen, when that was another record; otherwise remembers `origin` and returns undefined. */
  firstSeenElsewhere(id: string, origin: Origin): string | undefined {
    const hash = hashOf(id, this.#seed);
    const table = this.#table;
    const mask = this.#mask;
    let at = hash & mask;
    for (let entry = table[at]!; entry !== 0; entry = table[at]!) {
      const slot = entry - 1;
      if (this.#hashes[slot] === hash && this.#ids[slot] === id) {
        const topic = this.#topics[slot]!;
        const partition = this.#partitions[slot]!;
        const offset = this.#offsets[slot]!;
        if (topic === origin.topic && partition === origin.partition && offset === origin.offset) return undefined;
        return `${topic}/${partition}@${offset}`;
      }
      at = (at + 1) & mask;
    }
    const slot = this.#remember(id, hash, origin);
    // The eviction may have shifted entries back into the probe path; the empty entry found above is still empty
    // or was filled by a shifted entry, so look again from the id's home.
    at = hash & mask;
    while (table[at] !== 0) at = (at + 1) & mask;
    table[at] = slot + 1;
    return undefined;
  }

  /** Takes the next ring slot for `id` (forgetting its oldest holder) and returns it. */
  #remember(id: string, hash: number, origin: Origin): number {
    let slot: number;
    if (this.#ids.length < this.#maxIds) {
      slot = this.#ids.length;
      this.#ids.push(id);
      this.#topics.push(origin.topic);
    } else {
      slot = this.#next;
      this.#forget(slot);
      this.#ids[slot] = id;
      this.#topics[slot] = origin.topic;
      this.#next = (slot + 1) % this.#maxIds;
    }
    this.#hashes[slot] = hash;
    this.#partitions[slot] = origin.partition;
    this.#offsets[slot] = origin.offset;
    return slot;
  }

  /** Removes `slot`'s entry from the table, shifting back the entries after it that probed past it. */
  #forget(slot: number): void {
    const table = this.#table;
    const mask = this.#mask;
    let hole = this.#hashes[slot]! & mask;
    while (table[hole] !== slot + 1) hole = (hole + 1) & mask;
    let next = hole;
    for (;;) {
      next = (next + 1) & mask;
      const entry = table[next]!;
      if (entry === 0) break;
      const home = this.#hashes[entry - 1]! & mask;
      // The entry stays when its home lies cyclically in (hole, next]: moving it to the hole would put it before
      // its home, where no probe for it starts.
      const stays = hole <= next ? home > hole && home <= next : home > hole || home <= next;
      if (stays) continue;
      table[hole] = entry;
      hole = next;
    }
    table[hole] = 0;
  }
}

/** FNV-1a over the UTF-16 code units from a seeded basis, then fmix32 so the low bits (the index) depend on every unit. */
function hashOf(id: string, seed: number): number {
  let hash = 0x811c9dc5 ^ seed;
  for (let i = 0; i < id.length; i++) hash = Math.imul(hash ^ id.charCodeAt(i), 0x01000193);
  // Signed, as the Int32Array of hashes holds it.
  return fmix32(hash) | 0;
}
