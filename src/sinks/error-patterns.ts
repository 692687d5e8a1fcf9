/**
 * ClickHouse writes outside the logs insert path: the error_patterns table
 * (ReplacingMergeTree: a row is replaced by a newer version) and the flags
 * on logs set by later pipelines, as lightweight UPDATEs in batches rather
 * than one mutation per record.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { classify } from '../errors.ts';
import { clickhouseErrorRules } from './clickhouse.ts';
import { toClickHouseDateTime } from './logs-table.ts';

export interface PatternObservation {
  readonly errorHash: string;
  readonly template: string;
  readonly sampleMessage: string;
  readonly service: string;
  readonly level: string;
  /** Epoch ms of the earliest and latest occurrence seen. */
  readonly firstSeen: number;
  readonly lastSeen: number;
  readonly occurrences: number;
}

export interface PatternRow {
  readonly error_hash: string;
  readonly template: string;
  readonly sample_message: string;
  readonly services: string[];
  readonly level: string;
  readonly first_seen: string;
  readonly last_seen: string;
  readonly occurrence_count: string;
  readonly has_embedding: number;
  readonly qdrant_point_id: string;
}

/** Updates with IN-lists longer than this are split: the query text stays bounded. */
const UPDATE_CHUNK = 10_000;

export class ErrorPatternStore {
  constructor(private readonly client: ClickHouseClient) {}

  async get(hashes: readonly string[]): Promise<Map<string, PatternRow>> {
    if (hashes.length === 0) return new Map();
    const rows = await this.run(async () =>
      (
        await this.client.query({
          query: `SELECT toString(error_hash) AS error_hash, template, sample_message, services, level,
                         toString(first_seen) AS first_seen, toString(last_seen) AS last_seen,
                         toString(occurrence_count) AS occurrence_count, has_embedding, qdrant_point_id
                  FROM error_patterns FINAL WHERE error_hash IN {hashes:Array(UInt64)}`,
          query_params: { hashes },
          format: 'JSONEachRow',
        })
      ).json<PatternRow>(),
    );
    return new Map(rows.map((r) => [r.error_hash, r]));
  }

  /**
   * Records that patterns now have an embedding: a new row where the pattern
   * is unknown, else the existing row with the flag and point id set (and the
   * observation merged), keeping counts written by the nightly analysis.
   */
  async markEmbedded(observations: readonly PatternObservation[], pointIdOf: (hash: string) => string): Promise<void> {
    if (observations.length === 0) return;
    const existing = await this.get(observations.map((o) => o.errorHash));
    const rows = observations.map((o) => {
      const prior = existing.get(o.errorHash);
      const services = new Set(prior?.services ?? []);
      services.add(o.service);
      return {
        error_hash: o.errorHash,
        template: o.template,
        sample_message: prior?.sample_message ?? o.sampleMessage.slice(0, 4_096),
        services: [...services].sort(),
        level: prior?.level ?? o.level,
        first_seen: prior === undefined ? toClickHouseDateTime(o.firstSeen) : minTime(prior.first_seen, o.firstSeen),
        last_seen: prior === undefined ? toClickHouseDateTime(o.lastSeen) : maxTime(prior.last_seen, o.lastSeen),
        occurrence_count: String(Math.max(Number(prior?.occurrence_count ?? 0), o.occurrences)),
        has_embedding: 1,
        qdrant_point_id: pointIdOf(o.errorHash),
      };
    });
    await this.run(() => this.client.insert({ table: 'error_patterns', values: rows, format: 'JSONEachRow' }));
  }

  /** Inserts newer versions of whole rows (the nightly analysis owns counts). */
  async upsert(rows: readonly PatternRow[]): Promise<void> {
    if (rows.length === 0) return;
    await this.run(() => this.client.insert({ table: 'error_patterns', values: [...rows], format: 'JSONEachRow' }));
  }

  async flagVectorized(logIds: readonly string[]): Promise<void> {
    for (let i = 0; i < logIds.length; i += UPDATE_CHUNK) {
      const ids = logIds.slice(i, i + UPDATE_CHUNK);
      await this.run(() =>
        this.client.command({ query: 'UPDATE logs SET is_vectorized = 1 WHERE log_id IN {ids:Array(UUID)}', query_params: { ids } }),
      );
    }
  }

  private async run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      throw classify(error, clickhouseErrorRules, 'sink');
    }
  }
}

function minTime(stored: string, ms: number): string {
  const candidate = toClickHouseDateTime(ms);
  return candidate < stored ? candidate : stored;
}

function maxTime(stored: string, ms: number): string {
  const candidate = toClickHouseDateTime(ms);
  return candidate > stored ? candidate : stored;
}
