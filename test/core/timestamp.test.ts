import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseTimestamp } from '../../src/core/timestamp.ts';

const ms = (text: string): number => {
  const result = parseTimestamp(text);
  if (!result.ok) throw new Error(result.reason);
  return result.ms;
};

/** Date.UTC without its reading of years 0-99 as 1900-1999. */
function utc(year: number, month: number, day: number, hour: number, minute: number, second: number, ms: number) {
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, ms);
  return date.getTime();
}

function daysIn(year: number, month: number): number {
  const date = new Date(0);
  date.setUTCFullYear(year, month, 0);
  return date.getUTCDate();
}

describe('parseTimestamp', () => {
  it('reads every instant Date#toISOString prints back to the same instant', () => {
    fc.assert(
      fc.property(
        fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }),
        (date) => {
          expect(ms(date.toISOString())).toBe(date.getTime());
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('reads a missing zone as UTC, offsets in every spelling, and a space for T', () => {
    const instant = Date.UTC(2026, 11, 6, 19, 4, 31);
    for (const text of [
      '2026-12-06T19:04:31',
      '2026-12-06 19:04:31',
      '2026-12-06T19:04:31Z',
      '2026-12-06T21:04:31+02:00',
      '2026-12-06T14:04:31-0500',
      '2026-12-06T20:04:31+01',
    ]) {
      expect(ms(text), text).toBe(instant);
    }
    expect(ms('2026-12-06')).toBe(Date.UTC(2026, 11, 6));
    expect(ms('2026-12-06T19:04:31.123456789Z')).toBe(instant + 123);
    expect(ms('0099-01-01T00:00:00Z')).toBe(new Date('0099-01-01T00:00:00Z').getTime());
  });

  it('refuses impossible dates and times with the reason instead of rolling over', () => {
    const reason = (text: string) => {
      const result = parseTimestamp(text);
      return result.ok ? 'accepted' : result.reason;
    };
    expect(reason('2026-11-31T12:00:00Z')).toBe('2026-11 has no day 31');
    expect(reason('2023-02-29')).toBe('2023-02 has no day 29');
    expect(parseTimestamp('2024-02-29').ok).toBe(true);
    expect(parseTimestamp('2100-02-29').ok).toBe(false);
    expect(reason('2026-13-01')).toBe('month 13 does not exist');
    expect(reason('2026-12-06T19:60:00Z')).toBe('minute 60 does not exist');
    expect(reason('2026-12-06T19:00:00+24:00')).toBe('offset +24:00 does not exist');
    expect(reason('06/12/2026')).toMatch(/not an RFC 3339 date-time/);
    expect(reason('2026-12-06T19:04:31 GMT')).toMatch(/not an RFC 3339 date-time/);
  });

  it('reads the toISOString shape exactly as the same instant spelled with an offset, impossible fields included', () => {
    const field = (max: number, width: number) =>
      fc.integer({ min: 0, max }).map((n) => String(n).padStart(width, '0'));
    fc.assert(
      fc.property(
        // Each field reaches just past its range, so most draws are real instants and the rest are off by little.
        fc.tuple(field(9999, 4), field(13, 2), field(32, 2), field(24, 2), field(60, 2), field(61, 2), field(999, 3)),
        ([y, mo, d, h, mi, s, frac]) => {
          const local = `${y}-${mo}-${d}T${h}:${mi}:${s}.${frac}`;
          const read = parseTimestamp(`${local}Z`);
          expect(read).toEqual(parseTimestamp(`${local}+00:00`));
          // Both spellings share the parser's final check, so the instant is also held to Date's own calendar.
          const [year, month, day, hour, minute, second, milli] = [y, mo, d, h, mi, s, frac].map(Number) as [
            number,
            number,
            number,
            number,
            number,
            number,
            number,
          ];
          const real =
            month >= 1 &&
            month <= 12 &&
            day >= 1 &&
            day <= daysIn(year, month) &&
            hour <= 23 &&
            minute <= 59 &&
            second <= 60;
          expect(read.ok, local).toBe(real);
          if (read.ok)
            expect(read.ms).toBe(
              second === 60
                ? utc(year, month, day, hour, minute, 59, 999)
                : utc(year, month, day, hour, minute, second, milli),
            );
        },
      ),
      { numRuns: 5_000 },
    );
    for (const odd of ['2026-12-06T19:04:3a.000Z', '2026-12-06T19:04:31.00-Z', '2026-12-06t19:04:31.000z']) {
      expect(parseTimestamp(odd)).toEqual(parseTimestamp(odd.replace(/z$/i, '+00:00')));
    }
  });

  it('takes a leap second as the last millisecond of its minute', () => {
    expect(ms('2016-12-31T23:59:60Z')).toBe(Date.UTC(2016, 11, 31, 23, 59, 59, 999));
  });
});
