/**
 * Detect's cost as series grow: the same number of logs drained by the detect
 * pipeline once spread over a few services and once over thousands, in the
 * same run. Each run gets its own topic (4 partitions, a service always on
 * the same partition, as raw-logs is keyed) filled before detect starts, so
 * only detect's consumption is timed: from its first record counted to the
 * checkpoints covering the whole topic (the point where every record could be
 * acknowledged). Event times spread evenly over `--minutes` of event time, so
 * windows close and every series is scored each minute, zero-filled.
 *
 * Checkpoint bytes are what detect reported writing (`logflow_checkpoint_bytes_total`):
 * with full snapshots they grow with the state held, with a changelog with
 * what changed since the previous checkpoint.
 *
 * Args: --logs N (400,000), --services N (5,000; the baseline run has 8), --minutes N (20), --checkpoint-ms N (1,000),
 * --pglite.
 */
import { createMetrics, type EngineMetrics } from '../../src/core/metrics.ts';
import { detect } from '../../src/pipelines/detect.ts';
import { startPipeline } from '../../src/app/runner.ts';
import { numberArg } from '../support/args.ts';
import { createTopic, deleteTopics, kafkaClient } from '../support/load.ts';
import { counterTotal } from '../support/sampler.ts';
import { benchStack, uniqueName, type BenchStack } from '../support/stack.ts';
import type { Benchmark, BenchContext, BenchOutput } from '../support/types.ts';

const PARTITIONS = 4;
const BASELINE_SERVICES = 8;
const LEVELS = ['INFO', 'INFO', 'INFO', 'INFO', 'DEBUG', 'WARN', 'ERROR'] as const;
const ENVIRONMENTS = ['production', 'staging'] as const;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface Drained {
  readonly logsPerSecond: number;
  readonly seconds: number;
  readonly checkpointBytes: number;
}

/** Valid log events (ingest's verdict) whose counting fields vary as a real mix does; the rest is filler. */
async function fill(topic: string, logs: number, services: number, minutes: number, onSent: (n: number) => void) {
  const kafka = kafkaClient('bench-detect-scale');
  await createTopic(kafka, topic, PARTITIONS);
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  try {
    const start = Math.floor(Date.now() / 60_000) * 60_000 - (minutes + 60) * 60_000;
    const step = (minutes * 60_000) / logs;
    const chunk = 4_000;
    for (let from = 0; from < logs; from += chunk) {
      const byPartition = new Map<number, Array<{ key: string; value: string }>>();
      for (let i = from; i < Math.min(logs, from + chunk); i++) {
        const s = i % services;
        const service = `svc-${s}`;
        const value = JSON.stringify({
          log_id: `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`,
          timestamp: new Date(start + Math.floor(i * step)).toISOString(),
          service,
          environment: ENVIRONMENTS[s % ENVIRONMENTS.length],
          // Each service cycles through the levels, so it holds several series as real services do.
          level: LEVELS[Math.floor(i / services) % LEVELS.length],
          message: `request ${i % 977} handled in ${i % 313} ms`,
          host: `host-${s % 50}`,
        });
        const partition = s % PARTITIONS;
        let list = byPartition.get(partition);
        if (list === undefined) byPartition.set(partition, (list = []));
        list.push({ key: service, value });
      }
      await producer.sendBatch({
        acks: -1,
        topicMessages: [...byPartition].map(([partition, messages]) => ({
          topic,
          messages: messages.map((m) => ({ ...m, partition })),
        })),
      });
      onSent(Math.min(logs, from + chunk));
    }
  } finally {
    await producer.disconnect();
  }
}

async function drain(
  stack: BenchStack,
  prefix: string,
  logs: number,
  checkpointMs: number,
  metrics: EngineMetrics,
): Promise<Drained> {
  const config = stack.config(prefix);
  const resources = stack.resources(config);
  const { postgres } = await stack.engines();
  const covered = async () =>
    Number(
      (
        await postgres.query<{ n: string }>(
          'SELECT coalesce(sum(next_offset), 0) AS n FROM detector_checkpoints WHERE topic = $1',
          [config.topics.rawLogs],
        )
      ).rows[0]?.n,
    );
  const running = startPipeline(detect, {
    config,
    logger: stack.logger,
    metrics,
    resources,
    options: { 'checkpoint-ms': String(checkpointMs), partitions: String(PARTITIONS) },
  });
  try {
    while ((await counterTotal(metrics, 'recordsIn', { pipeline: 'detect' })) === 0) await sleep(20);
    const started = performance.now();
    const bytesBefore = await counterTotal(metrics, 'checkpointBytes', { pipeline: 'detect' });
    while ((await covered()) < logs) await sleep(50);
    const seconds = (performance.now() - started) / 1000;
    const bytes = (await counterTotal(metrics, 'checkpointBytes', { pipeline: 'detect' })) - bytesBefore;
    return { logsPerSecond: logs / seconds, seconds, checkpointBytes: bytes };
  } finally {
    await running.stop();
    await resources.close();
  }
}

