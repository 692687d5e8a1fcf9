import { map, merge, of, scan, Subject, type Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { branchPerPartition, type PartitionChange } from '../../src/operators/branchPerPartition.ts';

interface Item {
  readonly partition: number;
  readonly n: number;
}

function newTestScheduler(): TestScheduler {
  return new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
}

const item = (partition: number, n: number): Item => ({ partition, n });
const assigned = (partition: number, state: string): PartitionChange<string> => ({ partition, state });
const revoked = (partition: number): PartitionChange<string> => ({ partition, state: undefined });

/** A branch that tags what it sees with its state and keeps a running sum, to show which state saw which item. */
const tagged = (state: string) => (items$: Observable<Item>) =>
  items$.pipe(
    scan((sum, i) => sum + i.n, 0),
    map((sum) => `${state}:${sum}`),
  );

describe('branchPerPartition', () => {
  it('passes every item on, then runs it through the branch of its partition while assigned', () => {
    newTestScheduler().run(({ cold, hot, expectObservable }) => {
      const changes = hot<PartitionChange<string>>('a-b-----------r', {
        a: assigned(0, 'x'),
        b: assigned(1, 'y'),
        r: revoked(0),
      });
      const items = cold<Item>('--c----d----e----f----g-----|', {
        c: item(0, 1),
        d: item(1, 10),
        e: item(0, 2),
        f: item(0, 4),
        g: item(1, 20),
      });
      expectObservable(items.pipe(branchPerPartition(changes, tagged))).toBe('--(cC)-(dD)-(eE)-f----(gG)--|', {
        c: item(0, 1),
        C: 'x:1',
        d: item(1, 10),
        D: 'y:10',
        e: item(0, 2),
        E: 'x:3',
        f: item(0, 4),
        g: item(1, 20),
        G: 'y:30',
      });
    });
  });

  it('starts a new branch, on the new state, when a partition is assigned again', () => {
    newTestScheduler().run(({ cold, hot, expectObservable }) => {
      const changes = hot<PartitionChange<string>>('a---b----', { a: assigned(0, 'old'), b: assigned(0, 'new') });
      const items = cold<Item>('--c------d----|', { c: item(0, 1), d: item(0, 2) });
      expectObservable(items.pipe(branchPerPartition(changes, tagged))).toBe('--(cC)---(dD)-|', {
        c: item(0, 1),
        C: 'old:1',
        d: item(0, 2),
        D: 'new:2',
      });
    });
  });

  it('subscribes a branch at its assignment, before any item, and ends it with the input', () => {
    newTestScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const changes = hot<PartitionChange<string>>('-a------', { a: assigned(3, 's') });
      const timer = cold<string>('--t|', { t: 'tick' });
      const items = cold<Item>('------|');
      // The branch emits on a timer of its own, whether or not its partition sends anything.
      const out = items.pipe(branchPerPartition(changes, () => (items$) => merge(timer, items$)));
      expectObservable(out).toBe('---t--|', { t: 'tick' });
      expectSubscriptions(timer.subscriptions).toBe('-^--!');
    });
  });

  it('forwards an error of the input', () => {
    newTestScheduler().run(({ cold, hot, expectObservable }) => {
      const changes = hot<PartitionChange<string>>('a---', { a: assigned(0, 'x') });
      const items = cold<Item>('-c----#', { c: item(0, 1) });
      expectObservable(items.pipe(branchPerPartition(changes, tagged))).toBe('-(cC)-#', {
        c: item(0, 1),
        C: 'x:1',
      });
    });
  });

  it('sees only the changes from its subscription on', () => {
    const changes = new Subject<PartitionChange<string>>();
    changes.next(assigned(0, 'early'));
    const out: unknown[] = [];
    of(item(0, 5))
      .pipe(branchPerPartition(changes, tagged))
      .subscribe((value) => out.push(value));
    expect(out).toEqual([item(0, 5)]);
  });
});
