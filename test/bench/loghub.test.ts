/** The grouping scores the normalize benchmark reports, on groupings small enough to count by hand. */
import { describe, expect, it } from 'vitest';
import { groupingScores } from '../../bench/support/loghub.ts';

describe('groupingScores', () => {
  it('is 1 for a grouping that equals the truth, whatever the keys are called', () => {
    expect(groupingScores(['x', 'x', 'y'], ['A', 'A', 'B'])).toEqual({ ga: 1, fga: 1 });
  });

  it('counts a line correct only when its predicted group is exactly its true group', () => {
    // True groups {0,1} {2} {3,4}; predicted {0,1} {2,3} {4}: only {0,1} matches.
    const { ga, fga } = groupingScores(['p', 'p', 'q', 'q', 'r'], ['A', 'A', 'B', 'C', 'C']);
    expect(ga).toBeCloseTo(2 / 5);
    // Precision 1/3 (predicted groups), recall 1/3 (true groups).
    expect(fga).toBeCloseTo(1 / 3);
  });

  it('weighs groups, not lines, in FGA: splitting a small group costs FGA more than GA', () => {
    const truth = [...Array<string>(98).fill('A'), 'B', 'B'];
    const predicted = [...Array<string>(98).fill('a'), 'b1', 'b2'];
    const { ga, fga } = groupingScores(predicted, truth);
    expect(ga).toBeCloseTo(0.98);
    // Precision 1/3, recall 1/2.
    expect(fga).toBeCloseTo((2 * (1 / 3) * (1 / 2)) / (1 / 3 + 1 / 2));
  });

  it('refuses groupings of another length', () => {
    expect(() => groupingScores(['a'], [])).toThrow(/length/);
  });
});
