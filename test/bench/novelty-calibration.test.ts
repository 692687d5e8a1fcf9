/**
 * The support code the thresholds of src/domain/novelty.ts were chosen with
 * (bench/support/novelty-calibration.ts): how cases are labelled and how the
 * threshold is picked from them.
 */
import { describe, expect, it } from 'vitest';
import {
  bestSeparatingThreshold,
  judgeReplay,
  keepOneValue,
  noveltyFigures,
  quantile,
  type JudgedCase,
  type StoredPattern,
} from '../../bench/support/novelty-calibration.ts';

const unit = (...values: number[]): Float32Array => {
  const norm = Math.hypot(...values);
  return Float32Array.from(values, (v) => v / norm);
};

describe('keepOneValue', () => {
  it('gives one placeholder back the value the line has there', () => {
    const template = 'Receiving block <*> src: <*> dest: <*>';
    const line = 'Receiving block blk_42 src: /10.0.0.1:500 dest: /10.0.0.2:50010';
    expect(keepOneValue(template, line, 0)).toBe('Receiving block blk_42 src: <*> dest: <*>');
    expect(keepOneValue(template, line, 2)).toBe('Receiving block <*> src: <*> dest: /10.0.0.2:50010');
    expect(keepOneValue(template, line, 3)).toBeUndefined();
  });

  it('refuses a line the template does not fit, and regex characters in the template are literal', () => {
    expect(keepOneValue('size (<*>) done', 'size (7) done', 0)).toBe('size (7) done');
    expect(keepOneValue('size (<*>) done', 'size 7 done', 0)).toBeUndefined();
  });
});

describe('judgeReplay', () => {
  it('judges each pattern against the earlier ones: a seen event is known, an unseen one new', () => {
    const pattern = (event: string, ...v: number[]): StoredPattern => ({
      dataset: 'd',
      template: `${event}:${v.join(',')}`,
      event,
      vector: unit(...v),
    });
    const cases = judgeReplay([pattern('A', 1, 0), pattern('A', 1, 1), pattern('B', 0, 1)]);
    expect(cases.map((c) => c.kind)).toEqual(['known', 'new']);
    expect(cases[0]!.nearest).toBeCloseTo(Math.SQRT1_2, 6);
    expect(cases[1]!.nearest).toBeCloseTo(Math.SQRT1_2, 6);
    expect(cases[1]!.nearestTemplate).toBe('A:1,1');
  });
});

describe('bestSeparatingThreshold', () => {
  const judged = (kind: 'known' | 'new', nearest: number): JudgedCase => ({
    dataset: 'd',
    kind,
    template: 't',
    nearest,
    nearestTemplate: 'u',
  });

  it('puts the threshold in the middle of the gap between the kinds when they separate', () => {
    const cases = [judged('new', 0.3), judged('new', 0.5), judged('known', 0.9), judged('known', 0.95)];
    expect(bestSeparatingThreshold(cases)).toBe(0.7);
    expect(noveltyFigures(cases, 0.7)).toEqual({ threshold: 0.7, newCases: 2, found: 2, knownCases: 2, falseNovel: 0 });
  });

  it('trades found against false when they overlap, and needs both kinds', () => {
    const cases = [
      judged('new', 0.2),
      judged('new', 0.4),
      judged('new', 0.85),
      judged('known', 0.6),
      judged('known', 0.9),
      judged('known', 0.95),
    ];
    // Between 0.4 and 0.6: 2 of 3 found, none false (J 0.67); between 0.85 and 0.9, 3 found with 1 false (J 0.67
    // too): on a tie the lower threshold, which raises fewer alerts.
    expect(bestSeparatingThreshold(cases)).toBe(0.5);
    expect(() => bestSeparatingThreshold([judged('new', 0.2)])).toThrow(/both/);
  });

  it('quantile interpolates between order statistics', () => {
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantile([5], 0.95)).toBe(5);
  });
});
