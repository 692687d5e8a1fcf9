/**
 * The declaration of a log event (src/domain/log-fields.ts) against the logs
 * table the immutable migrations create (sql/clickhouse/001_logs.sql), on
 * chdb: the two are written separately, so this is what keeps them from
 * drifting. chdb binds one data directory per process; this file has its own.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateClickHouse } from '../../src/app/migrate.ts';
import { openClickHouse } from '../../src/clients/engines.ts';
import { loadConfig } from '../../src/core/config.ts';
import { EVENT_FIELDS, INSERTED_FIELDS, LOG_FIELDS } from '../../src/domain/log-fields.ts';
import { parseLogEvent } from '../../src/domain/log-event.ts';
import { LOGS_COLUMNS, toLogsRow, type StoredLog } from '../../src/stores/logs-table.ts';

let client: ClickHouseClient;
let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'logflow-log-fields-'));
  ({ client } = await openClickHouse(loadConfig({ LOGFLOW_DATA_DIR: dataDir })));
  await migrateClickHouse(client);
});

afterAll(async () => {
  await client.close();
  await rm(dataDir, { recursive: true, force: true });
});

async function rows<T>(query: string): Promise<T[]> {
  return (await client.query({ query, format: 'JSONEachRow' })).json<T>();
}

describe('LOG_FIELDS', () => {
  it('declares every column of the migrated logs table, in order, with its ClickHouse type', async () => {
    const columns = await rows<{ name: string; type: string }>(
      `SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'logs' ORDER BY position`,
    );
    expect(columns.length).toBeGreaterThan(0);
    expect(LOG_FIELDS.map((field) => ({ name: field.name, type: field.column }))).toEqual(columns);
  });

  it('inserts every column but the ones later pipelines update, and every event field is one of them', () => {
    expect(LOGS_COLUMNS).toEqual(INSERTED_FIELDS.map((field) => field.name));
    expect(LOGS_COLUMNS).toHaveLength(29);
    for (const field of EVENT_FIELDS) expect(LOGS_COLUMNS).toContain(field.name);
    expect(LOG_FIELDS.filter((field) => field.source === 'update').map((field) => field.name)).toEqual([
      'is_vectorized',
      'is_anomaly',
      'anomaly_score',
    ]);
  });

  it('encodes a parsed event into a row the table stores as it was sent', async () => {
    const now = Date.UTC(2026, 10, 27, 12);
    const sent = {
      log_id: '6F1C1C8E-4A3E-4B8E-9C53-0D3A4E1F0A01',
      timestamp: '2026-11-27T11:59:00.123Z',
      service: 'payment-service',
      environment: 'production',
      level: 'warning',
      message: 'card declined for order 1234',
      host: 'host-1',
      region: 'eu-west-1',
      version: '1.2.3',
      logger: 'payments.Card',
      trace_id: 'trace-1',
      span_id: 'span-1',
      request_id: 'req-1',
      user_id: 'user-1',
      session_id: 'session-1',
      http_method: 'POST',
      http_path: '/pay',
      http_status: 402,
      duration_ms: 12.5,
      error_type: 'CardDeclined',
      error_code: 'E402',
      stack_trace: 'at pay()',
      attributes: { pod: 'p-1', zone: 'b' },
    };
    const event = parseLogEvent(Buffer.from(JSON.stringify(sent)), { topic: 'raw-logs', partition: 3, offset: 7 }, now);
    const log: StoredLog = {
      ...event,
      template: 'card declined for order <NUM>',
      error_hash: '18446744073709551615',
      ingested_at: now,
      kafka_topic: 'raw-logs',
      kafka_partition: 3,
      kafka_offset: 7,
    };
    await client.insert({
      table: 'logs',
      columns: [...LOGS_COLUMNS],
      values: [toLogsRow(log)],
      format: 'JSONCompactEachRow',
    });
    const [stored] = await rows<Record<string, unknown>>(
      `SELECT * EXCEPT (timestamp, ingested_at),
              toUnixTimestamp64Milli(timestamp) AS timestamp, toUnixTimestamp64Milli(ingested_at) AS ingested_at
       FROM logs`,
    );
    expect(stored).toEqual({
      ...log,
      log_id: sent.log_id.toLowerCase(),
      level: 'WARN',
      // output_format_json_quote_64bit_integers (src/clients/engines.ts): 64-bit integers come back as text.
      timestamp: String(Date.parse(sent.timestamp)),
      ingested_at: String(now),
      kafka_offset: '7',
      is_vectorized: 0,
      is_anomaly: 0,
      anomaly_score: 0,
    });
  });
});
