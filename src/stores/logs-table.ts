/**
 * How a stored log maps onto the ClickHouse logs table's columns, in the
 * order JSONCompactEachRow rows carry them.
 */
import type { LogEvent } from '../domain/log-event.ts';

export interface StoredLog extends LogEvent {
  readonly template: string;
  readonly error_hash: string;
  readonly ingested_at: number;
  readonly kafka_topic: string;
  readonly kafka_partition: number;
  readonly kafka_offset: number;
}

export const LOGS_COLUMNS = [
  'log_id',
  'timestamp',
  'service',
  'environment',
  'level',
  'message',
  'template',
  'error_hash',
  'host',
  'region',
  'version',
  'logger',
  'trace_id',
  'span_id',
  'request_id',
  'user_id',
  'session_id',
  'http_method',
  'http_path',
  'http_status',
  'duration_ms',
  'error_type',
  'error_code',
  'stack_trace',
  'attributes',
  'ingested_at',
  'kafka_topic',
  'kafka_partition',
  'kafka_offset',
] as const;

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

export function toLogsRow(log: StoredLog): unknown[] {
  return [
    log.log_id,
    toClickHouseDateTime(log.timestamp),
    log.service,
    log.environment,
    log.level,
    log.message,
    log.template,
    log.error_hash,
    log.host,
    log.region,
    log.version,
    log.logger,
    log.trace_id,
    log.span_id,
    log.request_id,
    log.user_id,
    log.session_id,
    log.http_method,
    log.http_path,
    log.http_status,
    log.duration_ms,
    log.error_type,
    log.error_code,
    log.stack_trace,
    log.attributes,
    toClickHouseDateTime(log.ingested_at),
    log.kafka_topic,
    log.kafka_partition,
    log.kafka_offset,
  ];
}
