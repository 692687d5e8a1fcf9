/**
 * detect's checkpoints (src/sinks/detector-checkpoints.ts) on a real PostgreSQL (PGlite): the adaptive levels are
 * saved as entries next to the window keys', only for the series that changed, and restored exactly; a checkpoint
 * written before levels existed restores its windows and starts every series at its weekly baseline.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migratePostgres } from '../../src/app/migrate.ts';
import { openPostgres } from '../../src/clients/engines.ts';
import { loadConfig } from '../../src/core/config.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createMetrics } from '../../src/core/metrics.ts';
import type { PartitionDetector } from '../../src/domain/partition-detector.ts';
import { WindowState } from '../../src/domain/window-state.ts';
import { DetectorCheckpoints, LEVEL_ENTRY_PREFIX, RUN_ENTRY_PREFIX } from '../../src/sinks/detector-checkpoints.ts';
import { createRepositories, type JsonValue, type PoolRepositories } from '../../src/stores/postgres/index.ts';

const MINUTE = 60_000;
const T0 = Date.UTC(2026, 0, 5, 9);
const windows = { sizeMs: MINUTE, keyTtlMs: 6 * 3_600_000 };
const SERIES_A = 'api\u0001prod\u0001ERROR';
const SERIES_B = 'web\u0001prod\u0001INFO';

let dir: string;
let close: () => Promise<void>;
let repositories: PoolRepositories;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-detector-checkpoints-'));
  const engine = await openPostgres(loadConfig({ LOGFLOW_DATA_DIR: dir }));
  await migratePostgres(engine.pool);
  close = engine.close;
  repositories = createRepositories(engine.pool);
});

afterAll(async () => {
  await close();
  await rm(dir, { recursive: true, force: true });
});

function checkpoints(pipeline: string): DetectorCheckpoints {
  // write() calls ClickHouse only to flag anomalous windows, and these checkpoints carry none.
  return new DetectorCheckpoints(repositories, null as unknown as ClickHouseClient, {
    pipeline,
    windows,
    metrics: createMetrics({ defaultMetrics: false }),
    logger: createLogger({ level: 'silent' }),
  });
}

const ignore = { window: () => {} };

/** Counts one event of each key at `time`, as the detect graph would. */
function count(detector: PartitionDetector, keys: readonly string[], time: number, offset: number): void {
  for (const key of keys) detector.windows.add(key, time, 0, 1, time, ignore);
  detector.read(offset, keys.length);
}

