/**
 * Arbitrary input through the whole path, not just the parser: fast-check
 * draws batches of Kafka messages (log events whose fields hold hostile
 * text, JSON text with raw escapes such as \ud800 and \u0000, arbitrary JSON,
 * arbitrary bytes, tombstones) and sends them on the real broker through
 * ingest into chdb, with vectorize and detect reading what reaches them.
 * After each batch:
 * - every record is stored once or dead-lettered once with a reason, never
 *   both, and a record the parser accepts is stored (a row the parser lets
 *   through but a store refuses is how one message once stopped ingest);
 * - every stored WARN/ERROR/FATAL row is vectorized or dead-lettered by vectorize;
 * - detect has read every record;
 * - all three pipelines are still running.
 * Counterexamples it shrank to are kept as table cases in
 * test/reliability/bad-input.test.ts and test/log-event.test.ts.
 */
import fc from 'fast-check';
import { Kafka, logLevel } from 'kafkajs';
import { Subject } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consumerGroup } from '../../src/core/config.ts';
import { parseLogEvent } from '../../src/domain/log-event.ts';
import { detect } from '../../src/pipelines/detect.ts';
import { ingest } from '../../src/pipelines/ingest.ts';
import { vectorize } from '../../src/pipelines/vectorize.ts';
import type { RunningPipeline } from '../../src/app/runner.ts';
import type { DeadLetter } from '../../src/sinks/dead-letter.ts';
import type { TopicSubscription } from '../../src/sources/topics.ts';
import { createHarness, type Harness } from '../support/pipeline-harness.ts';
import { KAFKA_BROKERS, uniqueName } from '../support/services.ts';

/** Any UTF-16 code unit, lone surrogates and NUL included: what a JSON escape can put into a string. */
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
const hostileText = fc.oneof(
  fc.string({ unit: codeUnit, maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.constantFrom(
    '\u0000',
    '\ud800',
    '\udfff',
    'x\ud83d',
    '\ud83d\ude00',
    '\\',
    '"',
    '\n\r\t',
    '\u2028',
    '\ufffd',
    'ınfo',
    "x'); DROP TABLE logs; --",
  ),
  // Straddles the cuts at 1,000 and 4,096 characters with an emoji.
  fc.constantFrom(999, 4_095).map((n) => `${'e'.repeat(n)}\u{1F525} tail`),
);
const recentTimestamp = fc.integer({ min: -3_600_000, max: 0 }).map((ago) => new Date(Date.now() + ago).toISOString());
const timestamp = fc.oneof(
  { weight: 6, arbitrary: recentTimestamp },
  { weight: 2, arbitrary: recentTimestamp.map((t) => t.slice(0, 19)) },
  fc.constantFrom('2026-11-31T12:00:00Z', '2026-02-30', '24:00', 'yesterday', ''),
  fc.string({ unit: codeUnit, maxLength: 30 }),
  fc.double(),
);
// Messages are drawn as text (or bytes) rather than Buffers, so a counterexample prints readably.
const asPayload = (value: string | Uint8Array | null): Buffer | null => (value === null ? null : Buffer.from(value));

// Mostly valid, so most records get past the parser and hostile text in the other fields reaches the stores.
const service = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('checkout', 'auth-service', 'api.gateway:v2') },
  { weight: 1, arbitrary: hostileText },
);
const level = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('INFO', 'warn', 'Error', 'FATAL', 'critical') },
  { weight: 1, arbitrary: fc.constantFrom('ınfo', 'constructor', 'LOUD') },
  { weight: 1, arbitrary: hostileText },
);

