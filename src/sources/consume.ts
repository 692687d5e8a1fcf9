/**
 * What every consuming pipeline wires the same way: its consumer group
 * (logflow-<pipeline>), stop on the runner's signal, lag into the metrics,
 * dead letters counted by code, and the commit-and-leave after the graph has
 * drained.
 */
import { concat, defer, from, ignoreElements, type Observable } from 'rxjs';
import { consumerGroup } from '../core/config.ts';
import type { PipelineContext } from '../core/pipeline.ts';
import { DeadLetterSink } from '../sinks/dead-letter.ts';
import type { SubscribeOptions, TopicProducer, Topics, TopicSubscription } from './topics.ts';

export type ConsumeOptions = Omit<SubscribeOptions, 'groupId' | 'topics' | 'stop$' | 'onLag'>;

export function consume<R>(
  ctx: PipelineContext<R>,
  topics: Topics,
  topic: string,
  options: ConsumeOptions = {},
): TopicSubscription {
  return topics.subscribe({
    ...options,
    groupId: consumerGroup(ctx.config, ctx.name),
    topics: [topic],
    stop$: ctx.stopping$,
    onLag: (t, partition, lag) =>
      ctx.metrics.consumerLag.set({ pipeline: ctx.name, topic: t, partition: String(partition) }, lag),
  });
}

export function deadLetterSink<R>(ctx: PipelineContext<R>, producer: TopicProducer, topic: string): DeadLetterSink {
  return new DeadLetterSink(producer, topic, ctx.name, (letter) =>
    ctx.metrics.deadLetters.inc({ pipeline: ctx.name, code: letter.error_code }),
  );
}

/**
 * The graph, then the subscription's final commit: acks that completion flushed are committed before the pipeline ends.
 */
export function thenClose(graph$: Observable<unknown>, subscription: TopicSubscription): Observable<never> {
  return concat(graph$.pipe(ignoreElements()), defer(() => from(subscription.close())).pipe(ignoreElements()));
}
