/**
 * `npm run keys -- create|list|revoke` as an operator runs it, against a
 * fresh PostgreSQL database: the printed key authenticates through the same
 * repository the API uses, list never shows it, and revoke turns it off.
 */
import { spawn } from 'node:child_process';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createApiKeyRepository } from '../../src/stores/postgres/api-keys.ts';
import { dropTestDatabase, postgresUrlFor, uniqueName } from '../support/services.ts';

const database = uniqueName('logflow_keys');
const url = postgresUrlFor(database);

function logflow(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/app/cli.ts', ...args], {
      env: { PATH: process.env.PATH, LOGFLOW_POSTGRES_URL: url, LOGFLOW_LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('logflow keys', () => {
  afterAll(async () => {
    await dropTestDatabase(database, { force: true });
  });

  it('creates a usable key printed once, lists keys without it, and revokes it', async () => {
    const created = await logflow(['keys', 'create', '--name', 'alice', '--role', 'operator']);
    expect(created.code, created.stderr).toBe(0);
    const key = created.stdout.trim();
    expect(key).toMatch(/^lf_[A-Za-z0-9_-]{43}$/);
    expect(created.stderr).toMatch(/created key \d+ "alice" \(operator\)/);

    const pool = new pg.Pool({ connectionString: url });
    try {
      const repository = createApiKeyRepository(pool);
      const verified = await repository.verify(key);
      expect(verified).toMatchObject({ name: 'alice', role: 'operator' });

      const listed = await logflow(['keys', 'list']);
      expect(listed.code, listed.stderr).toBe(0);
      expect(listed.stdout).toMatch(new RegExp(`^${verified!.id}\\talice\\toperator\\t${key.slice(0, 11)}`, 'm'));
      expect(listed.stdout + listed.stderr).not.toContain(key);

      const revoked = await logflow(['keys', 'revoke', String(verified!.id)]);
      expect(revoked.code, revoked.stderr).toBe(0);
      expect(await repository.verify(key)).toBeNull();

      const badRole = await logflow(['keys', 'create', '--name', 'bob', '--role', 'root']);
      expect(badRole.code).toBe(2);
      expect(badRole.stderr).toMatch(/--role must be one of viewer, operator, admin/);
      expect((await logflow(['keys', 'revoke', '999999'])).code).toBe(1);
      expect((await repository.list()).map((k) => k.name)).toEqual(['alice']);
    } finally {
      await pool.end();
    }
  });
});