const hostileEvent = fc
  .record(
    {
      timestamp,
      service,
      level,
      message: hostileText,
      host: fc.oneof({ weight: 3, arbitrary: fc.constantFrom('web-1', '') }, { weight: 1, arbitrary: hostileText }),
      environment: fc.oneof({ weight: 3, arbitrary: fc.constant('production') }, { weight: 1, arbitrary: hostileText }),
      attributes: fc.oneof(
        { weight: 3, arbitrary: fc.constant({ region: 'eu' }) },
        { weight: 1, arbitrary: fc.dictionary(hostileText, hostileText, { maxKeys: 3 }) },
      ),
    },
    { requiredKeys: ['timestamp', 'service', 'level', 'message'] },
  )
  .map((event) => JSON.stringify(event));

/** JSON text written by hand, so escapes reach the parser exactly as a producer such as kcat sends them. */
const rawEscapes = fc
  .tuple(
    fc.constantFrom('checkout', 'svc\\ud800', 'svc\\u0000'),
    fc.array(
      fc.constantFrom(
        '\\ud800',
        '\\udc00',
        '\\uD83D\\uDE00',
        '\\u0000',
        '\\u00e9',
        '\\\\',
        '\\"',
        '\\n',
        'text',
        ' ',
        '\\x',
        '\\',
        '"',
        '\\u12',
      ),
      {
        minLength: 1,
        maxLength: 8,
      },
    ),
    fc.constantFrom('ERROR', 'INFO', 'W\\u0041RN'),
    recentTimestamp,
  )
  .map(
    ([svc, pieces, lvl, ts]) =>
      `{"timestamp":"${ts}","service":"${svc}","level":"${lvl}","message":"${pieces.join('')}"}`,
  );

const message = fc.oneof(
  { weight: 8, arbitrary: hostileEvent },
  { weight: 3, arbitrary: rawEscapes },
  { weight: 1, arbitrary: fc.json({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }) },
  { weight: 1, arbitrary: fc.constant(null) },
);

