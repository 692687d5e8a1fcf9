import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeRows, packRows } from '../../src/clients/row-inserter.ts';

describe('encodeRows', () => {
  it('gives each row followed by a newline, whether rows come as strings, as bytes or mixed', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.boolean()), { maxLength: 300 }),
        (rows) => {
          const given = rows.map(([text, asBytes]) =>
            asBytes ? Buffer.from(JSON.stringify([text])) : JSON.stringify([text]),
          );
          const expected = rows.map(([text]) => `${JSON.stringify([text])}\n`).join('');
          expect(encodeRows(given).toString('utf8')).toBe(expected);
        },
      ),
    );
  });

  it('gives the same body for packed rows in any order and selection, alone or among other rows', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: 'grapheme', maxLength: 40 }), { maxLength: 200 }),
        fc.array(fc.nat(), { maxLength: 300 }),
        fc.array(fc.string({ unit: 'binary', maxLength: 20 }), { maxLength: 5 }),
        (texts, picks, others) => {
          const rows = texts.map((text) => JSON.stringify([text]));
          const packed = packRows(rows);
          expect(packed.map((view) => view.toString('utf8'))).toEqual(rows);
          // A selection with repeats, gaps and reversals, and unpacked rows between packed ones.
          const chosen = texts.length === 0 ? [] : picks.map((pick) => pick % texts.length);
          const given: Array<string | Buffer> = chosen.map((i) => packed[i]!);
          const expected = chosen.map((i) => rows[i]!);
          for (const [n, other] of others.entries()) {
            const at = given.length === 0 ? 0 : (n * 7) % given.length;
            const row = JSON.stringify([other]);
            given.splice(at, 0, n % 2 === 0 ? row : Buffer.from(row));
            expected.splice(at, 0, row);
          }
          expect(encodeRows(given).toString('utf8')).toBe(expected.map((row) => `${row}\n`).join(''));
        },
      ),
    );
  });

  it('packs rows that hold characters of 2, 3 and 4 bytes, however many', () => {
    const rows = Array.from({ length: 500 }, (_, i) => JSON.stringify([`é€😀 ${i}`.repeat(i % 7)]));
    const packed = packRows(rows);
    expect(packed.map((view) => view.toString('utf8'))).toEqual(rows);
    expect(encodeRows(packed).toString('utf8')).toBe(rows.map((row) => `${row}\n`).join(''));
  });

  it('gives an empty body for no rows', () => {
    expect(encodeRows([]).length).toBe(0);
  });
});
