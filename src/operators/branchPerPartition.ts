import { connect, endWith, filter, ignoreElements, merge, mergeMap, takeUntil } from 'rxjs';
import type { Observable, OperatorFunction } from 'rxjs';

/** A partition assigned with its state, or revoked (`state` undefined), as src/sources/partition-assignments.ts tells. */
export interface PartitionChange<S> {
  readonly partition: number;
  readonly state: S | undefined;
}

/**
 * Passes every item on and also runs it through the branch of its partition:
 * `branch(state)` is subscribed when the partition is assigned with `state`
 * (before its items flow, so the branch's timers run even for a partition
 * that sends nothing) and ends, its input completed, when the partition is
 * revoked or assigned again, or when the input ends. An item of a partition
 * without a branch is only passed on.
 *
 * Each item is passed on before its branch sees it, in the same synchronous
 * frame, so whatever the branch emits for it comes right after it.
 */
export function branchPerPartition<T extends { readonly partition: number }, S, R>(
  changes$: Observable<PartitionChange<S>>,
  branch: (state: S) => OperatorFunction<T, R>,
): OperatorFunction<T, T | R> {
  return connect((items$) => {
    const ended$ = items$.pipe(ignoreElements(), endWith(true));
    return merge(
      items$,
      changes$.pipe(
        takeUntil(ended$),
        filter((change): change is PartitionChange<S> & { readonly state: S } => change.state !== undefined),
        mergeMap(({ partition, state }) =>
          items$.pipe(
            takeUntil(changes$.pipe(filter((change) => change.partition === partition))),
            filter((item) => item.partition === partition),
            branch(state),
          ),
        ),
      ),
    );
  });
}
