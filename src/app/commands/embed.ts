/**
 * `logflow embed`: one line out per line in, in order, each the JSON array of
 * the line's embedding (unit length), from the embedder vectorize uses by
 * default (src/clients/embeddings.ts, openEmbedder). Which one that is goes to
 * stderr, so stdout stays one vector per line.
 *
 * Lines end at `\n` with an optional `\r` before it; an empty line is
 * embedded too, so line N of the output is always line N of the input. Lines
 * are embedded in blocks, and output waits for 'drain', so memory stays
 * bounded however long the input.
 */
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { embedderChoice, openEmbedder } from '../../clients/embeddings.ts';
import { loadConfig, type Config } from '../../core/config.ts';

/** Lines per embed call: a few worker messages' worth, so the model is kept busy while output is written. */
const BLOCK_LINES = 256;

export interface EmbedLinesResult {
  readonly lines: number;
}

export interface EmbedLinesOptions {
  /** Default: loadConfig() from the environment. */
  readonly config?: Config;
  /** Where the embedder's name goes (default stderr). */
  readonly diagnostics?: Writable;
}

export async function embedLines(
  input: Readable,
  output: Writable,
  options: EmbedLinesOptions = {},
): Promise<EmbedLinesResult> {
  const config = options.config ?? loadConfig();
  (options.diagnostics ?? process.stderr).write(`${embedderChoice(config).line}\n`);
  const embedder = openEmbedder(config);
  let lines = 0;
  const flush = async (block: string[]): Promise<void> => {
    const vectors = await embedder.embed(block);
    const text = vectors.map((v) => `${JSON.stringify(Array.from(v))}\n`).join('');
    lines += block.length;
    if (!output.write(text)) await once(output, 'drain');
  };
  try {
    let block: string[] = [];
    for await (const line of createInterface({ input, crlfDelay: Infinity })) {
      block.push(line);
      if (block.length >= BLOCK_LINES) {
        await flush(block);
        block = [];
      }
    }
    if (block.length > 0) await flush(block);
  } finally {
    await embedder.close();
  }
  return { lines };
}
