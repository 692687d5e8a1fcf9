/**
 * What the embeddings service refuses, over real HTTP: every refusal is a 4xx
 * with OpenAI's error body, whose message names the field and the problem,
 * and nothing reaches the embedder.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  postEmbeddings,
  startEmbeddingsService,
  type EmbeddingsServiceUnderTest,
} from '../support/embeddings-service.ts';

describe('embeddings service input validation', () => {
  let service: EmbeddingsServiceUnderTest;
  beforeAll(async () => {
    service = await startEmbeddingsService({ 'max-inputs': '4', 'max-text-chars': '100' });
  });
  afterAll(async () => service?.close());

  const cases: ReadonlyArray<readonly [string, unknown, RegExp, string | null]> = [
    ['no input', { model: undefined }, /^input: /, 'input'],
    ['a number', { input: 42 }, /input: must be a string or an array of strings/, 'input'],
    ['token arrays', { input: [[101, 2023, 102]] }, /token arrays are not accepted/, 'input[0]'],
    ['an empty list', { input: [] }, /input: must hold at least one text/, 'input'],
    ['more texts than --max-inputs', { input: ['a', 'b', 'c', 'd', 'e'] }, /holds more than 4 texts/, 'input'],
    ['a text over --max-text-chars', { input: ['ok', 'x'.repeat(101)] }, /input\[1\]: is longer than 100/, 'input[1]'],
    ['an unknown encoding', { input: 'a', encoding_format: 'int8' }, /^encoding_format: /, 'encoding_format'],
    ['a body that is not an object', ['a'], /^body: /, null],
  ];

  for (const [what, body, message, param] of cases) {
    it(`answers 400 to ${what}`, async () => {
      const { status, json } = await postEmbeddings(service.url, body);
      expect(status).toBe(400);
      expect(json.error.type).toBe('invalid_request_error');
      expect(json.error.message).toMatch(message);
      expect(json.error.param).toBe(param);
    });
  }

  it('answers 400 to malformed JSON, in the same error shape', async () => {
    const { status, json } = await postEmbeddings(service.url, '{"input": [', true);
    expect(status).toBe(400);
    expect(json.error.type).toBe('invalid_request_error');
    expect(json.error.message).toMatch(/JSON/);
  });

  it('answers 400 to JSON nested deeper than the API allows, before parsing it', async () => {
    const { status, json } = await postEmbeddings(service.url, `{"input": ${'['.repeat(100)}${']'.repeat(100)}}`, true);
    expect(status).toBe(400);
    expect(json.error.type).toBe('invalid_request_error');
    expect(json.error.message).toMatch(/nested deeper than 64 levels/);
  });

  it('answers 404 model_not_found to another model, naming the one it serves', async () => {
    const { status, json } = await postEmbeddings(service.url, { input: 'a', model: 'text-embedding-3-small' });
    expect(status).toBe(404);
    expect(json.error).toMatchObject({ type: 'invalid_request_error', code: 'model_not_found', param: 'model' });
    expect(json.error.message).toContain('`text-embedding-3-small` is not served here');
  });

  it('counts refusals by status in its metrics, and has embedded nothing for them', async () => {
    await postEmbeddings(service.url, { input: 42 });
    const text = await (await fetch(new URL('/metrics', service.url))).text();
    expect(text).toMatch(/^logflow_embeddings_service_requests_total\{status="400"\} [1-9]/m);
    expect(text).toMatch(/^logflow_embeddings_service_requests_total\{status="404"\} 1$/m);
    expect(text).not.toMatch(/^logflow_embeddings_service_requests_total\{status="200"\}/m);
    expect(text).not.toMatch(/^logflow_embeddings_service_texts_total\{source="embedder"\} [1-9]/m);
  });
});
