import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { abbreviate, mayHoldUnstorableEscapes, textProblem, truncateText } from '../../src/core/text.ts';

describe('truncateText', () => {
  it('never leaves half a surrogate pair at the cut, and never exceeds the limit', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 60 }), fc.nat(200), (value, max) => {
        const cut = truncateText(value, max);
        expect(cut.length).toBeLessThanOrEqual(Math.max(max, 0));
        expect(value.startsWith(cut)).toBe(true);
        expect(cut.isWellFormed()).toBe(true);
        // At most the pair's first half is given up.
        expect(cut.length).toBeGreaterThanOrEqual(Math.min(value.length, max) - 1);
      }),
      { numRuns: 1_000 },
    );
  });

  it('cuts before an emoji that straddles the limit', () => {
    const text = `${'a'.repeat(999)}😀tail`;
    expect(text.slice(0, 1000).isWellFormed()).toBe(false);
    expect(truncateText(text, 1000)).toBe('a'.repeat(999));
    expect(abbreviate(text, 1000)).toBe(`${'a'.repeat(999)}…`);
    expect(abbreviate('short', 1000)).toBe('short');
  });
});

describe('textProblem', () => {
  it('names NUL and lone surrogates and accepts everything else', () => {
    expect(textProblem('a\u0000b')).toBe('contains NUL characters');
    expect(textProblem('a\ud800b')).toMatch(/lone UTF-16 surrogate/);
    expect(textProblem('\udc00')).toMatch(/lone UTF-16 surrogate/);
    expect(textProblem('pair 😀 ok ı İ ß')).toBeUndefined();
  });

  it('is undefined exactly when the text survives a UTF-8 round trip without NUL', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 20 }),
        (value) => {
          const roundTrips = Buffer.from(value, 'utf8').toString('utf8') === value && !value.includes('\u0000');
          expect(textProblem(value) === undefined).toBe(roundTrips);
        },
      ),
      { numRuns: 2_000 },
    );
  });
});

describe('mayHoldUnstorableEscapes', () => {
  it('is true for every JSON text whose parsed strings hold NUL or a lone surrogate', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 20 }),
        (value) => {
          const json = JSON.stringify({ message: value });
          if (textProblem(value) !== undefined) expect(mayHoldUnstorableEscapes(json)).toBe(true);
        },
      ),
      { numRuns: 2_000 },
    );
  });
});
