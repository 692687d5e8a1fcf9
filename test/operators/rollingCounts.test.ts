import fc from 'fast-check';
import { from } from 'rxjs';
import type { Observable } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/core/errors.ts';
import { rollingCounts } from '../../src/operators/rollingCounts.ts';
import type { ClosedPane, RollingCount } from '../../src/operators/rollingCounts.ts';

const MINUTE = 60_000;
const pane = (key: string, minute: number, count: number): ClosedPane => ({
  key,
  start: minute * MINUTE,
  end: (minute + 1) * MINUTE,
  count,
});

function collectSync<T>(observable: Observable<T>): { values: T[]; error: unknown } {
  const result = { values: [] as T[], error: undefined as unknown };
  observable.subscribe({
    next: (value) => result.values.push(value),
    error: (error: unknown) => (result.error = error),
  });
  return result;
}

describe('rollingCounts', () => {
  it('sums the last N panes per key for every span, this pane included', () => {
    const input = [pane('a', 0, 1), pane('a', 1, 2), pane('b', 1, 10), pane('a', 2, 3), pane('a', 3, 4)];
    const { values } = collectSync(from(input).pipe(rollingCounts({ spans: { '2m': 2, '3m': 3 } })));
    expect(values.map((v) => [v.key, v.start / MINUTE, v.count, v.sums])).toEqual([
      ['a', 0, 1, { '2m': 1, '3m': 1 }],
      ['a', 1, 2, { '2m': 3, '3m': 3 }],
      ['b', 1, 10, { '2m': 10, '3m': 10 }],
      ['a', 2, 3, { '2m': 5, '3m': 6 }],
      ['a', 3, 4, { '2m': 7, '3m': 9 }],
    ]);
  });

  it('counts missing panes as zero, and forgets everything older than the longest span', () => {
    const input = [pane('a', 0, 5), pane('a', 1, 5), pane('a', 3, 1), pane('a', 10, 2)];
    const { values } = collectSync(from(input).pipe(rollingCounts({ spans: { '3m': 3 } })));
    expect(values.map((v) => v.sums['3m'])).toEqual([5, 10, 6, 2]);
  });

  it('gives a key that reappears after being forgotten the same sums it would have had', () => {
    const input = [pane('a', 0, 7), pane('b', 1, 1), pane('b', 5, 1), pane('a', 6, 3)];
    const { values } = collectSync(from(input).pipe(rollingCounts({ spans: { '5m': 5 } })));
    expect(values.map((v) => [v.key, v.sums['5m']])).toEqual([
      ['a', 7],
      ['b', 1],
      ['b', 2],
      ['a', 3],
    ]);
  });

  it('rejects panes out of order per key and panes of the wrong length', () => {
    const backwards = collectSync(from([pane('a', 2, 1), pane('a', 1, 1)]).pipe(rollingCounts({ spans: { '5m': 5 } })));
    expect(backwards.error).toBeInstanceOf(InputError);
    expect(backwards.values).toHaveLength(1);
    const repeated = collectSync(from([pane('a', 2, 1), pane('a', 2, 1)]).pipe(rollingCounts({ spans: { '5m': 5 } })));
    expect(repeated.error).toBeInstanceOf(InputError);
    const wrongLength = collectSync(
      from([{ key: 'a', start: 0, end: 30_000, count: 1 }]).pipe(rollingCounts({ spans: { '5m': 5 } })),
    );
    expect(wrongLength.error).toBeInstanceOf(InputError);
  });

  it('validates its options when built', () => {
    expect(() => rollingCounts({ spans: {} })).toThrow(RangeError);
    expect(() => rollingCounts({ spans: { '5m': 0 } })).toThrow(RangeError);
    expect(() => rollingCounts({ spans: { '5m': 5 }, paneMs: -1 })).toThrow(RangeError);
  });

  it('keeps state per subscription', () => {
    const operator = rollingCounts({ spans: { '2m': 2 } });
    const source = from([pane('a', 0, 1), pane('a', 1, 1)]);
    expect(collectSync(source.pipe(operator)).values).toEqual(collectSync(source.pipe(operator)).values);
  });

  it('matches a brute-force sum over the input (property)', () => {
    const paneMs = 10;
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            key: fc.constantFrom('a', 'b', 'c'),
            advance: fc.integer({ min: 0, max: 4 }),
            count: fc.integer({ min: 0, max: 9 }),
          }),
          { maxLength: 80 },
        ),
        fc.uniqueArray(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 3 }),
        fc.integer({ min: -20, max: 20 }),
        (steps, spanLengths, firstPane) => {
          // Non-decreasing pane index overall, as windowByEventTime emits them; one result per key and pane.
          let index = firstPane;
          const seen = new Set<string>();
          const input: ClosedPane[] = [];
          for (const step of steps) {
            index += step.advance;
            if (seen.has(`${step.key}@${index}`)) continue;
            seen.add(`${step.key}@${index}`);
            input.push({ key: step.key, start: index * paneMs, end: (index + 1) * paneMs, count: step.count });
          }
          const spans = Object.fromEntries(spanLengths.map((n) => [`${n}p`, n]));
          const { values, error } = collectSync(from(input).pipe(rollingCounts({ spans, paneMs })));
          expect(error).toBeUndefined();
          const expected = input.map((p, i): RollingCount => {
            const sums: Record<string, number> = {};
            for (const n of spanLengths) {
              sums[`${n}p`] = input
                .slice(0, i + 1)
                .filter((q) => q.key === p.key && q.start > p.start - n * paneMs)
                .reduce((total, q) => total + q.count, 0);
            }
            return { ...p, sums };
          });
          expect(values).toEqual(expected);
        },
      ),
      { numRuns: 300 },
    );
  });
});
