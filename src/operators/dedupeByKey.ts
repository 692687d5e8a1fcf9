import { asyncScheduler, defer, filter } from 'rxjs';
import type { MonoTypeOperatorFunction, SchedulerLike } from 'rxjs';

export interface DedupeByKeyOptions<T> {
  /** Keys remembered at most; the least recently seen key is forgotten first. */
  readonly maxKeys: number;
  /** A key is forgotten this long (scheduler time) after it was last seen; omitted: only `maxKeys` bounds memory. */
  readonly ttlMs?: number;
  readonly scheduler?: SchedulerLike;
  /** Called for each dropped duplicate, after it has been acknowledged (metrics, logs). */
  readonly onDuplicate?: (item: T) => void;
}

/**
 * Drops items whose key was seen recently: within the last `maxKeys` distinct
 * keys (an LRU) and, with `ttlMs`, less than `ttlMs` ago. Every sighting,
 * duplicates included, makes the key the most recent and restarts its ttl.
 *
 * A dropped duplicate that is an Envelope (has an `ack` method) is ACKED:
 * its record is done, and leaving it unsettled would hold the partition's
 * committed offset back forever.
 *
 * `keyOf` returning null or undefined means "no key": the item passes and is
 * not remembered (an Envelope's null key must not make all keyless records
 * duplicates of one another).
 *
 * Memory: a Map in insertion order is the LRU (re-inserting moves a key to the
 * end); since time only moves forward, expired keys sit at its head and are
 * evicted from there, so each item costs O(1) amortized.
 */
export function dedupeByKey<T, K>(
  keyOf: (item: T) => K | null | undefined,
  options: DedupeByKeyOptions<T>,
): MonoTypeOperatorFunction<T> {
  const { maxKeys, ttlMs, onDuplicate } = options;
  if (!Number.isInteger(maxKeys) || maxKeys < 1)
    throw new RangeError(`dedupeByKey: maxKeys must be an integer >= 1, got ${maxKeys}`);
  if (ttlMs !== undefined && !(ttlMs > 0)) throw new RangeError(`dedupeByKey: ttlMs must be > 0, got ${ttlMs}`);
  const scheduler = options.scheduler ?? asyncScheduler;

  return (source) =>
    defer(() => {
      const lastSeen = new Map<K, number>();

      const isFresh = (seenAt: number, now: number): boolean => ttlMs === undefined || now - seenAt < ttlMs;

      return source.pipe(
        filter((item) => {
          const key = keyOf(item);
          if (key === null || key === undefined) return true;
          const now = ttlMs === undefined ? 0 : scheduler.now();
          for (const [oldestKey, seenAt] of lastSeen) {
            if (isFresh(seenAt, now)) break;
            lastSeen.delete(oldestKey);
          }
          const duplicate = lastSeen.has(key);
          lastSeen.delete(key);
          lastSeen.set(key, now);
          if (duplicate) {
            ackIfEnvelope(item);
            onDuplicate?.(item);
            return false;
          }
          if (lastSeen.size > maxKeys) {
            const leastRecent = lastSeen.keys().next();
            if (leastRecent.done !== true) lastSeen.delete(leastRecent.value);
          }
          return true;
        }),
      );
    });
}

function ackIfEnvelope(item: unknown): void {
  if (typeof item === 'object' && item !== null && 'ack' in item && typeof item.ack === 'function') item.ack();
}
