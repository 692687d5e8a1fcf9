/**
 * The worker-thread side of the local model embedder (src/clients/model-embedder.ts):
 * loads the tokenizer and the ONNX model once, then answers each request, a
 * batch of texts, with their vectors in one transferred Float32Array. Only
 * this thread loads onnxruntime; inference never runs on the event loop.
 *
 * Each text is run through the model on its own, not padded into one batch
 * tensor: the model is dynamically quantized, so its activations are scaled
 * by the largest value in the whole tensor, and a text's vector would depend
 * on the texts batched with it (up to 0.04 apart per component, measured on
 * this model). Run alone, a text always gets the same vector, and on short
 * log templates it is no slower (no padding): 256 templates took 0.53 s one
 * by one against 0.69 s in batches of 32 and 1.06 s as one batch of 256.
 */
import { readFileSync } from 'node:fs';
import type { MessagePort } from 'node:worker_threads';
import { Tokenizer } from '@huggingface/tokenizers';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { truncateText } from '../core/text.ts';

export interface ModelWorkerData {
  readonly onnx: string;
  readonly tokenizer: string;
  readonly threads: number;
  readonly dimension: number;
}

export interface ModelRequest {
  readonly id: number;
  readonly texts: readonly string[];
}

/** Sent once by the embedder when it stops this worker: finish the text being run, release the model, end. */
export interface ModelWorkerControl {
  readonly kind: 'close';
}

export type ModelWorkerMessage =
  | { readonly kind: 'ready' }
  | { readonly kind: 'vectors'; readonly id: number; readonly data: Float32Array }
  | { readonly kind: 'failed'; readonly id: number; readonly message: string }
  /** Loading failed (posted by src/core/module-worker.ts's wrapper when runModelWorker throws). */
  | { readonly kind: 'error'; readonly message: string };

/** Far more characters than the token limit can use; bounds the tokenizer's work on a pathological line. */
const MAX_TEXT_CHARS = 16_384;
/** all-MiniLM-L6-v2 was trained on sequences of at most this many tokens; its tokenizer.json truncates there too. */
const DEFAULT_MAX_TOKENS = 128;

type Post = (message: ModelWorkerMessage, transfer?: readonly ArrayBuffer[]) => void;

export async function runModelWorker(data: ModelWorkerData, post: Post, port: MessagePort): Promise<void> {
  const config = JSON.parse(readFileSync(data.tokenizer, 'utf8')) as { truncation?: { max_length?: number } | null };
  const maxTokens = config.truncation?.max_length ?? DEFAULT_MAX_TOKENS;
  const tokenizer = new Tokenizer(config, {});
  const session = await InferenceSession.create(data.onnx, {
    intraOpNumThreads: data.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
  });
  const output = session.outputNames[0] ?? 'last_hidden_state';

  const embedOne = async (text: string, into: Float32Array, at: number): Promise<void> => {
    let ids = tokenizer.encode(truncateText(text, MAX_TEXT_CHARS)).ids;
    // Cut as the tokenizer.json says, keeping the closing [SEP] the model saw in training.
    if (ids.length > maxTokens) ids = [...ids.slice(0, maxTokens - 1), ids[ids.length - 1]!];
    const shape = [1, ids.length];
    const feeds = {
      input_ids: new Tensor('int64', BigInt64Array.from(ids, BigInt), shape),
      attention_mask: new Tensor('int64', new BigInt64Array(ids.length).fill(1n), shape),
      token_type_ids: new Tensor('int64', new BigInt64Array(ids.length), shape),
    };
    const result = await session.run(feeds);
    const tensor = result[output]!;
    if (tensor.dims.at(-1) !== data.dimension)
      throw new Error(`the model gives ${tensor.dims.at(-1)}-dimensional token vectors, expected ${data.dimension}`);
    const hidden = tensor.data as Float32Array;
    meanPoolNormalized(hidden, ids.length, data.dimension, into, at);
  };

  // One request at a time, in arrival order: the session is used by one run at a time.
  let queue = Promise.resolve();
  let closing = false;
  port.on('message', (message: ModelRequest | ModelWorkerControl) => {
    if ('kind' in message) {
      // The embedder has already failed every request it sent; what is queued is skipped. The thread ends by
      // itself once nothing holds it, never by terminate() while onnxruntime runs (see STOP_GRACE_MS in
      // src/clients/model-embedder.ts).
      closing = true;
      queue = queue.then(async () => {
        await session.release();
        port.close();
      });
      return;
    }
    const request = message;
    queue = queue.then(async () => {
      if (closing) return;
      try {
        const vectors = new Float32Array(request.texts.length * data.dimension);
        for (let i = 0; i < request.texts.length; i++) {
          if (closing) return;
          await embedOne(request.texts[i]!, vectors, i * data.dimension);
        }
        post({ kind: 'vectors', id: request.id, data: vectors }, [vectors.buffer as ArrayBuffer]);
      } catch (error) {
        post({ kind: 'failed', id: request.id, message: error instanceof Error ? error.message : String(error) });
      }
    });
  });
  post({ kind: 'ready' });
}

/**
 * Sentence-transformers' pooling for this model: the mean of the token
 * vectors (every token is attended, since a text runs alone), then unit length.
 */
export function meanPoolNormalized(
  hidden: Float32Array,
  tokens: number,
  dimension: number,
  into: Float32Array,
  at: number,
): void {
  const sums = new Float64Array(dimension);
  for (let t = 0; t < tokens; t++) {
    const row = t * dimension;
    for (let d = 0; d < dimension; d++) sums[d]! += hidden[row + d]!;
  }
  let squares = 0;
  for (let d = 0; d < dimension; d++) squares += sums[d]! * sums[d]!;
  // A zero vector has no direction; it never comes out of this model, but it must not become NaN.
  const norm = Math.sqrt(squares) || 1;
  for (let d = 0; d < dimension; d++) into[at + d] = sums[d]! / norm;
}
