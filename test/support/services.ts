/** Where the real services that `npm test` starts (scripts/services.sh) listen, and unique names per test. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const KAFKA_BROKERS = (process.env.TEST_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
export const POSTGRES_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Tests share one broker and one server, so every topic, group and database gets a unique name. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
}

/** A PostgreSQL URL for a fresh database of that name on the test server. */
export function postgresUrlFor(database: string): string {
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${database}`;
  return url.toString();
}

/** Drops a test's database from the test server; `force` ends sessions still connected to it (PostgreSQL 13+). */
export async function dropTestDatabase(database: string, options: { readonly force?: boolean } = {}): Promise<void> {
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${database}"${options.force === true ? ' WITH (FORCE)' : ''}`);
  } finally {
    await admin.end();
  }
}
