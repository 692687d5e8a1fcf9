/**
 * `npm start` as a newcomer runs it: a child process on embedded engines
 * (in-process topics, chdb, PGlite), then the same data directory opened
 * through the same engines to check what it wrote; a second start continues
 * from the stored data without duplicating anything.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/core/config.ts';
import { openEngines } from '../../src/clients/engines.ts';
import { EMBEDDED_PIPELINES, type RunSummary } from '../../src/app/embedded.ts';
import { pipelines } from '../../src/app/registry.ts';
import { vectorCollection } from '../../src/app/resources.ts';
import { alertNotificationSchema } from '../../src/domain/alert-notification.ts';
import { ClickHouseVectorStore } from '../../src/stores/clickhouse-vector.ts';
import { startWebhookReceiver } from '../support/webhook-receiver.ts';

function npmStart(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('npm', ['start', '--', ...args], {
      env: { ...process.env, LOGFLOW_METRICS_PORT: '0', CI: 'true', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('exit', (code) => resolve({ code, output }));
  });
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

describe('npm start (embedded mode)', () => {
  let dir = '';
  afterAll(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('runs the same pipeline definitions as server mode', () => {
    for (const [name, definition] of Object.entries(EMBEDDED_PIPELINES)) {
      expect(definition, name).toBe(pipelines[name as keyof typeof pipelines]);
    }
  });

  it('stores every generated log once, vectorizes patterns, raises the incident alert, posts it, writes a report, and continues on a second run', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-start-'));
    const receiver = await startWebhookReceiver();
    const first = await npmStart(['--duration', '30s', '--rate', '2000', '--data-dir', dir, '--analyze-after', '20s'], {
      LOGFLOW_ALERT_WEBHOOK_URL: receiver.url('/alerts'),
    }).finally(() => receiver.close());
    expect(first.code, first.output).toBe(0);
    const analyzedDate = /nightly report for (\S+) written/.exec(first.output)?.[1];
    expect(analyzedDate, first.output).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    const firstRun = JSON.parse(await readFile(path.join(dir, 'last-run.json'), 'utf8')) as RunSummary;
    const truth = (await readFile(path.join(dir, 'ground-truth.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { kind: string; service: string });

    const check = async () => {
      const engines = await openEngines(loadConfig({ LOGFLOW_DATA_DIR: dir }));
      try {
        const q = async (sql: string) =>
          Number(
            Object.values(
              (
                await (
                  await engines.clickhouse.query({ query: sql, format: 'JSONEachRow' })
                ).json<Record<string, string>>()
              )[0] ?? {},
            )[0],
          );
        // The collection of the embedder npm start ran with: the model's when it is fetched, else the default.
        const vectors = new ClickHouseVectorStore({
          client: engines.clickhouse,
          table: vectorCollection(
            loadConfig({
              LOGFLOW_DATA_DIR: dir,
              LOGFLOW_MODELS_DIR: process.env.LOGFLOW_MODELS_DIR,
              XDG_CACHE_HOME: process.env.XDG_CACHE_HOME,
            }),
          ),
        });
        return {
          logs: await q('SELECT count() FROM logs'),
          ids: await q('SELECT uniqExact(log_id) FROM logs'),
          patterns: await q('SELECT count() FROM error_patterns FINAL WHERE has_embedding = 1'),
          vectors: await vectors.count(),
          alerts: (
            await engines.postgres.query<{ rule: string; service: string }>(
              "SELECT rule, service FROM anomaly_alerts WHERE status = 'open'",
            )
          ).rows,
          // The report --analyze-after asked for; the nightly cron, on event time, may add the day before it.
          reports: Number(
            (
              await engines.postgres.query<{ n: string }>(
                'SELECT count(*) AS n FROM nightly_reports WHERE report_date = $1',
                [analyzedDate],
              )
            ).rows[0]?.n,
          ),
        };
      } finally {
        await engines.close();
      }
    };

    const afterFirst = await check();
    expect(afterFirst.logs, `${first.output}\n${JSON.stringify(firstRun)}`).toBe(firstRun.generated);
    expect(afterFirst.ids).toBe(afterFirst.logs);
    expect(afterFirst.patterns).toBeGreaterThan(5);
    expect(afterFirst.vectors).toBe(afterFirst.patterns);
    const spike = truth.find((t) => t.kind === 'spike')!;
    expect(afterFirst.alerts).toContainEqual({ rule: 'spike', service: spike.service });
    expect(afterFirst.reports).toBe(1);
    expect(first.output).toContain(`alert notifications: POST to ${new URL(receiver.url()).origin}`);
    // The spike's opening reached the webhook, in the documented shape, once.
    const posted = receiver.received.map((r) => alertNotificationSchema.parse(r.body));
    const spikeOpened = posted.filter((p) => p.event === 'opened' && p.kind === 'spike' && p.service === spike.service);
    expect(spikeOpened, first.output).toHaveLength(1);
    expect(spikeOpened[0]!.dashboard_url ?? '/#/alerts/').toMatch(/\/#\/alerts\/\d*$/);
    const transitions = posted.map((p) => `${p.alert_id}:${p.event}:${p.window_end}`);
    expect(new Set(transitions).size).toBe(transitions.length);

    // The second run is also given a port something else holds: the dashboard is skipped, the rest runs.
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const busyPort = (holder.address() as AddressInfo).port;
    // The metrics port too: it is not served, and the start says so instead of going on silently.
    const second = await npmStart(
      ['--duration', '10s', '--rate', '1000', '--data-dir', dir, '--api-port', String(busyPort)],
      { LOGFLOW_METRICS_PORT: String(busyPort) },
    ).finally(() => new Promise((resolve) => holder.close(resolve)));
    expect(second.code, second.output).toBe(0);
    expect(second.output).toMatch(/dashboard not started: .*(EADDRINUSE|in use).*--api-port/);
    expect(second.output).toMatch(new RegExp(`metrics not served: .*EADDRINUSE.*:${busyPort}.*LOGFLOW_METRICS_PORT`));
    expect(second.output).not.toContain(`metrics on http://127.0.0.1:${busyPort}`);
    const secondRun = JSON.parse(await readFile(path.join(dir, 'last-run.json'), 'utf8')) as RunSummary;
    expect(second.output).not.toContain('bootstrapping');
    const afterSecond = await check();
    expect(secondRun.generated).toBeGreaterThan(0);
    expect(afterSecond.logs).toBe(afterFirst.logs + secondRun.generated);
    expect(afterSecond.ids).toBe(afterSecond.logs);
    expect(afterSecond.reports).toBe(1);
  }, 300_000);

  it("keeps /healthz and /readyz at 200 on both ports after --analyze-after's report, while ingest goes on storing, and runs the dashboard's analysis requests", async () => {
    const healthDir = await mkdtemp(path.join(os.tmpdir(), 'logflow-start-health-'));
    const [metricsPort, apiPort] = [await freePort(), await freePort()];
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/app/cli.ts',
        'start',
        '--data-dir',
        healthDir,
        '--duration',
        '10m',
        '--rate',
        '500',
        '--history',
        '1m',
        '--analyze-after',
        '2s',
        '--api-port',
        String(apiPort),
      ],
      {
        env: { ...process.env, LOGFLOW_METRICS_PORT: String(metricsPort), CI: 'true' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await new Promise<void>((resolve, reject) => {
        const onData = (d: Buffer) => {
          output += d.toString();
          if (/nightly report for \S+ written/.test(output)) resolve();
        };
        child.stdout.on('data', onData);
        child.stderr.on('data', onData);
        void exited.then((code) => reject(new Error(`npm start exited (${code}) before its report:\n${output}`)));
      });
      const stored = async () => {
        const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
        return Number(/^logflow_records_out_total\{pipeline="ingest",stage="clickhouse"\} (\d+)/m.exec(text)?.[1] ?? 0);
      };
      const before = await stored();
      for (const port of [metricsPort, apiPort]) {
        for (const probe of ['/healthz', '/readyz']) {
          const response = await fetch(`http://127.0.0.1:${port}${probe}`);
          const body = await response.text();
          expect(response.status, `${probe} on ${port}: ${body}\n${output}`).toBe(200);
          expect(JSON.parse(body)).toMatchObject({
            phase: 'running',
            status: 'ok',
            pipelines: { ingest: 'running', nightly: 'running', baselines: 'running' },
          });
        }
      }
      // Still storing after the report: the 200s are not about a process that stopped working.
      const deadline = Date.now() + 60_000;
      while ((await stored()) <= before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
      expect(await stored()).toBeGreaterThan(before);

      // "Run analysis" in the dashboard: the job is picked up and completed while the run goes on.
      const key = /#key=(\S+)/.exec(output)?.[1];
      expect(key, output).toBeDefined();
      const api = (route: string, init: RequestInit = {}) =>
        fetch(`http://127.0.0.1:${apiPort}${route}`, {
          ...init,
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        });
      const requested = await api('/api/v1/analysis-jobs', {
        method: 'POST',
        body: JSON.stringify({ date: new Date().toISOString().slice(0, 10) }),
      });
      expect(requested.status, await requested.clone().text()).toBe(202);
      const { id } = (await requested.json()) as { id: number };
      let job: { status: string; error: string | null } = { status: 'pending', error: null };
      const jobDeadline = Date.now() + 60_000;
      while (['pending', 'running'].includes(job.status) && Date.now() < jobDeadline) {
        await new Promise((r) => setTimeout(r, 500));
        job = (await (await api(`/api/v1/analysis-jobs/${id}`)).json()) as typeof job;
      }
      expect(job, output).toMatchObject({ status: 'completed', error: null });
      child.kill('SIGINT');
      expect(await exited, output).toBe(0);
    } finally {
      child.kill('SIGKILL');
      await rm(healthDir, { recursive: true, force: true });
    }
  }, 180_000);

  it('stops the whole run with exit 1 and says which pipeline failed, when one fails for good', async () => {
    // An embeddings endpoint that refuses the key: vectorize cannot go on, and waiting for it to catch up would never
    // end.
    const refusing = createHttpServer((_request, response) => {
      response.writeHead(401, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({
          error: { message: 'Incorrect API key provided', type: 'invalid_request_error', code: 'invalid_api_key' },
        }),
      );
    });
    await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve));
    const failDir = await mkdtemp(path.join(os.tmpdir(), 'logflow-start-fail-'));
    try {
      const url = `http://127.0.0.1:${(refusing.address() as AddressInfo).port}/v1`;
      const run = await npmStart(['--duration', '5m', '--rate', '500', '--data-dir', failDir, '--api-port', '0'], {
        LOGFLOW_EMBEDDINGS_URL: url,
        LOGFLOW_EMBEDDINGS_API_KEY: 'sk-wrong',
        LOGFLOW_EMBEDDINGS_MODEL: 'text-embedding-3-small',
      });
      expect(run.code, run.output).toBe(1);
      expect(run.output).toMatch(/logflow: vectorize failed: .*401.*; stopping \(details in .*logflow\.log\)/);
      // Stopped well before the 5 minutes it was asked to run, and still wrote its summary.
      expect(run.output).toMatch(/stored \d+ logs/);
    } finally {
      await new Promise((resolve) => refusing.close(resolve));
      await rm(failDir, { recursive: true, force: true });
    }
  }, 180_000);
});
