import fc from 'fast-check';
import { lastValueFrom, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { parseLogEvent } from '../../src/domain/log-event.ts';
import {
  DEFAULT_SERVICES,
  generateLogs,
  type GeneratorOptions,
  type ServiceProfile,
} from '../../src/sources/generator.ts';

async function generated(options: GeneratorOptions) {
  const seconds = await lastValueFrom(generateLogs(options).pipe(toArray()));
  return seconds.flatMap((s) => s.logs);
}

// Text a user's service profile may hold: quotes, backslashes, control characters, line separators, astral symbols.
const awkwardText = fc.string({ unit: 'binary', minLength: 1, maxLength: 12 });
const template = fc
  .array(fc.oneof(awkwardText, fc.constantFrom('{ms}', '{n}', '{req}', '{ip}', '{word}', '{path}', '{unknown}')), {
    minLength: 1,
    maxLength: 5,
  })
  .map((parts) => parts.join(''));
const serviceProfile: fc.Arbitrary<ServiceProfile> = fc.record({
  name: awkwardText,
  weight: fc.constant(1),
  logger: awkwardText,
  version: awkwardText,
  paths: fc.array(
    fc.oneof(
      awkwardText,
      awkwardText.map((t) => `${t}/{id}`),
    ),
    { minLength: 1, maxLength: 3 },
  ),
  info: fc.array(template, { minLength: 1, maxLength: 3 }),
  warn: fc.array(template, { minLength: 1, maxLength: 3 }),
  errors: fc.array(
    fc.record({
      type: awkwardText,
      code: fc.oneof(awkwardText, fc.constant('X404')),
      message: template,
      frames: fc.array(awkwardText, { maxLength: 3 }),
    }),
    { minLength: 1, maxLength: 2 },
  ),
});

describe('generateLogs', () => {
  it("writes each log as JSON.stringify would write its fields, whatever text the services' profiles hold", async () => {
    await fc.assert(
      fc.asyncProperty(serviceProfile, awkwardText, fc.integer(), async (service, environment, seed) => {
        const logs = await generated({
          seed,
          rate: 200,
          durationMs: 3_000,
          startTime: Date.parse('2026-03-01T10:00:00Z'),
          speed: Infinity,
          dailyShape: false,
          services: [service],
          environments: [{ name: environment, weight: 1 }],
        });
        expect(logs.length).toBeGreaterThan(0);
        for (const log of logs) {
          const fields = JSON.parse(log.value) as Record<string, unknown>;
          expect(JSON.stringify(fields)).toBe(log.value);
          expect(fields).toMatchObject({ service: service.name, environment, version: service.version });
          expect(log.key).toBe(service.name);
          if (fields.level === 'ERROR' || fields.level === 'FATAL') {
            const error = service.errors.find((e) => e.type === fields.error_type && e.code === fields.error_code);
            expect(error).toBeDefined();
            expect(fields.stack_trace).toBe(
              [
                `${error!.type}: ${fields.message as string}`,
                ...error!.frames.map((f, i) => `    at ${f} (${service.logger.replace('.', '/')}.ts:${40 + i * 17})`),
              ].join('\n'),
            );
            if (error!.code.endsWith('404')) expect(fields.http_status).toBe(404);
            else expect([500, 501, 502, 503]).toContain(fields.http_status);
          } else {
            expect(fields.http_status).toBe(200);
          }
        }
      }),
      { numRuns: 60 },
    );
  });

  it('gives logs that pass validation, with millisecond timestamps inside their second, in second order', async () => {
    const startTime = Date.parse('2026-03-01T23:59:58.250Z');
    const seconds = await lastValueFrom(
      generateLogs({ seed: 5, rate: 2_000, durationMs: 4_000, startTime, speed: Infinity }).pipe(toArray()),
    );
    expect(seconds.map((s) => s.second)).toEqual(
      [0, 1, 2, 3].map((i) => Date.parse('2026-03-01T23:59:58Z') + i * 1000),
    );
    let checked = 0;
    for (const { second, logs } of seconds) {
      for (const log of logs) {
        const event = parseLogEvent(Buffer.from(log.value), { topic: 'logs', partition: 0, offset: 0 }, startTime);
        expect(event.log_id).toBe((JSON.parse(log.value) as { log_id: string }).log_id);
        const time = Date.parse((JSON.parse(log.value) as { timestamp: string }).timestamp);
        expect(time).toBeGreaterThanOrEqual(second);
        expect(time).toBeLessThan(second + 1000);
        checked += 1;
      }
    }
    expect(checked).toBeGreaterThan(1_000);
  });

  it('gives the same logs for the same seed and different ones for another', async () => {
    const options = {
      seed: 11,
      rate: 300,
      durationMs: 2_000,
      startTime: 0,
      speed: Infinity,
      services: DEFAULT_SERVICES.slice(0, 3),
    };
    const first = await generated(options);
    expect(await generated(options)).toEqual(first);
    expect((await generated({ ...options, seed: 12 })).map((l) => l.value)).not.toEqual(first.map((l) => l.value));
  });
});
