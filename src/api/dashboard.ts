/**
 * The web dashboard, served by the API server itself: web/ is bundled with
 * esbuild in memory once per process (no build step, so `npm start` works on a
 * fresh clone), gzip-compressed once, and served with content-hashed asset
 * names so browsers can cache them forever while index.html is always revalidated.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync, constants as zlibConstants } from 'node:zlib';
import { build } from 'esbuild';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCodes, LogflowError } from '../core/errors.ts';

export const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../web');

export interface DashboardAsset {
  readonly name: string;
  readonly contentType: string;
  readonly body: Buffer;
  readonly gzip: Buffer;
  readonly etag: string;
}

export interface DashboardBundle {
  readonly index: DashboardAsset;
  /** By file name under /assets/. */
  readonly assets: ReadonlyMap<string, DashboardAsset>;
  readonly script: DashboardAsset;
  readonly stylesheet: DashboardAsset;
}

function asset(name: string, contentType: string, body: Buffer): DashboardAsset {
  const digest = createHash('sha256').update(body).digest('hex');
  return {
    name,
    contentType,
    body,
    gzip: gzipSync(body, { level: zlibConstants.Z_BEST_COMPRESSION }),
    etag: `"${digest.slice(0, 32)}"`,
  };
}

async function bundle(): Promise<DashboardBundle> {
  let result;
  try {
    result = await build({
      entryPoints: { app: path.join(WEB_DIR, 'main.ts') },
      bundle: true,
      minify: true,
      write: false,
      format: 'esm',
      target: ['es2022', 'chrome110', 'firefox110', 'safari16'],
      outdir: '/assets',
      entryNames: '[name]-[hash]',
      legalComments: 'none',
      logLevel: 'silent',
      absWorkingDir: path.resolve(WEB_DIR, '..'),
    });
  } catch (error) {
    throw new LogflowError(ErrorCodes.INTERNAL, 'dashboard bundle failed', {
      retriable: false,
      stage: 'api',
      cause: error,
    });
  }
  const assets = new Map<string, DashboardAsset>();
  let script: DashboardAsset | undefined;
  let stylesheet: DashboardAsset | undefined;
  for (const file of result.outputFiles) {
    const name = path.basename(file.path);
    const isJs = name.endsWith('.js');
    const built = asset(
      name,
      isJs ? 'text/javascript; charset=utf-8' : 'text/css; charset=utf-8',
      Buffer.from(file.contents),
    );
    assets.set(name, built);
    if (isJs) script = built;
    else if (name.endsWith('.css')) stylesheet = built;
  }
  if (script === undefined || stylesheet === undefined) {
    throw new LogflowError(ErrorCodes.INTERNAL, 'dashboard bundle produced no script or stylesheet', {
      retriable: false,
      stage: 'api',
    });
  }
  const template = await readFile(path.join(WEB_DIR, 'index.html'), 'utf8');
  const html = template
    .replace('{{script}}', `/assets/${script.name}`)
    .replace('{{stylesheet}}', `/assets/${stylesheet.name}`);
  return { index: asset('index.html', 'text/html; charset=utf-8', Buffer.from(html)), assets, script, stylesheet };
}

let cached: Promise<DashboardBundle> | undefined;

/** The bundle of this process, built on first use (several servers in one process share it). */
export function dashboardBundle(): Promise<DashboardBundle> {
  if (cached === undefined) {
    cached = bundle();
    // A failed build must not poison the process: the next registration retries.
    cached.catch(() => (cached = undefined));
  }
  return cached;
}

const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  // uPlot positions its legend and cursor with inline styles.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join('; ');

function acceptsGzip(request: FastifyRequest): boolean {
  const header = request.headers['accept-encoding'];
  const value = Array.isArray(header) ? header.join(',') : (header ?? '');
  return /\bgzip\b/i.test(value) && !/\bgzip\s*;\s*q=0(\.0+)?\b/i.test(value);
}

function send(request: FastifyRequest, reply: FastifyReply, file: DashboardAsset, cacheControl: string): FastifyReply {
  reply
    .header('Content-Type', file.contentType)
    .header('Cache-Control', cacheControl)
    .header('ETag', file.etag)
    .header('Vary', 'Accept-Encoding')
    .header('X-Content-Type-Options', 'nosniff');
  if (request.headers['if-none-match'] === file.etag) return reply.code(304).send();
  if (acceptsGzip(request)) return reply.header('Content-Encoding', 'gzip').send(file.gzip);
  return reply.send(file.body);
}

export async function registerDashboard(app: FastifyInstance): Promise<void> {
  const files = await dashboardBundle();
  const sendIndex = (request: FastifyRequest, reply: FastifyReply) =>
    send(
      request,
      reply.header('Content-Security-Policy', CSP).header('Referrer-Policy', 'no-referrer'),
      files.index,
      'no-cache',
    );
  app.get('/', { schema: { hide: true } }, async (request, reply) => sendIndex(request, reply));
  app.get('/index.html', { schema: { hide: true } }, async (request, reply) => sendIndex(request, reply));
  app.get<{ Params: { name: string } }>('/assets/:name', { schema: { hide: true } }, async (request, reply) => {
    const file = files.assets.get(request.params.name);
    if (file === undefined) {
      return reply.code(404).send({ error: 'not_found', message: `no dashboard asset ${request.params.name}` });
    }
    return send(request, reply, file, 'public, max-age=31536000, immutable');
  });
}
