/**
 * The `api` named pipeline started through the runner, as `npm run pipeline
 * -- api` does: it opens its stores, listens (port 0 here), answers real HTTP
 * requests with a key from the repository, and closes on stop.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/core/config.ts';
import { openEngines, type Engines } from '../../src/clients/engines.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createMetrics } from '../../src/core/metrics.ts';
import { migrateAll } from '../../src/app/migrate.ts';
import { pipelines } from '../../src/app/registry.ts';
import { openResources, type Resources } from '../../src/app/resources.ts';
import { startPipeline } from '../../src/app/runner.ts';

class Lines extends Writable {
  readonly records: Array<Record<string, unknown>> = [];
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    for (const line of chunk.toString('utf8').split('\n'))
      if (line.trim() !== '') this.records.push(JSON.parse(line) as Record<string, unknown>);
    done();
  }
}

async function until<T>(read: () => T | undefined, what: string): Promise<T> {
  for (let i = 0; i < 600; i++) {
    const value = read();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('api pipeline', () => {
  let dir = '';
  let engines: Engines | undefined;
  let resources: Resources | undefined;
  afterAll(async () => {
    await resources?.close();
    await engines?.close();
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('is registered, listens, serves authenticated requests over HTTP, and stops cleanly', async () => {
    expect(pipelines.api.name).toBe('api');
    dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-api-pipe-'));
    const config = loadConfig({ LOGFLOW_DATA_DIR: dir, LOGFLOW_API_PORT: '0' });
    engines = await openEngines(config, { createDatabases: true });
    await migrateAll(engines);
    const lines = new Lines();
    const logger = createLogger({ level: 'info', destination: lines });
    resources = openResources(config, logger, { engines: Promise.resolve(engines) });
    const { key } = await (await resources.repositories()).apiKeys.create('pipeline-test', 'viewer');

    const running = startPipeline(pipelines.api, {
      config,
      logger,
      metrics: createMetrics({ defaultMetrics: false }),
      resources,
      options: {},
    });
    const url = await until(
      () => lines.records.find((r) => r.msg === 'api listening')?.url as string | undefined,
      'the api to listen',
    );
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);

    const me = await fetch(new URL('/api/v1/me', url), { headers: { authorization: `Bearer ${key}` } });
    expect(me.status).toBe(200);
    expect(await me.json()).toEqual({ name: 'pipeline-test', role: 'viewer' });
    expect((await fetch(new URL('/api/v1/me', url))).status).toBe(401);
    const services = (await (
      await fetch(new URL('/api/v1/services', url), { headers: { authorization: `Bearer ${key}` } })
    ).json()) as { items: unknown[] };
    expect(services.items.length).toBeGreaterThan(0);
    const ready = await fetch(new URL('/readyz', url));
    expect(ready.status).toBe(200);

    expect(await running.stop()).toEqual({ status: 'stopped' });
    await expect(fetch(new URL('/healthz', url))).rejects.toThrow();
    expect(JSON.stringify(lines.records)).not.toContain(key);
  });

  it('rejects unknown options by name', () => {
    const config = loadConfig({ LOGFLOW_DATA_DIR: dir });
    expect(() =>
      startPipeline(pipelines.api, {
        config,
        logger: createLogger({ level: 'silent' }),
        metrics: createMetrics({ defaultMetrics: false }),
        resources: resources!,
        options: { prot: '1' },
      }),
    ).toThrow(/api: unknown option --prot/);
  });
});
