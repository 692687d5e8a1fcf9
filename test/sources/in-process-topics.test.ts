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
    await topics.producer().send(
      't',
      Array.from({ length: 25_000 }, (_, i) => ({ key: null, value: String(i) })),
    );
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

describe('InProcessTopics storage', () => {
  it('delivers every record of many sends with its key, value, headers and timestamp, in offset order', async () => {
    const topics = new InProcessTopics({ defaultPartitions: 3, baseOffset: 0, now: () => 1_000 });
    const sent: Array<{ key: string | null; value: string }> = [];
    for (let send = 0; send < 40; send++) {
      const messages = Array.from({ length: 1 + (send % 7) * 50 }, (_, i) => {
        const key = i % 5 === 0 ? null : `k${(send * 31 + i) % 9}`;
        // Multi-byte text too: record boundaries are byte offsets.
        return {
          key,
          value: i % 3 === 0 ? `☃ ${send}/${i}` : Buffer.from(`${send}/${i}`),
          ...(i % 4 === 0 ? { headers: { h: `${i}` } } : {}),
          ...(i % 6 === 0 ? { timestamp: 5 } : {}),
        };
      });
      await topics.producer().send('t', messages);
      sent.push(...messages.map((m) => ({ key: m.key, value: m.value.toString() })));
    }
    const sub = topics.subscribe({ groupId: 'g', topics: ['t'], stop$: new Subject<void>() });
    const records = await firstValueFrom(sub.records$.pipe(take(sent.length), toArray()));
    records.forEach((r) => r.ack());
    await sub.close();
    expect(records.map((r) => r.value.value.toString()).sort()).toEqual(sent.map((m) => m.value).sort());
    const byPartition = new Map<number, number[]>();
    for (const r of records) {
      const [send, i] = r.value.value.toString().replace('☃ ', '').split('/').map(Number) as [number, number];
      expect(r.value.headers).toEqual(i % 4 === 0 ? { h: `${i}` } : {});
      expect(r.value.timestamp).toBe(i % 6 === 0 ? 5 : 1_000);
      expect(r.key).toBe(i % 5 === 0 ? null : `k${(send * 31 + i) % 9}`);
      byPartition.set(r.origin.partition, [...(byPartition.get(r.origin.partition) ?? []), r.origin.offset]);
    }
    for (const offsets of byPartition.values()) expect(offsets).toEqual(offsets.map((_, i) => i));
    // One key, one partition.
    const partitionOfKey = new Map<string, number>();
    for (const r of records) {
      if (r.key === null) continue;
      expect(partitionOfKey.get(r.key) ?? r.origin.partition).toBe(r.origin.partition);
      partitionOfKey.set(r.key, r.origin.partition);
    }
  });

  it('drops exactly what exceeds maxRetainedPerPartition, oldest first', async () => {
    const topics = new InProcessTopics({ defaultPartitions: 1, baseOffset: 0, maxRetainedPerPartition: 250 });
    for (let send = 0; send < 10; send++) {
      await topics.producer().send(
        't',
        Array.from({ length: 70 }, (_, i) => ({ key: null, value: String(send * 70 + i) })),
      );
    }
    expect(topics.droppedByRetention).toBe(700 - 250);
    const sub = topics.subscribe({ groupId: 'g', topics: ['t'], stop$: new Subject<void>() });
    const records = await firstValueFrom(sub.records$.pipe(take(250), toArray()));
    records.forEach((r) => r.ack());
    await sub.close();
    expect(records.map((r) => Number(r.value.value.toString()))).toEqual(
      Array.from({ length: 250 }, (_, i) => 450 + i),
    );
    expect(records[0]!.origin.offset).toBe(450);
  });
});

describe('InProcessTopics lag', () => {
  it('reports end minus committed offset per partition on each commit', async () => {
    const topics = new InProcessTopics({ defaultPartitions: 1, baseOffset: 0 });
    await topics.producer().send(
      't',
      Array.from({ length: 100 }, (_, i) => ({ key: null, value: String(i) })),
    );
    const lags: number[] = [];
    const sub = topics.subscribe({
      groupId: 'g',
      topics: ['t'],
      stop$: new Subject<void>(),
      onLag: (_t, _p, lag) => lags.push(lag),
    });
    const records = await firstValueFrom(sub.records$.pipe(take(100), toArray()));
    await sub.commit();
    records.slice(0, 40).forEach((r) => r.ack());
    await sub.commit();
    records.slice(40).forEach((r) => r.ack());
    await sub.close();
    expect(lags[0]).toBe(100);
    expect(lags).toContain(60);
    expect(lags.at(-1)).toBe(0);
  });
});

describe('InProcessTopics backlog', () => {
  it('is what the slowest group now reading has not committed, on its most behind partition, and 0 with no reader', async () => {
    const topics = new InProcessTopics({ defaultPartitions: 2, baseOffset: 0 });
    await topics.producer().send(
      't',
      Array.from({ length: 100 }, (_, i) => ({ key: `k${i % 2}`, value: String(i) })),
    );
    const perPartition = [...(await topics.endOffsets('t')).values()];
    expect(topics.backlog('t')).toBe(0);
    expect(topics.backlog('unknown')).toBe(0);

    const fast = topics.subscribe({ groupId: 'fast', topics: ['t'], stop$: new Subject<void>() });
    const slow = topics.subscribe({ groupId: 'slow', topics: ['t'], stop$: new Subject<void>() });
    const fastRecords = await firstValueFrom(fast.records$.pipe(take(100), toArray()));
    const slowRecords = await firstValueFrom(slow.records$.pipe(take(100), toArray()));
    fastRecords.forEach((r) => r.ack());
    await fast.commit();
    expect(topics.backlog('t')).toBe(Math.max(...perPartition));

    // The slow group commits all of one partition and 10 of the other: the other decides.
    const [p0, p1] = [
      slowRecords.filter((r) => r.origin.partition === 0),
      slowRecords.filter((r) => r.origin.partition === 1),
    ];
    p0.forEach((r) => r.ack());
    p1.slice(0, 10).forEach((r) => r.ack());
    await slow.commit();
    expect(topics.backlog('t')).toBe(p1.length - 10);

    // A group that has left holds retention but no longer holds producers back.
    await slow.close();
    expect(topics.backlog('t')).toBe(0);
    await fast.close();
  });
});
