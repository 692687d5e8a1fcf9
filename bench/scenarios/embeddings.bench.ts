/**
 * Issue 18's embeddings figures, for every embedder this machine has: the
 * hashing embedder always, and the default one (openEmbedder: the local model
 * when its files are present, a remote endpoint when LOGFLOW_EMBEDDINGS_URL
 * is set) when it is another. Speed rows of the default embedder carry the
 * hashing embedder's figure of the same run as their baseline.
 * - quality on the paraphrase set (bench/support/paraphrases.ts), whole and
 *   on each half (service errors, Loghub's systems), as messages and as the
 *   normalizer's templates;
 * - patterns/s: Loghub-2k's distinct templates (as the normalizer makes them,
 *   what vectorize embeds) through embed() in batches of 32 and of 256, one
 *   batch at a time, after one warm-up batch;
 * - the embeddings service (src/api/embeddings/server.ts) over HTTP on
 *   loopback with the Redis cache: 10 clients in a closed loop, each request
 *   `--request-texts` distinct Loghub messages; after 50 warm-up requests,
 *   first all cache misses, then the same requests again, all hits.
 *
 * - vectorize records/s (bench/support/vectorize-run.ts) with each embedder.
 *
 * Args: --patterns N (default 2048), --requests N (default 500), --request-texts N (default 8),
 * --vectorize-records N (default 20000), --no-vectorize, --pglite.
 */
import { buildEmbeddingsServer } from '../../src/api/embeddings/server.ts';
import { createLocalEmbedder, openEmbedder, type Embedder } from '../../src/clients/embeddings.ts';
import { loadConfig } from '../../src/core/config.ts';
import { Health } from '../../src/core/health.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createMetrics } from '../../src/core/metrics.ts';
import { normalizeMessage } from '../../src/domain/normalizer.ts';
import {
  createMemoryEmbeddingCache,
  createRedisEmbeddingCache,
  type EmbeddingCache,
} from '../../src/stores/embedding-cache.ts';
import { flagArg, numberArg } from '../support/args.ts';
import { closedLoopPosts, type LoadResult } from '../support/http-load.ts';
import { LOGHUB_DATASETS, loadLoghubDataset } from '../support/loghub.ts';
import { embedParaphrases, loadParaphrases, scoreParaphraseHalves, scoreParaphrases } from '../support/paraphrases.ts';
import { BENCH_REDIS_URL } from '../support/services.ts';
import { benchStack, uniqueName } from '../support/stack.ts';
import type { Benchmark, BenchContext, BenchOutput, BenchRow } from '../support/types.ts';
import { runVectorize, vectorizationRequests } from '../support/vectorize-run.ts';

const CLIENTS = 10;
const BATCH_SIZES = [32, 256] as const;
const WARM_UP_REQUESTS = 50;

function loghubTexts(): { templates: string[]; messages: string[] } {
  const messages = new Set<string>();
  const templates = new Set<string>();
  for (const name of LOGHUB_DATASETS) {
    for (const message of loadLoghubDataset(name).messages) {
      messages.add(message);
      templates.add(normalizeMessage(message).template);
    }
  }
  return { templates: [...templates], messages: [...messages] };
}

/** `count` texts, cycling through `pool` when it is shorter. */
function take(pool: readonly string[], count: number, offset = 0): string[] {
  return Array.from({ length: count }, (_, i) => pool[(offset + i) % pool.length]!);
}

async function patternsPerSecond(embedder: Embedder, texts: readonly string[], batch: number): Promise<number> {
  await embedder.embed(texts.slice(0, batch));
  const started = performance.now();
  for (let i = 0; i < texts.length; i += batch) await embedder.embed(texts.slice(i, i + batch));
  return texts.length / ((performance.now() - started) / 1000);
}

