import { firstValueFrom, from, lastValueFrom, Subject, take, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { createChunk } from '../../src/core/chunk.ts';
import { topicSink } from '../../src/sinks/topic-sink.ts';
import { InProcessTopics } from '../../src/sources/in-process-topics.ts';

describe('topicSink', () => {
  it("publishes the records' messages, skipping those without one, before passing each chunk on unacked", async () => {
    const topics = new InProcessTopics({ defaultPartitions: 1, baseOffset: 0 });
    await topics.ensureTopic('queue', 1);
    const settled: string[] = [];
    const chunk = (first: number, records: number[]) =>
      createChunk(
        { topic: 'raw', partition: 0, firstOffset: first, lastOffset: first + records.length - 1, records },
        { onAck: () => settled.push(`ack ${first}`), onFail: () => settled.push(`fail ${first}`) },
      );
    let sent = 0;
    const passed = await lastValueFrom(
      from([chunk(0, [1, 2, 3]), chunk(3, [5]), chunk(4, [6, 8])]).pipe(
        topicSink<number>({
          producer: topics.producer(),
          topic: 'queue',
          messageOf: (n) => (n % 2 === 0 ? { key: `k${n}`, value: String(n) } : undefined),
          onSent: (count) => (sent += count),
        }),
        toArray(),
      ),
    );
    expect(passed.map((c) => c.firstOffset)).toEqual([0, 3, 4]);
    expect(settled).toEqual([]);
    expect(sent).toBe(3);
    const reader = topics.subscribe({ groupId: 'check', topics: ['queue'], stop$: new Subject<void>() });
    const published = await firstValueFrom(reader.records$.pipe(take(3), toArray()));
    expect(published.map((e) => [e.key, e.value.value.toString()])).toEqual([
      ['k2', '2'],
      ['k6', '6'],
      ['k8', '8'],
    ]);
    for (const e of published) e.ack();
    await reader.close();
    await topics.close();
  });
});
