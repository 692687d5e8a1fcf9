/**
 * Where vectorize (src/pipelines/vectorize.ts) writes an embedded error
 * pattern: a novel_pattern alert and an error_catalog entry when no stored
 * pattern is near it, its point in the vector store, its error_patterns row
 * (has_embedding) and the is_vectorized flag of its logs. Every write is
 * idempotent, so a retried or repeated batch changes nothing twice.
 */
import { truncateText } from '../core/text.ts';
import { isNovel, judgedForNovelty } from '../domain/novelty.ts';
import type { VectorizationRequest } from '../domain/vectorization-request.ts';
import type { ErrorPatternStore } from '../stores/error-patterns.ts';
import type { NotificationTargets } from '../stores/postgres/alert-notifications.ts';
import type { PoolRepositories } from '../stores/postgres/index.ts';
import { pointIdFor, type VectorStore } from '../stores/vector-store.ts';
import { raiseAlert } from './alert-transitions.ts';
import type { Pattern, PatternBatch } from './pattern-batch.ts';

export interface PatternVectorSinkOptions {
  /** A pattern with no stored neighbour at least this similar is novel. */
  readonly noveltyThreshold: number;
  /** Every pattern is new to a fresh system: novelty is judged only after this much event time of history. */
  readonly learningPeriodMs: number;
  /** Where a novel_pattern alert's webhook goes (LOGFLOW_ALERT_WEBHOOK_URL, services.alert_webhook_url). */
  readonly notifications: NotificationTargets;
  /** Told when a novel_pattern alert was raised. */
  readonly onNovel?: () => void;
  /** The embedder's model (Embedder.model), stored with every point. */
  readonly model: string;
  /**
   * Settles once the collection holds every known pattern (src/sinks/pattern-reembed.ts): a pattern judged for
   * novelty before then could find its neighbours missing and be called new.
   */
  readonly complete?: PromiseLike<unknown>;
}

export class PatternVectorSink {
  readonly #patterns: ErrorPatternStore;
  #collectionReady: Promise<void> | undefined;
  #historyStart: number | undefined;

  constructor(
    patterns: ErrorPatternStore,
    private readonly vectorStore: VectorStore,
    private readonly repositories: PoolRepositories,
    private readonly options: PatternVectorSinkOptions,
  ) {
    this.#patterns = patterns;
  }

  /**
   * Makes the collection for the batch's vectors and reads what is known of
   * its patterns (their rows, the start of the history); retriable read failures
   * are the caller's to retry.
   */
  async lookUp(batch: PatternBatch): Promise<PatternBatch> {
    const patterns = batch.pending();
    if (patterns.length === 0) return batch;
    // Made once; a failed attempt is forgotten, so the caller's retry makes it again rather than rereading the failure.
    this.#collectionReady ??= this.vectorStore.ensureCollection(patterns[0]!.vector!.length).catch((error: unknown) => {
      this.#collectionReady = undefined;
      throw error;
    });
    await this.#collectionReady;
    batch.known = await this.#patterns.get(patterns.map((p) => p.hash));
    this.#historyStart ??= (await this.#patterns.firstSeen()) ?? batch.earliest;
    batch.historyStart = this.#historyStart;
    return batch;
  }

  /** Raises the novel_pattern alert of a pattern seen for the first time (after the learning period) with no near neighbour. */
  async checkNovelty(pattern: Pattern, batch: PatternBatch): Promise<void> {
    const { hash, request } = pattern;
    const judged = judgedForNovelty({
      alreadyEmbedded: batch.known.get(hash)?.has_embedding === 1,
      timestamp: request.timestamp,
      historyStart: batch.historyStart,
      learningPeriodMs: this.options.learningPeriodMs,
    });
    if (!judged) return;
    await this.options.complete;
    const [nearest] = await this.vectorStore.search([...pattern.vector!], { limit: 1, excludeErrorHash: hash });
    if (isNovel(nearest?.score, this.options.noveltyThreshold)) await this.#raiseNovel(request, nearest?.score ?? null);
  }

  async upsertVectors(patterns: readonly Pattern[]): Promise<void> {
    await this.vectorStore.upsert(
      patterns.map(({ hash, request: r, vector }) => ({
        errorHash: hash,
        vector: [...vector!],
        payload: {
          error_hash: hash,
          template: r.template,
          service: r.service,
          level: r.level,
          first_seen: new Date(r.timestamp).toISOString(),
          model: this.options.model,
        },
      })),
    );
  }

  async markEmbedded(patterns: readonly Pattern[], batch: PatternBatch): Promise<void> {
    await this.#patterns.markEmbedded(
      patterns.map((p) => p.observation),
      pointIdFor,
      batch.known,
    );
  }

  async flagVectorized(patterns: readonly Pattern[]): Promise<void> {
    await this.#patterns.flagVectorized(patterns.flatMap((p) => p.entries.map((e) => e.request.log_id)));
  }

  async #raiseNovel(request: VectorizationRequest, score: number | null): Promise<void> {
    const dedupKey = `novel_pattern:${request.error_hash}`;
    await this.repositories.errorCatalog.upsertAutoCreated({
      errorHash: request.error_hash,
      template: request.template,
      title: truncateText(request.template, 120),
      description: `Error pattern first seen in ${request.service} (${request.environment}) at ${new Date(request.timestamp).toISOString()}.`,
      services: [request.service],
      occurrenceCount: 1,
      firstSeen: new Date(request.timestamp),
      lastSeen: new Date(request.timestamp),
      severity: request.level === 'FATAL' ? 'critical' : request.level === 'ERROR' ? 'high' : 'medium',
    });
    const raised = await raiseAlert(
      this.repositories,
      {
        dedupKey,
        rule: 'novel_pattern',
        alertType: 'novel_pattern',
        status: 'open',
        severity: request.level === 'FATAL' ? 'critical' : 'high',
        service: request.service,
        environment: request.environment,
        level: request.level,
        errorHash: request.error_hash,
        score: score ?? 0,
        description: `New error pattern: ${truncateText(request.template, 500)}`,
        details: { nearestSimilarity: score, sampleMessage: truncateText(request.message, 1_000) },
        openedAt: new Date(),
      },
      this.options.notifications,
    );
    if (raised !== null) this.options.onNovel?.();
  }
}
