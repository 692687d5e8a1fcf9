/**
 * The ClickHouse vector store in server mode: the shared VectorStore contract
 * through `@clickhouse/client` over HTTP, against ClickHouse's HTTP interface
 * served by the real engine (test/support/clickhouse-http-server.ts). Its
 * searches send vectors and filters as `param_*` URL parameters (or multipart
 * bodies when they are long) and per-query settings as URL parameters, which
 * the chdb run of the same contract (clickhouse-vector.test.ts) never does.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openClickHouse } from '../../src/clients/engines.ts';
import { loadConfig } from '../../src/core/config.ts';
import { ClickHouseVectorStore } from '../../src/stores/clickhouse-vector.ts';
import type { VectorStore } from '../../src/stores/vector-store.ts';
import { startClickHouseHttpServer, type ClickHouseHttpServer } from '../support/clickhouse-http-server.ts';
import { vectorStoreContract } from './vector-store.contract.ts';

let client: ClickHouseClient;
let server: ClickHouseHttpServer;
let dataDir: string;
let tables = 0;
const uniqueTable = () => `vectors_${++tables}`;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'logflow-vectors-http-'));
  server = await startClickHouseHttpServer({ dataDir, password: 'vectors' });
  const opened = await openClickHouse(
    loadConfig({ LOGFLOW_CLICKHOUSE_URL: server.url, LOGFLOW_CLICKHOUSE_PASSWORD: 'vectors' }),
    { createDatabases: true },
  );
  expect(opened.mode).toBe('server');
  client = opened.client;
});

afterAll(async () => {
  await client?.close();
  await server?.close();
  await rm(dataDir, { recursive: true, force: true });
});

vectorStoreContract('ClickHouseVectorStore (ClickHouse server over HTTP)', async () => {
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
      await client.command({ query: 'DROP TABLE IF EXISTS {table:Identifier}', query_params: { table } });
    },
  };
});

describe('ClickHouseVectorStore over HTTP', () => {
  it('sent its searches to the server with the vector as a query parameter', () => {
    const searches = server.requests.filter(
      (r) => (r.query ?? '').includes('{vector:Array(Float32)}') && r.status === 200,
    );
    expect(searches.length).toBeGreaterThan(0);
    expect(
      searches.every((r) => r.params.param_vector !== undefined || r.headers['content-type']?.startsWith('multipart/')),
    ).toBe(true);
  });
});
