/**
 * End to end: N generated logs (default 1,000,000, ~350 bytes) are produced
 * to a fresh 4-partition topic first; then, in the same process and run,
 *
 * (a) the baseline: a plain kafkajs eachBatch consumer that only JSON-parses
 *     each record, from its first batch to its N-th record;
 * (b) the ingest pipeline (src/pipelines/ingest.ts through startPipeline,
 *     Kafka in server mode, chdb, the PostgreSQL ledger; a ClickHouse server
 *     too when LOGFLOW_CLICKHOUSE_URL is set), from its first record in to
 *     the N-th row stored (the sink's `recordsOut{stage="clickhouse"}`
 *     counter, which moves only after the insert and the ledger write; the
 *     row count is checked against ClickHouse at the end).
 *
 * (c) the stages alone, in process and without Kafka (bench/support/stage-costs.ts):
 *     CPU per log of parsing, normalizing, encoding and chdb's insert, and
 *     from them the most logs/s this machine's cores allow any ingest into
 *     chdb: with only the raw consumer's CPU per log plus the insert's,
 *     and with the stages' too, beside (a).
 *
 * CPU is process.cpuUsage() over the same span (every thread of this
 * process, chdb's included; the broker's is not counted). Peak RSS is
 * sampled every 100 ms during the span.
 *
 * Then the latency run: a paced producer offers 50% of (b)'s throughput
 * (`--latency-rate` to choose) for `--latency-duration` (default 30 s) to a
 * fresh topic while the pipeline runs. Each record carries its send time as
 * its `timestamp`; every 100 ms the rows that became visible in ClickHouse
 * since the previous poll are read back (per partition, by offset) grouped by
 * 10 ms of send time, and a row's latency is the poll's start time minus its
 * send time: an upper bound, at most one poll interval (+10 ms) above the
 * true visibility time. Before the paced load starts, 100 priming records
 * are sent and awaited in ClickHouse (group join, first ledger read); then
 * the first 5 s of the paced load are warm-up and left out.
 *
 * Args: --logs N, --record compact|full, --latency-duration 30s,
 * --latency-rate N, --no-latency, --pglite, --keep-topics, --profile (a CPU
 * profile of the pipeline span to bench/results/*.cpuprofile and its top
 * self-time functions printed).
 */
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Producer } from 'kafkajs';
import { ingest } from '../../src/pipelines/ingest.ts';
import { createMetrics } from '../../src/core/metrics.ts';
import { startPipeline } from '../../src/app/runner.ts';
import type { Config } from '../../src/core/config.ts';
import { durationArg, flagArg, numberArg, stringArg } from '../support/args.ts';
import {
  createTopic,
  deleteTopics,
  fillTemplate,
  kafkaClient,
  pacedProducer,
  produceGenerated,
  rawConsumer,
  sampleRecords,
  toTemplate,
  type RecordShape,
} from '../support/load.ts';
import { describeSelfTimes, selfTimes, startProfiling } from '../support/profile.ts';
import { measureStageCosts } from '../support/stage-costs.ts';
import { counterTotal, MIB, rssPeakTracker, Sampler, weightedQuantile } from '../support/sampler.ts';
import { benchStack, uniqueName, type BenchStack, type EngineKind } from '../support/stack.ts';
import type { Benchmark, BenchContext, BenchOutput, BenchRow, BenchSeries } from '../support/types.ts';

const PARTITIONS = 4;
const RESULTS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'results');
const THROUGHPUT_TARGET = '>= 0.5x baseline';
const CPU_TARGET = '<= 30 CPU s';
const RSS_TARGET = '<= 790 MiB';
const LATENCY_TARGET = 'p99 < 2,000 ms at 50% of peak';

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface PipelineRun {
  readonly seconds: number;
  readonly cpuSeconds: number;
  readonly peakRss: number;
  readonly atPeak: NodeJS.MemoryUsage;
  readonly stored: number;
  readonly visible: number;
  readonly sampler: Sampler;
}

