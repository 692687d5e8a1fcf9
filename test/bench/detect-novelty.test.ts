/**
 * The support code of bench/scenarios/detect-novelty.bench.ts that its figures
 * rest on: the seeded stream and the tally of verdicts.
 */
import { describe, expect, it } from 'vitest';
import {
  NEW_TEMPLATES,
  noveltyStream,
  RECURRING_TEMPLATES,
  tally,
  type JudgedPattern,
} from '../../bench/scenarios/detect-novelty.bench.ts';

describe('noveltyStream', () => {
  const from = Date.UTC(2026, 0, 5);
  const stream = noveltyStream(7, 3_000, from);

  it('is the same for a seed', () => {
    expect(noveltyStream(7, 3_000, from)).toEqual(stream);
    expect(noveltyStream(8, 3_000, from)).not.toEqual(stream);
  });

  it('sends every recurring template in the learning period and every new template only after it', () => {
    const learningEnd = from + 15 * 60_000;
    const early = new Set(stream.filter((m) => m.timestamp < learningEnd).map((m) => m.template));
    for (let i = 0; i < RECURRING_TEMPLATES.length; i++) expect(early.has(i)).toBe(true);
    expect(stream.filter((m) => m.isNewTemplate).every((m) => m.timestamp >= 2 * learningEnd - from)).toBe(true);
    const arrived = new Set(stream.filter((m) => m.isNewTemplate).map((m) => m.template));
    expect(arrived.size).toBe(NEW_TEMPLATES.length);
  });

  it('fills the slots with values, so no message keeps a {name}', () => {
    expect(stream.some((m) => /\{\w+\}/.test(m.message))).toBe(false);
    expect(new Set(stream.filter((m) => m.template === 0).map((m) => m.message)).size).toBeGreaterThan(1);
  });

  it('refuses a stream too short for the learning period', () => {
    expect(() => noveltyStream(1, 100, from)).toThrow(/--messages/);
  });
});

describe('tally', () => {
  const pattern = (firstOfNewTemplate: boolean, nearest: number | undefined, template = 0): JudgedPattern => ({
    template,
    normalized: 't',
    firstOfNewTemplate,
    nearest,
    nearestTemplate: undefined,
  });

  it('finds a new template judged novel and counts a recurring one judged novel as false', () => {
    const judged = [
      pattern(true, 0.5),
      pattern(true, 0.9),
      pattern(true, undefined),
      pattern(false, 0.8, RECURRING_TEMPLATES.length),
      pattern(false, 0.95),
    ];
    expect(tally(judged, 0.85)).toMatchObject({
      newTemplates: 3,
      found: 2,
      falseNovel: 1,
      falseOfGeneratorTemplates: 0,
      judgedRecurring: 2,
    });
    expect(tally(judged, 0.96)).toMatchObject({ found: 3, falseNovel: 2, falseOfGeneratorTemplates: 1 });
    expect(tally(judged, 0.5)).toMatchObject({ found: 1, falseNovel: 0 });
  });
});
