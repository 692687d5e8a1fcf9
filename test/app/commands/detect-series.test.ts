import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  detectSeries,
  parseSeriesCsv,
  runDetectSeries,
  scaledSettings,
  type DetectSeriesOptions,
} from '../../../src/app/commands/detect-series.ts';
import { ConfigError, InputError } from '../../../src/core/errors.ts';
import { calmSeries, labelledSeriesCsv, plainTimestamp as plain } from '../../support/synthetic-series.ts';

const MINUTE = 60_000;
const FROM = Date.UTC(2026, 0, 5); // a Monday

async function runCommand(input: string, options: DetectSeriesOptions = {}): Promise<string> {
  const source = new PassThrough();
  const sink = new PassThrough();
  let out = '';
  sink.on('data', (d: Buffer) => (out += d.toString()));
  source.end(input);
  await runDetectSeries(source, sink, options);
  return out;
}

describe('parseSeriesCsv', () => {
  it('reads ISO 8601 and `YYYY-MM-DD HH:MM:SS` timestamps as UTC, quoted fields, CRLF and blank lines', () => {
    const { rows, intervalMs } = parseSeriesCsv(
      'timestamp,value\r\n2026-01-05 00:00:00,3\r\n"2026-01-05T00:01:00Z","4.5"\r\n\n2026-01-05T01:02:00+01:00,0\n',
    );
    expect(intervalMs).toBe(MINUTE);
    expect(rows.map((row) => [row.line, row.start - FROM, row.value])).toEqual([
      [2, 0, 3],
      [3, MINUTE, 4.5],
      [5, 2 * MINUTE, 0],
    ]);
    expect(rows[1]!.timestamp).toBe('2026-01-05T00:01:00Z');
  });

  it('allows missing rows on the grid, and takes the interval from the closest rows', () => {
    const { rows, intervalMs } = parseSeriesCsv(
      'ts,count\n2026-01-05 00:00:00,1\n2026-01-05 00:10:00,1\n2026-01-05 00:15:00,1\n',
    );
    expect(intervalMs).toBe(5 * MINUTE);
    expect(rows).toHaveLength(3);
  });

  it.each([
    ['', /empty/],
    ['2026-01-05 00:00:00,1\n2026-01-05 00:01:00,1\n', /line 1: the first line must be a header/],
    ['timestamp,value\n2026-01-05 00:00:00,1\n', /need at least 2 rows/],
    ['timestamp,value\n2026-01-05 00:00:00,1\n2026-01-05 00:01:00\n', /line 3: expected 2 fields/],
    ['timestamp,value\n2026-01-05 00:00:00,1\n2026-02-30 00:01:00,1\n', /line 3: .*2026-02 has no day 30/],
    ['timestamp,value\n2026-01-05 00:00:00,1\nyesterday,1\n', /line 3: timestamp "yesterday": not an RFC 3339/],
    ['timestamp,value\n2026-01-05 00:00:00,1\n2026-01-05 00:01:00,\n', /line 3: value is missing/],
    ['timestamp,value\n2026-01-05 00:00:00,1\n2026-01-05 00:01:00,NaN\n', /line 3: value "NaN" is not a number/],
    ['timestamp,value\n2026-01-05 00:00:00,1\n2026-01-05 00:01:00,-2\n', /line 3: value -2 is not a count/],
    ['timestamp,value\n2026-01-05 00:01:00,1\n2026-01-05 00:00:00,1\n', /line 3: .*is not after the previous row/],
    [
      'timestamp,value\n2026-01-05 00:00:00,1\n2026-01-05 00:02:00,1\n2026-01-05 00:05:00,1\n',
      /line 4: .*180 s after the previous row, not a multiple of the series' interval \(120 s\)/,
    ],
  ])('refuses bad input with the line and the reason: %j', (input, message) => {
    expect(() => parseSeriesCsv(input)).toThrow(InputError);
    expect(() => parseSeriesCsv(input)).toThrow(message);
  });
});

