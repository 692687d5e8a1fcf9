/**
 * The local model embedder: all-MiniLM-L6-v2 (quantized, 384 dimensions) run
 * by onnxruntime in a worker thread (src/clients/model-worker.ts), behind the
 * Embedder interface of src/clients/embeddings.ts. Texts go to the worker in
 * messages of `batchSize`; vectors come back mean-pooled and unit length, the
 * same for the same text whatever it is batched with.
 *
 * Failures, and what follows (README.md, "Local embeddings"):
 * - the model cannot be loaded (a damaged file): the embed call fails with
 *   CONFIG_INVALID naming the directory, and health fails;
 * - the worker thread dies while it runs: every call in flight fails with a
 *   retriable UPSTREAM_UNAVAILABLE saying so, and health fails;
 * in both cases the next embed call starts a new worker, so the embedder
 * recovers once the cause is gone (files fetched again) without a restart.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';
import type { HealthCheck } from '../core/component.ts';
import { ErrorCodes, LogflowError } from '../core/errors.ts';
import { startModuleWorker } from '../core/module-worker.ts';
import { checkTexts, type Embedder } from './embeddings.ts';
import { MODEL_DIMENSION, MODEL_NAME, modelPaths } from './model-files.ts';
import type { ModelRequest, ModelWorkerControl, ModelWorkerData, ModelWorkerMessage } from './model-worker.ts';

export interface ModelEmbedderOptions {
  /** The models directory (config.model.dir); the files are in its all-minilm-l6-v2-q/. */
  readonly modelsDir: string;
  /** onnxruntime intra-op threads in the worker (default 1: the event loop keeps the other cores). */
  readonly threads?: number;
  /** Texts per message to the worker (default 64). */
  readonly batchSize?: number;
  /**
   * Bound on the worker's V8 heap (old generation), in MiB; default Node's. A request beyond it ends the worker
   * thread, which is reported like any crash, and the process goes on.
   */
  readonly maxHeapMb?: number;
}

/**
 * How long a stopping worker gets to finish the text it is running, release the session and exit, before it is
 * terminated anyway. Terminating a thread while onnxruntime runs in it aborts the whole process (the binding's
 * callback throws into a torn-down environment: "terminate called after throwing an instance of 'Napi::Error'"),
 * so termination is only the last resort for a worker that does not answer.
 */
const STOP_GRACE_MS = 10_000;

