import { defer, map } from 'rxjs';
import type { OperatorFunction } from 'rxjs';
import { InputError } from '../core/errors.ts';

/** A closed pane, as `windowByEventTime` emits them (`kind: 'window'` results fit). */
export interface ClosedPane {
  readonly key: string;
  readonly start: number;
  readonly end: number;
  readonly count: number;
}

export interface RollingCount {
  readonly key: string;
  /** The pane just closed. */
  readonly start: number;
  readonly end: number;
  readonly count: number;
  /** Per configured span: the sum of the last N closed panes, this one included. */
  readonly sums: Readonly<Record<string, number>>;
}

export interface RollingCountsOptions {
  /** Label -> number of panes, e.g. `{ '5m': 5, '1h': 60 }`. */
  readonly spans: Readonly<Record<string, number>>;
  /** Pane length; inputs must be panes of exactly this length. Default one minute. */
  readonly paneMs?: number;
}

interface KeyRing {
  readonly counts: Float64Array;
  lastPane: number;
}

/**
 * Sliding counts as sums of closed panes: for each pane result, emits the sums
 * over the last N panes of its key for every span. Panes a key has no result
 * for count as 0. Pure: no clock, output depends only on the input sequence.
 *
 * Per key, panes must arrive in increasing order (an older or repeated pane
 * is an input error). State per key is one ring of max(N) panes; a key whose
 * newest pane has fallen out of every span, measured against the newest pane
 * seen for any key, is forgotten, which changes no output as long as inputs
 * arrive in non-decreasing end order, as `windowByEventTime` emits them.
 */
export function rollingCounts(options: RollingCountsOptions): OperatorFunction<ClosedPane, RollingCount> {
  const paneMs = options.paneMs ?? 60_000;
  if (!Number.isSafeInteger(paneMs) || paneMs <= 0)
    throw new RangeError(`rollingCounts: paneMs must be a positive integer, got ${paneMs}`);
  const spans = Object.entries(options.spans);
  if (spans.length === 0) throw new RangeError('rollingCounts: at least one span is needed');
  for (const [label, panes] of spans) {
    if (!Number.isSafeInteger(panes) || panes < 1)
      throw new RangeError(`rollingCounts: span ${label} must be a positive integer number of panes, got ${panes}`);
  }
  const ringSize = Math.max(...spans.map(([, panes]) => panes));

  return (source) =>
    defer(() => {
      const rings = new Map<string, KeyRing>();
      let newestPane = -Infinity;

      const forgetStaleKeys = (): void => {
        for (const [key, ring] of rings) if (ring.lastPane <= newestPane - ringSize) rings.delete(key);
      };

      return source.pipe(
        map((pane): RollingCount => {
          if (pane.end - pane.start !== paneMs || pane.start % paneMs !== 0) {
            throw new InputError(
              `rollingCounts: expected an aligned ${paneMs} ms pane, got [${pane.start}, ${pane.end})`,
              {
                stage: 'operator',
                details: { key: pane.key },
              },
            );
          }
          const index = pane.start / paneMs;
          let ring = rings.get(pane.key);
          if (ring === undefined) {
            ring = { counts: new Float64Array(ringSize), lastPane: -Infinity };
            rings.set(pane.key, ring);
          } else if (index <= ring.lastPane) {
            throw new InputError(
              `rollingCounts: pane [${pane.start}, ${pane.end}) of key ${pane.key} arrived after a later or equal one`,
              {
                stage: 'operator',
                details: { key: pane.key, lastPaneStart: ring.lastPane * paneMs },
              },
            );
          }
          // Panes skipped since the key's last result are zeros; past a full ring, everything is.
          const gap = index - ring.lastPane;
          if (gap > ringSize) ring.counts.fill(0);
          else
            for (let skipped = ring.lastPane + 1; skipped < index; skipped++)
              ring.counts[slotOf(skipped, ringSize)] = 0;
          ring.counts[slotOf(index, ringSize)] = pane.count;
          ring.lastPane = index;

          const sums: Record<string, number> = {};
          for (const [label, panes] of spans) {
            let sum = 0;
            for (let back = 0; back < panes; back++) sum += ring.counts[slotOf(index - back, ringSize)]!;
            sums[label] = sum;
          }
          if (index > newestPane) {
            newestPane = index;
            forgetStaleKeys();
          }
          return { key: pane.key, start: pane.start, end: pane.end, count: pane.count, sums };
        }),
      );
    });
}

function slotOf(pane: number, ringSize: number): number {
  const slot = pane % ringSize;
  return slot < 0 ? slot + ringSize : slot;
}
