/** The exactly-once ClickHouse sink's ledger, kept in PostgreSQL's sink_batches. */
import type { BatchLedger, OffsetRange } from './clickhouse.ts';
import type { SinkBatch, SinkBatchRepository } from '../stores/postgres/sink-batches.ts';

const toRange = (b: SinkBatch): OffsetRange => ({
  topic: b.topic,
  partition: b.partition,
  minOffset: b.minOffset,
  maxOffset: b.maxOffset,
});

export function sinkBatchLedger(batches: SinkBatchRepository): BatchLedger {
  return {
    rangesFrom: async (sink, topic, partition, offset) =>
      (await batches.listFrom(sink, topic, partition, offset)).map(toRange),
    recordPending: async (sink, range, rowCount) => toRange(await batches.recordPending({ sink, ...range, rowCount })),
    markInserted: async (sink, range) => {
      await batches.markInserted({ sink, topic: range.topic, partition: range.partition, minOffset: range.minOffset });
    },
  };
}
