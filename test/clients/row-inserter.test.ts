import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeRows } from '../../src/clients/row-inserter.ts';

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

  it('gives an empty body for no rows', () => {
    expect(encodeRows([]).length).toBe(0);
  });
});
