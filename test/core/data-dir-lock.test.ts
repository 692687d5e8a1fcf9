/**
 * One writer per data directory, as operators meet it: `npm start` holds the
 * directory, and `keys`, `migrate` and a second start on it are refused with
 * one line naming the holder; once the holder is killed -9 its stale lock is
 * taken over. Real processes, real chdb and PGlite in a temp directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/core/config.ts';
import { DataDirInUseError, LOCK_FILE_NAME, lockDataDir } from '../../src/core/data-dir-lock.ts';
import { openPostgres } from '../../src/clients/engines.ts';
import { createApiKeyRepository } from '../../src/stores/postgres/api-keys.ts';

const CLI = ['--import', 'tsx', 'src/app/cli.ts'];

function env(dir: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    LOGFLOW_DATA_DIR: dir,
    LOGFLOW_LOG_LEVEL: 'silent',
    LOGFLOW_METRICS_PORT: '0',
    CI: 'true',
  };
}

function logflow(args: string[], dir: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...CLI, ...args], { env: env(dir), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Starts `logflow start` and resolves once it runs its pipelines (the directory is then open by chdb and PGlite). */
function startHolder(dir: string): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn(
    process.execPath,
    [...CLI, 'start', '--data-dir', dir, '--duration', '10m', '--rate', '200', '--history', '1m', '--api-port', '0'],
    {
      env: env(dir),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer) => {
      output += d.toString();
      if (/running generate/.test(output)) resolve({ child, output: () => output });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => reject(new Error(`logflow start exited (${code}) before running:\n${output}`)));
  });
}

function killed(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

/** Runs a script in a child process that imports the lock module from the repository. */
function script(source: string, dir: string): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', source], {
    env: { ...env(dir), DIR: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

describe('one writer per data directory', () => {
  const dirs: string[] = [];
  const children: ChildProcess[] = [];
  const tempDir = async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-lock-'));
    dirs.push(dir);
    return dir;
  };
  afterAll(async () => {
    for (const child of children) await killed(child, 'SIGKILL');
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('refuses keys, migrate and a second start on a directory npm start holds, with one line naming it; takes the lock over after kill -9', async () => {
    const dir = await tempDir();
    const holder = await startHolder(dir);
    children.push(holder.child);
    const pid = holder.child.pid!;
    const refusal = new RegExp(
      `^logflow: DATA_DIR_IN_USE: data directory ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is in use by pid ${pid} \\(logflow start --data-dir .*, since \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\); stop that process first or use another data directory\\n$`,
    );

    const key = await logflow(['keys', 'create', '--name', 'lost', '--role', 'admin'], dir);
    expect(key.stderr, key.stdout).toMatch(refusal);
    expect(key.code).toBe(1);
    // No key printed: one that would never reach the running engine must not look created.
    expect(key.stdout).toBe('');

    const migrate = await logflow(['migrate'], dir);
    expect(migrate.stderr).toMatch(refusal);
    expect(migrate.code).toBe(1);

    const second = await logflow(['start', '--data-dir', dir, '--duration', '5s', '--api-port', '0'], dir);
    expect(second.stdout + second.stderr).toMatch(refusal);
    expect(second.code).toBe(1);

    // Refused before touching anything: the holder still runs.
    expect(holder.child.exitCode).toBeNull();
    await killed(holder.child, 'SIGKILL');
    expect(JSON.parse(readFileSync(path.join(dir, LOCK_FILE_NAME), 'utf8'))).toMatchObject({ pid });

    const created = await logflow(['keys', 'create', '--name', 'kept', '--role', 'admin'], dir);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout.trim()).toMatch(/^lf_[A-Za-z0-9_-]{43}$/);
    // Released when the command ended.
    expect(existsSync(path.join(dir, LOCK_FILE_NAME))).toBe(false);

    const postgres = await openPostgres(loadConfig({ LOGFLOW_DATA_DIR: dir }));
    try {
      expect(await createApiKeyRepository(postgres.pool).verify(created.stdout.trim())).toMatchObject({
        name: 'kept',
        role: 'admin',
      });
    } finally {
      await postgres.close();
    }
  }, 300_000);

  it('takes over a lock whose pid now belongs to another process', async () => {
    const dir = await tempDir();
    const stat = readFileSync(`/proc/${process.pid}/stat`, 'utf8');
    const start = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    // This process's pid, but a process that started a tick earlier: the holder died and its pid was reused.
    const stale = {
      pid: process.pid,
      processStart: start - 1,
      command: 'logflow start',
      since: '2026-01-01T00:00:00.000Z',
      host: os.hostname(),
    };
    await writeFile(path.join(dir, LOCK_FILE_NAME), JSON.stringify(stale));
    const lock = await lockDataDir(dir);
    try {
      expect(JSON.parse(readFileSync(lock.file, 'utf8'))).toMatchObject({ pid: process.pid, processStart: start });
    } finally {
      lock.release();
    }
    expect(existsSync(lock.file)).toBe(false);
  });

  it('takes over an old lock file no logflow process wrote (empty or not JSON)', async () => {
    const dir = await tempDir();
    const file = path.join(dir, LOCK_FILE_NAME);
    await writeFile(file, '');
    const past = new Date(Date.now() - 60_000);
    await utimes(file, past, past);
    const lock = await lockDataDir(dir);
    try {
      expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ pid: process.pid });
    } finally {
      lock.release();
    }
  });

  it('refuses a lock a live process holds, and releases it when that process ends on SIGTERM or an uncaught error', async () => {
    const dir = await tempDir();
    const holding = script(
      `import { lockDataDir } from './src/core/data-dir-lock.ts'; await lockDataDir(process.env.DIR); process.stdout.write('locked\\n'); setInterval(() => {}, 1000);`,
      dir,
    );
    children.push(holding);
    await new Promise<void>((resolve) =>
      holding.stdout!.on('data', (d: Buffer) => d.toString().includes('locked') && resolve()),
    );
    const refused = await lockDataDir(dir).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(DataDirInUseError);
    expect((refused as DataDirInUseError).holder.pid).toBe(holding.pid);
    holding.kill('SIGTERM');
    expect(await exited(holding)).toEqual({ code: null, signal: 'SIGTERM' });
    expect(existsSync(path.join(dir, LOCK_FILE_NAME))).toBe(false);

    const failing = script(
      `import { lockDataDir } from './src/core/data-dir-lock.ts'; await lockDataDir(process.env.DIR); throw new Error('boom');`,
      dir,
    );
    expect((await exited(failing)).code).toBe(1);
    expect(existsSync(path.join(dir, LOCK_FILE_NAME))).toBe(false);
  });
});
