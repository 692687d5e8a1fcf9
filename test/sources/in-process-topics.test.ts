import { firstValueFrom, Subject, take, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { InProcessTopics } from '../../src/sources/in-process-topics.ts';
import { topicsContract } from './topics.contract.ts';

// Offsets from 0, like a fresh Kafka topic, so the contract's offset arithmetic holds for both.
topicsContract('in-process', () => new InProcessTopics({ baseOffset: 0 }));

describe('InProcessTopics offsets across runs', () => {
  it('start each run above every earlier run, so persisted ledgers and checkpoints never match new records', async () => {
    const first = new InProcessTopics({ defaultPartitions: 1 });
    await first.producer().send('t', [{ key: null, value: 'a' }]);
    const firstEnd = (await first.endOffsets('t')).get(0)!;
    await new Promise((r) => setTimeout(r, 2));
    const second = new InProcessTopics({ defaultPartitions: 1 });
    await second.ensureTopic('t', 1);
    const secondStart = (await second.endOffsets('t')).get(0)!;
    expect(secondStart).toBeGreaterThan(firstEnd);
    expect(Number.isSafeInteger(secondStart)).toBe(true);
  });
});

describe('InProcessTopics retention', () => {
  it('drops what every group has committed past, and keeps what a slower group still needs', async () => {
    const topics = new InProcessTopics({ defaultPartitions: 1 });
    await topics.producer().send('t', Array.from({ length: 25_000 }, (_, i) => ({ key: null, value: String(i) })));
    const read = async (groupId: string, n: number) => {
      const sub = topics.subscribe({ groupId, topics: ['t'], stop$: new Subject<void>() });
      const records = await firstValueFrom(sub.records$.pipe(take(n), toArray()));
      records.forEach((r) => r.ack());
      await sub.close();
    };
    await read('slow', 5_000);
    await read('fast', 25_000);
    // The slow group resumes exactly where it committed although the fast one is done.
    const sub = topics.subscribe({ groupId: 'slow', topics: ['t'], stop$: new Subject<void>() });
    const [next] = await firstValueFrom(sub.records$.pipe(take(1), toArray()));
    expect(next?.value.value.toString()).toBe('5000');
    await sub.close();
  });

  it('rejects a second member of the same group in one process', async () => {
    const topics = new InProcessTopics();
    await topics.ensureTopic('t', 2);
    const a = topics.subscribe({ groupId: 'g', topics: ['t'], stop$: new Subject<void>() });
    const sa = a.records$.subscribe();
    const b = topics.subscribe({ groupId: 'g', topics: ['t'], stop$: new Subject<void>() });
    await expect(firstValueFrom(b.records$)).rejects.toThrow(/already has a member/);
    sa.unsubscribe();
    await a.close();
  });
});
