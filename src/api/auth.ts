/**
 * Bearer API keys (the api_keys repository: hashed, constant-time compared)
 * and roles ordered viewer < operator < admin. A route declares the least
 * role it needs in its config; routes without one (health, metrics, docs,
 * the dashboard's static files) are public. The check runs on request, so an
 * unauthenticated caller never gets its body parsed, and after the rate limit.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiKeyRepository, ApiKeyRole, VerifiedApiKey } from '../stores/postgres/api-keys.ts';
import { ApiError } from './errors.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The least role the route needs; absent: public. */
    minRole?: ApiKeyRole;
  }
  interface FastifyRequest {
    apiKey: VerifiedApiKey | null;
  }
}

const RANK: Readonly<Record<ApiKeyRole, number>> = { viewer: 0, operator: 1, admin: 2 };

export function hasRole(key: VerifiedApiKey, needed: ApiKeyRole): boolean {
  return RANK[key.role] >= RANK[needed];
}

const unauthorized = (message: string) => new ApiError(401, 'unauthorized', message);

export function installAuth(app: FastifyInstance, apiKeys: ApiKeyRepository): void {
  app.decorateRequest('apiKey', null);
  const authenticate = async (request: FastifyRequest): Promise<void> => {
    const needed = request.routeOptions.config.minRole;
    if (needed === undefined) return;
    const header = request.headers.authorization;
    if (header === undefined || header === '') throw unauthorized('missing Authorization: Bearer <api key> header');
    const match = /^Bearer +(\S+)$/i.exec(header);
    if (match === null) throw unauthorized('the Authorization header must be "Bearer <api key>"');
    const key = await apiKeys.verify(match[1]!);
    // Unknown, malformed and revoked keys get the same answer: which one it was would help a guesser.
    if (key === null) throw unauthorized('the API key is invalid or revoked');
    if (!hasRole(key, needed))
      throw new ApiError(403, 'forbidden', `this needs the ${needed} role; the key "${key.name}" is ${key.role}`);
    request.apiKey = key;
  };
  // A route-level hook added after the rate limiter's (registered first), so a flood is
  // limited before any key is looked up in the database.
  app.addHook('onRoute', (route) => {
    if (route.config?.minRole === undefined) return;
    const existing =
      route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest];
    route.onRequest = [...existing, authenticate] as NonNullable<typeof route.onRequest>;
  });
}

/** The caller of a route that declared a role: set by the hook before any handler runs. */
export function caller(request: FastifyRequest): VerifiedApiKey {
  if (request.apiKey === null) throw new ApiError(401, 'unauthorized', 'not authenticated');
  return request.apiKey;
}
