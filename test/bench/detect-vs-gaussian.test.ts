/**
 * The support code of bench/scenarios/detect-vs-gaussian.bench.ts: the rolling
 * Gaussian (checked against a direct recomputation of every window's mean and
 * spread), its alert openings through the real lifecycle, and the event-level
 * metric the comparison is judged by.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { labelledSeries, pooled, SHAPES } from '../../bench/scenarios/detect-vs-gaussian.bench.ts';
import { directionOf, scoreEvents, type LabelledIncident } from '../../bench/support/event-scores.ts';
import { rollingGaussianOpenings, rollingGaussianScores } from '../../bench/support/rolling-gaussian.ts';
import type { SeriesRow } from '../../src/app/commands/detect-series.ts';

const settings = { window: 6, k: 3, minStddev: 1 };

function rowsOf(values: readonly number[], intervalMs = 60_000): SeriesRow[] {
  const from = Date.UTC(2026, 0, 5);
  return values.map((value, i) => ({
    line: i + 2,
    timestamp: new Date(from + i * intervalMs).toISOString(),
    start: from + i * intervalMs,
    value,
  }));
}

describe('rollingGaussianScores', () => {
  it('scores each value against the mean and sample stddev of the window before it', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 500 }), { minLength: 12, maxLength: 80 }),
        fc.integer({ min: 2, max: 10 }),
        (values, window) => {
          const scores = rollingGaussianScores(values, window, { window, k: 3, minStddev: 0.5 });
          expect(scores).toHaveLength(values.length - window);
          scores.forEach((scored, j) => {
            const i = window + j;
            const trailing = values.slice(i - window, i);
            const mean = trailing.reduce((a, b) => a + b, 0) / window;
            const sd = Math.sqrt(trailing.reduce((a, b) => a + (b - mean) ** 2, 0) / (window - 1));
            expect(scored.mean).toBeCloseTo(mean, 9);
            expect(scored.stddev).toBeCloseTo(Math.max(sd, 0.5), 6);
            expect(scored.z).toBeCloseTo((values[i]! - mean) / Math.max(sd, 0.5), 6);
            const expectedKind =
              scored.z >= 3 ? 'spike' : scored.z <= -3 ? (values[i] === 0 ? 'silence' : 'drop') : null;
            expect(scored.kind).toBe(expectedKind);
          });
        },
      ),
    );
  });

  it('floors the spread of a flat window, so one extra event is not an infinite z', () => {
    const [scored] = rollingGaussianScores([5, 5, 5, 5, 5, 5, 6], 6, settings);
    expect(scored).toEqual({ mean: 5, stddev: 1, z: 1, kind: null });
  });

  it('calls a rise a spike, a fall a drop, and a fall to zero a silence', () => {
    const base = [10, 12, 8, 11, 9, 10];
    expect(rollingGaussianScores([...base, 30], 6, settings)[0]!.kind).toBe('spike');
    expect(rollingGaussianScores([...base, 2], 6, settings)[0]!.kind).toBe('drop');
    expect(rollingGaussianScores([...base, 0], 6, settings)[0]!.kind).toBe('silence');
  });

  it('rejects settings and starts it cannot score with', () => {
    expect(() => rollingGaussianScores([1, 2, 3], 2, { window: 1, k: 3, minStddev: 1 })).toThrow(/window/);
    expect(() => rollingGaussianScores([1, 2, 3], 2, { window: 2, k: 0, minStddev: 1 })).toThrow(/k must/);
    expect(() => rollingGaussianScores([1, 2, 3], 2, { window: 2, k: 3, minStddev: 0 })).toThrow(/minStddev/);
    expect(() => rollingGaussianScores([1, 2, 3], 1, { window: 2, k: 3, minStddev: 1 })).toThrow(/start/);
  });
});

describe('rollingGaussianOpenings', () => {
  const calm = Array.from({ length: 40 }, (_, i) => 20 + (i % 3) - 1);
  // Long enough that the first anomalous window does not widen the spread past k for the second.
  const wide = { window: 20, k: 3, minStddev: 1 };

  it('opens once, on the second anomalous window, for a sustained rise (the detector lifecycle)', () => {
    const values = [...calm, 60, 60, 60, 20, 20, 20, 20, 20, 20];
    const openings = rollingGaussianOpenings(rowsOf(values), 60_000, 30, wide);
    expect(openings).toEqual([{ timestamp: rowsOf(values)[41]!.timestamp, kind: 'spike', score: expect.any(Number) }]);
  });

  it('does not open on a single anomalous window', () => {
    const values = [...calm, 60, 20, 20, 20];
    expect(rollingGaussianOpenings(rowsOf(values), 60_000, 30, wide)).toEqual([]);
  });

  it('misses a sustained change once a short window has taken in its first window', () => {
    const values = [...calm, 60, 60, 60, 20, 20, 20, 20, 20, 20];
    expect(
      rollingGaussianScores(values, 40, settings)
        .map((s) => s.kind)
        .slice(0, 2),
    ).toEqual(['spike', null]);
    expect(rollingGaussianOpenings(rowsOf(values), 60_000, 30, settings)).toEqual([]);
  });

  it('opens a silence when the count stays at zero', () => {
    const values = [...calm, 0, 0, 0, 0];
    expect(rollingGaussianOpenings(rowsOf(values), 60_000, 30, wide).map((o) => o.kind)).toEqual(['silence']);
  });
});

describe('scoreEvents', () => {
  const up: LabelledIncident = { start: 1_000, end: 2_000, direction: 'up' };
  const down: LabelledIncident = { start: 10_000, end: 11_000, direction: 'down' };

  it('finds an incident by an opening of its direction from its start to the tolerance after its end', () => {
    const score = scoreEvents(
      [
        { at: 2_500, direction: 'up' },
        { at: 10_000, direction: 'down' },
      ],
      [up, down],
      500,
    );
    expect(score).toMatchObject({
      incidents: 2,
      found: 2,
      openings: 2,
      falseOpenings: 0,
      precision: 1,
      recall: 1,
      f1: 1,
    });
  });

  it('counts an opening outside every span as false, and one just past the tolerance too', () => {
    const score = scoreEvents(
      [
        { at: 2_501, direction: 'up' },
        { at: 5_000, direction: 'down' },
        { at: 10_500, direction: 'down' },
      ],
      [up, down],
      500,
    );
    expect(score).toMatchObject({ found: 1, falseOpenings: 2 });
    expect(score.precision).toBeCloseTo(1 / 3, 12);
    expect(score.recall).toBe(0.5);
    expect(score.f1).toBeCloseTo((2 * (1 / 3) * 0.5) / (1 / 3 + 0.5), 12);
  });

  it('counts an opening of the other direction, or a repeat, inside an incident as neither found nor false', () => {
    const score = scoreEvents(
      [
        { at: 1_200, direction: 'down' },
        { at: 1_300, direction: 'up' },
        { at: 1_900, direction: 'up' },
      ],
      [up],
      0,
    );
    expect(score).toMatchObject({ found: 1, falseOpenings: 0, openings: 3, precision: 1, recall: 1 });
    expect(scoreEvents([{ at: 1_200, direction: 'down' }], [up], 0)).toMatchObject({
      found: 0,
      falseOpenings: 0,
      f1: 0,
    });
  });

  it('has no F1 without incidents and an F1 of 0 when nothing is found', () => {
    expect(scoreEvents([{ at: 1, direction: 'up' }], [], 0)).toMatchObject({ falseOpenings: 1, precision: 0 });
    expect(scoreEvents([], [], 0).f1).toBeNaN();
    expect(scoreEvents([], [up], 0)).toMatchObject({ found: 0, recall: 0, f1: 0 });
    expect(scoreEvents([], [up], 0).precision).toBeNaN();
  });

  it('rejects a negative tolerance and an incident that ends before it starts', () => {
    expect(() => scoreEvents([], [up], -1)).toThrow(/toleranceMs/);
    expect(() => scoreEvents([], [{ start: 5, end: 5, direction: 'up' }], 0)).toThrow(/end after/);
  });

  it('maps alert kinds to directions and refuses others', () => {
    expect(['spike', 'drop', 'silence'].map(directionOf)).toEqual(['up', 'down', 'down']);
    expect(() => directionOf('novel_pattern')).toThrow(/no direction/);
  });

  it('pools runs by adding their counts, not by averaging their F1', () => {
    const a = scoreEvents([{ at: 1_500, direction: 'up' }], [up], 0);
    const b = scoreEvents([{ at: 50_000, direction: 'up' }], [up, down], 0);
    expect(pooled([a, b])).toMatchObject({ incidents: 3, found: 1, openings: 2, falseOpenings: 1, precision: 0.5 });
    expect(pooled([a, b]).recall).toBeCloseTo(1 / 3, 12);
  });
});

describe('labelledSeries', () => {
  it('is the same for a seed, and its incidents fall in the scored rows, apart from each other', () => {
    for (const shape of SHAPES) {
      const first = labelledSeries(shape, 42);
      expect(labelledSeries(shape, 42)).toEqual(first);
      const scoredFrom = first.rows[first.trainRows]!.start;
      const last = first.rows[first.rows.length - 1]!.start;
      expect(first.incidents).toHaveLength(shape.incidents.length);
      for (const [i, incident] of first.incidents.entries()) {
        expect(incident.start).toBeGreaterThanOrEqual(scoredFrom);
        expect(incident.end).toBeLessThanOrEqual(last);
        if (i > 0) expect(incident.start).toBeGreaterThan(first.incidents[i - 1]!.end);
      }
    }
  });

  it('puts the incidents into the counts: a silence is all zeros, a spike well above the hours around it', () => {
    const silence = labelledSeries(SHAPES.find((shape) => shape.name === 'silence')!, 3);
    for (const incident of silence.incidents) {
      const inside = silence.rows.filter((row) => row.start >= incident.start && row.start < incident.end);
      expect(inside.length).toBeGreaterThan(0);
      expect(inside.every((row) => row.value === 0)).toBe(true);
    }
    const spike = labelledSeries(SHAPES.find((shape) => shape.name === 'spike')!, 3);
    const mean = (rows: readonly SeriesRow[]) => rows.reduce((sum, row) => sum + row.value, 0) / rows.length;
    for (const incident of spike.incidents) {
      const inside = spike.rows.filter((row) => row.start >= incident.start && row.start < incident.end);
      const before = spike.rows.filter((row) => row.start >= incident.start - 3_600_000 && row.start < incident.start);
      expect(mean(inside)).toBeGreaterThan(1.4 * mean(before));
    }
  });
});
