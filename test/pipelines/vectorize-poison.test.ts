/**
 * Poison patterns in vectorize (issue 9, item 4): a template the embeddings
 * endpoint refuses (400) or keeps failing on (500) while it answers the
 * others is tried a bounded number of times, then its records land on
 * vectorization-queue-dlq with a reason naming the pattern and the problem;
 * the other patterns are vectorized and the pipeline keeps running. An
 * endpoint that answers nobody is waited out instead: nothing dead-lettered.
 * Real Kafka, PostgreSQL and chdb; the endpoint is the local OpenAI-compatible
 * server.
 */
import { randomUUID } from 'node:crypto';
import { Subject } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vectorize } from '../../src/pipelines/vectorize.ts';
import type { RunningPipeline } from '../../src/app/runner.ts';
import type { DeadLetter } from '../../src/sinks/dead-letter.ts';
import type { TopicSubscription } from '../../src/sources/topics.ts';
import { startOpenAIServer, type OpenAITestServer } from '../support/openai-server.ts';
import { createHarness, type Harness } from '../support/pipeline-harness.ts';
import { uniqueName } from '../support/services.ts';

const MAX_ATTEMPTS = 2;
/** The embedder's own attempts per request (1 + its 4 retries) for a retriable failure. */
const EMBEDDER_ATTEMPTS = 5;

