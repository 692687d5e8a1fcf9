/**
 * A local OpenAI-compatible server for tests (ARCHITECTURE.md 7: only the model
 * endpoints may be replaced): POST /v1/embeddings and POST
 * /v1/chat/completions on 127.0.0.1, answering in OpenAI's shapes and
 * refusing, as OpenAI does, requests it would refuse (400 with an
 * `invalid_request_error`, including a `json_schema` response format that
 * breaks strict-mode rules; 401 without the configured key).
 *
 * Embeddings are the local embedder's vectors of the input texts, so
 * similarity between answers means something. The chat endpoint answers a
 * valid nightly report built from the request unless a test says otherwise
 * (or, for the response formats `alert_analysis` and `catalog_entry` of
 * src/sinks/alert-analysis.ts and src/sinks/catalog-descriptions.ts, a valid
 * answer of that shape: see `defaultChatContent`).
 * Tests steer it with `failNext` (status errors), `failInput` (every
 * embeddings request carrying a given text fails, as an input the model
 * cannot take would), `respondNext` (any canned answer, e.g. malformed
 * output), `delayMs` and `chatContent`, and read back
 * `requests`, `embeddedInputs()` and `maxInFlight`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { localEmbedding } from '../../src/clients/embeddings.ts';

export type Endpoint = 'embeddings' | 'chat';

export interface RecordedRequest {
  readonly endpoint: Endpoint | null;
  readonly method: string;
  readonly path: string;
  readonly authorization: string | undefined;
  /** Parsed JSON, or the raw text when it did not parse. */
  readonly body: unknown;
  /** 0 until answered. */
  status: number;
}

export type CannedResponse =
  | { readonly status?: number; readonly json: unknown; readonly headers?: Readonly<Record<string, string>> }
  | { readonly status?: number; readonly text: string; readonly contentType?: string };

export interface ChatRequest {
  readonly model: string;
  readonly messages: ReadonlyArray<{ readonly role: string; readonly content: string }>;
  readonly response_format?: unknown;
}

export interface ChatUsage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
}

export interface OpenAITestServerOptions {
  /** When set, requests must carry `Authorization: Bearer <apiKey>` (401 otherwise). */
  readonly apiKey?: string;
  /** Dimension of the embeddings answered; default 64. */
  readonly embeddingDimension?: number;
  /** Every embedding is multiplied by this, so a client that forgets to normalize is caught; default 1. */
  readonly embeddingScale?: number;
  /** Answers `data` in reverse index order (allowed: clients must order by `index`). */
  readonly reverseEmbeddingOrder?: boolean;
}

export interface OpenAITestServer {
  /** The API base, with `/v1`, as the `openai` package's baseURL takes it. */
  readonly url: string;
  /** `http://127.0.0.1:<port>`, without a path. */
  readonly origin: string;
  readonly requests: RecordedRequest[];
  /** Every text sent to /v1/embeddings, in arrival order, whatever the answer was. */
  embeddedInputs(): string[];
  /** The most requests in progress at once so far. */
  readonly maxInFlight: number;
  /** Each request waits this long before it is answered (0: none). */
  delayMs: number;
  /** Content of every chat answer; undefined: a valid report built from the request. */
  chatContent: string | ((request: ChatRequest) => string) | undefined;
  /** Usage of chat answers; undefined: estimated from the text (4 characters a token); null: no usage field. */
  chatUsage: ChatUsage | null | undefined;
  /** Answers the next `times` requests (to `endpoint`, or to any) with `status` and an OpenAI error body. */
  failNext(status: number, times?: number, endpoint?: Endpoint): void;
  /**
   * Until the returned function is called, answers every embeddings request
   * with an input containing `text` with `status` and an OpenAI error body
   * naming that input (after `failNext`/`respondNext`, which come first).
   */
  failInput(text: string, status?: number): () => void;
  /** Answers the next `times` requests to `endpoint` with `response` instead of the real answer. */
  respondNext(endpoint: Endpoint, response: CannedResponse, times?: number): void;
  close(): Promise<void>;
}

interface Intervention {
  readonly endpoint: Endpoint | undefined;
  readonly response: CannedResponse;
  remaining: number;
}

class RequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = 'invalid_request_error',
    readonly code: string | null = null,
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

