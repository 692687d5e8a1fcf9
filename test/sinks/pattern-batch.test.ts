import { describe, expect, it } from 'vitest';
import { createChunk, type Chunk } from '../../src/core/chunk.ts';
import { ErrorCodes, InputError, LogflowError } from '../../src/core/errors.ts';
import { parseQueuedRequest, PatternBatch, type QueuedRequest } from '../../src/sinks/pattern-batch.ts';
import type { ConsumedRecord } from '../../src/sources/topics.ts';

const LOG_IDS = [
  '00000000-0000-4000-8000-000000000000',
  '00000000-0000-4000-8000-000000000001',
  '00000000-0000-4000-8000-000000000002',
  '00000000-0000-4000-8000-000000000003',
  '00000000-0000-4000-8000-000000000004',
];

function record(partition: number, offset: number, hash: string, timestamp: number): ConsumedRecord {
  const request = {
    log_id: LOG_IDS[offset]!,
    error_hash: hash,
    template: `template ${hash}`,
    message: `message ${offset}`,
    service: 'order-service',
    environment: 'production',
    level: 'ERROR',
    timestamp,
  };
  return {
    topic: 'q',
    partition,
    offset,
    key: hash,
    value: Buffer.from(JSON.stringify(request)),
    timestamp,
    headers: {},
  };
}

function chunkOf(records: readonly ConsumedRecord[], settled: string[]): Chunk<QueuedRequest> {
  const first = records[0]!;
  const name = `${first.partition}@${first.offset}`;
  return createChunk(
    {
      topic: 'q',
      partition: first.partition,
      firstOffset: first.offset,
      lastOffset: records[records.length - 1]!.offset,
      records: records.map(parseQueuedRequest),
    },
    { onAck: () => settled.push(`ack ${name}`), onFail: () => settled.push(`fail ${name}`) },
  );
}

describe('PatternBatch', () => {
  it("groups the chunks' requests by error pattern, in order of first sighting, across partitions", () => {
    const batch = PatternBatch.of([
      chunkOf([record(0, 0, '1', 500), record(0, 1, '2', 300)], []),
      chunkOf([record(1, 2, '1', 400)], []),
    ]);
    expect(batch.size).toBe(3);
    expect(batch.earliest).toBe(300);
    expect(batch.pending().map((p) => [p.hash, p.entries.length, p.origin])).toEqual([
      ['1', 2, { topic: 'q', partition: 0, offset: 0 }],
      ['2', 1, { topic: 'q', partition: 0, offset: 1 }],
    ]);
    expect(batch.pending()[0]!.observation).toMatchObject({ firstSeen: 400, lastSeen: 500, occurrences: 2 });
  });

  it("moves a rejected pattern's records to their own chunks' rejected, and the chunks still settle once", () => {
    const settled: string[] = [];
    const chunks = [
      chunkOf([record(0, 0, '1', 0), record(0, 1, '2', 0)], settled),
      chunkOf([record(1, 2, '2', 0)], settled),
      chunkOf([record(2, 3, '3', 0)], settled),
    ];
    const rejectedPatterns: string[] = [];
    const batch = PatternBatch.of(chunks, (pattern) => rejectedPatterns.push(pattern.hash));
    const refused = new InputError('refused');
    const [, two] = batch.envelopes();
    two!.fail(refused);
    two!.fail(new Error('again'));

    expect(rejectedPatterns).toEqual(['2']);
    expect(batch.rejectedCount).toBe(2);
    expect(batch.pending().map((p) => p.hash)).toEqual(['1', '3']);
    const out = batch.chunks();
    expect(out.map((c) => [c.partition, c.records.map((q) => q.record.offset)])).toEqual([
      [0, [0]],
      [1, []],
      [2, [3]],
    ]);
    expect(out.map((c) => c.rejected.map((r) => [r.stage, r.origin.offset, r.key, r.error]))).toEqual([
      [['embed', 1, '2', refused]],
      [['embed', 2, '2', refused]],
      [],
    ]);
    // The payload is the record's bytes as read, what the dead letter carries.
    expect(out[0]!.rejected[0]!.payload).toBe(chunks[0]!.records[1]!.record.value);
    // A chunk with nothing rejected is passed on as it came.
    expect(out[2]).toBe(chunks[2]);

    for (const c of out) c.ack();
    chunks[0]!.ack();
    expect(settled).toEqual(['ack 0@0', 'ack 1@2', 'ack 2@3']);
  });

  it('throws a fatal error instead of rejecting: no record is to blame for it', () => {
    const batch = PatternBatch.of([chunkOf([record(0, 0, '1', 0)], [])]);
    const fatal = new LogflowError(ErrorCodes.CONFIG_INVALID, 'wrong model');
    expect(() => batch.reject(batch.pending()[0]!, fatal)).toThrow(fatal);
    expect(batch.pending()).toHaveLength(1);
    expect(batch.chunks()[0]!.rejected).toEqual([]);
  });

  it('refuses a record that holds no valid request, with the reason', () => {
    const bad: ConsumedRecord = { ...record(0, 0, '1', 0), value: Buffer.from('{"log_id":') };
    expect(() => parseQueuedRequest(bad)).toThrow(InputError);
  });
});
