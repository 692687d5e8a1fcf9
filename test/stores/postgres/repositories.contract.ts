/**
 * One contract for the PostgreSQL repositories, run against PGlite and a real
 * PostgreSQL server (repositories-pglite.test.ts, repositories-server.test.ts):
 * both engines must give the same answers through the same `pg` code.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { PostgresMode } from '../../../src/clients/engines.ts';
import { InputError } from '../../../src/core/errors.ts';
import { migratePostgres } from '../../../src/app/migrate.ts';
import {
  createRepositories,
  repositoriesFor,
  RepositoryError,
  withTransaction,
  type AnomalyAlert,
  type NewAnomalyAlert,
  type NightlyReportInput,
  type PoolRepositories,
} from '../../../src/stores/postgres/index.ts';
import type { JsonValue } from '../../../src/stores/postgres/db.ts';

export interface RepositoryEngine {
  readonly pool: pg.Pool;
  readonly mode: PostgresMode;
  /** Closes the pool and removes what `open` created (data directory, database). */
  close(): Promise<void>;
}

/** Tables the contract fills; seeded tables (services, app_config) are kept and tests use fresh keys there. */
const SCRATCH_TABLES = [
  'analysis_jobs',
  'nightly_reports',
  'error_catalog',
  'anomaly_alerts',
  'user_preferences',
  'sink_batches',
  'detector_checkpoint_entries',
  'detector_checkpoints',
  'alert_silences',
  'api_keys',
].join(', ');

const UINT64_MAX = '18446744073709551615';

let counter = 0;
const fresh = (prefix: string): string => `${prefix}-${Date.now().toString(36)}-${(counter++).toString(36)}`;

async function expectRepositoryError(
  promise: Promise<unknown>,
  kind: RepositoryError['kind'],
  message?: RegExp,
): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RepositoryError);
  expect((error as RepositoryError).kind).toBe(kind);
  if (message !== undefined) expect((error as Error).message).toMatch(message);
}

function report(overrides: Partial<NightlyReportInput> = {}): NightlyReportInput {
  return {
    reportDate: '2026-03-01',
    producedBy: 'llm',
    modelUsed: 'gpt-4o-mini',
    summary: 'Payment errors doubled after the 02:00 deploy.',
    keyIssues: ['payment timeouts', 'retry storms'],
    probableCauses: ['connection pool exhausted'],
    recommendations: ['raise the pool size', 'add a circuit breaker'],
    patternSeverity: [
      {
        errorHash: UINT64_MAX,
        template: 'timeout after <*> ms',
        severity: 'high',
        occurrences: 420,
        reason: 'doubled',
      },
    ],
    statistics: { byService: { 'payment-service': 420 }, p95: 1.5, flags: [true, null] },
    totalLogs: 1_000_000,
    totalErrors: 4_200,
    errorRate: 0.0042,
    uniquePatterns: 37,
    anomaliesDetected: 3,
    tokensUsed: 1234,
    ...overrides,
  };
}

function alert(overrides: Partial<NewAnomalyAlert> = {}): NewAnomalyAlert {
  return {
    dedupKey: fresh('spike|payment-service|prod|ERROR'),
    rule: 'spike',
    alertType: 'spike',
    status: 'pending',
    severity: 'high',
    service: 'payment-service',
    environment: 'prod',
    level: 'ERROR',
    score: 4.2,
    observed: 120,
    expected: 30,
    windowStart: new Date('2026-03-01T10:00:00.000Z'),
    windowEnd: new Date('2026-03-01T10:01:00.000Z'),
    anomalousWindows: 1,
    ...overrides,
  };
}

