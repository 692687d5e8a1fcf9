/**
 * Seeded synthetic count series for detector tests: no public labelled data is
 * used or tuned on. Deterministic for a seed (mulberry32).
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Poisson(lambda) by multiplying uniforms (Knuth), in chunks of 30 so large means do not underflow. */
export function poisson(random: () => number, lambda: number): number {
  let count = 0;
  let rest = lambda;
  while (rest > 0) {
    const step = Math.min(rest, 30);
    rest -= step;
    const limit = Math.exp(-step);
    let product = random();
    while (product > limit) {
      count++;
      product *= random();
    }
  }
  return count;
}

/** A standard normal draw (Box-Muller). */
export function normal(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

export interface SeriesPoint {
  readonly start: number;
  readonly count: number;
}

/** A calm series: Poisson counts around `level` with a mild daily cycle. */
export function calmSeries(
  seed: number,
  from: number,
  windows: number,
  windowMs: number,
  level: number,
): SeriesPoint[] {
  const random = seededRandom(seed);
  const points: SeriesPoint[] = [];
  for (let i = 0; i < windows; i++) {
    const start = from + i * windowMs;
    const hour = new Date(start).getUTCHours();
    const daily = 1 + 0.3 * Math.sin((2 * Math.PI * hour) / 24);
    points.push({ start, count: poisson(random, level * daily) });
  }
  return points;
}

/**
 * A bursty, heavy-tailed series: Poisson counts around `level`, and bursts that start in about one window in
 * 50, last a few windows and multiply the level by a log-normal factor (median 2, heavy right tail).
 */
export function burstySeries(
  seed: number,
  from: number,
  windows: number,
  windowMs: number,
  level: number,
): SeriesPoint[] {
  const random = seededRandom(seed);
  const points: SeriesPoint[] = [];
  let burstLeft = 0;
  let factor = 1;
  for (let i = 0; i < windows; i++) {
    if (burstLeft === 0 && random() < 0.02) {
      burstLeft = 1 + Math.floor(-Math.log(1 - random()) * 3);
      factor = 1 + Math.exp(normal(random) * 1.1);
    }
    const mean = burstLeft > 0 ? level * factor : level;
    if (burstLeft > 0) burstLeft--;
    points.push({ start: from + i * windowMs, count: poisson(random, mean) });
  }
  return points;
}