const ROUTES: Readonly<Record<string, Endpoint>> = { '/v1/embeddings': 'embeddings', '/v1/chat/completions': 'chat' };
const MAX_BODY_BYTES = 16 * 1024 * 1024;
const MAX_EMBEDDING_INPUTS = 2048;
const STATUS_TEXT: Readonly<Record<number, { type: string; code: string | null }>> = {
  400: { type: 'invalid_request_error', code: null },
  401: { type: 'invalid_request_error', code: 'invalid_api_key' },
  403: { type: 'invalid_request_error', code: 'unsupported_country_region_territory' },
  404: { type: 'invalid_request_error', code: 'model_not_found' },
  429: { type: 'requests', code: 'rate_limit_exceeded' },
  500: { type: 'server_error', code: null },
  503: { type: 'server_error', code: 'service_unavailable' },
};

const isObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);
const estimateTokens = (text: string): number => Math.ceil(text.length / 4);

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) reject(new RequestError(413, 'request body too large'));
      else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(
  res: ServerResponse,
  status: number,
  body: string,
  contentType: string,
  headers: Readonly<Record<string, string>> = {},
): void {
  if (res.destroyed || res.headersSent) return;
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

function errorBody(
  status: number,
  message: string,
  type?: string,
  code?: string | null,
  param: string | null = null,
): string {
  const known = STATUS_TEXT[status];
  return JSON.stringify({
    error: { message, type: type ?? known?.type ?? 'invalid_request_error', param, code: code ?? known?.code ?? null },
  });
}

// ---------------------------------------------------------------- strict json_schema rules

/** Keywords OpenAI's strict structured outputs refuse. */
const STRICT_UNSUPPORTED = [
  'allOf',
  'not',
  'if',
  'then',
  'else',
  'dependentRequired',
  'dependentSchemas',
  'patternProperties',
  'unevaluatedProperties',
  'propertyNames',
  'minProperties',
  'maxProperties',
  'unevaluatedItems',
  'contains',
  'minContains',
  'maxContains',
  'uniqueItems',
];

/**
 * Why a schema would be refused in strict mode: every object closed, every property required, no unsupported keyword.
 */
export function strictSchemaProblems(schema: unknown, path = '#'): string[] {
  if (!isObject(schema)) return [`${path}: is not a schema object`];
  const problems: string[] = [];
  for (const keyword of STRICT_UNSUPPORTED)
    if (keyword in schema) problems.push(`${path}: '${keyword}' is not permitted`);
  const types = Array.isArray(schema.type) ? schema.type : [schema.type];
  if (types.includes('object') || 'properties' in schema) {
    if (schema.additionalProperties !== false)
      problems.push(`${path}: 'additionalProperties' is required to be supplied and to be false`);
    const properties = isObject(schema.properties) ? schema.properties : {};
    const required = Array.isArray(schema.required) ? schema.required : [];
    for (const key of Object.keys(properties)) {
      if (!required.includes(key))
        problems.push(
          `${path}: 'required' is required to be supplied and to be an array including every key in properties. Missing '${key}'`,
        );
      problems.push(...strictSchemaProblems(properties[key], `${path}/properties/${key}`));
    }
  }
  if (schema.items !== undefined) problems.push(...strictSchemaProblems(schema.items, `${path}/items`));
  if (Array.isArray(schema.anyOf))
    schema.anyOf.forEach((branch, i) => problems.push(...strictSchemaProblems(branch, `${path}/anyOf/${i}`)));
  for (const defs of ['$defs', 'definitions'] as const) {
    const map = schema[defs];
    if (isObject(map))
      for (const [name, sub] of Object.entries(map))
        problems.push(...strictSchemaProblems(sub, `${path}/${defs}/${name}`));
  }
  return problems;
}

// ---------------------------------------------------------------- handlers

function embeddingTexts(body: Record<string, unknown>): string[] {
  if (typeof body.model !== 'string' || body.model === '')
    throw new RequestError(400, 'you must provide a model parameter', undefined, null, 'model');
  const input = body.input;
  const texts = typeof input === 'string' ? [input] : input;
  if (!Array.isArray(texts) || texts.length === 0 || !texts.every((t): t is string => typeof t === 'string')) {
    throw new RequestError(
      400,
      "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
      undefined,
      null,
      'input',
    );
  }
  if (texts.length > MAX_EMBEDDING_INPUTS)
    throw new RequestError(
      400,
      `'$.input' is too long: at most ${MAX_EMBEDDING_INPUTS} inputs`,
      undefined,
      null,
      'input',
    );
  // OpenAI refuses empty strings.
  if (texts.some((t) => t === ''))
    throw new RequestError(400, "'$.input' is invalid: empty strings are not allowed.", undefined, null, 'input');
  if (body.encoding_format !== undefined && body.encoding_format !== 'float' && body.encoding_format !== 'base64') {
    throw new RequestError(
      400,
      `Invalid value for 'encoding_format': ${JSON.stringify(body.encoding_format)}`,
      undefined,
      null,
      'encoding_format',
    );
  }
  return texts;
}

function chatRequest(body: Record<string, unknown>): ChatRequest {
  if (typeof body.model !== 'string' || body.model === '')
    throw new RequestError(400, 'you must provide a model parameter', undefined, null, 'model');
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0)
    throw new RequestError(400, "'messages' must be a non-empty array", undefined, null, 'messages');
  const parsed = messages.map((m, i) => {
    if (
      !isObject(m) ||
      typeof m.role !== 'string' ||
      !['system', 'developer', 'user', 'assistant', 'tool'].includes(m.role)
    ) {
      throw new RequestError(400, `Invalid value for 'messages[${i}].role'`, undefined, null, `messages[${i}].role`);
    }
    if (typeof m.content !== 'string')
      throw new RequestError(
        400,
        `Invalid type for 'messages[${i}].content': expected a string`,
        undefined,
        null,
        `messages[${i}].content`,
      );
    return { role: m.role, content: m.content };
  });
  const format = body.response_format;
  if (format !== undefined) {
    if (!isObject(format) || !['text', 'json_object', 'json_schema'].includes(String(format.type))) {
      throw new RequestError(400, "Invalid value for 'response_format.type'", undefined, null, 'response_format.type');
    }
    if (format.type === 'json_schema') {
      const spec = format.json_schema;
      if (!isObject(spec) || typeof spec.name !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(spec.name)) {
        throw new RequestError(
          400,
          "Invalid 'response_format.json_schema.name'",
          undefined,
          null,
          'response_format.json_schema.name',
        );
      }
      if (spec.strict === true) {
        const problems = strictSchemaProblems(spec.schema);
        if (isObject(spec.schema) && spec.schema.type !== 'object')
          problems.unshift('#: schema must be a JSON Schema of \'type: "object"\'');
        if (problems.length > 0) {
          throw new RequestError(
            400,
            `Invalid schema for response_format '${spec.name}': ${problems.join('; ')}`,
            undefined,
            'invalid_json_schema',
            'response_format',
          );
        }
      }
    }
  }
  return { model: body.model, messages: parsed, ...(format === undefined ? {} : { response_format: format }) };
}