describe('detectSeries', () => {
  it('scales time and samples per slot to the interval, and keeps the per-window evidence as it is', () => {
    expect(scaledSettings(MINUTE)).toEqual({
      minSamples: 30,
      lifecycle: { pendingWindows: 2, resolveWindows: 5, cooldownMs: 30 * MINUTE },
      levels: { halfLifeMs: 60 * MINUTE, priorEvents: 100, acceptAfterMs: 120 * MINUTE, breakWindows: 5 },
    });
    expect(scaledSettings(5 * MINUTE)).toMatchObject({
      minSamples: 8,
      lifecycle: { cooldownMs: 150 * MINUTE },
      levels: { halfLifeMs: 300 * MINUTE, priorEvents: 100, acceptAfterMs: 600 * MINUTE, breakWindows: 5 },
    });
    expect(scaledSettings(10_000).minSamples).toBe(30);
  });

  it('opens a drop and a spike on a labelled day after two weeks of history, and nothing else', async () => {
    const { csv, dropAt, spikeAt } = labelledSeriesCsv();
    const { rows, intervalMs } = parseSeriesCsv(csv);
    const openings = await detectSeries(rows, intervalMs, { trainRows: 14 * 288 });
    expect(openings.map((o) => o.kind)).toEqual(['drop', 'spike']);
    // Two anomalous windows open an alert (pendingWindows): the second window of each incident.
    const next = (at: string) => plain(Date.parse(`${at}Z`) + 5 * MINUTE);
    expect(openings.map((o) => o.timestamp)).toEqual([next(dropAt), next(spikeAt)]);
    expect(openings[0]!.score).toBeLessThan(-3);
    expect(openings[1]!.score).toBeGreaterThan(3);
  });

  it('opens one alert for a level that falls for good, not one each time its busier windows come back in the band', async () => {
    // Two weeks of a calm 5-minute series, then a day whose level falls to 60% at 06:00 and stays there: near the
    // band's lower edge, so some of its windows come back inside it before the level is accepted.
    const points = calmSeries(11, FROM, 15 * 288, 5 * MINUTE, 60);
    const shiftFrom = 14 * 288 + 72;
    const rows = points.map((point, i) => ({
      line: i + 2,
      timestamp: plain(point.start),
      start: point.start,
      value: i >= shiftFrom ? Math.round(point.count * 0.6) : point.count,
    }));
    const openings = await detectSeries(rows, 5 * MINUTE, { trainRows: 14 * 288 });
    expect(openings.map((o) => o.kind)).toEqual(['drop']);
    const at = Date.parse(`${openings[0]!.timestamp}Z`);
    expect(at).toBeGreaterThan(points[shiftFrom]!.start);
    expect(at).toBeLessThanOrEqual(points[shiftFrom]!.start + 60 * MINUTE);
  });

  it('is deterministic, and a day of history is enough to score with', async () => {
    const { csv } = labelledSeriesCsv();
    expect(await runCommand(csv)).toBe(await runCommand(csv));
    const { rows, intervalMs } = parseSeriesCsv(csv);
    await expect(detectSeries(rows, intervalMs, { trainRows: 288 })).resolves.toBeInstanceOf(Array);
  });

  it('refuses --train-rows that leave nothing to score or are not a count of rows', async () => {
    const csv = 'timestamp,value\n2026-01-05 00:00:00,1\n2026-01-05 00:01:00,1\n';
    await expect(runCommand(csv, { trainRows: '2' })).rejects.toThrow(ConfigError);
    await expect(runCommand(csv, { trainRows: '2' })).rejects.toThrow(/leaves no row to score/);
    await expect(runCommand(csv, { trainRows: '0' })).rejects.toThrow(/--train-rows: must be at least 1/);
    await expect(runCommand(csv, { trainRows: '1.5' })).rejects.toThrow(/--train-rows: must be a whole number/);
  });
});
