/**
 * Event-time windowing throughput: tumbling 1-minute windows over ~100 keys on
 * 4 partitions with 5% of events out of order within the allowed bound, the
 * shape the detect pipeline counts. Baseline, measured in the same run on the
 * same events: the usual RxJS way of counting per key and minute,
 * `bufferCount` + a Map keyed by `${key}|${minute}`. The baseline does less
 * (no watermark, no late detection, no zero-fill, no ordered emission), so the
 * ratio understates what the windowing buys.
 *
 * Args: --events N (default 2,000,000), --keys N (100), --partitions N (4), --rounds N (3).
 */
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { bufferCount, from, map } from 'rxjs';
import { numberArg } from '../support/args.ts';
import type { Benchmark, BenchContext, BenchRow } from '../support/types.ts';
import { windowByEventTime } from '../../src/operators/windowByEventTime.ts';
import type { WindowOutput } from '../../src/operators/windowByEventTime.ts';
import { WindowState } from '../../src/domain/window-state.ts';
import type { WindowSink } from '../../src/domain/window-state.ts';

interface BenchEvent {
  readonly key: string;
  readonly time: number;
  readonly partition: number;
}

const MINUTE = 60_000;
const OUT_OF_ORDERNESS_MS = 5_000;
const DISORDERED_FRACTION = 0.05;
const TARGET = '>= 2,000,000 events/s';

/** ~1,000 events per second of event time; keys partitioned like raw-logs (by key). */
function generateEvents(count: number, keyCount: number, partitions: number): BenchEvent[] {
  // Deterministic so runs compare.
  const rng = xoroshiro128plus(42);
  const random = () => uniformFloat64(rng);
  const keys = Array.from(
    { length: keyCount },
    (_, i) => `service-${i % 25}|env-${Math.floor(i / 25) % 2}|${['INFO', 'WARN', 'ERROR', 'DEBUG'][i % 4]}-${i}`,
  );
  const start = Date.UTC(2024, 0, 1);
  const events: BenchEvent[] = new Array<BenchEvent>(count);
  for (let i = 0; i < count; i++) {
    const keyIndex = Math.floor(random() * keyCount);
    const base = start + i;
    // Strictly inside the bound, so none of them is late.
    const time = random() < DISORDERED_FRACTION ? base - Math.floor(random() * (OUT_OF_ORDERNESS_MS - 1)) : base;
    events[i] = { key: keys[keyIndex]!, time, partition: keyIndex % partitions };
  }
  return events;
}

const windowOptions = {
  sizeMs: MINUTE,
  allowedOutOfOrdernessMs: OUT_OF_ORDERNESS_MS,
  graceMs: 0,
  idleTimeoutMs: 30_000,
  keyTtlMs: 60 * MINUTE,
} as const;

interface RunResult {
  readonly seconds: number;
  readonly counted: number;
}

function runOperator(events: readonly BenchEvent[]): RunResult {
  let counted = 0;
  let late = 0;
  const startedAt = performance.now();
  from(events)
    .pipe(
      windowByEventTime<BenchEvent>({
        ...windowOptions,
        keyOf: (e) => e.key,
        timeOf: (e) => e.time,
        partitionOf: (e) => e.partition,
      }),
    )
    .subscribe((out: WindowOutput<BenchEvent>) => {
      if (out.kind === 'window') counted += out.count;
      else if (out.kind === 'late') late += 1;
    });
  const seconds = (performance.now() - startedAt) / 1000;
  if (late !== 0) throw new Error(`bench data produced ${late} late events; the disorder must stay within the bound`);
  return { seconds, counted };
}

function runCore(events: readonly BenchEvent[]): RunResult {
  let counted = 0;
  const sink: WindowSink = { window: (result) => (counted += result.count) };
  const startedAt = performance.now();
  const state = new WindowState(windowOptions);
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    state.add(e.key, e.time, e.partition, 1, 0, sink);
  }
  state.flush(sink);
  return { seconds: (performance.now() - startedAt) / 1000, counted };
}

function runBaseline(events: readonly BenchEvent[]): RunResult {
  const totals = new Map<string, number>();
  const startedAt = performance.now();
  from(events)
    .pipe(
      bufferCount(10_000),
      map((batch) => {
        const counts = new Map<string, number>();
        for (const e of batch) {
          const bucket = `${e.key}|${Math.floor(e.time / MINUTE) * MINUTE}`;
          counts.set(bucket, (counts.get(bucket) ?? 0) + 1);
        }
        return counts;
      }),
    )
    .subscribe((counts) => {
      for (const [bucket, count] of counts) totals.set(bucket, (totals.get(bucket) ?? 0) + count);
    });
  const seconds = (performance.now() - startedAt) / 1000;
  let counted = 0;
  for (const count of totals.values()) counted += count;
  return { seconds, counted };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const benchmark: Benchmark = {
  name: 'windows',
  description:
    'Event-time tumbling 1-minute windows (100 keys, 4 partitions, 5% disorder) vs bufferCount + Map counting',
  async run(ctx: BenchContext): Promise<readonly BenchRow[]> {
    const eventCount = Math.floor(numberArg(ctx.args, 'events', 2_000_000));
    const keyCount = Math.floor(numberArg(ctx.args, 'keys', 100));
    const partitions = Math.floor(numberArg(ctx.args, 'partitions', 4));
    const rounds = Math.floor(numberArg(ctx.args, 'rounds', 3));
    const events = generateEvents(eventCount, keyCount, partitions);
    ctx.log(
      `${eventCount} events, ${keyCount} keys, ${partitions} partitions, ${DISORDERED_FRACTION * 100}% out of order within ${OUT_OF_ORDERNESS_MS} ms`,
    );

    // Warm-up lets the JIT settle on all three paths before anything is timed.
    const warmup = events.slice(0, Math.min(events.length, 200_000));
    runOperator(warmup);
    runCore(warmup);
    runBaseline(warmup);

    const operatorRates: number[] = [];
    const coreRates: number[] = [];
    const baselineRates: number[] = [];
    const progress = ctx.phase('windows', rounds);
    for (let round = 0; round < rounds; round++) {
      const baseline = runBaseline(events);
      const operator = runOperator(events);
      const core = runCore(events);
      for (const [label, result] of [
        ['operator', operator],
        ['core', core],
        ['baseline', baseline],
      ] as const) {
        if (result.counted !== eventCount)
          throw new Error(`${label} counted ${result.counted} of ${eventCount} events`);
      }
      baselineRates.push(eventCount / baseline.seconds);
      operatorRates.push(eventCount / operator.seconds);
      coreRates.push(eventCount / core.seconds);
      progress.tick(round + 1);
    }
    progress.done();

    const baseline = median(baselineRates);
    return [
      {
        scenario: 'windowByEventTime (RxJS operator), tumbling 1m',
        metric: 'throughput',
        value: median(operatorRates),
        unit: 'events/s',
        baseline,
        target: TARGET,
      },
      {
        scenario: 'WindowState core (no RxJS), tumbling 1m',
        metric: 'throughput',
        value: median(coreRates),
        unit: 'events/s',
        baseline,
        target: TARGET,
      },
    ];
  },
};

export default benchmark;
