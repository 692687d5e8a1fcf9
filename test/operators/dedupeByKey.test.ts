import fc from 'fast-check';
import { from, Subject, VirtualTimeScheduler } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { createEnvelope } from '../../src/core/envelope.ts';
import type { Envelope } from '../../src/core/envelope.ts';
import { dedupeByKey } from '../../src/operators/dedupeByKey.ts';

interface Sighting {
  readonly index: number;
  readonly key: string | null;
  readonly at: number;
}

/**
 * Brute force over the whole history, independent of any cache structure: a
 * sighting is a duplicate when its key was last seen less than ttl ago and
 * fewer than maxKeys other distinct keys were seen since then (an LRU of
 * maxKeys would still hold it).
 */
function referenceKept(sightings: readonly Sighting[], maxKeys: number, ttlMs: number | undefined): number[] {
  const kept: number[] = [];
  sightings.forEach((sighting, i) => {
    if (sighting.key === null) {
      kept.push(sighting.index);
      return;
    }
    let previous = -1;
    for (let j = i - 1; j >= 0; j--) {
      if (sightings[j]?.key === sighting.key) {
        previous = j;
        break;
      }
    }
    if (previous < 0) {
      kept.push(sighting.index);
      return;
    }
    const othersSince = new Set(
      sightings
        .slice(previous + 1, i)
        .map((s) => s.key)
        .filter((key) => key !== null),
    );
    const recentEnough = ttlMs === undefined || sighting.at - (sightings[previous]?.at ?? 0) < ttlMs;
    const stillCached = othersSince.size < maxKeys;
    if (!(recentEnough && stillCached)) kept.push(sighting.index);
  });
  return kept;
}

const sightingsArbitrary = fc
  .array(
    fc.record({
      key: fc.option(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g'), { freq: 8 }),
      gap: fc.nat({ max: 6 }),
    }),
    {
      maxLength: 120,
    },
  )
  .map((specs) => {
    let clock = 0;
    return specs.map(({ key, gap }, index): Sighting => {
      clock += gap;
      return { index, key, at: clock };
    });
  });

describe('dedupeByKey (properties)', () => {
  it('matches the reference LRU model, with and without ttl', () => {
    fc.assert(
      fc.property(
        sightingsArbitrary,
        fc.integer({ min: 1, max: 8 }),
        fc.option(fc.integer({ min: 1, max: 20 }), { nil: undefined }),
        (sightings, maxKeys, ttlMs) => {
          const scheduler = new VirtualTimeScheduler();
          const input = new Subject<Sighting>();
          const kept: number[] = [];
          input
            .pipe(
              dedupeByKey((s: Sighting) => s.key, { maxKeys, scheduler, ...(ttlMs === undefined ? {} : { ttlMs }) }),
            )
            .subscribe((s) => kept.push(s.index));
          for (const sighting of sightings) {
            scheduler.frame = sighting.at;
            input.next(sighting);
          }
          expect(kept).toEqual(referenceKept(sightings, maxKeys, ttlMs));
        },
      ),
    );
  });

  it('acks every dropped envelope exactly once and never settles the ones it passes on', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('k1', 'k2', 'k3', 'k4'), { maxLength: 60 }),
        fc.integer({ min: 1, max: 5 }),
        (keys, maxKeys) => {
          const acks = new Map<number, number>();
          const fails: number[] = [];
          const envelopes = keys.map((key, offset) =>
            createEnvelope(
              { value: offset, key, eventTime: 0, origin: { topic: 't', partition: 0, offset } },
              { onAck: () => acks.set(offset, (acks.get(offset) ?? 0) + 1), onFail: () => fails.push(offset) },
            ),
          );
          const duplicatesSeen: number[] = [];
          const passed: number[] = [];
          from(envelopes)
            .pipe(
              dedupeByKey((e: Envelope<number>) => e.key, {
                maxKeys,
                onDuplicate: (e) => duplicatesSeen.push(e.origin.offset),
              }),
            )
            .subscribe((e) => passed.push(e.origin.offset));

          const expectedPassed = referenceKept(
            keys.map((key, index) => ({ index, key, at: 0 })),
            maxKeys,
            undefined,
          );
          const expectedDropped = keys.map((_, offset) => offset).filter((offset) => !expectedPassed.includes(offset));
          expect(passed).toEqual(expectedPassed);
          expect(duplicatesSeen).toEqual(expectedDropped);
          expect([...acks.keys()].sort((a, b) => a - b)).toEqual(expectedDropped);
          expect([...acks.values()].every((count) => count === 1)).toBe(true);
          expect(fails).toEqual([]);
        },
      ),
    );
  });
});

describe('dedupeByKey', () => {
  it('forgets a key ttl after it was last seen; a duplicate restarts the ttl (marbles)', () => {
    const scheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
    scheduler.run(({ cold, expectObservable }) => {
      // a@0 passes; a@1 and a@5 are within 5 ms of the previous sighting; a@11 is 6 ms after a@5.
      const source = cold('aa 3ms a 5ms a|', { a: 'a' });
      expectObservable(source.pipe(dedupeByKey((value: string) => value, { maxKeys: 10, ttlMs: 5, scheduler }))).toBe(
        'a 10ms a|',
        { a: 'a' },
      );
      // Exactly ttl later counts as forgotten.
      expectObservable(
        cold('a 4ms a|', { a: 'a' }).pipe(dedupeByKey((value: string) => value, { maxKeys: 10, ttlMs: 5, scheduler })),
      ).toBe('a 4ms a|', { a: 'a' });
    });
  });

  it('lets items without a key through and does not remember them', () => {
    const passed: (string | null)[] = [];
    from([null, null, 'x', null, 'x'])
      .pipe(dedupeByKey((value: string | null) => value, { maxKeys: 1 }))
      .subscribe((value) => passed.push(value));
    expect(passed).toEqual([null, null, 'x', null]);
  });

  it('keeps separate state per subscription', () => {
    const deduped = from(['a', 'a', 'b']).pipe(dedupeByKey((value: string) => value, { maxKeys: 4 }));
    const first: string[] = [];
    const second: string[] = [];
    deduped.subscribe((value) => first.push(value));
    deduped.subscribe((value) => second.push(value));
    expect(first).toEqual(['a', 'b']);
    expect(second).toEqual(['a', 'b']);
  });

  it('rejects invalid bounds', () => {
    expect(() => dedupeByKey((value: string) => value, { maxKeys: 0 })).toThrow(RangeError);
    expect(() => dedupeByKey((value: string) => value, { maxKeys: 1, ttlMs: 0 })).toThrow(RangeError);
  });
});
