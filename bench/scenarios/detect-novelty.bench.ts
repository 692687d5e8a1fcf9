/**
 * The new-pattern case of issue 16's detect-quality list: novelty is not a
 * count; vectorize (src/pipelines/vectorize.ts) judges it on the embedding of
 * a pattern's template. This replays a stream of error messages through the
 * parts that decide it: the real normalizer (src/domain/normalizer.ts: a
 * message's template and error hash), the real novelty decision
 * (src/domain/novelty.ts, as src/sinks/pattern-vectors.ts applies it: a
 * pattern is judged once, when its hash is first seen after the learning
 * period, and is novel when no other stored pattern is at least the
 * threshold similar) and the real embedded vector store (ClickHouse on chdb,
 * src/stores/clickhouse-vector.ts), with both local embedders in the same
 * run: the hashing embedder and the default one (the local model when its
 * files are present), each at the thresholds of its own space
 * (src/domain/novelty.ts) and at a few fixed ones.
 *
 * The stream: 6 hours of event time, one message every 2 seconds, each from
 * a template picked at random among those in play and filled with fresh
 * values. In play from the start: the generator's WARN and ERROR templates
 * (src/sources/generator.ts), each sent a few times before anything else so
 * all are learnt in the learning period. Twenty new error templates come into
 * play at seeded times after it and recur from then on.
 * - recall: new templates whose first pattern was judged novel;
 * - false: patterns judged novel that belong to a template seen before (a
 *   recurring template whose values the normalizer did not mask, so its
 *   message got a new hash, or a second hash of a new template).
 * Patterns are checked one at a time; the pipeline checks a batch against the
 * store as it was before the batch, which can only add novel verdicts for
 * patterns first seen in the same batch.
 *
 * Args: --seed N (default 1), --messages N (default 10800).
 */
import type { Embedder } from '../../src/clients/embeddings.ts';
import { isNovel, judgedForNovelty, spaceThresholds } from '../../src/domain/novelty.ts';
import { normalizeMessage } from '../../src/domain/normalizer.ts';
import { DEFAULT_SERVICES } from '../../src/sources/generator.ts';
import { ClickHouseVectorStore } from '../../src/stores/clickhouse-vector.ts';
import { seededRandom } from '../../test/support/synthetic-series.ts';
import { numberArg } from '../support/args.ts';
import { benchEmbedders } from '../support/novelty-calibration.ts';
import { benchStack, uniqueName } from '../support/stack.ts';
import type { Benchmark, BenchContext, BenchOutput, BenchRow } from '../support/types.ts';

const SECOND = 1_000;
const MESSAGE_EVERY_MS = 2 * SECOND;
/** vectorize's `learning-period` default. */
const LEARNING_PERIOD_MS = 15 * 60 * SECOND;
/** Beside each embedder's own threshold. */
const FIXED_THRESHOLDS = [0.75, 0.85, 0.95];
/** Times each recurring template is sent first, in the learning period. */
const WARM_UP_ROUNDS = 3;

/** Error templates the generator does not have, written for this benchmark in its style. */
export const NEW_TEMPLATES: readonly string[] = [
  'Disk quota exceeded on volume {vol}: {n} MB free',
  'TLS handshake with {host}:{port} failed: certificate expired on {date}',
  'Deadlock detected while updating table {table} (transaction {hex})',
  'Consumer group {group} rebalanced: {n} partitions revoked',
  'Out of memory: killed process {n} ({proc}) total-vm:{n}kB',
  'Failed to parse JSON payload from {ip}: unexpected token at position {n}',
  'Feature flag "{word}" evaluation failed for user {user}',
  'S3 PutObject to bucket {bucket} denied: AccessDenied (request {req})',
  'Circuit breaker {proc} opened after {n} consecutive failures',
  'DNS lookup for {host} failed: SERVFAIL',
  'Redis command GET {key} timed out after {ms} ms',
  'Webhook delivery to https://{host}/hooks/{hex} returned HTTP {status}',
  'Schema migration {n} failed: column {table}.{col} already exists',
  'Rate limiter rejected {n} requests from {ip} in the last minute',
  'Payment provider {word} returned error code E{n}',
  'Thread pool {proc} exhausted: {n} tasks queued',
  'Invalid signature on webhook from {ip}: expected {hex}',
  'gRPC call {method} to {host}:{port} failed with UNAVAILABLE',
  'Cache eviction storm: {n} keys evicted in {ms} ms',
  'Upload of file {file} rejected: size {n} bytes exceeds limit',
];

