/**
 * The embedded vector store on chdb: the shared contract, then what is
 * ClickHouse's own (the index definition, index use, parameters only,
 * error mapping). chdb binds one data directory per process; this file has
 * its own process and directory, and every store its own table.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/core/config.ts';
import { openClickHouse } from '../../src/clients/engines.ts';
import { classify, ErrorCodes } from '../../src/core/errors.ts';
import {
  buildSearchQuery,
  ClickHouseVectorStore,
  clickHouseVectorErrorRules,
} from '../../src/stores/clickhouse-vector.ts';
import { pointIdFor, type VectorPoint, type VectorStore } from '../../src/stores/vector-store.ts';
import { vectorStoreContract } from './vector-store.contract.ts';

let client: ClickHouseClient;
let dataDir: string;
let tables = 0;
const uniqueTable = () => `vectors_${++tables}`;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'logflow-vectors-'));
  ({ client } = await openClickHouse(loadConfig({ LOGFLOW_DATA_DIR: dataDir })));
});

afterAll(async () => {
  await client.close();
  await rm(dataDir, { recursive: true, force: true });
});

async function rows<T>(query: string, query_params: Record<string, unknown> = {}): Promise<T[]> {
  return (await client.query({ query, query_params, format: 'JSONEachRow' })).json<T>();
}

async function dropTable(table: string): Promise<void> {
  await client.command({ query: 'DROP TABLE IF EXISTS {table:Identifier}', query_params: { table } });
}

vectorStoreContract('ClickHouseVectorStore (chdb)', async () => {
  const table = uniqueTable();
  const stores: VectorStore[] = [new ClickHouseVectorStore({ client, table })];
  return {
    store: stores[0] as VectorStore,
    reopen: async () => {
      const store = new ClickHouseVectorStore({ client, table });
      stores.push(store);
      return store;
    },
    cleanup: async () => {
      await Promise.all(stores.map((s) => s.close()));
      await dropTable(table);
    },
  };
});

function pattern(errorHash: string, vector: readonly number[], service = 'checkout'): VectorPoint {
  return {
    errorHash,
    vector,
    payload: {
      error_hash: errorHash,
      template: `t ${errorHash}`,
      service,
      level: 'ERROR',
      first_seen: '2024-05-01T00:00:00.000Z',
      model: 'test-model',
    },
  };
}

describe('ClickHouseVectorStore: ClickHouse specifics', () => {
  it('keeps the dimension in an f32 HNSW cosine index and a length constraint', async () => {
    const table = uniqueTable();
    const store = new ClickHouseVectorStore({ client, table });
    await store.ensureCollection(5);
    const [index] = await rows<{ type_full: string }>(
      'SELECT type_full FROM system.data_skipping_indices WHERE database = currentDatabase() AND table = {table:String}',
      { table },
    );
    expect(index?.type_full).toMatch(/^vector_similarity\('hnsw', 'cosineDistance', 5, 'f32'/);
    await expect(
      client.insert({
        table,
        format: 'JSONEachRow',
        values: [{ id: '00000000-0000-5000-8000-000000000000', error_hash: '1', vector: [1, 0, 0] }],
      }),
    ).rejects.toThrow(/VIOLATED_CONSTRAINT|vector_dimension/);
    await dropTable(table);
  });

  it('a table made before points carried their model gains the column; its old rows read an empty model', async () => {
    const table = uniqueTable();
    // The table as ensureCollection made it before the model column existed.
    await client.command({
      query: `CREATE TABLE {table:Identifier} (
                id UUID, error_hash UInt64, template String, service LowCardinality(String),
                level LowCardinality(String), first_seen DateTime64(3, 'UTC'), vector Array(Float32),
                version UInt64 DEFAULT toUnixTimestamp64Nano(now64(9)),
                INDEX vector_index vector TYPE vector_similarity('hnsw', 'cosineDistance', 3, 'f32', 32, 128) GRANULARITY 100000000,
                CONSTRAINT vector_dimension CHECK length(vector) = 3)
              ENGINE = ReplacingMergeTree(version) ORDER BY id`,
      query_params: { table },
    });
    await client.insert({
      table,
      format: 'JSONEachRow',
      values: [
        {
          id: pointIdFor('1'),
          error_hash: '1',
          template: 'old',
          service: 'checkout',
          level: 'ERROR',
          first_seen: '2024-05-01 00:00:00.000',
          vector: [1, 0, 0],
        },
      ],
    });
    const store = new ClickHouseVectorStore({ client, table });
    await store.ensureCollection(3);
    await store.ensureCollection(3);
    await store.upsert([pattern('2', [0, 1, 0])]);
    const found = await store.search([1, 1, 0], { limit: 2 });
    expect(Object.fromEntries(found.map((m) => [m.errorHash, m.payload.model]))).toEqual({
      '1': '',
      '2': 'test-model',
    });
    await dropTable(table);
  });

  it('an unfiltered search is answered through the vector index', async () => {
    const table = uniqueTable();
    const store = new ClickHouseVectorStore({ client, table });
    await store.ensureCollection(3);
    await store.upsert([pattern('1', [1, 0, 0]), pattern('2', [0, 1, 0])]);
    const search = buildSearchQuery(table, {
      vector: [1, 0, 0],
      limit: 5,
      service: undefined,
      level: undefined,
      minScore: undefined,
      excludeErrorHash: undefined,
    });
    const plan = await (
      await client.query({
        query: `EXPLAIN indexes = 1 ${search.query}`,
        query_params: search.query_params,
        clickhouse_settings: search.clickhouse_settings,
        format: 'JSONEachRow',
      })
    ).json<{ explain: string }>();
    expect(plan.map((line) => line.explain).join('\n')).toMatch(/Name: vector_index/);
    await dropTable(table);
  });

  it('passes filter values only as parameters', async () => {
    const table = uniqueTable();
    const store = new ClickHouseVectorStore({ client, table });
    await store.ensureCollection(3);
    await store.upsert([pattern('1', [1, 0, 0]), pattern('2', [0, 1, 0], "o'brien")]);
    expect(await store.search([1, 0, 0], { limit: 5, filter: { service: "x' OR '1'='1" } })).toEqual([]);
    expect(
      (await store.search([1, 0, 0], { limit: 5, filter: { service: "o'brien" } })).map((m) => m.errorHash),
    ).toEqual(['2']);
    expect(await store.count()).toBe(2);
    await dropTable(table);
  });

  it('refuses a table name that is not an identifier', () => {
    expect(() => new ClickHouseVectorStore({ client, table: 'x; DROP TABLE logs' })).toThrow(
      expect.objectContaining({
        code: ErrorCodes.CONFIG_INVALID,
        message: expect.stringMatching(/must be an identifier/),
      }),
    );
  });

  it('refuses an existing table that is not a vector table', async () => {
    const table = uniqueTable();
    await client.command({
      query: 'CREATE TABLE {table:Identifier} (id UUID) ENGINE = MergeTree ORDER BY id',
      query_params: { table },
    });
    await expect(new ClickHouseVectorStore({ client, table }).ensureCollection(3)).rejects.toMatchObject({
      code: ErrorCodes.CONFIG_INVALID,
      message: expect.stringMatching(/exists but is not a vector table/),
    });
    await dropTable(table);
  });

  it('maps a ClickHouse failure to SINK_REJECTED naming the operation and table', async () => {
    const table = uniqueTable();
    const store = new ClickHouseVectorStore({ client, table });
    await store.ensureCollection(3);
    await dropTable(table);
    await expect(store.search([1, 0, 0], { limit: 1 })).rejects.toMatchObject({
      code: ErrorCodes.SINK_REJECTED,
      retriable: false,
      stage: 'sink',
      message: expect.stringMatching(new RegExp(`^ClickHouse vector store search on ${table} failed: .*${table}`)),
    });
  });

  it('classifies the client errors from its table', () => {
    const clickHouseError = (code: string, type: string) =>
      Object.assign(new Error(`${type} happened`), { name: 'ClickHouseError', code, type });
    const socketError = (code: string) => Object.assign(new Error(`connect ${code}`), { code });
    const cases: ReadonlyArray<readonly [Error, string, boolean]> = [
      [clickHouseError('241', 'MEMORY_LIMIT_EXCEEDED'), ErrorCodes.SINK_UNAVAILABLE, true],
      [clickHouseError('202', 'TOO_MANY_SIMULTANEOUS_QUERIES'), ErrorCodes.SINK_UNAVAILABLE, true],
      [clickHouseError('252', 'TOO_MANY_PARTS'), ErrorCodes.SINK_UNAVAILABLE, true],
      [clickHouseError('62', 'SYNTAX_ERROR'), ErrorCodes.SINK_REJECTED, false],
      [clickHouseError('469', 'VIOLATED_CONSTRAINT'), ErrorCodes.SINK_REJECTED, false],
      [socketError('ECONNREFUSED'), ErrorCodes.SINK_UNAVAILABLE, true],
      [socketError('ECONNRESET'), ErrorCodes.SINK_UNAVAILABLE, true],
      [new Error('Timeout error.'), ErrorCodes.TIMEOUT, true],
      [new TypeError('a programmer error'), ErrorCodes.INTERNAL, false],
    ];
    for (const [error, code, retriable] of cases) {
      expect(classify(error, clickHouseVectorErrorRules, 'sink'), error.message).toMatchObject({ code, retriable });
    }
  });
});
