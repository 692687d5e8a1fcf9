/** Log events for sink tests: valid ones with known ids, produced as raw-logs JSON. */
import { randomUUID } from 'node:crypto';
import type { StoredLog } from '../../src/stores/logs-table.ts';

export function sampleLog(i: number, base = Date.UTC(2026, 10, 27, 10)): Record<string, unknown> {
  const services = ['api-gateway', 'auth-service', 'payment-service', 'order-service'];
  return {
    log_id: randomUUID(),
    timestamp: new Date(base + i * 7).toISOString(),
    service: services[i % services.length],
    environment: 'production',
    level: i % 10 === 0 ? 'ERROR' : 'INFO',
    message: `request ${i} handled in ${i % 100} ms`,
    host: `host-${i % 5}`,
    duration_ms: i % 100,
  };
}

/** The minimal StoredLog a sink test writes: the ingest pipeline builds the full one. */
export function storedFrom(
  json: Record<string, unknown>,
  origin: { topic: string; partition: number; offset: number },
): StoredLog {
  return {
    log_id: String(json.log_id),
    timestamp: Date.parse(String(json.timestamp)),
    service: String(json.service),
    environment: String(json.environment ?? 'unknown'),
    level: String(json.level) as StoredLog['level'],
    message: String(json.message),
    host: String(json.host ?? ''),
    region: '',
    version: '',
    logger: '',
    trace_id: '',
    span_id: '',
    request_id: '',
    user_id: '',
    session_id: '',
    http_method: '',
    http_path: '',
    http_status: null,
    duration_ms: typeof json.duration_ms === 'number' ? json.duration_ms : null,
    error_type: '',
    error_code: '',
    stack_trace: '',
    attributes: {},
    template: String(json.message).replace(/\d+/g, '<*>'),
    error_hash: '42',
    ingested_at: Date.now(),
    kafka_topic: origin.topic,
    kafka_partition: origin.partition,
    kafka_offset: origin.offset,
  };
}
