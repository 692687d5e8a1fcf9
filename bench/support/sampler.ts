/** Per-interval samples of the process (RSS, CPU) and of whatever counters a benchmark watches, and quantiles. */
import type { EngineMetrics } from '../../src/core/metrics.ts';

export interface Sample {
  /** Seconds since the sampler started. */
  readonly t: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  /** CPU seconds (user + system) of the whole process since the sampler started, every thread included (chdb's too). */
  readonly cpuSeconds: number;
  readonly values: Readonly<Record<string, number>>;
}

export class Sampler {
  readonly samples: Sample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly started = performance.now();
  private readonly cpuStart = process.cpuUsage();
  private peak = 0;
  private pending = false;

  /** `read` gives the watched values (e.g. records stored so far); it may be async. */
  constructor(
    private readonly intervalMs: number,
    private readonly read: () => Record<string, number> | Promise<Record<string, number>> = () => ({}),
  ) {}

  start(): this {
    this.timer = setInterval(() => void this.take(), this.intervalMs);
    void this.take();
    return this;
  }

  async take(): Promise<Sample | undefined> {
    if (this.pending) return undefined;
    this.pending = true;
    try {
      const memory = process.memoryUsage();
      this.peak = Math.max(this.peak, memory.rss);
      const cpu = process.cpuUsage(this.cpuStart);
      const values = await this.read();
      const sample = {
        t: (performance.now() - this.started) / 1000,
        rssBytes: memory.rss,
        heapUsedBytes: memory.heapUsed,
        cpuSeconds: (cpu.user + cpu.system) / 1e6,
        values,
      };
      this.samples.push(sample);
      return sample;
    } finally {
      this.pending = false;
    }
  }

  get peakRssBytes(): number {
    return this.peak;
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.take();
  }

  /** Rate of a watched counter between consecutive samples, as [t, per second] points. */
  rate(name: string): Array<[number, number]> {
    const points: Array<[number, number]> = [];
    for (let i = 1; i < this.samples.length; i++) {
      const a = this.samples[i - 1]!;
      const b = this.samples[i]!;
      const dt = b.t - a.t;
      if (dt <= 0) continue;
      points.push([b.t, ((b.values[name] ?? 0) - (a.values[name] ?? 0)) / dt]);
    }
    return points;
  }

  series(pick: (sample: Sample) => number): Array<[number, number]> {
    return this.samples.map((s) => [s.t, pick(s)]);
  }
}

/** Nearest-rank quantile of a histogram given as (value, count) pairs; q in [0, 1]. */
export function weightedQuantile(pairs: ReadonlyArray<readonly [number, number]>, q: number): number {
  const sorted = [...pairs].filter(([, c]) => c > 0).sort((a, b) => a[0] - b[0]);
  const total = sorted.reduce((sum, [, c]) => sum + c, 0);
  if (total === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (const [value, count] of sorted) {
    seen += count;
    if (seen >= rank) return value;
  }
  return sorted[sorted.length - 1]![0];
}

export function quantile(values: readonly number[], q: number): number {
  return weightedQuantile(
    values.map((v) => [v, 1] as const),
    q,
  );
}

export const MIB = 1024 * 1024;

/** A prom-client counter's value summed over the series matching `labels` (the pipelines' own progress counters). */
export async function counterTotal(
  metrics: EngineMetrics,
  which: 'recordsIn' | 'recordsOut' | 'checkpointBytes' | 'lateEvents',
  labels: Record<string, string>,
): Promise<number> {
  const { values } = await metrics[which].get();
  let total = 0;
  for (const v of values) {
    const have = v.labels as Readonly<Record<string, string | number | undefined>>;
    if (Object.entries(labels).every(([k, want]) => have[k] === want)) total += v.value;
  }
  return total;
}

/** RSS peak at 100 ms resolution over a span. */
export function rssPeakTracker(): { stop(): number; atPeak(): NodeJS.MemoryUsage } {
  let atPeak = process.memoryUsage();
  const sample = () => {
    const rss = process.memoryUsage.rss();
    // The breakdown only when the peak moves: memoryUsage() walks the heap's spaces.
    if (rss > atPeak.rss) atPeak = process.memoryUsage();
  };
  const timer = setInterval(sample, 100);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return atPeak.rss;
    },
    /** Where the peak's memory was: the V8 heap, Buffers and other array buffers, and the rest (native code and its allocations). */
    atPeak: () => atPeak,
  };
}
