/**
 * Alert webhooks end to end below the pipeline: windows through the real
 * alert lifecycle, its events applied in a transaction as detect's checkpoint
 * does (src/sinks/alert-events.ts), the outbox in a real database (a
 * PostgreSQL server and PGlite), and the sender posting over real HTTP to a
 * local receiver.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { migratePostgres } from '../../src/app/migrate.ts';
import { openPostgres } from '../../src/clients/engines.ts';
import { loadConfig } from '../../src/core/config.ts';
import { createLogger, type Logger } from '../../src/core/logger.ts';
import { alertNotificationSchema, type AlertNotification } from '../../src/domain/alert-notification.ts';
import { AlertLifecycleState, type LifecycleInput, type SilenceCheck } from '../../src/domain/anomaly.ts';
import { applyAlertEvent } from '../../src/sinks/alert-events.ts';
import { AlertNotifier, type AlertNotifierOptions } from '../../src/sinks/alert-notifier.ts';
import { raiseAlert, resolveAlert } from '../../src/sinks/alert-transitions.ts';
import type { NotificationTargets } from '../../src/stores/postgres/alert-notifications.ts';
import { createRepositories, type PoolRepositories } from '../../src/stores/postgres/index.ts';
import { dropTestDatabase, postgresUrlFor, uniqueName } from '../support/services.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.ts';

const MINUTE = 60_000;
const T0 = Date.parse('2026-11-30T10:00:00Z');

interface Database {
  readonly pool: pg.Pool;
  close(): Promise<void>;
}

async function openServer(): Promise<Database> {
  const database = uniqueName('logflow_notify');
  const { pool, close } = await openPostgres(loadConfig({ LOGFLOW_POSTGRES_URL: postgresUrlFor(database) }), {
    createDatabases: true,
  });
  return {
    pool,
    async close() {
      await close();
      await dropTestDatabase(database);
    },
  };
}

async function openPglite(): Promise<Database> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-notify-'));
  const { pool, close } = await openPostgres(loadConfig({ LOGFLOW_DATA_DIR: dir }));
  return {
    pool,
    async close() {
      await close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A logger whose lines the test reads. */
function capturedLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n'))
        if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger({ level: 'info', destination }), lines };
}

function window(minute: number, anomalous: boolean, service = 'checkout'): LifecycleInput {
  return {
    service,
    environment: 'prod',
    level: 'ERROR',
    start: T0 + minute * MINUTE,
    end: T0 + (minute + 1) * MINUTE,
    count: anomalous ? 240 : 20,
    kind: anomalous ? 'spike' : null,
    score: anomalous ? 9.5 : 0.2,
    expected: 20,
  };
}

/** Applies windows to the lifecycle and writes each window's events in one transaction, as a checkpoint does. */
async function feed(
  repos: PoolRepositories,
  state: AlertLifecycleState,
  windows: readonly LifecycleInput[],
  targets: NotificationTargets,
  isSilenced?: SilenceCheck,
): Promise<void> {
  for (const w of windows) {
    const events = state.apply(w, isSilenced);
    if (events.length === 0) continue;
    await repos.transaction(async (tx) => {
      for (const event of events) await applyAlertEvent(tx, event, targets);
    });
  }
}

/** Two anomalous windows open the alert (pendingWindows 2), two normal ones resolve it. */
const INCIDENT = (service = 'checkout', from = 0): LifecycleInput[] => [
  window(from, true, service),
  window(from + 1, true, service),
  window(from + 2, false, service),
  window(from + 3, false, service),
];

const payloads = (receiver: WebhookReceiver): AlertNotification[] =>
  receiver.received.map((r) => alertNotificationSchema.parse(r.body));

