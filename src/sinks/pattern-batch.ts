/**
 * What flows through vectorize's pattern stages (src/pipelines/vectorize.ts):
 * the chunks of vectorization-queue records gathered into one batch, their
 * requests grouped by error pattern. A pattern is embedded, checked and
 * written as one, or rejected as one; a rejected pattern's records become
 * rejected records of their chunks, so each chunk's one acknowledgement
 * still covers them once their dead letters are written
 * (src/operators/deadLetterRejected.ts).
 */
import { withRecords, type Chunk, type Rejected } from '../core/chunk.ts';
import { createEnvelope, type Envelope, type Origin } from '../core/envelope.ts';
import { ErrorCodes, errorCode } from '../core/errors.ts';
import { parseVectorizationRequest, type VectorizationRequest } from '../domain/vectorization-request.ts';
import type { ConsumedRecord } from '../sources/topics.ts';
import type { PatternObservation, PatternRow } from '../stores/error-patterns.ts';

/** A vectorization-queue record and the request it holds. */
export interface QueuedRequest {
  readonly record: ConsumedRecord;
  readonly request: VectorizationRequest;
}

/** The request in a queue record; throws an InputError (the record's dead-letter reason) when there is none. */
export function parseQueuedRequest(record: ConsumedRecord): QueuedRequest {
  return { record, request: parseVectorizationRequest(record.value) };
}

/** A request of a pattern and the index of its chunk in the batch (where its rejection goes). */
export interface PatternEntry extends QueuedRequest {
  readonly chunk: number;
}

/** The records of one error pattern in a batch. */
export interface Pattern {
  readonly hash: string;
  /** The first request of the pattern in the batch: its template is what gets embedded. */
  readonly request: VectorizationRequest;
  /** Where that first request was read. */
  readonly origin: Origin;
  readonly entries: PatternEntry[];
  observation: PatternObservation;
  vector?: Float32Array;
}

/**
 * Failures no record is to blame for: a wrong key or model, or the process
 * stopping. They are never dead-lettered; they stop the pipeline.
 */
export const isFatal = (error: unknown): boolean =>
  errorCode(error) === ErrorCodes.CONFIG_INVALID || errorCode(error) === ErrorCodes.SHUTDOWN;

export class PatternBatch {
  /** The error_patterns rows of the patterns, once looked up. */
  known: ReadonlyMap<string, PatternRow> = new Map();
  /** Start of the pattern history, epoch ms: novelty is judged only after the learning period from it. */
  historyStart = 0;
  /** Earliest event time of any request in the batch, rejected or not; Infinity when there is none. */
  earliest = Infinity;
  /** Requests in the batch. */
  readonly size: number;
  /** Requests rejected so far. */
  rejectedCount = 0;
  readonly #patterns = new Map<string, Pattern>();
  readonly #envelopes = new Map<string, Envelope<Pattern>>();
  /** Per chunk (by index), the rejections of its requests; sparse, as rejections are rare. */
  readonly #rejected: Rejected[][] = [];
  readonly #rejectedRecords = new Set<ConsumedRecord>();

  private constructor(
    private readonly source: readonly Chunk<QueuedRequest>[],
    private readonly onReject: (pattern: Pattern, error: unknown) => void,
  ) {
    let size = 0;
    for (const chunk of source) size += chunk.records.length;
    this.size = size;
  }

  /** Groups the requests of the chunks by error pattern. */
  static of(
    chunks: readonly Chunk<QueuedRequest>[],
    onReject: (pattern: Pattern, error: unknown) => void = () => undefined,
  ): PatternBatch {
    const batch = new PatternBatch(chunks, onReject);
    chunks.forEach((chunk, index) => {
      for (const queued of chunk.records) batch.#add(queued, index);
    });
    return batch;
  }

  /** Patterns still on their way (neither written nor rejected), in order of first sighting. */
  pending(): Pattern[] {
    return [...this.#patterns.values()];
  }

  /**
   * The pending patterns as envelopes, for the envelope operators
   * (retryWithBackoff): failing one rejects its records;
   * acking one does nothing, as the records are acked with their chunks.
   */
  envelopes(): Envelope<Pattern>[] {
    return this.pending().map((pattern) => {
      let envelope = this.#envelopes.get(pattern.hash);
      if (envelope === undefined) {
        envelope = createEnvelope(
          { value: pattern, key: pattern.hash, eventTime: pattern.request.timestamp, origin: pattern.origin },
          { onAck: () => undefined, onFail: (error) => this.reject(pattern, error) },
        );
        this.#envelopes.set(pattern.hash, envelope);
      }
      return envelope;
    });
  }

  /**
   * Takes the pattern out of the batch and moves its records to their
   * chunks' rejected records with `error`. A fatal error is thrown instead:
   * no record is to blame, and an operator that throws from here errors the
   * graph.
   */
  reject(pattern: Pattern, error: unknown): void {
    if (isFatal(error)) throw error;
    if (!this.#patterns.delete(pattern.hash)) return;
    this.onReject(pattern, error);
    for (const entry of pattern.entries) {
      const { record } = entry;
      (this.#rejected[entry.chunk] ??= []).push({
        payload: record.value,
        error,
        stage: 'embed',
        origin: { topic: record.topic, partition: record.partition, offset: record.offset },
        key: record.key,
      });
      this.#rejectedRecords.add(record);
    }
    this.rejectedCount += pattern.entries.length;
  }

  /**
   * The batch's chunks, in order, each without the records of its rejected
   * patterns and with their rejections added: what the dead-letter operator
   * and the acknowledgement take once every pattern is written or rejected.
   */
  chunks(): Chunk<QueuedRequest>[] {
    return this.source.map((chunk, index) => {
      const rejected = this.#rejected[index];
      if (rejected === undefined) return chunk;
      return withRecords(
        chunk,
        chunk.records.filter((queued) => !this.#rejectedRecords.has(queued.record)),
        [...chunk.rejected, ...rejected],
      );
    });
  }

  #add(queued: QueuedRequest, chunk: number): void {
    const { request, record } = queued;
    this.earliest = Math.min(this.earliest, request.timestamp);
    const entry: PatternEntry = { record, request, chunk };
    const pattern = this.#patterns.get(request.error_hash);
    const prior = pattern?.observation;
    const observation: PatternObservation = {
      errorHash: request.error_hash,
      template: request.template,
      sampleMessage: prior?.sampleMessage ?? request.message,
      service: request.service,
      level: request.level,
      firstSeen: Math.min(prior?.firstSeen ?? Infinity, request.timestamp),
      lastSeen: Math.max(prior?.lastSeen ?? -Infinity, request.timestamp),
      occurrences: (prior?.occurrences ?? 0) + 1,
    };
    if (pattern === undefined)
      this.#patterns.set(request.error_hash, {
        hash: request.error_hash,
        request,
        origin: { topic: record.topic, partition: record.partition, offset: record.offset },
        entries: [entry],
        observation,
      });
    else {
      pattern.entries.push(entry);
      pattern.observation = observation;
    }
  }
}
