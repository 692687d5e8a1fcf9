/** What a benchmark figure depends on, printed before and stored with every result. */
import { execFileSync } from 'node:child_process';
import os from 'node:os';

export interface MachineInfo {
  readonly cpuModel: string;
  readonly cores: number;
  readonly cpuMHz: number | null;
  readonly totalMemoryBytes: number;
  readonly node: string;
  readonly v8: string;
  readonly os: string;
  readonly arch: string;
  /** 1, 5 and 15 minute load averages when the run started: other work on the machine skews throughput. */
  readonly loadAverage: readonly number[];
  readonly gitCommit: string | null;
  readonly gitDirty: boolean | null;
  /**
   * JSON round trips per second of one fixed log event on one thread, measured
   * just before the benchmarks. The VMs these run on change speed from day to
   * day (the same commit has measured 1.5x apart), so figures from different
   * runs compare only after scaling by this.
   */
  readonly referenceSpeed: number;
}

/** A fixed event shaped like the ones logflow stores: the reference workload never changes with the code. */
const REFERENCE_EVENT = {
  log_id: '6f1c1c8e-4a3e-4b8e-9c53-0d3a4e1f0a01',
  timestamp: '2026-11-27T11:59:00.123Z',
  service: 'payment-service',
  environment: 'production',
  level: 'ERROR',
  message: 'Payment gateway timeout after 3021 ms for order 88231 (attempt 2 of 3)',
  host: 'payment-7f9c-2',
  region: 'eu-west-1',
  version: '2.14.1',
  logger: 'com.example.payment.Gateway',
  trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
  span_id: '00f067aa0ba902b7',
  http_method: 'POST',
  http_path: '/api/v1/payments/88231/capture',
  http_status: 504,
  duration_ms: 3021.5,
  attributes: { customer_tier: 'gold', retry: '2', gateway: 'stripe' },
};

/** Runs the reference workload for `ms` after a short warm-up; the result is round trips per second. */
export function measureReferenceSpeed(ms = 1_000): number {
  let sink = 0;
  const roundTrips = (until: number): number => {
    let n = 0;
    while (performance.now() < until) {
      for (let i = 0; i < 100; i++)
        sink += (JSON.parse(JSON.stringify(REFERENCE_EVENT)) as { http_status: number }).http_status;
      n += 100;
    }
    return n;
  };
  roundTrips(performance.now() + Math.min(200, ms));
  const started = performance.now();
  const n = roundTrips(started + ms);
  const speed = Math.round(n / ((performance.now() - started) / 1_000));
  // Keeps the loop's result alive so the work cannot be optimised away.
  return sink === -1 ? 0 : speed;
}

function git(args: readonly string[], cwd: string): string | null {
  try {
    return execFileSync('git', args, {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 5_000,
    }).trim();
  } catch {
    return null;
  }
}

export function machineInfo(cwd: string = process.cwd(), referenceMs = 1_000): MachineInfo {
  const cpus = os.cpus();
  const commit = git(['rev-parse', 'HEAD'], cwd);
  const status = commit === null ? null : git(['status', '--porcelain', '--untracked-files=no'], cwd);
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: os.availableParallelism(),
    cpuMHz: cpus[0] !== undefined && cpus[0].speed > 0 ? cpus[0].speed : null,
    totalMemoryBytes: os.totalmem(),
    node: process.version,
    v8: process.versions.v8,
    os: `${os.type()} ${os.release()}`,
    arch: process.arch,
    loadAverage: os.loadavg().map((load) => Math.round(load * 100) / 100),
    gitCommit: commit,
    gitDirty: status === null ? null : status !== '',
    referenceSpeed: measureReferenceSpeed(referenceMs),
  };
}

export function describeMachine(machine: MachineInfo): string[] {
  const gib = (machine.totalMemoryBytes / 1024 ** 3).toFixed(1);
  const commit =
    machine.gitCommit === null
      ? 'not a git checkout'
      : `${machine.gitCommit}${machine.gitDirty === true ? ' (uncommitted changes)' : ''}`;
  return [
    `CPU:     ${machine.cpuModel}, ${machine.cores} cores${machine.cpuMHz === null ? '' : ` @ ${machine.cpuMHz} MHz`}`,
    `Memory:  ${gib} GiB`,
    `Node:    ${machine.node} (V8 ${machine.v8})`,
    `OS:      ${machine.os} ${machine.arch}`,
    `Load:    ${machine.loadAverage.join(' ')} (1/5/15 min)`,
    `Speed:   ${machine.referenceSpeed.toLocaleString('en-US')} JSON round trips/s of a fixed log event, one thread (scale figures from other runs by this)`,
    `Commit:  ${commit}`,
  ];
}
