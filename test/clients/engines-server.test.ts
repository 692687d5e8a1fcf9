/**
 * The ClickHouse engine contract in server mode: `openClickHouse` with
 * LOGFLOW_CLICKHOUSE_URL, so `@clickhouse/client` over HTTP, against
 * ClickHouse's HTTP interface served by the real engine
 * (test/support/clickhouse-http-server.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openClickHouse } from '../../src/clients/engines.ts';
import { loadConfig } from '../../src/core/config.ts';
import { startClickHouseHttpServer } from '../support/clickhouse-http-server.ts';
import { clickhouseEngineContract } from './clickhouse-engine.contract.ts';

clickhouseEngineContract('a ClickHouse server over HTTP', 'server', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-ch-server-'));
  const server = await startClickHouseHttpServer({ dataDir: dir, user: 'logflow', password: 'engine' });
  const { client, mode } = await openClickHouse(
    loadConfig({
      LOGFLOW_CLICKHOUSE_URL: server.url,
      LOGFLOW_CLICKHOUSE_USER: 'logflow',
      LOGFLOW_CLICKHOUSE_PASSWORD: 'engine',
      LOGFLOW_CLICKHOUSE_DATABASE: 'engine_contract',
    }),
    { createDatabases: true },
  );
  return {
    client,
    mode,
    async close() {
      await client.close();
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
