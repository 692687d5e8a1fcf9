/**
 * Embedded: `npm start` as a user runs it (generate, ingest, vectorize and
 * detect in one process on chdb, PGlite and in-process topics), at a fixed
 * rate (`--rate`, default 30,000 logs/s) for `--duration` (default 30s) after
 * a `--history` backfill (default 5m of event time), in a fresh data
 * directory. Read from outside the process: its live view lines (generated,
 * stored, ingest lag, every 5 s) and /proc every 250 ms (resident memory,
 * the kernel's high-water mark VmHWM, and CPU time of the whole process,
 * chdb's threads included).
 *
 * The baseline is the rate asked for (the peak RSS has only its target): the
 * live rates are the generator's and ingest's counts between the first
 * live-view line and the last one before generation finished, over their
 * time apart. The generator runs on its own thread, so it can keep the rate
 * while ingest falls behind: the ingest rate and the lag say whether the
 * process kept up (generator and pipelines share the cores).
 *
 * Args: --rate N, --duration 30s, --history 5m.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { durationArg, numberArg } from '../support/args.ts';
import { MIB } from '../support/sampler.ts';
import type { Benchmark, BenchContext, BenchOutput } from '../support/types.ts';

const RSS_LIMIT_MIB = 1_536;

interface LiveLine {
  readonly seconds: number;
  readonly generated: number;
  readonly stored: number;
  readonly lag: number;
}

/** `[logflow] 29s  generated 843691 (28815/s)  stored 829031  ingest lag 11403 ...` */
export function parseLiveLine(line: string): LiveLine | undefined {
  const match = /^\[logflow\] (\d+)s\s+generated (\d+) \(\d+\/s\)\s+stored (\d+)\s+ingest lag (\d+)/.exec(line);
  if (match === null) return undefined;
  return { seconds: Number(match[1]), generated: Number(match[2]), stored: Number(match[3]), lag: Number(match[4]) };
}

async function children(pid: number): Promise<number[]> {
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => []);
  const found: number[] = [];
  for (const task of tasks) {
    const text = await readFile(`/proc/${pid}/task/${task}/children`, 'utf8').catch(() => '');
    for (const child of text.trim().split(/\s+/)) if (child !== '') found.push(Number(child));
  }
  return found;
}

async function descendants(root: number): Promise<number[]> {
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    found.push(pid);
    queue.push(...(await children(pid)));
  }
  return found;
}

async function statusKb(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number | undefined> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined);
  const match = text === undefined ? null : new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return match === null ? undefined : Number(match[1]);
}

/** utime + stime in seconds from the text of a /proc `stat` file (a process's or a thread's). */
function statCpuSeconds(text: string): number {
  // Fields after the command (which may hold spaces): utime and stime are the 14th and 15th, in clock ticks (100 a
  // second on Linux).
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function cpuSeconds(pid: number): Promise<number | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return text === undefined ? undefined : statCpuSeconds(text);
}

/** Where a thread's CPU is counted (threadGroup). */
type ThreadGroup = 'main' | 'engine' | 'other';

/**
 * Node names its threads after the process (`node`; on newer versions `libuv-worker`, `V8 DefaultWorke` and the
 * like); chdb names its own after their ClickHouse pools (ThreadPool, MergeMutate, Segmentator, ...).
 */
export function threadGroup(pid: number, tid: number, name: string): ThreadGroup {
  if (tid === pid) return 'main';
  return /^(node|libuv|V8 |DelayedTask|SignalInspector|inspector)/.test(name) ? 'other' : 'engine';
}

