/**
 * generate (the seed's log-generator): realistic logs to raw-logs, keyed by
 * service, at a configurable rate, for a configurable time, from a seed; a
 * scenario injects incidents and their ground truth is written as JSONL.
 */
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { SingleBar, Presets } from 'cli-progress';
import {
  concat,
  concatMap,
  defer,
  EMPTY,
  finalize,
  ignoreElements,
  mergeMap,
  takeUntil,
  tap,
  type Observable,
} from 'rxjs';
import { z } from 'zod';
import { ConfigError } from '../core/errors.ts';
import { definePipeline } from '../core/pipeline.ts';
import { retry, RETRY_UNTIL_STOPPED } from '../core/retry.ts';
import { generateLogsInWorker } from '../sources/generator-worker.ts';
import { generateLogs, groundTruth, scenarioSchema, type Scenario } from '../sources/generator.ts';
import type { OutgoingMessage } from '../sources/topics.ts';
import { durationMs } from '../core/duration.ts';
import { parseOptions } from '../core/options.ts';
import type { Resources } from './resources.ts';

const optionsSchema = z
  .object({
    rate: z.coerce.number().positive().max(10_000_000).default(1_000),
    duration: durationMs.default(3_600_000),
    seed: z.coerce.number().int().default(1),
    scenario: z.string().optional(),
    truth: z.string().optional(),
    speed: z.union([z.literal('max'), z.coerce.number().positive()]).default(1),
    start: z.iso.datetime({ offset: true }).optional(),
    'invalid-rate': z.coerce.number().min(0).max(1).default(0),
    flat: z.coerce.boolean().default(false),
    partitions: z.coerce.number().int().min(1).max(1_000).default(4),
    progress: z.coerce.boolean().optional(),
    /** Generate on a worker thread, off the thread the rest of the process runs on (npm start sets it). */
    worker: z.coerce.boolean().default(false),
    /**
     * Topics held in memory only (npm start's): wait while the slowest consumer
     * group is more than this many records behind on a partition, so a machine
     * too slow for the rate slows the generator instead of filling memory.
     */
    'max-backlog': z.coerce.number().int().min(1).optional(),
  })
  .strict();

/** A second of generated logs; `release` lets the worker make more once they are sent. */
interface Generated {
  readonly logs: readonly OutgoingMessage[];
  readonly release?: () => void;
}

const SEND_CHUNK = 5_000;
/** Seconds the worker may make before the first of them is sent: enough to overlap making with sending, no more. */
const WORKER_SECONDS_AHEAD = 2;
/** How often a generator held back by `max-backlog` looks again. */
const BACKLOG_POLL_MS = 20;

export async function loadScenario(nameOrPath: string): Promise<Scenario> {
  const file = /^[a-z0-9-]+$/.test(nameOrPath)
    ? new URL(`../../scenarios/${nameOrPath}.json`, import.meta.url)
    : path.resolve(nameOrPath);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new ConfigError([`generate: --scenario: cannot read ${String(file)}`]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError([`generate: --scenario: ${String(file)} is not JSON: ${(error as Error).message}`]);
  }
  const parsed = scenarioSchema.safeParse(json);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `generate: --scenario: ${i.path.join('.')}: ${i.message}`));
  }
  return parsed.data;
}

