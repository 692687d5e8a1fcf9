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
import { Changelog } from './changelog.ts';

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
  readonly #changelog = new Changelog<Run, SparseRunEntry>(
    () => this.#runs.values(),
    (run) => [run.end, run.logTail],
  );

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
    this.#changelog.mark(run);
  }

  /** See `Changelog.start` (src/domain/changelog.ts). */
  startChangelog(storeHolds: 'nothing' | 'this state'): void {
    this.#changelog.start(storeHolds);
  }

  /** The entries of the series recorded since the last call (or `startChangelog`). */
  takeChanges(): Map<string, SparseRunEntry> {
    return this.#changelog.take();
  }

  /** Every series' entry, sorted by key. */
  snapshot(): [string, SparseRunEntry][] {
    return this.#changelog.entries();
  }
}
