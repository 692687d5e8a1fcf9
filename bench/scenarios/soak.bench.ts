/**
 * Soak: the ingest pipeline (chdb, the PostgreSQL ledger) under a paced
 * producer at a fixed rate (`--rate`, default 5,000 logs/s) for `--duration`
 * (default 10m), sampling every second this process's RSS and heap, the
 * records sent and stored, and the lag: records sent (acknowledged by the
 * broker) but not yet stored in ClickHouse, end to end.
 *
 * Reported: RSS growth from the end of the warm-up (`--warmup`, default the
 * lesser of 60 s and a fifth of the run) to the end of the run, each taken as
 * the median of 10 s of samples so one GC does not decide it; the same for
 * the heap; the largest lag after warm-up and whether it still grows (the
 * largest lag of the last quarter against the second quarter).
 *
 * The producer runs in this process too (records from the generator, cycled
 * from a pool of 20,000, with a fresh log_id and the send time each), so its
 * memory is part of RSS; it holds no more than the pool and 8 sends.
 *
 * Args: --rate N, --duration 10m, --warmup 60s, --record compact|full, --pglite.
 */
import { ingest } from '../../src/pipelines/ingest.ts';
import { createMetrics } from '../../src/core/metrics.ts';
import { startPipeline } from '../../src/app/runner.ts';
import { durationArg, numberArg, stringArg } from '../support/args.ts';
import {
  createTopic,
  deleteTopics,
  kafkaClient,
  pacedProducer,
  sampleRecords,
  toTemplate,
  type RecordShape,
} from '../support/load.ts';
import { counterTotal, MIB, quantile, Sampler, type Sample } from '../support/sampler.ts';
import { benchStack, uniqueName } from '../support/stack.ts';
import type { Benchmark, BenchContext, BenchOutput, BenchRow } from '../support/types.ts';

const RSS_TARGET = 'growth < 10% after warm-up';

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Median of a value over the samples in [from, to) seconds. */
export function medianBetween(
  samples: readonly Sample[],
  from: number,
  to: number,
  pick: (s: Sample) => number,
): number {
  return quantile(samples.filter((s) => s.t >= from && s.t < to).map(pick), 0.5);
}

