/**
 * How a stored log maps onto the ClickHouse logs table's columns, in the
 * order JSONCompactEachRow rows carry them: derived from the declaration in
 * src/domain/log-fields.ts.
 */
import {
  compile,
  INSERTED_FIELDS,
  type IngestColumns,
  type LogEvent,
  type StoredLog,
  type ValueKind,
} from '../domain/log-fields.ts';

export type { IngestColumns, StoredLog };

/**
 * The columns ingest inserts, in table order; the flags later pipelines update keep their defaults. Typed non-empty
 * because @clickhouse/client's insert requires it (LOG_FIELDS always has columns).
 */
export const LOGS_COLUMNS = INSERTED_FIELDS.map((field) => field.name) as readonly string[] as readonly [
  string,
  ...string[],
];

/**
 * The last two seconds formatted, "YYYY-MM-DD hh:mm:ss": a row's event time
 * and ingest time alternate, and each mostly repeats the previous row's second.
 */
const cachedSeconds = [NaN, NaN];
const cachedPrefixes = ['', ''];
let older = 0;

/** DateTime64(3)'s basic text form ("YYYY-MM-DD hh:mm:ss.sss", UTC): parsed without best-effort guessing. */
export function toClickHouseDateTime(ms: number): string {
  const second = Math.floor(ms / 1000) * 1000;
  const millis = ms - second;
  // Whole milliseconds of an ordinary year only; anything else (fractions, far dates) takes the general path.
  if (!Number.isInteger(millis) || !(second >= 0 && second < 253_402_300_800_000)) {
    const iso = new Date(ms).toISOString();
    return `${iso.slice(0, 10)} ${iso.slice(11, 23)}`;
  }
  let slot = cachedSeconds[0] === second ? 0 : cachedSeconds[1] === second ? 1 : -1;
  if (slot === -1) {
    slot = older;
    older = 1 - older;
    const iso = new Date(second).toISOString();
    cachedPrefixes[slot] = `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
    cachedSeconds[slot] = second;
  }
  return `${cachedPrefixes[slot]!}.${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}`;
}

/** How a value of each kind is written into a JSONCompactEachRow row (`v` is the value). */
const ROW_ENCODINGS: Readonly<Record<ValueKind, (v: string) => string>> = {
  uuid: (v) => v,
  time: (v) => `toClickHouseDateTime(${v})`,
  level: (v) => v,
  text: (v) => v,
  'nullable number': (v) => v,
  attributes: (v) => v,
  uint64: (v) => v,
  number: (v) => v,
};

/** The row of an event and what ingest adds to it: one array literal, without building the stored log first. */
export const encodeLogsRow = compile<(event: LogEvent, ingest: IngestColumns) => unknown[]>(
  ['toClickHouseDateTime'],
  `return function encodeLogsRow(event, ingest) {
  return [${INSERTED_FIELDS.map((field) => ROW_ENCODINGS[field.value](`${field.source}.${field.name}`)).join(', ')}];
};`,
  toClickHouseDateTime,
);

export function toLogsRow(log: StoredLog): unknown[] {
  return encodeLogsRow(log, log);
}