async function waitFor(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe.each([
  ['a PostgreSQL server', openServer],
  ['PGlite', openPglite],
])('alert notifications on %s', (_name, open) => {
  let db: Database;
  let repos: PoolRepositories;
  let receiver: WebhookReceiver;
  let notifier: AlertNotifier | undefined;
  let targets: NotificationTargets;
  let state: AlertLifecycleState;

  beforeAll(async () => {
    db = await open();
    await migratePostgres(db.pool);
    repos = createRepositories(db.pool);
  });
  afterAll(() => db.close());

  beforeEach(async () => {
    receiver = await startWebhookReceiver();
    targets = { defaultUrl: receiver.url(), dashboardUrl: 'http://127.0.0.1:8080/' };
    state = new AlertLifecycleState({ pendingWindows: 2, resolveWindows: 2, cooldownMs: 3 * MINUTE });
    // Each test starts from an empty outbox and alert table: counts below are this test's alone.
    await db.pool.query(
      'TRUNCATE anomaly_alerts, alert_notifications, alert_silences, services RESTART IDENTITY CASCADE',
    );
  });
  afterEach(async () => {
    await notifier?.close();
    notifier = undefined;
    await receiver.close();
  });

  const sender = (options: Partial<AlertNotifierOptions> = {}) =>
    new AlertNotifier(repos.alertNotifications, {
      logger: capturedLogger().logger,
      pollMs: 20,
      timeoutMs: 2_000,
      retry: { baseDelayMs: 10, maxDelayMs: 50, jitter: 'none' },
      ...options,
    });

  it('posts the opening and the resolution with the documented payload, and sets last_notified_at', async () => {
    await feed(repos, state, INCIDENT(), targets);
    notifier = sender().start();
    await waitFor(() => receiver.received.length >= 2, 'two notifications');

    const [opened, resolved] = payloads(receiver);
    const [alert] = (await repos.anomalyAlerts.list()).items;
    expect(alert).toBeDefined();
    expect(opened).toMatchObject({
      version: 1,
      event: 'opened',
      alert_id: alert!.id,
      dedup_key: 'spike:checkout:prod:ERROR',
      kind: 'spike',
      alert_type: 'spike',
      status: 'open',
      service: 'checkout',
      environment: 'prod',
      level: 'ERROR',
      severity: 'medium',
      score: 9.5,
      count: 240,
      expected: 20,
      window_start: new Date(T0 + MINUTE).toISOString(),
      window_end: new Date(T0 + 2 * MINUTE).toISOString(),
      opened_at: new Date(T0 + 2 * MINUTE).toISOString(),
      resolved_at: null,
      dashboard_url: `http://127.0.0.1:8080/#/alerts/${alert!.id}`,
    });
    expect(opened!.text).toContain('Alert opened');
    expect(opened!.text).toContain('checkout / prod / ERROR');
    expect(resolved).toMatchObject({
      event: 'resolved',
      alert_id: alert!.id,
      status: 'resolved',
      opened_at: new Date(T0 + 2 * MINUTE).toISOString(),
      resolved_at: new Date(T0 + 4 * MINUTE).toISOString(),
    });
    expect(resolved!.text).toContain('Alert resolved');
    for (const r of receiver.received) {
      expect(r.path).toBe('/hook');
      expect(r.headers['content-type']).toBe('application/json');
      expect(r.headers['idempotency-key']).toBe((r.body as AlertNotification).delivery_id);
      expect(r.headers['x-logflow-event']).toBe((r.body as AlertNotification).event);
    }
    expect(opened!.delivery_id).not.toBe(resolved!.delivery_id);
    await waitFor(async () => (await repos.alertNotifications.counts()).sent === 2, 'both marked sent');
    expect((await repos.anomalyAlerts.get(alert!.id))?.lastNotifiedAt).toBeInstanceOf(Date);
    expect(await repos.alertNotifications.counts()).toEqual({ pending: 0, sent: 2, failed: 0 });
  });

  it('re-notifies an alert that stays open only after the cooldown', async () => {
    // Seven anomalous windows: opened with the second; the cooldown (3 windows) allows one renotify, with the fifth.
    const windows = Array.from({ length: 7 }, (_, m) => window(m, true));
    await feed(repos, state, windows, targets);
    notifier = sender().start();
    await waitFor(async () => (await repos.alertNotifications.counts()).pending === 0, 'the outbox drained');
    expect(payloads(receiver).map((p) => [p.event, p.window_end])).toEqual([
      ['opened', new Date(T0 + 2 * MINUTE).toISOString()],
      ['renotified', new Date(T0 + 5 * MINUTE).toISOString()],
    ]);
    expect(payloads(receiver)[1]!.text).toContain('Alert still open');
  });

  it('delivers each transition exactly once after the receiver comes back, without holding detection', async () => {
    await receiver.down();
    await feed(repos, state, INCIDENT().slice(0, 2), targets);
    notifier = sender().start();
    // Failing attempts are rescheduled, not repeated in a loop, and the reason is kept.
    await waitFor(async () => {
      const { rows } = await db.pool.query<{ attempts: number }>('SELECT attempts FROM alert_notifications');
      return (rows[0]?.attempts ?? 0) >= 3;
    }, 'three failed attempts');
    const { rows } = await db.pool.query<{ last_error: string; sent_at: Date | null }>(
      'SELECT last_error, sent_at FROM alert_notifications',
    );
    expect(rows[0]?.sent_at).toBeNull();
    expect(rows[0]?.last_error).toMatch(/POST to http:\/\/127\.0\.0\.1:\d+ failed/);
    expect((await notifier.health()).ok).toBe(false);

    // Meanwhile the detector goes on: its transactions commit, and queue behind the failing one.
    await feed(repos, state, INCIDENT().slice(2), targets);
    await feed(repos, state, INCIDENT('payments', 4), targets);
    expect((await repos.anomalyAlerts.list()).items.map((a) => a.status)).toEqual(['resolved', 'resolved']);
    expect(receiver.received).toHaveLength(0);

    await receiver.up();
    await waitFor(async () => (await repos.alertNotifications.counts()).sent === 4, 'all four delivered');
    // A few more rounds find nothing left to send.
    for (let i = 0; i < 3; i++) expect(await notifier.runOnce()).toBe(0);
    const seen = payloads(receiver).map((p) => `${p.service}:${p.event}`);
    expect(seen.sort()).toEqual(['checkout:opened', 'checkout:resolved', 'payments:opened', 'payments:resolved']);
    // Per alert, the opening reached the receiver before the resolution.
    const checkout = payloads(receiver).filter((p) => p.service === 'checkout');
    expect(checkout.map((p) => p.event)).toEqual(['opened', 'resolved']);
    expect((await notifier.health()).ok).toBe(true);
  });

  it('never holds the database while a receiver is slow to answer', async () => {
    receiver.answer = () => 'hang';
    await feed(repos, state, INCIDENT().slice(0, 2), targets);
    notifier = sender({ timeoutMs: 60_000 });
    const round = notifier.runOnce();
    await receiver.next();
    // The POST is in flight and unanswered; the detector's transactions (one connection on PGlite) still commit.
    await feed(repos, state, INCIDENT().slice(2), targets);
    await feed(repos, state, INCIDENT('payments', 4), targets);
    expect((await repos.anomalyAlerts.list()).items.map((a) => a.status)).toEqual(['resolved', 'resolved']);
    expect(receiver.received).toHaveLength(1);
    // Cutting the connection ends the hanging request as a retriable failure.
    await receiver.down();
    await round;
    const { rows } = await db.pool.query<{ n: string }>(
      'SELECT count(*) AS n FROM alert_notifications WHERE sent_at IS NULL AND failed_at IS NULL',
    );
    expect(Number(rows[0]?.n)).toBe(4);
  });

  it('retries a request the receiver never answered with the same Idempotency-Key', async () => {
    let calls = 0;
    receiver.answer = () => (++calls === 1 ? 'hang' : { status: 204 });
    await feed(repos, state, INCIDENT().slice(0, 2), targets);
    notifier = sender({ timeoutMs: 200 }).start();
    await waitFor(async () => (await repos.alertNotifications.counts()).sent === 1, 'delivered on the second attempt');
    // The receiver may have acted on the first request: the key tells it the second is the same delivery.
    expect(receiver.received).toHaveLength(2);
    const keys = receiver.received.map((r) => r.headers['idempotency-key']);
    expect(keys[0]).toBe(keys[1]);
    expect(keys[0]).toBe(payloads(receiver)[0]!.delivery_id);
    const { rows } = await db.pool.query<{ attempts: number }>('SELECT attempts FROM alert_notifications');
    expect(rows[0]?.attempts).toBe(2);
  });

  it('does not retry a 4xx and logs it; retries 429 and 5xx', async () => {
    const { logger, lines } = capturedLogger();
    receiver.answer = (r) => ((r.body as AlertNotification).service === 'checkout' ? { status: 400 } : { status: 200 });
    await feed(repos, state, INCIDENT().slice(0, 2), targets);
    notifier = sender({ logger });
    expect(await notifier.runOnce()).toBe(1);
    for (let i = 0; i < 3; i++) await notifier.runOnce();
    expect(receiver.received).toHaveLength(1);
    expect(await repos.alertNotifications.counts()).toEqual({ pending: 0, sent: 0, failed: 1 });
    const refused = lines.filter((l) => l.level === 50);
    expect(refused).toHaveLength(1);
    expect(refused[0]?.msg).toContain('refused by the receiver; not retried');
    expect(JSON.stringify(refused[0])).toContain('HTTP 400');
    let calls = 0;
    receiver.answer = () => (++calls === 1 ? { status: 503 } : calls === 2 ? { status: 429 } : { status: 200 });
    await feed(repos, state, INCIDENT('payments', 4), targets);
    await waitFor(async () => {
      await notifier!.runOnce();
      return (await repos.alertNotifications.counts()).sent === 2;
    }, 'payments delivered after a 503 and a 429');
    expect(receiver.received.map((r) => (r.body as AlertNotification).service)).toEqual([
      'checkout',
      'payments',
      'payments',
      'payments',
      'payments',
    ]);
  });

  it("sends a service's alerts to its own webhook, the others to the default", async () => {
    const own = await startWebhookReceiver();
    try {
      await repos.services.create({ name: 'payments', displayName: 'Payments', alertWebhookUrl: own.url('/own') });
      await repos.services.create({ name: 'checkout', displayName: 'Checkout' });
      await feed(repos, state, [...INCIDENT('payments'), ...INCIDENT('checkout', 4)], targets);
      notifier = sender().start();
      await waitFor(async () => (await repos.alertNotifications.counts()).sent === 4, 'all delivered');
      expect(payloads(own).map((p) => `${p.service}:${p.event}`)).toEqual(['payments:opened', 'payments:resolved']);
      expect(own.received.every((r) => r.path === '/own')).toBe(true);
      expect(payloads(receiver).map((p) => `${p.service}:${p.event}`)).toEqual([
        'checkout:opened',
        'checkout:resolved',
      ]);
    } finally {
      await own.close();
    }
  });

  it('queues nothing without a receiver, and posts nothing for a silenced alert', async () => {
    await feed(repos, state, INCIDENT('payments'), { defaultUrl: null, dashboardUrl: null });
    const silenced: SilenceCheck = (alert) => alert.service === 'checkout';
    await feed(repos, state, INCIDENT('checkout', 4), targets, silenced);
    expect((await repos.anomalyAlerts.list()).items).toHaveLength(2);
    notifier = sender();
    expect(await notifier.runOnce()).toBe(0);
    expect(receiver.received).toHaveLength(0);
    expect(await repos.alertNotifications.counts()).toEqual({ pending: 0, sent: 0, failed: 0 });
    for (const alert of (await repos.anomalyAlerts.list()).items) expect(alert.lastNotifiedAt).toBeNull();
  });

  it('announces an alert opened under a silence once the silence has expired', async () => {
    const until = T0 + 3 * MINUTE;
    const silenced: SilenceCheck = (_alert, at) => at < until;
    const windows = Array.from({ length: 5 }, (_, m) => window(m, true));
    await feed(repos, state, windows, targets, silenced);
    notifier = sender();
    await notifier.runOnce();
    expect(payloads(receiver).map((p) => [p.event, p.window_end])).toEqual([
      ['opened', new Date(T0 + 3 * MINUTE).toISOString()],
    ]);
  });

  it('a new sender over the same outbox, as after a crash or restart, resends nothing delivered', async () => {
    await feed(repos, state, INCIDENT(), targets);
    const first = sender();
    // One row per alert per round: the resolution waits until the opening is delivered.
    expect(await first.runOnce()).toBe(1);
    expect(await first.runOnce()).toBe(1);
    await first.close();
    expect(receiver.received).toHaveLength(2);
    // Then more transitions, and a second process's sender.
    await feed(repos, state, INCIDENT('payments', 4), targets);
    notifier = sender().start();
    await waitFor(async () => (await repos.alertNotifications.counts()).sent === 4, 'the new ones delivered');
    for (let i = 0; i < 3; i++) expect(await notifier.runOnce()).toBe(0);
    const ids = payloads(receiver).map((p) => p.delivery_id);
    expect(ids).toHaveLength(4);
    expect(new Set(ids).size).toBe(4);
    // The same transition written twice (a replayed checkpoint) is queued once.
    const [alert] = (await repos.anomalyAlerts.list({ service: 'payments' })).items;
    const again = await repos.alertNotifications.enqueue(alert!, 'resolved', alert!.resolvedAt!, targets);
    expect(again).toBeNull();
  });

  const novel = (hash: string, openedAt: Date) =>
    ({
      dedupKey: `novel_pattern:${hash}`,
      rule: 'novel_pattern',
      alertType: 'novel_pattern',
      status: 'open',
      severity: 'high',
      service: 'checkout',
      environment: 'prod',
      level: 'ERROR',
      errorHash: hash,
      score: 0.42,
      description: `New error pattern ${hash}`,
      openedAt,
    }) as const;

  it('posts the opening of an alert raised outside detect once, and its resolution through the API path', async () => {
    const at = new Date(T0);
    const raised = await raiseAlert(repos, novel('101', at), targets);
    expect(raised).toMatchObject({ status: 'open', rule: 'novel_pattern' });
    // Raised again (a replayed batch, another instance): the active alert stands and nothing more is queued.
    expect(await raiseAlert(repos, novel('101', at), targets)).toBeNull();
    const resolved = await resolveAlert(repos, raised!.id, targets, new Date(T0 + MINUTE));
    expect(resolved.status).toBe('resolved');
    notifier = sender().start();
    await waitFor(async () => (await repos.alertNotifications.counts()).sent === 2, 'both delivered');
    expect(payloads(receiver).map((p) => [p.event, p.alert_id, p.kind, p.status])).toEqual([
      ['opened', raised!.id, 'novel_pattern', 'open'],
      ['resolved', raised!.id, 'novel_pattern', 'resolved'],
    ]);
    expect(payloads(receiver)[0]!.dashboard_url).toBe(`http://127.0.0.1:8080/#/alerts/${raised!.id}`);
    expect((await repos.anomalyAlerts.get(raised!.id))?.lastNotifiedAt).toBeInstanceOf(Date);
  });

  it('holds back the opening of an alert raised outside detect under a silence, and then its resolution', async () => {
    await repos.alertSilences.create({
      rule: 'novel_pattern',
      service: 'checkout',
      reason: 'known noisy rollout',
      createdBy: 'test',
      startsAt: new Date(T0 - MINUTE),
      expiresAt: new Date(T0 + 10 * MINUTE),
    });
    const silenced = await raiseAlert(repos, novel('201', new Date(T0)), targets);
    // Outside the silence's time, and for another rule's key, the same labels are announced.
    const later = await raiseAlert(repos, novel('202', new Date(T0 + 20 * MINUTE)), targets);
    await resolveAlert(repos, silenced!.id, targets, new Date(T0 + 30 * MINUTE));
    notifier = sender();
    while ((await notifier.runOnce()) > 0);
    expect(payloads(receiver).map((p) => [p.event, p.alert_id])).toEqual([['opened', later!.id]]);
    expect((await repos.anomalyAlerts.get(silenced!.id))?.status).toBe('resolved');
  });

  it("resolving through the shared path keeps the repository's errors: unknown id, and a second resolve", async () => {
    const raised = await raiseAlert(repos, novel('301', new Date(T0)), targets);
    await resolveAlert(repos, raised!.id, targets);
    await expect(resolveAlert(repos, raised!.id, targets)).rejects.toMatchObject({ kind: 'invalid_state' });
    await expect(resolveAlert(repos, 999_999, targets)).rejects.toMatchObject({ kind: 'not_found' });
    // The failed transactions queued nothing: one opening and one resolution.
    expect(await repos.alertNotifications.counts()).toEqual({ pending: 2, sent: 0, failed: 0 });
  });
});
