/**
 * Arbitrary input against the edge of the pipeline: parseLogEvent (bytes ->
 * event or InputError) and normalizeMessage (string -> template and hash).
 * No throw other than InputError may escape the parser, none at all the
 * normalizer, and work must grow linearly with input size: adversarial shapes
 * (long digit runs, unbalanced quotes, key=value chains, deep nesting) are
 * timed at n and 8n characters in the same run, and 8n may cost at most
 * 8 x a generous factor of n (a quadratic step would cost 64 x). Only ratios
 * of medians measured side by side are compared, never absolute times.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/core/errors.ts';
import { parseLogEvent } from '../../src/domain/log-event.ts';
import { normalizeMessage } from '../../src/domain/normalizer.ts';

const origin = { topic: 'raw-logs', partition: 0, offset: 0 };
const NOW = Date.UTC(2026, 5, 1);

function parseOrInputError(payload: Buffer): void {
  try {
    const event = parseLogEvent(payload, origin, NOW);
    // What is accepted is well-typed: the invariants downstream code relies on.
    expect(typeof event.message).toBe('string');
    expect(Number.isFinite(event.timestamp)).toBe(true);
    expect(['DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL']).toContain(event.level);
  } catch (error) {
    if (!(error instanceof InputError)) throw error;
    expect(error.message.length).toBeGreaterThan(0);
  }
}

const validish = fc.record(
  {
    log_id: fc.oneof(fc.uuid(), fc.string(), fc.integer()),
    timestamp: fc.oneof(
      fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
      fc.integer(),
      fc.double(),
      fc.string(),
    ),
    service: fc.oneof(fc.constantFrom('api', 'auth-service'), fc.string(), fc.integer()),
    environment: fc.oneof(fc.string(), fc.constant(null)),
    level: fc.oneof(fc.constantFrom('INFO', 'warn', 'Error', 'FATAL', 'LOUD'), fc.string(), fc.integer()),
    message: fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.integer(), fc.constant('')),
    http_status: fc.oneof(fc.integer(), fc.string(), fc.constant(null)),
    duration_ms: fc.oneof(fc.double(), fc.string(), fc.constant(null)),
    attributes: fc.oneof(
      fc.dictionary(fc.string(), fc.string()),
      fc.dictionary(fc.string(), fc.jsonValue()),
      fc.jsonValue(),
    ),
  },
  { requiredKeys: [] },
);

describe('parser and normalizer under arbitrary input', () => {
  it('the parser turns any bytes into an event or an InputError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4_096 }), (bytes) => parseOrInputError(Buffer.from(bytes))),
      { numRuns: 2_000 },
    );
  });

  it('the parser turns any JSON, and any near-valid event, into an event or an InputError', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => parseOrInputError(Buffer.from(JSON.stringify(value) ?? 'null'))),
      { numRuns: 1_000 },
    );
    fc.assert(
      fc.property(validish, (value) => parseOrInputError(Buffer.from(JSON.stringify(value)))),
      { numRuns: 2_000 },
    );
  });

  it('the normalizer never throws and is deterministic for any string', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 2_000 }),
          fc.string({ unit: 'binary', maxLength: 2_000 }),
          fc.string({ unit: 'grapheme', maxLength: 500 }),
        ),
        (text) => {
          const a = normalizeMessage(text);
          expect(normalizeMessage(text)).toEqual(a);
          expect(typeof a.template).toBe('string');
          expect(a.errorHash).toMatch(/^\d+$/);
        },
      ),
      { numRuns: 3_000 },
    );
  });

  it('the normalizer maps parsed messages of arbitrary bytes without throwing', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2_000 }), (bytes) => {
        expect(() => normalizeMessage(Buffer.from(bytes).toString('utf8'))).not.toThrow();
      }),
      { numRuns: 2_000 },
    );
  });

  /**
   * Per-call cost of `small` and of `large`, measured alternately in the same
   * loop (so a busy machine slows both alike), best of `runs` rounds; only
   * their ratio is used.
   */
  function costRatio(small: () => void, large: () => void, sizeFactor: number, runs = 11): number {
    let bestSmall = Infinity;
    let bestLarge = Infinity;
    small();
    large();
    for (let r = 0; r < runs; r += 1) {
      let start = process.hrtime.bigint();
      for (let i = 0; i < sizeFactor; i += 1) small();
      bestSmall = Math.min(bestSmall, Number(process.hrtime.bigint() - start) / sizeFactor);
      start = process.hrtime.bigint();
      large();
      bestLarge = Math.min(bestLarge, Number(process.hrtime.bigint() - start));
    }
    return bestLarge / bestSmall;
  }

  // Whole units only: where a string ends (inside a quote, say) changes the work per character, not how it grows.
  const units = (unit: string, count: number) => unit.repeat(count);
  const shapes: Record<string, string> = {
    digits: '1234567890',
    'unbalanced quotes': '"a \'b ',
    'key=value chain': 'k=v,',
    'hex and uuids': '0xdeadbeef 123e4567-e89b-12d3-a456-426614174000 ',
    'paths and urls': '/a/b/c.txt http://h.io/x?y=1 ',
    'ip and emails': '10.0.0.1 a@b.co ',
    'one long word': 'abcdefghij',
    whitespace: ' \t',
    brackets: '[{(<',
    'mixed unicode': 'é漢字🙂 ',
  };

  // 8 x the input may cost 8 x the work times a generous factor for GC and caches; quadratic work would cost 64 x.
  const LIMIT = 8 * 4;

  it('normalizer work grows linearly with message length', () => {
    const ratios: Record<string, number> = {};
    for (const [name, unit] of Object.entries(shapes)) {
      // 8n stays under the normalizer's 64 KiB cut, so all of it is worked on.
      const count = Math.floor(7_000 / unit.length);
      const small = units(unit, count);
      const large = units(unit, count * 8);
      ratios[name] = costRatio(
        () => normalizeMessage(small),
        () => normalizeMessage(large),
        8,
      );
    }
    for (const [name, ratio] of Object.entries(ratios))
      expect(ratio, `${name}: 8n costs ${ratio.toFixed(1)} x n`).toBeLessThan(LIMIT);
  });

  it('parser work grows linearly with payload size', () => {
    const ts = new Date(NOW).toISOString();
    const payloads: Record<string, (n: number) => Buffer> = {
      'long message': (n) =>
        Buffer.from(
          JSON.stringify({ timestamp: ts, service: 'api', level: 'INFO', message: units('abc 123 ', n / 8) }),
        ),
      'escaped message': (n) =>
        Buffer.from(
          JSON.stringify({ timestamp: ts, service: 'api', level: 'INFO', message: units('\\"\n\u00e9', n / 8) }),
        ),
      'deeply nested attributes': (n) =>
        Buffer.from(
          `{"timestamp":"${ts}","service":"api","level":"INFO","message":"m","attributes":{"a":${'['.repeat(n / 2)}${']'.repeat(n / 2)}}}`,
        ),
      'many attributes': (n) =>
        Buffer.from(
          JSON.stringify({
            timestamp: ts,
            service: 'api',
            level: 'INFO',
            message: 'm',
            attributes: Object.fromEntries(Array.from({ length: n / 16 }, (_, i) => [`k${i}`, 'v'])),
          }),
        ),
      'invalid utf-8': (n) => Buffer.concat([Buffer.from('{"message":"'), Buffer.alloc(n, 0xff), Buffer.from('"}')]),
    };
    const run = (b: Buffer) => () => {
      try {
        parseLogEvent(b, origin, NOW);
      } catch (error) {
        if (!(error instanceof InputError)) throw error;
      }
    };
    for (const [name, make] of Object.entries(payloads)) {
      // 8n stays under the 256 KiB payload limit, so the large one is parsed, not refused by size.
      const small = make(3_200);
      const large = make(25_600);
      expect(large.length).toBeLessThan(256 * 1024);
      const ratio = costRatio(run(small), run(large), 8);
      expect(ratio, `${name}: 8n costs ${ratio.toFixed(1)} x n`).toBeLessThan(LIMIT);
    }
  });
});
