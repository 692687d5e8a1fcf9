import { describe, expect, it } from 'vitest';
import { AdaptiveLevels } from '../../src/domain/adaptive-level.ts';
import { AlertLifecycleState, type AlertEvent } from '../../src/domain/anomaly.ts';
import { PartitionDetector, seriesEventOf, seriesOfKey } from '../../src/domain/partition-detector.ts';
import { WindowState } from '../../src/domain/window-state.ts';

const NOW = Date.parse('2026-01-01T12:00:00Z');

function detector(restoredUpTo = 0): PartitionDetector {
  const windows = new WindowState({ sizeMs: 60_000 });
  windows.startChangelog('nothing');
  return new PartitionDetector('raw', 2, windows, new AdaptiveLevels(), new AlertLifecycleState(), restoredUpTo, true);
}

const log = (fields: Record<string, unknown>) =>
  Buffer.from(JSON.stringify({ timestamp: new Date(NOW).toISOString(), message: 'm', ...fields }));

describe('seriesEventOf and seriesOfKey', () => {
  it('counts a valid log under its series and refuses what ingest would dead-letter', () => {
    const event = seriesEventOf(log({ service: 'api', environment: 'prod', level: 'ERROR' }), NOW);
    expect(event?.time).toBe(NOW);
    expect(seriesOfKey(event!.key)).toEqual({ service: 'api', environment: 'prod', level: 'ERROR' });
    expect(seriesEventOf(Buffer.from('{'), NOW)).toBeUndefined();
    expect(() => seriesOfKey('no separators')).toThrow(/not service\/environment\/level/);
  });
});

describe('PartitionDetector', () => {
  it('saves nothing until it has read, emitted or moved its watermark', () => {
    const d = detector(40);
    expect(d.nextOffset).toBe(40);
    expect(d.takeSave([])).toBeUndefined();
    d.read(45, 5);
    const save = d.takeSave([]);
    expect(save).toMatchObject({ topic: 'raw', partition: 2, nextOffset: 45, replaceEntries: true, events: [] });
    // The next save starts from there, and only the first replaces the store's entries.
    expect(d.takeSave([])).toBeUndefined();
    const event = { type: 'opened' } as AlertEvent;
    expect(d.takeSave([event])).toMatchObject({ nextOffset: 45, replaceEntries: false, events: [event] });
  });

  it('hands out what it counted and the late events since the last call', () => {
    const d = detector();
    d.read(3, 3);
    d.read(5, 2);
    d.late(1_000, 5_000);
    d.late(2_000, 6_000);
    expect(d.takeCounted()).toBe(5);
    expect(d.takeCounted()).toBe(0);
    expect(d.takeLate()).toEqual({ count: 2, example: { time: 2_000, watermark: 6_000 } });
    expect(d.takeLate()).toBeUndefined();
  });
});
