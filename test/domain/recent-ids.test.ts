import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RecentIds } from '../../src/domain/recent-ids.ts';

const origin = (offset: number, partition = 0) => ({ topic: 'raw-logs', partition, offset });

describe('RecentIds', () => {
  it('names the first record of a duplicate id, and lets the same record through again (a replay)', () => {
    const ids = new RecentIds(10);
    expect(ids.firstSeenElsewhere('a', origin(1))).toBeUndefined();
    expect(ids.firstSeenElsewhere('a', origin(1))).toBeUndefined();
    expect(ids.firstSeenElsewhere('a', origin(2))).toBe('raw-logs/0@1');
    expect(ids.firstSeenElsewhere('a', origin(1, 3))).toBe('raw-logs/0@1');
  });

  it('matches a first-in-first-out window of the last maxIds new ids, for any sequence', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 12 }), fc.integer({ min: 0, max: 3 })), { maxLength: 200 }),
        (maxIds, reads) => {
          const ids = new RecentIds(maxIds);
          // Reference: ids in the order they were first remembered, with their first origin.
          const window: Array<{ id: string; offset: number }> = [];
          reads.forEach(([n, replayOf], offset) => {
            const id = `id-${n}`;
            const known = window.find((w) => w.id === id);
            // Sometimes read the first carrier again instead of a new record.
            const at = known !== undefined && replayOf === 0 ? known.offset : offset + 1_000;
            const expected = known === undefined || known.offset === at ? undefined : `raw-logs/0@${known.offset}`;
            expect(ids.firstSeenElsewhere(id, origin(at))).toBe(expected);
            if (known === undefined) {
              window.push({ id, offset: at });
              if (window.length > maxIds) window.shift();
            }
          });
        },
      ),
    );
  });

  it('forgets exactly the ids older than the window while thousands churn through it', () => {
    const ids = new RecentIds(1_000);
    for (let n = 0; n < 20_000; n++) expect(ids.firstSeenElsewhere(`id-${n}`, origin(n))).toBeUndefined();
    // The last 1,000 are remembered where they were first seen; an older one is new again.
    for (let n = 19_000; n < 20_000; n++)
      expect(ids.firstSeenElsewhere(`id-${n}`, origin(n + 1))).toBe(`raw-logs/0@${n}`);
    // Remembering it forgets the oldest, id-19000, and only that one.
    expect(ids.firstSeenElsewhere('id-18999', origin(1))).toBeUndefined();
    expect(ids.firstSeenElsewhere('id-19001', origin(3))).toBe('raw-logs/0@19001');
    expect(ids.firstSeenElsewhere('id-19000', origin(2))).toBeUndefined();
  });

  it("keeps where an id was first seen by value, not the caller's object (ingest passes the whole consumed record)", () => {
    const ids = new RecentIds(10);
    const record = { topic: 'raw-logs', partition: 2, offset: 41, value: Buffer.alloc(16) };
    expect(ids.firstSeenElsewhere('a', record)).toBeUndefined();
    record.offset = 99;
    expect(ids.firstSeenElsewhere('a', { topic: 'raw-logs', partition: 2, offset: 41 })).toBeUndefined();
    expect(ids.firstSeenElsewhere('a', { topic: 'other', partition: 2, offset: 41 })).toBe('raw-logs/2@41');
    expect(ids.firstSeenElsewhere('a', { topic: 'raw-logs', partition: 1, offset: 41 })).toBe('raw-logs/2@41');
  });

  it('rejects a window size that is not a positive integer', () => {
    expect(() => new RecentIds(0)).toThrow(/maxIds/);
    expect(() => new RecentIds(1.5)).toThrow(/maxIds/);
  });
});
