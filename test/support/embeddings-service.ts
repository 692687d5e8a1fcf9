/**
 * The `embeddings` named pipeline started through the runner, as `npm run
 * pipeline -- embeddings` does, on port 0 with the real Redis as its cache.
 */
import { loadConfig, type Config } from '../../src/core/config.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createMetrics } from '../../src/core/metrics.ts';
import { pipelines } from '../../src/app/registry.ts';
import { openResources, type Resources } from '../../src/app/resources.ts';
import { startPipeline, type RunningPipeline } from '../../src/app/runner.ts';
import { REDIS_URL } from './services.ts';

export interface EmbeddingsServiceUnderTest {
  /** The API base, `http://127.0.0.1:<port>/v1`. */
  readonly url: string;
  readonly config: Config;
  readonly resources: Resources;
  readonly running: RunningPipeline;
  close(): Promise<void>;
}

export async function startEmbeddingsService(
  options: Readonly<Record<string, unknown>> = {},
): Promise<EmbeddingsServiceUnderTest> {
  const config = loadConfig({ LOGFLOW_REDIS_URL: REDIS_URL, LOGFLOW_EMBEDDINGS_SERVICE_PORT: '0' });
  const logger = createLogger({ level: 'silent' });
  const resources = openResources(config, logger);
  let listening: (url: string) => void = () => {};
  const url = new Promise<string>((resolve) => {
    listening = resolve;
  });
  const running = startPipeline(pipelines.embeddings, {
    config,
    logger,
    metrics: createMetrics({ defaultMetrics: false }),
    resources,
    options: { ...options, onListening: listening },
  });
  const started = await Promise.race([url, running.done.then((outcome) => outcome)]);
  if (typeof started !== 'string') {
    await resources.close();
    throw new Error(`the embeddings service did not start: ${JSON.stringify(started)}`);
  }
  return {
    url: started,
    config,
    resources,
    running,
    async close() {
      await running.stop();
      await resources.close();
    },
  };
}

export interface EmbeddingItem {
  readonly object: string;
  readonly index: number;
  readonly embedding: number[] | string;
}

export interface EmbeddingsBody {
  readonly object: string;
  readonly data: EmbeddingItem[];
  readonly model: string;
  readonly usage: { readonly prompt_tokens: number; readonly total_tokens: number };
}

export interface ErrorBody {
  readonly error: {
    readonly message: string;
    readonly type: string;
    readonly param: string | null;
    readonly code: string | null;
  };
}

export async function postEmbeddings(
  url: string,
  body: unknown,
  raw = false,
): Promise<{ status: number; json: EmbeddingsBody & ErrorBody }> {
  const response = await fetch(`${url}/embeddings`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: raw ? (body as string) : JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as EmbeddingsBody & ErrorBody };
}
