import { describe, expect, it } from 'vitest';
import { createChunk, withRecords, type Rejected } from '../../src/core/chunk.ts';

function chunkOf(records: number[], settled: string[]) {
  return createChunk(
    { topic: 't', partition: 2, firstOffset: 10, lastOffset: 10 + records.length - 1, records, sizeBytes: 5 },
    { onAck: () => settled.push('ack'), onFail: (error) => settled.push(`fail: ${String(error)}`) },
  );
}

describe('chunk', () => {
  it('settles once, whether acked or failed, however often either is called', () => {
    const settled: string[] = [];
    const chunk = chunkOf([1, 2, 3], settled);
    chunk.ack();
    chunk.ack();
    chunk.fail(new Error('late'));
    expect(settled).toEqual(['ack']);
  });

  it('derives chunks that keep the offset range and share the one acknowledgement', () => {
    const settled: string[] = [];
    const chunk = chunkOf([1, 2, 3], settled);
    const rejected: Rejected = {
      payload: 'x',
      error: new Error('bad'),
      stage: 'parse',
      origin: { topic: 't', partition: 2, offset: 11 },
      key: null,
    };
    const derived = withRecords(chunk, ['1', '3'], [rejected]);
    const again = withRecords(derived, [1, 3]);
    expect(again).toMatchObject({ topic: 't', partition: 2, firstOffset: 10, lastOffset: 12, sizeBytes: 5 });
    expect(again.records).toEqual([1, 3]);
    expect(again.rejected).toEqual([rejected]);
    expect(chunk.rejected).toEqual([]);
    again.fail(new Error('sink down'));
    derived.ack();
    chunk.ack();
    expect(settled).toEqual(['fail: Error: sink down']);
  });
});
