import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.ts';
import { deriveLogId, parseLogEvent } from '../src/log-event.ts';

const origin = { topic: 'raw-logs', partition: 2, offset: 41 };
const now = Date.UTC(2026, 10, 27, 12);
const valid = { timestamp: '2026-11-27T11:59:00.123Z', service: 'payment-service', level: 'error', message: 'card declined for order 1234' };
const parse = (value: unknown) => parseLogEvent(Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)), origin, now);
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
    expect(event).toMatchObject({ service: 'payment-service', level: 'ERROR', environment: 'unknown', timestamp: Date.parse(valid.timestamp), http_status: null });
    expect(event.log_id).toBe(deriveLogId(origin));
    expect(parse(valid).log_id).toBe(event.log_id);
    expect(deriveLogId({ ...origin, offset: 42 })).not.toBe(event.log_id);
  });

  it('accepts WARNING and epoch-millisecond timestamps, and keeps a given log_id', () => {
    const id = '6f1c1c8e-4a3e-4b8e-9c53-0d3a4e1f0a01';
    const event = parse({ ...valid, level: 'WARNING', timestamp: now - 1_000, log_id: id, http_status: 503, attributes: { region: 'eu' } });
    expect(event).toMatchObject({ level: 'WARN', timestamp: now - 1_000, log_id: id, http_status: 503, attributes: { region: 'eu' } });
  });

  it.each([
    ['not json', 'message is not valid JSON'],
    ['[1,2]', 'message is not a JSON object'],
    [{ ...valid, level: 'LOUD' }, 'level: unknown level "LOUD"'],
    [{ ...valid, service: undefined }, 'service: expected string'],
    [{ ...valid, message: '' }, 'message: is empty'],
    [{ ...valid, timestamp: 'yesterday' }, 'timestamp: not an ISO-8601'],
    [{ ...valid, timestamp: '1999-01-01T00:00:00Z' }, 'older than the retention window'],
    [{ ...valid, timestamp: '2030-01-01T00:00:00Z' }, 'too far in the future'],
    [{ ...valid, http_status: 'five hundred' }, 'http_status'],
    [{ ...valid, log_id: 'nope' }, 'log_id: is not a UUID'],
    [{ ...valid, service: "x'; DROP TABLE logs; --" }, 'service: must be 1-128 letters'],
    [{ ...valid, attributes: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, 'v'])) }, 'more than 64 entries'],
  ])('rejects %j with a reason naming the problem', (input, reason) => {
    expect(reasonOf(input)).toContain(reason);
  });

  it('rejects oversized, non-UTF-8 and NUL-carrying payloads before parsing', () => {
    expect(() => parseLogEvent(Buffer.alloc(300 * 1024, 0x61), origin, now)).toThrow(/over the 262144-byte limit/);
    expect(() => parseLogEvent(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), origin, now)).toThrow(/not valid UTF-8/);
    expect(() => parseLogEvent(Buffer.from('{"message":"a\u0000b"}'), origin, now)).toThrow(/NUL/);
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
