/**
 * The compiled run time: bin/logflow.js runs dist/, which bin/build.js
 * compiles from src/ and rebuilds when src/ changed. First on a small project
 * of its own (the repository's bin/ and tsconfig files, a two-module src/), so
 * every kind of change can be made to it; then the repository's own dist/, run
 * as a user runs it, with no tsx loaded (no --import, no NODE_OPTIONS), and
 * the generator's worker thread loading compiled modules.
 */
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { lastValueFrom, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, ensureBuilt, isStale } from '../../bin/build.js';
import { normalizeLines } from '../../src/app/commands/normalize.ts';
import { runDetectSeries } from '../../src/app/commands/detect-series.ts';
import { generateLogs } from '../../src/sources/generator.ts';
import type * as GeneratorWorker from '../../src/sources/generator-worker.ts';
import { REPO, runNode } from '../support/run-node.ts';
import { labelledSeriesCsv } from '../support/synthetic-series.ts';

describe('bin/build.js and bin/logflow.js on a project of their own', () => {
  let root = '';
  const write = async (file: string, text: string) => {
    await mkdir(path.dirname(path.join(root, file)), { recursive: true });
    await writeFile(path.join(root, file), text);
  };
  const logflow = () => runNode([path.join(root, 'bin/logflow.js')], { cwd: root });

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'logflow-build-'));
    await mkdir(path.join(root, 'bin'));
    for (const file of ['bin/logflow.js', 'bin/build.js', 'tsconfig.json', 'tsconfig.build.json'])
      await copyFile(path.join(REPO, file), path.join(root, file));
    await symlink(path.join(REPO, 'node_modules'), path.join(root, 'node_modules'));
    await write('package.json', '{ "type": "module" }\n');
    // Type-only imports, an interface and a dynamic import: what compiling has to strip or rewrite.
    await write(
      'src/app/cli.ts',
      [
        "import type { Greeting } from '../domain/greet.ts';",
        "import { greet } from '../domain/greet.ts';",
        "const { twice } = await import('../domain/twice.ts');",
        'const greeting: Greeting = greet(twice(21));',
        'console.log(greeting.text);',
        '',
      ].join('\n'),
    );
    await write(
      'src/domain/greet.ts',
      'export interface Greeting { readonly text: string }\nexport const greet = (n: number): Greeting => ({ text: `hello ${n}` });\n',
    );
    await write('src/domain/twice.ts', 'export const twice = (n: number): number => n * 2;\n');
  });

  afterAll(async () => {
    if (root !== '') await rm(root, { recursive: true, force: true });
  });

  it('compiles src/ on the first run, then runs dist/ without compiling again', async () => {
    expect(isStale(root)).toBe(true);
    const first = await logflow();
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toBe('hello 42\n');
    expect(first.stderr).toMatch(/compiling src\/ to dist\//);
    expect(await readFile(path.join(root, 'dist/app/cli.js'), 'utf8')).toMatch(
      /import\(["']\.\.\/domain\/twice\.js["']\)/,
    );
    expect(isStale(root)).toBe(false);

    const second = await logflow();
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toBe('hello 42\n');
    expect(second.stderr).toBe('');
  });

  it('recompiles when a source changes', async () => {
    await write('src/domain/twice.ts', 'export const twice = (n: number): number => n * 2 + 1;\n');
    expect(isStale(root)).toBe(true);
    const changed = await logflow();
    expect(changed.code, changed.stderr).toBe(0);
    expect(changed.stdout).toBe('hello 43\n');
    expect(changed.stderr).toMatch(/compiling/);
  });

  it('sees a file added with an old time, and drops from dist/ a module removed from src/', async () => {
    await write('src/domain/extra.ts', 'export const extra = 1;\n');
    const past = new Date('2020-01-01T00:00:00Z');
    await utimes(path.join(root, 'src/domain/extra.ts'), past, past);
    expect(isStale(root)).toBe(true);
    build(root);
    await stat(path.join(root, 'dist/domain/extra.js'));

    await rm(path.join(root, 'src/domain/extra.ts'));
    expect(isStale(root)).toBe(true);
    build(root);
    await expect(stat(path.join(root, 'dist/domain/extra.js'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(isStale(root)).toBe(false);
  });

  it('keeps the last good dist/ and says why when src/ does not compile', async () => {
    await write('src/domain/twice.ts', 'export const twice = (n: number): number => (;\n');
    expect(() => build(root)).toThrow(/tsc failed[\s\S]*twice\.ts/);
    const broken = await logflow();
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/logflow: tsc failed/);
    expect(broken.stdout).toBe('');
    // What was built before still runs as it was.
    expect((await runNode([path.join(root, 'dist/app/cli.js')], { cwd: root })).stdout).toBe('hello 43\n');
  });

  it('runs dist/ as it is where there is no src/, as in the Docker image', async () => {
    await rm(path.join(root, 'src'), { recursive: true });
    expect(isStale(root)).toBe(false);
    const imageLike = await logflow();
    expect(imageLike.code, imageLike.stderr).toBe(0);
    expect(imageLike.stdout).toBe('hello 43\n');
  });
});

describe("the repository's compiled dist/", () => {
  beforeAll(() => ensureBuilt(), 120_000);

  it('runs `logflow normalize` through the bin as the sources do', async () => {
    const input = [
      '2026-11-28 10:00:01 ERROR payment failed for user 4711 at 10.0.0.12: timeout after 3000ms',
      'GET /api/orders/9f3c2a1e-5b7d-4c1a-9e2f-0a1b2c3d4e5f returned 503',
      '',
      'plain text',
    ].join('\n');
    const expected = new PassThrough();
    let expectedText = '';
    expected.on('data', (d: Buffer) => (expectedText += d.toString()));
    const source = new PassThrough();
    source.end(input);
    await normalizeLines(source, expected);

    const compiled = await runNode(['bin/logflow.js', 'normalize'], { input });
    expect(compiled.code, compiled.stderr).toBe(0);
    expect(compiled.stdout).toBe(expectedText);
    expect(compiled.stdout.split('\n')).toHaveLength(5);
  });

  it('runs `logflow detect-series` through the bin as the sources do: a header, then one line per opening', async () => {
    const { csv } = labelledSeriesCsv();
    const trainRows = String(14 * 288);
    const expected = new PassThrough();
    let expectedText = '';
    expected.on('data', (d: Buffer) => (expectedText += d.toString()));
    const source = new PassThrough();
    source.end(csv);
    await runDetectSeries(source, expected, { trainRows });

    const compiled = await runNode(['bin/logflow.js', 'detect-series', '--train-rows', trainRows], { input: csv });
    expect(compiled.code, compiled.stderr).toBe(0);
    expect(compiled.stdout).toBe(expectedText);
    const lines = compiled.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('timestamp,kind,score');
    expect(lines.slice(1).map((line) => line.split(',')[1])).toEqual(['drop', 'spike']);
  });

  it('stops `logflow detect-series` with the line and reason of a bad row (exit 1), or a bad option (exit 2)', async () => {
    const bad = await runNode(['bin/logflow.js', 'detect-series'], {
      input: 'timestamp,value\n2026-01-05 00:00:00,1\nnope,2\n',
    });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/line 3: timestamp "nope"/);
    expect(bad.stdout).toBe('');
    const option = await runNode(['bin/logflow.js', 'detect-series', '--train-rows', 'many'], {
      input: 'timestamp,value\n',
    });
    expect(option.code).toBe(2);
    expect(option.stderr).toMatch(/--train-rows: must be a whole number/);
  });

  it('normalizes an input of many blocks on worker threads of the compiled modules as on one thread', async () => {
    const lines = Array.from(
      { length: 30_000 },
      (_, i) => `request ${i} "${i % 2 === 0 ? 'GET' : 'DELETE'} /a/${i} HTTP/1.1" from host-${i % 5}.example.org:443`,
    );
    const input = `${lines.join('\n')}\n`;
    const onWorkers = await runNode(['bin/logflow.js', 'normalize', '--workers', '2'], { input });
    const onOneThread = await runNode(['bin/logflow.js', 'normalize', '--workers', '0'], { input });
    expect(onWorkers.code, onWorkers.stderr).toBe(0);
    expect(onWorkers.stdout).toBe(onOneThread.stdout);
    const templates = new Set(
      onWorkers.stdout
        .trimEnd()
        .split('\n')
        .map((row) => row.split('\t')[1]),
    );
    expect([...templates].sort()).toEqual(['request <*> "DELETE <*>" from <*>', 'request <*> "GET <*>" from <*>']);
  });

  it('ends quietly with exit 0 when its reader stops early (`| head`), without an EPIPE stack', async () => {
    const { NODE_OPTIONS: _ignored, ...env } = process.env;
    const child = spawn(process.execPath, ['bin/logflow.js', 'normalize'], { cwd: REPO, env, stdio: 'pipe' });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // What `head -1` does: read the first output, then close the pipe while the command still writes.
    child.stdout.once('data', () => child.stdout.destroy());
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const line = 'user 42 logged in from 10.0.0.7 after 13 ms\n';
    child.stdin.on('error', () => undefined);
    child.stdin.end(line.repeat(400_000));
    expect(await exited, stderr).toBe(0);
    expect(stderr).not.toMatch(/EPIPE|Error/);
  });

  it('refuses a --workers that is not a whole number from 0 to 64, saying so', async () => {
    const bad = await runNode(['bin/logflow.js', 'normalize', '--workers', 'many'], { input: 'x 1\n' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--workers must be a whole number from 0 to 64, got "many"');
    expect(bad.stdout).toBe('');
  });

  it('answers `run --help` with the usage and every pipeline, not an unknown-pipeline error', async () => {
    const help = await runNode(['bin/logflow.js', 'run', '--help'], { input: '' });
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toContain('Usage: logflow run <pipeline>');
    for (const name of [
      'generate',
      'ingest',
      'vectorize',
      'detect',
      'baselines',
      'nightly',
      'retention',
      'api',
      'embeddings',
    ]) {
      expect(help.stdout).toMatch(new RegExp(`^${name} `, 'm'));
    }
  });

  it('generates in a worker thread that loads the compiled modules', async () => {
    const compiled = (await import(
      pathToFileURL(path.join(REPO, 'dist/sources/generator-worker.js')).href
    )) as typeof GeneratorWorker;
    const options = {
      seed: 3,
      rate: 200,
      durationMs: 5_000,
      startTime: Date.parse('2026-11-28T10:00:00Z'),
      speed: Infinity,
    };
    const inWorker = await lastValueFrom(compiled.generateLogsInWorker(options).pipe(toArray()));
    const inThread = await lastValueFrom(generateLogs(options).pipe(toArray()));
    expect(inWorker.flatMap((s) => s.logs.map((l) => [l.key, String(l.value)]))).toEqual(
      inThread.flatMap((s) => s.logs.map((l) => [l.key, l.value])),
    );
    expect(inThread.flatMap((s) => s.logs).length).toBeGreaterThan(500);
  });
});
