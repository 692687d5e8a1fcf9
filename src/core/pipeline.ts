/**
 * The pipeline API: a named, described function that wires sources,
 * operators and sinks into one RxJS graph from the context it is given.
 * Pipelines never choose adapters; the context carries them, which is what
 * lets the same definition run in server and embedded mode.
 */
import type { Observable, SchedulerLike } from 'rxjs';
import type { Config } from './config.ts';
import type { Health } from './health.ts';
import type { Logger } from './logger.ts';
import type { EngineMetrics } from './metrics.ts';

export interface PipelineContext<R> {
  readonly name: string;
  readonly config: Config;
  readonly logger: Logger;
  readonly metrics: EngineMetrics;
  readonly health: Health;
  readonly scheduler: SchedulerLike;
  /**
   * Emits once when the pipeline must stop reading. Sources complete on it;
   * completion then flows through operators (which flush) to sinks (which
   * write and ack), and sources commit what was acked before completing.
   */
  readonly stopping$: Observable<void>;
  /** The adapters (stores, topics, caches) chosen by configuration. */
  readonly resources: R;
  /** Pipeline-specific options from the command line; each pipeline validates its own. */
  readonly options: Readonly<Record<string, unknown>>;
}

export interface PipelineDefinition<R> {
  readonly name: string;
  readonly description: string;
  /** Returns the graph; the runner subscribes. It completes after a graceful stop has flushed and committed. */
  build(ctx: PipelineContext<R>): Observable<unknown>;
}

const namePattern = /^[a-z][a-z0-9-]{0,40}$/;

export function definePipeline<R>(definition: PipelineDefinition<R>): PipelineDefinition<R> {
  if (!namePattern.test(definition.name)) {
    throw new TypeError(`pipeline name "${definition.name}" must be lower-case letters, digits and "-"`);
  }
  if (definition.description.trim() === '') throw new TypeError(`pipeline ${definition.name} needs a description`);
  return Object.freeze({ ...definition });
}