const DATA_SECTION = /<logs>\n?([\s\S]*?)\n?<\/logs>/;

/** A report that passes the client's checks: it rates the first pattern the request shows, if any. */
export function defaultReportContent(request: ChatRequest): string {
  const user = request.messages
    .filter((m) => m.role === 'user')
    .map((m) => m.content)
    .join('\n');
  let first: { errorHash?: unknown; template?: unknown; occurrences?: unknown } | undefined;
  const section = DATA_SECTION.exec(user)?.[1];
  try {
    const data: unknown = section === undefined ? undefined : JSON.parse(section);
    const patterns = isObject(data) && Array.isArray(data.patterns) ? data.patterns : [];
    first = isObject(patterns[0]) ? patterns[0] : undefined;
  } catch {
    const hash = /"errorHash"\s*:\s*"(\d{1,20})"/.exec(user)?.[1];
    first = hash === undefined ? undefined : { errorHash: hash };
  }
  const hash = typeof first?.errorHash === 'string' ? first.errorHash : undefined;
  return JSON.stringify({
    summary: `Test report from the local server for model ${request.model}: ${user.length} characters of data reviewed.`,
    keyIssues: hash === undefined ? [] : [`Pattern ${hash} is the most frequent.`],
    probableCauses: ['The test server cannot know.'],
    recommendations: ['Keep the tests green.'],
    patternSeverity:
      hash === undefined
        ? []
        : [
            {
              errorHash: hash,
              template: typeof first?.template === 'string' ? first.template : '',
              severity: 'high',
              occurrences: typeof first?.occurrences === 'number' ? first.occurrences : 0,
              reason: 'Most frequent pattern of the day.',
            },
          ],
  });
}