async function runPipeline(
  ctx: BenchContext,
  stack: BenchStack,
  kind: EngineKind,
  config: Config,
  expected: number,
  profileFile?: string,
): Promise<PipelineRun> {
  const engines = await stack.engines(kind);
  await engines.clickhouse.command({ query: 'TRUNCATE TABLE logs' });
  const metrics = createMetrics({ defaultMetrics: false });
  const resources = stack.resources(config, kind);
  const stored = () => counterTotal(metrics, 'recordsOut', { pipeline: 'ingest', stage: 'clickhouse' });
  const progress = ctx.phase(`ingest pipeline -> ${kind}`, expected);
  const running = startPipeline(ingest, { config, logger: stack.logger, metrics, resources });
  try {
    // The span starts at the first record in, as the baseline's starts at its first batch: group joins are not
    // measured.
    while ((await counterTotal(metrics, 'recordsIn', { pipeline: 'ingest' })) === 0) {
      const outcome = await Promise.race([running.done, sleep(20).then(() => undefined)]);
      if (outcome !== undefined) throw new Error(`ingest ended before reading: ${JSON.stringify(outcome)}`);
    }
    const profiler = profileFile === undefined ? undefined : await startProfiling();
    const startedAt = performance.now();
    const cpuStart = process.cpuUsage();
    const peak = rssPeakTracker();
    const sampler = new Sampler(1000, async () => ({ stored: await stored() })).start();
    let done = 0;
    while ((done = await stored()) < expected) {
      progress.tick(done);
      const outcome = await Promise.race([running.done, sleep(50).then(() => undefined)]);
      if (outcome !== undefined) throw new Error(`ingest ended at ${done} of ${expected}: ${JSON.stringify(outcome)}`);
    }
    const seconds = (performance.now() - startedAt) / 1000;
    const cpu = process.cpuUsage(cpuStart);
    const peakRss = peak.stop();
    if (profiler !== undefined && profileFile !== undefined) {
      const profile = await profiler.stop(profileFile);
      const times = selfTimes(profile);
      const profiled = times.reduce((sum, t) => sum + t.ms, 0) / 1000;
      ctx.log(
        `CPU profile of the pipeline span: ${profileFile} (${profiled.toFixed(1)} s sampled on the main thread of ${((cpu.user + cpu.system) / 1e6).toFixed(1)} CPU s)`,
      );
      for (const line of describeSelfTimes(times, 30)) ctx.log(line);
    }
    await sampler.stop();
    progress.done();
    const rows = await (
      await engines.clickhouse.query({ query: 'SELECT count() AS n FROM logs', format: 'JSONEachRow' })
    ).json<{ n: string }>();
    return {
      seconds,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      peakRss,
      atPeak: peak.atPeak(),
      stored: done,
      visible: Number(rows[0]?.n ?? 0),
      sampler,
    };
  } finally {
    const outcome = await running.stop();
    if (outcome.status !== 'stopped' && outcome.status !== 'completed')
      ctx.log(`ingest stop: ${JSON.stringify(outcome)}`);
    await resources.close();
  }
}

interface LatencyRun {
  readonly offeredRate: number;
  readonly achievedRate: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly measured: number;
  readonly sent: number;
  readonly visible: number;
  /** [seconds since the producer started, highest latency among rows that became visible at that poll]. */
  readonly overTime: Array<[number, number]>;
}