describe('arbitrary messages through ingest, vectorize and detect on the real broker and chdb', () => {
  let h: Harness;
  let kafka: Kafka;
  const pipelines: RunningPipeline[] = [];
  const rawLetters: DeadLetter[] = [];
  const queueLetters: DeadLetter[] = [];
  const readers: TopicSubscription[] = [];
  const stopReading = new Subject<void>();

  const read = (topic: string, into: DeadLetter[]) => {
    const reader = h.resources
      .topics()
      .subscribe({ groupId: uniqueName('fuzz-dlq'), topics: [topic], stop$: stopReading });
    reader.records$.subscribe((e) => {
      into.push(JSON.parse(e.value.value.toString()) as DeadLetter);
      e.ack();
    });
    readers.push(reader);
  };

  beforeAll(async () => {
    h = await createHarness();
    kafka = new Kafka({ brokers: KAFKA_BROKERS, clientId: 'fuzz-ingest-path', logLevel: logLevel.NOTHING });
    const topics = h.resources.topics();
    // One partition each: produced offsets are then base + index, so every record can be followed by its offset.
    await topics.ensureTopic(h.config.topics.rawLogs, 1);
    await topics.ensureTopic(h.config.topics.rawLogsDlq, 1);
    await topics.ensureTopic(h.config.topics.vectorizationQueueDlq, 1);
    pipelines.push(
      h.start(ingest, { partitions: '1', 'batch-size': '200', 'batch-wait-ms': '50' }),
      h.start(vectorize, { partitions: '1', 'batch-wait-ms': '50', 'learning-period': '1ms' }),
      h.start(detect, { partitions: '1', 'checkpoint-ms': '100' }),
    );
    read(h.config.topics.rawLogsDlq, rawLetters);
    read(h.config.topics.vectorizationQueueDlq, queueLetters);
  });

  afterAll(async () => {
    stopReading.next();
    await Promise.allSettled(readers.map((r) => r.close()));
    await h?.close();
  });

  const storedOffsets = async (): Promise<number[]> => {
    const engines = await h.resources.engines();
    const rows = await (
      await engines.clickhouse.query({
        query: 'SELECT kafka_offset AS o FROM logs WHERE kafka_topic = {t:String} ORDER BY o',
        query_params: { t: h.config.topics.rawLogs },
        format: 'JSONEachRow',
      })
    ).json<{ o: string }>();
    return rows.map((r) => Number(r.o));
  };

  it('stores every record once or dead-letters it once with a reason, and keeps every pipeline running', async () => {
    const producer = kafka.producer();
    await producer.connect();
    let produced = 0;
    let runs = 0;
    const started = Date.now();
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 40 }), async (batch) => {
          runs += 1;
          const now = Date.now();
          const payloads = batch.map(asPayload);
          const [meta] = await producer.send({
            topic: h.config.topics.rawLogs,
            acks: -1,
            messages: payloads.map((value, i) => ({ key: `run${runs}:${i}`, value })),
          });
          const base = Number(meta!.baseOffset);
          expect(base).toBe(produced);
          produced += batch.length;

          await h.waitFor(
            async () => (await storedOffsets()).length + rawLetters.length >= produced,
            `all ${produced} records stored or dead-lettered`,
            60_000,
          );
          const stored = await storedOffsets();
          const lettered = rawLetters.map((l) => l.source_offset);
          // Once each, never both, nothing missing.
          expect(new Set(stored).size).toBe(stored.length);
          expect(new Set(lettered).size).toBe(lettered.length);
          expect(stored.filter((o) => lettered.includes(o))).toEqual([]);
          expect([...stored, ...lettered].sort((a, b) => a - b)).toEqual(Array.from({ length: produced }, (_, i) => i));
          for (const letter of rawLetters)
            expect(letter.error_message.length, JSON.stringify(letter)).toBeGreaterThan(0);
          // What the parser accepts, the store takes: a refusal at the sink would mean text the parser should have
          // refused.
          payloads.forEach((value, i) => {
            let accepted = false;
            try {
              parseLogEvent(
                value ?? Buffer.alloc(0),
                { topic: h.config.topics.rawLogs, partition: 0, offset: base + i },
                now,
              );
              accepted = true;
            } catch {
              // The parser's refusal is checked above: dead-lettered with a reason.
            }
            if (accepted)
              expect(
                stored,
                `record ${base + i} (${String(value)}) was accepted by the parser but not stored`,
              ).toContain(base + i);
          });

          // Every stored problem row reaches vectorize: vectorized or dead-lettered there.
          const problems = await h.count(
            "SELECT count() FROM logs WHERE kafka_topic = {t:String} AND level IN ('WARN', 'ERROR', 'FATAL')",
            { t: h.config.topics.rawLogs },
          );
          await h.waitFor(
            async () =>
              (await h.count('SELECT count() FROM logs WHERE kafka_topic = {t:String} AND is_vectorized = 1', {
                t: h.config.topics.rawLogs,
              })) +
                queueLetters.length >=
              problems,
            'vectorize to account for every problem row',
            60_000,
          );
          // detect read every record (its offsets are committed with its checkpoints).
          const detectGroup = consumerGroup(h.config, 'detect');
          await h.waitFor(
            async () =>
              (await h.resources.topics().committedOffsets(detectGroup, h.config.topics.rawLogs)).get(0) === produced,
            'detect to read every record',
            60_000,
          );
          for (const p of pipelines) expect(p.health.snapshot().phase, 'a pipeline stopped').toBe('running');
        }),
        { numRuns: 25, endOnFailure: true },
      );
    } finally {
      await producer.disconnect();
    }
    // The property ran and the path saw both outcomes: a property over nothing would pass vacuously.
    expect(runs).toBeGreaterThanOrEqual(25);
    expect((await storedOffsets()).length).toBeGreaterThan(0);
    expect(rawLetters.length).toBeGreaterThan(0);
    console.log(
      `fuzz-ingest-path: ${produced} records in ${runs} runs, ${rawLetters.length} dead-lettered, ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  }, 600_000);
});
