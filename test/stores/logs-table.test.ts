import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toClickHouseDateTime } from '../../src/stores/logs-table.ts';

const viaIso = (ms: number) => {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}`;
};

describe('toClickHouseDateTime', () => {
  it('formats like the ISO text, whatever second was formatted before', () => {
    expect(toClickHouseDateTime(Date.UTC(2026, 10, 27, 9, 5, 7, 42))).toBe('2026-11-27 09:05:07.042');
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.integer({ min: 1.7e12, max: 1.7e12 + 5_000 }),
            fc.integer({ min: -8.64e15, max: 8.64e15 }),
            fc.double({ min: -1e13, max: 1e13, noNaN: true }),
          ),
          { maxLength: 20 },
        ),
        (times) => {
          for (const ms of times) expect(toClickHouseDateTime(ms)).toBe(viaIso(ms));
        },
      ),
      { numRuns: 2_000 },
    );
  });
});