/** Sibling module, .ts under tsx/vitest and .js in dist/, as this one is. */
const WORKER_MODULE = new URL(`./model-worker${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url).href;

interface Pending {
  readonly resolve: (data: Float32Array) => void;
  readonly reject: (error: Error) => void;
}

/** One worker thread and the requests it owes answers to. */
interface Running {
  readonly worker: Worker;
  readonly ready: Promise<void>;
  readonly pending: Map<number, Pending>;
  /** Fails the start and every request in flight with `error`, and ends the thread. */
  readonly stop: (error: LogflowError) => Promise<void>;
}

function positiveInteger(value: number, what: string, max: number): number {
  if (!Number.isInteger(value) || value < 1 || value > max)
    throw new LogflowError(ErrorCodes.CONFIG_INVALID, `model embedder: ${what} must be 1 to ${max}, got ${value}`, {
      stage: 'config',
    });
  return value;
}

export function createModelEmbedder(options: ModelEmbedderOptions): Embedder {
  const threads = positiveInteger(options.threads ?? 1, 'threads', 64);
  const batchSize = positiveInteger(options.batchSize ?? 64, 'batchSize', 4096);
  if (options.maxHeapMb !== undefined) positiveInteger(options.maxHeapMb, 'maxHeapMb', 65_536);
  const paths = modelPaths(options.modelsDir);
  const data: ModelWorkerData = {
    onnx: paths.onnx,
    tokenizer: paths.tokenizer,
    threads,
    dimension: MODEL_DIMENSION,
  };
  let running: Running | undefined;
  let lastFailure: LogflowError | undefined;
  let nextId = 0;
  let closed = false;

  const start = (): Running => {
    const worker = startModuleWorker(
      WORKER_MODULE,
      'runModelWorker',
      data,
      options.maxHeapMb === undefined ? {} : { resourceLimits: { maxOldGenerationSizeMb: options.maxHeapMb } },
    );
    const pending = new Map<number, Pending>();
    let markReady!: () => void;
    let failStart!: (error: Error) => void;
    const ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      failStart = reject;
    });
    // Awaited by every request; a start that fails must not also be an unhandled rejection.
    ready.catch(() => undefined);
    let started = false;
    let stopped = false;
    let markExited!: () => void;
    const exited = new Promise<void>((resolve) => (markExited = resolve));
    worker.once('exit', () => markExited());
    // Once per worker: a load failure is followed by the thread's exit, which must not overwrite the reason.
    const stop = async (error: LogflowError): Promise<void> => {
      if (stopped) return;
      stopped = true;
      if (running === current) running = undefined;
      if (!started) failStart(error);
      for (const p of pending.values()) p.reject(error);
      pending.clear();
      // Queued behind what the worker has received, so it arrives after the load too: the worker skips the texts
      // still queued, lets the one it runs finish, releases the session and ends. A dead worker ignores it.
      worker.postMessage({ kind: 'close' } satisfies ModelWorkerControl);
      let timer: NodeJS.Timeout | undefined;
      const overdue = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), STOP_GRACE_MS)));
      const late = await Promise.race([exited.then(() => false), overdue]);
      clearTimeout(timer);
      if (late) await worker.terminate();
    };
    const fail = (error: LogflowError): void => {
      if (stopped) return;
      lastFailure = error;
      void stop(error);
    };
    const current: Running = { worker, ready, pending, stop };

    worker.on('message', (message: ModelWorkerMessage) => {
      switch (message.kind) {
        case 'ready':
          started = true;
          lastFailure = undefined;
          markReady();
          return;
        case 'vectors':
          pending.get(message.id)?.resolve(message.data);
          pending.delete(message.id);
          return;
        case 'failed':
          pending.get(message.id)?.reject(
            new LogflowError(ErrorCodes.INTERNAL, `model embedder: inference failed: ${message.message}`, {
              stage: 'embed',
            }),
          );
          pending.delete(message.id);
          return;
        case 'error':
          fail(
            new LogflowError(
              ErrorCodes.CONFIG_INVALID,
              `model embedder: cannot load ${MODEL_NAME} from ${paths.dir} (run \`npm run models:fetch\`): ${firstLine(message.message)}`,
              { stage: 'embed' },
            ),
          );
      }
    });
    worker.on('error', (error) => fail(crashed(`failed: ${error.message}`)));
    worker.on('exit', (code) => {
      if (!closed) fail(crashed(`exited with code ${code}`));
    });
    return current;
  };

  const request = async (texts: readonly string[]): Promise<Float32Array> => {
    if (closed) throw closedError();
    running ??= start();
    const current = running;
    await current.ready;
    // Closed, or the worker failed, while this call waited for it to start.
    if (closed) throw closedError();
    if (running !== current) throw lastFailure ?? closedError();
    const id = nextId++;
    return new Promise<Float32Array>((resolve, reject) => {
      current.pending.set(id, { resolve, reject });
      current.worker.postMessage({ id, texts } satisfies ModelRequest);
    });
  };

  return {
    name: 'embedder:model',
    model: MODEL_NAME,
    dimension: MODEL_DIMENSION,

    async embed(texts) {
      checkTexts(texts, 'embed');
      const batches: Promise<Float32Array>[] = [];
      for (let i = 0; i < texts.length; i += batchSize) batches.push(request(texts.slice(i, i + batchSize)));
      const vectors: Float32Array[] = [];
      for (const data of await Promise.all(batches)) {
        for (let at = 0; at < data.length; at += MODEL_DIMENSION) vectors.push(data.slice(at, at + MODEL_DIMENSION));
      }
      return vectors;
    },

    async health(): Promise<HealthCheck> {
      if (closed) return { ok: false, detail: 'closed' };
      if (lastFailure !== undefined) return { ok: false, detail: lastFailure.message };
      return { ok: true, detail: `${MODEL_NAME}, ${MODEL_DIMENSION} dimensions, worker thread, ${threads} thread(s)` };
    },

    async close() {
      if (closed) return;
      closed = true;
      await running?.stop(closedError());
    },
  };
}

function crashed(how: string): LogflowError {
  return new LogflowError(
    ErrorCodes.UPSTREAM_UNAVAILABLE,
    `model embedder: the worker thread ${how}; the next call starts a new one`,
    { stage: 'embed', retriable: true },
  );
}

function closedError(): LogflowError {
  return new LogflowError(ErrorCodes.SHUTDOWN, 'embedder:model is closed', { stage: 'embed' });
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? text;
}