async function openCache(): Promise<{ cache: EmbeddingCache; where: string }> {
  const redis = createRedisEmbeddingCache({
    url: BENCH_REDIS_URL,
    keyPrefix: `${uniqueName('bench_embeddings')}:`,
    // The keys of this run are of no use to the next; they go by themselves.
    ttlSeconds: 600,
  });
  if ((await redis.health()).ok) return { cache: redis, where: `Redis at ${BENCH_REDIS_URL}` };
  await redis.close();
  return { cache: createMemoryEmbeddingCache(), where: 'the in-memory cache (Redis did not answer)' };
}

async function serviceLoad(
  ctx: BenchContext,
  embedder: Embedder,
  cache: EmbeddingCache,
  bodies: readonly unknown[],
): Promise<{ cold: LoadResult; warm: LoadResult }> {
  const server = buildEmbeddingsServer({
    embedder,
    cache,
    logger: createLogger({ level: 'silent' }),
    metrics: createMetrics({ defaultMetrics: false }),
    health: new Health(),
    limits: { maxInputs: 2048, maxTextChars: 8192 },
  });
  await server.listen({ port: 0, host: '127.0.0.1' });
  try {
    const address = server.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    const url = `http://127.0.0.1:${port}/v1/embeddings`;
    const run = async (label: string) => {
      const phase = ctx.phase(`${embedder.model}: service, ${label}`, bodies.length);
      const result = await closedLoopPosts(url, bodies, CLIENTS, (done) => phase.tick(done));
      phase.done();
      if (result.failures > 0) throw new Error(`${result.failures} of ${result.requests} requests failed (${label})`);
      return result;
    };
    // The server's first requests compile its routes and the JIT's hot paths: not what a running service costs.
    const warmUp = bodies.slice(0, WARM_UP_REQUESTS).map((body) => ({ ...(body as object), input: ['warm-up'] }));
    await closedLoopPosts(url, warmUp, CLIENTS);
    const cold = await run('cache misses');
    const warm = await run('cache hits');
    return { cold, warm };
  } finally {
    await server.close();
  }
}

async function availableEmbedders(): Promise<Embedder[]> {
  const hashing = createLocalEmbedder();
  const chosen = openEmbedder(loadConfig());
  if (chosen.model !== hashing.model) return [hashing, chosen];
  await chosen.close();
  return [hashing];
}

