import { firstValueFrom, of } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { createChunk, type Chunk } from '../../src/core/chunk.ts';
import { parseRecords, type RawRecord } from '../../src/operators/parseRecords.ts';

const raw = (offset: number, text: string): RawRecord => ({
  topic: 'raw',
  partition: 1,
  offset,
  key: `k${offset}`,
  value: Buffer.from(text),
});

function chunkOf(records: RawRecord[], settled: string[]): Chunk<RawRecord> {
  return createChunk(
    {
      topic: 'raw',
      partition: 1,
      firstOffset: records[0]!.offset,
      lastOffset: records[records.length - 1]!.offset,
      records,
    },
    { onAck: () => settled.push('ack'), onFail: () => settled.push('fail') },
  );
}

const parse = (record: RawRecord): number => {
  const n = JSON.parse(record.value.toString()) as unknown;
  if (typeof n !== 'number') throw new Error(`not a number: ${record.value.toString()}`);
  return n;
};

describe('parseRecords', () => {
  it('parses every record and moves those it throws on to rejected, with their bytes, origin and key', async () => {
    const settled: string[] = [];
    const input = chunkOf([raw(5, '1'), raw(6, '"x"'), raw(7, '{'), raw(8, '4')], settled);
    const out = await firstValueFrom(of(input).pipe(parseRecords(parse)));
    expect(out).toMatchObject({ topic: 'raw', partition: 1, firstOffset: 5, lastOffset: 8, records: [1, 4] });
    expect(out.rejected.map((r) => [r.origin, r.key, String(r.payload), r.stage])).toEqual([
      [{ topic: 'raw', partition: 1, offset: 6 }, 'k6', '"x"', 'parse'],
      [{ topic: 'raw', partition: 1, offset: 7 }, 'k7', '{', 'parse'],
    ]);
    expect(String(out.rejected[0]!.error)).toMatch(/not a number: "x"/);
    expect(settled).toEqual([]);
    out.ack();
    expect(settled).toEqual(['ack']);
  });

  it('passes a chunk whose records all parse with nothing rejected', async () => {
    const settled: string[] = [];
    const out = await firstValueFrom(of(chunkOf([raw(0, '7')], settled)).pipe(parseRecords(parse)));
    expect(out.records).toEqual([7]);
    expect(out.rejected).toEqual([]);
  });
});
