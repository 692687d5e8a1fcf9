import { from, lastValueFrom, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { createChunk, type Chunk, type Rejected } from '../../src/core/chunk.ts';
import { deadLetterRejected } from '../../src/operators/deadLetterRejected.ts';

const rejectedAt = (offset: number): Rejected => ({
  payload: `bad ${offset}`,
  error: new Error(`bad ${offset}`),
  stage: 'parse',
  origin: { topic: 't', partition: 0, offset },
  key: null,
});

function chunkOf(first: number, records: number[], rejected: Rejected[], settled: string[]): Chunk<number> {
  return createChunk(
    { topic: 't', partition: 0, firstOffset: first, lastOffset: first + 2, records, rejected },
    { onAck: () => settled.push(`ack ${first}`), onFail: (e) => settled.push(`fail ${first}: ${String(e)}`) },
  );
}

describe('deadLetterRejected', () => {
  it('writes the rejected records, then passes each chunk on without them, in order and unacked', async () => {
    const settled: string[] = [];
    const sent: string[] = [];
    const out = await lastValueFrom(
      from([
        chunkOf(0, [0, 2], [rejectedAt(1)], settled),
        chunkOf(3, [3, 4, 5], [], settled),
        chunkOf(6, [], [rejectedAt(6), rejectedAt(7), rejectedAt(8)], settled),
      ]).pipe(
        deadLetterRejected(async (rejected) => {
          // A slow write must not let the next chunk overtake this one.
          await new Promise((r) => setTimeout(r, 10));
          sent.push(...rejected.map((r) => String(r.payload)));
        }),
        toArray(),
      ),
    );
    expect(sent).toEqual(['bad 1', 'bad 6', 'bad 7', 'bad 8']);
    expect(out.map((c) => [c.firstOffset, c.records, c.rejected.length])).toEqual([
      [0, [0, 2], 0],
      [3, [3, 4, 5], 0],
      [6, [], 0],
    ]);
    expect(settled).toEqual([]);
    for (const c of out) c.ack();
    expect(settled).toEqual(['ack 0', 'ack 3', 'ack 6']);
  });

  it('errors, leaving the chunk unacknowledged, when the dead letters cannot be written', async () => {
    const settled: string[] = [];
    await expect(
      lastValueFrom(
        from([chunkOf(0, [0], [rejectedAt(1)], settled)]).pipe(
          deadLetterRejected(() => Promise.reject(new Error('dlq down'))),
        ),
      ),
    ).rejects.toThrow(/dlq down/);
    expect(settled).toEqual([]);
  });
});
