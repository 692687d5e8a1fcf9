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
 * what changed since the previous checkpoint. In a drain this fast nearly every
 * series changes between two checkpoints, so the drain's figure cannot tell the
 * two apart; hence a second measure: once drained, the same small change (2,000
 * logs of the first 8 services, one more minute of event time) is sent to both
 * runs, and the bytes its checkpoints wrote are compared. Written in proportion
 * to the change, they are about the same whether 8 or 5,000 services' state is
 * held.
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
  /** Bytes the checkpoints wrote for the small change sent after the drain. */
  readonly changeBytes: number;
}

const CHANGE_LOGS = 2_000;
const CHANGE_SERVICES = 8;

interface Layout {
  readonly topic: string;
  /** Event time of the first log, epoch ms. */
  readonly start: number;
  readonly minutes: number;
}

/** One log of service number `s`; `i` makes its id and varies its level. */
function logOf(i: number, s: number, services: number, timestamp: number): { key: string; value: string } {
  const service = `svc-${s}`;
  return {
    key: service,
    value: JSON.stringify({
      log_id: `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`,
      timestamp: new Date(timestamp).toISOString(),
      service,
      environment: ENVIRONMENTS[s % ENVIRONMENTS.length],
      // Each service cycles through the levels, so it holds several series as real services do.
      level: LEVELS[Math.floor(i / services) % LEVELS.length],
      message: `request ${i % 977} handled in ${i % 313} ms`,
      host: `host-${s % 50}`,
    }),
  };
}

async function send(topic: string, logs: readonly { key: string; value: string; partition: number }[]): Promise<void> {
  const kafka = kafkaClient('bench-detect-scale');
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  try {
    const byPartition = new Map<number, Array<{ key: string; value: string; partition: number }>>();
    for (const log of logs) {
      let list = byPartition.get(log.partition);
      if (list === undefined) byPartition.set(log.partition, (list = []));
      list.push(log);
    }
    await producer.sendBatch({
      acks: -1,
      topicMessages: [...byPartition.values()].map((messages) => ({ topic, messages })),
    });
  } finally {
    await producer.disconnect();
  }
}

/** The small change: CHANGE_LOGS logs of the first services, in the minute after the drained logs. */
function change(layout: Layout, logs: number): Array<{ key: string; value: string; partition: number }> {
  const end = layout.start + layout.minutes * 60_000;
  return Array.from({ length: CHANGE_LOGS }, (_, j) => {
    const s = j % CHANGE_SERVICES;
    return {
      ...logOf(logs + j, s, CHANGE_SERVICES, end + Math.floor((j * 60_000) / CHANGE_LOGS)),
      partition: s % PARTITIONS,
    };
  });
}

/** Valid log events (ingest's verdict) whose counting fields vary as a real mix does; the rest is filler. */
async function fill(layout: Layout, logs: number, services: number, onSent: (n: number) => void) {
  await createTopic(kafkaClient('bench-detect-scale'), layout.topic, PARTITIONS);
  const step = (layout.minutes * 60_000) / logs;
  const chunk = 4_000;
  for (let from = 0; from < logs; from += chunk) {
    const batch = [];
    for (let i = from; i < Math.min(logs, from + chunk); i++) {
      const s = i % services;
      batch.push({ ...logOf(i, s, services, layout.start + Math.floor(i * step)), partition: s % PARTITIONS });
    }
    await send(layout.topic, batch);
    onSent(Math.min(logs, from + chunk));
  }
}

async function drain(
  stack: BenchStack,
  prefix: string,
  layout: Layout,
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
    const bytesDrained = await counterTotal(metrics, 'checkpointBytes', { pipeline: 'detect' });
    await send(layout.topic, change(layout, logs));
    while ((await covered()) < logs + CHANGE_LOGS) await sleep(50);
    // Whatever the change still has to write (its last windows closing) is written by the next checkpoint or two.
    await sleep(3 * checkpointMs);
    const changeBytes = (await counterTotal(metrics, 'checkpointBytes', { pipeline: 'detect' })) - bytesDrained;
    return { logsPerSecond: logs / seconds, seconds, checkpointBytes: bytesDrained - bytesBefore, changeBytes };
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
    const start = Math.floor(Date.now() / 60_000) * 60_000 - (minutes + 60) * 60_000;
    const layouts = [warmUp, ...variants].map(
      (v): Layout => ({ topic: stack.config(v.prefix).topics.rawLogs, start, minutes }),
    );
    const topics = layouts.map((l) => l.topic);
    try {
      for (const [i, v] of [warmUp, ...variants].entries()) {
        const phase = ctx.phase(`produce ${v.logs} logs over ${v.label}`, v.logs);
        await fill(layouts[i]!, v.logs, v.services, (n) => phase.tick(n));
        phase.done();
      }
      // Untimed: whichever run came first would otherwise also pay for JIT warm-up and first connections.
      const warming = ctx.phase('warm-up drain', 1);
      await drain(
        stack,
        warmUp.prefix,
        layouts[0]!,
        warmUp.logs,
        checkpointMs,
        createMetrics({ defaultMetrics: false }),
      );
      warming.done();
      const results: Drained[] = [];
      for (const [i, v] of variants.entries()) {
        const phase = ctx.phase(`detect drains ${v.label}`, 1);
        // A registry per run, so one run's counters cannot leak into the other's.
        results.push(
          await drain(stack, v.prefix, layouts[i + 1]!, logs, checkpointMs, createMetrics({ defaultMetrics: false })),
        );
        phase.done();
      }
      const [few, many] = results as [Drained, Drained];
      for (const [i, r] of results.entries())
        ctx.log(
          `${variants[i]!.label}: ${Math.round(r.logsPerSecond)} logs/s (${r.seconds.toFixed(1)} s), checkpoints ${Math.round(r.checkpointBytes / r.seconds)} B/s; the small change after: ${r.changeBytes} B`,
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
          },
          {
            scenario: `detect, ${BASELINE_SERVICES} services (baseline), then ${CHANGE_LOGS} logs of ${CHANGE_SERVICES}`,
            metric: 'checkpoint bytes for the change',
            value: few.changeBytes,
            unit: 'B',
          },
          {
            scenario: `detect, ${services} services, then the same ${CHANGE_LOGS} logs of ${CHANGE_SERVICES}`,
            metric: 'checkpoint bytes for the change',
            value: many.changeBytes,
            unit: 'B',
            baseline: few.changeBytes,
            target: 'about 1x: proportional to what changed, not to the state held',
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
