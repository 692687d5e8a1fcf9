/**
 * prom-client metrics of the engine. Label values come only from code
 * (pipeline names, stage names, error codes, partition numbers), never from
 * data, so the label sets stay bounded.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface EngineMetrics {
  readonly registry: Registry;
  readonly recordsIn: Counter<'pipeline' | 'stage'>;
  readonly recordsOut: Counter<'pipeline' | 'stage'>;
  readonly batchSize: Histogram<'pipeline' | 'stage'>;
  readonly lateEvents: Counter<'pipeline'>;
  readonly deadLetters: Counter<'pipeline' | 'code'>;
  readonly retries: Counter<'pipeline' | 'stage'>;
  readonly consumerLag: Gauge<'pipeline' | 'topic' | 'partition'>;
  readonly inFlight: Gauge<'pipeline'>;
  readonly pipelineUp: Gauge<'pipeline'>;
  /** Bytes of state a stateful pipeline wrote to its checkpoints; shows whether writes track changes or state size. */
  readonly checkpointBytes: Counter<'pipeline'>;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): EngineMetrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'logflow_' });
  const registers = [registry];
  return {
    registry,
    recordsIn: new Counter({
      name: 'logflow_records_in_total',
      help: 'Records entering a stage',
      labelNames: ['pipeline', 'stage'],
      registers,
    }),
    recordsOut: new Counter({
      name: 'logflow_records_out_total',
      help: 'Records leaving a stage',
      labelNames: ['pipeline', 'stage'],
      registers,
    }),
    batchSize: new Histogram({
      name: 'logflow_batch_size',
      help: 'Records per batch written by a sink',
      labelNames: ['pipeline', 'stage'],
      buckets: [1, 10, 100, 1_000, 5_000, 10_000, 50_000, 100_000],
      registers,
    }),
    lateEvents: new Counter({
      name: 'logflow_late_events_total',
      help: 'Events that arrived after their window closed',
      labelNames: ['pipeline'],
      registers,
    }),
    deadLetters: new Counter({
      name: 'logflow_dead_letters_total',
      help: 'Records sent to a dead-letter topic, by error code',
      labelNames: ['pipeline', 'code'],
      registers,
    }),
    retries: new Counter({
      name: 'logflow_retries_total',
      help: 'Retried operations',
      labelNames: ['pipeline', 'stage'],
      registers,
    }),
    consumerLag: new Gauge({
      name: 'logflow_consumer_lag',
      help: 'Messages behind the partition high watermark',
      labelNames: ['pipeline', 'topic', 'partition'],
      registers,
    }),
    inFlight: new Gauge({
      name: 'logflow_in_flight_records',
      help: 'Records read but not yet acknowledged',
      labelNames: ['pipeline'],
      registers,
    }),
    pipelineUp: new Gauge({
      name: 'logflow_pipeline_up',
      help: '1 while a pipeline runs',
      labelNames: ['pipeline'],
      registers,
    }),
    checkpointBytes: new Counter({
      name: 'logflow_checkpoint_bytes_total',
      help: 'Bytes of state written to checkpoints',
      labelNames: ['pipeline'],
      registers,
    }),
  };
}
