/**
 * generate -> ingest on real Kafka, PostgreSQL and chdb: every log stored once, every invalid one dead-lettered with a
 * reason.
 */
import { firstValueFrom, Subject, take, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeadLetter } from '../../src/sinks/dead-letter.ts';
import { generate } from '../../src/pipelines/generate.ts';
import { ingest } from '../../src/pipelines/ingest.ts';
import { createHarness, type Harness } from '../support/pipeline-harness.ts';

describe('generate -> ingest', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(() => h.close());

  it('stores every generated log exactly once and dead-letters every invalid one with its reason', async () => {
    const generated = h.start(generate, {
      rate: '400',
      duration: '60s',
      speed: 'max',
      seed: '7',
      'invalid-rate': '0.01',
      flat: true,
    });
    expect(await generated.done).toEqual({ status: 'completed' });
    const produced = (await h.metrics.recordsOut.get()).values.find((v) => v.labels.pipeline === 'generate');
    const total = produced?.value ?? 0;
    expect(total).toBeGreaterThan(20_000);

    const topics = h.resources.topics();
    // The wait below reads the DLQ's end offsets; the topic must exist before ingest gets to create it.
    await topics.ensureTopic(h.config.topics.rawLogsDlq, 1);
    const ingesting = h.start(ingest, { 'batch-size': '5000', 'batch-wait-ms': '200' });
    const dlqEnds = async () =>
      [...(await topics.endOffsets(h.config.topics.rawLogsDlq)).values()].reduce((a, b) => a + b, 0);
    await h.waitFor(
      async () => (await h.count('SELECT count() FROM logs')) + (await dlqEnds()) >= total,
      'ingest to catch up',
    );
    expect(await ingesting.stop()).toEqual({ status: 'stopped' });
    // The gauge is reported by ingest's graph (no series at all if it were not), and nothing is left read but unacked.
    const inFlight = (await h.metrics.inFlight.get()).values.find((v) => v.labels.pipeline === 'ingest');
    expect(inFlight?.value).toBe(0);

    const stored = await h.count('SELECT count() FROM logs');
    const distinct = await h.count('SELECT uniqExact(log_id) FROM logs');
    const invalid = await dlqEnds();
    expect(invalid).toBeGreaterThan(50);
    expect(stored + invalid).toBe(total);
    expect(distinct).toBe(stored);
    expect(await h.count('SELECT sum(log_count) FROM logs_hourly_agg')).toBe(stored);
    expect(await h.count("SELECT count() FROM logs WHERE template = '' OR error_hash = 0")).toBe(0);

    // Problem levels went on to vectorization-queue, one message per WARN/ERROR/FATAL log.
    const problems = await h.count("SELECT count() FROM logs WHERE level IN ('WARN', 'ERROR', 'FATAL')");
    const queued = [...(await topics.endOffsets(h.config.topics.vectorizationQueue)).values()].reduce(
      (a, b) => a + b,
      0,
    );
    expect(queued).toBe(problems);

    const dlq = topics.subscribe({
      groupId: `${h.config.topicPrefix}check`,
      topics: [h.config.topics.rawLogsDlq],
      stop$: new Subject<void>(),
    });
    const letters = await firstValueFrom(dlq.records$.pipe(take(invalid), toArray()));
    letters.forEach((l) => l.ack());
    await dlq.close();
    const reasons = letters.map((l) => JSON.parse(l.value.value.toString()) as DeadLetter);
    expect(
      reasons.every((r) => r.error_code === 'INPUT_INVALID' && r.pipeline === 'ingest' && r.error_message.length > 0),
    ).toBe(true);
    const kinds = new Set(reasons.map((r) => r.error_message.replace(/"[^"]*"|\d[\d:.TZ-]*/g, '…').slice(0, 40)));
    expect(kinds.size).toBeGreaterThanOrEqual(4);
  }, 240_000);
});
