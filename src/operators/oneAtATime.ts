import { concatMap, of } from 'rxjs';
import type { OperatorFunction } from 'rxjs';

/**
 * Runs each value alone through `operator` (a pipe of stages) and only then
 * the next one. A chain of concatMaps is a pipeline: the second value enters
 * the first stage while the first is in the last. Stages that read what the
 * previous value's later stages write (rows, vectors) need this instead.
 */
export function oneAtATime<T, R>(operator: OperatorFunction<T, R>): OperatorFunction<T, R> {
  return concatMap((value: T) => of(value).pipe(operator));
}
