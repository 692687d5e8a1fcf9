import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/core/config.ts';
import { openPostgres } from '../../../src/clients/engines.ts';
import { ErrorCodes, isRetriable, LogflowError } from '../../../src/core/errors.ts';
import { migratePostgres } from '../../../src/app/migrate.ts';
import { createRepositories, type PoolRepositories } from '../../../src/stores/postgres/index.ts';
import { dropTestDatabase, postgresUrlFor, uniqueName } from '../../support/services.ts';
import { describeRepositoryContract, type RepositoryEngine } from './repositories.contract.ts';

/** A fresh, migrated-by-the-caller database on the test server, dropped on close. */
async function openServerDatabase(): Promise<RepositoryEngine> {
  const database = uniqueName('logflow_repos');
  const { pool, mode, close } = await openPostgres(loadConfig({ LOGFLOW_POSTGRES_URL: postgresUrlFor(database) }), {
    createDatabases: true,
  });
  return {
    pool,
    mode,
    async close() {
      await close();
      await dropTestDatabase(database);
    },
  };
}

describeRepositoryContract('a PostgreSQL server', openServerDatabase);

describe('PostgreSQL repositories, server-only behaviour', () => {
  let engine: RepositoryEngine;
  let repos: PoolRepositories;
  beforeAll(async () => {
    engine = await openServerDatabase();
    expect(engine.mode).toBe('server');
    await migratePostgres(engine.pool);
    repos = createRepositories(engine.pool);
  });
  afterAll(() => engine.close());

  it('a claimer skips a job another transaction holds instead of waiting for it', async () => {
    const first = await repos.analysisJobs.create({ jobType: 'nightly', targetDate: '2026-03-01' });
    const second = await repos.analysisJobs.create({ jobType: 'nightly', targetDate: '2026-03-02' });
    const rollback = new Error('worker died before committing');
    await expect(
      repos.transaction(async (tx) => {
        expect((await tx.analysisJobs.claimNextPending())?.id).toBe(first.id);
        // The first job is locked by this open transaction: the other claimer takes the next one at once.
        expect((await repos.analysisJobs.claimNextPending())?.id).toBe(second.id);
        expect(await repos.analysisJobs.claimNextPending()).toBeNull();
        throw rollback;
      }),
    ).rejects.toBe(rollback);
    // Rolled back, the first job is pending again.
    expect((await repos.analysisJobs.claimNextPending())?.id).toBe(first.id);
  });

  it('classifies an unreachable server as a retriable outage', async () => {
    const port = await closedPort();
    const pool = new pg.Pool({
      connectionString: `postgres://postgres@127.0.0.1:${port}/postgres`,
      connectionTimeoutMillis: 2_000,
    });
    pool.on('error', () => undefined);
    try {
      const error = await createRepositories(pool)
        .services.list()
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(error).toBeInstanceOf(LogflowError);
      expect(error).toMatchObject({ code: ErrorCodes.SINK_UNAVAILABLE, stage: 'sink' });
      expect(isRetriable(error)).toBe(true);
    } finally {
      await pool.end();
    }
  });
});

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
