import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Changelog } from '../../src/domain/changelog.ts';

interface Item {
  readonly key: string;
  value: number;
  dirty: boolean;
}

function setup(keys: readonly string[]) {
  const items = new Map(keys.map((key) => [key, { key, value: 0, dirty: false } satisfies Item]));
  const changelog = new Changelog<Item, number>(
    () => items.values(),
    (item) => item.value,
  );
  return { items, changelog };
}

describe('Changelog', () => {
  it('takes each item marked since the last take once, with its entry as of the take', () => {
    const { items, changelog } = setup(['a', 'b', 'c']);
    const a = items.get('a')!;
    a.value = 1;
    changelog.mark(a);
    a.value = 2;
    changelog.mark(a);
    expect([...changelog.take()]).toEqual([['a', 2]]);
    expect(changelog.take().size).toBe(0);
  });

  it('starts against an empty store with every item, against a store holding this state with none', () => {
    const { items, changelog } = setup(['a', 'b']);
    changelog.mark(items.get('a')!);
    changelog.start('nothing');
    expect([...changelog.take().keys()].sort()).toEqual(['a', 'b']);
    changelog.mark(items.get('b')!);
    changelog.start('this state');
    expect(changelog.take().size).toBe(0);
    changelog.mark(items.get('b')!);
    expect([...changelog.take().keys()]).toEqual(['b']);
  });

  it('lists every entry sorted by key, whatever was marked', () => {
    const { items, changelog } = setup(['b', 'c', 'a']);
    items.get('c')!.value = 3;
    expect(changelog.entries()).toEqual([
      ['a', 0],
      ['b', 0],
      ['c', 3],
    ]);
  });

  it('a store fed every take holds exactly the items (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.tuple(fc.constant('set'), fc.integer({ min: 0, max: 4 }), fc.integer()),
            fc.constant(['take'] as const),
          ),
          {
            maxLength: 60,
          },
        ),
        (steps) => {
          const { items, changelog } = setup(['k0', 'k1', 'k2', 'k3', 'k4']);
          const store = new Map<string, number>();
          changelog.start('nothing');
          for (const step of steps) {
            if (step[0] === 'take') for (const [key, value] of changelog.take()) store.set(key, value);
            else {
              const item = items.get(`k${step[1]}`)!;
              item.value = step[2];
              changelog.mark(item);
            }
          }
          for (const [key, value] of changelog.take()) store.set(key, value);
          expect(store).toEqual(new Map([...items.values()].map((item) => [item.key, item.value])));
        },
      ),
    );
  });
});
