/**
 * What a pipeline may ask of the process it runs in: the adapters chosen by
 * configuration, opened on first use. src/app/resources.ts builds them.
 */
import type { Config } from '../core/config.ts';
import type { Embedder } from '../clients/embeddings.ts';
import type { Analyst } from '../clients/llm.ts';
import type { HealthCheck } from '../core/component.ts';
import type { Engines } from '../clients/engines.ts';
import type { Logger } from '../core/logger.ts';
import type { EmbeddingCache } from '../stores/embedding-cache.ts';
import type { PoolRepositories } from '../stores/postgres/index.ts';
import type { VectorStore } from '../stores/vector-store.ts';
import type { Topics } from '../sources/topics.ts';

export interface Resources {
  readonly config: Config;
  readonly logger: Logger;
  topics(): Topics;
  engines(): Promise<Engines>;
  repositories(): Promise<PoolRepositories>;
  vectorStore(): Promise<VectorStore>;
  embeddingCache(): EmbeddingCache;
  embedder(): Embedder;
  analyst(): Analyst;
  /** Health of whatever has been opened so far. */
  health(): Promise<Record<string, HealthCheck>>;
  close(): Promise<void>;
}
