import { from } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { reportLate } from '../../src/operators/reportLate.ts';
import type { LateEvent, WindowOutput } from '../../src/operators/windowByEventTime.ts';

const window = (start: number, count: number): WindowOutput<number> => ({
  kind: 'window',
  key: 'k',
  start,
  end: start + 10,
  count,
});

describe('reportLate', () => {
  it('passes closed windows on in their frames, hands late events to onLate and drops watermark marks', () => {
    const late: Array<LateEvent<number>> = [];
    new TestScheduler((actual, expected) => expect(actual).toEqual(expected)).run(({ cold, expectObservable }) => {
      const outputs = cold<WindowOutput<number>>('a-l-w-b|', {
        a: window(0, 2),
        l: { kind: 'late', event: 3, watermark: 15 },
        w: { kind: 'watermark', watermark: 20 },
        b: window(10, 0),
      });
      expectObservable(outputs.pipe(reportLate((event) => late.push(event)))).toBe('a-----b|', {
        a: window(0, 2),
        b: window(10, 0),
      });
    });
    expect(late).toEqual([{ kind: 'late', event: 3, watermark: 15 }]);
  });

  it('reports each late event once, in order', () => {
    const late: number[] = [];
    const outputs: Array<WindowOutput<number>> = [
      { kind: 'late', event: 1, watermark: 5 },
      window(0, 1),
      { kind: 'late', event: 2, watermark: 5 },
    ];
    from(outputs)
      .pipe(reportLate((event) => late.push(event.event)))
      .subscribe();
    expect(late).toEqual([1, 2]);
  });
});