async function runLatency(
  ctx: BenchContext,
  stack: BenchStack,
  kind: EngineKind,
  config: Config,
  producer: Producer,
  options: { rate: number; durationMs: number; shape: RecordShape; warmupMs: number },
): Promise<LatencyRun> {
  const kafka = kafkaClient('logflow-bench-latency');
  await createTopic(kafka, config.topics.rawLogs, PARTITIONS);
  const pool = (await sampleRecords(20_000, 7, options.shape)).map((r) => toTemplate(r.value, r.key));
  const engines = await stack.engines(kind);
  await engines.clickhouse.command({ query: 'TRUNCATE TABLE logs' });
  const metrics = createMetrics({ defaultMetrics: false });
  const resources = stack.resources(config, kind);
  const running = startPipeline(ingest, { config, logger: stack.logger, metrics, resources });
  const histogram = new Map<number, number>();
  const overTime: Array<[number, number]> = [];
  const offsets = new Array<number>(PARTITIONS).fill(-1);
  let visible = 0;
  // Priming: the group join and the sink's first ledger read happen before the paced load, not during it.
  const priming = ctx.phase('latency run: pipeline start (priming records)', 1);
  const primed = 100;
  await producer.send({
    topic: config.topics.rawLogs,
    acks: -1,
    messages: pool.slice(0, primed).map((t) => ({ key: t.key, value: fillTemplate(t, Date.now()) })),
  });
  while ((await counterTotal(metrics, 'recordsOut', { pipeline: 'ingest', stage: 'clickhouse' })) < primed) {
    const outcome = await Promise.race([running.done, sleep(50).then(() => undefined)]);
    if (outcome !== undefined) throw new Error(`ingest ended before the latency run: ${JSON.stringify(outcome)}`);
  }
  priming.done();
  const beganAt = Date.now();
  const measureFrom = beganAt + options.warmupMs;
  const progress = ctx.phase(
    `latency at ${Math.round(options.rate).toLocaleString('en-US')} logs/s -> ${kind}`,
    Math.ceil(options.durationMs / 1000),
  );

  const poll = async (): Promise<void> => {
    const polledAt = Date.now();
    const result = await engines.clickhouse.query({
      query: `SELECT kafka_partition AS p, intDiv(toUnixTimestamp64Milli(timestamp), 10) AS b, count() AS c, max(kafka_offset) AS m
              FROM logs WHERE toInt64(kafka_offset) > arrayElement({offsets:Array(Int64)}, kafka_partition + 1)
              GROUP BY p, b`,
      query_params: { offsets },
      format: 'JSONEachRow',
    });
    let highest = -1;
    for (const row of await result.json<{
      p: number | string;
      b: number | string;
      c: number | string;
      m: number | string;
    }>()) {
      const partition = Number(row.p);
      offsets[partition] = Math.max(offsets[partition] ?? -1, Number(row.m));
      const count = Number(row.c);
      visible += count;
      const sentAt = Number(row.b) * 10;
      if (sentAt < measureFrom) continue;
      const latency = Math.max(0, polledAt - sentAt);
      highest = Math.max(highest, latency);
      const bucket = Math.round(latency / 10) * 10;
      histogram.set(bucket, (histogram.get(bucket) ?? 0) + count);
    }
    if (highest >= 0) overTime.push([(polledAt - beganAt) / 1000, highest]);
  };

  const paced = pacedProducer(producer, config.topics.rawLogs, {
    rate: options.rate,
    durationMs: options.durationMs,
    pool,
  });
  let producing = true;
  void paced.done.finally(() => {
    producing = false;
  });
  try {
    while (producing) {
      await poll();
      progress.tick((Date.now() - beganAt) / 1000);
      await sleep(100);
    }
    await paced.done;
    const sent = paced.sent();
    const deadline = Date.now() + 120_000;
    while (visible < sent + primed && Date.now() < deadline) {
      await poll();
      await sleep(100);
    }
    progress.done();
    const pairs = [...histogram.entries()];
    const measured = pairs.reduce((sum, [, c]) => sum + c, 0);
    return {
      offeredRate: options.rate,
      achievedRate: sent / (options.durationMs / 1000),
      p50: weightedQuantile(pairs, 0.5),
      p99: weightedQuantile(pairs, 0.99),
      max: weightedQuantile(pairs, 1),
      measured,
      sent,
      visible,
      overTime,
    };
  } finally {
    await paced.stop().catch(() => undefined);
    await running.stop();
    await resources.close();
  }
}

