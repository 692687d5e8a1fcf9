import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCodes, LogflowError } from '../../src/core/errors.ts';
import { OffsetTracker, PartitionOffsets } from '../../src/core/offset-tracker.ts';

/** Brute force: the commit point is one past the longest fully acked prefix of the tracked offsets. */
function referenceCommitPoint(tracked: readonly number[], acked: ReadonlySet<number>): number | null {
  let point: number | null = null;
  for (const offset of tracked) {
    if (!acked.has(offset)) break;
    point = offset + 1;
  }
  return point;
}

const offsetsWithGaps = (maxLength: number): fc.Arbitrary<number[]> =>
  fc.tuple(fc.nat({ max: 1000 }), fc.array(fc.integer({ min: 1, max: 5 }), { maxLength })).map(([start, gaps]) => {
    const offsets: number[] = [];
    let next = start;
    for (const gap of gaps) {
      offsets.push(next);
      next += gap;
    }
    return offsets;
  });

describe('OffsetTracker (properties)', () => {
  it('never commits past an unacked offset, for any ack order, and reaches last + 1 once all are acked', () => {
    fc.assert(
      fc.property(
        offsetsWithGaps(60).chain((offsets) =>
          fc.tuple(
            fc.constant(offsets),
            fc.shuffledSubarray(offsets, { minLength: offsets.length, maxLength: offsets.length }),
          ),
        ),
        ([offsets, ackOrder]) => {
          const tracker = new OffsetTracker();
          for (const offset of offsets) tracker.track(offset);
          const acked = new Set<number>();
          for (const offset of ackOrder) {
            tracker.ack(offset);
            acked.add(offset);
            const point = tracker.commitPoint;
            expect(point).toBe(referenceCommitPoint(offsets, acked));
            for (const pending of offsets.filter((o) => !acked.has(o)))
              expect(point ?? -1).toBeLessThanOrEqual(pending);
            expect(tracker.inFlight).toBe(offsets.length - acked.size);
          }
          expect(tracker.commitPoint).toBe(offsets.length === 0 ? null : (offsets.at(-1) ?? 0) + 1);
          expect(tracker.inFlight).toBe(0);
        },
      ),
    );
  });

  it('matches the reference when tracks and acks interleave, and offers each commit point once', () => {
    type Command = { kind: 'track'; gap: number } | { kind: 'ack'; pick: number } | { kind: 'commit' };
    const command: fc.Arbitrary<Command> = fc.oneof(
      fc.record({ kind: fc.constant('track' as const), gap: fc.integer({ min: 1, max: 4 }) }),
      fc.record({ kind: fc.constant('ack' as const), pick: fc.nat() }),
      fc.constant({ kind: 'commit' as const }),
    );
    fc.assert(
      fc.property(fc.array(command, { maxLength: 200 }), (commands) => {
        const tracker = new OffsetTracker();
        const tracked: number[] = [];
        const acked = new Set<number>();
        let lastCommitted: number | null = null;
        let nextOffset = 0;
        for (const cmd of commands) {
          if (cmd.kind === 'track') {
            nextOffset += cmd.gap;
            tracker.track(nextOffset);
            tracked.push(nextOffset);
          } else if (cmd.kind === 'ack') {
            const unacked = tracked.filter((offset) => !acked.has(offset));
            if (unacked.length === 0) continue;
            const offset = unacked[cmd.pick % unacked.length] as number;
            tracker.ack(offset);
            acked.add(offset);
          } else {
            const point = referenceCommitPoint(tracked, acked);
            const expected: number | null =
              point !== null && (lastCommitted === null || point > lastCommitted) ? point : null;
            expect(tracker.committable()).toBe(expected);
            if (expected !== null) {
              tracker.markCommitted(expected);
              lastCommitted = expected;
              expect(tracker.committable()).toBeNull();
            }
          }
          expect(tracker.commitPoint).toBe(referenceCommitPoint(tracked, acked));
          expect(tracker.inFlight).toBe(tracked.length - acked.size);
        }
      }),
    );
  });
});

