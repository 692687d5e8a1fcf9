/** baselines on chdb + PGlite: zero-filled statistics per slot, the bootstrap rule, and the pipeline's --once run. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baselines } from '../../src/pipelines/baselines.ts';
import { computeBaselines, loadBaselines } from '../../src/stores/baselines.ts';
import { computeSeriesBaselines, type WindowCount } from '../../src/domain/series-baselines.ts';
import { createHarness, type Harness } from '../support/pipeline-harness.ts';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 27, 0, 0); // a Friday

describe('baselines', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({}, { kafka: false });
    const { clickhouse } = await h.resources.engines();
    // 10 days of api ERROR logs: 2 per minute, except hour 10 UTC, which has 6 per minute on even minutes and none on
    // odd ones.
    await clickhouse.command({
      query: `INSERT INTO logs (log_id, timestamp, service, environment, level, message, template, error_hash, ingested_at)
              SELECT generateUUIDv4(number), t, 'api', 'production', 'ERROR', 'boom', 'boom', 1, t
              FROM (
                SELECT number, toDateTime64({start:DateTime('UTC')}, 3, 'UTC') + toIntervalMinute(intDiv(number, 6)) AS t, number % 6 AS k
                FROM numbers({rows:UInt64})
              )
              WHERE if(toHour(t) = 10, toMinute(t) % 2 = 0, k < 2)`,
      query_params: { start: (NOW - 10 * DAY) / 1000, rows: 10 * 1440 * 6 },
    });
  });
  afterAll(() => h.close());

  it('computes zero-filled per-minute statistics for each hour-of-day and day-of-week slot', async () => {
    const { clickhouse } = await h.resources.engines();
    const run = await computeBaselines(clickhouse, { now: NOW, weeks: 4, zThreshold: 3 });
    expect(run).toMatchObject({ granularity: 'hour_and_day', historyMinutes: 10 * 1440, rows: 24 * 7 });
    const all = await loadBaselines(clickhouse);
    const at = (hour: number, day: number) => all.find((b) => b.hourOfDay === hour && b.dayOfWeek === day)!;
    expect(at(9, 1)).toMatchObject({
      service: 'api',
      environment: 'production',
      level: 'ERROR',
      mean: 2,
      stddev: 0,
      median: 2,
    });
    // Hour 10: alternating 6 and 0 per minute -> mean 3, stddev 3; the empty minutes count.
    expect(at(10, 3).mean).toBeCloseTo(3, 6);
    expect(at(10, 3).stddev).toBeCloseTo(3, 6);
    expect(at(10, 3).upperThreshold).toBeCloseTo(12, 6);
    expect(at(10, 3).lowerThreshold).toBe(0);
  });

  it('agrees with the in-process statistics of src/domain/series-baselines.ts on every slot and field', async () => {
    const { clickhouse } = await h.resources.engines();
    await computeBaselines(clickhouse, { now: NOW, weeks: 4, zThreshold: 3 });
    const stored = await loadBaselines(clickhouse);
    const counts: WindowCount[] = [];
    for (let start = NOW - 10 * DAY; start < NOW; start += 60_000) {
      const at = new Date(start);
      counts.push({ start, count: at.getUTCHours() === 10 ? (at.getUTCMinutes() % 2 === 0 ? 6 : 0) : 2 });
    }
    const series = { service: 'api', environment: 'production', level: 'ERROR' };
    const computed = computeSeriesBaselines(series, counts, { historyMs: 10 * DAY, zThreshold: 3 });
    expect(computed).toHaveLength(24 * 7);
    for (const expected of computed) {
      const row = stored.find((b) => b.hourOfDay === expected.hourOfDay && b.dayOfWeek === expected.dayOfWeek)!;
      for (const field of [
        'mean',
        'stddev',
        'median',
        'p01',
        'p05',
        'p95',
        'p99',
        'upperThreshold',
        'lowerThreshold',
        'sampleCount',
      ] as const)
        expect(row[field], `${field} at ${expected.dayOfWeek}/${expected.hourOfDay}`).toBeCloseTo(expected[field]!, 9);
    }
  });

  it('falls back to hour-of-day statistics for every weekday when history is shorter than a week', async () => {
    const { clickhouse } = await h.resources.engines();
    const run = await computeBaselines(clickhouse, { now: NOW - 7 * DAY, weeks: 4, zThreshold: 3 });
    expect(run).toMatchObject({ granularity: 'hour_of_day', historyMinutes: 3 * 1440, rows: 24 * 7 });
  });

  it('runs once on demand as a pipeline and reports completion', async () => {
    const running = h.start(baselines, { once: true, now: new Date(NOW + 60_000).toISOString() });
    expect(await running.done).toEqual({ status: 'completed' });
    const { clickhouse } = await h.resources.engines();
    expect((await loadBaselines(clickhouse)).length).toBe(24 * 7);
  });
});
