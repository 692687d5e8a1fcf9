/**
 * The novelty decision of vectorize (src/sinks/pattern-vectors.ts), free of
 * I/O so that it can be measured on its own (bench/scenarios/detect-novelty.bench.ts)
 * with the same rules the pipeline applies.
 */

export interface NoveltyContext {
  /** The pattern already has a stored embedding: it was judged when first seen. */
  readonly alreadyEmbedded: boolean;
  /** Event time of the pattern's request, epoch ms. */
  readonly timestamp: number;
  /** Start of the pattern history, epoch ms. */
  readonly historyStart: number;
  /** Every pattern is new to a fresh system: novelty is judged only after this much event time of history. */
  readonly learningPeriodMs: number;
}

/** Whether a pattern is judged for novelty at all: seen for the first time, after the learning period. */
export function judgedForNovelty(context: NoveltyContext): boolean {
  return !context.alreadyEmbedded && context.timestamp >= context.historyStart + context.learningPeriodMs;
}

/**
 * A judged pattern is novel when no other stored pattern is at least `threshold` similar (cosine similarity);
 * `nearestSimilarity` is undefined when the store holds no other pattern.
 */
export function isNovel(nearestSimilarity: number | undefined, threshold: number): boolean {
  return nearestSimilarity === undefined || nearestSimilarity < threshold;
}

/**
 * Similarity thresholds of one embedding space. Cosine similarities of two
 * embedders are not on one scale (a template's nearest template of another
 * system scores 0.25 with the hashing embedder and 0.38 with all-MiniLM-L6-v2,
 * medians on Loghub-2k), so each is chosen for its model, on labelled logs
 * (README.md, "Thresholds per embedding space";
 * bench/scenarios/calibrate-thresholds.bench.ts prints what it would choose).
 */
export interface SpaceThresholds {
  /** A judged pattern with no stored neighbour at least this similar is novel. */
  readonly novelty: number;
  /** "Similar patterns" lists only neighbours at least this similar; -1 lists the nearest whatever their score. */
  readonly similar: number;
  /** The model has thresholds of its own; false: the defaults below, as for a remote endpoint's model. */
  readonly calibrated: boolean;
}

/**
 * The novelty threshold of an embedder without a calibrated one of its own (the
 * hashing embedder and a remote endpoint's model), unless app_config's
 * novelty.similarity_threshold (seeded with this value) says otherwise.
 */
export const DEFAULT_NOVELTY_THRESHOLD = 0.85;

/** The app_config key whose value is the novelty threshold of embedders without a calibrated one. */
export const NOVELTY_CONFIG_KEY = 'novelty.similarity_threshold';

/**
 * Per model name (src/clients/embeddings.ts, src/clients/model-files.ts).
 * `novelty` absent: the model keeps the app_config key / DEFAULT_NOVELTY_THRESHOLD;
 * the hashing embedder does, because its 0.85 is what operators have been
 * tuning the app_config key against.
 */
const CALIBRATED: Readonly<Record<string, { readonly novelty?: number; readonly similar: number }>> = {
  'logflow-local-hash-v1': { similar: 0.41 },
  'all-minilm-l6-v2-q': { novelty: 0.79, similar: 0.56 },
};

export function spaceThresholds(model: string): SpaceThresholds {
  const own = Object.hasOwn(CALIBRATED, model) ? CALIBRATED[model] : undefined;
  return {
    novelty: own?.novelty ?? DEFAULT_NOVELTY_THRESHOLD,
    similar: own?.similar ?? -1,
    calibrated: own !== undefined,
  };
}

/** app_config keys allow lower-case letters, digits, "_" and ".": the model name's other characters become "_". */
export function modelNoveltyConfigKey(model: string): string {
  return `${NOVELTY_CONFIG_KEY}.${model.toLowerCase().replace(/[^a-z0-9]+/g, '_')}`;
}

export interface NoveltyThresholdChoice {
  readonly threshold: number;
  /** Where it came from, for the start log: the option, an app_config key, or the model's default. */
  readonly source: string;
}

/**
 * The novelty threshold vectorize uses with `model`: the explicit option,
 * else app_config's key for that model, else the model's calibrated
 * threshold, else app_config's general key (a value tuned in one space does
 * not carry over to a model calibrated in another), else the default.
 */
export function chooseNoveltyThreshold(
  model: string,
  option: number | undefined,
  configured: ReadonlyMap<string, unknown>,
): NoveltyThresholdChoice {
  if (option !== undefined) return { threshold: option, source: '--novelty-threshold' };
  const modelKey = modelNoveltyConfigKey(model);
  const perModel = configured.get(modelKey);
  if (typeof perModel === 'number') return { threshold: perModel, source: `app_config ${modelKey}` };
  const own = Object.hasOwn(CALIBRATED, model) ? CALIBRATED[model]?.novelty : undefined;
  if (own !== undefined) return { threshold: own, source: `calibrated for ${model}` };
  const general = configured.get(NOVELTY_CONFIG_KEY);
  if (typeof general === 'number') return { threshold: general, source: `app_config ${NOVELTY_CONFIG_KEY}` };
  return { threshold: DEFAULT_NOVELTY_THRESHOLD, source: 'default' };
}
