import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { openPostgres } from '../src/engines.ts';

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
});