describe('DetectorCheckpoints', () => {
  it('saves the levels of the series observed since the last checkpoint, and restores them exactly', async () => {
    const tp = { topic: 'raw-logs', partition: 0 };
    const first = checkpoints('detect-levels');
    const [detector] = await first.restore([tp], {});
    expect(detector!.levels.size).toBe(0);
    count(detector!, [SERIES_A, SERIES_B], T0, 2);
    detector!.levels.observe(SERIES_A, T0 + MINUTE, 30, { mean: 10, stddev: 3 }, null);
    detector!.levels.observe(SERIES_B, T0 + MINUTE, 100, { mean: 200, stddev: 14 }, null);
    await first.write(first.capture([]));
    const entries = async () =>
      new Map(
        [...(await repositories.detectorCheckpoints.loadEntries('detect-levels', tp.topic, tp.partition))].filter(
          ([key]) => key.startsWith(LEVEL_ENTRY_PREFIX),
        ),
      );
    const saved = await entries();
    expect([...saved.keys()].sort()).toEqual([`${LEVEL_ENTRY_PREFIX}${SERIES_A}`, `${LEVEL_ENTRY_PREFIX}${SERIES_B}`]);

    // Only series A moves; B's entry is not written again.
    count(detector!, [SERIES_A], T0 + MINUTE, 3);
    detector!.levels.observe(SERIES_A, T0 + 2 * MINUTE, 40, { mean: 10, stddev: 3 }, null);
    const cp = first.capture([]);
    expect([...cp.saves[0]!.levels.keys()]).toEqual([SERIES_A]);
    await first.write(cp);
    const after = await entries();
    expect(after.get(`${LEVEL_ENTRY_PREFIX}${SERIES_B}`)).toEqual(saved.get(`${LEVEL_ENTRY_PREFIX}${SERIES_B}`));
    expect(after.get(`${LEVEL_ENTRY_PREFIX}${SERIES_A}`)).not.toEqual(saved.get(`${LEVEL_ENTRY_PREFIX}${SERIES_A}`));

    const [restored] = await checkpoints('detect-levels').restore([tp], {});
    expect(restored!.levels.snapshot()).toEqual(detector!.levels.snapshot());
    expect(restored!.windows.snapshot()).toEqual(detector!.windows.snapshot());
    for (const key of [SERIES_A, SERIES_B]) {
      const at = T0 + 3 * MINUTE;
      expect(restored!.levels.factor(key, at)).toBe(detector!.levels.factor(key, at));
    }
    expect(restored!.levels.factor(SERIES_A, T0 + 3 * MINUTE)).toBeGreaterThan(1);
    expect(restored!.nextOffset).toBe(3);
  });

  it('saves the sparse runs of the series recorded since the last checkpoint, and restores them exactly', async () => {
    const tp = { topic: 'raw-logs', partition: 2 };
    const first = checkpoints('detect-runs');
    const [detector] = await first.restore([tp], {});
    expect(detector!.runs.size).toBe(0);
    count(detector!, [SERIES_A, SERIES_B], T0, 2);
    detector!.runs.record(SERIES_A, T0 + MINUTE, -5);
    detector!.runs.record(SERIES_B, T0 + MINUTE, -6);
    await first.write(first.capture([]));
    count(detector!, [SERIES_A], T0 + MINUTE, 3);
    detector!.runs.record(SERIES_A, T0 + 2 * MINUTE, -7);
    const cp = first.capture([]);
    expect([...cp.saves[0]!.runs.keys()]).toEqual([SERIES_A]);
    await first.write(cp);
    const entries = await repositories.detectorCheckpoints.loadEntries('detect-runs', tp.topic, tp.partition);
    expect(new Map([...entries].filter(([key]) => key.startsWith(RUN_ENTRY_PREFIX)))).toEqual(
      new Map([
        [`${RUN_ENTRY_PREFIX}${SERIES_A}`, [T0 + 2 * MINUTE, -7]],
        [`${RUN_ENTRY_PREFIX}${SERIES_B}`, [T0 + MINUTE, -6]],
      ]),
    );

    const [restored] = await checkpoints('detect-runs').restore([tp], {});
    expect(restored!.runs.snapshot()).toEqual(detector!.runs.snapshot());
    expect(restored!.runs.previous(SERIES_A, T0 + 2 * MINUTE)).toBe(-7);
    expect(restored!.windows.snapshot()).toEqual(detector!.windows.snapshot());
    expect(restored!.levels.size).toBe(0);
  });

  it('restores a checkpoint written before levels were kept: its windows, and every series at its weekly baseline', async () => {
    const tp = { topic: 'raw-logs', partition: 1 };
    const old = new WindowState(windows);
    old.startChangelog('nothing');
    old.add(SERIES_A, T0, 0, 1, T0, ignore);
    const changes = old.takeChanges();
    // What the detector wrote before this change: the header, the lifecycle and the window keys' entries only.
    await repositories.detectorCheckpoints.saveChanges(
      {
        pipeline: 'detect-old',
        ...tp,
        nextOffset: 7,
        state: {
          format: 2,
          windows: changes.header,
          lifecycle: { version: 1, highWatermark: null, alerts: [] },
        } as unknown as JsonValue,
      },
      { replaceAll: true, removed: [], upserts: changes.upserts as ReadonlyMap<string, JsonValue> },
    );
    const [restored] = await checkpoints('detect-old').restore([tp], {});
    expect(restored!.nextOffset).toBe(7);
    expect(restored!.windows.snapshot()).toEqual(old.snapshot());
    expect(restored!.levels.size).toBe(0);
    expect(restored!.levels.factor(SERIES_A, T0 + MINUTE)).toBe(1);
    expect(restored!.runs.size).toBe(0);
  });
});