export function describeRepositoryContract(label: string, open: () => Promise<RepositoryEngine>): void {
  describe(`PostgreSQL repositories on ${label}`, () => {
    let engine: RepositoryEngine | undefined;
    let repos: PoolRepositories;
    const pool = (): pg.Pool => engine!.pool;

    beforeAll(async () => {
      engine = await open();
      await migratePostgres(engine.pool);
      repos = createRepositories(engine.pool);
    });
    afterAll(async () => {
      await engine?.close();
    });
    beforeEach(async () => {
      await pool().query(`TRUNCATE ${SCRATCH_TABLES} RESTART IDENTITY CASCADE`);
    });

    describe('analysis_jobs', () => {
      it('creates pending jobs and claims them oldest first, each once', async () => {
        const first = await repos.analysisJobs.create({ jobType: 'nightly', targetDate: '2026-03-01' });
        const second = await repos.analysisJobs.create({
          jobType: 'on_demand',
          targetDate: '2026-03-02',
          requestedBy: 'alice',
        });
        expect(first).toMatchObject({
          status: 'pending',
          jobType: 'nightly',
          targetDate: '2026-03-01',
          startedAt: null,
          tokensUsed: 0,
        });
        expect(second.requestedBy).toBe('alice');

        const claimed = await repos.analysisJobs.claimNextPending();
        expect(claimed?.id).toBe(first.id);
        expect(claimed?.status).toBe('running');
        expect(claimed?.startedAt).toBeInstanceOf(Date);
        expect((await repos.analysisJobs.claimNextPending())?.id).toBe(second.id);
        expect(await repos.analysisJobs.claimNextPending()).toBeNull();
      });

      it('completes a running job with its result, and refuses to complete it twice', async () => {
        const job = await repos.analysisJobs.create({ jobType: 'nightly', targetDate: '2026-03-01' });
        await repos.analysisJobs.claimNextPending();
        const result = { reportDate: '2026-03-01', sections: ['summary', 'causes'], nested: { ok: true, n: null } };
        const done = await repos.analysisJobs.complete(job.id, {
          tokensUsed: 900,
          modelUsed: 'gpt-4o-mini',
          processingTimeMs: 1500,
          result,
        });
        expect(done).toMatchObject({
          status: 'completed',
          tokensUsed: 900,
          modelUsed: 'gpt-4o-mini',
          processingTimeMs: 1500,
          result,
        });
        expect(done.completedAt).toBeInstanceOf(Date);
        expect(await repos.analysisJobs.get(job.id)).toEqual(done);
        await expectRepositoryError(
          repos.analysisJobs.complete(job.id, { tokensUsed: 1, modelUsed: null, processingTimeMs: 1, result: {} }),
          'invalid_state',
          /completed/,
        );
      });

      it('fails a pending or running job, and tells a missing job from a finished one', async () => {
        const job = await repos.analysisJobs.create({ jobType: 'on_demand', targetDate: '2026-03-03' });
        const failed = await repos.analysisJobs.fail(job.id, 'ClickHouse unreachable');
        expect(failed).toMatchObject({ status: 'failed', error: 'ClickHouse unreachable' });
        await expectRepositoryError(repos.analysisJobs.fail(job.id, 'again'), 'invalid_state');
        await expectRepositoryError(repos.analysisJobs.fail(987_654, 'nope'), 'not_found');
        expect(await repos.analysisJobs.get(987_654)).toBeNull();
      });

      it('lists newest first, filtered by status and limited', async () => {
        const ids: number[] = [];
        for (let day = 1; day <= 4; day++)
          ids.push((await repos.analysisJobs.create({ jobType: 'nightly', targetDate: `2026-03-0${day}` })).id);
        await repos.analysisJobs.claimNextPending();
        expect((await repos.analysisJobs.list()).map((j) => j.id)).toEqual([...ids].reverse());
        expect((await repos.analysisJobs.list({ status: 'running' })).map((j) => j.id)).toEqual([ids[0]]);
        expect((await repos.analysisJobs.list({ status: 'pending', limit: 2 })).map((j) => j.id)).toEqual([
          ids[3],
          ids[2],
        ]);
      });

      it('two concurrent claimers never take the same job', async () => {
        const created = new Set<number>();
        for (let i = 0; i < 30; i++)
          created.add((await repos.analysisJobs.create({ jobType: 'on_demand', targetDate: '2026-03-01' })).id);
        const claimer = async (): Promise<number[]> => {
          const mine: number[] = [];
          for (
            let job = await repos.analysisJobs.claimNextPending();
            job !== null;
            job = await repos.analysisJobs.claimNextPending()
          ) {
            mine.push(job.id);
          }
          return mine;
        };
        const [a, b] = await Promise.all([claimer(), claimer()]);
        const all = [...a, ...b];
        expect(new Set(all).size).toBe(all.length);
        expect(new Set(all)).toEqual(created);
      });

      it('requeues jobs left running by a dead worker', async () => {
        const job = await repos.analysisJobs.create({ jobType: 'nightly', targetDate: '2026-03-01' });
        await repos.analysisJobs.claimNextPending();
        expect(await repos.analysisJobs.requeueStale(new Date(Date.now() - 60_000))).toBe(0);
        expect(await repos.analysisJobs.requeueStale(new Date(Date.now() + 60_000))).toBe(1);
        expect((await repos.analysisJobs.claimNextPending())?.id).toBe(job.id);
      });

      it('rejects bad input before any SQL runs', async () => {
        await expect(
          repos.analysisJobs.create({ jobType: 'weekly' as never, targetDate: '2026-03-01' }),
        ).rejects.toBeInstanceOf(InputError);
        await expect(repos.analysisJobs.create({ jobType: 'nightly', targetDate: '2026-02-30' })).rejects.toThrow(
          /targetDate/,
        );
        const job = await repos.analysisJobs.create({ jobType: 'nightly', targetDate: '2026-03-01' });
        await repos.analysisJobs.claimNextPending();
        await expect(
          repos.analysisJobs.complete(job.id, { tokensUsed: -1, modelUsed: null, processingTimeMs: 5, result: {} }),
        ).rejects.toThrow(/tokensUsed/);
        await expect(repos.analysisJobs.list({ limit: 0 })).rejects.toBeInstanceOf(InputError);
        expect((await repos.analysisJobs.get(job.id))?.status).toBe('running');
      });
    });

    describe('nightly_reports', () => {
      it('round-trips a report with its JSON fields and an exact UInt64 hash', async () => {
        const input = report();
        const stored = await repos.nightlyReports.upsertForDate(input);
        const { reportDate, summary, keyIssues, probableCauses, recommendations, patternSeverity, statistics } = input;
        expect(stored).toMatchObject({
          reportDate,
          summary,
          keyIssues,
          probableCauses,
          recommendations,
          patternSeverity,
          statistics,
        });
        expect(stored).toMatchObject({
          totalLogs: 1_000_000,
          totalErrors: 4_200,
          errorRate: 0.0042,
          uniquePatterns: 37,
          tokensUsed: 1234,
        });
        expect(await repos.nightlyReports.getByDate('2026-03-01')).toEqual(stored);
        expect(await repos.nightlyReports.getByDate('2026-03-02')).toBeNull();
      });

      it('a re-run for the same date replaces the report, keeping one row', async () => {
        const job = await repos.analysisJobs.create({ jobType: 'nightly', targetDate: '2026-03-01' });
        const first = await repos.nightlyReports.upsertForDate(report({ jobId: job.id }));
        const rerun = await repos.nightlyReports.upsertForDate({
          reportDate: '2026-03-01',
          producedBy: 'statistical',
          summary: 'Re-run without the LLM.',
          totalLogs: 10,
          totalErrors: 1,
          errorRate: 0.1,
          uniquePatterns: 1,
          anomaliesDetected: 0,
        });
        expect(rerun.id).toBe(first.id);
        expect(rerun).toMatchObject({
          producedBy: 'statistical',
          summary: 'Re-run without the LLM.',
          modelUsed: null,
          jobId: null,
          keyIssues: [],
          patternSeverity: [],
          statistics: {},
          totalLogs: 10,
          tokensUsed: 0,
        });
        expect(rerun.generatedAt.getTime()).toBeGreaterThanOrEqual(first.generatedAt.getTime());
        const { rows } = await pool().query(
          `SELECT count(*)::int AS n FROM nightly_reports WHERE report_date = '2026-03-01'`,
        );
        expect(rows[0].n).toBe(1);
      });

      it('lists newest date first, paging with before', async () => {
        for (const day of ['2026-03-01', '2026-03-03', '2026-03-02', '2026-02-28'])
          await repos.nightlyReports.upsertForDate(report({ reportDate: day }));
        expect((await repos.nightlyReports.list({ limit: 2 })).map((r) => r.reportDate)).toEqual([
          '2026-03-03',
          '2026-03-02',
        ]);
        expect((await repos.nightlyReports.list({ limit: 2, before: '2026-03-02' })).map((r) => r.reportDate)).toEqual([
          '2026-03-01',
          '2026-02-28',
        ]);
      });

      it('rejects impossible numbers and producers', async () => {
        await expect(repos.nightlyReports.upsertForDate(report({ errorRate: 1.5 }))).rejects.toThrow(/errorRate/);
        await expect(repos.nightlyReports.upsertForDate(report({ totalLogs: -1 }))).rejects.toThrow(/totalLogs/);
        await expect(repos.nightlyReports.upsertForDate(report({ producedBy: 'gpt' as never }))).rejects.toBeInstanceOf(
          InputError,
        );
        await expect(
          repos.nightlyReports.upsertForDate(
            report({ patternSeverity: [{ errorHash: '-5', template: 't', severity: 'low', occurrences: 1 }] }),
          ),
        ).rejects.toThrow(/errorHash/);
        expect(await repos.nightlyReports.list()).toEqual([]);
      });
    });

    describe('error_catalog', () => {
      const seen = (iso: string): Date => new Date(iso);
      const auto = (overrides = {}) => ({
        errorHash: UINT64_MAX,
        template: 'timeout after <*> ms calling <*>',
        title: 'Upstream timeout',
        description: 'Calls to an upstream exceed their deadline.',
        severity: 'medium' as const,
        services: ['payment-service'],
        occurrenceCount: 100,
        firstSeen: seen('2026-03-01T00:00:00.000Z'),
        lastSeen: seen('2026-03-01T12:00:00.000Z'),
        ...overrides,
      });

      it('creates auto entries and merges later observations', async () => {
        const created = await repos.errorCatalog.upsertAutoCreated(auto());
        expect(created.created).toBe(true);
        expect(created.entry).toMatchObject({
          errorHash: UINT64_MAX,
          autoCreated: true,
          editedByHuman: false,
          occurrenceCount: 100,
        });

        const merged = await repos.errorCatalog.upsertAutoCreated(
          auto({
            title: 'Upstream deadline exceeded',
            services: ['order-service', 'payment-service'],
            occurrenceCount: 250,
            firstSeen: seen('2026-02-27T00:00:00.000Z'),
            lastSeen: seen('2026-03-02T00:00:00.000Z'),
          }),
        );
        expect(merged.created).toBe(false);
        expect(merged.entry).toMatchObject({
          id: created.entry.id,
          title: 'Upstream deadline exceeded',
          services: ['order-service', 'payment-service'],
          occurrenceCount: 250,
          firstSeen: seen('2026-02-27T00:00:00.000Z'),
          lastSeen: seen('2026-03-02T00:00:00.000Z'),
        });

        // An older observation arriving late changes nothing it knows less about.
        const stale = await repos.errorCatalog.upsertAutoCreated(
          auto({ title: 'Upstream deadline exceeded', occurrenceCount: 10 }),
        );
        expect(stale.entry).toMatchObject({
          occurrenceCount: 250,
          lastSeen: seen('2026-03-02T00:00:00.000Z'),
          firstSeen: seen('2026-02-27T00:00:00.000Z'),
        });
      });

      it('never overwrites what an engineer edited', async () => {
        await repos.errorCatalog.upsertAutoCreated(auto());
        const edited = await repos.errorCatalog.updateByEngineer(UINT64_MAX, {
          title: 'Payment gateway timeout',
          severity: 'critical',
          solution: 'Fail over to the secondary gateway.',
          documentationUrl: 'https://runbooks.example.com/payment-timeout',
          tags: ['payments', 'gateway'],
        });
        expect(edited).toMatchObject({
          editedByHuman: true,
          autoCreated: true,
          title: 'Payment gateway timeout',
          severity: 'critical',
        });

        const after = await repos.errorCatalog.upsertAutoCreated(
          auto({
            template: 'a different template',
            title: 'Machine title',
            description: 'Machine description',
            severity: 'low',
            services: ['api-gateway'],
            occurrenceCount: 500,
            lastSeen: seen('2026-03-05T00:00:00.000Z'),
          }),
        );
        expect(after.entry).toMatchObject({
          template: 'timeout after <*> ms calling <*>',
          title: 'Payment gateway timeout',
          description: 'Calls to an upstream exceed their deadline.',
          severity: 'critical',
          solution: 'Fail over to the secondary gateway.',
          documentationUrl: 'https://runbooks.example.com/payment-timeout',
          tags: ['payments', 'gateway'],
          services: ['api-gateway', 'payment-service'],
          occurrenceCount: 500,
          lastSeen: seen('2026-03-05T00:00:00.000Z'),
          editedByHuman: true,
        });
      });

      it('the analysis describes an entry with its producer tag, never one an engineer edited', async () => {
        await repos.errorCatalog.upsertAutoCreated(auto());
        expect(
          await repos.errorCatalog.describeByAnalysis(UINT64_MAX, {
            title: 'LLM title',
            description: 'LLM description',
            solution: 'LLM fix',
            severity: 'high',
            producedBy: 'llm',
          }),
        ).toBe(true);
        expect(await repos.errorCatalog.get(UINT64_MAX)).toMatchObject({
          title: 'LLM title',
          description: 'LLM description',
          solution: 'LLM fix',
          severity: 'high',
          tags: ['analysis:llm'],
          editedByHuman: false,
        });
        // A later statistical refresh keeps the LLM's text and refreshes only what is observed.
        const refreshed = await repos.errorCatalog.upsertAutoCreated(
          auto({ title: 'template title', occurrenceCount: 300 }),
        );
        expect(refreshed.entry).toMatchObject({
          title: 'LLM title',
          description: 'LLM description',
          occurrenceCount: 300,
        });

        await repos.errorCatalog.updateByEngineer(UINT64_MAX, {
          title: 'Engineer title',
          tags: ['payments', 'analysis:llm'],
        });
        expect(
          await repos.errorCatalog.describeByAnalysis(UINT64_MAX, {
            title: 'Statistical title',
            description: 'Statistical description',
            solution: null,
            producedBy: 'statistical',
          }),
        ).toBe(false);
        expect(await repos.errorCatalog.get(UINT64_MAX)).toMatchObject({
          title: 'Engineer title',
          solution: 'LLM fix',
          tags: ['payments', 'analysis:llm'],
        });
        expect(
          await repos.errorCatalog.describeByAnalysis('7', {
            title: 't',
            description: 'd',
            solution: null,
            producedBy: 'llm',
          }),
        ).toBe(false);
      });

      it('keeps hashes exact across the whole UInt64 range, as strings or bigints', async () => {
        for (const hash of ['0', '9007199254740993', UINT64_MAX]) {
          await repos.errorCatalog.upsertAutoCreated(auto({ errorHash: hash }));
          expect((await repos.errorCatalog.get(hash))?.errorHash).toBe(hash);
        }
        expect((await repos.errorCatalog.get(2n ** 53n + 1n))?.errorHash).toBe('9007199254740993');
        for (const bad of ['-1', '18446744073709551616', '12ab', '']) {
          await expect(repos.errorCatalog.get(bad)).rejects.toBeInstanceOf(InputError);
        }
      });

      it('engineers create entries, conflicts and missing entries are reported, and list filters', async () => {
        const manual = await repos.errorCatalog.createByEngineer({
          errorHash: '42',
          template: 'disk full on <*>',
          title: 'Disk full',
          solution: 'Grow the volume.',
          services: ['inventory-service'],
        });
        expect(manual).toMatchObject({
          autoCreated: false,
          editedByHuman: true,
          severity: 'medium',
          occurrenceCount: 0,
        });
        await expectRepositoryError(
          repos.errorCatalog.createByEngineer({ errorHash: '42', template: 't', title: 't' }),
          'conflict',
        );
        await expectRepositoryError(repos.errorCatalog.updateByEngineer('43', { title: 'x' }), 'not_found');
        await expect(repos.errorCatalog.updateByEngineer('42', {})).rejects.toThrow(/nothing to update/);
        await expect(repos.errorCatalog.updateByEngineer('42', { severity: 'urgent' as never })).rejects.toBeInstanceOf(
          InputError,
        );

        await repos.errorCatalog.upsertAutoCreated(auto({ errorHash: '7', occurrenceCount: 900 }));
        expect((await repos.errorCatalog.list()).map((e) => e.errorHash)).toEqual(['7', '42']);
        expect((await repos.errorCatalog.list({ service: 'inventory-service' })).map((e) => e.errorHash)).toEqual([
          '42',
        ]);
        expect((await repos.errorCatalog.list({ editedByHuman: false })).map((e) => e.errorHash)).toEqual(['7']);
        expect(await repos.errorCatalog.delete('42')).toBe(true);
        expect(await repos.errorCatalog.delete('42')).toBe(false);
      });
    });

    describe('anomaly_alerts', () => {
      it('walks the lifecycle pending -> open -> acknowledged -> resolved', async () => {
        const pending = await repos.anomalyAlerts.insert(alert());
        expect(pending).toMatchObject({
          status: 'pending',
          openedAt: null,
          anomalousWindows: 1,
          severity: 'high',
          score: 4.2,
        });
        expect(await repos.anomalyAlerts.findActive(pending.dedupKey)).toEqual(pending);

        const opened = await repos.anomalyAlerts.open(pending.id, new Date('2026-03-01T10:02:00.000Z'));
        expect(opened).toMatchObject({ status: 'open', openedAt: new Date('2026-03-01T10:02:00.000Z') });
        const acked = await repos.anomalyAlerts.acknowledge(pending.id, 'alice');
        expect(acked).toMatchObject({ status: 'acknowledged', acknowledgedBy: 'alice' });
        expect(acked.acknowledgedAt).toBeInstanceOf(Date);
        await expectRepositoryError(
          repos.anomalyAlerts.acknowledge(pending.id, 'bob'),
          'invalid_state',
          /already acknowledged by alice/,
        );

        const resolved = await repos.anomalyAlerts.resolve(pending.id);
        expect(resolved.status).toBe('resolved');
        expect(resolved.resolvedAt).toBeInstanceOf(Date);
        expect(await repos.anomalyAlerts.findActive(pending.dedupKey)).toBeNull();
      });

      it('lists open alerts without an analysis and writes one only once', async () => {
        const open = await repos.anomalyAlerts.insert(alert({ status: 'open' }));
        await repos.anomalyAlerts.insert(alert({ status: 'pending' }));
        await repos.anomalyAlerts.insert(alert({ status: 'open', llmAnalysis: 'already analysed' }));
        const resolved = await repos.anomalyAlerts.insert(alert({ status: 'open' }));
        await repos.anomalyAlerts.resolve(resolved.id);
        expect((await repos.anomalyAlerts.listUnanalysed(10)).map((a) => a.id)).toEqual([open.id]);

        expect(await repos.anomalyAlerts.writeAnalysis(open.id, 'What happened', ['Do this', 'Then that'])).toBe(true);
        expect(await repos.anomalyAlerts.get(open.id)).toMatchObject({
          llmAnalysis: 'What happened',
          suggestedActions: ['Do this', 'Then that'],
        });
        expect(await repos.anomalyAlerts.writeAnalysis(open.id, 'A second opinion', [])).toBe(false);
        expect((await repos.anomalyAlerts.get(open.id))!.llmAnalysis).toBe('What happened');
        expect(await repos.anomalyAlerts.listUnanalysed(10)).toEqual([]);
        await expect(repos.anomalyAlerts.writeAnalysis(open.id, 'nul \u0000 inside', [])).rejects.toThrow(/NUL/);
      });

      it('acknowledging, resolving or touching a resolved alert is an error', async () => {
        const a = await repos.anomalyAlerts.insert(alert({ status: 'open' }));
        await repos.anomalyAlerts.resolve(a.id);
        await expectRepositoryError(repos.anomalyAlerts.resolve(a.id), 'invalid_state', /already resolved/);
        await expectRepositoryError(
          repos.anomalyAlerts.acknowledge(a.id, 'alice'),
          'invalid_state',
          /already resolved/,
        );
        await expectRepositoryError(repos.anomalyAlerts.touch(a.id, { normalWindows: 3 }), 'invalid_state');
        await expectRepositoryError(repos.anomalyAlerts.open(a.id), 'invalid_state');
        const pending = await repos.anomalyAlerts.insert(alert());
        await expectRepositoryError(
          repos.anomalyAlerts.acknowledge(pending.id, 'alice'),
          'invalid_state',
          /still pending/,
        );
        await expectRepositoryError(repos.anomalyAlerts.resolve(123_456), 'not_found');
        expect((await repos.anomalyAlerts.get(a.id))?.status).toBe('resolved');
      });

      it('allows one active alert per dedup key, and a new one once it is resolved', async () => {
        const first = await repos.anomalyAlerts.insert(
          alert({ status: 'open', openedAt: new Date('2026-03-01T10:00:00.000Z') }),
        );
        expect(first.openedAt).toEqual(new Date('2026-03-01T10:00:00.000Z'));
        await expectRepositoryError(
          repos.anomalyAlerts.insert(alert({ dedupKey: first.dedupKey })),
          'conflict',
          new RegExp(`already has an active alert \\(id ${first.id}, open\\)`),
        );
        await repos.anomalyAlerts.resolve(first.id);
        const second = await repos.anomalyAlerts.insert(alert({ dedupKey: first.dedupKey }));
        expect(second.id).not.toBe(first.id);
        expect((await repos.anomalyAlerts.findActive(first.dedupKey))?.id).toBe(second.id);
      });

      it('touch refreshes counters, notification time and details of an active alert', async () => {
        const a = await repos.anomalyAlerts.insert(alert({ errorHash: UINT64_MAX }));
        const notified = new Date('2026-03-01T10:05:00.000Z');
        const touched = await repos.anomalyAlerts.touch(a.id, {
          anomalousWindows: 3,
          normalWindows: 0,
          score: 6.5,
          lastNotifiedAt: notified,
          suggestedActions: ['check the gateway'],
          details: { baseline: { mean: 30, stddev: 4 } },
        });
        expect(touched).toMatchObject({
          anomalousWindows: 3,
          score: 6.5,
          lastNotifiedAt: notified,
          suggestedActions: ['check the gateway'],
          details: { baseline: { mean: 30, stddev: 4 } },
          observed: 120,
          errorHash: UINT64_MAX,
        });
        expect(touched.updatedAt.getTime()).toBeGreaterThanOrEqual(a.updatedAt.getTime());
        await expect(repos.anomalyAlerts.touch(a.id, {})).rejects.toThrow(/nothing to update/);
        await expect(repos.anomalyAlerts.touch(a.id, { anomalousWindows: -1 })).rejects.toBeInstanceOf(InputError);
      });

      it('stores the detector’s drop alerts (the alert_type check of sql/postgres/005_alert_type_drop.sql)', async () => {
        const made = await repos.anomalyAlerts.insert(
          alert({ alertType: 'drop', rule: 'drop', service: 'drop-service' }),
        );
        expect(made).toMatchObject({ alertType: 'drop', rule: 'drop' });
        const listed = await repos.anomalyAlerts.list({ type: 'drop', service: 'drop-service' });
        expect(listed.items.map((a) => a.id)).toEqual([made.id]);
      });

      it('lists newest first with filters and a cursor that pages through everything', async () => {
        const made: AnomalyAlert[] = [];
        const kinds = [
          { service: 'payment-service', alertType: 'spike' as const },
          { service: 'order-service', alertType: 'silence' as const },
          { service: 'payment-service', alertType: 'novel_pattern' as const },
          { service: 'order-service', alertType: 'spike' as const },
          { service: 'payment-service', alertType: 'spike' as const },
        ];
        for (const k of kinds) made.push(await repos.anomalyAlerts.insert(alert({ ...k, rule: k.alertType })));
        await repos.anomalyAlerts.resolve(made[0]!.id);

        const seen: number[] = [];
        let cursor: string | null = null;
        do {
          const page: Awaited<ReturnType<typeof repos.anomalyAlerts.list>> = await repos.anomalyAlerts.list({
            limit: 2,
            ...(cursor === null ? {} : { cursor }),
          });
          expect(page.items.length).toBeLessThanOrEqual(2);
          seen.push(...page.items.map((a) => a.id));
          cursor = page.nextCursor;
        } while (cursor !== null);
        expect(seen).toEqual(made.map((a) => a.id).reverse());

        const ids = (items: readonly AnomalyAlert[]) => items.map((a) => a.id);
        expect(ids((await repos.anomalyAlerts.list({ service: 'payment-service', type: 'spike' })).items)).toEqual([
          made[4]!.id,
          made[0]!.id,
        ]);
        expect(ids((await repos.anomalyAlerts.list({ status: 'resolved' })).items)).toEqual([made[0]!.id]);
        expect((await repos.anomalyAlerts.list({ type: 'silence' })).nextCursor).toBeNull();
        expect(ids((await repos.anomalyAlerts.list({ rule: 'novel_pattern' })).items)).toEqual([made[2]!.id]);
        await repos.anomalyAlerts.touch(made[3]!.id, { severity: 'critical' });
        expect(ids((await repos.anomalyAlerts.list({ severity: 'critical' })).items)).toEqual([made[3]!.id]);
        expect(ids((await repos.anomalyAlerts.list({ rule: 'spike', severity: 'high' })).items)).toEqual([
          made[4]!.id,
          made[0]!.id,
        ]);
        await expect(repos.anomalyAlerts.list({ severity: 'dire' as never })).rejects.toBeInstanceOf(InputError);
        await expect(repos.anomalyAlerts.list({ cursor: 'drop table' })).rejects.toBeInstanceOf(InputError);
        await expect(repos.anomalyAlerts.list({ type: 'meteor' as never })).rejects.toBeInstanceOf(InputError);
      });

      it('rejects malformed alerts before SQL', async () => {
        await expect(repos.anomalyAlerts.insert(alert({ alertType: 'meteor' as never }))).rejects.toBeInstanceOf(
          InputError,
        );
        await expect(repos.anomalyAlerts.insert(alert({ status: 'resolved' as never }))).rejects.toBeInstanceOf(
          InputError,
        );
        await expect(repos.anomalyAlerts.insert(alert({ anomalousWindows: -2 }))).rejects.toThrow(/anomalousWindows/);
        await expect(repos.anomalyAlerts.insert(alert({ score: Number.NaN }))).rejects.toThrow(/score/);
        expect((await repos.anomalyAlerts.list()).items).toEqual([]);
      });
    });

    describe('services', () => {
      it('lists the seeded services and creates one with the table defaults', async () => {
        expect((await repos.services.list()).map((s) => s.name)).toContain('payment-service');
        const name = fresh('svc');
        const created = await repos.services.create({ name, displayName: 'Test Service', tags: ['test'] });
        expect(created).toMatchObject({
          name,
          displayName: 'Test Service',
          tier: 'standard',
          monitoringEnabled: true,
          alertingEnabled: true,
          sensitivity: 3,
          minCount: 10,
          silenceDetection: true,
          retentionDays: 30,
          tags: ['test'],
          description: null,
          alertWebhookUrl: null,
        });
        expect(await repos.services.get(name)).toEqual(created);
        const hook = 'https://hooks.example.com/services/T1/B2/x';
        expect(await repos.services.update(name, { alertWebhookUrl: hook })).toMatchObject({ alertWebhookUrl: hook });
        await expect(repos.services.update(name, { alertWebhookUrl: 'file:///etc/passwd' })).rejects.toThrow(
          /alertWebhookUrl/,
        );
        await expectRepositoryError(
          repos.services.create({ name, displayName: 'Again' }),
          'conflict',
          /already exists/,
        );
      });

      it('updates only the given fields and reports missing services', async () => {
        const name = fresh('svc');
        const created = await repos.services.create({ name, displayName: 'Svc', ownerTeam: 'core' });
        const updated = await repos.services.update(name, {
          sensitivity: 4.5,
          alertingEnabled: false,
          ownerTeam: null,
        });
        expect(updated).toMatchObject({
          ...created,
          sensitivity: 4.5,
          alertingEnabled: false,
          ownerTeam: null,
          updatedAt: updated.updatedAt,
        });
        expect(updated.updatedAt.getTime()).toBeGreaterThanOrEqual(created.updatedAt.getTime());
        await expectRepositoryError(repos.services.update(fresh('missing'), { minCount: 1 }), 'not_found');
        expect(await repos.services.delete(name)).toBe(true);
        expect(await repos.services.delete(name)).toBe(false);
        expect(await repos.services.get(name)).toBeNull();
      });

      it('changedSince returns services edited after the previous read', async () => {
        const name = fresh('svc');
        await repos.services.create({ name, displayName: 'Svc' });
        const baseline = await repos.services.changedSince(new Date(Date.now() + 3_600_000));
        expect(baseline.services).toEqual([]);
        const start = await repos.services.changedSince(new Date(0));
        expect(start.services.map((s) => s.name)).toContain(name);

        await repos.services.update(name, { minCount: 99 });
        const changed = await repos.services.changedSince(start.asOf);
        expect(changed.services.find((s) => s.name === name)?.minCount).toBe(99);
        expect(changed.asOf.getTime()).toBeGreaterThanOrEqual(start.asOf.getTime());
      });

      it('a statement the database rejects leaves the pool usable', async () => {
        // pg's pool.query retires the client after any error, which on PGlite ends the one shared connection.
        for (let attempt = 0; attempt < 3; attempt++) {
          await expectRepositoryError(
            repos.services.create({ name: 'payment-service', displayName: 'Again' }),
            'conflict',
          );
          expect((await repos.services.get('payment-service'))?.name).toBe('payment-service');
        }
      });

      it('rejects names and settings the detector could not use', async () => {
        await expect(repos.services.create({ name: 'Bad Name', displayName: 'x' })).rejects.toThrow(/name/);
        await expect(repos.services.create({ name: fresh('svc'), displayName: 'x', sensitivity: 0 })).rejects.toThrow(
          /sensitivity/,
        );
        await expect(
          repos.services.create({ name: fresh('svc'), displayName: 'x', tier: 'gold' as never }),
        ).rejects.toBeInstanceOf(InputError);
        await expect(repos.services.update('payment-service', { retentionDays: -3 })).rejects.toThrow(/retentionDays/);
        await expect(repos.services.update('payment-service', {})).rejects.toThrow(/nothing to update/);
      });
    });

    describe('user_preferences', () => {
      it('gives the table defaults to a user who never saved any', async () => {
        const absent = await repos.userPreferences.get('u-absent');
        expect(absent).toEqual({
          userId: 'u-absent',
          timezone: 'UTC',
          theme: 'system',
          defaultFilters: {},
          notifications: {},
          createdAt: null,
          updatedAt: null,
        });
        // Saving one field must give the same defaults for the others as get() promised.
        const saved = await repos.userPreferences.upsert('u-absent', { theme: 'dark' });
        expect({ ...saved, createdAt: null, updatedAt: null }).toEqual({ ...absent, theme: 'dark' });
      });

      it('upserts field by field, keeping what was not given', async () => {
        await repos.userPreferences.upsert('u1', {
          timezone: 'Europe/Paris',
          defaultFilters: { levels: ['ERROR', 'FATAL'], service: null },
        });
        const second = await repos.userPreferences.upsert('u1', { notifications: { email: true } });
        expect(second).toMatchObject({
          timezone: 'Europe/Paris',
          theme: 'system',
          defaultFilters: { levels: ['ERROR', 'FATAL'], service: null },
          notifications: { email: true },
        });
        expect(await repos.userPreferences.get('u1')).toEqual(second);
        await expect(repos.userPreferences.upsert('u1', { timezone: 'Mars/Olympus' })).rejects.toThrow(/timezone/);
        await expect(repos.userPreferences.upsert('u1', { theme: 'neon' as never })).rejects.toBeInstanceOf(InputError);
      });
    });

    describe('app_config', () => {
      it('reads the seeded configuration as a map', async () => {
        const all = await repos.appConfig.getAll();
        expect(all.get('anomaly.z_threshold')).toBe(3);
        expect(all.get('nightly.cron')).toBe('0 2 * * *');
      });

      it('sets, reads and deletes values of any JSON type', async () => {
        const key = `test.${fresh('k').replaceAll('-', '_')}`;
        const first = await repos.appConfig.set(key, { windows: [1, 5, 60], enabled: true }, 'alice', 'Test setting');
        expect(first).toMatchObject({
          key,
          value: { windows: [1, 5, 60], enabled: true },
          description: 'Test setting',
          updatedBy: 'alice',
        });
        for (const value of ['text', 0.5, false, null, ['a', 'b']]) {
          const entry = await repos.appConfig.set(key, value, 'bob');
          expect(entry.value).toEqual(value);
          expect(entry.description).toBe('Test setting');
          expect((await repos.appConfig.getAll()).get(key)).toEqual(value);
        }
        expect((await repos.appConfig.get(key))?.updatedBy).toBe('bob');
        expect(await repos.appConfig.delete(key)).toBe(true);
        expect(await repos.appConfig.get(key)).toBeNull();
        expect(await repos.appConfig.delete(key)).toBe(false);
      });

      it('rejects keys the table would refuse', async () => {
        await expect(repos.appConfig.set('Bad-Key', 1, 'alice')).rejects.toThrow(/key/);
        await expect(repos.appConfig.set('ok.key', 1, '')).rejects.toThrow(/updatedBy/);
      });
    });

    describe('sink_batches', () => {
      const range = { sink: 'clickhouse-logs', topic: 'raw-logs', partition: 0 };

      it('records a pending batch idempotently, and returns the recorded range for the same start', async () => {
        const recorded = await repos.sinkBatches.recordPending({
          ...range,
          minOffset: 100,
          maxOffset: 199,
          rowCount: 100,
        });
        expect(recorded).toMatchObject({
          ...range,
          minOffset: 100,
          maxOffset: 199,
          rowCount: 100,
          status: 'pending',
          insertedAt: null,
        });
        expect(
          await repos.sinkBatches.recordPending({ ...range, minOffset: 100, maxOffset: 199, rowCount: 100 }),
        ).toEqual(recorded);
        // A replay cut differently must be re-cut to what was recorded.
        expect(
          await repos.sinkBatches.recordPending({ ...range, minOffset: 100, maxOffset: 150, rowCount: 51 }),
        ).toEqual(recorded);
        await expectRepositoryError(
          repos.sinkBatches.recordPending({ ...range, minOffset: 150, maxOffset: 250, rowCount: 10 }),
          'conflict',
          /\[100, 199\]/,
        );
        await expectRepositoryError(
          repos.sinkBatches.recordPending({ ...range, minOffset: 50, maxOffset: 100, rowCount: 10 }),
          'conflict',
        );
        // Other partitions and sinks are independent.
        await repos.sinkBatches.recordPending({ ...range, partition: 1, minOffset: 150, maxOffset: 250, rowCount: 10 });
        await repos.sinkBatches.recordPending({
          ...range,
          sink: 'other',
          minOffset: 150,
          maxOffset: 250,
          rowCount: 10,
        });
      });

      it('findCovering finds the batch whose range contains an offset', async () => {
        await repos.sinkBatches.recordPending({ ...range, minOffset: 0, maxOffset: 9, rowCount: 10 });
        await repos.sinkBatches.recordPending({ ...range, minOffset: 20, maxOffset: 29, rowCount: 10 });
        const covering = async (offset: number) =>
          (await repos.sinkBatches.findCovering(range.sink, range.topic, range.partition, offset))?.minOffset ?? null;
        expect(await covering(0)).toBe(0);
        expect(await covering(9)).toBe(0);
        expect(await covering(10)).toBeNull();
        expect(await covering(19)).toBeNull();
        expect(await covering(20)).toBe(20);
        expect(await covering(25)).toBe(20);
        expect(await covering(30)).toBeNull();
        expect(await repos.sinkBatches.findCovering(range.sink, range.topic, 7, 5)).toBeNull();
        await expect(
          repos.sinkBatches.findCovering(range.sink, range.topic, range.partition, -1),
        ).rejects.toBeInstanceOf(InputError);
      });

      it('listFrom returns the recorded ranges a replay from an offset must be re-cut into', async () => {
        for (const [min, max] of [
          [20, 29],
          [0, 9],
          [10, 19],
          [40, 49],
        ] as const) {
          await repos.sinkBatches.recordPending({ ...range, minOffset: min, maxOffset: max, rowCount: max - min + 1 });
        }
        await repos.sinkBatches.recordPending({ ...range, partition: 1, minOffset: 30, maxOffset: 39, rowCount: 10 });
        await repos.sinkBatches.markInserted({ ...range, minOffset: 10 });
        const from = async (offset: number) =>
          (await repos.sinkBatches.listFrom(range.sink, range.topic, range.partition, offset)).map((b) => [
            b.minOffset,
            b.maxOffset,
            b.status,
          ]);
        expect(await from(0)).toEqual([
          [0, 9, 'pending'],
          [10, 19, 'inserted'],
          [20, 29, 'pending'],
          [40, 49, 'pending'],
        ]);
        expect(await from(15)).toEqual([
          [10, 19, 'inserted'],
          [20, 29, 'pending'],
          [40, 49, 'pending'],
        ]);
        expect(await from(30)).toEqual([[40, 49, 'pending']]);
        expect(await from(50)).toEqual([]);
      });

      it('marks batches inserted, lists pending ones and prunes only inserted ones', async () => {
        await repos.sinkBatches.recordPending({ ...range, minOffset: 0, maxOffset: 9, rowCount: 10 });
        await repos.sinkBatches.recordPending({ ...range, minOffset: 10, maxOffset: 19, rowCount: 10 });
        const inserted = await repos.sinkBatches.markInserted({ ...range, minOffset: 0 });
        expect(inserted.status).toBe('inserted');
        expect(inserted.insertedAt).toBeInstanceOf(Date);
        expect((await repos.sinkBatches.markInserted({ ...range, minOffset: 0 })).insertedAt).toEqual(
          inserted.insertedAt,
        );
        // Recording an inserted range again returns it as inserted: the sink then knows the insert already happened.
        expect(
          (await repos.sinkBatches.recordPending({ ...range, minOffset: 0, maxOffset: 9, rowCount: 10 })).status,
        ).toBe('inserted');
        await expectRepositoryError(repos.sinkBatches.markInserted({ ...range, minOffset: 5 }), 'not_found');
        expect(
          (await repos.sinkBatches.listPending(range.sink, range.topic, range.partition)).map((b) => b.minOffset),
        ).toEqual([10]);

        expect(await repos.sinkBatches.prune(new Date(Date.now() - 3_600_000))).toBe(0);
        expect(await repos.sinkBatches.prune(new Date(Date.now() + 3_600_000))).toBe(1);
        expect(await repos.sinkBatches.findCovering(range.sink, range.topic, range.partition, 5)).toBeNull();
        expect((await repos.sinkBatches.findCovering(range.sink, range.topic, range.partition, 15))?.status).toBe(
          'pending',
        );
      });

      it('rejects inverted and negative ranges', async () => {
        await expect(
          repos.sinkBatches.recordPending({ ...range, minOffset: 10, maxOffset: 9, rowCount: 0 }),
        ).rejects.toThrow(/maxOffset/);
        await expect(
          repos.sinkBatches.recordPending({ ...range, minOffset: -1, maxOffset: 9, rowCount: 0 }),
        ).rejects.toThrow(/minOffset/);
        await expect(
          repos.sinkBatches.recordPending({ ...range, partition: 1.5, minOffset: 0, maxOffset: 9, rowCount: 0 }),
        ).rejects.toThrow(/partition/);
      });
    });

    describe('detector_checkpoints', () => {
      const key = { pipeline: 'detect', topic: 'raw-logs', partition: 3 };
      const state = {
        watermark: 1_772_000_000_000,
        windows: [{ key: 'svc|prod|ERROR', start: 1_772_000_000_000, count: 12 }],
        late: 0,
      };

      it('saves, loads and overwrites a partition checkpoint', async () => {
        expect(await repos.detectorCheckpoints.load(key.pipeline, key.topic, key.partition)).toBeNull();
        await repos.detectorCheckpoints.save({ ...key, nextOffset: 500, state });
        expect(await repos.detectorCheckpoints.load(key.pipeline, key.topic, key.partition)).toMatchObject({
          ...key,
          nextOffset: 500,
          state,
        });
        await repos.detectorCheckpoints.save({ ...key, nextOffset: 900, state: { ...state, late: 2 } });
        expect(await repos.detectorCheckpoints.load(key.pipeline, key.topic, key.partition)).toMatchObject({
          nextOffset: 900,
          state: { late: 2 },
        });
        expect(await repos.detectorCheckpoints.load(key.pipeline, key.topic, 4)).toBeNull();
        await expect(repos.detectorCheckpoints.save({ ...key, nextOffset: -1, state })).rejects.toThrow(/nextOffset/);
      });

      it('keeps a changelog: entries written only when changed, removed, replaced, and together with the row', async () => {
        const entries = () => repos.detectorCheckpoints.loadEntries(key.pipeline, key.topic, key.partition);
        const first = new Map<string, JsonValue>([
          ['a', [1, null, 1, 1, 1, 2]],
          ['b', [1, 1, 2, 2, 2, 5]],
        ]);
        const bytes = await repos.detectorCheckpoints.saveChanges(
          { ...key, nextOffset: 10, state },
          { replaceAll: true, removed: [], upserts: first },
        );
        expect(bytes).toBe(JSON.stringify(state).length + JSON.stringify(Object.fromEntries(first)).length);
        expect(await entries()).toEqual(first);
        // Only what changed travels: b removed, c new, a untouched.
        await repos.detectorCheckpoints.saveChanges(
          { ...key, nextOffset: 20, state: { ...state, late: 1 } },
          { replaceAll: false, removed: ['b'], upserts: new Map([['c', [3, null, 3, 4, 3, 1]]]) },
        );
        expect(await entries()).toEqual(
          new Map<string, JsonValue>([
            ['a', [1, null, 1, 1, 1, 2]],
            ['c', [3, null, 3, 4, 3, 1]],
          ]),
        );
        expect(await repos.detectorCheckpoints.load(key.pipeline, key.topic, key.partition)).toMatchObject({
          nextOffset: 20,
          state: { late: 1 },
        });
        // Another partition's entries are its own.
        expect((await repos.detectorCheckpoints.loadEntries(key.pipeline, key.topic, 4)).size).toBe(0);
        await expect(
          repos.transaction(async (tx) => {
            await tx.detectorCheckpoints.saveChanges(
              { ...key, nextOffset: 30, state },
              { replaceAll: true, removed: [], upserts: new Map([['d', [5, null, 5, 5]]]) },
            );
            throw new Error('detector crashed mid-checkpoint');
          }),
        ).rejects.toThrow('detector crashed mid-checkpoint');
        expect([...(await entries()).keys()]).toEqual(['a', 'c']);
        expect((await repos.detectorCheckpoints.load(key.pipeline, key.topic, key.partition))?.nextOffset).toBe(20);
      });

      it('commits a checkpoint together with alert writes, or neither', async () => {
        await repos.detectorCheckpoints.save({ ...key, nextOffset: 100, state });
        const committed = alert();
        await withTransaction(pool(), async (client) => {
          await repositoriesFor(client).anomalyAlerts.insert(committed);
          await repos.detectorCheckpoints.saveIn(client, { ...key, nextOffset: 200, state });
        });
        expect((await repos.detectorCheckpoints.load(key.pipeline, key.topic, key.partition))?.nextOffset).toBe(200);
        const active = await repos.anomalyAlerts.findActive(committed.dedupKey);
        expect(active).not.toBeNull();

        const rolledBack = alert();
        await expectRepositoryError(
          withTransaction(pool(), async (client) => {
            const tx = repositoriesFor(client);
            await tx.anomalyAlerts.insert(rolledBack);
            await repos.detectorCheckpoints.saveIn(client, { ...key, nextOffset: 300, state });
            expect((await tx.detectorCheckpoints.load(key.pipeline, key.topic, key.partition))?.nextOffset).toBe(300);
            // A second active alert for the committed key fails, and takes the whole transaction with it.
            await tx.anomalyAlerts.insert(alert({ dedupKey: committed.dedupKey }));
          }),
          'conflict',
        );
        expect((await repos.detectorCheckpoints.load(key.pipeline, key.topic, key.partition))?.nextOffset).toBe(200);
        expect(await repos.anomalyAlerts.findActive(rolledBack.dedupKey)).toBeNull();

        await repos.transaction(async (tx) => {
          await tx.anomalyAlerts.resolve(active!.id);
          await tx.detectorCheckpoints.save({ ...key, nextOffset: 400, state });
        });
        expect((await repos.detectorCheckpoints.load(key.pipeline, key.topic, key.partition))?.nextOffset).toBe(400);
        expect(await repos.anomalyAlerts.findActive(committed.dedupKey)).toBeNull();

        await expect(
          repos.transaction(async (tx) => {
            await tx.detectorCheckpoints.save({ ...key, nextOffset: 500, state });
            throw new Error('detector crashed mid-window');
          }),
        ).rejects.toThrow('detector crashed mid-window');
        expect((await repos.detectorCheckpoints.load(key.pipeline, key.topic, key.partition))?.nextOffset).toBe(400);
      });
    });

    describe('alert_silences', () => {
      const target = {
        rule: 'spike',
        service: 'payment-service',
        environment: 'prod',
        level: 'ERROR',
        dedupKey: 'spike|payment-service|prod|ERROR',
      };
      const hour = 3_600_000;

      it('matches alerts by the silence matchers, NULL matching anything', async () => {
        await repos.alertSilences.create({
          service: 'payment-service',
          reason: 'maintenance',
          createdBy: 'alice',
          expiresAt: new Date(Date.now() + hour),
        });
        // starts_at defaulted to the database's clock, truncated to the millisecond, so a Date taken now is not before
        // it.
        const now = new Date();
        expect(await repos.alertSilences.matches(target, now)).toBe(true);
        expect(await repos.alertSilences.matches({ ...target, service: 'order-service' }, now)).toBe(false);
        expect(await repos.alertSilences.matches({ ...target, rule: 'silence', level: null }, now)).toBe(true);

        await repos.alertSilences.create({
          rule: 'novel_pattern',
          level: 'FATAL',
          reason: 'noisy',
          createdBy: 'bob',
          startsAt: new Date(now.getTime() - hour),
          expiresAt: new Date(now.getTime() + hour),
        });
        const novel = { rule: 'novel_pattern', service: 'order-service', environment: 'prod', dedupKey: 'novel|1' };
        expect(await repos.alertSilences.matches({ ...novel, level: 'FATAL' }, now)).toBe(true);
        expect(await repos.alertSilences.matches({ ...novel, level: 'ERROR' }, now)).toBe(false);
        // A silence restricted to a level does not cover alerts without one.
        expect(await repos.alertSilences.matches({ ...novel, level: null }, now)).toBe(false);
      });

      it('only silences in force count, and deleting one lifts it', async () => {
        const now = new Date();
        const expired = await repos.alertSilences.create({
          dedupKey: target.dedupKey,
          reason: 'old',
          createdBy: 'alice',
          startsAt: new Date(now.getTime() - 2 * hour),
          expiresAt: new Date(now.getTime() - hour),
        });
        const future = await repos.alertSilences.create({
          dedupKey: target.dedupKey,
          reason: 'planned',
          createdBy: 'alice',
          startsAt: new Date(now.getTime() + hour),
          expiresAt: new Date(now.getTime() + 2 * hour),
        });
        expect(await repos.alertSilences.matches(target, now)).toBe(false);
        expect(await repos.alertSilences.matches(target, new Date(now.getTime() + 1.5 * hour))).toBe(true);
        expect((await repos.alertSilences.listActive(now)).map((s) => s.id)).toEqual([]);
        expect((await repos.alertSilences.listActive(new Date(now.getTime() - 1.5 * hour))).map((s) => s.id)).toEqual([
          expired.id,
        ]);

        const current = await repos.alertSilences.create({
          environment: 'prod',
          reason: 'incident',
          createdBy: 'bob',
          startsAt: new Date(now.getTime() - 1000),
          expiresAt: new Date(now.getTime() + hour),
        });
        expect(current).toMatchObject({
          environment: 'prod',
          rule: null,
          service: null,
          reason: 'incident',
          createdBy: 'bob',
        });
        expect((await repos.alertSilences.listActive(now)).map((s) => s.id)).toEqual([current.id]);
        expect(await repos.alertSilences.delete(current.id)).toBe(true);
        expect(await repos.alertSilences.matches(target, now)).toBe(false);
        expect(await repos.alertSilences.delete(future.id)).toBe(true);
        expect(await repos.alertSilences.delete(future.id)).toBe(false);
      });

      it('refuses silences without a matcher or with an inverted period', async () => {
        const now = Date.now();
        await expect(
          repos.alertSilences.create({ reason: 'all', createdBy: 'alice', expiresAt: new Date(now + hour) }),
        ).rejects.toThrow(/at least one matcher/);
        await expect(
          repos.alertSilences.create({
            service: 's',
            reason: 'x',
            createdBy: 'a',
            startsAt: new Date(now),
            expiresAt: new Date(now - 1),
          }),
        ).rejects.toThrow(/expiresAt/);
      });
    });

    describe('api_keys', () => {
      it('returns the key once and stores only its SHA-256', async () => {
        const { key, apiKey } = await repos.apiKeys.create('ci deploy', 'operator');
        expect(key).toMatch(/^lf_[A-Za-z0-9_-]{43}$/);
        expect(key.startsWith(apiKey.keyPrefix)).toBe(true);
        expect(apiKey).toMatchObject({ name: 'ci deploy', role: 'operator', lastUsedAt: null, revokedAt: null });

        const { rows } = await pool().query('SELECT * FROM api_keys');
        expect(rows).toHaveLength(1);
        expect(rows[0].key_hash).not.toBe(key);
        expect(rows[0].key_hash).toBe(createHash('sha256').update(key).digest('hex'));
        expect(JSON.stringify(rows)).not.toContain(key.slice(apiKey.keyPrefix.length));

        const listed = await repos.apiKeys.list();
        expect(listed).toEqual([apiKey]);
        expect(JSON.stringify(listed)).not.toContain(rows[0].key_hash);
      });

      it('verifies good keys, records their use, and rejects wrong, malformed and revoked keys', async () => {
        const { key, apiKey } = await repos.apiKeys.create('dashboard', 'viewer');
        const other = await repos.apiKeys.create('admin', 'admin');
        expect(await repos.apiKeys.verify(key)).toEqual({ id: apiKey.id, name: 'dashboard', role: 'viewer' });
        const firstUse = (await repos.apiKeys.list()).find((k) => k.id === apiKey.id)?.lastUsedAt;
        expect(firstUse).toBeInstanceOf(Date);
        // Used again within the minute: still verified, and no second write (now() would differ).
        expect(await repos.apiKeys.verify(key)).toEqual({ id: apiKey.id, name: 'dashboard', role: 'viewer' });
        expect((await repos.apiKeys.list()).find((k) => k.id === apiKey.id)?.lastUsedAt).toEqual(firstUse);
        // A use over a minute old is brought up to date.
        await pool().query("UPDATE api_keys SET last_used_at = now() - interval '2 minutes' WHERE id = $1", [
          apiKey.id,
        ]);
        expect(await repos.apiKeys.verify(key)).not.toBeNull();
        const refreshed = (await repos.apiKeys.list()).find((k) => k.id === apiKey.id)?.lastUsedAt;
        expect(refreshed!.getTime()).toBeGreaterThan(firstUse!.getTime() - 60_000);
        expect(await repos.apiKeys.verify(other.key)).toEqual({ id: other.apiKey.id, name: 'admin', role: 'admin' });

        // Same prefix, different secret: found by prefix, refused by the hash comparison.
        const lastChar = key.at(-1) === 'A' ? 'B' : 'A';
        expect(await repos.apiKeys.verify(key.slice(0, -1) + lastChar)).toBeNull();
        for (const bad of ['', 'lf_short', key.toUpperCase(), `${key}x`, `xx_${key.slice(3)}`])
          expect(await repos.apiKeys.verify(bad)).toBeNull();

        const revoked = await repos.apiKeys.revoke(apiKey.id);
        expect(revoked.revokedAt).toBeInstanceOf(Date);
        expect(await repos.apiKeys.verify(key)).toBeNull();
        expect((await repos.apiKeys.revoke(apiKey.id)).revokedAt).toEqual(revoked.revokedAt);
        expect(await repos.apiKeys.verify(other.key)).not.toBeNull();
        await expectRepositoryError(repos.apiKeys.revoke(999_999), 'not_found');
        await expect(repos.apiKeys.create('x', 'root' as never)).rejects.toBeInstanceOf(InputError);
      });
    });
  });
}
