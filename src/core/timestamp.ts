/**
 * Timestamps from outside (log events, CLI flags, stored text), read one way
 * everywhere: RFC 3339 / ISO 8601 date-times, `T` or a space between date and
 * time. A timestamp without a zone is UTC, never the host's time zone (the
 * same text must mean the same instant on every machine, as ClickHouse reads
 * it). Impossible dates (2026-11-31, 25:00) are refused with the reason
 * instead of rolling over as Date.parse does.
 */

const PATTERN =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?(?:\s*(Z|[+-]\d{2}(?::?\d{2})?))?$/i;

/**
 * The largest distance from the epoch a Date can hold (±100,000,000 days); past it the date cannot be stored or
 * printed.
 */
export const MAX_DATE_MS = 8.64e15;

export type TimestampResult =
  | { readonly ok: true; readonly ms: number }
  | { readonly ok: false; readonly reason: string };

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const;

function daysIn(year: number, month: number): number {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return month === 2 && leap ? 29 : DAYS_IN_MONTH[month - 1]!;
}

/** Epoch milliseconds of an RFC 3339 date-time (a missing zone is UTC), or why it is not one. */
export function parseTimestamp(text: string): TimestampResult {
  return readIso(text) ?? readPattern(text);
}

/**
 * Date#toISOString's shape, `2026-03-01T10:00:00.000Z`, which nearly every event carries, read by character
 * codes: the pattern and its nine substrings were a measurable share of ingest's parse. Undefined for any other
 * shape or a non-digit where a digit belongs, which readPattern then reads.
 */
function readIso(text: string): TimestampResult | undefined {
  if (
    text.length !== 24 ||
    text.charCodeAt(4) !== 45 || // -
    text.charCodeAt(7) !== 45 ||
    text.charCodeAt(10) !== 84 || // T
    text.charCodeAt(13) !== 58 || // :
    text.charCodeAt(16) !== 58 ||
    text.charCodeAt(19) !== 46 || // .
    text.charCodeAt(23) !== 90 // Z
  )
    return undefined;
  const year = digitsAt(text, 0, 4);
  const month = digitsAt(text, 5, 2);
  const day = digitsAt(text, 8, 2);
  const hour = digitsAt(text, 11, 2);
  const minute = digitsAt(text, 14, 2);
  const second = digitsAt(text, 17, 2);
  const millis = digitsAt(text, 20, 3);
  if (Number.isNaN(year + month + day + hour + minute + second + millis)) return undefined;
  return instant(year, month, day, hour, minute, second, millis, 0);
}

/** Every other spelling RFC 3339 and ISO 8601 allow (see PATTERN). */
function readPattern(text: string): TimestampResult {
  const m = PATTERN.exec(text);
  if (m === null) return { ok: false, reason: 'not an RFC 3339 date-time such as 2026-03-01T10:00:00Z' };
  const [, y, mo, d, h = '0', mi = '0', s = '0', fraction = '', zone] = m;
  let offsetMinutes = 0;
  if (zone !== undefined && zone.toUpperCase() !== 'Z') {
    const digits = zone.slice(1).replace(':', '');
    const offsetHours = Number(digits.slice(0, 2));
    const offsetMins = digits.length > 2 ? Number(digits.slice(2)) : 0;
    if (offsetHours > 23 || offsetMins > 59) return { ok: false, reason: `offset ${zone} does not exist` };
    offsetMinutes = (zone.startsWith('-') ? -1 : 1) * (offsetHours * 60 + offsetMins);
  }
  const millis = fraction === '' ? 0 : Number(fraction.slice(0, 3).padEnd(3, '0'));
  return instant(Number(y), Number(mo), Number(d), Number(h), Number(mi), Number(s), millis, offsetMinutes);
}

/** The value of the `count` ASCII digits at `at`, or NaN when one is not a digit. */
function digitsAt(text: string, at: number, count: number): number {
  let value = 0;
  for (let i = at; i < at + count; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return Number.NaN;
    value = value * 10 + digit;
  }
  return value;
}

const pad = (value: number, width: number): string => String(value).padStart(width, '0');

/**
 * The instant of date-time fields as both readers find them (the pattern gives each field the width it has here,
 * so a reason quotes the text), or which field is impossible: 2026-11-31 and 25:00 are refused, not rolled over.
 */
function instant(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
  millis: number,
  offsetMinutes: number,
): TimestampResult {
  if (month < 1 || month > 12) return { ok: false, reason: `month ${pad(month, 2)} does not exist` };
  if (day < 1 || day > daysIn(year, month))
    return { ok: false, reason: `${pad(year, 4)}-${pad(month, 2)} has no day ${pad(day, 2)}` };
  if (hour > 23) return { ok: false, reason: `hour ${pad(hour, 2)} does not exist` };
  if (minute > 59) return { ok: false, reason: `minute ${pad(minute, 2)} does not exist` };
  // A leap second (:60) is the last moment of its minute, as most systems that do not track leap seconds read it.
  if (second > 60) return { ok: false, reason: `second ${pad(second, 2)} does not exist` };
  const wholeSecond = Math.min(second, 59);
  const milli = second === 60 ? 999 : millis;
  let utc: number;
  // Date.UTC maps years 0-99 to 1900-1999; those few take the slower way.
  if (year >= 100) utc = Date.UTC(year, month - 1, day, hour, minute, wholeSecond, milli);
  else {
    const date = new Date(0);
    date.setUTCFullYear(year, month - 1, day);
    date.setUTCHours(hour, minute, wholeSecond, milli);
    utc = date.getTime();
  }
  const ms = utc - offsetMinutes * 60_000;
  if (!Number.isFinite(ms) || Math.abs(ms) > MAX_DATE_MS)
    return { ok: false, reason: 'outside the range a date can hold' };
  return { ok: true, ms };
}
