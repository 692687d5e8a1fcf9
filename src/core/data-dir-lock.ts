/**
 * One writer per data directory. chdb and PGlite keep their files in the
 * data directory and neither guards it against a second process: two
 * PGlite writers on one directory can corrupt it, and a key written by a
 * second process was never seen by the running one. Every process that
 * opens the embedded engines holds this lock first, and a second one is
 * refused with one line naming the holder.
 *
 * The lock is a file holding the holder's pid, created atomically (a
 * complete file is hard-linked into place, so a reader never sees it half
 * written). A holder that died without removing it (kill -9, a crash, a
 * power cut) leaves a stale lock: its pid is gone, or it now belongs to
 * another process, told by the process start time in /proc. A stale lock is
 * taken over. Staleness by pid rather than by a refreshed timestamp (as
 * proper-lockfile does) means no timer has to keep the lock alive, and a
 * process paused for a while (SIGSTOP, a suspended laptop) keeps its lock.
 */
import { linkSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { ErrorCodes, LogflowError } from './errors.ts';

export const LOCK_FILE_NAME = 'logflow.lock';

/** What the lock file says about its holder. */
export interface LockHolder {
  readonly pid: number;
  /** Start time of the process in clock ticks since boot (/proc/<pid>/stat), where the system has /proc. */
  readonly processStart?: number;
  readonly command: string;
  readonly since: string;
  readonly host: string;
}

export interface DataDirLock {
  readonly file: string;
  /** Gives the lock back; the file is removed when this process's last holder releases it. */
  release(): void;
}

export class DataDirInUseError extends LogflowError {
  readonly holder: LockHolder;
  constructor(dir: string, holder: LockHolder) {
    super(
      ErrorCodes.DATA_DIR_IN_USE,
      `data directory ${dir} is in use by pid ${holder.pid} (${holder.command}, since ${holder.since}); stop that process first or use another data directory`,
      { stage: 'config', details: { dir, holder } },
    );
    this.name = 'DataDirInUseError';
    this.holder = holder;
  }
}

interface Held {
  readonly file: string;
  readonly content: string;
  count: number;
}

/** Locks this process holds, by lock file: the engines and `npm start` both take the lock of one directory. */
const held = new Map<string, Held>();

/**
 * Takes the lock of `dir` for this process (creating the directory), or
 * throws DataDirInUseError naming the live process that holds it. Taking it
 * again in the same process only counts: each take needs its release.
 */
export async function lockDataDir(dir: string): Promise<DataDirLock> {
  const resolved = path.resolve(dir);
  await mkdir(resolved, { recursive: true });
  const file = path.join(resolved, LOCK_FILE_NAME);
  let entry = held.get(file);
  if (entry === undefined) {
    entry = { file, content: acquire(resolved, file), count: 0 };
    held.set(file, entry);
    if (held.size === 1) watchExit();
  }
  entry.count += 1;
  const taken = entry;
  let released = false;
  return {
    file,
    release() {
      if (released) return;
      released = true;
      taken.count -= 1;
      if (taken.count > 0) return;
      held.delete(file);
      removeIfOurs(taken);
      if (held.size === 0) unwatchExit();
    },
  };
}

function acquire(dir: string, file: string): string {
  const content = `${JSON.stringify(describeThisProcess())}\n`;
  // Each round either takes the lock, meets a live holder, or clears a stale lock; a few rounds cover racing takeovers.
  for (let round = 0; round < 60; round += 1) {
    if (createExclusively(file, content)) return content;
    const raw = readRaw(file);
    if (raw === undefined) continue; // released between our attempt and the read
    const holder = parseHolder(raw);
    if (holder !== undefined && isAlive(holder)) throw new DataDirInUseError(dir, holder);
    // Unreadable and brand new: a lock created without a hard link, caught before its content; look again.
    if (holder === undefined && isRecent(file)) {
      sleepSync(50);
      continue;
    }
    clearStale(file, raw);
  }
  throw new LogflowError(
    ErrorCodes.DATA_DIR_IN_USE,
    `could not take the lock ${file}: other processes keep taking it over`,
    { stage: 'config' },
  );
}

/** Creates `file` with `content` only if it does not exist, never visible half written. */
function createExclusively(file: string, content: string): boolean {
  const draft = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  writeFileSync(draft, content, { flag: 'wx', mode: 0o644 });
  try {
    linkSync(draft, file);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    // Some mounted volumes have no hard links; an exclusive create is atomic too, only briefly empty.
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS')
      return createDirectly(file, content);
    throw error;
  } finally {
    unlinkSync(draft);
  }
}

function createDirectly(file: string, content: string): boolean {
  try {
    writeFileSync(file, content, { flag: 'wx', mode: 0o644 });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

/**
 * Removes a stale lock. Two processes may judge the same lock stale; without
 * care the slower one would remove the lock the faster one has just taken.
 * So the removal happens under a second, short-lived lock, and only if the
 * lock file still holds what was judged stale.
 */
function clearStale(file: string, stale: string): void {
  const guard = `${file}.takeover`;
  if (!createExclusively(guard, `${JSON.stringify(describeThisProcess())}\n`)) {
    const raw = readRaw(guard);
    const other = raw === undefined ? undefined : parseHolder(raw);
    // A process that died inside the takeover left its guard behind; anyone else is done within microseconds.
    if (raw !== undefined && (other === undefined || !isAlive(other))) unlinkQuietly(guard);
    else sleepSync(10);
    return;
  }
  try {
    if (readRaw(file) === stale) unlinkQuietly(file);
  } finally {
    unlinkQuietly(guard);
  }
}

function removeIfOurs(entry: Held): void {
  // A lock that is no longer ours (someone judged us stale and took it over) is theirs to remove.
  if (readRaw(entry.file) === entry.content) unlinkQuietly(entry.file);
}

function readRaw(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** The holder a lock file names; undefined for content no logflow process writes (it cannot name a live holder). */
function parseHolder(raw: string): LockHolder | undefined {
  try {
    const parsed = JSON.parse(raw) as Partial<LockHolder>;
    if (typeof parsed.pid !== 'number' || !Number.isInteger(parsed.pid) || parsed.pid <= 0) return undefined;
    return {
      pid: parsed.pid,
      ...(typeof parsed.processStart === 'number' ? { processStart: parsed.processStart } : {}),
      command: typeof parsed.command === 'string' ? parsed.command : 'unknown command',
      since: typeof parsed.since === 'string' ? parsed.since : 'an unknown time',
      host: typeof parsed.host === 'string' ? parsed.host : 'unknown host',
    };
  } catch {
    return undefined;
  }
}

function describeThisProcess(): LockHolder {
  const start = processStartTicks(process.pid);
  return {
    pid: process.pid,
    ...(start === undefined ? {} : { processStart: start }),
    command: commandLine(),
    since: new Date().toISOString(),
    host: os.hostname(),
  };
}

/** `logflow start --data-dir ...` rather than the node and tsx paths the process really runs. */
function commandLine(): string {
  const script = process.argv[1] ?? '';
  const name = /(?:^|[\\/])(?:cli\.[jt]s|logflow(?:\.js)?)$/.test(script) ? 'logflow' : path.basename(script) || 'node';
  const line = [name, ...process.argv.slice(2)].join(' ');
  return line.length > 160 ? `${line.slice(0, 159)}…` : line;
}

/**
 * Whether the lock's holder still runs. Pids are reused: in a container the
 * engine is often pid 1 in every run, so a pid that is alive counts only if
 * its process started when the holder's did.
 */
function isAlive(holder: LockHolder): boolean {
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    // EPERM: the pid runs, as another user.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (holder.processStart === undefined) return true;
  const start = processStartTicks(holder.pid);
  return start === undefined || start === holder.processStart;
}

/** Field 22 of /proc/<pid>/stat; undefined where there is no /proc (macOS). */
function processStartTicks(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses; the fields after its closing one are plain.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const start = Number(fields[19]);
  return Number.isFinite(start) ? start : undefined;
}

function isRecent(file: string): boolean {
  try {
    return Date.now() - statSync(file).mtimeMs < 2_000;
  } catch {
    return false;
  }
}

function unlinkQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function releaseAll(): void {
  for (const entry of held.values()) removeIfOurs(entry);
  held.clear();
}

/**
 * A signal nobody else handles would end the process without its 'exit'
 * event: release first, then let the signal do what it would have done. A
 * process with its own handler (npm start stops gracefully) keeps the lock
 * until it exits.
 */
function onSignal(signal: NodeJS.Signals): void {
  if (process.listenerCount(signal) > 1) return;
  releaseAll();
  unwatchExit();
  process.kill(process.pid, signal);
}

function watchExit(): void {
  process.on('exit', releaseAll);
  // Signals reach only the main thread; a worker's locks go with its 'exit'.
  if (!isMainThread) return;
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

function unwatchExit(): void {
  process.off('exit', releaseAll);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
}
