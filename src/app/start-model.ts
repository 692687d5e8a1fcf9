/**
 * `npm start` on a machine without the local model's files
 * (README.md, "Local embeddings"): it fetches them the way
 * `npm run models:fetch` does (src/app/commands/models-fetch.ts) before the
 * embedder is chosen, so a fresh clone starts with the model; a machine that
 * cannot fetch gets one line and the hashing embedder, never a failed start.
 *
 * A fetch that failed slowly (Maven waiting on a network that drops its
 * packets) is remembered for a while in the models directory, so the starts
 * that follow do not each wait for it again; a quick failure (no Maven) costs
 * nothing to retry and is not remembered. `npm run models:fetch` always tries.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { MODEL_NAME, modelFilesPresent, modelPaths } from '../clients/model-files.ts';
import type { Config } from '../core/config.ts';
import { describeCause } from '../core/errors.ts';
import { fetchModel } from './commands/models-fetch.ts';

/**
 * How long a start waits for Maven: a fresh clone still shows its first
 * alerts within a minute or two, where models:fetch alone waits minutes.
 */
export const START_FETCH_TIMEOUT_MS = 90_000;

/** A failed fetch that took at least this long is remembered: a start would wait as long again. */
export const REMEMBER_FAILURES_SLOWER_THAN_MS = 5_000;
/** How long a remembered failure keeps starts from trying again: a network outage is often over by then. */
export const REMEMBERED_FAILURE_MS = 6 * 60 * 60 * 1000;
/** In the models directory (outside the data directory, so `--reset` keeps it, as it keeps the model). */
export const FAILED_FETCH_FILE = '.last-failed-fetch.json';

const failedFetchSchema = z.object({ at: z.number().int().nonnegative(), reason: z.string().max(2_000) }).strict();
type FailedFetch = z.output<typeof failedFetchSchema>;

/**
 * Whether a start fetches the model: only when the local model is the embedder
 * it would run and its files are missing. Two existsSync calls, so a start
 * with the files in place is not slowed; a remote endpoint needs no model.
 */
export function fetchesModelAtStart(config: Config): boolean {
  return config.embeddings.url === undefined && !modelFilesPresent(config.model.dir);
}

export interface StartFetchOptions {
  /** Writes to the terminal; the line is written in two parts, before and after the fetch. */
  readonly write: (text: string) => void;
  /** Maven's command (default `mvn` on PATH). */
  readonly mvn?: string;
  readonly timeoutMs?: number;
  /** Defaults REMEMBER_FAILURES_SLOWER_THAN_MS and REMEMBERED_FAILURE_MS; the clock is Date.now. */
  readonly rememberSlowerThanMs?: number;
  readonly rememberForMs?: number;
  readonly now?: () => number;
}

/** Fetches the model when fetchesModelAtStart says so, in one line of output; never throws. */
export async function fetchModelAtStart(config: Config, options: StartFetchOptions): Promise<void> {
  if (!fetchesModelAtStart(config)) return;
  const now = options.now ?? Date.now;
  const timeoutMs = options.timeoutMs ?? START_FETCH_TIMEOUT_MS;
  const dir = modelPaths(config.model.dir).dir;
  const memory = path.join(config.model.dir, FAILED_FETCH_FILE);
  const remembered = await readFailedFetch(memory);
  if (remembered !== undefined && now() - remembered.at < (options.rememberForMs ?? REMEMBERED_FAILURE_MS)) {
    const minutes = Math.max(0, Math.round((now() - remembered.at) / 60_000));
    options.write(
      `models: no ${MODEL_NAME} in ${dir}; not fetching at start, since the try ${minutes} min ago failed after ` +
        `${remembered.reason}; \`npm run models:fetch\` tries now. The hashing embedder stays in use ` +
        `(README.md, "Local embeddings")\n`,
    );
    return;
  }
  options.write(`models: no ${MODEL_NAME} in ${dir}; fetching it (up to ${Math.round(timeoutMs / 1000)} s) ... `);
  const started = now();
  let end: string;
  let failed = true;
  try {
    const outcome = await fetchModel({
      modelsDir: config.model.dir,
      timeoutMs,
      ...(options.mvn === undefined ? {} : { mvn: options.mvn }),
    });
    const seconds = ((now() - started) / 1000).toFixed(1);
    failed = !(outcome.status === 'fetched' || outcome.status === 'present');
    end = failed ? outcome.line.replace(/^models: /, '') : `fetched in ${seconds} s (checksums verified)`;
  } catch (error) {
    // A models directory that cannot be written (permissions, a full disk): the start goes on without the model.
    end = `not fetched: ${describeCause(error)}; the hashing embedder stays in use (README.md, "Local embeddings")`;
  }
  options.write(`${end}\n`);
  const took = now() - started;
  if (!failed) await rm(memory, { force: true }).catch(() => undefined);
  else if (took >= (options.rememberSlowerThanMs ?? REMEMBER_FAILURES_SLOWER_THAN_MS)) {
    const reason = `${(took / 1000).toFixed(0)} s: ${end.replace(/; the hashing embedder stays in use.*$/s, '')}`.slice(
      0,
      2_000,
    );
    await rememberFailedFetch(config.model.dir, memory, { at: now(), reason });
  }
}

/** The remembered failure, if the file holds one; anything else (absent, damaged, edited) counts as none. */
async function readFailedFetch(file: string): Promise<FailedFetch | undefined> {
  try {
    const parsed = failedFetchSchema.safeParse(JSON.parse(await readFile(file, 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Best effort: a directory that cannot be written only means the next start tries again. */
async function rememberFailedFetch(modelsDir: string, file: string, failure: FailedFetch): Promise<void> {
  try {
    await mkdir(modelsDir, { recursive: true });
    await writeFile(file, `${JSON.stringify(failure)}\n`);
  } catch {
    // Nothing to do: see above.
  }
}
