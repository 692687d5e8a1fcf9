/**
 * ClickHouse writes outside the logs insert path: the error_patterns table
 * (ReplacingMergeTree: a row is replaced by a newer version) and the flags
 * on logs set by later pipelines, as lightweight UPDATEs in batches rather
 * than one mutation per record.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { classify } from '../core/errors.ts';
import { clickhouseErrorRules } from '../sinks/clickhouse.ts';
import { toClickHouseDateTime } from './logs-table.ts';
import { truncateText } from '../core/text.ts';

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

/** What re-embedding reads of a pattern (src/sinks/pattern-reembed.ts). */
export interface KnownPattern {
  readonly error_hash: string;
  readonly template: string;
  readonly services: string[];
  readonly level: string;
  /** ClickHouse's `YYYY-MM-DD hh:mm:ss.sss`, UTC. */
  readonly first_seen: string;
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
          // Aliases differ from column names: an alias named like its column would shadow it in WHERE.
          query: `SELECT toString(p.error_hash) AS hash, p.template AS tpl, p.sample_message AS sample, p.services AS svc,
                         p.level AS lvl, toString(p.first_seen) AS first, toString(p.last_seen) AS last,
                         toString(p.occurrence_count) AS occurrences, p.has_embedding AS embedded, p.qdrant_point_id AS point
                  FROM error_patterns AS p FINAL WHERE p.error_hash IN arrayMap(x -> toUInt64(x), {hashes:Array(String)})`,
          query_params: { hashes },
          format: 'JSONEachRow',
        })
      ).json<{
        hash: string;
        tpl: string;
        sample: string;
        svc: string[];
        lvl: string;
        first: string;
        last: string;
        occurrences: string;
        embedded: number;
        point: string;
      }>(),
    );
    return new Map(
      rows.map((r) => [
        r.hash,
        {
          error_hash: r.hash,
          template: r.tpl,
          sample_message: r.sample,
          services: r.svc,
          level: r.lvl,
          first_seen: r.first,
          last_seen: r.last,
          occurrence_count: r.occurrences,
          has_embedding: Number(r.embedded),
          qdrant_point_id: r.point,
        },
      ]),
    );
  }

  /** How many patterns are known. */
  async count(): Promise<number> {
    const [row] = await this.run(async () =>
      (
        await this.client.query({
          query: 'SELECT toString(uniqExact(error_hash)) AS n FROM error_patterns',
          format: 'JSONEachRow',
        })
      ).json<{ n: string }>(),
    );
    return Number(row?.n ?? 0);
  }

  /**
   * Up to `limit` patterns after the hash `after` (none: from the first), in hash order: a walk over every
   * pattern that a new page query continues where the last ended, however many rows change meanwhile.
   */
  async page(after: string | undefined, limit: number): Promise<KnownPattern[]> {
    return this.run(async () =>
      (
        await this.client.query({
          // The first page starts at the hash 0 itself, which `> 0` would leave out.
          query: `SELECT toString(p.error_hash) AS error_hash, p.template AS template, p.services AS services,
                         p.level AS level, toString(p.first_seen) AS first_seen
                  FROM error_patterns AS p FINAL
                  WHERE {first:Bool} OR p.error_hash > toUInt64({after:String})
                  ORDER BY p.error_hash
                  LIMIT {limit:UInt32}`,
          query_params: { first: after === undefined, after: after ?? '0', limit },
          format: 'JSONEachRow',
        })
      ).json<KnownPattern>(),
    );
  }

  /** When the system first saw any pattern (epoch ms), or undefined before the first. */
  async firstSeen(): Promise<number | undefined> {
    const [row] = await this.run(async () =>
      (
        await this.client.query({
          query: 'SELECT count() AS n, toUnixTimestamp64Milli(min(first_seen)) AS first FROM error_patterns',
          format: 'JSONEachRow',
        })
      ).json<{ n: string; first: string }>(),
    );
    return Number(row?.n ?? 0) === 0 ? undefined : Number(row?.first);
  }

  /**
   * Records that patterns now have an embedding: a new row where the pattern
   * is unknown, else the existing row with the flag and point id set (and the
   * observation merged), keeping counts written by the nightly analysis.
   */
  async markEmbedded(
    observations: readonly PatternObservation[],
    pointIdOf: (hash: string) => string,
    /** The rows of these patterns when the caller has just read them (saves reading them again). */
    known?: ReadonlyMap<string, PatternRow>,
  ): Promise<void> {
    if (observations.length === 0) return;
    const existing = known ?? (await this.get(observations.map((o) => o.errorHash)));
    const rows = observations.map((o) => {
      const prior = existing.get(o.errorHash);
      const services = new Set(prior?.services ?? []);
      services.add(o.service);
      return {
        error_hash: o.errorHash,
        template: o.template,
        sample_message: prior?.sample_message ?? truncateText(o.sampleMessage, 4_096),
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
        this.client.command({
          query: 'UPDATE logs SET is_vectorized = 1 WHERE log_id IN {ids:Array(UUID)}',
          query_params: { ids },
        }),
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
