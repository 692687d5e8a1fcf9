/**
 * The last window of each series that counts towards a sparse run (src/domain/anomaly.ts, `sparseRunTail`): its end
 * and the log of its Poisson upper tail, so that the next window, when it starts where that one ended, is scored as
 * the second window of a run. One small entry per series, written as a changelog (only the series whose entry changed
 * since the last checkpoint) next to the adaptive levels' (src/sinks/detector-checkpoints.ts) and restored exactly,
 * so a restored detector scores the next window as the uninterrupted one would.
 *
 * Only windows with evidence are recorded: a window without leaves the entry as it was, and since the next window's
 * start is then not that entry's end, no run spans it. A checkpoint written before this state existed restores as no
 * runs, which costs at most one run's first window.
 */
import { z } from 'zod';
import { ErrorCodes, LogflowError } from '../core/errors.ts';

/** `[end, logTail]`: the end of the series' last window with evidence, and its log upper tail. */
export type SparseRunEntry = readonly [number, number];

const entrySchema = z.tuple([z.number(), z.number().max(0)]);

interface Run {
  readonly key: string;
  end: number;
  logTail: number;
  dirty: boolean;
}

export class SparseRuns {
  readonly #runs = new Map<string, Run>();
  #changed: Run[] = [];

  /** Rebuilds the runs from changelog entries (`takeChanges` output, after a JSON round trip). */
  static fromEntries(entries: Iterable<readonly [string, unknown]>): SparseRuns {
    const runs = new SparseRuns();
    for (const [key, entry] of entries) {
      const parsed = entrySchema.safeParse(entry);
      if (!parsed.success)
        throw new LogflowError(
          ErrorCodes.INPUT_INVALID,
          `sparse run entry of key ${JSON.stringify(key)} is malformed: ${parsed.error.message}`,
          { stage: 'operator' },
        );
      const [end, logTail] = parsed.data;
      runs.#runs.set(key, { key, end, logTail, dirty: false });
    }
    return runs;
  }

  /** Series held. */
  get size(): number {
    return this.#runs.size;
  }

  /** The log tail of the window of `key` that ended at `start`, if it had evidence; else undefined. */
  previous(key: string, start: number): number | undefined {
    const run = this.#runs.get(key);
    return run !== undefined && run.end === start ? run.logTail : undefined;
  }

  /** Records a window's evidence (`sparseRunTail`); a window without any (undefined) changes nothing. */
  record(key: string, end: number, logTail: number | undefined): void {
    if (logTail === undefined || !(logTail <= 0)) return;
    let run = this.#runs.get(key);
    if (run === undefined) {
      run = { key, end, logTail, dirty: false };
      this.#runs.set(key, run);
    } else {
      // A window replayed after a restore was recorded before the checkpoint.
      if (end <= run.end) return;
      run.end = end;
      run.logTail = logTail;
    }
    if (!run.dirty) {
      run.dirty = true;
      this.#changed.push(run);
    }
  }

  /**
   * Starts (or restarts) the changelog: `'nothing'` when the store the changes go to holds none of these entries, so
   * the next `takeChanges` carries them all; `'this state'` when it holds exactly these.
   */
  startChangelog(storeHolds: 'nothing' | 'this state'): void {
    for (const run of this.#changed) run.dirty = false;
    this.#changed = [];
    if (storeHolds === 'this state') return;
    for (const run of this.#runs.values()) {
      run.dirty = true;
      this.#changed.push(run);
    }
  }

  /** The entries of the series recorded since the last call (or `startChangelog`). */
  takeChanges(): Map<string, SparseRunEntry> {
    const changes = new Map<string, SparseRunEntry>();
    for (const run of this.#changed) {
      run.dirty = false;
      changes.set(run.key, [run.end, run.logTail]);
    }
    this.#changed = [];
    return changes;
  }

  /** Every series' entry, sorted by key. */
  snapshot(): [string, SparseRunEntry][] {
    return [...this.#runs.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, run]) => [key, [run.end, run.logTail]]);
  }
}
