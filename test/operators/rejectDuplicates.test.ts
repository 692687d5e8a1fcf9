import { from, lastValueFrom, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { createChunk, type Chunk } from '../../src/core/chunk.ts';
import { rejectDuplicates } from '../../src/operators/rejectDuplicates.ts';

interface Rec {
  readonly id: string;
  readonly partition: number;
  readonly offset: number;
}

function chunkOf(partition: number, records: Rec[]): Chunk<Rec> {
  return createChunk(
    {
      topic: 't',
      partition,
      firstOffset: records[0]!.offset,
      lastOffset: records[records.length - 1]!.offset,
      records,
    },
    { onAck: () => undefined, onFail: () => undefined },
  );
}

const options = {
  idOf: (r: Rec) => r.id,
  originOf: (r: Rec) => ({ topic: 't', partition: r.partition, offset: r.offset }),
  payloadOf: (r: Rec) => r,
  keyOf: (r: Rec) => `key-${r.id}`,
};

describe('rejectDuplicates', () => {
  it('rejects a record whose id another record carried, naming where it was first seen', async () => {
    const out = await lastValueFrom(
      from([
        chunkOf(0, [
          { id: 'a', partition: 0, offset: 0 },
          { id: 'b', partition: 0, offset: 1 },
        ]),
        chunkOf(1, [
          { id: 'c', partition: 1, offset: 0 },
          { id: 'a', partition: 1, offset: 1 },
          { id: 'd', partition: 1, offset: 2 },
        ]),
      ]).pipe(rejectDuplicates(options), toArray()),
    );
    expect(out.map((c) => c.records.map((r) => r.id))).toEqual([
      ['a', 'b'],
      ['c', 'd'],
    ]);
    expect(out[1]!.firstOffset).toBe(0);
    expect(out[1]!.lastOffset).toBe(2);
    expect(out[1]!.rejected).toHaveLength(1);
    const [rejected] = out[1]!.rejected;
    expect(rejected).toMatchObject({ origin: { topic: 't', partition: 1, offset: 1 }, key: 'key-a', stage: 'parse' });
    expect(String(rejected!.error)).toMatch(/duplicate log_id a: already ingested from t\/0@0/);
  });

  it('lets the same record read again (a replay: same partition and offset) through', async () => {
    const record = { id: 'a', partition: 0, offset: 4 };
    const out = await lastValueFrom(
      from([chunkOf(0, [record]), chunkOf(0, [record])]).pipe(rejectDuplicates(options), toArray()),
    );
    expect(out.map((c) => [c.records.length, c.rejected.length])).toEqual([
      [1, 0],
      [1, 0],
    ]);
  });

  it('forgets the oldest id past maxIds', async () => {
    const out = await lastValueFrom(
      from([
        chunkOf(0, [
          { id: 'a', partition: 0, offset: 0 },
          { id: 'b', partition: 0, offset: 1 },
          { id: 'a', partition: 0, offset: 2 },
        ]),
      ]).pipe(rejectDuplicates({ ...options, maxIds: 1 }), toArray()),
    );
    expect(out[0]!.records.map((r) => r.offset)).toEqual([0, 1, 2]);
  });
});
