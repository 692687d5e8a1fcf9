/**
 * The dashboard's live tail in Debian's Chromium (playwright-core), against
 * the real API server on chdb + PGlite: lines stored while the page is open
 * appear on top, filtered; pause hangs up and resume brings what was stored
 * meanwhile; the list stays bounded.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApiServer } from '../../src/api/server.ts';
import { loadConfig } from '../../src/core/config.ts';
import { openEngines, type Engines } from '../../src/clients/engines.ts';
import { Health } from '../../src/core/health.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createMetrics } from '../../src/core/metrics.ts';
import { migrateAll } from '../../src/app/migrate.ts';
import { ClickHouseVectorStore } from '../../src/stores/clickhouse-vector.ts';
import { toClickHouseDateTime } from '../../src/stores/logs-table.ts';
import { createRepositories } from '../../src/stores/postgres/index.ts';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.resolve(import.meta.dirname, '../../artifacts');
/** The page keeps this many lines (web/pages/tail.ts). */
const MAX_ROWS = 500;

function row(service: string, level: string, message: string, attributes: Record<string, string> = {}) {
  const now = Date.now();
  return {
    log_id: randomUUID(),
    timestamp: toClickHouseDateTime(now),
    service,
    environment: 'production',
    level,
    message,
    template: message,
    error_hash: '0',
    host: 'h',
    trace_id: '',
    attributes,
    ingested_at: toClickHouseDateTime(now),
  };
}

describe('live tail in Chromium', () => {
  let dir = '';
  let engines: Engines | undefined;
  let app: FastifyInstance | undefined;
  let browser: Browser | undefined;
  let base = '';
  let key = '';
  const consoleErrors: string[] = [];

  const store = async (...rows: unknown[]) => {
    await engines!.clickhouse.insert({ table: 'logs', format: 'JSONEachRow', values: rows });
  };
  const openTails = async (): Promise<number> => {
    const text = await (await fetch(`${base}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('logflow_tail_connections '));
    return Number(line?.split(' ')[1] ?? 0);
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-tail-browser-'));
    await mkdir(ARTIFACTS, { recursive: true });
    const config = loadConfig({ LOGFLOW_DATA_DIR: dir, LOGFLOW_TAIL_POLL_MS: '200' });
    engines = await openEngines(config, { createDatabases: true });
    await migrateAll(engines);
    const repositories = createRepositories(engines.postgres);
    key = (await repositories.apiKeys.create('tail-e2e', 'viewer')).key;
    app = await buildApiServer({
      config,
      logger: createLogger({ level: 'warn' }),
      metrics: createMetrics({ defaultMetrics: false }),
      health: new Health(),
      clickhouse: engines.clickhouse,
      repositories,
      vectorStore: new ClickHouseVectorStore({ client: engines.clickhouse }),
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    if (address === null || typeof address === 'string') throw new Error('no TCP address');
    base = `http://127.0.0.1:${address.port}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await engines?.close();
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('shows matching lines as they are stored, pauses and resumes without losing any, and keeps the list bounded', {
    timeout: 120_000,
  }, async () => {
    const context = await browser!.newContext({ viewport: { width: 1360, height: 900 } });
    const page = await context.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(e.message));
    const rows = page.locator('#tail-rows tr');

    await page.goto(`${base}/#key=${encodeURIComponent(key)}`);
    await page.waitForSelector('nav');
    const hash = `#/tail?service=checkout&attr.region=${encodeURIComponent("eu-'west")}`;
    await page.evaluate(`location.hash = ${JSON.stringify(hash)}`);
    await page.waitForSelector('#tail-status:text("Live")');
    // The filters shown are the ones streamed.
    expect(await page.inputValue('input[name="attr"]')).toBe("region=eu-'west");

    await store(
      row('checkout', 'ERROR', 'card declined', { region: "eu-'west" }),
      row('checkout', 'INFO', 'other region', { region: 'us-east' }),
      row('search', 'ERROR', 'other service', { region: "eu-'west" }),
    );
    await page.waitForSelector('#tail-rows >> text=card declined');
    await store(row('checkout', 'WARN', 'retrying payment', { region: "eu-'west" }));
    await page.waitForSelector('#tail-rows >> text=retrying payment');
    // Newest on top, and nothing that does not match.
    expect(await rows.allInnerTexts()).toEqual([
      expect.stringContaining('retrying payment'),
      expect.stringContaining('card declined'),
    ]);
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-tail.png'), fullPage: true });

    // Pause hangs up: the server's slot is freed and nothing new is shown.
    await page.click('#tail-toggle:text("Pause")');
    await page.waitForSelector('#tail-status:text("Paused")');
    await expect.poll(openTails).toBe(0);
    await store(row('checkout', 'ERROR', 'stored while paused', { region: "eu-'west" }));
    expect(await rows.count()).toBe(2);

    // Resume picks up after the last line shown: what was stored meanwhile comes first.
    await page.click('#tail-toggle:text("Resume")');
    await page.waitForSelector('#tail-rows >> text=stored while paused');
    await expect.poll(openTails).toBe(1);
    expect(await rows.count()).toBe(3);

    // A burst larger than the list: the page keeps the newest lines only.
    const burst = Array.from({ length: MAX_ROWS + 20 }, (_, i) =>
      row('checkout', 'INFO', `burst line ${i}`, { region: "eu-'west" }),
    );
    await store(...burst);
    await page.waitForSelector(`#tail-rows >> text=burst line ${MAX_ROWS + 19}`);
    await expect.poll(() => rows.count()).toBe(MAX_ROWS);
    expect(await rows.first().innerText()).toContain(`burst line ${MAX_ROWS + 19}`);

    // New filters from the form: the page starts a new tail with them, and the old one is hung up.
    await page.fill('input[name="traceId"]', 'trace-42');
    await page.fill('input[name="attr"]', '');
    await page.click('button:text("Apply")');
    // The page is drawn anew for the new filters. Until then the old page's status says "Live" and its
    // tail is the open one, so wait for the new, empty list to go live before storing what it must show.
    await expect.poll(() => rows.count()).toBe(0);
    await page.waitForSelector('#tail-status:text("Live")');
    expect(page.url()).toContain('traceId=trace-42');
    await expect.poll(openTails).toBe(1);
    await store(
      { ...row('checkout', 'ERROR', 'other trace'), trace_id: 'trace-41' },
      { ...row('checkout', 'ERROR', 'in the trace'), trace_id: 'trace-42' },
    );
    await page.waitForSelector('#tail-rows >> text=in the trace');
    expect(await rows.allInnerTexts()).toEqual([expect.stringContaining('in the trace')]);

    // Leaving the page hangs up.
    await page.evaluate("location.hash = '#/overview'");
    await expect.poll(openTails).toBe(0);
    expect(consoleErrors).toEqual([]);
    await context.close();
  });

  it('shows why a filter was refused instead of retrying', async () => {
    const context = await browser!.newContext();
    const page = await context.newPage();
    await page.goto(`${base}/#key=${encodeURIComponent(key)}`);
    await page.waitForSelector('nav');
    await page.evaluate(`location.hash = '#/tail?attr.${encodeURIComponent('bad key')}=x'`);
    await page.waitForSelector('.error-box');
    expect(await page.locator('.error-box').innerText()).toContain('an attribute key is 1-128 characters');
    expect(await page.locator('#tail-status').innerText()).toBe('Stopped');
    await context.close();
  });
});
