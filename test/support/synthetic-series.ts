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

/** Where a series runs: `windows` windows of `windowMs` from `from`. */
export interface SeriesSpan {
  readonly from: number;
  readonly windows: number;
  readonly windowMs: number;
}

/** Poisson counts whose mean `meanAt` gives for each window, drawing any randomness it needs from the seed's stream. */
function poissonSeries(
  seed: number,
  span: SeriesSpan,
  meanAt: (random: () => number, start: number) => number,
): SeriesPoint[] {
  const random = seededRandom(seed);
  const points: SeriesPoint[] = [];
  for (let i = 0; i < span.windows; i++) {
    const start = span.from + i * span.windowMs;
    points.push({ start, count: poisson(random, meanAt(random, start)) });
  }
  return points;
}

/** A calm series: Poisson counts around `level` with a mild daily cycle. */
export function calmSeries(
  seed: number,
  from: number,
  windows: number,
  windowMs: number,
  level: number,
): SeriesPoint[] {
  return poissonSeries(
    seed,
    { from, windows, windowMs },
    (_random, start) => level * (1 + 0.3 * Math.sin((2 * Math.PI * new Date(start).getUTCHours()) / 24)),
  );
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
  let burstLeft = 0;
  let factor = 1;
  return poissonSeries(seed, { from, windows, windowMs }, (random) => {
    if (burstLeft === 0 && random() < 0.02) {
      burstLeft = 1 + Math.floor(-Math.log(1 - random()) * 3);
      factor = 1 + Math.exp(normal(random) * 1.1);
    }
    if (burstLeft === 0) return level;
    burstLeft--;
    return level * factor;
  });
}

/** `YYYY-MM-DD HH:MM:SS`, one of the two timestamp forms the command reads. */
export const plainTimestamp = (ms: number): string => new Date(ms).toISOString().slice(0, 19).replace('T', ' ');

/**
 * Two weeks of a calm 5-minute series around 60, then a day with a drop to a third of normal (from 06:00 for an
 * hour) and a rise to 1.8 times normal (from 15:00 for half an hour).
 */
export function labelledSeriesCsv(): { csv: string; dropAt: string; spikeAt: string } {
  const interval = 5 * 60_000;
  const points = calmSeries(7, Date.UTC(2026, 0, 5), 15 * 288, interval, 60);
  const day = 14 * 288;
  const dropFrom = day + 72;
  const spikeFrom = day + 180;
  const rows = points.map((point, i) => {
    const count =
      i >= dropFrom && i < dropFrom + 12
        ? Math.round(point.count / 3)
        : i >= spikeFrom && i < spikeFrom + 6
          ? Math.round(point.count * 1.8)
          : point.count;
    return `${plainTimestamp(point.start)},${count}`;
  });
  return {
    csv: `timestamp,value\n${rows.join('\n')}\n`,
    dropAt: plainTimestamp(points[dropFrom]!.start),
    spikeAt: plainTimestamp(points[spikeFrom]!.start),
  };
}
