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
}

function git(args: readonly string[], cwd: string): string | null {
  try {
    return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5_000 }).trim();
  } catch {
    return null;
  }
}

export function machineInfo(cwd: string = process.cwd()): MachineInfo {
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
  };
}

export function describeMachine(machine: MachineInfo): string[] {
  const gib = (machine.totalMemoryBytes / 1024 ** 3).toFixed(1);
  const commit = machine.gitCommit === null ? 'not a git checkout' : `${machine.gitCommit}${machine.gitDirty === true ? ' (uncommitted changes)' : ''}`;
  return [
    `CPU:     ${machine.cpuModel}, ${machine.cores} cores${machine.cpuMHz === null ? '' : ` @ ${machine.cpuMHz} MHz`}`,
    `Memory:  ${gib} GiB`,
    `Node:    ${machine.node} (V8 ${machine.v8})`,
    `OS:      ${machine.os} ${machine.arch}`,
    `Load:    ${machine.loadAverage.join(' ')} (1/5/15 min)`,
    `Commit:  ${commit}`,
  ];
}
