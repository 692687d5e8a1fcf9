/**
 * What flows through vectorize (src/pipelines/vectorize.ts): one batch of
 * vectorization-queue records, grouped by error pattern. A pattern is
 * embedded, checked and written as one, or dead-lettered as one; the batch's
 * records are acked once every pattern is one or the other
 * (src/operators/deadLetterAndAck.ts writes the letters first).
 */
import { createEnvelope, type Envelope } from '../core/envelope.ts';
import { ErrorCodes, errorCode } from '../core/errors.ts';
import { parseVectorizationRequest, type VectorizationRequest } from '../domain/vectorization-request.ts';
import type { ConsumedRecord } from '../sources/topics.ts';
import type { PatternObservation, PatternRow } from '../stores/error-patterns.ts';
import type { Failure } from './dead-letter.ts';

/** The records of one error pattern in a batch. */
export interface Pattern {
  readonly hash: string;
  /** The first request of the pattern in the batch: its template is what gets embedded. */
  readonly request: VectorizationRequest;
  readonly entries: Array<{ readonly envelope: Envelope<ConsumedRecord>; readonly request: VectorizationRequest }>;
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
  /** Records to dead-letter, with why, before the batch is acked. */
  readonly failures: Failure[] = [];
  /** The error_patterns rows of the patterns, once looked up. */
  known: ReadonlyMap<string, PatternRow> = new Map();
  /** Start of the pattern history, epoch ms: novelty is judged only after the learning period from it. */
  historyStart = 0;
  /** Earliest event time of any valid request in the batch, rejected or not; Infinity when there is none. */
  earliest = Infinity;
  readonly #patterns = new Map<string, Pattern>();
  readonly #envelopes = new Map<string, Envelope<Pattern>>();

  private constructor(
    readonly records: readonly Envelope<ConsumedRecord>[],
    private readonly onReject: (pattern: Pattern, error: unknown) => void,
  ) {}

  /** Groups the records by error pattern; a record that is no valid request is a failure of stage `parse`. */
  static of(
    records: readonly Envelope<ConsumedRecord>[],
    onReject: (pattern: Pattern, error: unknown) => void = () => undefined,
  ): PatternBatch {
    const batch = new PatternBatch(records, onReject);
    for (const envelope of records) {
      let request: VectorizationRequest;
      try {
        request = parseVectorizationRequest(envelope.value.value);
      } catch (error) {
        batch.failures.push({
          payload: envelope.value.value,
          error,
          stage: 'parse',
          origin: envelope.origin,
          key: envelope.key,
        });
        continue;
      }
      batch.#add(envelope, request);
    }
    return batch;
  }

  /** Patterns still on their way (neither written nor dead-lettered), in order of first sighting. */
  pending(): Pattern[] {
    return [...this.#patterns.values()];
  }

  /**
   * The pending patterns as envelopes, for the envelope operators
   * (retryWithBackoff, mapConcurrent): failing one dead-letters its records;
   * acking one does nothing, as the batch's records are acked together.
   */
  envelopes(): Envelope<Pattern>[] {
    return this.pending().map((pattern) => {
      let envelope = this.#envelopes.get(pattern.hash);
      if (envelope === undefined) {
        const first = pattern.entries[0]!.envelope;
        envelope = createEnvelope(
          { value: pattern, key: pattern.hash, eventTime: pattern.request.timestamp, origin: first.origin },
          { onAck: () => undefined, onFail: (error) => this.reject(pattern, error) },
        );
        this.#envelopes.set(pattern.hash, envelope);
      }
      return envelope;
    });
  }

  /**
   * Takes the pattern out of the batch and dead-letters its records with
   * `error`. A fatal error is thrown instead: no record is to blame, and an
   * operator that throws from here errors the graph.
   */
  reject(pattern: Pattern, error: unknown): void {
    if (isFatal(error)) throw error;
    if (!this.#patterns.delete(pattern.hash)) return;
    this.onReject(pattern, error);
    for (const { envelope } of pattern.entries)
      this.failures.push({
        payload: envelope.value.value,
        error,
        stage: 'embed',
        origin: envelope.origin,
        key: envelope.key,
      });
  }

  #add(envelope: Envelope<ConsumedRecord>, request: VectorizationRequest): void {
    this.earliest = Math.min(this.earliest, request.timestamp);
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
        entries: [{ envelope, request }],
        observation,
      });
    else {
      pattern.entries.push({ envelope, request });
      pattern.observation = observation;
    }
  }
}
