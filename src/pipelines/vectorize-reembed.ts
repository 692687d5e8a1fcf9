/**
 * How vectorize (src/pipelines/vectorize.ts) runs the re-embedding of known
 * patterns (src/sinks/pattern-reembed.ts): in the background from its start,
 * so new records flow at once; retried while its stores or embedder are
 * down; stopped with the pipeline; its progress in the log.
 */
import type { SchedulerLike } from 'rxjs';
import type { Logger } from '../core/logger.ts';
import { retry, RETRY_UNTIL_STOPPED } from '../core/retry.ts';
import { DEFAULT_REEMBED_OPTIONS, reembedMissing, type ReembedSources } from '../sinks/pattern-reembed.ts';

export interface BackgroundReembedding {
  /**
   * Settles (never rejects) once the walk ended, however it ended: the
   * novelty checks that wait for it go on then, against what the collection
   * holds.
   */
  readonly done: Promise<void>;
  stop(): void;
}

export function startReembedding(
  sources: ReembedSources,
  logger: Logger,
  scheduler: SchedulerLike,
  options: { readonly pageSize?: number; readonly concurrency?: number } = {},
): BackgroundReembedding {
  const stopped = new AbortController();
  const model = sources.embedder.model;
  const log = logger.child({ component: 'reembed', model });
  let lastLogged = 0;
  const done = reembedMissing(sources, {
    pageSize: options.pageSize ?? DEFAULT_REEMBED_OPTIONS.pageSize,
    concurrency: options.concurrency ?? DEFAULT_REEMBED_OPTIONS.concurrency,
    attempt: (step) => retry(step, { ...RETRY_UNTIL_STOPPED, scheduler, signal: stopped.signal }),
    onProgress: ({ checked, total, written }) => {
      // A line a second at most: a large table walks thousands of pages.
      if (written === 0 || (Date.now() - lastLogged < 1_000 && checked < total)) return;
      lastLogged = Date.now();
      log.info({ checked, total, written }, `re-embedding known patterns: ${checked} / ${total} checked`);
    },
    onRefused: (errorHash, err) =>
      log.warn({ errorHash, err }, 'known pattern not re-embedded: the embedder refuses it'),
  }).then(
    ({ total, written }) => {
      if (written > 0) log.info({ total, written }, `re-embedded ${written} known patterns with ${model}`);
    },
    (err: unknown) => {
      if (stopped.signal.aborted) log.info('re-embedding stopped; the next start continues it');
      else
        log.error(
          { err },
          're-embedding of known patterns failed; novelty is judged against what the collection holds',
        );
    },
  );
  return { done, stop: () => stopped.abort() };
}
