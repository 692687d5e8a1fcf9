import { from, lastValueFrom, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { createEnvelope, type Envelope } from '../../src/core/envelope.ts';
import { ErrorCodes, InputError, LogflowError } from '../../src/core/errors.ts';
import { isolateFailures } from '../../src/operators/isolateFailures.ts';

const fast = { maxAttempts: 5, baseDelayMs: 0, maxDelayMs: 0, jitter: 'none' } as const;

interface Batch {
  readonly items: Envelope<string>[];
}

function batchOf(values: readonly string[], settled: Map<string, unknown>): Batch {
  return {
    items: values.map((value, offset) =>
      createEnvelope(
        { value, eventTime: 0, origin: { topic: 't', partition: 0, offset } },
        { onAck: () => settled.set(value, 'ack'), onFail: (error) => settled.set(value, error) },
      ),
    ),
  };
}

describe('isolateFailures', () => {
  it('writes a batch in one call, retrying retriable failures, and fails nothing', async () => {
    const settled = new Map<string, unknown>();
    const calls: string[][] = [];
    let failures = 2;
    const batch = batchOf(['a', 'b', 'c'], settled);
    const out = await lastValueFrom(
      from([batch]).pipe(
        isolateFailures(
          (b) => b.items,
          async (values) => {
            calls.push([...values]);
            if (failures-- > 0) throw new LogflowError(ErrorCodes.SINK_UNAVAILABLE, 'down', { retriable: true });
          },
          fast,
        ),
        toArray(),
      ),
    );
    expect(out).toEqual([batch]);
    expect(calls).toEqual([
      ['a', 'b', 'c'],
      ['a', 'b', 'c'],
      ['a', 'b', 'c'],
    ]);
    expect(settled.size).toBe(0);
  });

  it('writes each item alone when the batch fails for good, and fails only the items that fail alone', async () => {
    const settled = new Map<string, unknown>();
    const calls: string[][] = [];
    const poison = new InputError('b cannot be written');
    const batches = [batchOf(['a', 'b', 'c'], settled), batchOf(['d'], settled), batchOf(['b'], settled)];
    const out = await lastValueFrom(
      from(batches).pipe(
        isolateFailures(
          (b) => b.items,
          async (values) => {
            calls.push([...values]);
            if (values.includes('b')) throw poison;
          },
          fast,
        ),
        toArray(),
      ),
    );
    expect(out).toEqual(batches);
    // The lone `b` of the last batch is not tried twice: alone already, its failure is its own.
    expect(calls).toEqual([['a', 'b', 'c'], ['a'], ['b'], ['c'], ['d'], ['b']]);
    expect([...settled.entries()]).toEqual([['b', poison]]);
  });
});
