/**
 * The local model embedder with the real model (fetched by `npm test` through
 * `npm run models:fetch` into LOGFLOW_MODELS_DIR) and real worker threads:
 * the contract every embedder keeps, plus what the model adds (meaning, not
 * shared words) and what its worker thread must not do (take the process
 * down when it fails).
 */
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embedderChoice, LOCAL_EMBEDDING_MODEL, openEmbedder, type Embedder } from '../../src/clients/embeddings.ts';
import { createModelEmbedder } from '../../src/clients/model-embedder.ts';
import { MODEL_DIMENSION, MODEL_NAME, modelFilesPresent, modelPaths } from '../../src/clients/model-files.ts';
import { vectorCollection } from '../../src/app/resources.ts';
import { loadConfig } from '../../src/core/config.ts';
import { embeddingCacheKey } from '../../src/stores/embedding-cache.ts';
import { ErrorCodes, LogflowError } from '../../src/core/errors.ts';

const MODELS_DIR = loadConfig(process.env).model.dir;

const TEXTS = [
  'Connection refused by redis at <*>',
  'the cache server would not accept the link',
  'Disk quota exceeded on /var/lib/postgresql',
  'OutOfMemoryError: Java heap space in worker thread <*> while parsing a request body',
  '',
  'x',
  'Zeitüberschreitung beim Verbinden mit 数据库 🚀',
  `payload too large: ${'abc '.repeat(400)}`,
];

const dot = (a: Float32Array, b: Float32Array): number => a.reduce((sum, x, i) => sum + x * b[i]!, 0);
const maxDifference = (a: Float32Array, b: Float32Array): number =>
  a.reduce((max, x, i) => Math.max(max, Math.abs(x - b[i]!)), 0);

describe('model embedder (all-minilm-l6-v2-q, real model)', () => {
  let embedder: Embedder;
  beforeAll(() => {
    // Not a skip: without the files this suite fails and says how to get them.
    expect(modelFilesPresent(MODELS_DIR), `no model in ${MODELS_DIR}: run npm run models:fetch`).toBe(true);
    embedder = createModelEmbedder({ modelsDir: MODELS_DIR, batchSize: 3 });
  });
  afterAll(async () => {
    await embedder.close();
  });

  it('gives one finite unit-length 384-dimensional vector per text, in order', async () => {
    const vectors = await embedder.embed(TEXTS);
    expect(embedder.model).toBe(MODEL_NAME);
    expect(embedder.dimension).toBe(MODEL_DIMENSION);
    expect(vectors).toHaveLength(TEXTS.length);
    for (const vector of vectors) {
      expect(vector).toBeInstanceOf(Float32Array);
      expect(vector).toHaveLength(MODEL_DIMENSION);
      expect(vector.every(Number.isFinite)).toBe(true);
      expect(Math.abs(dot(vector, vector) - 1)).toBeLessThan(1e-5);
    }
    // In order: each text's vector is the one it gets alone, not a neighbour's.
    const [alone] = await embedder.embed([TEXTS[2]!]);
    expect(maxDifference(vectors[2]!, alone!)).toBeLessThan(1e-5);
    expect(maxDifference(vectors[3]!, alone!)).toBeGreaterThan(1e-2);
  });

  it('is deterministic: the same text gives the same vector in another call and in another embedder', async () => {
    const first = await embedder.embed(TEXTS);
    const again = await embedder.embed(TEXTS);
    const other = createModelEmbedder({ modelsDir: MODELS_DIR, threads: 2, batchSize: 64 });
    try {
      const fromOther = await other.embed(TEXTS);
      first.forEach((vector, i) => {
        expect(again[i]).toEqual(vector);
        expect(maxDifference(fromOther[i]!, vector)).toBeLessThan(1e-5);
      });
    } finally {
      await other.close();
    }
  });

  it('gives a batch the vectors its texts get one by one (within 1e-5), whatever the batch size', async () => {
    const oneByOne: Float32Array[] = [];
    for (const text of TEXTS) oneByOne.push((await embedder.embed([text]))[0]!);
    const big = createModelEmbedder({ modelsDir: MODELS_DIR, batchSize: 1000 });
    try {
      for (const batch of [await embedder.embed(TEXTS), await big.embed(TEXTS)]) {
        batch.forEach((vector, i) => expect(maxDifference(vector, oneByOne[i]!)).toBeLessThan(1e-5));
      }
    } finally {
      await big.close();
    }
  });

  it('answers concurrent callers each with their own vectors', async () => {
    const [a, b] = await Promise.all([embedder.embed(TEXTS.slice(0, 4)), embedder.embed(TEXTS.slice(4))]);
    const all = await embedder.embed(TEXTS);
    [...a, ...b].forEach((vector, i) => expect(maxDifference(vector, all[i]!)).toBeLessThan(1e-5));
  });

  it('scores a paraphrase above unrelated messages, where shared words would not', async () => {
    // Paraphrases share few words with the message; an unrelated message sharing more ("user admin") still scores lower.
    const triples: readonly (readonly [string, string, string])[] = [
      ['Connection refused by redis at 10.0.0.5:6379', 'could not connect to the redis cache', 'user alice logged in'],
      [
        'Disk quota exceeded on /var/lib/postgresql',
        'no space left on the database disk',
        'payment captured for order 42',
      ],
      ['OutOfMemoryError: Java heap space', 'the JVM ran out of memory', 'TLS certificate expires in 3 days'],
      ['request timed out after 30000 ms', 'the call took too long and was abandoned', 'index rebuilt successfully'],
      [
        'authentication failed for user admin: invalid password',
        'login rejected because the credentials were wrong',
        'scheduled backup for user admin finished',
      ],
    ];
    for (const [message, paraphrase, unrelated] of triples) {
      const [m, p, u] = await embedder.embed([message, paraphrase, unrelated]);
      expect(dot(m!, p!), `${message} / ${paraphrase} vs ${unrelated}`).toBeGreaterThan(dot(m!, u!) + 0.1);
    }
  });

  it('refuses what is not an array of strings', async () => {
    await expect(embedder.embed([1 as unknown as string])).rejects.toMatchObject({ code: ErrorCodes.INPUT_INVALID });
  });
});

