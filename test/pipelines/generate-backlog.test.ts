/**
 * npm start's topics live in memory: `generate --max-backlog` makes the
 * generator wait while a reader of raw-logs is that far behind, instead of
 * piling up records until memory runs out. In-process topics (the embedded
 * adapter), real chdb and PostgreSQL through the harness; on Kafka the option
 * is refused rather than silently ignored.
 */
import { Subject, type Subscription } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate } from '../../src/pipelines/generate.ts';
import type { Envelope } from '../../src/core/envelope.ts';
import type { ConsumedRecord, TopicSubscription } from '../../src/sources/topics.ts';
import { createHarness, type Harness } from '../support/pipeline-harness.ts';

const MAX_BACKLOG = 5_000;
const RATE = 2_000;

describe('generate with max-backlog on in-process topics', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({}, { kafka: false });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('waits while a reader is that far behind and goes on once it commits', async () => {
    const topics = h.resources.topics();
    expect(topics.kind).toBe('in-process');
    const topic = h.config.topics.rawLogs;
    await topics.ensureTopic(topic, 1);
    const start = (await topics.endOffsets(topic)).get(0)!;
    const produced = async () => (await topics.endOffsets(topic)).get(0)! - start;

    const stop$ = new Subject<void>();
    const reader: TopicSubscription = topics.subscribe({ groupId: 'slow-reader', topics: [topic], stop$ });
    const held: Envelope<ConsumedRecord>[] = [];
    const reading: Subscription = reader.records$.subscribe((e) => held.push(e));

    // As fast as it can for ten minutes of event time: 1,200,000 logs unless something holds it back.
    const generating = h.start(generate, {
      rate: RATE,
      duration: '10m',
      speed: 'max',
      seed: 5,
      flat: true,
      partitions: 1,
      worker: true,
      'max-backlog': MAX_BACKLOG,
      progress: false,
    });
    await h.waitFor(async () => (await produced()) >= MAX_BACKLOG, 'the generator to reach the bound', 60_000);
    await new Promise((r) => setTimeout(r, 1_500));
    const atBound = await produced();
    // It may pass the bound by the second it was sending when it got there, never by more.
    expect(atBound).toBeGreaterThanOrEqual(MAX_BACKLOG);
    expect(atBound).toBeLessThanOrEqual(MAX_BACKLOG + RATE);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await produced()).toBe(atBound);

    for (const e of held.splice(0)) e.ack();
    await reader.commit();
    await h.waitFor(
      async () => (await produced()) > atBound + RATE,
      'the generator to go on once the reader committed',
      60_000,
    );

    expect(await generating.stop()).toEqual({ status: 'stopped' });
    reading.unsubscribe();
    stop$.next();
    await reader.close();
  }, 120_000);
});

describe('generate with max-backlog on Kafka', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('is refused: the broker, not the process, holds the backlog there', async () => {
    const outcome = await h.start(generate, { rate: '10', duration: '1s', 'max-backlog': '1000' }).done;
    expect(outcome.status).toBe('failed');
    expect(String((outcome as { error?: Error }).error?.message)).toContain(
      '--max-backlog applies to in-process topics only (npm start); kafka topics keep their backlog outside this process',
    );
  });
});
