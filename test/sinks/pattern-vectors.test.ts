/**
 * The novelty check of vectorize's sink while known patterns are being
 * re-embedded (src/sinks/pattern-reembed.ts): on chdb and PGlite, with the
 * hashing embedder. A pattern seen for the first time is judged against the
 * collection as the re-embedding leaves it, not as it was half-way.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalEmbedder } from '../../src/clients/embeddings.ts';
import { openEngines, type Engines } from '../../src/clients/engines.ts';
import { loadConfig } from '../../src/core/config.ts';
import { createChunk } from '../../src/core/chunk.ts';
import { migrateAll } from '../../src/app/migrate.ts';
import { parseQueuedRequest, PatternBatch } from '../../src/sinks/pattern-batch.ts';
import { PatternVectorSink } from '../../src/sinks/pattern-vectors.ts';
import type { ConsumedRecord } from '../../src/sources/topics.ts';
import { ClickHouseVectorStore } from '../../src/stores/clickhouse-vector.ts';
import { ErrorPatternStore } from '../../src/stores/error-patterns.ts';
import { createRepositories } from '../../src/stores/postgres/index.ts';

const TEMPLATE = 'payment gateway timed out after <*> ms for order <*>';
const SEEN = Date.UTC(2026, 11, 1, 12);

function queued(errorHash: string): ConsumedRecord {
  const request = {
    log_id: '00000000-0000-4000-8000-000000000001',
    error_hash: errorHash,
    template: TEMPLATE,
    message: 'payment gateway timed out after 3000 ms for order 17',
    service: 'checkout',
    environment: 'production',
    level: 'ERROR',
    timestamp: SEEN,
  };
  return {
    topic: 'q',
    partition: 0,
    offset: 0,
    key: errorHash,
    value: Buffer.from(JSON.stringify(request)),
    timestamp: SEEN,
    headers: {},
  };
}

describe('PatternVectorSink while known patterns are re-embedded', () => {
  let work = '';
  let engines: Engines;
  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'logflow-pattern-vectors-'));
    engines = await openEngines(loadConfig({ LOGFLOW_DATA_DIR: work }), { createDatabases: true });
    await migrateAll(engines);
  });
  afterAll(async () => {
    await engines?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('judges a first-seen pattern once the re-embedding ended, so a known neighbour it wrote counts', async () => {
    const embedder = createLocalEmbedder();
    const store = new ClickHouseVectorStore({ client: engines.clickhouse, table: 'gated_vectors' });
    const repositories = createRepositories(engines.postgres);
    let finishWalk: () => void = () => undefined;
    const walked = new Promise<void>((resolve) => (finishWalk = resolve));
    // Resolves when the sink waits for the walk: the neighbour is written only then, so a sink that judged without
    // waiting would have searched an empty collection.
    let sinkWaits: () => void = () => undefined;
    const waiting = new Promise<void>((resolve) => (sinkWaits = resolve));
    const complete: PromiseLike<void> = {
      then: (onDone, onFailed) => {
        sinkWaits();
        return walked.then(onDone, onFailed);
      },
    };
    const sink = new PatternVectorSink(new ErrorPatternStore(engines.clickhouse), store, repositories, {
      model: embedder.model,
      complete,
      noveltyThreshold: 0.85,
      learningPeriodMs: 0,
      notifications: { defaultUrl: null, dashboardUrl: null },
    });
    const batch = PatternBatch.of([
      createChunk(
        { topic: 'q', partition: 0, firstOffset: 0, lastOffset: 0, records: [queued('2')].map(parseQueuedRequest) },
        { onAck: () => undefined, onFail: () => undefined },
      ),
    ]);
    const [vector] = await embedder.embed([TEMPLATE]);
    const [pattern] = batch.pending();
    pattern!.vector = vector!;
    await sink.lookUp(batch);

    const judging = sink.checkNovelty(pattern!, batch);
    await Promise.race([waiting, judging]);
    // The walk writes a known pattern with the same template (another hash: another service's variant), then ends.
    await store.upsert([
      {
        errorHash: '1',
        vector: [...vector!],
        payload: {
          error_hash: '1',
          template: TEMPLATE,
          service: 'billing',
          level: 'ERROR',
          first_seen: new Date(SEEN - 86_400_000).toISOString(),
          model: embedder.model,
        },
      },
    ]);
    finishWalk();
    await judging;
    expect((await repositories.anomalyAlerts.list({ type: 'novel_pattern', limit: 10 })).items).toEqual([]);

    // The same check for a pattern with no neighbour at all does raise the alert: the check itself ran.
    const lone = PatternBatch.of([
      createChunk(
        { topic: 'q', partition: 0, firstOffset: 1, lastOffset: 1, records: [queued('3')].map(parseQueuedRequest) },
        { onAck: () => undefined, onFail: () => undefined },
      ),
    ]);
    const [far] = await embedder.embed(['disk quota exceeded on volume <*>']);
    lone.pending()[0]!.vector = far!;
    await sink.lookUp(lone);
    await sink.checkNovelty(lone.pending()[0]!, lone);
    const alerts = (await repositories.anomalyAlerts.list({ type: 'novel_pattern', limit: 10 })).items;
    expect(alerts.map((a) => a.errorHash)).toEqual(['3']);
  });
});