const benchmark: Benchmark = {
  name: 'soak',
  description:
    'ingest pipeline at a fixed rate for a long time (default 10 min): RSS growth after warm-up and lag, sampled every second',
  async run(ctx: BenchContext): Promise<BenchOutput> {
    const rate = numberArg(ctx.args, 'rate', 5_000);
    const durationMs = durationArg(ctx.args, 'duration', 600_000);
    const warmupMs = durationArg(ctx.args, 'warmup', Math.min(60_000, durationMs / 5));
    const shape = stringArg(ctx.args, 'record', 'compact') as RecordShape;
    if (warmupMs + 20_000 > durationMs) throw new RangeError('--duration must exceed --warmup by at least 20 s');
    const stack = await benchStack(ctx.args);
    const config = stack.config(`${uniqueName('bench-soak')}.`);
    const kafka = kafkaClient('logflow-bench-soak');
    await createTopic(kafka, config.topics.rawLogs, 4);
    const pool = (await sampleRecords(20_000, 9, shape)).map((r) => toTemplate(r.value, r.key));
    const engines = await stack.engines();
    await engines.clickhouse.command({ query: 'TRUNCATE TABLE logs' });
    const producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    const metrics = createMetrics({ defaultMetrics: false });
    const resources = stack.resources(config);
    const running = startPipeline(ingest, { config, logger: stack.logger, metrics, resources });
    const paced = pacedProducer(producer, config.topics.rawLogs, { rate, durationMs, pool });
    const sampler = new Sampler(1000, async () => {
      const stored = await counterTotal(metrics, 'recordsOut', { pipeline: 'ingest', stage: 'clickhouse' });
      const sent = paced.sent();
      return { sent, stored, lag: Math.max(0, sent - stored) };
    }).start();
    const seconds = Math.ceil(durationMs / 1000);
    const progress = ctx.phase(`soak at ${rate.toLocaleString('en-US')} logs/s for ${seconds} s`, seconds);
    const ticker = setInterval(() => progress.tick(sampler.samples[sampler.samples.length - 1]?.t ?? 0), 1000);
    let drainSeconds = Number.NaN;
    try {
      const outcome = await Promise.race([paced.done.then(() => undefined), running.done]);
      if (outcome !== undefined) throw new Error(`ingest ended during the soak: ${JSON.stringify(outcome)}`);
      const producedAt = performance.now();
      const sent = paced.sent();
      const deadline = Date.now() + 300_000;
      while (
        (await counterTotal(metrics, 'recordsOut', { pipeline: 'ingest', stage: 'clickhouse' })) < sent &&
        Date.now() < deadline
      )
        await sleep(100);
      drainSeconds = (performance.now() - producedAt) / 1000;
    } finally {
      clearInterval(ticker);
      await sampler.stop();
      progress.done();
      await paced.stop().catch(() => undefined);
      await producer.disconnect().catch(() => undefined);
      await running.stop();
      await resources.close();
      await deleteTopics(kafka, [config.topics.rawLogs, config.topics.vectorizationQueue, config.topics.rawLogsDlq]);
    }

    const samples = sampler.samples;
    const warm = warmupMs / 1000;
    const end = durationMs / 1000;
    const rssWarm = medianBetween(samples, warm, warm + 10, (s) => s.rssBytes);
    const rssEnd = medianBetween(samples, end - 10, end, (s) => s.rssBytes);
    const heapWarm = medianBetween(samples, warm, warm + 10, (s) => s.heapUsedBytes);
    const heapEnd = medianBetween(samples, end - 10, end, (s) => s.heapUsedBytes);
    const during = samples.filter((s) => s.t >= warm && s.t <= end);
    const maxRss = Math.max(...during.map((s) => s.rssBytes));
    const lag = (s: Sample) => s.values['lag'] ?? 0;
    const maxLag = Math.max(0, ...during.map(lag));
    const quarter = (end - warm) / 4;
    const maxLagQ2 = Math.max(0, ...during.filter((s) => s.t >= warm + quarter && s.t < warm + 2 * quarter).map(lag));
    const maxLagQ4 = Math.max(0, ...during.filter((s) => s.t >= warm + 3 * quarter).map(lag));
    const last = samples[samples.length - 1];
    const sent = samples.reduce((m, s) => Math.max(m, s.values['sent'] ?? 0), 0);
    const stored = last?.values['stored'] ?? 0;
    const cpuPerM = last === undefined ? Number.NaN : last.cpuSeconds / (stored / 1e6);
    const scenario = `ingest -> chdb at ${rate.toLocaleString('en-US')} logs/s for ${seconds} s`;
    const rows: BenchRow[] = [
      { scenario, metric: 'achieved produce rate', value: sent / end, unit: 'logs/s' },
      { scenario, metric: 'stored', value: stored, unit: 'logs' },
      { scenario, metric: `RSS at warm-up end (${warm.toFixed(0)} s)`, value: rssWarm / MIB, unit: 'MiB' },
      { scenario, metric: 'RSS at run end', value: rssEnd / MIB, unit: 'MiB', baseline: rssWarm / MIB },
      {
        scenario,
        metric: 'RSS growth after warm-up',
        value: ((rssEnd - rssWarm) / rssWarm) * 100,
        unit: '%',
        target: RSS_TARGET,
      },
      { scenario, metric: 'max RSS after warm-up', value: maxRss / MIB, unit: 'MiB' },
      { scenario, metric: 'heap used growth after warm-up', value: ((heapEnd - heapWarm) / heapWarm) * 100, unit: '%' },
      { scenario, metric: 'max lag after warm-up (sent - stored)', value: maxLag, unit: 'logs', target: 'bounded' },
      { scenario, metric: 'max lag, last quarter', value: maxLagQ4, unit: 'logs', baseline: maxLagQ2 },
      { scenario, metric: 'drain time after the producer stopped', value: drainSeconds, unit: 's' },
      { scenario, metric: 'CPU per million logs (incl. producer)', value: cpuPerM, unit: 'CPU s' },
    ];
    return {
      rows,
      series: [
        { name: 'stored in ClickHouse', panel: 'throughput', unit: 'logs/s', points: sampler.rate('stored') },
        { name: 'sent to Kafka', panel: 'throughput', unit: 'logs/s', points: sampler.rate('sent') },
        { name: 'RSS', panel: 'memory', unit: 'MiB', points: sampler.series((s) => s.rssBytes / MIB) },
        { name: 'heap used', panel: 'memory', unit: 'MiB', points: sampler.series((s) => s.heapUsedBytes / MIB) },
        { name: 'sent - stored', panel: 'lag', unit: 'logs', points: sampler.series(lag) },
      ],
      notes: [
        `RSS and heap at warm-up end and run end are medians of 10 s of 1 s samples; "max lag, last quarter" vs its baseline (second quarter) shows whether lag still grows`,
        'the producer runs in the measured process: its CPU and memory are included',
      ],
    };
  },
};

export default benchmark;