describe('model embedder failures', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-model-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reports a model its worker cannot load, fails health, and recovers once the files are good', async () => {
    const good = modelPaths(MODELS_DIR);
    const paths = modelPaths(dir);
    await mkdir(paths.dir, { recursive: true });
    await copyFile(good.tokenizer, paths.tokenizer);
    await writeFile(paths.onnx, 'not an ONNX model');
    const embedder = createModelEmbedder({ modelsDir: dir });
    try {
      const error = await embedder.embed(['disk full']).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(LogflowError);
      expect(error).toMatchObject({ code: ErrorCodes.CONFIG_INVALID, retriable: false });
      expect((error as Error).message).toContain(`cannot load ${MODEL_NAME} from ${paths.dir}`);
      expect(await embedder.health()).toMatchObject({ ok: false });
      expect((await embedder.health()).detail).toContain('cannot load');

      await copyFile(good.onnx, paths.onnx);
      const [vector] = await embedder.embed(['disk full']);
      expect(vector).toHaveLength(MODEL_DIMENSION);
      expect(await embedder.health()).toMatchObject({ ok: true });
    } finally {
      await embedder.close();
    }
  });

  it('reports a worker thread that dies while it works, fails health, and recovers with a new worker', async () => {
    // A heap bound the model loads within (it does at 16 MiB) and a request that cannot fit in it: 4096 texts of
    // 16,000 characters are cloned into the worker's heap, which then runs out, as a real out-of-memory would.
    const embedder = createModelEmbedder({ modelsDir: MODELS_DIR, batchSize: 4096, maxHeapMb: 32 });
    try {
      const [before] = await embedder.embed(['disk full']);
      const huge = Array.from({ length: 4096 }, (_, i) => `${i} ${'a'.repeat(16_000)}`);
      const error = await embedder.embed(huge).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toMatchObject({ code: ErrorCodes.UPSTREAM_UNAVAILABLE, retriable: true });
      expect((error as Error).message).toMatch(/worker thread failed: .*memory.*the next call starts a new one/);
      expect(await embedder.health()).toMatchObject({ ok: false, detail: expect.stringContaining('worker thread') });

      const [after] = await embedder.embed(['disk full']);
      expect(after).toEqual(before);
      expect(await embedder.health()).toMatchObject({ ok: true });
    } finally {
      await embedder.close();
    }
  });

  it('close() fails the calls waiting for the worker to start with SHUTDOWN', async () => {
    const embedder = createModelEmbedder({ modelsDir: MODELS_DIR });
    // The expectation is attached before close(), which rejects the call.
    const waiting = expect(embedder.embed(['request failed with status 503'])).rejects.toMatchObject({
      code: ErrorCodes.SHUTDOWN,
    });
    await embedder.close();
    await waiting;
  });

  it('close() fails the calls in flight with SHUTDOWN and every later call', async () => {
    const embedder = createModelEmbedder({ modelsDir: MODELS_DIR, batchSize: 1 });
    await embedder.embed(['warm up']);
    const texts = Array.from({ length: 500 }, (_, i) => `request ${i} failed with status 503`);
    const inFlight = expect(embedder.embed(texts)).rejects.toMatchObject({ code: ErrorCodes.SHUTDOWN });
    // The requests are posted to the running worker by now; 500 texts take it far longer than this turn.
    await new Promise((resolve) => setImmediate(resolve));
    await embedder.close();
    await inFlight;
    await expect(embedder.embed(['after close'])).rejects.toMatchObject({ code: ErrorCodes.SHUTDOWN });
    expect(await embedder.health()).toEqual({ ok: false, detail: 'closed' });
  });
});

