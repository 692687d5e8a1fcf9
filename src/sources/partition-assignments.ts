/**
 * A consumer group's assignments as a stream, each assigned partition with
 * the state made for it: what a graph that keeps state per partition
 * (src/operators/branchPerPartition.ts) runs its branches by. The state is
 * made (restored from a checkpoint, say) in the source's onAssign, which the
 * transports await before any record of the partitions flows
 * (src/sources/topics.ts).
 */
import { Subject, type Observable } from 'rxjs';
import type { PartitionChange } from '../operators/branchPerPartition.ts';
import type { SubscribeOptions, TopicPartition } from './topics.ts';

export interface PartitionAssignmentsOptions<S> {
  /** The states of newly assigned partitions, in their order. */
  readonly assign: (partitions: readonly TopicPartition[]) => Promise<readonly S[]>;
  /** Runs once the revoked partitions' changes are out, before the group moves them. */
  readonly revoke: (partitions: readonly TopicPartition[]) => Promise<void>;
}

/** The source hooks to subscribe with, and the changes they bring. */
export interface PartitionAssignments<S> extends Required<Pick<SubscribeOptions, 'onAssign' | 'onRevoke'>> {
  /** Hot: a subscriber sees the changes from its subscription on. */
  readonly changes$: Observable<PartitionChange<S>>;
}

export function partitionAssignments<S>(options: PartitionAssignmentsOptions<S>): PartitionAssignments<S> {
  // The adapter from the source's callbacks to a stream, as fromEvent is for an emitter.
  const changes = new Subject<PartitionChange<S>>();
  return {
    onAssign: async (partitions) => {
      const states = await options.assign(partitions);
      partitions.forEach((tp, i) => changes.next({ partition: tp.partition, state: states[i] }));
    },
    onRevoke: async (partitions) => {
      for (const tp of partitions) changes.next({ partition: tp.partition, state: undefined });
      await options.revoke(partitions);
    },
    changes$: changes.asObservable(),
  };
}
