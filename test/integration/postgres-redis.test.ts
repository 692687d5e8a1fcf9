import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { POSTGRES_URL, REDIS_URL, uniqueName } from '../support/services.ts';

describe('PostgreSQL round trip through pg', () => {
  const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 2 });
  afterAll(() => pool.end());

  it('writes and reads rows in a transaction with parameters', async () => {
    const table = uniqueName('roundtrip');
    const client = await pool.connect();
    try {
      await client.query(`CREATE TEMP TABLE ${table} (id int PRIMARY KEY, body jsonb NOT NULL)`);
      await client.query('BEGIN');
      await client.query(`INSERT INTO ${table} VALUES ($1, $2), ($3, $4)`, [1, { a: "it's" }, 2, { b: [1, 2] }]);
      await client.query('COMMIT');
      const { rows } = await client.query(`SELECT id, body FROM ${table} ORDER BY id`);
      expect(rows).toEqual([
        { id: 1, body: { a: "it's" } },
        { id: 2, body: { b: [1, 2] } },
      ]);
    } finally {
      client.release();
    }
  });
});

describe('Redis round trip through ioredis', () => {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 2 });
  afterAll(() => redis.quit());

  it('sets with a TTL, reads back and expires', async () => {
    const key = uniqueName('logflow-test');
    await redis.set(key, Buffer.from([0, 1, 2, 255]), 'PX', 200);
    expect(await redis.getBuffer(key)).toEqual(Buffer.from([0, 1, 2, 255]));
    const ttl = await redis.pttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(200);
    await new Promise((r) => setTimeout(r, 300));
    expect(await redis.getBuffer(key)).toBeNull();
  });
});