export const generate = definePipeline<Resources>({
  name: 'generate',
  description:
    'realistic logs for a set of services to raw-logs (rate, duration, seed, scenario with injected incidents)',
  build(ctx) {
    const options = parseOptions(optionsSchema, ctx.options, 'generate');
    return defer(async () => {
      const topics = ctx.resources.topics();
      if (options['max-backlog'] !== undefined && topics.backlog === undefined) {
        throw new ConfigError([
          `generate: --max-backlog applies to in-process topics only (npm start); ${topics.kind} topics keep their backlog outside this process`,
        ]);
      }
      await topics.ensureTopic(ctx.config.topics.rawLogs, options.partitions);
      const scenario = options.scenario === undefined ? undefined : await loadScenario(options.scenario);
      const startTime = options.start === undefined ? ctx.scheduler.now() : Date.parse(options.start);
      if (scenario !== undefined) {
        const truthFile = path.resolve(options.truth ?? path.join(ctx.config.dataDir, 'ground-truth.jsonl'));
        await mkdir(path.dirname(truthFile), { recursive: true });
        await writeFile(
          truthFile,
          groundTruth(scenario, Math.floor(startTime / 1000) * 1000)
            .map((t) => JSON.stringify(t))
            .join('\n') + '\n',
        );
        ctx.logger.info({ truthFile, incidents: scenario.incidents.length }, 'ground truth written');
      }
      return { topics, scenario, startTime };
    }).pipe(
      mergeMap(({ topics, scenario, startTime }) => {
        const producer = topics.producer();
        const seconds = Math.ceil(options.duration / 1000);
        const showBar = options.progress ?? process.stderr.isTTY === true;
        const bar = showBar
          ? new SingleBar(
              { format: 'generate [{bar}] {percentage}% | {value}/{total} s | {logs} logs', stream: process.stderr },
              Presets.shades_classic,
            )
          : undefined;
        bar?.start(seconds, 0, { logs: 0 });
        let sent = 0;
        let done = 0;
        const produced = ctx.metrics.recordsOut.labels({ pipeline: ctx.name, stage: 'raw-logs' });
        const generatorOptions = {
          seed: options.seed,
          rate: options.rate,
          durationMs: options.duration,
          startTime,
          speed: options.speed === 'max' ? Infinity : options.speed,
          invalidRate: options['invalid-rate'],
          dailyShape: !options.flat,
          ...(scenario === undefined ? {} : { scenario }),
        };
        const logs$: Observable<Generated> = options.worker
          ? generateLogsInWorker(generatorOptions, WORKER_SECONDS_AHEAD)
          : generateLogs({ ...generatorOptions, scheduler: ctx.scheduler });
        let stopping = false;
        const stoppingWatch = ctx.stopping$.subscribe(() => (stopping = true));
        const maxBacklog = options['max-backlog'];
        const backlogOf = topics.backlog?.bind(topics);
        const roomInTopic = async (): Promise<void> => {
          if (maxBacklog === undefined || backlogOf === undefined) return;
          while (!stopping && backlogOf(ctx.config.topics.rawLogs) > maxBacklog)
            await new Promise((r) => setTimeout(r, BACKLOG_POLL_MS));
        };
        /**
         * Each second's logs to raw-logs in chunks, once the topic has room, waiting out a broker that does not take
         * them. The room is looked at only after the previous second is sent, so the backlog it sees is current.
         */
        const send = async ({ logs, release }: Generated): Promise<number> => {
          await roomInTopic();
          for (let i = 0; i < logs.length; i += SEND_CHUNK) {
            // Generated logs are messages already (key and value); no copy per log.
            const chunk = logs.length <= SEND_CHUNK ? logs : logs.slice(i, i + SEND_CHUNK);
            await retry(() => producer.send(ctx.config.topics.rawLogs, chunk), RETRY_UNTIL_STOPPED);
          }
          release?.();
          return logs.length;
        };
        const progress = (count: number): void => {
          sent += count;
          done += 1;
          produced.inc(count);
          bar?.update(done, { logs: sent });
          if (bar === undefined && (done % Math.max(1, Math.floor(seconds / 10)) === 0 || done === seconds)) {
            ctx.logger.info({ seconds: done, of: seconds, logs: sent }, 'generating');
          }
        };
        return concat(
          logs$.pipe(
            takeUntil(ctx.stopping$),
            concatMap(send),
            tap(progress),
            ignoreElements(),
            finalize(() => {
              bar?.stop();
              stoppingWatch.unsubscribe();
            }),
          ),
          defer(() => {
            ctx.logger.info({ logs: sent }, 'generate finished');
            return EMPTY;
          }),
        );
      }),
    );
  },
});
