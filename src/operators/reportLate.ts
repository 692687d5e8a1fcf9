import { filter, type OperatorFunction } from 'rxjs';
import type { LateEvent, WindowOutput, WindowResult } from './windowByEventTime.ts';

/**
 * Passes the closed windows of windowByEventTime on and hands each late event
 * to `onLate` (a metric, a warning): events behind the watermark are counted
 * in no window, and must not vanish without a word (ARCHITECTURE.md, section 5).
 * Watermark marks are dropped.
 */
export function reportLate<T>(onLate: (late: LateEvent<T>) => void): OperatorFunction<WindowOutput<T>, WindowResult> {
  return filter((output): output is WindowResult => {
    if (output.kind === 'late') onLate(output);
    return output.kind === 'window';
  });
}
