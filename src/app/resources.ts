/**
 * The adapters a pipeline runs on, chosen by configuration (README: the two modes) and
 * opened on first use, so `generate` never opens a database and `ingest`
 * never loads an embedding model. In embedded mode every pipeline of the
 * process shares one Resources; in server mode each process opens its own.
 */
import type { Config } from '../core/config.ts';
import { embedderChoice, openEmbedder, type Embedder } from '../clients/embeddings.ts';
import { openAnalyst, type Analyst } from '../clients/llm.ts';
import { openEngines, type Engines } from '../clients/engines.ts';
import type { HealthCheck } from '../core/component.ts';
import type { Logger } from '../core/logger.ts';
import { ClickHouseVectorStore } from '../stores/clickhouse-vector.ts';
import { openEmbeddingCache, type EmbeddingCache } from '../stores/embedding-cache.ts';
import { createRepositories, type PoolRepositories } from '../stores/postgres/index.ts';
import { QdrantVectorStore } from '../stores/qdrant.ts';
import { collectionForModel, type VectorStore } from '../stores/vector-store.ts';
import { InProcessTopics } from '../sources/in-process-topics.ts';
import { KafkaTopics } from '../sources/kafka-topics.ts';
import type { Topics } from '../sources/topics.ts';
import type { Resources } from '../pipelines/resources.ts';

export type { Resources } from '../pipelines/resources.ts';

export interface OpenResourcesOptions {
  /** Embedded mode shares one in-process broker between pipelines of the process. */
  readonly topics?: Topics;
  /** chdb allows one data directory per process: resources of one process share its engines. */
  readonly engines?: Promise<Engines>;
}

/**
 * The vector collection of the configured embedder, so two models' vectors
 * never share one (README.md, "Local embeddings"). The hashing embedder and a
 * remote endpoint keep LOGFLOW_QDRANT_COLLECTION itself, where their vectors
 * were before models had collections of their own (a remote model of another
 * dimension there is refused by the store's dimension check); the local model
 * gets `<collection>_all_minilm_l6_v2_q_384`.
 */
export function vectorCollection(config: Config): string {
  const choice = embedderChoice(config);
  if (choice.kind !== 'model' || choice.dimension === undefined) return config.qdrant.collection;
  return collectionForModel(config.qdrant.collection, choice.model, choice.dimension);
}

export function openResources(config: Config, logger: Logger, options: OpenResourcesOptions = {}): Resources {
  let topics = options.topics;
  const ownsTopics = topics === undefined;
  let engines: Promise<Engines> | undefined = options.engines;
  const ownsEngines = options.engines === undefined;
  let repositories: Promise<PoolRepositories> | undefined;
  let vectorStore: Promise<VectorStore> | undefined;
  let cache: EmbeddingCache | undefined;
  let embedder: Embedder | undefined;
  let analyst: Analyst | undefined;
  let closed = false;

  const requireOpen = () => {
    if (closed) throw new Error('resources are closed');
  };

  const resources: Resources = {
    config,
    logger,
    topics() {
      requireOpen();
      topics ??=
        config.kafka.brokers === undefined
          ? new InProcessTopics()
          : new KafkaTopics({
              brokers: config.kafka.brokers,
              clientId: config.kafka.clientId,
              logger: logger.child({ component: 'kafka' }),
            });
      return topics;
    },
    engines() {
      requireOpen();
      engines ??= openEngines(config);
      return engines;
    },
    repositories() {
      repositories ??= resources.engines().then((e) => createRepositories(e.postgres));
      return repositories;
    },
    vectorStore() {
      vectorStore ??=
        config.qdrant.url === undefined
          ? resources
              .engines()
              .then((e) => new ClickHouseVectorStore({ client: e.clickhouse, table: vectorCollection(config) }))
          : Promise.resolve(
              new QdrantVectorStore({
                url: config.qdrant.url,
                collection: vectorCollection(config),
                ...(config.qdrant.apiKey === undefined ? {} : { apiKey: config.qdrant.apiKey }),
              }),
            );
      return vectorStore;
    },
    embeddingCache() {
      requireOpen();
      // Every cache operation of an outage fails: one warning per episode (failures less than a minute apart), not one
      // per batch.
      let lastCacheError = -Infinity;
      cache ??= openEmbeddingCache(config, {
        onError: (error) => {
          const now = Date.now();
          if (now - lastCacheError > 60_000)
            logger.warn({ err: error }, 'embedding cache unavailable; treating as misses until it answers again');
          lastCacheError = now;
        },
      });
      return cache;
    },
    embedder() {
      requireOpen();
      if (embedder === undefined) {
        const choice = embedderChoice(config);
        logger.info({ embedder: choice.kind }, choice.line);
      }
      embedder ??= openEmbedder(config, {
        onRetry: (info) =>
          logger.warn({ attempt: info.attempt, err: info.error }, 'embeddings endpoint failed; retrying'),
      });
      return embedder;
    },
    analyst() {
      requireOpen();
      analyst ??= openAnalyst(config);
      return analyst;
    },
    async health() {
      const checks: Record<string, HealthCheck> = {};
      if (topics !== undefined) checks.topics = await topics.health();
      if (engines !== undefined) {
        const e = await engines;
        checks.clickhouse = await e.clickhouse
          .ping()
          .then((r) => (r.success ? { ok: true } : { ok: false, detail: String(r.error) }))
          .catch((error: unknown) => ({ ok: false, detail: String(error) }));
        checks.postgres = await e.postgres
          .query('SELECT 1')
          .then(() => ({ ok: true }))
          .catch((error: unknown) => ({ ok: false, detail: (error as Error).message }));
      }
      if (vectorStore !== undefined) checks.vectors = await (await vectorStore).health();
      if (cache !== undefined) checks.cache = await cache.health();
      if (embedder !== undefined) checks.embeddings = await embedder.health();
      if (analyst !== undefined) checks.llm = await analyst.health();
      return checks;
    },
    async close() {
      if (closed) return;
      closed = true;
      const settled = await Promise.allSettled([vectorStore, engines].filter((p) => p !== undefined));
      for (const s of settled) if (s.status === 'rejected') logger.debug({ err: s.reason }, 'resource failed to open');
      if (vectorStore !== undefined) await (await vectorStore.catch(() => undefined))?.close();
      await cache?.close();
      await embedder?.close();
      await analyst?.close();
      if (ownsTopics) await topics?.close();
      if (engines !== undefined && ownsEngines) await (await engines.catch(() => undefined))?.close();
    },
  };
  return resources;
}
