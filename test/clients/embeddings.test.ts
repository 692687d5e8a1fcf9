import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/core/config.ts';
import {
  createLocalEmbedder,
  createOpenAIEmbedder,
  DEFAULT_LOCAL_DIMENSION,
  fnv1a32,
  LOCAL_EMBEDDING_MODEL,
  localEmbedding,
  openAIErrorRules,
  openEmbedder,
  resolveBaseUrl,
  type Embedder,
  type OpenAIEmbedderOptions,
} from '../../src/clients/embeddings.ts';
import { classify, ErrorCodes, InputError, LogflowError } from '../../src/core/errors.ts';
import { RetryExhaustedError, type RetryInfo } from '../../src/core/retry.ts';
import { startOpenAIServer, type OpenAITestServer } from '../support/openai-server.ts';

const cosine = (a: Float32Array, b: Float32Array): number => a.reduce((sum, v, i) => sum + v * (b[i] ?? NaN), 0);
const norm = (v: Float32Array): number => Math.sqrt(v.reduce((sum, x) => sum + x * x, 0));

/** Strings of arbitrary UTF-16 code units, lone surrogates included. */
const anyUtf16 = fc.string({
  unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
  maxLength: 200,
});
const anyText = fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 200 }), anyUtf16);

/** FNV-1a as its specification states it: over the bytes, here as TextEncoder writes them. */
function referenceFnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text))
    hash = Number((BigInt((hash ^ byte) >>> 0) * 0x01000193n) & 0xffffffffn);
  return hash >>> 0;
}

describe('fnv1a32', () => {
  it('matches the published FNV-1a test vectors', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
  });

  it('hashes the UTF-8 bytes, lone surrogates as U+FFFD (property, against the byte-wise definition)', () => {
    fc.assert(fc.property(anyText, (text) => fnv1a32(text) === referenceFnv1a32(text)));
  });
});

describe('localEmbedding', () => {
  it('is deterministic, unit length and finite for any string, and never throws (property)', () => {
    fc.assert(
      fc.property(anyText, fc.integer({ min: 1, max: 512 }), (text, dimension) => {
        const a = localEmbedding(text, dimension);
        const b = localEmbedding(text, dimension);
        expect(a).toHaveLength(dimension);
        expect(Array.from(a)).toEqual(Array.from(b));
        expect(a.every((v) => Number.isFinite(v))).toBe(true);
        expect(Math.abs(norm(a) - 1)).toBeLessThan(1e-5);
      }),
    );
  });

  it('gives texts without tokens one fixed unit vector, not NaN', () => {
    const empty = localEmbedding('', 16);
    expect(Array.from(empty)).toEqual(new Array(16).fill(Math.fround(1 / 4)));
    for (const text of ['   ', '!!! ... ---', '\u0000\u0001'])
      expect(Array.from(localEmbedding(text, 16))).toEqual(Array.from(empty));
  });

  it('ignores case and the kind of separator, but not the placeholder', () => {
    expect(Array.from(localEmbedding('Connection TIMEOUT to db'))).toEqual(
      Array.from(localEmbedding('connection timeout to db')),
    );
    expect(Array.from(localEmbedding('connection-timeout: db'))).toEqual(
      Array.from(localEmbedding('connection timeout db')),
    );
    expect(Array.from(localEmbedding('user <*> logged in'))).not.toEqual(Array.from(localEmbedding('user logged in')));
  });

  it('is the same vector in another process', async () => {
    const texts = ['Database connection timeout after <*> ms', 'ünïcödé 日本語 🙂', ''];
    const moduleUrl = new URL('../../src/clients/embeddings.ts', import.meta.url).href;
    const script = `const { localEmbedding } = await import(${JSON.stringify(moduleUrl)});
      process.stdout.write(JSON.stringify(${JSON.stringify(texts)}.map((t) => Buffer.from(localEmbedding(t, 96).buffer).toString('base64'))));`;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      {
        cwd: fileURLToPath(new URL('..', import.meta.url)),
      },
    );
    const here = texts.map((t) => Buffer.from(localEmbedding(t, 96).buffer).toString('base64'));
    expect(JSON.parse(stdout)).toEqual(here);
  });

  it('puts similar templates closer than unrelated ones', () => {
    const e = (text: string) => localEmbedding(text);
    const dbTimeout1 = e('Database connection timeout after <*> ms to <*>');
    const dbTimeout2 = e('Timed out waiting for database connection from pool <*> after <*> ms');
    const dbTimeout3 = e('Query timeout on database <*> after <*> seconds');
    const login = e('User <*> logged in successfully from <*>');
    const refused1 = e('Failed to connect to redis at <*>: connection refused');
    const refused2 = e('Connection refused connecting to <*>');
    const payment = e('Payment declined for order <*>: insufficient funds');

    expect(cosine(dbTimeout1, dbTimeout2)).toBeGreaterThan(cosine(dbTimeout1, login) + 0.2);
    expect(cosine(dbTimeout1, dbTimeout3)).toBeGreaterThan(cosine(dbTimeout1, login) + 0.2);
    expect(cosine(dbTimeout2, dbTimeout3)).toBeGreaterThan(cosine(dbTimeout2, payment) + 0.1);
    expect(cosine(refused1, refused2)).toBeGreaterThan(cosine(refused1, login) + 0.2);
    expect(cosine(refused1, refused2)).toBeGreaterThan(cosine(refused1, payment) + 0.2);
  });

  it('counts a word inflected or compounded as close to its stem (character n-grams)', () => {
    const base = localEmbedding('request timeout');
    expect(cosine(base, localEmbedding('request timeouts'))).toBeGreaterThan(
      cosine(base, localEmbedding('request accepted')),
    );
  });

  it('refuses a dimension that is not a positive integer', () => {
    for (const dimension of [0, -1, 1.5, Number.NaN, 1_000_000]) {
      expect(() => localEmbedding('x', dimension)).toThrow(
        expect.objectContaining({ code: ErrorCodes.CONFIG_INVALID }),
      );
    }
  });
});

