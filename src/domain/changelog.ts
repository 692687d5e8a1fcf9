/**
 * Which per-series entries of a detector state changed since the last checkpoint: the changelog that
 * src/sinks/detector-checkpoints.ts writes, so a checkpoint carries what moved rather than all the state held. Used
 * by the adaptive levels (src/domain/adaptive-level.ts) and the sparse runs (src/domain/sparse-runs.ts); each item
 * carries its own `dirty` flag, so marking one is O(1) and never lists it twice.
 */
export interface ChangelogItem {
  readonly key: string;
  dirty: boolean;
}

export class Changelog<Item extends ChangelogItem, Entry> {
  #changed: Item[] = [];

  /** `all` lists every item held (for a restart against an empty store); `entryOf` is what the store keeps of one. */
  constructor(
    private readonly all: () => Iterable<Item>,
    private readonly entryOf: (item: Item) => Entry,
  ) {}

  /** Records that `item` changed. */
  mark(item: Item): void {
    if (item.dirty) return;
    item.dirty = true;
    this.#changed.push(item);
  }

  /**
   * Starts (or restarts) the changelog: `'nothing'` when the store the changes go to holds none of these entries, so
   * the next `take` carries them all; `'this state'` when it holds exactly these.
   */
  start(storeHolds: 'nothing' | 'this state'): void {
    for (const item of this.#changed) item.dirty = false;
    this.#changed = [];
    if (storeHolds === 'this state') return;
    for (const item of this.all()) this.mark(item);
  }

  /** The entries of the items marked since the last call (or `start`), by key. */
  take(): Map<string, Entry> {
    const changes = new Map<string, Entry>();
    for (const item of this.#changed) {
      item.dirty = false;
      changes.set(item.key, this.entryOf(item));
    }
    this.#changed = [];
    return changes;
  }

  /** Every item's entry, sorted by key: the whole state, as a snapshot or a store that holds nothing gets it. */
  entries(): [string, Entry][] {
    return [...this.all()]
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
      .map((item) => [item.key, this.entryOf(item)]);
  }
}
