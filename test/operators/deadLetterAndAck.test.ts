import { from, lastValueFrom, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { createEnvelope, type Envelope } from '../../src/core/envelope.ts';
import { ErrorCodes, InputError, LogflowError } from '../../src/core/errors.ts';
import { deadLetterAndAck } from '../../src/operators/deadLetterAndAck.ts';

const fast = { maxAttempts: 5, baseDelayMs: 0, maxDelayMs: 0, jitter: 'none' } as const;

function records(n: number, log: string[]): Envelope<number>[] {
  return Array.from({ length: n }, (_, offset) =>
    createEnvelope(
      { value: offset, eventTime: 0, origin: { topic: 't', partition: 0, offset } },
      { onAck: () => log.push(`ack ${offset}`), onFail: () => log.push(`fail ${offset}`) },
    ),
  );
}

describe('deadLetterAndAck', () => {
  it('sends the failures (retrying retriable errors) before it acks every record of the batch', async () => {
    const log: string[] = [];
    let down = 1;
    const batch = { records: records(3, log), failures: ['bad 1'] };
    const empty = { records: records(1, []), failures: [] as string[] };
    const out = await lastValueFrom(
      from([batch, empty]).pipe(
        deadLetterAndAck(async (failures) => {
          if (down-- > 0) throw new LogflowError(ErrorCodes.SINK_UNAVAILABLE, 'down', { retriable: true });
          log.push(`sent ${failures.join()}`);
        }, fast),
        toArray(),
      ),
    );
    expect(out).toEqual([batch, empty]);
    expect(log).toEqual(['sent bad 1', 'ack 0', 'ack 1', 'ack 2']);
  });

  it('acks nothing when the letters cannot be sent, and errors the stream', async () => {
    const log: string[] = [];
    const refused = new InputError('too large');
    const run = lastValueFrom(
      from([{ records: records(2, log), failures: ['x'] }]).pipe(deadLetterAndAck(() => Promise.reject(refused), fast)),
    );
    await expect(run).rejects.toBe(refused);
    expect(log).toEqual([]);
  });
});