/** The generator's WARN and ERROR templates: the recurring ones. */
export const RECURRING_TEMPLATES: readonly string[] = [
  ...new Set(DEFAULT_SERVICES.flatMap((service) => [...service.warn, ...service.errors.map((e) => e.message)])),
];

const WORDS = ['shoes', 'laptop', 'coffee', 'garden chair', 'usb cable', 'winter jacket', 'checkout-v2', 'dark_mode'];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'orders.Create', 'stock.Reserve'];
const TABLES = ['orders', 'payments', 'users', 'stock_levels', 'sessions'];
const PROCS = ['worker-pool', 'http-io', 'kafka-consumer', 'scheduler', 'java'];

/** Fills a template's `{name}` slots with fresh values, as the generator does, plus the slots of the new templates. */
export function fill(template: string, random: () => number): string {
  const int = (max: number) => Math.floor(random() * max);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const hex = (length: number) => Array.from({ length }, () => int(16).toString(16)).join('');
  return template.replace(/\{(\w+)\}/g, (_, name: string) => {
    switch (name) {
      case 'ms':
        return String(5 + int(2_000));
      case 'n':
        return String(int(500));
      case 'pct':
        return String(int(100));
      case 'user':
        return `user${int(50_000)}`;
      case 'session':
        return hex(16);
      case 'req':
        return `req-${hex(12)}`;
      case 'ip':
        return `10.${int(255)}.${int(255)}.${int(255)}`;
      case 'host':
        return `${pick(['api', 'db', 'cache', 'auth'])}-${int(12)}.internal`;
      case 'port':
        return String(1024 + int(60_000));
      case 'amount':
        return (random() * 500).toFixed(2);
      case 'sku':
        return `SKU-${int(90_000) + 10_000}`;
      case 'region':
        return pick(['eu-west-1', 'us-east-1', 'ap-south-1']);
      case 'word':
        return pick(WORDS);
      case 'method':
        return pick(METHODS);
      case 'path':
        return `/orders/${int(100_000)}`;
      case 'vol':
        return `/dev/nvme${int(4)}n1`;
      case 'date':
        return new Date(Date.UTC(2026, 0, 1) + int(365) * 86_400_000).toISOString().slice(0, 10);
      case 'table':
        return pick(TABLES);
      case 'col':
        return pick(['created_at', 'status', 'owner_id']);
      case 'hex':
        return hex(int(2) === 0 ? 8 : 40);
      case 'group':
        return `${pick(['orders', 'billing', 'search'])}-consumers-${int(9)}`;
      case 'proc':
        return pick(PROCS);
      case 'bucket':
        return `logflow-${pick(['exports', 'archive', 'uploads'])}-${int(99)}`;
      case 'key':
        return `session:${hex(16)}`;
      case 'status':
        return String(pick([400, 404, 410, 500, 502, 503]));
      case 'file':
        return `${pick(['report', 'invoice', 'avatar'])}_${int(10_000)}.${pick(['pdf', 'png', 'csv'])}`;
      default:
        return name;
    }
  });
}

export interface StreamMessage {
  readonly timestamp: number;
  /** Index into `[...RECURRING_TEMPLATES, ...NEW_TEMPLATES]`. */
  readonly template: number;
  readonly isNewTemplate: boolean;
  readonly message: string;
}

/** The seeded stream: recurring templates from the start, new ones coming in after the learning period. */
export function noveltyStream(seed: number, messages: number, from: number): StreamMessage[] {
  const random = seededRandom(seed);
  const all = [...RECURRING_TEMPLATES, ...NEW_TEMPLATES];
  const learningMessages = LEARNING_PERIOD_MS / MESSAGE_EVERY_MS;
  const warmUp = RECURRING_TEMPLATES.length * WARM_UP_ROUNDS;
  if (messages < learningMessages * 3)
    throw new RangeError(`--messages must be at least ${learningMessages * 3} (three learning periods)`);
  if (warmUp > learningMessages) throw new RangeError('the recurring templates do not fit in the learning period');
  // New templates come in from twice the learning period to 90% of the stream.
  const arrivals = NEW_TEMPLATES.map(
    () => 2 * learningMessages + Math.floor(random() * (0.9 * messages - 2 * learningMessages)),
  );
  const inPlay = RECURRING_TEMPLATES.map((_, i) => i);
  const stream: StreamMessage[] = [];
  for (let i = 0; i < messages; i++) {
    arrivals.forEach((at, n) => {
      if (at === i) inPlay.push(RECURRING_TEMPLATES.length + n);
    });
    // A new template's first message is the one it arrives with, so its arrival is when it is first seen.
    const arrived = arrivals.findIndex((at) => at === i);
    const template =
      i < warmUp
        ? i % RECURRING_TEMPLATES.length
        : arrived >= 0
          ? RECURRING_TEMPLATES.length + arrived
          : inPlay[Math.floor(random() * inPlay.length)]!;
    stream.push({
      timestamp: from + i * MESSAGE_EVERY_MS,
      template,
      isNewTemplate: template >= RECURRING_TEMPLATES.length,
      message: fill(all[template]!, random),
    });
  }
  return stream;
}

