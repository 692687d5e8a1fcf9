import { map } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { throughItems } from '../../src/operators/throughItems.ts';

function newTestScheduler(): TestScheduler {
  return new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
}

describe('throughItems', () => {
  it('runs each batch through an item operator made for it, and emits the batch once its items came out', () => {
    const scheduler = newTestScheduler();
    scheduler.run(({ cold, expectObservable, flush }) => {
      const seen: string[] = [];
      const batches = { x: { name: 'x', items: [1, 2] }, y: { name: 'y', items: [] as number[] } };
      const out = cold('x-y|', batches).pipe(
        throughItems(
          (b) => b.items,
          (b) => map((n: number) => seen.push(`${b.name}${n}`)),
        ),
      );
      expectObservable(out).toBe('x-y|', batches);
      flush();
      expect(seen).toEqual(['x1', 'x2']);
    });
  });
});
