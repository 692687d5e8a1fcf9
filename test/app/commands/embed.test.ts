/**
 * `logflow embed` in process and through the compiled bin (whose model worker
 * is dist/'s JavaScript), with the real model from LOGFLOW_MODELS_DIR.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { embedLines } from '../../../src/app/commands/embed.ts';
import { createModelEmbedder } from '../../../src/clients/model-embedder.ts';
import { localEmbedding } from '../../../src/clients/embeddings.ts';
import { MODEL_DIMENSION, modelFilesPresent } from '../../../src/clients/model-files.ts';
import { loadConfig } from '../../../src/core/config.ts';
import { runNode } from '../../support/run-node.ts';

const MODELS_DIR = loadConfig(process.env).model.dir;
const LINES = ['Connection refused by redis at 10.0.0.5:6379', '', 'Disk quota exceeded', 'the JVM ran out of memory'];

async function runInProcess(input: string, modelsDir: string): Promise<{ vectors: number[][]; said: string }> {
  const source = new PassThrough();
  const output = new PassThrough();
  const diagnostics = new PassThrough();
  let text = '';
  let said = '';
  output.on('data', (chunk: Buffer) => (text += chunk.toString()));
  diagnostics.on('data', (chunk: Buffer) => (said += chunk.toString()));
  const done = embedLines(source, output, { config: loadConfig({ LOGFLOW_MODELS_DIR: modelsDir }), diagnostics });
  source.end(input);
  const { lines } = await done;
  const vectors = text
    .split('\n')
    .slice(0, -1)
    .map((line) => JSON.parse(line) as number[]);
  expect(vectors).toHaveLength(lines);
  return { vectors, said };
}

describe('logflow embed', () => {
  let expected: Float32Array[];
  beforeAll(async () => {
    expect(modelFilesPresent(MODELS_DIR), `no model in ${MODELS_DIR}: run npm run models:fetch`).toBe(true);
    const embedder = createModelEmbedder({ modelsDir: MODELS_DIR });
    try {
      expected = await embedder.embed(LINES);
    } finally {
      await embedder.close();
    }
  });

  it('writes the model vector of each line, empty lines and CRLF included, in order', async () => {
    const { vectors, said } = await runInProcess(`${LINES.join('\r\n')}\n`, MODELS_DIR);
    expect(said).toContain('all-minilm-l6-v2-q');
    expect(vectors).toHaveLength(LINES.length);
    // float32 -> JSON -> float32 is exact, so the vectors are the embedder's own.
    vectors.forEach((vector, i) => expect(Float32Array.from(vector)).toEqual(expected[i]));
  });

  it('writes one line per input line across blocks, the last line without a newline too', async () => {
    const many = Array.from({ length: 300 }, (_, i) => `request ${i} failed with status ${500 + (i % 4)}`);
    const { vectors } = await runInProcess(many.join('\n'), MODELS_DIR);
    expect(vectors).toHaveLength(300);
    for (const vector of vectors) {
      expect(vector).toHaveLength(MODEL_DIMENSION);
      expect(Math.abs(vector.reduce((s, x) => s + x * x, 0) - 1)).toBeLessThan(1e-5);
    }
  });

  it('falls back to the hashing embedder without the model files, and says so', async () => {
    const empty = await mkdtemp(path.join(os.tmpdir(), 'logflow-no-model-'));
    try {
      const { vectors, said } = await runInProcess('Disk quota exceeded\n', empty);
      expect(said).toContain('npm run models:fetch');
      expect(Float32Array.from(vectors[0]!)).toEqual(localEmbedding('Disk quota exceeded'));
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it('runs through the compiled bin, its model worker from dist/, with the same vectors', async () => {
    // runNode drops NODE_OPTIONS: vitest's loader must not be what makes the compiled worker run.
    const result = await runNode(['bin/logflow.js', 'embed'], {
      input: `${LINES.join('\n')}\n`,
      env: { ...process.env, LOGFLOW_MODELS_DIR: MODELS_DIR },
    });
    expect(result.stderr).toContain('embeddings: all-minilm-l6-v2-q');
    expect(result.code).toBe(0);
    const vectors = result.stdout
      .trim()
      .split('\n')
      .map((line) => Float32Array.from(JSON.parse(line) as number[]));
    expect(vectors).toEqual(expected);
  });
});