describe('openEmbedder', () => {
  it('runs the model with the configured threads, and refuses settings out of range by name', async () => {
    const embedder = openEmbedder(
      loadConfig({ LOGFLOW_MODELS_DIR: MODELS_DIR, LOGFLOW_MODEL_THREADS: '2', LOGFLOW_MODEL_BATCH_SIZE: '5' }),
    );
    try {
      expect(await embedder.embed(TEXTS)).toHaveLength(TEXTS.length);
      expect((await embedder.health()).detail).toContain('2 thread(s)');
    } finally {
      await embedder.close();
    }
    expect(() => loadConfig({ LOGFLOW_MODEL_THREADS: '0', LOGFLOW_MODEL_BATCH_SIZE: 'many' })).toThrow(
      /LOGFLOW_MODEL_THREADS: must be between 1 and 64.*LOGFLOW_MODEL_BATCH_SIZE: must be a whole number/s,
    );
  });

  it('opens the model when its files are present, the hashing embedder when not, the endpoint when set', async () => {
    const empty = await mkdtemp(path.join(os.tmpdir(), 'logflow-no-model-'));
    try {
      const withModel = loadConfig({ LOGFLOW_MODELS_DIR: MODELS_DIR });
      const without = loadConfig({ LOGFLOW_MODELS_DIR: empty });
      const remote = loadConfig({ LOGFLOW_MODELS_DIR: MODELS_DIR, LOGFLOW_EMBEDDINGS_URL: 'http://127.0.0.1:9/v1' });
      expect(embedderChoice(withModel).kind).toBe('model');
      expect(embedderChoice(without)).toMatchObject({ kind: 'hashing' });
      expect(embedderChoice(without).line).toContain('npm run models:fetch');
      expect(embedderChoice(remote).kind).toBe('remote');
      // Each embedding space its own vector collection and cache keys; the older embedders keep the configured one.
      expect([withModel, without, remote].map(vectorCollection)).toEqual([
        'log_embeddings_all_minilm_l6_v2_q_384',
        'log_embeddings',
        'log_embeddings',
      ]);
      expect(embeddingCacheKey(MODEL_NAME, '42', MODEL_DIMENSION)).toBe('all-minilm-l6-v2-q/384:42');
      const opened = [openEmbedder(withModel), openEmbedder(without), openEmbedder(remote)];
      try {
        expect(opened.map((e) => e.model)).toEqual([MODEL_NAME, LOCAL_EMBEDDING_MODEL, 'jina-embeddings-v2-base-en']);
        expect((await opened[0]!.embed(['hello']))[0]).toHaveLength(MODEL_DIMENSION);
      } finally {
        await Promise.all(opened.map((e) => e.close()));
      }
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});
