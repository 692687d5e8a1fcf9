/**
 * What each of ingest's stages costs in CPU per stored log, measured in
 * process on the benchmark's own records, without Kafka: parsing and
 * validating (parseLogEvent; JSON.parse alone too, which the raw consumer
 * also pays), normalizing, encoding the logs rows and their
 * insert bodies (as src/pipelines/ingest.ts and src/sinks/clickhouse.ts do),
 * and the engine's insert of those bodies into the logs table with its
 * views (CPU of every thread of this process, so chdb's own threads count).
 *
 * With the raw consumer's cost per log, this bounds what an ingest can reach
 * on the machine: a pipeline that must pay at least `floor` CPU seconds per
 * million logs cannot store more than cores / floor million logs a second,
 * however its work is arranged over threads.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { encodeRows, packRows, rowInserterFor } from '../../src/clients/row-inserter.ts';
import { parseLogEvent, type LogEvent } from '../../src/domain/log-event.ts';
import { normalizeMessage } from '../../src/domain/normalizer.ts';
import { encodeLogsRow, LOGS_COLUMNS } from '../../src/stores/logs-table.ts';

export interface StageCosts {
  /** CPU seconds per million logs, each the best of the rounds. */
  readonly jsonParse: number;
  readonly parse: number;
  readonly normalize: number;
  readonly encode: number;
  /** The engine's insert of the encoded bodies (all threads). */
  readonly insert: number;
  readonly logs: number;
}

function cpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

/**
 * Measures each stage over `values` (raw-logs payloads), `rounds` times,
 * keeping the cheapest round of each: other work on the machine only adds.
 * Truncates `logs` before each insert round.
 */
export async function measureStageCosts(
  clickhouse: ClickHouseClient,
  values: readonly string[],
  options: { readonly batch: number; readonly rounds: number },
): Promise<StageCosts> {
  const payloads = values.map((value) => Buffer.from(value));
  const origin = { topic: 'stage-costs', partition: 0, offset: 0 };
  const insert = rowInserterFor(clickhouse);
  const perMillion = (seconds: number) => seconds / (payloads.length / 1e6);
  const best = { jsonParse: Infinity, parse: Infinity, normalize: Infinity, encode: Infinity, insert: Infinity };
  let sink = 0;
  for (let round = 0; round < options.rounds; round++) {
    const now = Date.now();
    let started = cpuSeconds();
    for (const payload of payloads) sink += (JSON.parse(payload.toString()) as object) === null ? 1 : 0;
    best.jsonParse = Math.min(best.jsonParse, perMillion(cpuSeconds() - started));

    started = cpuSeconds();
    const events: LogEvent[] = payloads.map((payload, offset) => parseLogEvent(payload, { ...origin, offset }, now));
    best.parse = Math.min(best.parse, perMillion(cpuSeconds() - started));

    started = cpuSeconds();
    const normalized = events.map((event) => normalizeMessage(event.message));
    best.normalize = Math.min(best.normalize, perMillion(cpuSeconds() - started));

    started = cpuSeconds();
    const rows = events.map((event, offset) =>
      JSON.stringify(
        encodeLogsRow(event, {
          template: normalized[offset]!.template,
          error_hash: normalized[offset]!.errorHash,
          ingested_at: now,
          kafka_topic: origin.topic,
          kafka_partition: origin.partition,
          kafka_offset: offset,
        }),
      ),
    );
    // Ingest packs each chunk's rows into one buffer (packRows), then joins a batch's rows into its body: here one
    // batch is one chunk.
    const bodies: Buffer[] = [];
    for (let i = 0; i < rows.length; i += options.batch)
      bodies.push(encodeRows(packRows(rows.slice(i, i + options.batch))));
    best.encode = Math.min(best.encode, perMillion(cpuSeconds() - started));

    await clickhouse.command({ query: 'TRUNCATE TABLE logs' });
    started = cpuSeconds();
    for (const [i, body] of bodies.entries()) {
      await insert({
        table: 'logs',
        columns: LOGS_COLUMNS,
        body,
        settings: { insert_deduplication_token: `stage-costs-${now}-${round}-${i}` },
      });
    }
    best.insert = Math.min(best.insert, perMillion(cpuSeconds() - started));
  }
  if (sink !== 0) throw new Error('a generated record parsed to null');
  return { ...best, logs: payloads.length };
}
