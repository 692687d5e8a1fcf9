/** baselines on chdb + PGlite: zero-filled statistics per slot, the bootstrap rule, and the pipeline's --once run. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baselines } from '../../src/pipelines/baselines.ts';
import { computeBaselines, loadBaselines } from '../../src/stores/baselines.ts';
import { computeSeriesBaselines, type WindowCount } from '../../src/domain/series-baselines.ts';
import { createHarness, type Harness } from '../support/pipeline-harness.ts';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 27, 0, 0); // a Friday

const API = { service: 'api', environment: 'production', level: 'ERROR' };

/** The per-minute counts the inserted logs make: 2 a minute, and in hour 10 6 on even minutes, none on odd ones. */
function apiCounts(from: number, to: number): WindowCount[] {
  const counts: WindowCount[] = [];
  for (let start = from; start < to; start += 60_000) {
    const minute = new Date(start);
    counts.push({ start, count: minute.getUTCHours() === 10 ? (minute.getUTCMinutes() % 2 === 0 ? 6 : 0) : 2 });
  }
  return counts;
}

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
    const computed = computeSeriesBaselines(API, apiCounts(NOW - 10 * DAY, NOW), {
      historyMs: 10 * DAY,
      zThreshold: 3,
    });
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

  it('falls back to hour-of-day statistics, for the days of week the history saw, when it is shorter than a week', async () => {
    const { clickhouse } = await h.resources.engines();
    const at = NOW - 7 * DAY;
    const run = await computeBaselines(clickhouse, { now: at, weeks: 4, zThreshold: 3 });
    // Tuesday to Thursday: a first week's Friday to Monday are not judged by the weekdays' level.
    expect(run).toMatchObject({ granularity: 'hour_of_day', historyMinutes: 3 * 1440, rows: 24 * 3 });
    const rows = await (
      await clickhouse.query({
        query: `SELECT day_of_week, hour_of_day, mean, stddev, p01, p99 FROM anomaly_baselines
                WHERE computed_at = toDateTime64({at:String}, 3, 'UTC') ORDER BY day_of_week, hour_of_day`,
        query_params: { at: new Date(at).toISOString().replace('T', ' ').replace('Z', '') },
        format: 'JSONEachRow',
      })
    ).json<{ day_of_week: number; hour_of_day: number; mean: number; stddev: number; p01: number; p99: number }>();
    const computed = computeSeriesBaselines(API, apiCounts(at - 3 * DAY, at), { historyMs: 3 * DAY, zThreshold: 3 });
    expect(rows.map((r) => [r.day_of_week, r.hour_of_day])).toEqual(computed.map((b) => [b.dayOfWeek, b.hourOfDay]));
    expect(new Set(rows.map((r) => r.day_of_week))).toEqual(new Set([2, 3, 4]));
    rows.forEach((row, i) => {
      expect(row.mean).toBeCloseTo(computed[i]!.mean, 9);
      expect(row.stddev).toBeCloseTo(computed[i]!.stddev, 9);
      expect(row.p01).toBeCloseTo(computed[i]!.p01!, 9);
      expect(row.p99).toBeCloseTo(computed[i]!.p99, 9);
    });
  });

  it('runs once on demand as a pipeline and reports completion', async () => {
    const running = h.start(baselines, { once: true, now: new Date(NOW + 60_000).toISOString() });
    expect(await running.done).toEqual({ status: 'completed' });
    const { clickhouse } = await h.resources.engines();
    expect((await loadBaselines(clickhouse)).length).toBe(24 * 7);
  });
});
