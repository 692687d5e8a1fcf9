/**
 * One contract for every Topics implementation (in-process and Kafka): the
 * delivery guarantees pipelines rely on.
 */
import { type Observable, firstValueFrom, Subject, take, toArray, bufferCount, filter, scan, takeWhile } from 'rxjs';
import { afterAll, describe, expect, it } from 'vitest';
import type { Chunk } from '../../src/core/chunk.ts';
import type { Envelope } from '../../src/core/envelope.ts';
import type { ConsumedRecord, Topics } from '../../src/sources/topics.ts';
import { uniqueName } from '../support/services.ts';

export function topicsContract(name: string, makeTopics: () => Topics): void {
  describe(`Topics contract: ${name}`, () => {
    const topics = makeTopics();
    afterAll(() => topics.close());

    async function produce(topic: string, count: number, keys = 7): Promise<void> {
      await topics.ensureTopic(topic, 4);
      const producer = topics.producer();
      const messages = Array.from({ length: count }, (_, i) => ({
        key: `svc-${i % keys}`,
        value: JSON.stringify({ i }),
      }));
      for (let i = 0; i < messages.length; i += 500) await producer.send(topic, messages.slice(i, i + 500));
    }

    /** Partitions that received nothing may or may not have a commit at 0; both mean the same. */
    const positive = (offsets: ReadonlyMap<number, number>) => new Map([...offsets].filter(([, offset]) => offset > 0));
    async function expectCommittedToEnd(groupId: string, topic: string): Promise<void> {
      expect(positive(await topics.committedOffsets(groupId, topic))).toEqual(positive(await topics.endOffsets(topic)));
    }

    const valueOf = (e: Envelope<ConsumedRecord>) => (JSON.parse(e.value.value.toString()) as { i: number }).i;

    it('delivers every record once with its key on one partition, and commits up to the end after acks', async () => {
      const topic = uniqueName('contract-all');
      const groupId = uniqueName('group');
      await produce(topic, 2_000);
      const stop = new Subject<void>();
      const sub = topics.subscribe({ groupId, topics: [topic], stop$: stop, commitIntervalMs: 100 });
      const received = await firstValueFrom(sub.records$.pipe(take(2_000), toArray()));
      const partitionOfKey = new Map<string, number>();
      for (const e of received) {
        expect(partitionOfKey.get(e.key ?? '') ?? e.origin.partition).toBe(e.origin.partition);
        partitionOfKey.set(e.key ?? '', e.origin.partition);
        e.ack();
      }
      await sub.close();
      expect(received.map(valueOf).sort((a, b) => a - b)).toEqual(Array.from({ length: 2_000 }, (_, i) => i));
      await expectCommittedToEnd(groupId, topic);
    });

    it('never commits past an unacknowledged record, and redelivers from it after a restart', async () => {
      const topic = uniqueName('contract-gap');
      const groupId = uniqueName('group');
      await produce(topic, 400, 1);
      const first = topics.subscribe({ groupId, topics: [topic], stop$: new Subject<void>(), commitIntervalMs: 50 });
      const records = await firstValueFrom(first.records$.pipe(take(400), toArray()));
      const held = records[123]!;
      // Acks in reverse order except one record.
      for (const e of [...records].reverse()) if (e !== held) e.ack();
      await first.close();
      const committed = await topics.committedOffsets(groupId, topic);
      expect(committed.get(held.origin.partition)).toBe(held.origin.offset);

      const second = topics.subscribe({ groupId, topics: [topic], stop$: new Subject<void>() });
      const replay = await firstValueFrom(second.records$.pipe(take(400 - 123), toArray()));
      expect(replay[0]?.origin.offset).toBe(held.origin.offset);
      expect(replay.map(valueOf)).toEqual(records.slice(123).map(valueOf));
      for (const e of replay) e.ack();
      await second.close();
      await expectCommittedToEnd(groupId, topic);
    });

    it('pauses while too many records are unacknowledged and resumes when they are acked', async () => {
      const topic = uniqueName('contract-pressure');
      const groupId = uniqueName('group');
      await produce(topic, 1_000);
      const sub = topics.subscribe({ groupId, topics: [topic], stop$: new Subject<void>(), maxInFlightRecords: 100 });
      let maxSeen = 0;
      let total = 0;
      const done = firstValueFrom(
        sub.records$.pipe(
          bufferCount(100),
          filter((chunk) => {
            maxSeen = Math.max(maxSeen, sub.inFlight.records);
            total += chunk.length;
            // Held briefly: the source must stop at the bound rather than keep reading.
            setTimeout(() => chunk.forEach((e) => e.ack()), 20);
            return total >= 1_000;
          }),
        ),
      );
      await done;
      await new Promise((r) => setTimeout(r, 50));
      await sub.close();
      expect(maxSeen).toBeLessThanOrEqual(100);
      await expectCommittedToEnd(groupId, topic);
    });

    it('completes records$ on stop and commits what was acknowledged on close', async () => {
      const topic = uniqueName('contract-stop');
      const groupId = uniqueName('group');
      await produce(topic, 50, 1);
      const stop = new Subject<void>();
      const sub = topics.subscribe({ groupId, topics: [topic], stop$: stop });
      const all: Envelope<ConsumedRecord>[] = [];
      const completed = new Promise<void>((resolve, reject) =>
        sub.records$.subscribe({
          next: (e) => {
            all.push(e);
            if (all.length === 50) stop.next();
          },
          complete: resolve,
          error: reject,
        }),
      );
      await completed;
      for (const e of all) e.ack();
      await sub.close();
      expect(all).toHaveLength(50);
      const committed = [...(await topics.committedOffsets(groupId, topic)).values()].reduce((a, b) => a + b, 0);
      expect(committed).toBe(50);
    });

    it('errors the stream when a record is failed, so nothing past it is committed', async () => {
      const topic = uniqueName('contract-fail');
      const groupId = uniqueName('group');
      await produce(topic, 10, 1);
      const sub = topics.subscribe({ groupId, topics: [topic], stop$: new Subject<void>() });
      const error = await new Promise<unknown>((resolve) =>
        sub.records$.subscribe({
          next: (e) => (valueOf(e) === 3 ? e.fail(new Error('dead-letter topic unavailable')) : e.ack()),
          error: resolve,
        }),
      );
      await sub.close();
      expect(String((error as Error).message)).toMatch(
        /could not be processed nor dead-lettered: dead-letter topic unavailable/,
      );
      const committed = [...(await topics.committedOffsets(groupId, topic)).values()];
      expect(committed.every((o) => o <= 3)).toBe(true);
    });
    const valuesOf = (c: Chunk<ConsumedRecord>) =>
      c.records.map((r) => (JSON.parse(r.value.toString()) as { i: number }).i);
    /** Chunks until they hold `count` records in all. */
    const chunksUpTo = (chunks$: Observable<Chunk<ConsumedRecord>>, count: number) =>
      firstValueFrom(
        chunks$.pipe(
          scan((acc, chunk) => ({ chunks: [...acc.chunks, chunk], total: acc.total + chunk.records.length }), {
            chunks: [] as Chunk<ConsumedRecord>[],
            total: 0,
          }),
          takeWhile((acc) => acc.total < count, true),
          filter((acc) => acc.total >= count),
        ),
      ).then((acc) => acc.chunks);

    it('delivers chunks of one partition each, one ack per chunk, and commits up to the end after acks', async () => {
      const topic = uniqueName('contract-chunks');
      const groupId = uniqueName('group');
      await produce(topic, 2_000);
      const sub = topics.subscribe({ groupId, topics: [topic], stop$: new Subject<void>(), commitIntervalMs: 100 });
      const chunks = await chunksUpTo(sub.chunks$, 2_000);
      const partitionOfKey = new Map<string, number>();
      for (const chunk of chunks) {
        expect(chunk.records.length).toBeGreaterThan(0);
        expect(chunk.rejected).toEqual([]);
        expect(chunk.firstOffset).toBe(chunk.records[0]?.offset);
        expect(chunk.lastOffset).toBe(chunk.records[chunk.records.length - 1]?.offset);
        expect(chunk.sizeBytes).toBe(chunk.records.reduce((sum, r) => sum + r.value.length, 0));
        for (const [i, record] of chunk.records.entries()) {
          expect(record.topic).toBe(chunk.topic);
          expect(record.partition).toBe(chunk.partition);
          if (i > 0) expect(record.offset).toBeGreaterThan(chunk.records[i - 1]!.offset);
          expect(partitionOfKey.get(record.key ?? '') ?? record.partition).toBe(record.partition);
          partitionOfKey.set(record.key ?? '', record.partition);
        }
        chunk.ack();
        // A second ack is ignored: it must not move the commit point twice.
        chunk.ack();
      }
      expect(sub.inFlight.records).toBe(0);
      await sub.close();
      expect(chunks.flatMap(valuesOf).sort((a, b) => a - b)).toEqual(Array.from({ length: 2_000 }, (_, i) => i));
      await expectCommittedToEnd(groupId, topic);
    });

    it('never commits past an unacknowledged chunk, and redelivers its whole range after a restart', async () => {
      const topic = uniqueName('contract-chunk-gap');
      const groupId = uniqueName('group');
      await produce(topic, 400, 1);
      // A bound of 100 in flight cuts the partition into chunks of at most 25 records (a quarter of it).
      const first = topics.subscribe({
        groupId,
        topics: [topic],
        stop$: new Subject<void>(),
        maxInFlightRecords: 100,
        commitIntervalMs: 50,
      });
      const received: Chunk<ConsumedRecord>[] = [];
      // Acks every chunk before the one holding record 123, holds that one and stops reading there.
      const held = await new Promise<Chunk<ConsumedRecord>>((resolve, reject) => {
        const subscription = first.chunks$.subscribe({
          next: (chunk) => {
            received.push(chunk);
            if (!valuesOf(chunk).includes(123)) {
              chunk.ack();
              return;
            }
            subscription.unsubscribe();
            resolve(chunk);
          },
          error: reject,
        });
      });
      await first.close();
      expect(received.length).toBeGreaterThan(1);
      const committed = await topics.committedOffsets(groupId, topic);
      expect(committed.get(held.partition)).toBe(held.firstOffset);

      const second = topics.subscribe({ groupId, topics: [topic], stop$: new Subject<void>() });
      const expected = 400 - valuesOf(held)[0]!;
      const replay = await chunksUpTo(second.chunks$, expected);
      expect(replay[0]?.firstOffset).toBe(held.firstOffset);
      expect(replay.flatMap(valuesOf)).toEqual(Array.from({ length: expected }, (_, i) => 400 - expected + i));
      for (const c of replay) c.ack();
      await second.close();
      await expectCommittedToEnd(groupId, topic);
    });

    it('cuts chunks to the in-flight bound and pauses until they are acked', async () => {
      const topic = uniqueName('contract-chunk-pressure');
      const groupId = uniqueName('group');
      await produce(topic, 1_000);
      const sub = topics.subscribe({ groupId, topics: [topic], stop$: new Subject<void>(), maxInFlightRecords: 100 });
      let maxSeen = 0;
      let largest = 0;
      let total = 0;
      await firstValueFrom(
        sub.chunks$.pipe(
          filter((chunk) => {
            maxSeen = Math.max(maxSeen, sub.inFlight.records);
            largest = Math.max(largest, chunk.records.length);
            total += chunk.records.length;
            setTimeout(() => chunk.ack(), 20);
            return total >= 1_000;
          }),
        ),
      );
      await new Promise((r) => setTimeout(r, 50));
      await sub.close();
      // A quarter of the bound at most, so chunks acked whole never starve a stage waiting for later ones.
      expect(largest).toBeLessThanOrEqual(25);
      expect(maxSeen).toBeLessThanOrEqual(100);
      await expectCommittedToEnd(groupId, topic);
    });

    it('cuts chunks to maxChunkRecords when asked, below a quarter of the in-flight bound, and delivers every record', async () => {
      const topic = uniqueName('contract-chunk-size');
      const groupId = uniqueName('group');
      await produce(topic, 1_000);
      const sub = topics.subscribe({
        groupId,
        topics: [topic],
        stop$: new Subject<void>(),
        maxInFlightRecords: 400,
        maxChunkRecords: 7,
      });
      const chunks: Chunk<ConsumedRecord>[] = [];
      let total = 0;
      await firstValueFrom(
        sub.chunks$.pipe(
          filter((chunk) => {
            chunks.push(chunk);
            total += chunk.records.length;
            chunk.ack();
            return total >= 1_000;
          }),
        ),
      );
      await sub.close();
      expect(Math.max(...chunks.map((chunk) => chunk.records.length))).toBe(7);
      expect(chunks.flatMap(valuesOf).sort((a, b) => a - b)).toEqual(Array.from({ length: 1_000 }, (_, i) => i));
      await expectCommittedToEnd(groupId, topic);
      expect(() =>
        topics.subscribe({ groupId, topics: [topic], stop$: new Subject<void>(), maxChunkRecords: 0 }),
      ).toThrow(/maxChunkRecords must be an integer of at least 1/);
    });

    it('errors the stream when a chunk is failed, so nothing past its range is committed', async () => {
      const topic = uniqueName('contract-chunk-fail');
      const groupId = uniqueName('group');
      await produce(topic, 10, 1);
      const sub = topics.subscribe({ groupId, topics: [topic], stop$: new Subject<void>() });
      let failed: Chunk<ConsumedRecord> | undefined;
      const error = await new Promise<unknown>((resolve) =>
        sub.chunks$.subscribe({
          next: (chunk) => {
            failed ??= chunk;
            chunk.fail(new Error('dead-letter topic unavailable'));
          },
          error: resolve,
        }),
      );
      await sub.close();
      expect(String((error as Error).message)).toMatch(
        /records .+ could not be processed nor dead-lettered: dead-letter topic unavailable/,
      );
      const committed = [...(await topics.committedOffsets(groupId, topic)).values()];
      expect(committed.every((o) => o <= failed!.firstOffset)).toBe(true);
    });

    it('is read either as records or as chunks, once', async () => {
      const topic = uniqueName('contract-chunk-once');
      await topics.ensureTopic(topic, 1);
      const sub = topics.subscribe({ groupId: uniqueName('group'), topics: [topic], stop$: new Subject<void>() });
      const reading = sub.chunks$.subscribe();
      await expect(firstValueFrom(sub.records$)).rejects.toThrow(/subscribed once/);
      reading.unsubscribe();
      await sub.close();
    });
  });
}
