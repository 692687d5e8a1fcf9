/**
 * How the dashboard is served: one in-memory bundle, gzip-compressed once,
 * content-hashed assets cached forever, index.html always revalidated.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardBundle, registerDashboard } from '../../src/api/dashboard.ts';

const BUDGET_GZIP_BYTES = 300 * 1024;

describe('dashboard serving', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = Fastify();
    await registerDashboard(app);
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
  });

  it('serves index.html that loads the hashed script and stylesheet, revalidated on every load', async () => {
    const response = await app.inject({ method: 'GET', url: '/' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/html/);
    expect(response.headers['cache-control']).toBe('no-cache');
    expect(response.headers['content-security-policy']).toContain("script-src 'self'");
    const bundle = await dashboardBundle();
    expect(response.body).toContain(`<script type="module" src="/assets/${bundle.script.name}"></script>`);
    expect(response.body).toContain(`href="/assets/${bundle.stylesheet.name}"`);
    expect(bundle.script.name).toMatch(/^app-[A-Z0-9]+\.js$/);
  });

  it('sends the script gzip-compressed with an immutable cache header, and plain to clients without gzip', async () => {
    const bundle = await dashboardBundle();
    const url = `/assets/${bundle.script.name}`;
    const zipped = await app.inject({ method: 'GET', url, headers: { 'accept-encoding': 'gzip, deflate, br' } });
    expect(zipped.statusCode).toBe(200);
    expect(zipped.headers['content-encoding']).toBe('gzip');
    expect(zipped.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(zipped.headers['content-type']).toMatch(/^text\/javascript/);
    expect(zipped.rawPayload.length).toBe(bundle.script.gzip.length);
    expect(gunzipSync(zipped.rawPayload).equals(bundle.script.body)).toBe(true);

    const plain = await app.inject({ method: 'GET', url, headers: { 'accept-encoding': 'identity' } });
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.rawPayload.equals(bundle.script.body)).toBe(true);
  });

  it('keeps the first load under 300 KB of gzipped JavaScript and bundles uPlot with its stylesheet', async () => {
    const bundle = await dashboardBundle();
    const scripts = [...bundle.assets.values()].filter((a) => a.name.endsWith('.js'));
    const gzipBytes = scripts.reduce((sum, a) => sum + a.gzip.length, 0);
    console.log(
      `dashboard JS: ${scripts.map((a) => a.name).join(', ')} ${bundle.script.body.length} B raw, ${gzipBytes} B gzip (budget ${BUDGET_GZIP_BYTES})`,
    );
    expect(scripts).toHaveLength(1);
    expect(gzipBytes).toBeLessThan(BUDGET_GZIP_BYTES);
    expect(bundle.stylesheet.body.toString()).toContain('.u-legend');
    expect(bundle.script.body.toString()).toContain('u-legend');
  });

  it('answers 304 to a matching ETag and 404 to an unknown asset', async () => {
    const bundle = await dashboardBundle();
    const url = `/assets/${bundle.stylesheet.name}`;
    const first = await app.inject({ method: 'GET', url });
    const etag = first.headers['etag'];
    expect(typeof etag).toBe('string');
    const again = await app.inject({ method: 'GET', url, headers: { 'if-none-match': String(etag) } });
    expect(again.statusCode).toBe(304);
    expect(again.rawPayload.length).toBe(0);
    const missing = await app.inject({ method: 'GET', url: '/assets/app-NOPE.js' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ error: 'not_found' });
    const traversal = await app.inject({ method: 'GET', url: '/assets/..%2Fpackage.json' });
    expect(traversal.statusCode).toBe(404);
  });

  it('builds the bundle once per process', async () => {
    expect(await dashboardBundle()).toBe(await dashboardBundle());
  });
});
