/**
 * Benchmark runner: `npx tsx bench/run.ts <name|all> [args...]`, `--list`.
 *
 * Discovers bench/scenarios/<name>.bench.ts files (each default-exports a Benchmark),
 * prints the machine first, a progress bar per phase while it runs (plain
 * lines when stdout is not a terminal), then a Markdown table, and writes
 * the result as JSON to bench/results/<name>-<timestamp>.json and
 * bench/results/<name>-latest.json.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import cliProgress from 'cli-progress';
import { markdownTable } from './support/format.ts';
import { describeMachine, machineInfo, measureReferenceSpeed } from './support/machine.ts';
import type { MachineInfo } from './support/machine.ts';
import { renderSvg } from './support/plot.ts';
import { describeServices, serviceVersions, type ServiceVersions } from './support/services.ts';
import { toOutput, type Benchmark, type BenchContext, type BenchRow, type BenchSeries } from './support/types.ts';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const RESULTS_DIR = join(BENCH_DIR, 'results');
const SUFFIX = '.bench.ts';

function discoverBenchmarks(dir: string = join(BENCH_DIR, 'scenarios')): Map<string, string> {
  const found = new Map<string, string>();
  for (const file of readdirSync(dir).sort()) {
    if (file.endsWith(SUFFIX)) found.set(file.slice(0, -SUFFIX.length), join(dir, file));
  }
  return found;
}

async function loadBenchmark(name: string, path: string): Promise<Benchmark> {
  const module = (await import(pathToFileURL(path).href)) as { default?: unknown };
  const candidate = module.default as Partial<Benchmark> | undefined;
  if (candidate === undefined || typeof candidate.run !== 'function' || typeof candidate.name !== 'string') {
    throw new Error(`${path} does not default-export a Benchmark (name, description, run)`);
  }
  if (candidate.name !== name)
    throw new Error(`${path} exports a benchmark named "${candidate.name}"; the file name says "${name}"`);
  return candidate as Benchmark;
}

// ---------------------------------------------------------------------------
// Output.

/** Progress bars on a terminal; a start and an end line per phase otherwise (CI logs, pipes). */
function createReporter(interactive: boolean): {
  context: (args: readonly string[]) => BenchContext;
  stop: () => void;
} {
  let bars: cliProgress.MultiBar | null = null;
  const barsOrNew = (): cliProgress.MultiBar => {
    bars ??= new cliProgress.MultiBar(
      {
        format: '{label} |{bar}| {percentage}% {value}/{total} {duration_formatted}',
        hideCursor: true,
        clearOnComplete: false,
        autopadding: true,
      },
      cliProgress.Presets.shades_classic,
    );
    return bars;
  };
  const log = (message: string): void => {
    if (bars !== null) bars.log(`${message}\n`);
    else console.log(message);
  };
  const phase = (label: string, total: number): { tick(done: number): void; done(): void } => {
    const safeTotal = Math.max(1, Math.floor(total));
    const started = performance.now();
    if (!interactive) {
      console.log(`[${label}] started (${safeTotal} steps)`);
      let finished = false;
      return {
        tick() {},
        done() {
          if (finished) return;
          finished = true;
          console.log(`[${label}] done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
        },
      };
    }
    const bar = barsOrNew().create(safeTotal, 0, { label });
    let finished = false;
    return {
      tick(done: number) {
        if (!finished) bar.update(Math.min(safeTotal, Math.max(0, done)), { label });
      },
      done() {
        if (finished) return;
        finished = true;
        bar.update(safeTotal, { label });
        bar.stop();
      },
    };
  };
  return {
    context: (args) => ({ args, phase, log }),
    stop: () => {
      if (bars !== null) bars.stop();
      bars = null;
    },
  };
}

interface BenchResultFile {
  readonly name: string;
  readonly description: string;
  readonly timestamp: string;
  readonly args: readonly string[];
  readonly machine: MachineInfo;
  readonly services: ServiceVersions;
  readonly rows: readonly BenchRow[];
  readonly notes: readonly string[];
  readonly series: readonly BenchSeries[];
}

/** The machine's reference speed around one benchmark, for its notes. */
export function describeSpeedChange(before: number, after: number): string {
  const change = before > 0 ? Math.round(((after - before) / before) * 100) : 0;
  const fmt = (n: number) => n.toLocaleString('en-US');
  return `reference speed before / after this benchmark: ${fmt(before)} / ${fmt(after)} JSON round trips/s (${change === 0 ? 'unchanged' : `${change > 0 ? '+' : ''}${change}%`})`;
}

/** JSON (timestamped and -latest), and an SVG plot beside it when the benchmark recorded time series. */
export function writeResult(result: BenchResultFile, dir: string = RESULTS_DIR): string[] {
  mkdirSync(dir, { recursive: true });
  const stem = `${result.name}-${result.timestamp.replace(/:/g, '-')}`;
  const json = `${JSON.stringify(result, null, 2)}\n`;
  const files = [join(dir, `${stem}.json`), join(dir, `${result.name}-latest.json`)];
  for (const file of files) writeFileSync(file, json);
  if (result.series.length > 0) {
    const svg = renderSvg(`${result.name} (${result.timestamp})`, result.series);
    for (const file of [join(dir, `${stem}.svg`), join(dir, `${result.name}-latest.svg`)]) {
      writeFileSync(file, svg);
      files.push(file);
    }
  }
  return files;
}

// ---------------------------------------------------------------------------

async function listBenchmarks(found: Map<string, string>): Promise<void> {
  for (const [name, path] of found) {
    try {
      const benchmark = await loadBenchmark(name, path);
      console.log(`${name.padEnd(20)} ${benchmark.description}`);
    } catch (error) {
      console.log(`${name.padEnd(20)} (cannot load: ${error instanceof Error ? error.message : String(error)})`);
    }
  }
}

async function main(argv: readonly string[]): Promise<number> {
  const found = discoverBenchmarks();
  const [name, ...args] = argv;
  const valid = [...found.keys()];
  if (name === undefined || name === '--help' || name === '-h') {
    console.error(
      `usage: npx tsx bench/run.ts <name|all> [args...] | --list\nbenchmarks: ${valid.join(', ') || '(none)'}`,
    );
    return 2;
  }
  if (name === '--list') {
    await listBenchmarks(found);
    return 0;
  }
  if (name !== 'all' && !found.has(name)) {
    console.error(`unknown benchmark "${name}"; valid names: ${[...valid, 'all'].join(', ')}`);
    return 2;
  }

  const machine = machineInfo(BENCH_DIR);
  const services = await serviceVersions();
  for (const line of [...describeMachine(machine), ...describeServices(services)]) console.log(line);
  console.log('');

  const names = name === 'all' ? valid : [name];
  const reporter = createReporter(process.stdout.isTTY === true);
  let failed = false;
  let referenceSpeed = machine.referenceSpeed;
  for (const benchName of names) {
    const timestamp = new Date().toISOString();
    try {
      const benchmark = await loadBenchmark(benchName, found.get(benchName) as string);
      console.log(`## ${benchmark.name}: ${benchmark.description}`);
      const speedBefore = referenceSpeed;
      const ran = toOutput(await benchmark.run(reporter.context(args)));
      reporter.stop();
      // Measured again after: these VMs have changed speed by a third within minutes, which the figures above would
      // silently carry.
      // It is also the next benchmark's "before": only result files are written and the next module loaded in between.
      referenceSpeed = measureReferenceSpeed();
      const output = { ...ran, notes: [...(ran.notes ?? []), describeSpeedChange(speedBefore, referenceSpeed)] };
      console.log('');
      console.log(markdownTable(output.rows));
      console.log('');
      for (const note of output.notes ?? []) console.log(`- ${note}`);
      if ((output.notes ?? []).length > 0) console.log('');
      const files = writeResult({
        name: benchmark.name,
        description: benchmark.description,
        timestamp,
        args,
        machine,
        services,
        rows: output.rows,
        notes: output.notes ?? [],
        series: output.series ?? [],
      });
      console.log(`results: ${files.join(', ')}`);
      console.log('');
    } catch (error) {
      reporter.stop();
      failed = true;
      referenceSpeed = measureReferenceSpeed();
      console.error(
        `benchmark ${benchName} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
      );
    }
  }
  // Imported here, after measuring: its module graph (databases, clients) slowed CPU-only benchmarks such as normalize
  // about 2x when loaded up front.
  await (await import('./support/stack.ts')).closeBenchStack();
  return failed ? 1 : 0;
}

// Imported by tests for writeResult: only run when started as the entry point.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = await main(process.argv.slice(2));
  // kafkajs and chdb can keep handles open after close; the results are written, so leave.
  process.exit();
}
