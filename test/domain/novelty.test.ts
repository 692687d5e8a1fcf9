/** The novelty decision vectorize applies (src/domain/novelty.ts), at its boundaries. */
import { describe, expect, it } from 'vitest';
import { isNovel, judgedForNovelty } from '../../src/domain/novelty.ts';

describe('judgedForNovelty', () => {
  const context = { alreadyEmbedded: false, timestamp: 1_000, historyStart: 0, learningPeriodMs: 1_000 };

  it('judges a pattern first seen from the end of the learning period on', () => {
    expect(judgedForNovelty(context)).toBe(true);
    expect(judgedForNovelty({ ...context, timestamp: 999 })).toBe(false);
  });

  it('does not judge a pattern that already has an embedding', () => {
    expect(judgedForNovelty({ ...context, alreadyEmbedded: true, timestamp: 50_000 })).toBe(false);
  });
});

describe('isNovel', () => {
  it('is novel below the threshold or with no neighbour, not at or above it', () => {
    expect(isNovel(undefined, 0.85)).toBe(true);
    expect(isNovel(0.849, 0.85)).toBe(true);
    expect(isNovel(0.85, 0.85)).toBe(false);
    expect(isNovel(0.99, 0.85)).toBe(false);
  });
});
