import { concatMap, defer, filter, map } from 'rxjs';
import type { OperatorFunction } from 'rxjs';
import { AlertLifecycleState, resolveLifecycleSettings } from '../domain/anomaly.ts';
import type {
  AlertEvent,
  AlertLifecycleSnapshot,
  LifecycleInput,
  LifecycleSettings,
  SilenceCheck,
} from '../domain/anomaly.ts';

interface Common {
  /** Silences the caller keeps (e.g. alert_silences, refreshed outside the operator); default none. */
  readonly isSilenced?: SilenceCheck;
}

export type AlertLifecycleOptions = Common &
  (
    | Partial<LifecycleSettings>
    /** A state the caller owns, so it can `snapshot()` at checkpoints; its own settings apply. */
    | { readonly state: AlertLifecycleState }
    | (Partial<LifecycleSettings> & { readonly restoreFrom: AlertLifecycleSnapshot })
  );

/**
 * Turns scored windows into alert lifecycle events (pending, opened,
 * renotify, resolved) per dedup key; the semantics are documented on
 * `AlertLifecycleState` in src/domain/anomaly.ts. Events of a window are emitted
 * synchronously while it is delivered, so a checkpoint taken after a window
 * is consistent with the events so far.
 *
 * Without a `state` option each subscription starts from its own state
 * (fresh or restored); a state passed in is shared by every subscription.
 */
export function alertLifecycle(options: AlertLifecycleOptions = {}): OperatorFunction<LifecycleInput, AlertEvent> {
  const { isSilenced } = options;
  // Validate eagerly so a misconfigured pipeline fails at build time, not at first subscription.
  if (!('state' in options)) resolveLifecycleSettings(options);

  return (source) =>
    defer(() => {
      const state =
        'state' in options
          ? options.state
          : 'restoreFrom' in options
            ? AlertLifecycleState.fromSnapshot(options.restoreFrom, options)
            : new AlertLifecycleState(options);
      // Most windows cause no event: only those that do pay for an inner subscription.
      return source.pipe(
        map((window) => state.apply(window, isSilenced)),
        filter((events) => events.length > 0),
        concatMap((events) => events),
      );
    });
}