describe('createLocalEmbedder', () => {
  it('embeds with the local model at 256 dimensions by default', async () => {
    const embedder = createLocalEmbedder();
    expect(embedder.model).toBe(LOCAL_EMBEDDING_MODEL);
    expect(embedder.dimension).toBe(DEFAULT_LOCAL_DIMENSION);
    const vectors = await embedder.embed(['disk full', 'user logged in']);
    expect(vectors.map((v) => Array.from(v))).toEqual([
      Array.from(localEmbedding('disk full')),
      Array.from(localEmbedding('user logged in')),
    ]);
    expect(await embedder.embed([])).toEqual([]);
    expect((await embedder.health()).ok).toBe(true);
  });

  it('names another dimension as another model, so cached vectors of one are never served for the other', () => {
    const embedder = createLocalEmbedder({ dimension: 64 });
    expect(embedder.dimension).toBe(64);
    expect(embedder.model).not.toBe(LOCAL_EMBEDDING_MODEL);
    expect(embedder.model).toContain(LOCAL_EMBEDDING_MODEL);
  });

  it('refuses non-strings, and everything once closed', async () => {
    const embedder = createLocalEmbedder();
    await expect(embedder.embed(['ok', 3 as unknown as string])).rejects.toBeInstanceOf(InputError);
    await embedder.close();
    await expect(embedder.embed(['x'])).rejects.toMatchObject({ code: ErrorCodes.SHUTDOWN });
    expect(await embedder.health()).toEqual({ ok: false, detail: 'closed' });
  });
});

