/** The normalize operator over chunks; the normalizer itself is tested in test/domain/normalizer.test.ts. */
import fc from 'fast-check';
import { from, map } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { createChunk, type Chunk } from '../../src/core/chunk.ts';
import { normalizeMessage } from '../../src/domain/normalizer.ts';
import { normalize } from '../../src/operators/normalize.ts';

interface LogRecord {
  readonly message: string;
  readonly service: string;
}

function chunkOf(records: LogRecord[], firstOffset: number, settled: string[]): Chunk<LogRecord> {
  const lastOffset = firstOffset + records.length - 1;
  return createChunk(
    { topic: 'raw-logs', partition: 0, firstOffset, lastOffset, records, sizeBytes: 10 * records.length },
    {
      onAck: () => settled.push(`ack ${firstOffset}..${lastOffset}`),
      onFail: (error) => settled.push(`fail ${firstOffset}..${lastOffset}: ${String(error)}`),
    },
  );
}

const messageOf = (record: LogRecord) => record.message;

describe('normalize operator', () => {
  it('adds template and error_hash to each record, in order, keeping the other fields and the offset range', () => {
    const settled: string[] = [];
    const a = chunkOf(
      [
        { message: 'Invalid user admin from 10.0.0.1', service: 'sshd' },
        { message: 'Connection closed by 10.0.0.2 [preauth]', service: 'sshd' },
      ],
      0,
      settled,
    );
    const b = chunkOf([{ message: 'Connection closed by 10.0.0.3 [preauth]', service: 'web' }], 2, settled);
    new TestScheduler((actual, expected) => expect(actual).toEqual(expected)).run(({ cold, expectObservable }) => {
      const output = cold('a-b|', { a, b }).pipe(
        normalize(messageOf),
        map((chunk) => ({
          records: chunk.records,
          topic: chunk.topic,
          partition: chunk.partition,
          firstOffset: chunk.firstOffset,
          lastOffset: chunk.lastOffset,
          sizeBytes: chunk.sizeBytes,
        })),
      );
      const range = (c: Chunk<LogRecord>) => ({
        topic: 'raw-logs',
        partition: 0,
        firstOffset: c.firstOffset,
        lastOffset: c.lastOffset,
        sizeBytes: c.sizeBytes,
      });
      expectObservable(output).toBe('a-b|', {
        a: {
          records: [
            {
              message: a.records[0]!.message,
              service: 'sshd',
              template: 'Invalid user <*> from <*>',
              error_hash: normalizeMessage(a.records[0]!.message).errorHash,
            },
            {
              message: a.records[1]!.message,
              service: 'sshd',
              template: 'Connection closed by <*> [preauth]',
              error_hash: normalizeMessage(a.records[1]!.message).errorHash,
            },
          ],
          ...range(a),
        },
        b: {
          records: [
            {
              message: b.records[0]!.message,
              service: 'web',
              template: 'Connection closed by <*> [preauth]',
              error_hash: normalizeMessage(b.records[0]!.message).errorHash,
            },
          ],
          ...range(b),
        },
      });
    });
  });

  it('passes errors and completion through', () => {
    new TestScheduler((actual, expected) => expect(actual).toEqual(expected)).run(({ cold, expectObservable }) => {
      const error = new Error('source broke');
      expectObservable(cold<Chunk<LogRecord>>('--#', {}, error).pipe(normalize(messageOf))).toBe('--#', {}, error);
      expectObservable(cold<Chunk<LogRecord>>('---|').pipe(normalize(messageOf))).toBe('---|');
    });
  });

  it('keeps ack semantics: settling the output settles the input, once', () => {
    const settled: string[] = [];
    const outputs: Chunk<LogRecord & { template: string; error_hash: string }>[] = [];
    new TestScheduler((actual, expected) => expect(actual).toEqual(expected)).run(({ cold, flush }) => {
      const source = cold('ab|', {
        a: chunkOf([{ message: 'x 1', service: 's' }], 7, settled),
        b: chunkOf([{ message: 'y 2', service: 's' }], 8, settled),
      });
      source.pipe(normalize(messageOf)).subscribe((chunk) => outputs.push(chunk));
      flush();
    });
    expect(settled).toEqual([]);
    outputs[0]?.ack();
    outputs[0]?.ack();
    outputs[1]?.fail(new Error('sink rejected'));
    expect(settled).toEqual(['ack 7..7', 'fail 8..8: Error: sink rejected']);
  });

  it('matches normalizeMessage for any message', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'binary', maxLength: 200 }), { maxLength: 20 }), (messages) => {
        const settled: string[] = [];
        const outputs: [string, string][] = [];
        from([
          chunkOf(
            messages.map((message) => ({ message, service: 's' })),
            0,
            settled,
          ),
        ])
          .pipe(normalize(messageOf))
          .subscribe((chunk) => {
            for (const r of chunk.records) outputs.push([r.template, r.error_hash]);
          });
        expect(outputs).toEqual(
          messages.map((message): [string, string] => {
            const { template, errorHash } = normalizeMessage(message);
            return [template, errorHash];
          }),
        );
      }),
      { numRuns: 100 },
    );
  });
});