async function run(ctx: BenchContext): Promise<BenchOutput> {
  const patterns = numberArg(ctx.args, 'patterns', 2048);
  const requests = numberArg(ctx.args, 'requests', 500);
  const perRequest = numberArg(ctx.args, 'request-texts', 8);
  const vectorizeRecords = flagArg(ctx.args, 'no-vectorize') ? 0 : numberArg(ctx.args, 'vectorize-records', 20_000);
  const { templates, messages } = loghubTexts();
  const embedders = await availableEmbedders();
  const { cache, where } = await openCache();
  const rows: BenchRow[] = [];
  const hashingFigures = new Map<string, number>();
  try {
    for (const [index, embedder] of embedders.entries()) {
      const scenario = `${embedder.model} (${embedder.dimension ?? '?'} dims)`;
      // Quality rows show no baseline: a ratio to a gap near or below zero says nothing; the hashing rows are above.
      const add = (metric: string, value: number, unit: string, target?: string, compared = true) => {
        if (index === 0) hashingFigures.set(metric, value);
        const baseline = index === 0 || !compared ? undefined : hashingFigures.get(metric);
        rows.push({
          scenario,
          metric,
          value,
          unit,
          ...(baseline === undefined ? {} : { baseline }),
          ...(target === undefined ? {} : { target }),
        });
      };

      // The messages are embedded once, for the whole set and for its halves.
      const pairs = loadParaphrases();
      const messageVectors = await embedParaphrases(embedder, pairs);
      const score = scoreParaphrases(messageVectors);
      add(`nearest is paraphrase (${score.pairs} pairs)`, score.nearestRate, 'share', '>= 0.9', false);
      add('nearest is paraphrase, 16-pair draws', score.nearestRate16, 'share', undefined, false);
      add(
        `nearest of the other side's candidates (${score.pairs} pairs)`,
        score.candidateRate,
        'share',
        undefined,
        false,
      );
      add("nearest of the other side's 16 candidates, 16-pair draws", score.candidateRate16, 'share', '>= 0.9', false);
      add('paraphrase in 5 nearest', score.top5Rate, 'share', undefined, false);
      add('cosine gap, paraphrase - unrelated', score.meanGap, 'cosine', '>= 0.3', false);
      // Each half alone, and both as the normalizer's templates (what vectorize embeds): a gain must hold on each.
      const templatePairs = pairs.map((p) => ({
        ...p,
        message: normalizeMessage(p.message).template,
        paraphrase: normalizeMessage(p.paraphrase).template,
      }));
      for (const [form, formPairs] of [
        ['messages', pairs],
        ['templates', templatePairs],
      ] as const) {
        const vectors = form === 'messages' ? messageVectors : await embedParaphrases(embedder, formPairs);
        const halves = scoreParaphraseHalves(vectors, formPairs);
        for (const [half, s] of Object.entries(halves)) {
          const of = `${half} half, ${s.pairs} pairs, ${form}`;
          add(`16 candidates, 16-pair draws (${of})`, s.candidateRate16, 'share', undefined, false);
          add(`cosine gap (${of})`, s.meanGap, 'cosine', undefined, false);
        }
      }

      const texts = take(templates, patterns);
      for (const batch of BATCH_SIZES) {
        const phase = ctx.phase(`${embedder.model}: embed, batch ${batch}`, 1);
        add(`patterns/s, batch ${batch}`, await patternsPerSecond(embedder, texts, batch), 'patterns/s');
        phase.done();
      }

      // Distinct texts per embedder run as well as per request: the first pass must miss the cache.
      const bodies = Array.from({ length: requests }, (_, r) => ({
        input: take(messages, perRequest, r * perRequest),
        model: embedder.model,
      }));
      const { cold, warm } = await serviceLoad(ctx, embedder, cache, bodies);
      add(`POST /v1/embeddings p99, ${CLIENTS} clients, misses`, cold.p99Ms, 'ms');
      add(`POST /v1/embeddings p50, ${CLIENTS} clients, misses`, cold.p50Ms, 'ms');
      add('POST /v1/embeddings requests/s, misses', cold.requests / cold.seconds, 'req/s');
      add(`POST /v1/embeddings p99, ${CLIENTS} clients, hits`, warm.p99Ms, 'ms');

      if (vectorizeRecords > 0) {
        const phase = ctx.phase(`${embedder.model}: vectorize`, vectorizeRecords);
        const drained = await runVectorize(
          await benchStack(ctx.args),
          embedder,
          vectorizationRequests(messages, vectorizeRecords),
          (committed) => phase.tick(committed),
        );
        phase.done();
        add(`vectorize records/s (${drained.patterns} patterns)`, drained.records / drained.seconds, 'records/s');
      }
    }
  } finally {
    await cache.close();
    for (const embedder of embedders) await embedder.close();
  }
  return {
    rows,
    notes: [
      `embedders: ${embedders.map((e) => `${e.model} (${e.name})`).join(', ')}; the first is the baseline of the others`,
      `patterns: ${patterns} of Loghub-2k's ${templates.length} distinct templates (cycled if fewer)`,
      ...(vectorizeRecords > 0
        ? [
            `vectorize: ${vectorizeRecords} queue records of Loghub messages (their templates the patterns) produced to Kafka first, then drained by the pipeline on chdb and PostgreSQL, fresh in-memory cache and vector table per embedder, until its group committed them all (commits every second)`,
          ]
        : []),
      `service: ${requests} requests of ${perRequest} distinct Loghub messages each (${messages.length} distinct in all), ${CLIENTS} clients in a closed loop, cache: ${where}`,
    ],
  };
}

const benchmark: Benchmark = {
  name: 'embeddings',
  description:
    'embedders on the paraphrase set, patterns/s at batch 32 and 256, and the embeddings service p99 at 10 clients',
  run,
};
export default benchmark;