const benchmark: Benchmark = {
  name: 'ingest-e2e',
  description:
    'Kafka -> ingest pipeline -> ClickHouse (chdb): logs/s vs a raw kafkajs JSON-parse consumer, CPU, RSS, p50/p99 latency at 50% of peak',
  async run(ctx: BenchContext): Promise<BenchOutput> {
    const logs = Math.floor(numberArg(ctx.args, 'logs', 1_000_000));
    const shape = stringArg(ctx.args, 'record', 'compact') as RecordShape;
    if (shape !== 'compact' && shape !== 'full') throw new RangeError('--record is compact or full');
    const latencyDurationMs = durationArg(ctx.args, 'latency-duration', 30_000);
    const stack = await benchStack(ctx.args);
    const runId = uniqueName('bench-e2e');
    const topic = `${runId}.raw-logs`;
    const kafka = kafkaClient('logflow-bench');
    const producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    const topicsToDelete = [topic];
    const rows: BenchRow[] = [];
    const series: BenchSeries[] = [];
    const notes: string[] = [];
    try {
      await createTopic(kafka, topic, PARTITIONS);
      const producing = ctx.phase(`produce ${logs.toLocaleString('en-US')} logs`, logs);
      const produced = await produceGenerated(producer, topic, {
        count: logs,
        seed: 42,
        shape,
        onProgress: (n) => producing.tick(n),
      });
      producing.done();
      const meanBytes = produced.bytes / produced.records;
      ctx.log(
        `produced ${produced.records} records, mean ${meanBytes.toFixed(0)} bytes, in ${produced.seconds.toFixed(1)} s`,
      );
      rows.push({
        scenario: 'setup: kafkajs producer (acks=all)',
        metric: 'throughput',
        value: produced.records / produced.seconds,
        unit: 'logs/s',
      });
      rows.push({ scenario: 'setup: generated records', metric: 'mean record size', value: meanBytes, unit: 'bytes' });

      // (a) The baseline.
      const consuming = ctx.phase('raw kafkajs consumer (JSON.parse only)', logs);
      let baselineCount = 0;
      const baselinePeak = rssPeakTracker();
      const baselineSampler = new Sampler(1000, () => ({ stored: baselineCount })).start();
      const raw = await rawConsumer(kafka, topic, logs, (n) => {
        baselineCount = n;
        consuming.tick(n);
      });
      const baselineRss = baselinePeak.stop();
      await baselineSampler.stop();
      consuming.done();
      const rawSeconds = (raw.lastAt - raw.firstAt) / 1000;
      const rawRate = logs / rawSeconds;
      const rawCpuPerM = (raw.cpu.user + raw.cpu.system) / 1e6 / (logs / 1e6);
      rows.push(
        { scenario: 'raw kafkajs consumer (baseline)', metric: 'throughput', value: rawRate, unit: 'logs/s' },
        {
          scenario: 'raw kafkajs consumer (baseline)',
          metric: 'CPU per million logs',
          value: rawCpuPerM,
          unit: 'CPU s',
        },
        { scenario: 'raw kafkajs consumer (baseline)', metric: 'peak RSS', value: baselineRss / MIB, unit: 'MiB' },
      );
      const rawT0 = baselineSampler.samples.find((s) => (s.values['stored'] ?? 0) > 0)?.t ?? 0;
      series.push(
        {
          name: 'raw kafkajs consumer',
          panel: 'throughput',
          unit: 'logs/s',
          points: baselineSampler
            .rate('stored')
            .map(([t, v]) => [t - rawT0, v] as const)
            .filter(([t]) => t >= 0),
        },
        {
          name: 'raw kafkajs consumer',
          panel: 'RSS',
          unit: 'MiB',
          points: baselineSampler
            .series((s) => s.rssBytes / MIB)
            .map(([t, v]) => [t - rawT0, v] as const)
            .filter(([t]) => t >= 0),
        },
      );

      // (b) The pipeline, on each configured ClickHouse.
      let peakRate = 0;
      for (const kind of stack.engineKinds) {
        const base = stack.config(`${runId}-${kind}.`, kind);
        topicsToDelete.push(base.topics.vectorizationQueue, base.topics.rawLogsDlq);
        const config: Config = { ...base, topics: { ...base.topics, rawLogs: topic } };
        const profile = flagArg(ctx.args, 'profile')
          ? path.resolve(RESULTS_DIR, `ingest-e2e-${kind}-${runId}.cpuprofile`)
          : undefined;
        if (profile !== undefined) mkdirSync(RESULTS_DIR, { recursive: true });
        const run = await runPipeline(ctx, stack, kind, config, logs, profile);
        if (run.visible !== logs)
          notes.push(`${kind}: ClickHouse holds ${run.visible} rows after ${logs} records (expected equal)`);
        const rate = logs / run.seconds;
        if (kind === 'chdb') peakRate = rate;
        const scenario = `ingest pipeline -> ${kind === 'chdb' ? 'chdb' : 'ClickHouse server'}`;
        rows.push(
          { scenario, metric: 'throughput', value: rate, unit: 'logs/s', baseline: rawRate, target: THROUGHPUT_TARGET },
          {
            scenario,
            metric: 'CPU per million logs',
            value: run.cpuSeconds / (logs / 1e6),
            unit: 'CPU s',
            baseline: rawCpuPerM,
            target: CPU_TARGET,
          },
          {
            scenario,
            metric: 'peak RSS',
            value: run.peakRss / MIB,
            unit: 'MiB',
            baseline: baselineRss / MIB,
            target: RSS_TARGET,
          },
        );
        const { heapTotal, external, rss } = run.atPeak;
        notes.push(
          `${kind} peak RSS ${(rss / MIB).toFixed(0)} MiB: V8 heap ${(heapTotal / MIB).toFixed(0)} MiB, Buffers and other array buffers ${(external / MIB).toFixed(0)} MiB, the rest (native: chdb, code, sockets) ${((rss - heapTotal - external) / MIB).toFixed(0)} MiB`,
        );
        const t0 = run.sampler.samples[0]?.t ?? 0;
        series.push(
          {
            name: `ingest pipeline (${kind})`,
            panel: 'throughput',
            unit: 'logs/s',
            points: run.sampler.rate('stored').map(([t, v]) => [t - t0, v] as const),
          },
          {
            name: `ingest pipeline (${kind})`,
            panel: 'RSS',
            unit: 'MiB',
            points: run.sampler.series((s) => s.rssBytes / MIB).map(([t, v]) => [t - t0, v] as const),
          },
        );
      }

      // (c) What the stages cost alone, in process: how far any arrangement of this work could go on this machine.
      const costs = await measureStageCosts(
        (await stack.engines('chdb')).clickhouse,
        (await sampleRecords(Math.min(logs, 200_000), 42, shape)).map((record) => record.value),
        { batch: 20_000, rounds: 3 },
      );
      const stagesScenario = 'ingest stages alone, in process (best of 3)';
      for (const [metric, value] of [
        ['JSON.parse', costs.jsonParse],
        ['parseLogEvent (JSON.parse included)', costs.parse],
        ['normalize', costs.normalize],
        ['encode rows and insert bodies', costs.encode],
        ['chdb insert (all threads)', costs.insert],
      ] as const)
        rows.push({ scenario: stagesScenario, metric: `CPU per million logs: ${metric}`, value, unit: 'CPU s' });
      // No ingest pays less than reading the records (the raw consumer) plus the engine's insert; this one also pays
      // its stages (less the JSON.parse the raw consumer already counts).
      const cores = os.availableParallelism();
      const readAndInsert = rawCpuPerM + costs.insert;
      const withStages = readAndInsert + costs.parse - costs.jsonParse + costs.normalize + costs.encode;
      for (const [what, floor] of [
        ['raw consumer + chdb insert', readAndInsert],
        ['raw consumer + these stages + chdb insert', withStages],
      ] as const)
        rows.push({
          scenario: `ingest into chdb on ${cores} cores, all cores busy`,
          metric: `most logs/s the CPU allows (${what})`,
          value: (cores / floor) * 1e6,
          unit: 'logs/s',
          baseline: rawRate,
        });

      if (!flagArg(ctx.args, 'no-latency')) {
        for (const kind of stack.engineKinds) {
          const rate = numberArg(ctx.args, 'latency-rate', Math.max(100, Math.round(peakRate / 2)));
          const config = stack.config(`${runId}-lat-${kind}.`, kind);
          topicsToDelete.push(config.topics.rawLogs, config.topics.vectorizationQueue, config.topics.rawLogsDlq);
          const latency = await runLatency(ctx, stack, kind, config, producer, {
            rate,
            durationMs: latencyDurationMs,
            shape,
            warmupMs: 5_000,
          });
          const scenario = `ingest at ${Math.round(rate).toLocaleString('en-US')} logs/s offered -> ${kind}`;
          rows.push(
            { scenario, metric: 'achieved produce rate', value: latency.achievedRate, unit: 'logs/s' },
            { scenario, metric: 'p50 end-to-end latency', value: latency.p50, unit: 'ms' },
            { scenario, metric: 'p99 end-to-end latency', value: latency.p99, unit: 'ms', target: LATENCY_TARGET },
            { scenario, metric: 'max end-to-end latency', value: latency.max, unit: 'ms' },
          );
          series.push({
            name: `worst latency per poll (${kind}, ${Math.round(rate)} logs/s)`,
            panel: 'end-to-end latency (latency run)',
            unit: 'ms',
            points: latency.overTime,
          });
          notes.push(
            `latency (${kind}): ${latency.measured} of ${latency.sent} paced records measured after the 5 s warm-up; ${latency.visible} visible at the end (with 100 priming records); ` +
              'each is (poll start - send time), polled every 100 ms, so an upper bound by at most ~110 ms',
          );
        }
      }
      notes.push(
        `records: generated by src/sources/generator.ts, ${shape} shape, mean ${meanBytes.toFixed(0)} bytes; ${PARTITIONS} partitions, keyed by service`,
        `ClickHouse: ${stack.engineKinds.join(' and ')}; ledger: PostgreSQL ${stack.postgresMode}`,
        'spans: baseline from its first batch to its N-th record; pipeline from its first record in to its N-th row stored; CPU is this process (all threads, chdb included), not the broker',
      );
      return { rows, series, notes };
    } finally {
      await producer.disconnect().catch(() => undefined);
      if (!flagArg(ctx.args, 'keep-topics')) await deleteTopics(kafka, topicsToDelete);
    }
  },
};

export default benchmark;
