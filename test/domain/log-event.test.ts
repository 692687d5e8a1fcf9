import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/core/errors.ts';
import {
  deriveLogId,
  fastValidate,
  parseLogEvent,
  parseLogEventKey,
  schemaValidate,
} from '../../src/domain/log-event.ts';

const origin = { topic: 'raw-logs', partition: 2, offset: 41 };
const now = Date.UTC(2026, 10, 27, 12);
const valid = {
  timestamp: '2026-11-27T11:59:00.123Z',
  service: 'payment-service',
  level: 'error',
  message: 'card declined for order 1234',
};
const parse = (value: unknown) =>
  parseLogEvent(Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)), origin, now);
const reasonOf = (value: unknown): string => {
  try {
    parse(value);
  } catch (error) {
    expect(error).toBeInstanceOf(InputError);
    return (error as Error).message;
  }
  throw new Error('expected a rejection');
};

describe('parseLogEvent', () => {
  it('accepts the required fields, normalizes the level and derives a stable id from the Kafka coordinates', () => {
    const event = parse(valid);
    expect(event).toMatchObject({
      service: 'payment-service',
      level: 'ERROR',
      environment: 'unknown',
      timestamp: Date.parse(valid.timestamp),
      http_status: null,
    });
    expect(event.log_id).toBe(deriveLogId(origin));
    expect(parse(valid).log_id).toBe(event.log_id);
    expect(deriveLogId({ ...origin, offset: 42 })).not.toBe(event.log_id);
  });

  it('accepts WARNING and epoch-millisecond timestamps, and keeps a given log_id', () => {
    const id = '6f1c1c8e-4a3e-4b8e-9c53-0d3a4e1f0a01';
    const event = parse({
      ...valid,
      level: 'WARNING',
      timestamp: now - 1_000,
      log_id: id,
      http_status: 503,
      attributes: { region: 'eu' },
    });
    expect(event).toMatchObject({
      level: 'WARN',
      timestamp: now - 1_000,
      log_id: id,
      http_status: 503,
      attributes: { region: 'eu' },
    });
  });

  it.each([
    ['not json', 'message is not valid JSON'],
    ['[1,2]', 'message is not a JSON object'],
    [{ ...valid, level: 'LOUD' }, 'level: unknown level "LOUD"'],
    [{ ...valid, service: undefined }, 'service: expected string'],
    [{ ...valid, message: '' }, 'message: is empty'],
    [{ ...valid, timestamp: 'yesterday' }, 'timestamp: not an RFC 3339 date-time'],
    // Date.parse rolled these over into the next month or day.
    [{ ...valid, timestamp: '2026-11-31T12:00:00Z' }, 'timestamp: 2026-11 has no day 31'],
    [{ ...valid, timestamp: '2026-02-29T12:00:00Z' }, 'timestamp: 2026-02 has no day 29'],
    [{ ...valid, timestamp: '2026-11-27T24:00:00Z' }, 'timestamp: hour 24 does not exist'],
    [{ ...valid, timestamp: '2026-11-27T11:59:00+25:00' }, 'timestamp: offset +25:00 does not exist'],
    // toUpperCase reads the dotless "ı" as "I"; levels are ASCII words.
    [{ ...valid, level: 'ınfo' }, 'level: unknown level "ınfo"'],
    [{ ...valid, level: 'constructor' }, 'level: unknown level "constructor"'],
    [{ ...valid, timestamp: '1999-01-01T00:00:00Z' }, 'older than the retention window'],
    [{ ...valid, timestamp: '2030-01-01T00:00:00Z' }, 'too far in the future'],
    // Numbers past the range a Date holds once escaped as a RangeError from the reason's own wording.
    [
      { ...valid, timestamp: -8_640_000_000_000_001 },
      'timestamp: epoch milliseconds outside the range a date can hold',
    ],
    [{ ...valid, timestamp: 8_640_000_000_000_001 }, 'timestamp: epoch milliseconds outside the range a date can hold'],
    [{ ...valid, timestamp: 1e300 }, 'timestamp: epoch milliseconds outside the range a date can hold'],
    [{ ...valid, timestamp: 8_640_000_000_000_000 }, 'too far in the future'],
    [{ ...valid, timestamp: -8_640_000_000_000_000 }, 'older than the retention window'],
    [{ ...valid, http_status: 'five hundred' }, 'http_status'],
    [{ ...valid, log_id: 'nope' }, 'log_id: is not a UUID'],
    [{ ...valid, service: "x'; DROP TABLE logs; --" }, 'service: must be 1-128 letters'],
    [
      { ...valid, attributes: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, 'v'])) },
      'more than 64 entries',
    ],
  ])('rejects %j with a reason naming the problem', (input, reason) => {
    expect(reasonOf(input)).toContain(reason);
  });

  it('rejects oversized, non-UTF-8 and NUL-carrying payloads before parsing', () => {
    expect(() => parseLogEvent(Buffer.alloc(300 * 1024, 0x61), origin, now)).toThrow(/over the 262144-byte limit/);
    expect(() => parseLogEvent(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), origin, now)).toThrow(/not valid UTF-8/);
    expect(() => parseLogEvent(Buffer.from('{"message":"a\u0000b"}'), origin, now)).toThrow(/NUL/);
  });

  it.each([
    // ClickHouse refused the first with code 25 and stopped ingest; PostgreSQL's jsonb refuses both.
    [
      '{"timestamp":"2026-11-27T11:59:00Z","service":"api","level":"ERROR","message":"lone \\ud800 surrogate"}',
      'message: contains a lone UTF-16 surrogate',
    ],
    [
      '{"timestamp":"2026-11-27T11:59:00Z","service":"api","level":"ERROR","message":"low \\uDC00 first"}',
      'message: contains a lone UTF-16 surrogate',
    ],
    [
      '{"timestamp":"2026-11-27T11:59:00Z","service":"api","level":"ERROR","message":"m","host":"h\\ud83d"}',
      'host: contains a lone UTF-16 surrogate',
    ],
    [
      '{"timestamp":"2026-11-27T11:59:00Z","service":"api","level":"ERROR","message":"m","attributes":{"k\\udbff":"v"}}',
      'attributes.k\\udbff: contains a lone UTF-16 surrogate',
    ],
    [
      '{"timestamp":"2026-11-27T11:59:00Z","service":"api","level":"ERROR","message":"m","attributes":{"k":"\\u0000"}}',
      'attributes.k: contains NUL characters',
    ],
    [
      '{"timestamp":"2026-11-27T11:59:00Z","service":"api\\ud800","level":"ERROR","message":"m"}',
      'service: must be 1-128 letters',
    ],
  ])('rejects the escaped text %s that no store accepts', (payload, reason) => {
    expect(reasonOf(payload)).toContain(reason);
  });

  it('keeps a U+FFFD the producer sent: only bytes that are not UTF-8 are refused as such', () => {
    expect(parse({ ...valid, message: 'decoded badly: \ufffd\ufffd' }).message).toBe('decoded badly: \ufffd\ufffd');
    expect(() => parseLogEvent(Buffer.from([0x7b, 0xc3, 0x28, 0x7d]), origin, now)).toThrow(/not valid UTF-8/);
  });

  it('keeps a surrogate pair, escaped or raw: only lone halves are refused', () => {
    expect(
      parse('{"timestamp":"2026-11-27T11:59:00Z","service":"api","level":"ERROR","message":"pair \\ud83d\\ude00 ok"}')
        .message,
    ).toBe('pair 😀 ok');
    expect(parse({ ...valid, message: 'raw 😀 pair' }).message).toBe('raw 😀 pair');
  });

  it('reads a timestamp without a zone as UTC whatever the host time zone, and honours an explicit offset', () => {
    const saved = process.env.TZ;
    process.env.TZ = 'America/New_York';
    try {
      expect(new Date(2026, 10, 27).getTimezoneOffset()).toBe(300);
      expect(parse({ ...valid, timestamp: '2026-11-27T11:04:31' }).timestamp).toBe(Date.UTC(2026, 10, 27, 11, 4, 31));
      expect(parse({ ...valid, timestamp: '2026-11-27 11:04:31.5' }).timestamp).toBe(
        Date.UTC(2026, 10, 27, 11, 4, 31, 500),
      );
      expect(parse({ ...valid, timestamp: '2026-11-27T06:04:31-05:00' }).timestamp).toBe(
        Date.UTC(2026, 10, 27, 11, 4, 31),
      );
    } finally {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    }
  });

  it('dead-letters a Kafka tombstone as an empty value, not as bad JSON', () => {
    expect(() => parseLogEvent(Buffer.alloc(0), origin, now)).toThrow(/empty \(a Kafka tombstone or an empty value\)/);
    expect(() => parseLogEventKey(Buffer.alloc(0), now)).toThrow(/tombstone/);
  });

  it('never throws anything but InputError on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        try {
          parseLogEvent(Buffer.from(bytes), origin, now);
        } catch (error) {
          expect(error).toBeInstanceOf(InputError);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('fastValidate agrees with the schema', () => {
  const text = (max: number) =>
    fc.oneof(fc.string({ maxLength: max + 2 }), fc.string({ minLength: max - 1, maxLength: max + 1 }));
  const wrong = fc.oneof(
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.constant([]),
    fc.constant({}),
    fc.string(),
  );
  // Mostly valid values, so a good share of events passes every field and the accepting path is exercised too.
  const mostly = <T>(valid: fc.Arbitrary<T>, ...others: fc.Arbitrary<unknown>[]) =>
    fc.oneof(
      { arbitrary: valid as fc.Arbitrary<unknown>, weight: 12 },
      ...others.map((arbitrary) => ({ arbitrary, weight: 1 })),
    );
  const optionalText = (max: number) => mostly(fc.string({ maxLength: 12 }), text(max), fc.constant(null), wrong);
  const event = fc.record(
    {
      log_id: mostly(
        fc.uuid(),
        fc.uuid().map((u) => u.toUpperCase()),
        fc.constant('00000000-0000-0000-0000-000000000000'),
        fc.string(),
        wrong,
      ),
      timestamp: mostly(
        fc
          .date({ min: new Date(now - 1e9), max: new Date(now + 1e6), noInvalidDate: true })
          .map((d) => d.toISOString()),
        fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
        fc.double(),
        fc.integer(),
        fc.string({ maxLength: 70 }),
        wrong,
      ),
      service: mostly(
        fc.constantFrom('payment-service', 'a', 'x.y_z:1-2', '-bad', 'a'.repeat(128), 'a'.repeat(129)),
        fc.string(),
        wrong,
      ),
      environment: optionalText(64),
      level: mostly(fc.constantFrom('INFO', 'error', 'Warning', 'LOUD'), text(16), wrong),
      message: mostly(fc.string({ minLength: 1 }), fc.constant(''), wrong),
      host: optionalText(255),
      region: optionalText(64),
      version: optionalText(64),
      logger: optionalText(255),
      trace_id: optionalText(128),
      span_id: optionalText(128),
      request_id: optionalText(128),
      user_id: optionalText(256),
      session_id: optionalText(256),
      http_method: optionalText(16),
      http_path: optionalText(2048),
      http_status: mostly(
        fc.integer({ min: 100, max: 599 }),
        fc.integer({ min: 90, max: 610 }),
        fc.double({ min: 99, max: 600 }),
        fc.constant(null),
        wrong,
      ),
      duration_ms: mostly(
        fc.double({ min: 0, max: 86_400_000, noNaN: true }),
        fc.double({ min: -1, max: 86_400_001 }),
        fc.constant(-0),
        fc.constant(86_400_000),
        fc.constant(null),
        wrong,
      ),
      error_type: optionalText(255),
      error_code: optionalText(128),
      stack_trace: optionalText(64 * 1024),
      attributes: mostly(
        fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 20 }), { maxKeys: 3 }),
        fc.dictionary(fc.string({ maxLength: 130 }), fc.string({ maxLength: 20 }), { maxKeys: 5 }),
        fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer(), fc.constant(null)), { maxKeys: 3 }),
        fc.constant({ k: 'v'.repeat(4097) }),
        fc.constant(null),
        wrong,
      ),
      extra: fc.anything(),
    },
    { requiredKeys: [] },
  );
  // Through JSON, as payloads arrive: no undefined, no -0 keys lost, numbers as JSON writes them.
  const viaJson = (value: unknown) => JSON.parse(JSON.stringify(value)) as Record<string, unknown>;

  it('accepts exactly what the schema accepts, with the same fields', () => {
    let accepted = 0;
    fc.assert(
      fc.property(event, (raw) => {
        const json = viaJson(raw);
        const fast = fastValidate(json);
        let slow: unknown;
        let rejected = false;
        try {
          slow = schemaValidate(json);
        } catch (error) {
          expect(error).toBeInstanceOf(InputError);
          rejected = true;
        }
        if (fast !== undefined) {
          accepted += 1;
          expect(rejected).toBe(false);
          expect(fast).toEqual(slow);
        } else if (!rejected) {
          // The one valid shape the fast path leaves to the schema on purpose (see the "__proto__" test below).
          expect(Object.hasOwn((json.attributes ?? {}) as object, '__proto__'), JSON.stringify(json)).toBe(true);
        }
      }),
      { numRuns: 1_500 },
    );
    // Both verdicts must have been exercised for the agreement to mean anything.
    expect(accepted).toBeGreaterThan(50);
    expect(accepted).toBeLessThan(1_500);
  });

  it('agrees on mutations of a valid event, one field at a time', () => {
    const base = {
      log_id: '6f1c1c8e-4a3e-4b8e-9c53-0d3a4e1f0a01',
      timestamp: '2026-11-27T11:59:00.123Z',
      service: 'payment-service',
      environment: 'production',
      level: 'ERROR',
      message: 'Card declined for payment "req-1"',
      host: 'h',
      http_status: 500,
      duration_ms: 12.5,
      attributes: { pod: 'p-1' },
    };
    expect(fastValidate(viaJson(base))).toEqual(schemaValidate(viaJson(base)));
    fc.assert(
      fc.property(fc.constantFrom(...Object.keys(base), 'stack_trace', 'user_id'), fc.anything(), (key, value) => {
        const json = viaJson({ ...base, [key]: value });
        const fast = fastValidate(json);
        let slow: unknown;
        try {
          slow = schemaValidate(json);
        } catch {
          expect(fast).toBeUndefined();
          return;
        }
        expect(fast).toEqual(slow);
      }),
      { numRuns: 1_000 },
    );
  });

  it('leaves a "__proto__" attribute to the schema', () => {
    const json = JSON.parse(
      `{"timestamp":"2026-11-27T11:59:00Z","service":"s","level":"INFO","message":"m","attributes":{"__proto__":"x","a":"b"}}`,
    ) as Record<string, unknown>;
    expect(fastValidate(json)).toBeUndefined();
    expect(schemaValidate(json).attributes).toEqual({ a: 'b' });
  });

  it('gives parseLogEventKey the verdict and fields of parseLogEvent', () => {
    fc.assert(
      fc.property(event, (raw) => {
        const payload = Buffer.from(JSON.stringify(raw));
        let full: ReturnType<typeof parseLogEvent> | undefined;
        let fullError: string | undefined;
        try {
          full = parseLogEvent(payload, origin, now);
        } catch (error) {
          fullError = (error as Error).message;
        }
        let key: ReturnType<typeof parseLogEventKey> | undefined;
        let keyError: string | undefined;
        try {
          key = parseLogEventKey(payload, now);
        } catch (error) {
          keyError = (error as Error).message;
        }
        expect(keyError).toBe(fullError);
        if (full !== undefined)
          expect(key).toEqual({
            service: full.service,
            environment: full.environment,
            level: full.level,
            timestamp: full.timestamp,
          });
      }),
      { numRuns: 500 },
    );
  });
});