describe('openAIErrorRules', () => {
  const headers = new Headers();
  const cases: Array<[string, Error, string, boolean]> = [
    [
      'connection failure',
      new APIConnectionError({ message: 'Connection error.' }),
      ErrorCodes.UPSTREAM_UNAVAILABLE,
      true,
    ],
    ['client timeout', new APIConnectionTimeoutError(), ErrorCodes.TIMEOUT, true],
    ['408', APIError.generate(408, { message: 'timeout' }, undefined, headers), ErrorCodes.TIMEOUT, true],
    [
      '429',
      APIError.generate(429, { message: 'slow down' }, undefined, headers),
      ErrorCodes.UPSTREAM_UNAVAILABLE,
      true,
    ],
    ['500', APIError.generate(500, { message: 'boom' }, undefined, headers), ErrorCodes.UPSTREAM_UNAVAILABLE, true],
    ['503', APIError.generate(503, { message: 'busy' }, undefined, headers), ErrorCodes.UPSTREAM_UNAVAILABLE, true],
    ['400', APIError.generate(400, { message: 'bad input' }, undefined, headers), ErrorCodes.INPUT_INVALID, false],
    ['422', APIError.generate(422, { message: 'bad input' }, undefined, headers), ErrorCodes.INPUT_INVALID, false],
    ['401', APIError.generate(401, { message: 'bad key' }, undefined, headers), ErrorCodes.CONFIG_INVALID, false],
    ['403', APIError.generate(403, { message: 'forbidden' }, undefined, headers), ErrorCodes.CONFIG_INVALID, false],
    ['404', APIError.generate(404, { message: 'no such model' }, undefined, headers), ErrorCodes.CONFIG_INVALID, false],
    ['our own abort', new APIUserAbortError(), ErrorCodes.SHUTDOWN, false],
    [
      'a JSON body that does not parse',
      new SyntaxError('Unexpected end of JSON input'),
      ErrorCodes.LLM_OUTPUT_INVALID,
      false,
    ],
  ];

  it.each(cases)('classifies %s', (_name, error, code, retriable) => {
    const classified = classify(error, openAIErrorRules({ timeoutsRetriable: true }), 'embed');
    expect({ code: classified.code, retriable: classified.retriable }).toEqual({ code, retriable });
  });

  it('leaves whether timeouts are retried to the caller', () => {
    const rules = openAIErrorRules({ timeoutsRetriable: false });
    expect(classify(new APIConnectionTimeoutError(), rules, 'llm').retriable).toBe(false);
    expect(classify(APIError.generate(408, undefined, undefined, headers), rules, 'llm').retriable).toBe(false);
  });
});

describe('resolveBaseUrl', () => {
  it('adds /v1 only to a URL without a path', () => {
    expect(resolveBaseUrl('http://tei:8080')).toBe('http://tei:8080/v1');
    expect(resolveBaseUrl('http://tei:8080/')).toBe('http://tei:8080/v1');
    expect(resolveBaseUrl('https://api.openai.com/v1/')).toBe('https://api.openai.com/v1');
    expect(resolveBaseUrl('https://gateway/openai/v1')).toBe('https://gateway/openai/v1');
  });
});

