/**
 * The OpenAI test server stands in for real endpoints, so it must answer in
 * their shapes and refuse what they refuse: these tests speak raw HTTP to
 * it, outside the `openai` package, including requests no client would send.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { localEmbedding } from '../../src/clients/embeddings.ts';
import {
  defaultReportContent,
  startOpenAIServer,
  strictSchemaProblems,
  type OpenAITestServer,
} from './openai-server.ts';

let server: OpenAITestServer | undefined;

async function start(options: Parameters<typeof startOpenAIServer>[0] = {}): Promise<OpenAITestServer> {
  server = await startOpenAIServer(options);
  return server;
}

afterEach(async () => {
  await server?.close();
  server = undefined;
});

interface Reply {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Record<string, unknown>;
}

async function post(
  s: OpenAITestServer,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const response = await fetch(`${s.origin}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as Record<string, unknown>,
  };
}

const errorOf = (reply: Reply) =>
  reply.body.error as { message: string; type: string; code: string | null; param: string | null };

const chatBody = (user: string, extra: Record<string, unknown> = {}) => ({
  model: 'test-model',
  messages: [
    { role: 'system', content: 'You write reports.' },
    { role: 'user', content: user },
  ],
  ...extra,
});

describe('POST /v1/embeddings', () => {
  it('answers one embedding per input in OpenAI shape, the local embedding scaled', async () => {
    const s = await start({ embeddingDimension: 32, embeddingScale: 3 });
    const reply = await post(s, '/v1/embeddings', {
      model: 'm1',
      input: ['disk full on <*>', 'user logged in'],
      encoding_format: 'float',
    });
    expect(reply.status).toBe(200);
    expect(reply.body.object).toBe('list');
    expect(reply.body.model).toBe('m1');
    expect(reply.body.usage).toEqual({ prompt_tokens: expect.any(Number), total_tokens: expect.any(Number) });
    const data = reply.body.data as Array<{ object: string; index: number; embedding: number[] }>;
    expect(data.map((d) => [d.object, d.index])).toEqual([
      ['embedding', 0],
      ['embedding', 1],
    ]);
    const expected = localEmbedding('disk full on <*>', 32);
    expect(data[0]?.embedding).toHaveLength(32);
    data[0]?.embedding.forEach((v, i) => expect(v).toBeCloseTo((expected[i] ?? NaN) * 3, 6));
  });

  it('takes a single string, and answers base64 float32 when asked', async () => {
    const s = await start({ embeddingDimension: 8 });
    const floats = await post(s, '/v1/embeddings', { model: 'm', input: 'one text' });
    const base64 = await post(s, '/v1/embeddings', { model: 'm', input: 'one text', encoding_format: 'base64' });
    const encoded = (base64.body.data as Array<{ embedding: string }>)[0]?.embedding ?? '';
    const bytes = Buffer.from(encoded, 'base64');
    const decoded = Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
    expect(decoded).toEqual(
      (floats.body.data as Array<{ embedding: number[] }>)[0]?.embedding.map((v) => Math.fround(v)),
    );
  });

  it('can answer in reverse index order', async () => {
    const s = await start({ reverseEmbeddingOrder: true });
    const reply = await post(s, '/v1/embeddings', { model: 'm', input: ['a', 'b', 'c'] });
    expect((reply.body.data as Array<{ index: number }>).map((d) => d.index)).toEqual([2, 1, 0]);
  });

  it.each([
    ['no model', { input: ['x'] }, 'model'],
    ['no input', { model: 'm' }, 'input'],
    ['an empty input list', { model: 'm', input: [] }, 'input'],
    ['an empty string', { model: 'm', input: ['ok', ''] }, 'input'],
    ['a non-string input', { model: 'm', input: [1, 2] }, 'input'],
    ['an unknown encoding', { model: 'm', input: ['x'], encoding_format: 'int8' }, 'encoding_format'],
  ])('refuses a request with %s (400, param named)', async (_name, body, param) => {
    const s = await start();
    const reply = await post(s, '/v1/embeddings', body);
    expect(reply.status).toBe(400);
    expect(errorOf(reply)).toMatchObject({ type: 'invalid_request_error', param });
    expect(s.requests[0]?.status).toBe(400);
  });

  it('refuses more than 2048 inputs', async () => {
    const s = await start();
    const reply = await post(s, '/v1/embeddings', {
      model: 'm',
      input: Array.from({ length: 2049 }, (_, i) => `t${i}`),
    });
    expect(reply.status).toBe(400);
  });

  it('records every input text, whatever the answer', async () => {
    const s = await start();
    s.failNext(500);
    await post(s, '/v1/embeddings', { model: 'm', input: ['a', 'b'] });
    await post(s, '/v1/embeddings', { model: 'm', input: 'c' });
    expect(s.embeddedInputs()).toEqual(['a', 'b', 'c']);
  });
});

describe('requests in general', () => {
  it('refuses a body that is not JSON', async () => {
    const s = await start();
    const reply = await post(s, '/v1/chat/completions', '{"model":');
    expect(reply.status).toBe(400);
    expect(s.requests[0]?.body).toBe('{"model":');
  });

  it('answers 404 for unknown paths and 405 for other methods', async () => {
    const s = await start();
    expect((await post(s, '/v1/completions', {})).status).toBe(404);
    expect((await fetch(`${s.url}/embeddings`)).status).toBe(405);
  });

  it('checks the bearer key when one is configured', async () => {
    const s = await start({ apiKey: 'sk-test' });
    const body = { model: 'm', input: ['x'] };
    const missing = await post(s, '/v1/embeddings', body);
    const wrong = await post(s, '/v1/embeddings', body, { authorization: 'Bearer sk-other' });
    const right = await post(s, '/v1/embeddings', body, { authorization: 'Bearer sk-test' });
    expect([missing.status, wrong.status, right.status]).toEqual([401, 401, 200]);
    expect(errorOf(missing).code).toBe('invalid_api_key');
    expect(s.requests.map((r) => r.authorization)).toEqual([undefined, 'Bearer sk-other', 'Bearer sk-test']);
  });

  it('fails the next N requests with the given status, then answers normally', async () => {
    const s = await start();
    s.failNext(500, 2);
    s.failNext(429);
    const statuses: number[] = [];
    let rateLimited: Reply | undefined;
    for (let i = 0; i < 4; i++) {
      const reply = await post(s, '/v1/embeddings', { model: 'm', input: ['x'] });
      statuses.push(reply.status);
      if (reply.status === 429) rateLimited = reply;
    }
    expect(statuses).toEqual([500, 500, 429, 200]);
    expect(errorOf(rateLimited as Reply)).toMatchObject({ type: 'requests', code: 'rate_limit_exceeded' });
    expect(rateLimited?.headers.get('retry-after')).toBe('0');
  });

  it('fails only the endpoint named', async () => {
    const s = await start();
    s.failNext(503, 1, 'chat');
    expect((await post(s, '/v1/embeddings', { model: 'm', input: ['x'] })).status).toBe(200);
    expect((await post(s, '/v1/chat/completions', chatBody('hi'))).status).toBe(503);
    expect((await post(s, '/v1/chat/completions', chatBody('hi'))).status).toBe(200);
  });

  it('answers canned JSON or text when told to', async () => {
    const s = await start();
    s.respondNext('embeddings', { json: { data: 'nonsense' } });
    s.respondNext('embeddings', { status: 200, text: '<html>proxy</html>', contentType: 'text/html' });
    const json = await post(s, '/v1/embeddings', { model: 'm', input: ['x'] });
    expect(json.body).toEqual({ data: 'nonsense' });
    const text = await fetch(`${s.url}/embeddings`, {
      method: 'POST',
      body: JSON.stringify({ model: 'm', input: ['x'] }),
    });
    expect(text.headers.get('content-type')).toBe('text/html');
    expect(await text.text()).toBe('<html>proxy</html>');
  });

  it('delays answers and counts the requests in progress at once', async () => {
    const s = await start();
    s.delayMs = 100;
    const started = performance.now();
    await Promise.all([1, 2, 3].map(() => post(s, '/v1/embeddings', { model: 'm', input: ['x'] })));
    expect(performance.now() - started).toBeGreaterThanOrEqual(90);
    expect(s.maxInFlight).toBe(3);
  });

  it('closes with a delayed request still waiting', async () => {
    const s = await start();
    s.delayMs = 60_000;
    const pending = post(s, '/v1/embeddings', { model: 'm', input: ['x'] }).catch((error: unknown) => error);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await s.close();
    server = undefined;
    expect(await pending).toBeInstanceOf(Error);
  });
});

describe('POST /v1/chat/completions', () => {
  const data = { patterns: [{ errorHash: '42', template: 'disk full on <*>', occurrences: 7 }, { errorHash: '43' }] };
  const userWithData = `Analyse this.\n<logs>\n${JSON.stringify(data)}\n</logs>`;

  it('answers a chat completion whose content is a report rating the first pattern shown', async () => {
    const s = await start();
    const reply = await post(s, '/v1/chat/completions', chatBody(userWithData));
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({ object: 'chat.completion', model: 'test-model' });
    const choices = reply.body.choices as Array<{ message: { role: string; content: string }; finish_reason: string }>;
    expect(choices[0]?.message.role).toBe('assistant');
    expect(choices[0]?.finish_reason).toBe('stop');
    const report = JSON.parse(choices[0]?.message.content ?? '') as { patternSeverity: unknown[] };
    expect(report.patternSeverity).toEqual([
      { errorHash: '42', template: 'disk full on <*>', severity: 'high', occurrences: 7, reason: expect.any(String) },
    ]);
    const usage = reply.body.usage as { prompt_tokens: number; completion_tokens: number; total_tokens: number };
    expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);
    expect(usage.prompt_tokens).toBeGreaterThan(0);
  });

  it('rates nothing when the prompt shows no pattern', () => {
    const content = JSON.parse(
      defaultReportContent({ model: 'm', messages: [{ role: 'user', content: 'no data' }] }),
    ) as { patternSeverity: unknown[] };
    expect(content.patternSeverity).toEqual([]);
  });

  it('answers configured content and usage, or none', async () => {
    const s = await start();
    s.chatContent = (request) => `echo ${request.messages.length}`;
    s.chatUsage = { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 };
    const first = await post(s, '/v1/chat/completions', chatBody('x'));
    expect((first.body.choices as Array<{ message: { content: string } }>)[0]?.message.content).toBe('echo 2');
    expect(first.body.usage).toEqual({ prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 });
    s.chatUsage = null;
    const second = await post(s, '/v1/chat/completions', chatBody('x'));
    expect(second.body).not.toHaveProperty('usage');
  });

  it.each([
    ['no messages', { model: 'm', messages: [] }],
    ['a bad role', { model: 'm', messages: [{ role: 'wizard', content: 'x' }] }],
    ['an unknown response format', chatBody('x', { response_format: { type: 'yaml' } })],
    [
      'a schema without a name',
      chatBody('x', {
        response_format: { type: 'json_schema', json_schema: { strict: true, schema: { type: 'object' } } },
      }),
    ],
  ])('refuses a request with %s', async (_name, body) => {
    const s = await start();
    expect((await post(s, '/v1/chat/completions', body)).status).toBe(400);
  });

  it('refuses a strict json_schema that breaks strict-mode rules, naming the rule', async () => {
    const s = await start();
    const schema = {
      type: 'object',
      properties: { a: { type: 'string' }, b: { type: 'array', items: { type: 'object', properties: {} } } },
      required: ['a'],
    };
    const reply = await post(
      s,
      '/v1/chat/completions',
      chatBody('x', { response_format: { type: 'json_schema', json_schema: { name: 'r', strict: true, schema } } }),
    );
    expect(reply.status).toBe(400);
    const message = errorOf(reply).message;
    expect(message).toContain("#: 'additionalProperties' is required to be supplied and to be false");
    expect(message).toContain("Missing 'b'");
    expect(message).toContain("#/properties/b/items: 'additionalProperties'");
  });

  it('accepts a non-strict schema as is', async () => {
    const s = await start();
    const reply = await post(
      s,
      '/v1/chat/completions',
      chatBody('x', {
        response_format: { type: 'json_schema', json_schema: { name: 'r', schema: { type: 'object' } } },
      }),
    );
    expect(reply.status).toBe(200);
  });
});

describe('strictSchemaProblems', () => {
  it('accepts a closed schema with every property required', () => {
    const schema = {
      type: 'object',
      additionalProperties: false,
      required: ['a', 'b'],
      properties: {
        a: { type: ['string', 'null'] },
        b: {
          anyOf: [{ type: 'integer' }, { type: 'object', additionalProperties: false, required: [], properties: {} }],
        },
      },
    };
    expect(strictSchemaProblems(schema)).toEqual([]);
  });

  it('finds unsupported keywords and open objects anywhere', () => {
    const schema = {
      type: 'object',
      additionalProperties: false,
      required: ['a'],
      properties: {
        a: {
          type: 'array',
          uniqueItems: true,
          items: { anyOf: [{ type: 'object', properties: { x: { type: 'string' } } }] },
        },
      },
    };
    expect(strictSchemaProblems(schema)).toEqual([
      "#/properties/a: 'uniqueItems' is not permitted",
      "#/properties/a/items/anyOf/0: 'additionalProperties' is required to be supplied and to be false",
      "#/properties/a/items/anyOf/0: 'required' is required to be supplied and to be an array including every key in properties. Missing 'x'",
    ]);
  });
});
