/**
 * The per-record CPU of ingest's edge, on one core: validating a parsed event
 * (`fastValidate`, the path every valid event takes), the whole
 * `parseLogEvent` (bytes to event), and encoding the logs row from the
 * event and what ingest adds (`encodeLogsRow` + JSON.stringify, as
 * src/pipelines/ingest.ts does). The events are parseLogEvent's own objects:
 * a stored log built by spreading one is a dictionary-mode object whose
 * property reads cost several times more, which ingest never pays.
 *
 * Baseline, measured in the same run: JSON.parse of the same payloads, the
 * least any consumer of raw-logs does per record.
 *
 * Records come from the project's generator (bench/support/load.ts), compact
 * (~350 bytes) and full (every optional field). Each measurement repeats the
 * sample until `--seconds` (default 1; `--quick`: 0.25) have passed; the best
 * of `--rounds` (default 5; `--quick`: 1) is kept, alternating method and
 * baseline, since other work on the machine only slows a run down.
 */
import { fastValidate, parseLogEvent } from '../../src/domain/log-event.ts';
import { encodeLogsRow } from '../../src/stores/logs-table.ts';
import { numberArg } from '../support/args.ts';
import { sampleRecords, type RecordShape } from '../support/load.ts';
import type { Benchmark, BenchContext, BenchRow } from '../support/types.ts';

/** Keeps results observable so the JIT cannot drop the work. */
let sink = 0;

/** Records per second of one measurement: whole passes over the sample until `seconds` have passed. */
function measure(pass: () => void, records: number, seconds: number): number {
  const started = performance.now();
  let done = 0;
  let elapsed = 0;
  do {
    pass();
    done += records;
    elapsed = (performance.now() - started) / 1000;
  } while (elapsed < seconds);
  return done / elapsed;
}

const benchmark: Benchmark = {
  name: 'log-event',
  description: "ingest's per-record edge on one core: fastValidate, parseLogEvent, logs row encoding vs JSON.parse",
  async run(ctx: BenchContext): Promise<readonly BenchRow[]> {
    const quick = ctx.args.includes('--quick');
    const seconds = numberArg(ctx.args, 'seconds', quick ? 0.25 : 1);
    const rounds = Math.floor(numberArg(ctx.args, 'rounds', quick ? 1 : 5));
    const count = Math.floor(numberArg(ctx.args, 'records', 20_000));
    const now = Date.now();
    const origin = { topic: 'bench', partition: 0, offset: 0 };
    const rows: BenchRow[] = [];

    for (const shape of ['compact', 'full'] as RecordShape[]) {
      const sample = await sampleRecords(count, 42, shape);
      const payloads = sample.map((record) => Buffer.from(record.value));
      const texts = sample.map((record) => record.value);
      const objects = texts.map((text) => JSON.parse(text) as Record<string, unknown>);
      const events = payloads.map((payload) => parseLogEvent(payload, origin, now));
      const bytes = payloads.reduce((sum, payload) => sum + payload.length, 0) / payloads.length;

      const methods: Array<[string, () => void]> = [
        [
          'fastValidate',
          () => {
            for (let i = 0; i < objects.length; i++) sink += fastValidate(objects[i]!) === undefined ? 0 : 1;
          },
        ],
        [
          'parseLogEvent',
          () => {
            for (let i = 0; i < payloads.length; i++) sink += parseLogEvent(payloads[i]!, origin, now).message.length;
          },
        ],
        [
          'encodeLogsRow + JSON.stringify',
          () => {
            for (let i = 0; i < events.length; i++) {
              const row = encodeLogsRow(events[i]!, {
                template: 'card declined for order <*>',
                error_hash: '1234567890123456789',
                ingested_at: now,
                kafka_topic: 'bench',
                kafka_partition: i & 3,
                kafka_offset: i,
              });
              sink += JSON.stringify(row).length;
            }
          },
        ],
      ];
      const baseline = () => {
        for (let i = 0; i < texts.length; i++) sink += (JSON.parse(texts[i]!) as object) === null ? 0 : 1;
      };

      const progress = ctx.phase(`${shape} records (${Math.round(bytes)} B)`, methods.length * rounds);
      let step = 0;
      for (const [, pass] of methods) measure(pass, count, Math.min(0.5, seconds));
      measure(baseline, count, Math.min(0.5, seconds));
      for (const [name, pass] of methods) {
        let best = 0;
        let bestBaseline = 0;
        for (let round = 0; round < rounds; round++) {
          best = Math.max(best, measure(pass, count, seconds));
          bestBaseline = Math.max(bestBaseline, measure(baseline, count, seconds));
          progress.tick(++step);
        }
        rows.push({
          scenario: `${name}, ${shape} records (${Math.round(bytes)} B)`,
          metric: 'throughput (1 core)',
          value: best,
          unit: 'records/s',
          baseline: bestBaseline,
        });
      }
      progress.done();
    }
    if (sink === 0) ctx.log('(no output measured)');
    return rows;
  },
};

export default benchmark;
