/** The novelty decision vectorize applies (src/domain/novelty.ts), at its boundaries, and its thresholds per embedder. */
import { describe, expect, it } from 'vitest';
import { LOCAL_EMBEDDING_MODEL } from '../../src/clients/embeddings.ts';
import { MODEL_NAME } from '../../src/clients/model-files.ts';
import {
  chooseNoveltyThreshold,
  DEFAULT_NOVELTY_THRESHOLD,
  isNovel,
  judgedForNovelty,
  modelNoveltyConfigKey,
  NOVELTY_CONFIG_KEY,
  spaceThresholds,
} from '../../src/domain/novelty.ts';

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

describe('thresholds per embedding space', () => {
  const none = new Map<string, unknown>();

  it('names the embedders by the model names they store with their vectors', () => {
    expect(spaceThresholds(MODEL_NAME).calibrated).toBe(true);
    expect(spaceThresholds(LOCAL_EMBEDDING_MODEL).calibrated).toBe(true);
    expect(spaceThresholds('text-embedding-3-small')).toEqual({
      novelty: DEFAULT_NOVELTY_THRESHOLD,
      similar: -1,
      calibrated: false,
    });
  });

  it('lists as similar no less than what stops a pattern from being novel', () => {
    for (const model of [MODEL_NAME, LOCAL_EMBEDDING_MODEL, 'remote']) {
      const t = spaceThresholds(model);
      expect(t.similar, model).toBeLessThanOrEqual(t.novelty);
    }
  });

  it('takes the option first, then the model key, then the calibrated threshold, then the general key', () => {
    const general = new Map<string, unknown>([[NOVELTY_CONFIG_KEY, 0.9]]);
    const both = new Map<string, unknown>([...general, [modelNoveltyConfigKey(MODEL_NAME), 0.7]]);
    expect(chooseNoveltyThreshold(MODEL_NAME, 0.5, both)).toEqual({ threshold: 0.5, source: '--novelty-threshold' });
    expect(chooseNoveltyThreshold(MODEL_NAME, undefined, both)).toEqual({
      threshold: 0.7,
      source: 'app_config novelty.similarity_threshold.all_minilm_l6_v2_q',
    });
    // The general key holds a value of the hashing embedder's space: it does not move a calibrated model's threshold.
    expect(chooseNoveltyThreshold(MODEL_NAME, undefined, general).threshold).toBe(spaceThresholds(MODEL_NAME).novelty);
    expect(spaceThresholds(MODEL_NAME).novelty).not.toBe(DEFAULT_NOVELTY_THRESHOLD);
    expect(chooseNoveltyThreshold(LOCAL_EMBEDDING_MODEL, undefined, general).threshold).toBe(0.9);
    expect(chooseNoveltyThreshold('text-embedding-3-small', undefined, general).threshold).toBe(0.9);
    expect(chooseNoveltyThreshold(LOCAL_EMBEDDING_MODEL, undefined, none)).toEqual({
      threshold: DEFAULT_NOVELTY_THRESHOLD,
      source: 'default',
    });
    expect(modelNoveltyConfigKey('BAAI/bge-small-en-v1.5')).toBe('novelty.similarity_threshold.baai_bge_small_en_v1_5');
  });
});
