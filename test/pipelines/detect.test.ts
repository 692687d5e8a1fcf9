/**
 * detect on real Kafka, PostgreSQL and chdb: 90 minutes of normal history
 * give the baselines; then 40 minutes with an error spike and a silence.
 * Every incident must open an alert within window + allowed lateness + one
 * window of its start, normal traffic must open none, and a restart in the
 * middle must restore state without duplicating an alert. Alert webhooks go
 * to a local receiver over real HTTP: each transition exactly once, across
 * the restart.
 */
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GroundTruth } from '../../src/sources/generator.ts';
import { baselines } from '../../src/pipelines/baselines.ts';
import { detect } from '../../src/pipelines/detect.ts';
import { generate } from '../../src/pipelines/generate.ts';
import { ingest } from '../../src/pipelines/ingest.ts';
import { alertNotificationSchema } from '../../src/domain/alert-notification.ts';
import { createHarness, type Harness } from '../support/pipeline-harness.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.ts';

const MINUTE = 60_000;

describe('detect', () => {
  let h: Harness;
  let receiver: WebhookReceiver;
  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    h = await createHarness({ LOGFLOW_ALERT_WEBHOOK_URL: receiver.url() });
  });
  afterAll(async () => {
    await h.close();
    await receiver.close();
  });

  it('alerts on every injected incident in time, on nothing else, and survives a restart without duplicates', async () => {
    const t0 = Math.floor(Date.now() / MINUTE) * MINUTE - 150 * MINUTE;
    const history = h.start(generate, {
      rate: '30',
      duration: '90m',
      speed: 'max',
      seed: '11',
      flat: true,
      start: new Date(t0).toISOString(),
    });
    expect(await history.done).toEqual({ status: 'completed' });
    const ingesting = h.start(ingest, {});
    const total = async () =>
      (await h.metrics.recordsOut.get()).values
        .filter((v) => v.labels.pipeline === 'generate')
        .reduce((a, v) => a + v.value, 0);
    await h.waitFor(async () => (await h.count('SELECT count() FROM logs')) >= (await total()), 'history ingested');
    const computed = h.start(baselines, { once: true, now: new Date(t0 + 90 * MINUTE).toISOString() });
    expect(await computed.done).toEqual({ status: 'completed' });

    // The incident stretch comes in two parts so the restart really falls in the middle: the
    // detector is far faster than the stream, so one part would be finished before any stop.
    const t1 = t0 + 90 * MINUTE;
    const produce = async (part: string, start: number, duration: string, seed: string) => {
      const truthFile = `${h.dir}/truth-${part}.jsonl`;
      const run = h.start(generate, {
        rate: '30',
        duration,
        speed: 'max',
        seed,
        flat: true,
        start: new Date(start).toISOString(),
        scenario: `test/fixtures/scenario-detect-${part}.json`,
        truth: truthFile,
      });
      expect(await run.done).toEqual({ status: 'completed' });
      return (await readFile(truthFile, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as GroundTruth);
    };
    const truth = await produce('spike', t1, '18m', '12');
    // detect flags only rows already stored (README, known limits), so ingest goes first here.
    await h.waitFor(async () => (await h.count('SELECT count() FROM logs')) >= (await total()), 'the spike ingested');

    const repositories = await h.resources.repositories();
    const alerts = async () =>
      (await repositories.anomalyAlerts.list({ limit: 500 })).items.filter((a) => a.alertType !== 'novel_pattern');

    // First run: until the spike's alert has opened (it may have resolved already by the next poll) and its
    // notification has been delivered, then stop.
    const first = h.start(detect, { 'checkpoint-ms': '200', 'dashboard-url': 'http://127.0.0.1:8080/' });
    await h.waitFor(
      async () => (await alerts()).some((a) => a.rule === 'spike' && a.openedAt !== null),
      'the spike alert',
      180_000,
    );
    await h.waitFor(
      async () => receiver.received.some((r) => alertNotificationSchema.parse(r.body).kind === 'spike'),
      'the spike alert posted',
    );
    expect(await first.stop()).toEqual({ status: 'stopped' });
    const beforeRestart = await alerts();

    // The rest, with the silence, arrives after the restart: the second run carries on from the checkpoints.
    truth.push(...(await produce('silence', t1 + 18 * MINUTE, '22m', '13')));
    const second = h.start(detect, { 'checkpoint-ms': '200', 'dashboard-url': 'http://127.0.0.1:8080/' });
    const topics = h.resources.topics();
    const inputEnd = [...(await topics.endOffsets(h.config.topics.rawLogs)).values()].reduce((a, b) => a + b, 0);
    const covered = async () =>
      Number(
        (
          await (
            await h.resources.engines()
          ).postgres.query<{ n: string }>('SELECT coalesce(sum(next_offset), 0) AS n FROM detector_checkpoints')
        ).rows[0]?.n,
      );
    await h.waitFor(async () => (await covered()) >= inputEnd, 'the detector to reach the end of raw-logs', 180_000);
    await h.waitFor(
      async () => (await repositories.alertNotifications.counts()).pending === 0,
      'every notification delivered',
    );
    expect(await second.stop()).toEqual({ status: 'stopped' });
    await ingesting.stop();

    const all = await alerts();
    const opened = all.filter((a) => a.openedAt !== null);
    for (const incident of truth) {
      const rule = incident.kind === 'silence' ? 'silence' : 'spike';
      const matching = opened.filter(
        (a) =>
          a.rule === rule &&
          a.service === incident.service &&
          a.environment === incident.environment &&
          (incident.level === null || a.level === incident.level),
      );
      // A spike is one series; a silence silences every level of the service, and each busy level may alert.
      if (rule === 'spike') expect(matching, `${incident.kind} on ${incident.service}`).toHaveLength(1);
      else expect(matching.length, `${incident.kind} on ${incident.service}`).toBeGreaterThanOrEqual(1);
      const start = Date.parse(incident.start);
      for (const alert of matching) {
        // Window (1 min) + allowed lateness (30 s) + one window: the opening window must end by then.
        expect(alert.windowEnd!.getTime() - start).toBeLessThanOrEqual(MINUTE + 30_000 + MINUTE);
        expect(alert.windowEnd!.getTime()).toBeGreaterThan(start);
      }
    }
    // Normal traffic opened nothing: every opened alert belongs to an incident.
    const explained = (a: (typeof opened)[number]) =>
      truth.some(
        (t) =>
          (t.kind === 'silence' ? 'silence' : 'spike') === a.rule &&
          t.service === a.service &&
          t.environment === a.environment,
      );
    expect(opened.filter((a) => !explained(a))).toEqual([]);
    // The restart duplicated nothing: each key active before it still has exactly one opened alert.
    expect(beforeRestart.filter((a) => a.openedAt !== null).length).toBeGreaterThan(0);
    for (const a of beforeRestart.filter((b) => b.openedAt !== null)) {
      expect(all.filter((b) => b.dedupKey === a.dedupKey && b.openedAt !== null)).toEqual([
        expect.objectContaining({ id: a.id }),
      ]);
    }
    const openedKeys = opened.map((a) => a.dedupKey);
    expect(new Set(openedKeys).size).toBe(openedKeys.length);
    // Each opened alert was posted once as opened, each resolved one once as resolved: none twice, restart or not.
    const posted = receiver.received.map((r) => alertNotificationSchema.parse(r.body));
    const transitions = posted.map((p) => `${p.alert_id}:${p.event}`);
    expect(new Set(transitions).size).toBe(transitions.length);
    expect(
      posted
        .filter((p) => p.event === 'opened')
        .map((p) => p.alert_id)
        .sort(),
    ).toEqual(opened.map((a) => a.id).sort());
    expect(
      posted
        .filter((p) => p.event === 'resolved')
        .map((p) => p.alert_id)
        .sort(),
    ).toEqual(
      opened
        .filter((a) => a.status === 'resolved')
        .map((a) => a.id)
        .sort(),
    );
    for (const p of posted.filter((q) => q.event === 'opened'))
      expect(p.dashboard_url).toBe(`http://127.0.0.1:8080/#/alerts/${p.alert_id}`);
    for (const a of opened) expect((await repositories.anomalyAlerts.get(a.id))?.lastNotifiedAt).toBeInstanceOf(Date);
    // Rows of the spike's full minutes are flagged; stray anomalous minutes elsewhere stay rare.
    const spike = truth.find((t) => t.kind === 'spike')!;
    const inSpike = { from: Date.parse(spike.start) / 1000 + 60, to: Date.parse(spike.end) / 1000 };
    const spikeRows =
      "service = 'payment-service' AND environment = 'production' AND level = 'ERROR' AND timestamp >= toDateTime({from:UInt32}) AND timestamp < toDateTime({to:UInt32})";
    expect(await h.count(`SELECT count() FROM logs WHERE ${spikeRows} AND is_anomaly = 0`, inSpike)).toBe(0);
    expect(await h.count(`SELECT count() FROM logs WHERE ${spikeRows} AND is_anomaly = 1`, inSpike)).toBeGreaterThan(
      300,
    );
    const strays = await h.count(
      `SELECT count() FROM logs WHERE is_anomaly = 1 AND NOT (service = 'payment-service' AND level = 'ERROR')`,
    );
    expect(strays / (await h.count('SELECT count() FROM logs'))).toBeLessThan(0.01);
  }, 420_000);
});
