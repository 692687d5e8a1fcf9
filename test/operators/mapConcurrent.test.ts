import fc from 'fast-check';
import { from, lastValueFrom, Subject, tap, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { createEnvelope } from '../../src/core/envelope.ts';
import type { Envelope } from '../../src/core/envelope.ts';
import { mapConcurrent } from '../../src/operators/mapConcurrent.ts';

interface Ledger {
  readonly acks: Map<number, number>;
  readonly failures: Map<number, unknown[]>;
}

function envelopesWithLedger(values: readonly number[]): { envelopes: Envelope<number>[]; ledger: Ledger } {
  const ledger: Ledger = { acks: new Map(), failures: new Map() };
  const envelopes = values.map((value, offset) =>
    createEnvelope(
      { value, eventTime: 0, origin: { topic: 'logs', partition: 0, offset } },
      {
        onAck: () => ledger.acks.set(offset, (ledger.acks.get(offset) ?? 0) + 1),
        onFail: (error) => ledger.failures.set(offset, [...(ledger.failures.get(offset) ?? []), error]),
      },
    ),
  );
  return { envelopes, ledger };
}

describe('mapConcurrent (properties, every completion order)', () => {
  it('never exceeds the bound; fails exactly the rejected envelopes; acks the rest through the output; keeps order when asked', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.array(fc.record({ value: fc.integer(), rejects: fc.boolean() }), { maxLength: 30 }),
        fc.integer({ min: 1, max: 5 }),
        fc.boolean(),
        async (s, inputs, concurrency, ordered) => {
          const { envelopes, ledger } = envelopesWithLedger(inputs.map((input) => input.value));
          let running = 0;
          let maxRunning = 0;
          const started: number[] = [];

          const output = from(envelopes).pipe(
            mapConcurrent(
              async (value: number, envelope) => {
                running += 1;
                maxRunning = Math.max(maxRunning, running);
                started.push(envelope.origin.offset);
                try {
                  await s.schedule(Promise.resolve(), `offset ${envelope.origin.offset}`);
                } finally {
                  running -= 1;
                }
                if (inputs[envelope.origin.offset]?.rejects === true) throw new Error(`bad ${envelope.origin.offset}`);
                return `v${value}`;
              },
              { concurrency, ordered },
            ),
            tap((envelope) => envelope.ack()),
            toArray(),
          );
          const emitted = await s.waitFor(lastValueFrom(output));

          expect(maxRunning).toBeLessThanOrEqual(concurrency);
          expect(maxRunning).toBe(Math.min(concurrency, inputs.length));
          expect(started).toEqual(inputs.map((_, offset) => offset));

          const expectedSuccesses = inputs.flatMap((input, offset) => (input.rejects ? [] : [offset]));
          const emittedOffsets = emitted.map((envelope) => envelope.origin.offset);
          if (ordered) expect(emittedOffsets).toEqual(expectedSuccesses);
          else expect([...emittedOffsets].sort((a, b) => a - b)).toEqual(expectedSuccesses);
          for (const envelope of emitted) expect(envelope.value).toBe(`v${inputs[envelope.origin.offset]?.value}`);

          inputs.forEach((input, offset) => {
            if (input.rejects) {
              expect(ledger.acks.has(offset)).toBe(false);
              expect(ledger.failures.get(offset)).toEqual([new Error(`bad ${offset}`)]);
            } else {
              expect(ledger.acks.get(offset)).toBe(1);
              expect(ledger.failures.has(offset)).toBe(false);
            }
          });
        },
      ),
    );
  });
});

describe('mapConcurrent', () => {
  it('fails only the envelope whose fn throws synchronously, and goes on', async () => {
    const { envelopes, ledger } = envelopesWithLedger([1, 2, 3]);
    const emitted = await lastValueFrom(
      from(envelopes).pipe(
        mapConcurrent(
          (value: number) => {
            if (value === 2) throw new TypeError('sync');
            return Promise.resolve(value * 10);
          },
          { concurrency: 2 },
        ),
        toArray(),
      ),
    );
    expect(emitted.map((envelope) => envelope.value).sort()).toEqual([10, 30]);
    expect(ledger.failures.get(1)).toEqual([new TypeError('sync')]);
    expect(ledger.failures.size).toBe(1);
  });

  it('holds an ordered slot until its turn, so finished results waiting behind a slow head count against the bound', async () => {
    const { envelopes } = envelopesWithLedger([0, 1, 2, 3]);
    const releases: (() => void)[] = [];
    const startedValues: number[] = [];
    const input = new Subject<Envelope<number>>();
    const emitted: number[] = [];
    input
      .pipe(
        mapConcurrent(
          (value: number) => {
            startedValues.push(value);
            return new Promise<number>((resolve) => releases.push(() => resolve(value)));
          },
          { concurrency: 2, ordered: true },
        ),
      )
      .subscribe((envelope) => emitted.push(envelope.value));
    for (const envelope of envelopes) input.next(envelope);

    const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
    expect(startedValues).toEqual([0, 1]);
    releases[1]?.();
    await settle();
    // 1 is done but waits for 0, still holding its slot: 2 must not start yet.
    expect(emitted).toEqual([]);
    expect(startedValues).toEqual([0, 1]);
    releases[0]?.();
    await settle();
    expect(emitted).toEqual([0, 1]);
    expect(startedValues).toEqual([0, 1, 2, 3]);
  });

  it('forwards a source error', async () => {
    const input = new Subject<Envelope<number>>();
    const result = lastValueFrom(
      input.pipe(mapConcurrent((value: number) => Promise.resolve(value), { concurrency: 1 })),
    );
    input.error(new Error('source down'));
    await expect(result).rejects.toThrow('source down');
  });

  it('rejects an invalid concurrency', () => {
    expect(() => mapConcurrent(async (value: number) => value, { concurrency: 0 })).toThrow(RangeError);
    expect(() => mapConcurrent(async (value: number) => value, { concurrency: 2.5 })).toThrow(RangeError);
  });
});
