import fc from 'fast-check';
import { lastValueFrom, take, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { generateLogsInWorker, packSecond, unpackSecond } from '../../src/sources/generator-worker.ts';
import { generateLogs, type Scenario } from '../../src/sources/generator.ts';

const scenario: Scenario = {
  name: 'worker-test',
  incidents: [
    {
      kind: 'spike',
      service: 'payment-service',
      environment: 'production',
      level: 'ERROR',
      startMinute: 0,
      durationMinutes: 1,
      multiplier: 8,
    },
  ],
};

describe('the generator on a worker thread', () => {
  it('produces what generateLogs produces for the same options, as bytes', async () => {
    const options = {
      seed: 42,
      rate: 400,
      durationMs: 20_000,
      startTime: Date.parse('2026-11-28T10:00:00Z'),
      speed: Infinity,
      invalidRate: 0.02,
      scenario,
    };
    const inThread = await lastValueFrom(generateLogs(options).pipe(toArray()));
    const inWorker = await lastValueFrom(generateLogsInWorker(options).pipe(toArray()));
    expect(inWorker.map((s) => s.second)).toEqual(inThread.map((s) => s.second));
    expect(
      inWorker.flatMap((s) =>
        s.logs.map((l) => [l.key, Buffer.isBuffer(l.value) ? l.value.toString('utf8') : l.value]),
      ),
    ).toEqual(inThread.flatMap((s) => s.logs.map((l) => [l.key, l.value])));
    expect(inThread.flatMap((s) => s.logs).length).toBeGreaterThan(1_000);
  });

  it('stops the worker when unsubscribed, long before a day of logs is made', async () => {
    const started = Date.now();
    const first = await lastValueFrom(
      generateLogsInWorker({ seed: 1, rate: 100, durationMs: 86_400_000, startTime: Date.now(), speed: 1 }).pipe(
        take(2),
        toArray(),
      ),
    );
    expect(first).toHaveLength(2);
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it('makes no more than maxAhead seconds that are not yet released, and goes on as they are', async () => {
    const received: Array<{ second: number; release: () => void }> = [];
    // As fast as it can, for an hour of event time: without the bound it would deliver thousands of seconds at once.
    const subscription = generateLogsInWorker(
      { seed: 7, rate: 20, durationMs: 3_600_000, startTime: Date.parse('2026-11-28T10:00:00Z'), speed: Infinity },
      2,
    ).subscribe((s) => received.push(s));
    const settle = async (count: number) => {
      for (let waited = 0; received.length < count && waited < 20_000; waited += 20)
        await new Promise((r) => setTimeout(r, 20));
      // Then a while longer: a worker past its bound would deliver more now.
      await new Promise((r) => setTimeout(r, 750));
    };
    try {
      await settle(2);
      expect(received).toHaveLength(2);
      received[0]!.release();
      received[0]!.release(); // twice is once
      await settle(3);
      expect(received).toHaveLength(3);
      received[1]!.release();
      received[2]!.release();
      await settle(5);
      expect(received).toHaveLength(5);
      expect(received.map((s) => s.second)).toEqual([0, 1, 2, 3, 4].map((i) => received[0]!.second + i * 1_000));
    } finally {
      subscription.unsubscribe();
    }
    expect(() => generateLogsInWorker({ seed: 1, rate: 1, durationMs: 1_000, startTime: 0, speed: 1 }, 0)).toThrow(
      /maxAhead must be an integer >= 1/,
    );
  });

  it("fails with the generator's own error for bad options", async () => {
    await expect(
      lastValueFrom(generateLogsInWorker({ seed: 1, rate: -1, durationMs: 1_000, startTime: Date.now(), speed: 1 })),
    ).rejects.toThrow(/generator worker failed: .*rate, duration and speed must be positive/);
  });

  it('packs and unpacks a second without changing a key or a byte', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            key: fc.constantFrom('a', 'b', 'ü-service'),
            value: fc.string({ unit: 'grapheme', maxLength: 60 }),
            valid: fc.boolean(),
          }),
          { maxLength: 200 },
        ),
        fc.integer(),
        (logs, second) => {
          const unpacked = unpackSecond(packSecond(second, logs));
          expect(unpacked.second).toBe(second);
          expect(unpacked.logs.map((l) => [l.key, (l.value as Buffer).toString('utf8')])).toEqual(
            logs.map((l) => [l.key, l.value]),
          );
        },
      ),
    );
  });
});
