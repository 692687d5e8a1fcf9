/**
 * The embeddings service over real HTTP with the real Redis as its cache: it
 * answers with the default embedder's own unit vectors, serves a repeat from
 * Redis, is usable as the endpoint of the remote embedder vectorize runs in
 * server mode, and stops cleanly.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { textCacheKey } from '../../src/api/embeddings/text-cache.ts';
import { createOpenAIEmbedder, openEmbedder, type Embedder } from '../../src/clients/embeddings.ts';
import { loadConfig } from '../../src/core/config.ts';
import { ErrorCodes } from '../../src/core/errors.ts';
import { encodeVector } from '../../src/stores/embedding-cache.ts';
import {
  postEmbeddings,
  startEmbeddingsService,
  type EmbeddingsServiceUnderTest,
} from '../support/embeddings-service.ts';
import { REDIS_URL } from '../support/services.ts';

/** The cache's default key prefix (src/stores/embedding-cache.ts), which the service's cache uses. */
const PREFIX = 'logflow:embedding:';

const norm = (v: ArrayLike<number>): number => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0));
const maxDifference = (a: ArrayLike<number>, b: ArrayLike<number>): number =>
  Array.from(a).reduce((m, x, i) => Math.max(m, Math.abs(x - (b[i] ?? Number.NaN))), 0);

async function metricValue(url: string, name: string, labels: string): Promise<number> {
  const text = await (await fetch(new URL('/metrics', url))).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

describe('embeddings service', () => {
  let service: EmbeddingsServiceUnderTest;
  let reference: Embedder;
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
  const written: string[] = [];
  // Texts of this run only, so that the cache starts empty for them whatever earlier runs left in Redis.
  const run = randomUUID();
  const texts = [
    `Connection refused by redis at 10.0.0.5:6379 (${run})`,
    `Disk /var/lib/postgresql is 98% full (${run})`,
    `User admin failed to authenticate from 192.168.1.20 (${run})`,
  ];

  beforeAll(async () => {
    service = await startEmbeddingsService();
    reference = openEmbedder(loadConfig({}));
  });
  afterAll(async () => {
    await service?.close();
    await reference?.close();
    if (written.length > 0) await redis.del(...written);
    await redis.quit();
  });

  it("answers with the default embedder's own unit vectors, in OpenAI's response shape", async () => {
    const { status, json } = await postEmbeddings(service.url, { input: texts, encoding_format: 'float' });
    expect(status).toBe(200);
    expect(json.object).toBe('list');
    expect(json.model).toBe(reference.model);
    expect(json.data.map((d) => [d.object, d.index])).toEqual([
      ['embedding', 0],
      ['embedding', 1],
      ['embedding', 2],
    ]);
    expect(json.usage.prompt_tokens).toBeGreaterThan(0);
    expect(json.usage.total_tokens).toBe(json.usage.prompt_tokens);
    const own = await reference.embed(texts);
    json.data.forEach((item, i) => {
      const vector = item.embedding as number[];
      expect(vector).toHaveLength(reference.dimension!);
      expect(norm(vector)).toBeCloseTo(1, 5);
      expect(maxDifference(vector, own[i]!)).toBeLessThan(1e-6);
    });
  });

  it('keeps each vector in Redis under the model name and dimension, and answers a repeat from there', async () => {
    const keys = texts.map((t) => PREFIX + textCacheKey(reference.model, reference.dimension!, t));
    written.push(...keys);
    expect(await redis.exists(...keys)).toBe(texts.length);

    // A vector no embedder would give for this text: if the service answers with it, the answer came from Redis.
    const marker = new Float32Array(reference.dimension!);
    marker[7] = 1;
    await redis.set(keys[1]!, encodeVector(marker), 'PX', 60_000);
    const fromCacheBefore = await metricValue(service.url, 'logflow_embeddings_service_texts_total', 'source="cache"');
    const { status, json } = await postEmbeddings(service.url, { input: texts });
    expect(status).toBe(200);
    expect(json.data[1]!.embedding).toEqual(Array.from(marker));
    expect(maxDifference(json.data[0]!.embedding as number[], (await reference.embed([texts[0]!]))[0]!)).toBeLessThan(
      1e-6,
    );
    expect(await metricValue(service.url, 'logflow_embeddings_service_texts_total', 'source="cache"')).toBe(
      fromCacheBefore + texts.length,
    );
  });

  it('takes a single string, and base64 encoding as OpenAI sends it by default', async () => {
    const text = `Out of memory: killed process 4242 (java) (${run})`;
    written.push(PREFIX + textCacheKey(reference.model, reference.dimension!, text));
    const single = await postEmbeddings(service.url, { input: text });
    expect(single.status).toBe(200);
    expect(single.json.data).toHaveLength(1);
    const encoded = await postEmbeddings(service.url, { input: [text], encoding_format: 'base64' });
    expect(encoded.status).toBe(200);
    const bytes = Buffer.from(encoded.json.data[0]!.embedding as string, 'base64');
    const decoded = Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4));
    expect(decoded).toEqual(single.json.data[0]!.embedding);
  });

  it('lists the one model it serves, and reports health', async () => {
    const models = (await (await fetch(`${service.url}/models`)).json()) as { data: Array<{ id: string }> };
    expect(models.data.map((m) => m.id)).toEqual([reference.model]);
    expect((await fetch(new URL('/healthz', service.url))).status).toBe(200);
  });

  it("is an endpoint for the remote embedder vectorize runs in server mode: same vectors as the service's model", async () => {
    const remote = createOpenAIEmbedder({ url: service.url, model: reference.model, maxRetries: 0 });
    try {
      const round = [`Kafka consumer group rebalancing (${run})`, texts[0]!];
      written.push(PREFIX + textCacheKey(reference.model, reference.dimension!, round[0]!));
      const vectors = await remote.embed(round);
      const own = await reference.embed(round);
      expect(remote.dimension).toBe(reference.dimension);
      vectors.forEach((v, i) => expect(maxDifference(v, own[i]!)).toBeLessThan(1e-6));
    } finally {
      await remote.close();
    }
  });

  it('refuses a remote embedder that names another model, as a configuration error it will not retry', async () => {
    const remote = createOpenAIEmbedder({ url: service.url, model: 'jina-embeddings-v2-base-en', maxRetries: 0 });
    try {
      const failure = remote.embed(['anything']);
      await expect(failure).rejects.toMatchObject({ code: ErrorCodes.CONFIG_INVALID, retriable: false });
      await expect(failure).rejects.toThrow(/jina-embeddings-v2-base-en.*is not served here/);
    } finally {
      await remote.close();
    }
  });
});

describe('embeddings service stop', () => {
  it('stops on request and closes its port', async () => {
    const service = await startEmbeddingsService();
    try {
      expect((await postEmbeddings(service.url, { input: 'before the stop' })).status).toBe(200);
      expect(await service.running.stop()).toEqual({ status: 'stopped' });
      await expect(fetch(`${service.url}/models`)).rejects.toThrow();
    } finally {
      await service.resources.close();
    }
  });
});