describe('vectorize with poison patterns', () => {
  let h: Harness;
  let server: OpenAITestServer;
  let running: RunningPipeline;
  let finished: unknown;
  const letters: DeadLetter[] = [];
  const stopReading = new Subject<void>();
  let reader: TopicSubscription;
  let hashSeq = BigInt(Date.now()) * 1000n;

  beforeAll(async () => {
    server = await startOpenAIServer({ embeddingDimension: 32 });
    h = await createHarness({ LOGFLOW_EMBEDDINGS_URL: server.url, LOGFLOW_EMBEDDINGS_MODEL: 'poison-test-embed' });
    running = h.start(vectorize, { 'max-attempts': String(MAX_ATTEMPTS), 'batch-wait-ms': '200', partitions: '1' });
    void running.done.then((outcome) => {
      finished = outcome;
    });
    const topics = h.resources.topics();
    await topics.ensureTopic(h.config.topics.vectorizationQueueDlq, 1);
    reader = topics.subscribe({
      groupId: uniqueName('vectorize-dlq-reader'),
      topics: [h.config.topics.vectorizationQueueDlq],
      stop$: stopReading,
    });
    reader.records$.subscribe((e) => {
      letters.push(JSON.parse(e.value.value.toString()) as DeadLetter);
      e.ack();
    });
  });
  afterAll(async () => {
    stopReading.next();
    await reader?.close();
    await h?.close();
    await server?.close();
  });

  interface Pattern {
    readonly hash: string;
    readonly template: string;
    readonly ids: string[];
  }

  const pattern = (template: string, records: number): Pattern => {
    hashSeq += 1n;
    return { hash: hashSeq.toString(), template, ids: Array.from({ length: records }, () => randomUUID()) };
  };

  const send = async (patterns: readonly Pattern[]) => {
    const timestamp = Date.now();
    const messages = patterns.flatMap((p) =>
      p.ids.map((log_id, i) => ({
        key: p.hash,
        value: JSON.stringify({
          log_id,
          error_hash: p.hash,
          template: p.template,
          message: `${p.template} #${i}`,
          service: 'order-service',
          environment: 'production',
          level: 'ERROR',
          timestamp,
        }),
      })),
    );
    await h.resources.topics().producer().send(h.config.topics.vectorizationQueue, messages);
  };

  const embeddedHashes = async (): Promise<Set<string>> => {
    const engines = await h.resources.engines();
    const rows = await (
      await engines.clickhouse.query({
        query: 'SELECT toString(error_hash) AS hash FROM error_patterns FINAL WHERE has_embedding = 1',
        format: 'JSONEachRow',
      })
    ).json<{ hash: string }>();
    return new Set(rows.map((r) => r.hash));
  };

  const requestsWith = (text: string) =>
    server.requests.filter(
      (r) =>
        r.endpoint === 'embeddings' &&
        JSON.stringify((r.body as { input?: unknown } | undefined)?.input ?? '').includes(text),
    );

  const embedRetries = async () =>
    (await h.metrics.retries.get()).values.find((v) => v.labels.pipeline === 'vectorize' && v.labels.stage === 'embed')
      ?.value ?? 0;
  const inFlightRecords = async () =>
    (await h.metrics.inFlight.get()).values.find((v) => v.labels.pipeline === 'vectorize')?.value ?? 0;

  const lettersOf = (p: Pattern) =>
    letters.filter((l) => (JSON.parse(l.payload) as { error_hash: string }).error_hash === p.hash);

  it('dead-letters a template the endpoint refuses, after one try alone, and vectorizes the rest', async () => {
    const good = [
      pattern('Payment gateway timed out after <*> ms', 5),
      pattern('Inventory row <*> locked by another transaction', 5),
      pattern('Cart <*> not found', 5),
    ];
    const poison = pattern('POISON-400 template the model refuses <*>', 4);
    const stop = server.failInput('POISON-400', 400);
    await send([good[0]!, poison, good[1]!, good[2]!]);

    await h.waitFor(
      async () => {
        const embedded = await embeddedHashes();
        return lettersOf(poison).length >= poison.ids.length && good.every((g) => embedded.has(g.hash));
      },
      'the poison dead-lettered and the rest embedded',
      60_000,
    );
    stop();

    const embedded = await embeddedHashes();
    expect(embedded.has(poison.hash)).toBe(false);
    const dead = lettersOf(poison);
    expect(dead.map((l) => (JSON.parse(l.payload) as { log_id: string }).log_id).sort()).toEqual(
      [...poison.ids].sort(),
    );
    for (const letter of dead) {
      expect(letter).toMatchObject({
        error_code: 'INPUT_INVALID',
        stage: 'embed',
        pipeline: 'vectorize',
        source_topic: h.config.topics.vectorizationQueue,
        key: poison.hash,
      });
      expect(letter.error_message).toContain(`refused the template of error pattern ${poison.hash}`);
      expect(letter.error_message).toContain('400');
    }
    // Refused in the batch, then alone: a refusal is final, so never a third time.
    expect(requestsWith('POISON-400')).toHaveLength(2);
    // Only the poison's records went to the DLQ.
    expect(letters).toHaveLength(poison.ids.length);
    expect(finished).toBeUndefined();
  }, 90_000);

  it(`gives a template the endpoint keeps failing on (500) ${MAX_ATTEMPTS} attempts, then dead-letters it; never retries it forever`, async () => {
    const good = [pattern('Shipment label <*> could not be printed', 3), pattern('Coupon <*> expired', 3)];
    const poison = pattern('POISON-500 template that crashes the model <*>', 3);
    const stop = server.failInput('POISON-500', 500);
    await send([poison, ...good]);

    await h.waitFor(
      async () => {
        const embedded = await embeddedHashes();
        return lettersOf(poison).length >= poison.ids.length && good.every((g) => embedded.has(g.hash));
      },
      'the 500 poison dead-lettered and the rest embedded',
      150_000,
    );
    const tries = requestsWith('POISON-500').length;
    // Each attempt: the batch, then the template alone (unless it was alone already), each with the embedder's own
    // retries.
    expect(tries).toBeGreaterThanOrEqual(MAX_ATTEMPTS * EMBEDDER_ATTEMPTS);
    expect(tries).toBeLessThanOrEqual(MAX_ATTEMPTS * 2 * EMBEDDER_ATTEMPTS);
    // Given up for good: no request for it after the dead letter, though the endpoint still fails on it.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(requestsWith('POISON-500')).toHaveLength(tries);
    stop();

    expect((await embeddedHashes()).has(poison.hash)).toBe(false);
    const dead = lettersOf(poison);
    expect(dead).toHaveLength(poison.ids.length);
    for (const letter of dead) {
      expect(letter).toMatchObject({ error_code: 'UPSTREAM_UNAVAILABLE', stage: 'embed', key: poison.hash });
      expect(letter.error_message).toContain(
        `error pattern ${poison.hash} failed ${MAX_ATTEMPTS} times while the endpoint answered other requests`,
      );
      expect(letter.error_message).toContain('500');
    }
    expect(finished).toBeUndefined();
  }, 180_000);

  it('dead-letters malformed requests, a timestamp no Date can hold among them, and vectorizes the rest of their batch', async () => {
    const before = letters.length;
    const good = pattern('Refund <*> already settled', 3);
    const odd = pattern('Clock of service <*> far off', 1);
    const request = (timestamp: unknown) =>
      JSON.stringify({
        log_id: randomUUID(),
        error_hash: odd.hash,
        template: odd.template,
        message: 'clock far off',
        service: 'order-service',
        environment: 'production',
        level: 'ERROR',
        timestamp,
      });
    const malformed = [request(1e300), request(-8_640_000_000_000_001), request('soon'), '{"log_id":'];
    await h.resources
      .topics()
      .producer()
      .send(
        h.config.topics.vectorizationQueue,
        malformed.map((value) => ({ key: odd.hash, value })),
      );
    await send([good]);

    await h.waitFor(
      async () => letters.length - before >= malformed.length && (await embeddedHashes()).has(good.hash),
      'the malformed dead-lettered and the rest embedded',
      60_000,
    );
    const dead = letters.slice(before);
    expect(dead.map((l) => l.payload).sort()).toEqual([...malformed].sort());
    for (const letter of dead)
      expect(letter).toMatchObject({
        error_code: 'INPUT_INVALID',
        stage: 'parse',
        pipeline: 'vectorize',
        key: odd.hash,
      });
    expect(dead.filter((l) => l.error_message.includes('timestamp'))).toHaveLength(3);
    expect(dead.filter((l) => l.error_message.includes('not valid JSON'))).toHaveLength(1);
    expect((await embeddedHashes()).has(odd.hash)).toBe(false);
    expect(finished).toBeUndefined();
  }, 90_000);

  it('raises the novel_pattern alert of a message whose emoji straddles the 1,000-character sample cut', async () => {
    const before = letters.length;
    const emoji = pattern('Label printer <*> jammed while printing', 1);
    const message = `${'x'.repeat(999)}\u{1F600} tail`;
    // Past the learning period the earlier tests started: novelty is judged for this one.
    const timestamp = Date.now() + 30 * 60_000;
    const value = JSON.stringify({
      log_id: emoji.ids[0],
      error_hash: emoji.hash,
      template: emoji.template,
      message,
      service: 'order-service',
      environment: 'production',
      level: 'ERROR',
      timestamp,
    });
    await h.resources
      .topics()
      .producer()
      .send(h.config.topics.vectorizationQueue, [{ key: emoji.hash, value }]);

    const repositories = await h.resources.repositories();
    const alertOf = async () =>
      (await repositories.anomalyAlerts.list({ type: 'novel_pattern', limit: 100 })).items.find(
        (a) => a.errorHash === emoji.hash,
      );
    await h.waitFor(async () => (await alertOf()) !== undefined, 'the novel_pattern alert', 60_000);
    // Cut before the emoji, not through it: PostgreSQL's jsonb refused the lone half and the pattern was dead-lettered
    // on every batch.
    expect((await alertOf())?.details).toMatchObject({ sampleMessage: 'x'.repeat(999) });
    expect(letters.slice(before)).toEqual([]);
    expect(finished).toBeUndefined();
  }, 90_000);

  it('dead-letters a request whose text holds a lone surrogate or NUL, with the field and the problem', async () => {
    const before = letters.length;
    const odd = pattern('Parser <*> choked', 2);
    const request = (fields: Record<string, string>) =>
      JSON.stringify({
        log_id: randomUUID(),
        error_hash: odd.hash,
        template: odd.template,
        message: 'm',
        service: 'order-service',
        environment: 'production',
        level: 'ERROR',
        timestamp: Date.now(),
        ...fields,
      });
    const bad = [request({ message: 'lone \ud800 surrogate' }), request({ template: 'nul \u0000 template' })];
    await h.resources
      .topics()
      .producer()
      .send(
        h.config.topics.vectorizationQueue,
        bad.map((value) => ({ key: odd.hash, value })),
      );

    await h.waitFor(async () => letters.length - before >= bad.length, 'both dead-lettered', 60_000);
    const dead = letters.slice(before);
    expect(dead.map((l) => l.error_message).sort()).toEqual([
      expect.stringMatching(/message: contains a lone UTF-16 surrogate/),
      expect.stringMatching(/template: contains NUL characters/),
    ]);
    expect(finished).toBeUndefined();
  }, 90_000);

  it('waits out an endpoint that answers nobody and dead-letters nothing', async () => {
    const before = letters.length;
    const good = [pattern('Search index <*> is rebuilding', 3), pattern('Session <*> evicted early', 3)];
    // The batch and the probe both exhaust the embedder's retries: an outage, to wait out.
    server.failNext(503, 2 * EMBEDDER_ATTEMPTS + 2, 'embeddings');
    const failedBefore = server.requests.filter((r) => r.status === 503).length;
    const retriesBefore = await embedRetries();
    let inFlightSeen = 0;
    await send(good);

    await h.waitFor(
      async () => {
        inFlightSeen = Math.max(inFlightSeen, await inFlightRecords());
        const embedded = await embeddedHashes();
        return good.every((g) => embedded.has(g.hash));
      },
      'the patterns embedded once the endpoint answers',
      150_000,
    );
    expect(server.requests.filter((r) => r.status === 503).length - failedBefore).toBe(2 * EMBEDDER_ATTEMPTS + 2);
    // Every wait counted in retries_total: the embedder's own retries of the batch and of the probe (each failed
    // EMBEDDER_ATTEMPTS times), the pipeline's one wait for the endpoint, then the batch's last two failures.
    expect((await embedRetries()) - retriesBefore).toBe(2 * (EMBEDDER_ATTEMPTS - 1) + 1 + 2);
    // The records waited unacknowledged through the outage, and none are left once they are written.
    expect(inFlightSeen).toBe(good.reduce((n, g) => n + g.ids.length, 0));
    await h.waitFor(async () => (await inFlightRecords()) === 0, 'in_flight_records back to 0', 10_000);
    // A little longer: a dead letter of this outage would show up now.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(letters).toHaveLength(before);
    expect(finished).toBeUndefined();
    expect(await running.stop()).toEqual({ status: 'stopped' });
  }, 180_000);
});