describe('createOpenAIEmbedder against the local OpenAI server', () => {
  let server: OpenAITestServer | undefined;
  let embedder: Embedder | undefined;

  afterEach(async () => {
    await embedder?.close();
    await server?.close();
    embedder = undefined;
    server = undefined;
  });

  async function setUp(
    serverOptions: Parameters<typeof startOpenAIServer>[0] = {},
    options: Partial<OpenAIEmbedderOptions> = {},
  ): Promise<{ server: OpenAITestServer; embedder: Embedder }> {
    server = await startOpenAIServer({ embeddingDimension: 48, ...serverOptions });
    embedder = createOpenAIEmbedder({
      url: server.url,
      model: 'test-embed',
      backoff: { baseDelayMs: 1, maxDelayMs: 5, jitter: 'none' },
      ...options,
    });
    return { server, embedder };
  }

  const texts = (n: number) =>
    Array.from({ length: n }, (_, i) => `pattern ${i}: ${i % 3 === 0 ? 'timeout' : 'refused'} on host <*>`);

  it('sends batches of batchSize and returns one vector per text in order', async () => {
    const { server, embedder } = await setUp({}, { batchSize: 64 });
    const input = texts(150);
    const vectors = await embedder.embed(input);
    const requests = server.requests.filter((r) => r.endpoint === 'embeddings');
    expect(requests.map((r) => (r.body as { input: string[] }).input.length)).toEqual([64, 64, 22]);
    expect(requests.every((r) => (r.body as { model: string; encoding_format: string }).model === 'test-embed')).toBe(
      true,
    );
    expect(requests.every((r) => (r.body as { encoding_format: string }).encoding_format === 'float')).toBe(true);
    expect(server.embeddedInputs()).toEqual(input);
    expect(vectors).toHaveLength(150);
    vectors.forEach((v, i) => {
      const expected = localEmbedding(input[i] ?? '', 48);
      expect(cosine(v, expected)).toBeCloseTo(1, 5);
    });
  });

  it('adds no lasting abort listener per request (no MaxListenersExceededWarning over many requests)', async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.name);
    process.on('warning', onWarning);
    try {
      const { server, embedder } = await setUp({}, { batchSize: 1, concurrency: 1 });
      await embedder.embed(texts(40));
      expect(server.requests.filter((r) => r.endpoint === 'embeddings')).toHaveLength(40);
      // Warnings are emitted on the next tick.
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('returns unit vectors when the server does not normalize, and learns the dimension', async () => {
    const { embedder } = await setUp({ embeddingScale: 7.5 });
    expect(embedder.dimension).toBeUndefined();
    const [v] = await embedder.embed(['disk full on <*>']);
    expect(norm(v as Float32Array)).toBeCloseTo(1, 5);
    expect(v).toBeInstanceOf(Float32Array);
    expect(embedder.dimension).toBe(48);
  });

  it('orders by index, not by position in the answer', async () => {
    const { embedder } = await setUp({ reverseEmbeddingOrder: true }, { batchSize: 10 });
    const input = texts(7);
    const vectors = await embedder.embed(input);
    vectors.forEach((v, i) => expect(cosine(v, localEmbedding(input[i] ?? '', 48))).toBeCloseTo(1, 5));
  });

  it('keeps at most `concurrency` requests in flight, across calls', async () => {
    const { server, embedder } = await setUp({}, { batchSize: 2, concurrency: 3 });
    server.delayMs = 40;
    const [a, b] = await Promise.all([embedder.embed(texts(12)), embedder.embed(texts(8))]);
    expect(a).toHaveLength(12);
    expect(b).toHaveLength(8);
    expect(server.requests).toHaveLength(10);
    expect(server.maxInFlight).toBe(3);
  });

  it('sends nothing for no texts', async () => {
    const { server, embedder } = await setUp();
    expect(await embedder.embed([])).toEqual([]);
    expect(server.requests).toHaveLength(0);
  });

  it.each([500, 429, 503])('retries after %i and then succeeds', async (status) => {
    const retries: RetryInfo[] = [];
    const { server, embedder } = await setUp({}, { onRetry: (info) => retries.push(info) });
    server.failNext(status, 2);
    const vectors = await embedder.embed(['a', 'b']);
    expect(vectors).toHaveLength(2);
    expect(server.requests.map((r) => r.status)).toEqual([status, status, 200]);
    expect(retries.map((r) => r.attempt)).toEqual([1, 2]);
  });

  it('gives up after maxRetries with the last error, still UPSTREAM_UNAVAILABLE', async () => {
    const { server, embedder } = await setUp({}, { maxRetries: 2 });
    server.failNext(500, 10);
    const error = await embedder.embed(['a']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetryExhaustedError);
    expect(error).toMatchObject({
      code: ErrorCodes.UPSTREAM_UNAVAILABLE,
      retriable: false,
      attempts: 3,
      stage: 'embed',
    });
    expect((error as Error).message).toMatch(/embeddings request .*\/v1\/embeddings.*500/);
    expect(server.requests).toHaveLength(3);
  });

  it('does not retry a request the server refuses (400)', async () => {
    const { server, embedder } = await setUp();
    const error = await embedder.embed(['fine', '']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LogflowError);
    expect(error).toMatchObject({
      code: ErrorCodes.INPUT_INVALID,
      retriable: false,
      stage: 'embed',
      details: { status: 400 },
    });
    expect(server.requests).toHaveLength(1);
  });

  it.each([401, 403, 404])('does not retry %i, a configuration problem', async (status) => {
    const { server, embedder } = await setUp();
    server.failNext(status);
    await expect(embedder.embed(['a'])).rejects.toMatchObject({ code: ErrorCodes.CONFIG_INVALID, retriable: false });
    expect(server.requests).toHaveLength(1);
  });

  it('sends the API key as a bearer token, and reports a wrong one', async () => {
    const { embedder, server } = await setUp({ apiKey: 'sk-right' }, { apiKey: 'sk-right' });
    expect(await embedder.embed(['a'])).toHaveLength(1);
    expect(server.requests[0]?.authorization).toBe('Bearer sk-right');
    const wrong = createOpenAIEmbedder({ url: server.url, model: 'm', apiKey: 'sk-wrong' });
    await expect(wrong.embed(['a'])).rejects.toMatchObject({ code: ErrorCodes.CONFIG_INVALID });
    await wrong.close();
  });

  it('retries a server that does not answer in time', async () => {
    const { server, embedder } = await setUp({}, { timeoutMs: 100, maxRetries: 1 });
    server.delayMs = 1000;
    const error = await embedder.embed(['a']).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: ErrorCodes.TIMEOUT, attempts: 2 });
    expect(server.requests).toHaveLength(2);
  });

  it('retries when nothing listens, then gives up', async () => {
    const gone = await startOpenAIServer();
    const url = gone.url;
    await gone.close();
    embedder = createOpenAIEmbedder({ url, model: 'm', maxRetries: 2, backoff: { baseDelayMs: 1, jitter: 'none' } });
    const error = await embedder.embed(['a']).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: ErrorCodes.UPSTREAM_UNAVAILABLE, attempts: 3 });
    expect((error as Error).message).toMatch(/Connection error\. \(fetch failed: connect ECONNREFUSED/);
  });

  it('accepts a URL without /v1', async () => {
    server = await startOpenAIServer();
    embedder = createOpenAIEmbedder({ url: server.origin, model: 'm' });
    expect(await embedder.embed(['a'])).toHaveLength(1);
    expect(server.requests[0]?.path).toBe('/v1/embeddings');
  });

  const malformed: Array<[string, { json: unknown } | { text: string; contentType: string }, RegExp]> = [
    ['no data', { json: { object: 'list' } }, /data: /],
    ['too few embeddings', { json: { data: [{ index: 0, embedding: [1, 0] }] } }, /1 embeddings for 2 inputs/],
    [
      'an empty embedding',
      {
        json: {
          data: [
            { index: 0, embedding: [] },
            { index: 1, embedding: [1] },
          ],
        },
      },
      /data\[0\]\.embedding: is empty/,
    ],
    [
      'a string in an embedding',
      {
        json: {
          data: [
            { index: 0, embedding: [1, 'x'] },
            { index: 1, embedding: [1, 2] },
          ],
        },
      },
      /data\[0\]\.embedding\[1\]/,
    ],
    [
      'a null in an embedding',
      {
        json: {
          data: [
            { index: 0, embedding: [1, 2] },
            { index: 1, embedding: [null, 2] },
          ],
        },
      },
      /data\[1\]\.embedding\[0\]/,
    ],
    [
      'an infinite number',
      {
        text: '{"data":[{"index":0,"embedding":[1e999,1]},{"index":1,"embedding":[1,1]}]}',
        contentType: 'application/json',
      },
      /data\[0\]\.embedding\[0\]/,
    ],
    [
      'mixed dimensions',
      {
        json: {
          data: [
            { index: 0, embedding: [1, 2] },
            { index: 1, embedding: [1, 2, 3] },
          ],
        },
      },
      /different dimensions in one response \(2 and 3 at data\[1\]\)/,
    ],
    [
      'an index twice',
      {
        json: {
          data: [
            { index: 0, embedding: [1, 2] },
            { index: 0, embedding: [1, 2] },
          ],
        },
      },
      /index 0 appears more than once/,
    ],
    [
      'an index out of range',
      {
        json: {
          data: [
            { index: 0, embedding: [1, 2] },
            { index: 2, embedding: [1, 2] },
          ],
        },
      },
      /index is 2, outside 0\.\.1/,
    ],
    [
      'a negative index',
      {
        json: {
          data: [
            { index: -1, embedding: [1, 2] },
            { index: 1, embedding: [1, 2] },
          ],
        },
      },
      /data\[0\]\.index/,
    ],
    [
      'an all-zero embedding',
      {
        json: {
          data: [
            { index: 0, embedding: [0, 0] },
            { index: 1, embedding: [1, 2] },
          ],
        },
      },
      /input 0 is all zeros/,
    ],
    ['an HTML page', { text: '<html>gateway</html>', contentType: 'text/html' }, /text body instead of JSON/],
    ['JSON that does not parse', { text: '{"data": [', contentType: 'application/json' }, /JSON/],
  ];

  it.each(malformed)('rejects output with %s, clearly and without retrying', async (_name, response, message) => {
    const { server, embedder } = await setUp();
    server.respondNext('embeddings', response);
    const error = await embedder.embed(['a', 'b']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LogflowError);
    expect(error).toMatchObject({ code: ErrorCodes.LLM_OUTPUT_INVALID, retriable: false, stage: 'embed' });
    expect((error as Error).message).toMatch(message);
    expect(server.requests).toHaveLength(1);
    expect((await embedder.health()).ok).toBe(false);
  });

  it('refuses an answer whose dimension differs from earlier ones', async () => {
    const { server, embedder } = await setUp();
    await embedder.embed(['first']);
    server.respondNext('embeddings', { json: { data: [{ index: 0, embedding: [1, 2, 3] }] } });
    await expect(embedder.embed(['second'])).rejects.toThrow(/dimension changed from 48 to 3/);
    expect(embedder.dimension).toBe(48);
  });

  it('fails the whole call when one batch fails, without sending the batches still queued', async () => {
    const { server, embedder } = await setUp({}, { batchSize: 1, concurrency: 1 });
    server.respondNext('embeddings', { json: { data: [] } });
    await expect(embedder.embed(['a', 'b', 'c'])).rejects.toMatchObject({ code: ErrorCodes.LLM_OUTPUT_INVALID });
    expect(server.requests).toHaveLength(1);
  });

  it('ends requests in flight and refuses new ones once closed', async () => {
    const { server, embedder } = await setUp();
    server.delayMs = 10_000;
    const pending = embedder.embed(['a']).catch((e: unknown) => e);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await embedder.close();
    expect(await pending).toMatchObject({ code: ErrorCodes.SHUTDOWN });
    await expect(embedder.embed(['b'])).rejects.toMatchObject({ code: ErrorCodes.SHUTDOWN });
    expect(await embedder.health()).toEqual({ ok: false, detail: 'closed' });
  });

  it('reports in health how the last request went', async () => {
    const { server, embedder } = await setUp({}, { maxRetries: 0 });
    expect(await embedder.health()).toMatchObject({ ok: true, detail: expect.stringContaining('no request yet') });
    server.failNext(500);
    await embedder.embed(['a']).catch(() => undefined);
    expect(await embedder.health()).toMatchObject({ ok: false, detail: expect.stringContaining('500') });
    await embedder.embed(['a']);
    expect(await embedder.health()).toMatchObject({ ok: true, detail: expect.stringContaining('48 dimensions') });
  });

  it('refuses invalid options, listing every problem', () => {
    let error: unknown;
    try {
      createOpenAIEmbedder({ url: 'ftp://x', model: '', batchSize: 0, concurrency: 0, maxRetries: -1, timeoutMs: 0 });
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: ErrorCodes.CONFIG_INVALID });
    const message = (error as Error).message;
    for (const part of ['url', 'model', 'batchSize', 'concurrency', 'maxRetries', 'timeoutMs'])
      expect(message).toContain(part);
  });
});

