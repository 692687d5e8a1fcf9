import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/core/config.ts';
import { openClickHouse } from '../../src/clients/engines.ts';
import { classify, ErrorCodes } from '../../src/core/errors.ts';
import { clickhouseErrorRules } from '../../src/sinks/clickhouse.ts';
import { clientRowInserter, encodeRows, rowInserterFor } from '../../src/clients/row-inserter.ts';
import { clickhouseEngineContract } from './clickhouse-engine.contract.ts';

let dir: string;
let client: Awaited<ReturnType<typeof openClickHouse>>['client'];
let mode: Awaited<ReturnType<typeof openClickHouse>>['mode'];
// One chdb per process (it binds one data directory): the contract and the chdb-only tests share it.
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-chdb-settings-'));
  ({ client, mode } = await openClickHouse(loadConfig({ LOGFLOW_DATA_DIR: dir })));
});
afterAll(async () => {
  await client?.close();
  await rm(dir, { recursive: true, force: true });
});

clickhouseEngineContract('chdb in-process', 'chdb', async () => ({ client, mode, close: async () => undefined }));

describe('chdb behind @clickhouse/client', () => {
  describe('the row inserter chdb gets (its raw insert)', () => {
    const count = async (table: string) =>
      Number(
        (
          await (
            await client.query({ query: `SELECT count() AS n FROM ${table}`, format: 'JSONEachRow' })
          ).json<{ n: string }>()
        )[0]?.n,
      );

    it('stores encoded rows, drops a retry by its token, and leaves no token on the session', async () => {
      await client.command({
        query: `CREATE TABLE raw_rows (id UInt32, name String, tags Map(String, String)) ENGINE = MergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 100`,
      });
      const insert = rowInserterFor(client);
      const body = encodeRows([
        '[1,"één \\"quoted\\"",{"k":"v"}]',
        Buffer.from('[2,"line\\nbreak",{}]'),
        '[3,"日本",{}]',
      ]);
      await insert({
        table: 'raw_rows',
        columns: ['id', 'name', 'tags'],
        body,
        settings: { insert_deduplication_token: 'raw-1' },
      });
      await insert({
        table: 'raw_rows',
        columns: ['id', 'name', 'tags'],
        body,
        settings: { insert_deduplication_token: 'raw-1' },
      });
      expect(await count('raw_rows')).toBe(3);
      // The client path afterwards, without a token: not taken for a retry of the raw insert.
      await client.insert({ table: 'raw_rows', values: [{ id: 4, name: 'x', tags: {} }], format: 'JSONEachRow' });
      expect(await count('raw_rows')).toBe(4);
      const rows = await (
        await client.query({
          query: 'SELECT id, name, tags FROM raw_rows WHERE id < 4 ORDER BY id',
          format: 'JSONEachRow',
        })
      ).json<{ id: number; name: string; tags: Record<string, string> }>();
      expect(rows).toEqual([
        { id: 1, name: 'één "quoted"', tags: { k: 'v' } },
        { id: 2, name: 'line\nbreak', tags: {} },
        { id: 3, name: '日本', tags: {} },
      ]);
    });

    it('reads the same body the same way through the client path a server gets (CustomSeparated)', async () => {
      await client.command({
        query: `CREATE TABLE client_rows (id UInt32, name String, tags Map(String, String)) ENGINE = MergeTree ORDER BY id`,
      });
      const body = encodeRows(['[1,"één \\"quoted\\"",{"k":"v"}]', Buffer.from('[2,"line\\nbreak",{}]')]);
      await clientRowInserter(client)({
        table: 'client_rows',
        columns: ['id', 'name', 'tags'],
        body,
        settings: { insert_deduplication_token: 'client-1' },
      });
      const rows = await (
        await client.query({ query: 'SELECT id, name, tags FROM client_rows ORDER BY id', format: 'JSONEachRow' })
      ).json<{ id: number; name: string; tags: Record<string, string> }>();
      expect(rows).toEqual([
        { id: 1, name: 'één "quoted"', tags: { k: 'v' } },
        { id: 2, name: 'line\nbreak', tags: {} },
      ]);
    });

    it('fails a row the table cannot take with an error classified as rejected data, not as an outage', async () => {
      await client.command({ query: `CREATE TABLE raw_typed (id UInt32) ENGINE = MergeTree ORDER BY id` });
      const error = await rowInserterFor(client)({
        table: 'raw_typed',
        columns: ['id'],
        body: encodeRows(['["not a number"]']),
        settings: {},
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(Error);
      const classified = classify(error, clickhouseErrorRules, 'sink');
      expect(classified.code).toBe(ErrorCodes.SINK_REJECTED);
      expect(classified.retriable).toBe(false);
      expect(await count('raw_typed')).toBe(0);
    });
  });
});