const benchmark: Benchmark = {
  name: 'detect-scale',
  description: 'detect draining the same logs over 8 services and over thousands (same run): logs/s, checkpoint bytes',
  async run(ctx: BenchContext): Promise<BenchOutput> {
    const logs = numberArg(ctx.args, 'logs', 400_000);
    const services = numberArg(ctx.args, 'services', 5_000);
    const minutes = numberArg(ctx.args, 'minutes', 20);
    const checkpointMs = numberArg(ctx.args, 'checkpoint-ms', 1_000);
    const stack = await benchStack(ctx.args);
    const runId = uniqueName('bench-detect-scale');
    const warmUp = {
      label: 'warm-up',
      services: BASELINE_SERVICES,
      prefix: `${runId}-warm.`,
      logs: Math.min(logs, 50_000),
    };
    const variants = [
      { label: `${BASELINE_SERVICES} services`, services: BASELINE_SERVICES, prefix: `${runId}-few.`, logs },
      { label: `${services} services`, services, prefix: `${runId}-many.`, logs },
    ];
    const topics = [warmUp, ...variants].map((v) => stack.config(v.prefix).topics.rawLogs);
    try {
      for (const [i, v] of [warmUp, ...variants].entries()) {
        const phase = ctx.phase(`produce ${v.logs} logs over ${v.label}`, v.logs);
        await fill(topics[i]!, v.logs, v.services, minutes, (n) => phase.tick(n));
        phase.done();
      }
      // Untimed: whichever run came first would otherwise also pay for JIT warm-up and first connections.
      const warming = ctx.phase('warm-up drain', 1);
      await drain(stack, warmUp.prefix, warmUp.logs, checkpointMs, createMetrics({ defaultMetrics: false }));
      warming.done();
      const results: Drained[] = [];
      for (const v of variants) {
        const phase = ctx.phase(`detect drains ${v.label}`, 1);
        // A registry per run, so one run's counters cannot leak into the other's.
        results.push(await drain(stack, v.prefix, logs, checkpointMs, createMetrics({ defaultMetrics: false })));
        phase.done();
      }
      const [few, many] = results as [Drained, Drained];
      for (const [i, r] of results.entries())
        ctx.log(
          `${variants[i]!.label}: ${Math.round(r.logsPerSecond)} logs/s (${r.seconds.toFixed(1)} s), checkpoints ${Math.round(r.checkpointBytes / r.seconds)} B/s`,
        );
      ctx.log(
        `ratio ${services} / ${BASELINE_SERVICES} services: ${(many.logsPerSecond / few.logsPerSecond).toFixed(2)}x`,
      );
      return {
        rows: [
          {
            scenario: `detect, ${BASELINE_SERVICES} services (baseline)`,
            metric: 'rate',
            value: few.logsPerSecond,
            unit: 'logs/s',
          },
          {
            scenario: `detect, ${services} services`,
            metric: 'rate',
            value: many.logsPerSecond,
            unit: 'logs/s',
            baseline: few.logsPerSecond,
            target: '>= 0.5x the 8-service rate',
          },
          {
            scenario: `detect, ${BASELINE_SERVICES} services (baseline)`,
            metric: 'checkpoint writes',
            value: few.checkpointBytes / few.seconds,
            unit: 'B/s',
          },
          {
            scenario: `detect, ${services} services`,
            metric: 'checkpoint writes',
            value: many.checkpointBytes / many.seconds,
            unit: 'B/s',
            baseline: few.checkpointBytes / few.seconds,
            target: 'proportional to changes, not to state held',
          },
        ],
        notes: [
          `${logs} logs per run over ${minutes} min of event time, ${PARTITIONS} partitions, checkpoints every ${checkpointMs} ms; rate from detect's first record to checkpoints covering the topic`,
        ],
      };
    } finally {
      await deleteTopics(kafkaClient('bench-detect-scale-cleanup'), topics);
    }
  },
};

export default benchmark;
