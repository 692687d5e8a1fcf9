/**
 * `logflow normalize`: one `hash<TAB>template` line out per line in, in order,
 * so line N of the output describes line N of the input (empty lines too).
 *
 * Streams in constant memory: input is decoded chunk by chunk (UTF-8; bytes
 * that are not UTF-8 become U+FFFD), lines end at `\n` with an optional `\r`
 * before it, a last line without a newline counts, and only the first
 * MAX_MESSAGE_LENGTH code units of a line are kept (all the normalizer reads),
 * so one endless line cannot exhaust memory. Output goes out in blocks and
 * waits for 'drain' when the writable asks it to.
 */
import { StringDecoder } from 'node:string_decoder';
import { MAX_MESSAGE_LENGTH, normalizeMessage } from '../../domain/normalizer.ts';

/** Output is written in blocks of about this many UTF-16 code units. */
const OUTPUT_BLOCK = 256 * 1024;

export interface NormalizeLinesResult {
  readonly lines: number;
}

export async function normalizeLines(
  input: NodeJS.ReadableStream,
  output: NodeJS.WritableStream,
): Promise<NormalizeLinesResult> {
  const decoder = new StringDecoder('utf8');
  let lines = 0;
  let pending = '';
  /** The start of the line still open at the end of the previous chunk (already cut to MAX_MESSAGE_LENGTH). */
  let partial = '';
  /** The open line is longer than MAX_MESSAGE_LENGTH: its rest is skipped up to the next newline. */
  let skipping = false;

  let outputError: unknown = null;
  const onError = (error: unknown): void => {
    outputError ??= error;
  };
  output.on('error', onError);

  const writePending = async (): Promise<void> => {
    if (pending === '') return;
    const block = pending;
    pending = '';
    if (outputError !== null) throw outputError;
    if (!output.write(block)) await drained(output);
    if (outputError !== null) throw outputError;
  };

  const emitLine = (line: string): void => {
    const end = line.length > 0 && line.charCodeAt(line.length - 1) === 13 ? line.length - 1 : line.length;
    const { template, errorHash } = normalizeMessage(end === line.length ? line : line.slice(0, end));
    pending += `${errorHash}\t${template}\n`;
    lines += 1;
  };

  const consume = async (text: string): Promise<void> => {
    let from = 0;
    for (;;) {
      const newline = text.indexOf('\n', from);
      if (newline < 0) break;
      if (skipping) {
        emitLine(partial);
        skipping = false;
      } else {
        const room = MAX_MESSAGE_LENGTH + 1 - partial.length;
        // One more than the cap, so a line of exactly MAX_MESSAGE_LENGTH still sees its `\r`.
        emitLine(partial + text.slice(from, Math.min(newline, from + room)));
      }
      partial = '';
      from = newline + 1;
      if (pending.length >= OUTPUT_BLOCK) await writePending();
    }
    if (from < text.length && !skipping) {
      const room = MAX_MESSAGE_LENGTH + 1 - partial.length;
      if (text.length - from > room) {
        partial += text.slice(from, from + room);
        skipping = true;
      } else {
        partial += text.slice(from);
      }
    }
  };

  try {
    for await (const chunk of input) {
      await consume(typeof chunk === 'string' ? chunk : decoder.write(chunk));
      await writePending();
    }
    await consume(decoder.end());
    if (partial !== '' || skipping) emitLine(partial);
    await writePending();
  } finally {
    output.off('error', onError);
  }
  return { lines };
}

function drained(output: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      output.off('drain', onDrain);
      output.off('error', onError);
      output.off('close', onClose);
    };
    const onDrain = (): void => {
      cleanup();
      resolve();
    };
    const onError = (error: unknown): void => {
      cleanup();
      reject(error instanceof Error ? error : new Error(String(error)));
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error('output closed before it drained'));
    };
    output.on('drain', onDrain);
    output.on('error', onError);
    output.on('close', onClose);
  });
}
