import { describe, expect, it } from 'vitest';
import { LogflowError } from '../../src/core/errors.ts';
import { SparseRuns } from '../../src/domain/sparse-runs.ts';

const MINUTE = 60_000;

describe('SparseRuns', () => {
  it('gives the previous window its evidence only when the next window starts where it ended', () => {
    const runs = new SparseRuns();
    expect(runs.previous('a', MINUTE)).toBeUndefined();
    runs.record('a', MINUTE, -5);
    expect(runs.previous('a', MINUTE)).toBe(-5);
    // A window in between without evidence leaves the entry, which no longer touches the next window.
    expect(runs.previous('a', 2 * MINUTE)).toBeUndefined();
    expect(runs.previous('b', MINUTE)).toBeUndefined();
  });

  it('records only windows with evidence, and ignores a window replayed after a restore', () => {
    const runs = new SparseRuns();
    runs.record('a', MINUTE, undefined);
    expect(runs.size).toBe(0);
    runs.record('a', 2 * MINUTE, -4);
    runs.record('a', MINUTE, -9);
    runs.record('a', 2 * MINUTE, -9);
    expect(runs.snapshot()).toEqual([['a', [2 * MINUTE, -4]]]);
  });

  it('writes a changelog of the series recorded since the last take, and restores from it exactly', () => {
    const runs = new SparseRuns();
    runs.record('a', MINUTE, -4);
    runs.record('b', MINUTE, -6);
    const store = new Map(runs.takeChanges());
    expect([...store.keys()].sort()).toEqual(['a', 'b']);
    runs.record('a', 2 * MINUTE, -7);
    const changes = runs.takeChanges();
    expect([...changes.keys()]).toEqual(['a']);
    for (const [key, entry] of changes) store.set(key, entry);
    expect(runs.takeChanges().size).toBe(0);

    const restored = SparseRuns.fromEntries(JSON.parse(JSON.stringify([...store])) as [string, unknown][]);
    expect(restored.snapshot()).toEqual(runs.snapshot());
    expect(restored.previous('a', 2 * MINUTE)).toBe(-7);
    restored.startChangelog('this state');
    expect(restored.takeChanges().size).toBe(0);
    restored.startChangelog('nothing');
    expect([...restored.takeChanges().keys()].sort()).toEqual(['a', 'b']);
  });

  it('refuses a malformed entry', () => {
    expect(() => SparseRuns.fromEntries([['a', [1, 2]]])).toThrow(LogflowError);
    expect(() => SparseRuns.fromEntries([['a', { end: 1 }]])).toThrow(LogflowError);
  });
});
