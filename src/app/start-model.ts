/**
 * `npm start` on a machine without the local model's files
 * (README.md, "Local embeddings"): it fetches them the way
 * `npm run models:fetch` does (src/app/commands/models-fetch.ts) before the
 * embedder is chosen, so a fresh clone starts with the model; a machine that
 * cannot fetch gets one line and the hashing embedder, never a failed start.
 */
import { MODEL_NAME, modelFilesPresent, modelPaths } from '../clients/model-files.ts';
import type { Config } from '../core/config.ts';
import { describeCause } from '../core/errors.ts';
import { fetchModel } from './commands/models-fetch.ts';

/**
 * How long a start waits for Maven: a fresh clone still shows its first
 * alerts within a minute or two, where models:fetch alone waits minutes.
 */
export const START_FETCH_TIMEOUT_MS = 90_000;

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
}

/** Fetches the model when fetchesModelAtStart says so, in one line of output; never throws. */
export async function fetchModelAtStart(config: Config, options: StartFetchOptions): Promise<void> {
  if (!fetchesModelAtStart(config)) return;
  const timeoutMs = options.timeoutMs ?? START_FETCH_TIMEOUT_MS;
  const dir = modelPaths(config.model.dir).dir;
  options.write(`models: no ${MODEL_NAME} in ${dir}; fetching it (up to ${Math.round(timeoutMs / 1000)} s) ... `);
  const started = Date.now();
  let end: string;
  try {
    const outcome = await fetchModel({
      modelsDir: config.model.dir,
      timeoutMs,
      ...(options.mvn === undefined ? {} : { mvn: options.mvn }),
    });
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    end =
      outcome.status === 'fetched' || outcome.status === 'present'
        ? `fetched in ${seconds} s (checksums verified)`
        : outcome.line.replace(/^models: /, '');
  } catch (error) {
    // A models directory that cannot be written (permissions, a full disk): the start goes on without the model.
    end = `not fetched: ${describeCause(error)}; the hashing embedder stays in use (README.md, "Local embeddings")`;
  }
  options.write(`${end}\n`);
}
