/**
 * The OpenAI embeddings wire format the embeddings service speaks: the
 * request it accepts (validated with zod, within the service's limits), the
 * response it returns and OpenAI's error body, `{ error: { message, type,
 * param, code } }`, which OpenAI clients (the `openai` package behind
 * src/clients/embeddings.ts among them) read their error message from.
 */
import { z } from 'zod';

export interface EmbeddingsLimits {
  /** Texts in one request. */
  readonly maxInputs: number;
  /** Characters (UTF-16 code units) in one text. */
  readonly maxTextChars: number;
}

/** OpenAI's own limit on inputs per request, so any client batching for OpenAI fits. */
export const DEFAULT_MAX_INPUTS = 2048;
/** Far beyond an error template; the model reads only its first few hundred tokens anyway. */
export const DEFAULT_MAX_TEXT_CHARS = 8192;

export function requestSchema(limits: EmbeddingsLimits) {
  const text = z
    .string({ error: 'must be a string (token arrays are not accepted)' })
    .max(limits.maxTextChars, `is longer than ${limits.maxTextChars} characters`);
  return z.object({
    // One text is a list of one: the response is the same, and each problem is reported at its own place.
    input: z.preprocess(
      (value) => (typeof value === 'string' ? [value] : value),
      z
        .array(text, { error: 'must be a string or an array of strings' })
        .min(1, 'must hold at least one text')
        .max(limits.maxInputs, `holds more than ${limits.maxInputs} texts`),
    ),
    model: z.string().min(1).optional(),
    encoding_format: z.enum(['float', 'base64']).optional(),
    dimensions: z.int().positive().optional(),
    user: z.string().optional(),
  });
}

export type EmbeddingsRequest = z.output<ReturnType<typeof requestSchema>>;

export interface OpenAIErrorBody {
  readonly error: {
    readonly message: string;
    readonly type: 'invalid_request_error' | 'server_error' | 'service_unavailable';
    readonly param: string | null;
    readonly code: string | null;
  };
}

export class EmbeddingsRequestError extends Error {
  constructor(
    readonly statusCode: number,
    readonly body: OpenAIErrorBody,
  ) {
    super(body.error.message);
    this.name = 'EmbeddingsRequestError';
  }
}

export function invalidRequest(
  message: string,
  param: string | null = null,
  code: string | null = null,
  status = 400,
): EmbeddingsRequestError {
  return new EmbeddingsRequestError(status, { error: { message, type: 'invalid_request_error', param, code } });
}

/** The first problems of a failed parse as one message, the first one's field as `param`. */
export function requestProblem(error: z.ZodError): EmbeddingsRequestError {
  const issues = error.issues.slice(0, 5).map((issue) => {
    const path = issue.path.map((key) => (typeof key === 'number' ? `[${key}]` : `.${String(key)}`)).join('');
    return { path: path.replace(/^\./, ''), message: issue.message };
  });
  const message = issues.map((i) => `${i.path === '' ? 'body' : i.path}: ${i.message}`).join('; ');
  const more = error.issues.length > issues.length ? `; and ${error.issues.length - issues.length} more` : '';
  return invalidRequest(`${message}${more}`, issues[0]?.path || null);
}

/**
 * What `usage` reports. The Embedder interface does not expose the model's
 * tokenizer, so this counts words and punctuation marks: near a WordPiece
 * count for log text, and the same whichever embedder serves.
 */
export function estimateTokens(text: string): number {
  return text.match(/[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu)?.length ?? 0;
}

/** Little-endian float32 bytes in base64, as OpenAI's `encoding_format: 'base64'` returns them. */
export function base64Vector(vector: Float32Array): string {
  const bytes = Buffer.allocUnsafe(vector.length * 4);
  vector.forEach((v, i) => bytes.writeFloatLE(v, i * 4));
  return bytes.toString('base64');
}

export interface EmbeddingsResponse {
  readonly object: 'list';
  readonly data: ReadonlyArray<{ object: 'embedding'; index: number; embedding: number[] | string }>;
  readonly model: string;
  readonly usage: { readonly prompt_tokens: number; readonly total_tokens: number };
}

export function embeddingsResponse(
  model: string,
  texts: readonly string[],
  vectors: readonly Float32Array[],
  format: 'float' | 'base64',
): EmbeddingsResponse {
  const tokens = texts.reduce((sum, text) => sum + estimateTokens(text), 0);
  return {
    object: 'list',
    data: vectors.map((vector, index) => ({
      object: 'embedding',
      index,
      embedding: format === 'base64' ? base64Vector(vector) : Array.from(vector),
    })),
    model,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  };
}