/** One pattern judged for novelty: whose it is, and how similar its nearest stored neighbour was. */
export interface JudgedPattern {
  readonly template: number;
  readonly normalized: string;
  /** The first pattern of a template that was not in play before: the one that should be novel. */
  readonly firstOfNewTemplate: boolean;
  readonly nearest: number | undefined;
  readonly nearestTemplate: string | undefined;
}

export interface NoveltyTally {
  readonly newTemplates: number;
  readonly found: number;
  readonly falseNovel: number;
  /** Of `falseNovel`, those of the generator's templates (the rest are later hashes of new templates). */
  readonly falseOfGeneratorTemplates: number;
  readonly judgedRecurring: number;
  readonly missed: readonly JudgedPattern[];
  readonly falses: readonly JudgedPattern[];
}

/** Verdicts at one threshold from the judged patterns' nearest similarities. */
export function tally(judged: readonly JudgedPattern[], threshold: number): NoveltyTally {
  const firsts = judged.filter((pattern) => pattern.firstOfNewTemplate);
  const others = judged.filter((pattern) => !pattern.firstOfNewTemplate);
  const missed = firsts.filter((pattern) => !isNovel(pattern.nearest, threshold));
  const falses = others.filter((pattern) => isNovel(pattern.nearest, threshold));
  return {
    newTemplates: firsts.length,
    found: firsts.length - missed.length,
    falseNovel: falses.length,
    falseOfGeneratorTemplates: falses.filter((pattern) => pattern.template < RECURRING_TEMPLATES.length).length,
    judgedRecurring: others.length,
    missed,
    falses,
  };
}

/** The stream through the normalizer, one embedder and a fresh vector store: every judged pattern. */
async function judgeStream(
  stream: readonly StreamMessage[],
  from: number,
  embedder: Embedder,
  store: ClickHouseVectorStore,
  phase: ReturnType<BenchContext['phase']>,
): Promise<{ judged: JudgedPattern[]; hashesPerTemplate: Map<number, Set<string>> }> {
  const seenHashes = new Set<string>();
  const templatesSeen = new Set<number>();
  const hashesPerTemplate = new Map<number, Set<string>>();
  const judged: JudgedPattern[] = [];
  for (const [i, message] of stream.entries()) {
    const { template, errorHash } = normalizeMessage(message.message);
    const hashes = hashesPerTemplate.get(message.template) ?? new Set<string>();
    hashes.add(errorHash);
    hashesPerTemplate.set(message.template, hashes);
    const firstOfTemplate = !templatesSeen.has(message.template);
    templatesSeen.add(message.template);
    if (seenHashes.has(errorHash)) continue;
    seenHashes.add(errorHash);
    const [embedded] = await embedder.embed([template]);
    const vector = [...embedded!];
    const judge = judgedForNovelty({
      alreadyEmbedded: false,
      timestamp: message.timestamp,
      historyStart: from,
      learningPeriodMs: LEARNING_PERIOD_MS,
    });
    if (judge) {
      const [nearest] = await store.search(vector, { limit: 1, excludeErrorHash: errorHash });
      judged.push({
        template: message.template,
        normalized: template,
        firstOfNewTemplate: firstOfTemplate && message.isNewTemplate,
        nearest: nearest?.score,
        nearestTemplate: nearest?.payload.template,
      });
    }
    await store.upsert([
      {
        errorHash,
        vector,
        payload: {
          error_hash: errorHash,
          template,
          service: 'bench',
          level: 'ERROR',
          first_seen: new Date(message.timestamp).toISOString(),
          model: embedder.model,
        },
      },
    ]);
    if (i % 200 === 0) phase.tick(i);
  }
  phase.done();
  return { judged, hashesPerTemplate };
}