describe('openEmbedder', () => {
  it('is local without LOGFLOW_EMBEDDINGS_URL and remote with it', async () => {
    // A models directory without the model: the hashing embedder (the model's case: test/clients/model-embedder.test.ts).
    const noModel = await mkdtemp(path.join(os.tmpdir(), 'logflow-no-model-'));
    const local = openEmbedder(loadConfig({ LOGFLOW_MODELS_DIR: noModel }));
    expect(local.model).toBe(LOCAL_EMBEDDING_MODEL);
    await local.close();
    await rm(noModel, { recursive: true, force: true });

    const server = await startOpenAIServer({ apiKey: 'sk-config' });
    try {
      const remote = openEmbedder(
        loadConfig({
          LOGFLOW_EMBEDDINGS_URL: server.url,
          LOGFLOW_EMBEDDINGS_API_KEY: 'sk-config',
          LOGFLOW_EMBEDDINGS_MODEL: 'configured-model',
        }),
      );
      expect(remote.model).toBe('configured-model');
      expect(await remote.embed(['x'])).toHaveLength(1);
      expect(server.requests[0]).toMatchObject({
        authorization: 'Bearer sk-config',
        body: expect.objectContaining({ model: 'configured-model' }),
      });
      await remote.close();
    } finally {
      await server.close();
    }
  });
});