/** CPU seconds of each live thread of `pid`, with its group; threads that have exited are not listed. */
export async function threadCpu(pid: number): Promise<Map<number, { group: ThreadGroup; seconds: number }>> {
  const found = new Map<number, { group: ThreadGroup; seconds: number }>();
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  for (const task of tasks) {
    const text = await readFile(`/proc/${pid}/task/${task}/stat`, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    const name = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
    const tid = Number(task);
    found.set(tid, { group: threadGroup(pid, tid, name), seconds: statCpuSeconds(text) });
  }
  return found;
}

const benchmark: Benchmark = {
  name: 'embedded',
  description:
    '`npm start` at a fixed rate (default 30,000 logs/s, 30 s): live rate against the rate asked for, ingest lag, peak RSS',
  async run(ctx: BenchContext): Promise<BenchOutput> {
    const rate = numberArg(ctx.args, 'rate', 30_000);
    const durationMs = durationArg(ctx.args, 'duration', 30_000);
    const historyMs = durationArg(ctx.args, 'history', 300_000);
    const dataDir = await mkdtemp(path.join(tmpdir(), 'logflow-bench-embedded-'));
    const args = [
      'start',
      '--',
      '--duration',
      `${durationMs / 1000}s`,
      '--rate',
      String(rate),
      '--history',
      `${historyMs / 1000}s`,
      '--api-port',
      '0',
      '--data-dir',
      dataDir,
    ];
    const child = spawn('npm', args, {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LOGFLOW_METRICS_PORT: '0' },
    });
    const lines: LiveLine[] = [];
    let output = '';
    let summary = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (output += chunk));
    let pending = '';
    child.stdout.on('data', (chunk: string) => {
      output += chunk;
      pending += chunk;
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      for (const line of parts) {
        const live = parseLiveLine(line);
        if (live !== undefined) {
          lines.push(live);
          ctx.log(`${live.seconds}s: generated ${live.generated}, stored ${live.stored}, ingest lag ${live.lag}`);
        } else if (line.startsWith('stored ')) {
          summary = line;
        }
      }
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const rss: Array<readonly [number, number]> = [];
    const started = Date.now();
    let peakKb = 0;
    let cpu = 0;
    /**
     * Each thread's last reading of the engine process (the one holding the most memory, as for the whole-process
     * figures): a thread that exits before the end keeps what it had used by then.
     */
    let engine = 0;
    let engineKb = 0;
    let threads = new Map<number, { group: ThreadGroup; seconds: number }>();
    let running = true;
    void exited.then(() => (running = false));
    while (running) {
      // npm, its shell, tsx's launcher and the engine: the engine is the one holding the memory.
      let largest = { pid: 0, kb: 0 };
      for (const pid of await descendants(child.pid!)) {
        const kb = (await statusKb(pid, 'VmRSS')) ?? 0;
        if (kb > largest.kb) largest = { pid, kb };
      }
      if (largest.pid !== 0) {
        rss.push([(Date.now() - started) / 1000, (largest.kb * 1024) / MIB]);
        peakKb = Math.max(peakKb, (await statusKb(largest.pid, 'VmHWM')) ?? 0);
        cpu = Math.max(cpu, (await cpuSeconds(largest.pid)) ?? 0);
        // Only a process bigger than the engine ever was takes its place: once the engine has exited, npm is the
        // largest left, and its threads would replace the engine's readings.
        if (largest.pid !== engine && largest.kb > engineKb) {
          engine = largest.pid;
          threads = new Map();
        }
        if (largest.pid === engine) {
          engineKb = Math.max(engineKb, largest.kb);
          for (const [tid, reading] of await threadCpu(engine)) threads.set(tid, reading);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const code = await exited;
    await rm(dataDir, { recursive: true, force: true });
    if (code !== 0) throw new Error(`npm start exited with ${String(code)}:\n${output.slice(-4_000)}`);
    if (lines.length < 2)
      throw new Error(`fewer than two live-view lines; is the run long enough?\n${output.slice(-4_000)}`);
    const last = lines.at(-1)!;
    // Lines from after the generator finished would count its idle time: up to the last one still short of the total.
    const generating = lines.filter((l) => l.generated < last.generated);
    if (generating.length < 2)
      throw new Error(
        `fewer than two live-view lines while generating; is the run long enough?\n${output.slice(-4_000)}`,
      );
    const first = generating[0]!;
    const end = generating.at(-1)!;
    const liveRate = (end.generated - first.generated) / (end.seconds - first.seconds);
    const ingestRate = (end.stored - first.stored) / (end.seconds - first.seconds);
    const stored = Number(/^stored (\d+)/.exec(summary)?.[1] ?? NaN);
    const maxLag = Math.max(...lines.map((l) => l.lag));
    const byGroup: Record<ThreadGroup, number> = { main: 0, engine: 0, other: 0 };
    for (const { group, seconds } of threads.values()) byGroup[group] += seconds;
    const perStoredLog = (seconds: number) => Math.round((seconds / stored) * 1e6 * 10) / 10;
    const groupRows = (
      [
        ['main', 'main thread (pipelines, API, PGlite)'],
        ['engine', "chdb's own threads (inserts' parsing, merges, background)"],
        [
          'other',
          "Node's other threads (generator and model workers, GC helpers, libuv pool where chdb queries start)",
        ],
      ] as const
    ).map(([group, what]) => ({
      scenario: 'npm start, whole process',
      metric: `CPU per stored log: ${what}`,
      value: perStoredLog(byGroup[group]),
      unit: 'CPU µs',
    }));
    return {
      rows: [
        {
          scenario: 'npm start, live generator',
          metric: 'rate',
          value: Math.round(liveRate),
          unit: 'logs/s',
          baseline: rate,
          target: `>= ${rate.toLocaleString('en-US')} logs/s (1.00x)`,
        },
        {
          scenario: 'npm start, ingest',
          metric: 'rate (stored)',
          value: Math.round(ingestRate),
          unit: 'logs/s',
          baseline: rate,
          target: `>= ${rate.toLocaleString('en-US')} logs/s (1.00x)`,
        },
        {
          scenario: 'npm start, ingest',
          metric: 'largest lag (live view)',
          value: maxLag,
          unit: 'records',
          target: 'bounded',
        },
        { scenario: 'npm start, ingest', metric: 'lag at the last live view', value: last.lag, unit: 'records' },
        {
          scenario: 'npm start, whole process',
          metric: 'peak RSS (VmHWM)',
          value: Math.round((peakKb * 1024) / MIB),
          unit: 'MiB',
          target: `< ${RSS_LIMIT_MIB} MiB`,
        },
        {
          scenario: 'npm start, whole process',
          metric: 'CPU per stored log',
          value: perStoredLog(cpu),
          unit: 'CPU µs',
        },
        ...groupRows,
      ],
      series: [
        { name: 'npm start', panel: 'RSS', unit: 'MiB', points: rss },
        { name: 'ingest lag', panel: 'lag', unit: 'records', points: lines.map((l) => [l.seconds, l.lag] as const) },
      ],
      notes: [
        `npm ${args.join(' ')} (fresh data directory); ${stored.toLocaleString('en-US')} logs stored, backfill included`,
        "live rates: generated and stored counts between the first live-view line and the last before generation ended, over their time apart; lag: the live view's ingest lag",
        'RSS and CPU: /proc of the engine process (VmHWM, utime + stime), every thread included; by thread: the last reading of each thread of /proc/<pid>/task, grouped by thread name (so the groups sum to a little less than the whole when threads exit between readings)',
      ],
    };
  },
};

export default benchmark;
