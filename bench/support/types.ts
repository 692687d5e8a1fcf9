/** The contract every bench/<name>.bench.ts default-exports; bench/run.ts discovers and runs them. */

export interface BenchRow {
  /** What was measured, e.g. "normalize HDFS" or "raw kafkajs consumer". */
  readonly scenario: string;
  /** e.g. "lines/s", "GA", "p99 ms". */
  readonly metric: string;
  readonly value: number;
  readonly unit: string;
  /** The same metric for the baseline measured in the same run; the runner prints value/baseline. */
  readonly baseline?: number;
  /** The target the issue sets, printed beside the figure (never asserted). */
  readonly target?: string;
}

/** One line of a plot: [seconds since the phase started, value] pairs. */
export interface BenchSeries {
  /** Legend label, e.g. "ingest pipeline". */
  readonly name: string;
  /** Series with the same panel share one chart, e.g. "throughput" and "RSS". */
  readonly panel: string;
  /** Axis unit of the panel, e.g. "logs/s" or "MiB". */
  readonly unit: string;
  readonly points: ReadonlyArray<readonly [number, number]>;
}

/** What a benchmark may return instead of bare rows: time series are plotted (SVG) beside the JSON. */
export interface BenchOutput {
  readonly rows: readonly BenchRow[];
  readonly series?: readonly BenchSeries[];
  /** How the figures were obtained, printed under the table and stored in the JSON. */
  readonly notes?: readonly string[];
}

export interface BenchContext {
  /** Arguments after the benchmark name, e.g. `npm run bench -- normalize --lines 100000`. */
  readonly args: readonly string[];
  /** Drives the runner's progress bar (one bar per call of `phase`). */
  phase(label: string, total: number): { tick(done: number): void; done(): void };
  log(message: string): void;
}

export interface Benchmark {
  readonly name: string;
  readonly description: string;
  run(ctx: BenchContext): Promise<readonly BenchRow[] | BenchOutput>;
}

export function toOutput(result: readonly BenchRow[] | BenchOutput): BenchOutput {
  return Array.isArray(result) ? { rows: result as readonly BenchRow[] } : (result as BenchOutput);
}
