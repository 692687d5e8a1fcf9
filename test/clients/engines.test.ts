import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/core/config.ts';
import { openPostgres } from '../../src/clients/engines.ts';

describe('embedded PostgreSQL (PGlite behind pg.Pool)', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('keeps working after statements fail', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-pglite-'));
    dirs.push(dir);
    const { pool, mode, close } = await openPostgres(loadConfig({ LOGFLOW_DATA_DIR: dir }));
    expect(mode).toBe('pglite');
    try {
      await pool.query('CREATE TABLE t (id int PRIMARY KEY)');
      await pool.query('INSERT INTO t VALUES (1)');
      for (const failing of ['INSERT INTO t VALUES (1)', 'SELECT * FROM missing', 'SELECT 1/0']) {
        await expect(pool.query(failing)).rejects.toThrow();
        expect((await pool.query('SELECT count(*)::int AS n FROM t')).rows).toEqual([{ n: 1 }]);
      }
    } finally {
      await close();
    }
  });

  it('creates a new data directory (in a worker), reopens it with its data, and runs with small shared buffers', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-pglite-'));
    dirs.push(dir);
    const config = loadConfig({ LOGFLOW_DATA_DIR: dir });
    const first = await openPostgres(config);
    try {
      await first.pool.query('CREATE TABLE kept (v text)');
      await first.pool.query("INSERT INTO kept VALUES ('still here')");
      expect((await first.pool.query('SHOW shared_buffers')).rows).toEqual([{ shared_buffers: '32MB' }]);
    } finally {
      await first.close();
    }
    const second = await openPostgres(config);
    try {
      expect((await second.pool.query('SELECT v FROM kept')).rows).toEqual([{ v: 'still here' }]);
    } finally {
      await second.close();
    }
  });

  it('names the directory when a PGlite database cannot be created there', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-pglite-'));
    dirs.push(dir);
    // A file where the database directory should be.
    await writeFile(path.join(dir, 'postgres'), 'not a directory');
    await expect(openPostgres(loadConfig({ LOGFLOW_DATA_DIR: dir }))).rejects.toThrow(dir);
  });
});
