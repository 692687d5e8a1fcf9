import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { openClickHouse } from '../src/engines.ts';

describe('chdb behind @clickhouse/client', () => {
  let dir: string;
  let client: Awaited<ReturnType<typeof openClickHouse>>['client'];
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-chdb-settings-'));
    ({ client } = await openClickHouse(loadConfig({ LOGFLOW_DATA_DIR: dir })));
  });
  afterAll(async () => {
    await client?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('does not carry a deduplication token over to later inserts', async () => {
    await client.command({
      query: `CREATE TABLE dedup (id UInt32) ENGINE = MergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 100`,
    });
    await client.insert({ table: 'dedup', values: [{ id: 1 }], format: 'JSONEachRow', clickhouse_settings: { insert_deduplication_token: 'tok-A' } });
    await client.insert({ table: 'dedup', values: [{ id: 2 }], format: 'JSONEachRow' });
    await client.insert({ table: 'dedup', values: [{ id: 3 }], format: 'JSONEachRow' });
    // The same token again is a retry and must still be dropped.
    await client.insert({ table: 'dedup', values: [{ id: 1 }], format: 'JSONEachRow', clickhouse_settings: { insert_deduplication_token: 'tok-A' } });
    const rows = await (await client.query({ query: 'SELECT id FROM dedup ORDER BY id', format: 'JSONEachRow' })).json<{ id: number }>();
    expect(rows.map((r) => Number(r.id))).toEqual([1, 2, 3]);
  });

  it('sets a per-query setting for that query only', async () => {
    const read = async (settings?: Record<string, number>) =>
      (await (await client.query({ query: "SELECT getSetting('join_use_nulls') AS v", format: 'JSONEachRow', ...(settings === undefined ? {} : { clickhouse_settings: settings }) })).json<{ v: number | string }>())[0]?.v;
    expect(Number(await read({ join_use_nulls: 1 }))).toBe(1);
    expect(Number(await read())).toBe(0);
  });
});
