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
  run(ctx: BenchContext): Promise<readonly BenchRow[]>;
}
