import { of, throwError } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { createChunk, type Chunk } from '../../src/core/chunk.ts';
import { flattenChunks } from '../../src/operators/flattenChunks.ts';

interface Rec {
  readonly offset: number;
  readonly text: string;
}

function newTestScheduler(): TestScheduler {
  return new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
}

function chunkOf(offsets: number[], settled: string[] = []): Chunk<Rec> {
  return createChunk(
    {
      topic: 't',
      partition: 0,
      firstOffset: offsets[0]!,
      lastOffset: offsets[offsets.length - 1]!,
      records: offsets.map((offset) => ({ offset, text: `r${offset}` })),
    },
    { onAck: () => settled.push('ack'), onFail: () => settled.push('fail') },
  );
}

describe('flattenChunks', () => {
  it("emits each chunk's values in the chunk's frame, reading the clock once per chunk", () => {
    const scheduler = newTestScheduler();
    scheduler.run(({ cold, expectObservable }) => {
      const source = cold('a 9ms b|', { a: chunkOf([0, 1]), b: chunkOf([2]) });
      const out = source.pipe(flattenChunks({ valueOf: (r: Rec, now) => `${r.text}@${now}`, scheduler }));
      expectObservable(out).toBe('(xy) 6ms z|', { x: 'r0@0', y: 'r1@0', z: 'r2@10' });
    });
  });

  it('passes by records below fromOffset and those valueOf has no value for, and reports what it read', () => {
    const reads: Array<[number, number]> = [];
    const values: string[] = [];
    const settled: string[] = [];
    of(chunkOf([3, 4], settled), chunkOf([5, 6, 7, 8], settled), chunkOf([9], settled))
      .pipe(
        flattenChunks({
          fromOffset: 6,
          valueOf: (r: Rec) => (r.offset === 7 ? undefined : r.text),
          onRead: (nextOffset, records) => reads.push([nextOffset, records]),
        }),
      )
      .subscribe((value) => values.push(value));
    expect(values).toEqual(['r6', 'r8', 'r9']);
    // The first chunk lies wholly below fromOffset: nothing read. The record without a value still counts as read.
    expect(reads).toEqual([
      [9, 3],
      [10, 1],
    ]);
    // Acknowledgements stay with whoever holds the chunks.
    expect(settled).toEqual([]);
  });

  it('fails the stream when valueOf throws, and forwards the source error', () => {
    const failures: unknown[] = [];
    of(chunkOf([0]))
      .pipe(
        flattenChunks({
          valueOf: () => {
            throw new Error('bad record');
          },
        }),
      )
      .subscribe({ error: (error: unknown) => failures.push(error) });
    throwError(() => new Error('source down'))
      .pipe(flattenChunks({ valueOf: (r: Rec) => r.text }))
      .subscribe({ error: (error: unknown) => failures.push(error) });
    expect(failures.map((e) => (e as Error).message)).toEqual(['bad record', 'source down']);
  });
});
