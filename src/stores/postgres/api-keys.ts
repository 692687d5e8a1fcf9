/**
 * api_keys: keys for the HTTP API. The plaintext key is returned once, at
 * creation; the table keeps only its SHA-256 and a short prefix to find it.
 *
 * Why a fast hash is enough: slow password hashes (bcrypt, scrypt, argon2)
 * exist because passwords have little entropy and can be guessed from a
 * dictionary. These keys are 32 random bytes (256 bits): even with the hash
 * table stolen, finding a key from its SHA-256 means searching 2^256
 * candidates, so the slowness would buy nothing and cost CPU on every request.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { notFound, parseInput, queryRows, toSafeInteger, type Queryable } from './db.ts';

export const API_KEY_ROLES = ['viewer', 'operator', 'admin'] as const;
export type ApiKeyRole = (typeof API_KEY_ROLES)[number];

/** Recognizable in logs and secret scanners. */
export const API_KEY_PREFIX = 'lf_';
/** Characters of the random part kept in clear to look a key up (48 bits: collisions are negligible). */
const LOOKUP_CHARS = 8;
const SECRET_BYTES = 32;
const KEY_PATTERN = new RegExp(`^${API_KEY_PREFIX}[A-Za-z0-9_-]{43}$`);

export interface ApiKey {
  readonly id: number;
  readonly name: string;
  readonly role: ApiKeyRole;
  /** The key's first characters, to tell keys apart in a list. */
  readonly keyPrefix: string;
  readonly createdAt: Date;
  readonly lastUsedAt: Date | null;
  readonly revokedAt: Date | null;
}

export interface VerifiedApiKey {
  readonly id: number;
  readonly name: string;
  readonly role: ApiKeyRole;
}

export interface ApiKeyRepository {
  /** `key` is the only time the plaintext exists outside the caller: show it once. */
  create(name: string, role: ApiKeyRole): Promise<{ readonly key: string; readonly apiKey: ApiKey }>;
  /**
   * The key's identity, or null when it is unknown, malformed or revoked. Records the use, at most once a minute per
   * key.
   */
  verify(key: string): Promise<VerifiedApiKey | null>;
  /** Idempotent; not_found when the id does not exist. */
  revoke(id: number): Promise<ApiKey>;
  /** Without hashes. */
  list(): Promise<ApiKey[]>;
}

interface ApiKeyRow {
  id: string;
  name: string;
  role: ApiKeyRole;
  key_prefix: string;
  created_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

const COLUMNS = 'id, name, role, key_prefix, created_at, last_used_at, revoked_at';

const toApiKey = (row: ApiKeyRow): ApiKey => ({
  id: toSafeInteger(row.id, 'api_keys.id'),
  name: row.name,
  role: row.role,
  keyPrefix: row.key_prefix,
  createdAt: row.created_at,
  lastUsedAt: row.last_used_at,
  revokedAt: row.revoked_at,
});

function hashKey(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

/** How often a key's last_used_at is brought up to date while it is in use. */
const USE_RECORDED_EVERY_SECONDS = 60;

const lookupPrefix = (key: string): string => key.slice(0, API_KEY_PREFIX.length + LOOKUP_CHARS);

const createSchema = z.object({ name: z.string().min(1).max(200), role: z.enum(API_KEY_ROLES) });

export function createApiKeyRepository(db: Queryable): ApiKeyRepository {
  return {
    async create(name, role) {
      const c = parseInput(createSchema, { name, role }, 'api key');
      const key = API_KEY_PREFIX + randomBytes(SECRET_BYTES).toString('base64url');
      const [row] = await queryRows<ApiKeyRow>(
        db,
        `INSERT INTO api_keys (name, role, key_prefix, key_hash) VALUES ($1, $2, $3, $4) RETURNING ${COLUMNS}`,
        [c.name, c.role, lookupPrefix(key), hashKey(key).toString('hex')],
      );
      return { key, apiKey: toApiKey(row!) };
    },

    async verify(key) {
      if (typeof key !== 'string' || !KEY_PATTERN.test(key)) return null;
      const presented = hashKey(key);
      const candidates = await queryRows<ApiKeyRow & { key_hash: string; recently_used: boolean }>(
        db,
        `SELECT ${COLUMNS}, key_hash, last_used_at > now() - interval '${USE_RECORDED_EVERY_SECONDS} seconds' AS recently_used
           FROM api_keys WHERE key_prefix = $1 AND revoked_at IS NULL`,
        [lookupPrefix(key)],
      );
      // The lookup by prefix reveals only the prefix; the secret part is compared in constant time.
      const match = candidates.find((c) => {
        const stored = Buffer.from(c.key_hash, 'hex');
        return stored.length === presented.length && timingSafeEqual(stored, presented);
      });
      if (match === undefined) return null;
      // A write per request would make every dashboard poll a disk write; a use a minute old is recent enough to show.
      let row: ApiKeyRow | undefined = match;
      if (match.recently_used !== true) {
        // Re-checks revocation, in case the key was revoked between the two statements.
        [row] = await queryRows<ApiKeyRow>(
          db,
          `UPDATE api_keys SET last_used_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING ${COLUMNS}`,
          [match.id],
        );
      }
      return row === undefined ? null : { id: toSafeInteger(row.id, 'api_keys.id'), name: row.name, role: row.role };
    },

    async revoke(id) {
      const checked = parseInput(z.int().positive(), id, 'api key id');
      const [row] = await queryRows<ApiKeyRow>(
        db,
        `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 RETURNING ${COLUMNS}`,
        [checked],
      );
      if (row === undefined) throw notFound('api key', checked);
      return toApiKey(row);
    },

    async list() {
      return (await queryRows<ApiKeyRow>(db, `SELECT ${COLUMNS} FROM api_keys ORDER BY id`)).map(toApiKey);
    },
  };
}
