/**
 * What every ClickHouse engine behind `@clickhouse/client` owes the stores and
 * sinks, run against each: chdb in-process (engines-chdb.test.ts) and a
 * ClickHouse server over HTTP (engines-server.test.ts, against
 * test/support/clickhouse-http-server.ts). Per-query settings last one query,
 * the engine's row inserter stores the encoded rows and drops a retry by its
 * token, 64-bit integers come back as exact strings, and errors classify the
 * same way on both.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeRows, rowInserterFor } from '../../src/clients/row-inserter.ts';
import type { ClickHouseMode } from '../../src/clients/engines.ts';
import { classify, ErrorCodes } from '../../src/core/errors.ts';
import { clickhouseErrorRules } from '../../src/sinks/clickhouse.ts';

export interface ClickHouseEngine {
  readonly client: ClickHouseClient;
  readonly mode: ClickHouseMode;
  close(): Promise<void>;
}

export function clickhouseEngineContract(
  name: string,
  expectedMode: ClickHouseMode,
  open: () => Promise<ClickHouseEngine>,
): void {
  describe(`ClickHouse engine contract: ${name}`, () => {
    let engine: ClickHouseEngine;
    let tables = 0;
    const table = (prefix: string) => `${prefix}_${++tables}`;
    beforeAll(async () => {
      engine = await open();
    });
    afterAll(() => engine?.close());

    const rows = async <T>(query: string): Promise<T[]> =>
      (await engine.client.query({ query, format: 'JSONEachRow' })).json<T>();

    it('is the engine it was opened as', () => {
      expect(engine.mode).toBe(expectedMode);
    });

    it('does not carry a deduplication token over to later inserts, and drops a retry that carries it', async () => {
      const t = table('dedup');
      await engine.client.command({
        query: `CREATE TABLE ${t} (id UInt32) ENGINE = MergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 100`,
      });
      const insert = (id: number, token?: string) =>
        engine.client.insert({
          table: t,
          values: [{ id }],
          format: 'JSONEachRow',
          ...(token === undefined ? {} : { clickhouse_settings: { insert_deduplication_token: token } }),
        });
      await insert(1, 'tok-A');
      await insert(2);
      await insert(3);
      await insert(1, 'tok-A');
      const stored = await rows<{ id: number }>(`SELECT id FROM ${t} ORDER BY id`);
      expect(stored.map((r) => Number(r.id))).toEqual([1, 2, 3]);
    });

    it('sets a per-query setting for that query only', async () => {
      const read = async (settings?: Record<string, number>) =>
        (
          await (
            await engine.client.query({
              query: "SELECT toString(getSetting('join_use_nulls')) AS v",
              format: 'JSONEachRow',
              ...(settings === undefined ? {} : { clickhouse_settings: settings }),
            })
          ).json<{ v: string }>()
        )[0]?.v;
      expect(await read({ join_use_nulls: 1 })).toMatch(/^(1|true)$/);
      expect(await read()).toMatch(/^(0|false)$/);
    });

    it("stores encoded rows through the engine's row inserter and drops a retry by its token", async () => {
      const t = table('encoded');
      await engine.client.command({
        query: `CREATE TABLE ${t} (id UInt32, name String, tags Map(String, String)) ENGINE = MergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 100`,
      });
      const body = encodeRows([
        '[1,"één \\"quoted\\"",{"k":"v"}]',
        Buffer.from('[2,"line\\nbreak",{}]'),
        '[3,"日本\\ttab",{}]',
      ]);
      const insert = rowInserterFor(engine.client);
      for (let attempt = 0; attempt < 2; attempt++)
        await insert({
          table: t,
          columns: ['id', 'name', 'tags'],
          body,
          settings: { insert_deduplication_token: 'b-1' },
        });
      expect(await rows(`SELECT id, name, tags FROM ${t} ORDER BY id`)).toEqual([
        { id: 1, name: 'één "quoted"', tags: { k: 'v' } },
        { id: 2, name: 'line\nbreak', tags: {} },
        { id: 3, name: '日本\ttab', tags: {} },
      ]);
    });

    it('returns 64-bit integers as exact strings', async () => {
      expect(await rows('SELECT toUInt64(18446744073709551615) AS big, toInt64(-9007199254740993) AS neg')).toEqual([
        { big: '18446744073709551615', neg: '-9007199254740993' },
      ]);
    });

    it('fails a row the table cannot take as rejected data, and a missing table as the schema, never as an outage', async () => {
      const t = table('typed');
      await engine.client.command({ query: `CREATE TABLE ${t} (id UInt32) ENGINE = MergeTree ORDER BY id` });
      const failure = (p: Promise<unknown>) =>
        p.then(
          () => undefined,
          (e: unknown) => e,
        );
      const badRow = await failure(
        rowInserterFor(engine.client)({
          table: t,
          columns: ['id'],
          body: encodeRows(['["not a number"]']),
          settings: {},
        }),
      );
      expect(classify(badRow, clickhouseErrorRules, 'sink')).toMatchObject({
        code: ErrorCodes.SINK_REJECTED,
        retriable: false,
      });
      const missing = await failure(engine.client.query({ query: 'SELECT * FROM no_such_table_here' }));
      expect(missing).toMatchObject({ code: '60', type: 'UNKNOWN_TABLE' });
      expect(classify(missing, clickhouseErrorRules, 'sink')).toMatchObject({
        code: ErrorCodes.CONFIG_INVALID,
        retriable: false,
      });
      expect(await rows(`SELECT count() AS n FROM ${t}`)).toEqual([{ n: '0' }]);
    });
  });
}
