import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { createChunk } from '../../src/core/chunk.ts';
import { acknowledge } from '../../src/operators/acknowledge.ts';

describe('acknowledge', () => {
  it('acks each chunk as it passes, then calls onAck, and passes it on', () => {
    const settled: string[] = [];
    const chunk = (first: number) =>
      createChunk(
        { topic: 't', partition: 0, firstOffset: first, lastOffset: first, records: [first] },
        { onAck: () => settled.push(`ack ${first}`), onFail: () => settled.push(`fail ${first}`) },
      );
    const a = chunk(0);
    const b = chunk(1);
    new TestScheduler((actual, expected) => expect(actual).toEqual(expected)).run(({ cold, expectObservable }) => {
      expectObservable(cold('a-b|', { a, b }).pipe(acknowledge((c) => settled.push(`seen ${c.firstOffset}`)))).toBe(
        'a-b|',
        { a, b },
      );
    });
    expect(settled).toEqual(['ack 0', 'seen 0', 'ack 1', 'seen 1']);
  });
});
