/** retention on chdb + a real PostgreSQL: each service's logs kept for its own retention_days, others by app_config. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { retention } from '../../src/pipelines/retention.ts';
import { retentionPlan } from '../../src/stores/retention.ts';
import { createHarness, type Harness } from '../support/pipeline-harness.ts';

// Relative to the clock: the table's TTL (30 days) would remove older rows at its own pace.
const NOW = Math.floor(Date.now() / 60_000) * 60_000;
const AGES_DAYS = [1, 5, 10, 20];

describe('retention', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({}, { kafka: false });
    const repositories = await h.resources.repositories();
    await repositories.services.create({ name: 'short-svc', displayName: 'Short', retentionDays: 3 });
    await repositories.services.create({ name: 'long-svc', displayName: 'Long', retentionDays: 30 });
    await repositories.appConfig.set('retention.logs_days', 7, 'test');
    const { clickhouse } = await h.resources.engines();
    // One log per service and age: short-svc and long-svc have rows; unlisted-svc is kept by retention.logs_days.
    await clickhouse.command({
      query: `INSERT INTO logs (log_id, timestamp, service, environment, level, message, template, error_hash, ingested_at)
              SELECT generateUUIDv4(number), t, s, 'production', 'ERROR', 'boom', 'boom', 1, t
              FROM (
                SELECT number, arrayJoin(['short-svc', 'long-svc', 'unlisted-svc']) AS s,
                       toDateTime64({now:UInt64} / 1000, 3, 'UTC') - toIntervalDay({ages:Array(UInt32)}[number + 1]) AS t
                FROM numbers({n:UInt32})
              )`,
      query_params: { now: NOW, ages: AGES_DAYS, n: AGES_DAYS.length },
    });
  });
  afterAll(() => h.close());

  const kept = async (service: string) =>
    h.count('SELECT count() FROM logs WHERE service = {service:String}', { service });

  it('removes each service’s logs past its retention and leaves the rest, including the pattern totals', async () => {
    expect(await h.count('SELECT count() FROM logs')).toBe(12);
    const run = h.start(retention, { once: true, now: new Date(NOW).toISOString() });
    expect(await run.done).toEqual({ status: 'completed' });
    expect(await kept('short-svc')).toBe(1); // 3 days: the 1-day-old log
    expect(await kept('unlisted-svc')).toBe(2); // retention.logs_days 7: 1 and 5 days old
    expect(await kept('long-svc')).toBe(4); // 30 days, as long as the table keeps logs: untouched
    expect(await h.count('SELECT sum(occurrences) FROM error_pattern_counts')).toBe(12);

    // A second run finds nothing more to remove.
    const again = h.start(retention, { once: true, now: new Date(NOW).toISOString() });
    expect(await again.done).toEqual({ status: 'completed' });
    expect(await h.count('SELECT count() FROM logs')).toBe(7);
  });

  it('plans no rule for services kept as long as the table keeps logs', () => {
    expect(
      retentionPlan(
        [
          { name: 'a', retentionDays: 3 },
          { name: 'b', retentionDays: 30 },
          { name: 'c', retentionDays: 3 },
          { name: 'd', retentionDays: 45 },
        ],
        30,
        30,
      ),
    ).toEqual({ rules: [{ services: ['a', 'c'], days: 3 }], tableTtlDays: 30 });
    expect(retentionPlan([], 7, 30).rules).toEqual([{ services: 'others', days: 7 }]);
  });

  it('refuses a malformed --cron with the expression named', async () => {
    const run = h.start(retention, { cron: 'every hour' });
    const outcome = await run.done;
    expect(outcome.status).toBe('failed');
    expect(String((outcome as { error?: unknown }).error)).toMatch(/cron expression "every hour"/);
  });
});
