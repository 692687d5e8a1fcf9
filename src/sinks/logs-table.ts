/**
 * How a stored log maps onto the ClickHouse logs table's columns, in the
 * order JSONCompactEachRow rows carry them.
 */
import type { LogEvent } from '../log-event.ts';

export interface StoredLog extends LogEvent {
  readonly template: string;
  readonly error_hash: string;
  readonly ingested_at: number;
  readonly kafka_topic: string;
  readonly kafka_partition: number;
  readonly kafka_offset: number;
}

export const LOGS_COLUMNS = [
  'log_id', 'timestamp', 'service', 'environment', 'level', 'message', 'template', 'error_hash', 'host', 'region',
  'version', 'logger', 'trace_id', 'span_id', 'request_id', 'user_id', 'session_id', 'http_method', 'http_path',
  'http_status', 'duration_ms', 'error_type', 'error_code', 'stack_trace', 'attributes', 'ingested_at',
  'kafka_topic', 'kafka_partition', 'kafka_offset',
] as const;

/** DateTime64(3)'s basic text form ("YYYY-MM-DD hh:mm:ss.sss", UTC): parsed without best-effort guessing. */
export function toClickHouseDateTime(ms: number): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}`;
}

export function toLogsRow(log: StoredLog): unknown[] {
  return [
    log.log_id, toClickHouseDateTime(log.timestamp), log.service, log.environment, log.level, log.message, log.template, log.error_hash,
    log.host, log.region, log.version, log.logger, log.trace_id, log.span_id, log.request_id, log.user_id, log.session_id,
    log.http_method, log.http_path, log.http_status, log.duration_ms, log.error_type, log.error_code, log.stack_trace,
    log.attributes, toClickHouseDateTime(log.ingested_at), log.kafka_topic, log.kafka_partition, log.kafka_offset,
  ];
}
