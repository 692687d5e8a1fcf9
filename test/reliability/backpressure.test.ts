/**
 * Backpressure: the real ingest process, its ClickHouse sink slowed 100x for
 * a minute (test/reliability/slow-sink.ts, preloaded) while logs keep
 * arriving faster than it can write. The consumer must pause rather than
 * buffer: the process's resident memory stays under the configured bound
 * (what it used before the slowdown plus a fixed allowance, far below what
 * buffering the minute's input would take), read-but-unwritten records stay
 * within --max-in-flight, lag grows while the sink is slow, and once it is
 * fast again the lag drains to zero and every log is stored exactly once.
 */
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { consumerGroup } from '../../src/core/config.ts';
import { openEngines } from '../../src/clients/engines.ts';
import { KafkaTopics } from '../../src/sources/kafka-topics.ts';
import { KAFKA_BROKERS } from '../support/services.ts';
import { caughtUp, createStack, producePaced, rssBytes, sleep, spawnPipeline, waitFor, type Stack } from './support.ts';

const SLOW_MS = 60_000;
const MAX_IN_FLIGHT = 5_000;
/** The configured bound: RSS may grow this much over its level before the slowdown. */
const RSS_ALLOWANCE = 160 * 1024 * 1024;

describe('a sink slowed 100x for a minute', () => {
  let stack: Stack | undefined;
  afterAll(async () => {
    await stack?.drop();
  });

  it('pauses the consumer with memory bounded, then drains the lag and stores everything once', async () => {
    stack = await createStack();
    const { config, env } = stack;
    const topics = new KafkaTopics({ brokers: KAFKA_BROKERS, clientId: 'backpressure' });
    await topics.ensureTopic(config.topics.rawLogs, 4);
    const make = (n: number, from: number) =>
      Array.from({ length: n }, (_, j) => {
        const i = from + j;
        // ~1 KB each: a minute of input held in memory would be hundreds of MB of JS objects.
        const log = {
          log_id: randomUUID(),
          timestamp: new Date(Date.now() - 120_000).toISOString(),
          service: `svc-${i % 6}`,
          level: 'INFO',
          message: `request ${i} ${'payload '.repeat(110)}`,
        };
        return { key: log.service, value: JSON.stringify(log) };
      });

    const group = consumerGroup(config, 'ingest');
    const lag = async () => {
      const end = await topics.endOffsets(config.topics.rawLogs);
      const committed = await topics.committedOffsets(group, config.topics.rawLogs);
      return [...end].reduce((sum, [p, high]) => sum + high - (committed.get(p) ?? 0), 0);
    };

    // Warm up at full speed, so the baseline RSS includes chdb and a steady pipeline.
    const warm = make(20_000, 0);
    await producePaced(KAFKA_BROKERS, config.topics.rawLogs, warm, 20_000, 500);
    const slowFile = path.join(stack.dir, 'slow-sink-until');
    const child = spawnPipeline(
      'ingest',
      { ...env, SLOW_SINK_FACTOR: '100', SLOW_SINK_FILE: slowFile },
      {
        'batch-size': '1000',
        'batch-wait-ms': '200',
        'max-in-flight': String(MAX_IN_FLIGHT),
      },
      'slow-sink.ts',
    );
    try {
      await child.running;
      await waitFor(() => caughtUp(topics, group, config.topics.rawLogs), 'the warm-up to drain', 120_000, 500);
      const baseline = await rssBytes(child.child.pid!);
      const slowUntil = Date.now() + SLOW_MS;
      await writeFile(slowFile, String(slowUntil));

      // A minute of slow inserts while 150,000 logs (~150 MB) arrive.
      const during = make(150_000, warm.length);
      let maxRss = 0;
      const lags: number[] = [];
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          maxRss = Math.max(maxRss, await rssBytes(child.child.pid!));
          lags.push(await lag());
          await sleep(2_000);
        }
      })();
      await producePaced(KAFKA_BROKERS, config.topics.rawLogs, during, during.length / 45, 500);
      await sleep(Math.max(0, slowUntil - Date.now()));
      sampling = false;
      await sampler;
      const lagAtEnd = lags[lags.length - 1]!;

      await waitFor(async () => (await lag()) === 0, 'the lag to drain after the slowdown', 180_000, 1_000);
      const exit = await child.kill('SIGTERM');
      expect(exit, child.output().slice(-3_000)).toEqual({ code: 0, signal: null });
      console.info(
        `backpressure: baseline RSS ${(baseline / 2 ** 20).toFixed(0)} MB, max during ${(maxRss / 2 ** 20).toFixed(0)} MB, lag at end of slowdown ${lagAtEnd}`,
      );

      // Paused rather than buffered: RSS within the bound while lag piled up in Kafka, not in the process.
      expect(maxRss).toBeLessThan(baseline + RSS_ALLOWANCE);
      expect(lagAtEnd).toBeGreaterThan(during.length / 2);
      expect(Math.max(...lags)).toBeGreaterThan(MAX_IN_FLIGHT * 4);
    } finally {
      await child.kill('SIGKILL');
      await topics.close();
    }

    const engines = await openEngines(config);
    try {
      const [row] = await (
        await engines.clickhouse.query({
          query: 'SELECT count() AS n, uniqExact(log_id) AS ids FROM logs',
          format: 'JSONEachRow',
        })
      ).json<{ n: string; ids: string }>();
      expect({ n: Number(row?.n), ids: Number(row?.ids) }).toEqual({ n: 170_000, ids: 170_000 });
    } finally {
      await engines.close();
    }
  }, 420_000);
});