/** A valid answer for the response format the request names: an alert analysis, a catalog entry or a nightly report. */
export function defaultChatContent(request: ChatRequest): string {
  const name = (request.response_format as { json_schema?: { name?: unknown } } | undefined)?.json_schema?.name;
  const user = request.messages
    .filter((m) => m.role === 'user')
    .map((m) => m.content)
    .join('\n');
  if (name === 'alert_analysis') {
    return JSON.stringify({
      analysis: `Test analysis from the local server for model ${request.model}: ${user.length} characters of data reviewed.`,
      suggestedActions: ['Check the service named in the alert.', 'Keep the tests green.'],
    });
  }
  if (name === 'catalog_entry') {
    const hash = /pattern (\d{1,20})\./.exec(user)?.[1] ?? 'unknown';
    return JSON.stringify({
      title: `Test title for pattern ${hash}`,
      description: `Test description from the local server for model ${request.model}.`,
      probableCause: 'The test server cannot know.',
      suggestedFix: `Test fix for pattern ${hash}.`,
      severity: 'high',
    });
  }
  return defaultReportContent(request);
}

export async function startOpenAIServer(options: OpenAITestServerOptions = {}): Promise<OpenAITestServer> {
  const dimension = options.embeddingDimension ?? 64;
  const scale = options.embeddingScale ?? 1;
  const requests: RecordedRequest[] = [];
  const inputs: string[] = [];
  const interventions: Intervention[] = [];
  const inputFailures = new Set<{ readonly text: string; readonly status: number }>();
  /** Pending delays; closing ends them, so no handler outlives the server. */
  const timers = new Map<NodeJS.Timeout, () => void>();
  let inFlight = 0;
  let maxInFlight = 0;
  let completions = 0;

  const state = {
    delayMs: 0,
    chatContent: undefined as OpenAITestServer['chatContent'],
    chatUsage: undefined as OpenAITestServer['chatUsage'],
  };

  const takeIntervention = (endpoint: Endpoint | null): CannedResponse | undefined => {
    const found = interventions.find((i) => i.endpoint === undefined || i.endpoint === endpoint);
    if (found === undefined) return undefined;
    found.remaining -= 1;
    if (found.remaining <= 0) interventions.splice(interventions.indexOf(found), 1);
    return found.response;
  };

  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.set(timer, resolve);
    });

  const embeddingsAnswer = (body: Record<string, unknown>, texts: readonly string[]): unknown => {
    const data = texts.map((text, index) => {
      const vector = Array.from(localEmbedding(text, dimension), (v) => v * scale);
      const embedding =
        body.encoding_format === 'base64' ? Buffer.from(new Float32Array(vector).buffer).toString('base64') : vector;
      return { object: 'embedding', index, embedding };
    });
    if (options.reverseEmbeddingOrder === true) data.reverse();
    const tokens = texts.reduce((sum, t) => sum + estimateTokens(t), 0);
    return { object: 'list', data, model: body.model, usage: { prompt_tokens: tokens, total_tokens: tokens } };
  };

  const chatAnswer = (request: ChatRequest): unknown => {
    completions += 1;
    const configured = state.chatContent;
    const content =
      configured === undefined
        ? defaultChatContent(request)
        : typeof configured === 'string'
          ? configured
          : configured(request);
    const promptTokens = request.messages.reduce((sum, m) => sum + estimateTokens(m.content), 0);
    const completionTokens = estimateTokens(content);
    const usage =
      state.chatUsage === null
        ? {}
        : {
            usage: state.chatUsage ?? {
              prompt_tokens: promptTokens,
              completion_tokens: completionTokens,
              total_tokens: promptTokens + completionTokens,
            },
          };
    return {
      id: `chatcmpl-test-${completions}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: request.model,
      choices: [
        { index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' },
      ],
      ...usage,
    };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname.replace(/\/+$/, '');
    const endpoint = ROUTES[path] ?? null;
    const raw = await readBody(req);
    let body: unknown = raw;
    let parsedJson = false;
    try {
      body = raw === '' ? undefined : JSON.parse(raw);
      parsedJson = raw !== '';
    } catch {
      // Recorded as text; answered 400 below.
    }
    const authorization = req.headers.authorization;
    const record: RecordedRequest = { endpoint, method: req.method ?? 'GET', path, authorization, body, status: 0 };
    requests.push(record);
    if (endpoint === 'embeddings' && isObject(body)) {
      const input = body.input;
      for (const t of typeof input === 'string' ? [input] : Array.isArray(input) ? input : [])
        if (typeof t === 'string') inputs.push(t);
    }

    const reply = (
      status: number,
      text: string,
      contentType = 'application/json',
      headers: Readonly<Record<string, string>> = {},
    ) => {
      record.status = status;
      send(res, status, text, contentType, headers);
    };

    if (state.delayMs > 0) await wait(state.delayMs);
    if (options.apiKey !== undefined && authorization !== `Bearer ${options.apiKey}`) {
      reply(401, errorBody(401, 'Incorrect API key provided.'));
      return;
    }
    if (endpoint === null) {
      reply(404, errorBody(404, `Invalid URL (${req.method} ${path})`, 'invalid_request_error', 'unknown_url'));
      return;
    }
    if (req.method !== 'POST') {
      reply(405, errorBody(405, `Method ${req.method} not allowed on ${path}`));
      return;
    }
    const canned = takeIntervention(endpoint);
    if (canned !== undefined) {
      if ('json' in canned) {
        const status = canned.status ?? 200;
        const headers = status === 429 ? { 'retry-after': '0', ...canned.headers } : (canned.headers ?? {});
        reply(status, JSON.stringify(canned.json), 'application/json', headers);
      } else {
        reply(canned.status ?? 200, canned.text, canned.contentType ?? 'text/plain');
      }
      return;
    }
    if (!parsedJson || !isObject(body)) {
      reply(400, errorBody(400, 'We could not parse the JSON body of your request.'));
      return;
    }
    try {
      if (endpoint === 'embeddings') {
        const texts = embeddingTexts(body);
        for (const failure of inputFailures) {
          const index = texts.findIndex((t) => t.includes(failure.text));
          if (index >= 0) {
            const message =
              failure.status === 400
                ? `Injected refusal of '$.input[${index}]'`
                : `Injected failure with status ${failure.status} on '$.input[${index}]'`;
            throw new RequestError(failure.status, message, STATUS_TEXT[failure.status]?.type, null, 'input');
          }
        }
      }
      const answer =
        endpoint === 'embeddings' ? embeddingsAnswer(body, embeddingTexts(body)) : chatAnswer(chatRequest(body));
      reply(200, JSON.stringify(answer));
    } catch (error) {
      if (!(error instanceof RequestError)) throw error;
      reply(error.status, errorBody(error.status, error.message, error.type, error.code, error.param));
    }
  };

  const server = createServer((req, res) => {
    inFlight += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    handle(req, res)
      .catch((error: unknown) => {
        const status = error instanceof RequestError ? error.status : 500;
        send(
          res,
          status,
          errorBody(status, error instanceof Error ? error.message : String(error)),
          'application/json',
        );
      })
      .finally(() => {
        inFlight -= 1;
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;

  return {
    url: `${origin}/v1`,
    origin,
    requests,
    embeddedInputs: () => [...inputs],
    get maxInFlight() {
      return maxInFlight;
    },
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(ms: number) {
      state.delayMs = ms;
    },
    get chatContent() {
      return state.chatContent;
    },
    set chatContent(content) {
      state.chatContent = content;
    },
    get chatUsage() {
      return state.chatUsage;
    },
    set chatUsage(usage) {
      state.chatUsage = usage;
    },
    failNext(status, times = 1, endpoint) {
      const message = status === 429 ? 'Rate limit reached for requests' : `Injected failure with status ${status}`;
      interventions.push({
        endpoint,
        response: { status, json: JSON.parse(errorBody(status, message)) as unknown },
        remaining: times,
      });
    },
    failInput(text, status = 400) {
      const failure = { text, status };
      inputFailures.add(failure);
      return () => inputFailures.delete(failure);
    },
    respondNext(endpoint, response, times = 1) {
      interventions.push({ endpoint, response, remaining: times });
    },
    async close() {
      for (const [timer, resolve] of timers) {
        clearTimeout(timer);
        resolve();
      }
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) =>
        server.close((error) => (error === undefined ? resolve() : reject(error))),
      );
    },
  };
}