const benchmark: Benchmark = {
  name: 'detect-novelty',
  description:
    'new error patterns: the normalizer and the novelty decision of vectorize on a stream where new templates appear, hashing embedder and local model',
  async run(ctx: BenchContext): Promise<BenchOutput> {
    const seed = Math.floor(numberArg(ctx.args, 'seed', 1));
    const messages = Math.floor(numberArg(ctx.args, 'messages', 10_800));
    const from = Date.UTC(2026, 0, 5, 9);
    const stream = noveltyStream(seed, messages, from);
    const engines = await (await benchStack(ctx.args)).engines('chdb');
    const embedders = await benchEmbedders();
    const rows: BenchRow[] = [];
    const notes: string[] = [];
    let hashesPerTemplate = new Map<number, Set<string>>();
    try {
      for (const embedder of embedders) {
        const store = new ClickHouseVectorStore({ client: engines.clickhouse, table: uniqueName('novelty_bench') });
        await store.ensureCollection(embedder.dimension!);
        const phase = ctx.phase(`${embedder.model}: messages`, stream.length);
        const run = await judgeStream(stream, from, embedder, store, phase);
        hashesPerTemplate = run.hashesPerTemplate;
        const own = spaceThresholds(embedder.model).novelty;
        for (const threshold of [...new Set([own, ...FIXED_THRESHOLDS])].sort((a, b) => a - b)) {
          const result = tally(run.judged, threshold);
          const label = `${embedder.model}, threshold ${threshold}${threshold === own ? ' (its default)' : ''}`;
          rows.push(
            {
              scenario: `${label}: ${result.newTemplates} new templates`,
              metric: 'recall (first pattern judged novel)',
              value: result.found / result.newTemplates,
              unit: 'share',
              target: '>= 0.95',
            },
            {
              scenario: `${label}: ${result.judgedRecurring} new hashes of templates seen before`,
              metric: 'false novel alerts',
              value: result.falseNovel,
              unit: 'alerts',
              target: '0',
            },
            {
              scenario: `${label}: of them, of the generator's templates`,
              metric: 'false novel alerts',
              value: result.falseOfGeneratorTemplates,
              unit: 'alerts',
            },
          );
          if (threshold === own) {
            for (const pattern of result.missed)
              notes.push(
                `${embedder.model}, missed at ${threshold}: "${pattern.normalized}" (nearest ${pattern.nearest?.toFixed(3)}: "${pattern.nearestTemplate}")`,
              );
            for (const pattern of result.falses.slice(0, 10))
              notes.push(
                `${embedder.model}, false at ${threshold}: "${pattern.normalized}" (nearest ${pattern.nearest?.toFixed(3) ?? 'none'}: "${pattern.nearestTemplate}")`,
              );
          }
        }
      }
    } finally {
      await Promise.all(embedders.map((e) => e.close()));
    }
    // The normalizer's hashes do not depend on the embedder: the last run's count is every run's.
    const recurringHashes = RECURRING_TEMPLATES.map((_, i) => hashesPerTemplate.get(i)?.size ?? 0);
    const newHashes = NEW_TEMPLATES.map((_, n) => hashesPerTemplate.get(RECURRING_TEMPLATES.length + n)?.size ?? 0);
    rows.push(
      {
        scenario: `${RECURRING_TEMPLATES.length} recurring templates`,
        metric: 'error hashes per template (mean; 1 = every value masked)',
        value: recurringHashes.reduce((a, b) => a + b, 0) / recurringHashes.length,
        unit: 'hashes',
      },
      {
        scenario: `${NEW_TEMPLATES.length} new templates`,
        metric: 'error hashes per template (mean; 1 = every value masked)',
        value: newHashes.reduce((a, b) => a + b, 0) / newHashes.length,
        unit: 'hashes',
      },
    );
    notes.unshift(
      `embedders: ${embedders.map((e) => `${e.model} (${e.dimension} dimensions)`).join(', ')}`,
      `seed ${seed}; ${messages} messages, one per ${MESSAGE_EVERY_MS / SECOND} s; learning period ` +
        `${LEARNING_PERIOD_MS / 60_000} min; vector store: ClickHouse (chdb), one pattern checked and stored at a time`,
    );
    return { rows, notes };
  },
};

export default benchmark;
