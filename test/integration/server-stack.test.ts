/**
 * The compose stack's own commands, run as its containers run them, in server
 * mode: `migrate` and `run api ...` exactly as docker-compose.yml gives them
 * (only the port changed), `keys create` as the README tells an operator to,
 * each a process of its own against ClickHouse over HTTP (the chdb-backed
 * test/support/clickhouse-http-server.ts) and a real PostgreSQL server.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startClickHouseHttpServer, type ClickHouseHttpServer } from '../support/clickhouse-http-server.ts';
import { dropTestDatabase, postgresUrlFor, uniqueName } from '../support/services.ts';

const compose = parse(readFileSync(new URL('../../docker-compose.yml', import.meta.url), 'utf8'), {
  merge: true,
}) as { services: Record<string, { command: string[] }> };

const database = uniqueName('logflow_stack');
let dir = '';
let server: ClickHouseHttpServer;
let env: NodeJS.ProcessEnv;
const children: ChildProcess[] = [];

function logflow(args: readonly string[]): {
  child: ChildProcess;
  done: Promise<{ code: number | null; out: string }>;
} {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/app/cli.ts', ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<{ code: number | null; out: string }>((resolve) =>
    child.on('exit', (code) => resolve({ code, out })),
  );
  return { child, done };
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-stack-'));
  server = await startClickHouseHttpServer({ dataDir: path.join(dir, 'clickhouse-server'), password: 'logflow' });
  env = {
    PATH: process.env.PATH,
    LOGFLOW_CLICKHOUSE_URL: server.url,
    LOGFLOW_CLICKHOUSE_PASSWORD: 'logflow',
    LOGFLOW_CLICKHOUSE_DATABASE: database,
    LOGFLOW_POSTGRES_URL: postgresUrlFor(database),
    LOGFLOW_DATA_DIR: path.join(dir, 'data'),
    LOGFLOW_METRICS_PORT: '0',
    LOGFLOW_LOG_LEVEL: 'warn',
  };
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await server?.close();
  await rm(dir, { recursive: true, force: true });
  await dropTestDatabase(database, { force: true });
});

describe('the compose commands in server mode', () => {
  it('migrates, creates a key, and serves the API, which reads logs from ClickHouse over HTTP', async () => {
    const migrate = await logflow(compose.services.migrate!.command).done;
    expect(migrate.code, migrate.out).toBe(0);
    // The schema went to the server, into the configured database.
    expect(server.requests.some((r) => r.params.database === database && /^CREATE TABLE/i.test(r.query ?? ''))).toBe(
      true,
    );

    const created = await logflow(['keys', 'create', '--name', 'ops', '--role', 'viewer']).done;
    expect(created.code, created.out).toBe(0);
    const key = /lf_[A-Za-z0-9_-]{43}/.exec(created.out)?.[0];
    expect(key).toBeDefined();

    const command = [...compose.services.api!.command];
    const port = await freePort();
    command[command.indexOf('--port') + 1] = String(port);
    command[command.indexOf('--host') + 1] = '127.0.0.1';
    const api = logflow(command);
    let ready = false;
    // Waits for the process to come up (tsx compiles on start); no timing is asserted.
    for (let attempt = 0; attempt < 240 && !ready && api.child.exitCode === null; attempt++) {
      ready = await fetch(`http://127.0.0.1:${port}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (!ready) await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(ready, api.child.exitCode === null ? 'not ready' : (await api.done).out).toBe(true);

    const logs = await fetch(`http://127.0.0.1:${port}/api/v1/logs?limit=5`, {
      headers: { authorization: `Bearer ${key}` },
    });
    expect(logs.status).toBe(200);
    expect(await logs.json()).toMatchObject({ items: [] });
    expect(server.requests.some((r) => /FROM logs/.test(r.query ?? '') && r.status === 200)).toBe(true);

    api.child.kill('SIGTERM');
    const stopped = await api.done;
    expect(stopped.code, stopped.out).toBe(0);
  });
});