describe('OffsetTracker', () => {
  it('stays exact over long runs that exercise the deque compaction', () => {
    const tracker = new OffsetTracker();
    const count = 20_000;
    const tracked = Array.from({ length: count }, (_, i) => i * 2 + (i % 7 === 0 ? 1 : 0));
    for (const offset of tracked) tracker.track(offset);
    // Ack in windows of 50 processed back to front, so the head advances in jumps.
    const acked = new Set<number>();
    let ackedPrefix = 0;
    for (let start = 0; start < count; start += 50) {
      const window = tracked.slice(start, start + 50).reverse();
      for (const offset of window) {
        tracker.ack(offset);
        acked.add(offset);
        while (ackedPrefix < count && acked.has(tracked[ackedPrefix] as number)) ackedPrefix += 1;
        expect(tracker.commitPoint).toBe(ackedPrefix === 0 ? null : (tracked[ackedPrefix - 1] as number) + 1);
      }
    }
    expect(tracker.inFlight).toBe(0);
    tracker.track(100_000);
    expect(tracker.inFlight).toBe(1);
    tracker.ack(100_000);
    expect(tracker.commitPoint).toBe(100_001);
  });

  it('stays exact when tracking and acking interleave over long runs', () => {
    const tracker = new OffsetTracker();
    const tracked: number[] = [];
    const acked = new Set<number>();
    let ackedPrefix = 0;
    let offset = 0;
    for (let chunk = 0; chunk < 300; chunk++) {
      for (let i = 0; i < 100; i++) {
        offset += 1 + (i % 3);
        tracker.track(offset);
        tracked.push(offset);
      }
      // Ack the chunk before the previous one, back to front, so ~200 records stay in flight.
      const lagging = tracked.slice((chunk - 2) * 100, (chunk - 1) * 100).reverse();
      for (const done of lagging) {
        tracker.ack(done);
        acked.add(done);
        while (ackedPrefix < tracked.length && acked.has(tracked[ackedPrefix] as number)) ackedPrefix += 1;
        expect(tracker.commitPoint).toBe(ackedPrefix === 0 ? null : (tracked[ackedPrefix - 1] as number) + 1);
      }
      expect(tracker.inFlight).toBe(tracked.length - acked.size);
    }
  });

  it('has nothing to commit before the first contiguous ack', () => {
    const tracker = new OffsetTracker();
    expect(tracker.committable()).toBeNull();
    tracker.track(10);
    tracker.track(11);
    tracker.ack(11);
    expect(tracker.committable()).toBeNull();
    tracker.ack(10);
    expect(tracker.committable()).toBe(12);
  });

  it('throws on programmer errors', () => {
    const tracker = new OffsetTracker('logs/0');
    tracker.track(5);
    const expectInternal = (action: () => void, text: string): void => {
      try {
        action();
        expect.unreachable('should have thrown');
      } catch (error) {
        expect(error).toBeInstanceOf(LogflowError);
        expect(error).toMatchObject({ code: ErrorCodes.INTERNAL, retriable: false });
        expect((error as Error).message).toContain(text);
      }
    };
    expectInternal(() => tracker.ack(4), 'untracked');
    expectInternal(() => tracker.track(5), 'must increase');
    expectInternal(() => tracker.track(3), 'must increase');
    expectInternal(() => tracker.track(-1), 'non-negative');
    expectInternal(() => tracker.track(6.5), 'non-negative');
    expectInternal(() => tracker.markCommitted(6), 'cannot mark');
    tracker.track(7);
    tracker.ack(7);
    expectInternal(() => tracker.ack(7), 'acked twice');
    tracker.ack(5);
    expectInternal(() => tracker.ack(5), 'untracked');
    expect(tracker.commitPoint).toBe(8);
  });
});

describe('PartitionOffsets', () => {
  it('tracks partitions independently and lists what each may commit', () => {
    const offsets = new PartitionOffsets();
    offsets.track({ topic: 'raw-logs', partition: 0, offset: 100 });
    offsets.track({ topic: 'raw-logs', partition: 0, offset: 101 });
    offsets.track({ topic: 'raw-logs', partition: 1, offset: 7 });
    offsets.track({ topic: 'other', partition: 0, offset: 3 });
    expect(offsets.inFlight).toBe(4);

    offsets.ack({ topic: 'raw-logs', partition: 0, offset: 101 });
    offsets.ack({ topic: 'raw-logs', partition: 1, offset: 7 });
    expect(offsets.inFlight).toBe(2);
    expect(offsets.committable()).toEqual([{ topic: 'raw-logs', partition: 1, offset: 8 }]);

    offsets.markCommitted(offsets.committable());
    expect(offsets.committable()).toEqual([]);
    offsets.ack({ topic: 'raw-logs', partition: 0, offset: 100 });
    expect(offsets.committable()).toEqual([{ topic: 'raw-logs', partition: 0, offset: 102 }]);
    expect(offsets.get('raw-logs', 0)?.inFlight).toBe(0);

    offsets.remove('other', 0);
    expect(offsets.inFlight).toBe(0);
    expect(offsets.get('other', 0)).toBeUndefined();
    // A revoked partition starts afresh when it is assigned again.
    offsets.track({ topic: 'other', partition: 0, offset: 1 });
    expect(offsets.inFlight).toBe(1);
  });

  it('throws on acks and commits for partitions it never tracked', () => {
    const offsets = new PartitionOffsets();
    expect(() => offsets.ack({ topic: 'raw-logs', partition: 3, offset: 1 })).toThrow(LogflowError);
    expect(() => offsets.markCommitted([{ topic: 'raw-logs', partition: 3, offset: 1 }])).toThrow(LogflowError);
  });
});
