/**
 * `logflow normalize`: one `hash<TAB>template` line out per line in, in order,
 * so line N of the output describes line N of the input (empty lines too).
 * The template and hash are normalizeMessage's, the ones ingest stores and
 * `error_patterns` groups by.
 *
 * Lines end at `\n` with an optional `\r` before it, and a last line without a
 * newline counts. Input bytes are cut into blocks of whole lines (a `\n` byte
 * is never part of a multi-byte UTF-8 character, so a block decodes on its
 * own; bytes that are not UTF-8 become U+FFFD). A block that is all ASCII is
 * normalized from its bytes as they are (byte i is code unit i): no string is
 * made of it, and its templates are written as copies of its bytes
 * (normalizeAsciiLine, writeTemplateBytes), not made as strings and encoded
 * again; other blocks are decoded and take normalizeLine. Normalizing is nearly all the
 * work, so with more than one core the blocks are normalized on worker
 * threads, one per core but this thread's, a few blocks in flight per worker,
 * and written back in input order; this thread reads and writes, and
 * normalizes a block itself whenever every worker has blocks enough (so on 2
 * cores one worker and this thread share the work); each thread first runs
 * warmUp. An input of one block, or
 * one core, is done on this thread without starting any. Memory stays
 * bounded: blocks are about BLOCK_BYTES, reading waits while the blocks in
 * flight are unwritten, output waits for 'drain', and of
 * a line that does not fit in a block only LINE_BYTES_KEPT bytes are kept
 * (more than the MAX_MESSAGE_LENGTH code units the normalizer reads), so one
 * endless line cannot exhaust memory.
 */
import { isAscii } from 'node:buffer';
import { read } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { LogflowError, ErrorCodes } from '../../core/errors.ts';
import { startModuleWorker, type ModuleWorkerFailure } from '../../core/module-worker.ts';
import {
  MAX_MESSAGE_LENGTH,
  normalizeAsciiLine,
  normalizeLine,
  normalizeMessage,
  unitsOf,
  writeHashBytes,
  writeTemplateBytes,
} from '../../domain/normalizer.ts';

/**
 * Input bytes per block: enough lines (about 8,000 of Loghub's) that handing a block to a worker costs little.
 * 1 MiB blocks took 10-15% less wall time than 256 KiB ones on 2 cores.
 */
const BLOCK_BYTES = 1024 * 1024;
/** A UTF-8 code unit takes at most 3 bytes, so this many bytes hold more than MAX_MESSAGE_LENGTH + 1 units. */
const LINE_BYTES_KEPT = 3 * (MAX_MESSAGE_LENGTH + 2);
/** Blocks handed to one worker and not yet written: one being normalized, one waiting. */
const BLOCKS_PER_WORKER = 2;
/**
 * Blocks this thread may normalize beyond those the workers hold before it waits for the oldest: while a worker's
 * block is late (another process has its core) this thread goes on with blocks of its own instead of idling.
 */
const BLOCKS_AHEAD = 4;
const MAX_WORKERS = 8;

export interface NormalizeLinesOptions {
  /** Worker threads beside this one (0: all on this thread). Default: one per core but one, none on one core. */
  readonly workers?: number;
}

export interface NormalizeLinesResult {
  readonly lines: number;
}

interface NormalizedBlock {
  readonly output: Uint8Array;
  readonly lines: number;
}

/**
 * Normalizes a block of whole lines; the last one may lack its newline. The one definition of a line's output,
 * used on this thread and in the workers.
 */
export function normalizeBlock(bytes: Uint8Array): NormalizedBlock {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (isAscii(view)) return normalizeAsciiBlock(view);
  const text = view.toString('utf8');
  const units = unitsOf(text);
  const n = text.length;
  // Each line is written into one buffer as it is made: cheaper than joining the block's lines into one string
  // and encoding that. allocUnsafeSlow gives a buffer of its own, which can be transferred (a small Buffer may
  // sit in Node's shared pool); every byte of it that is handed on is written first.
  let out: Buffer = Buffer.allocUnsafeSlow(2 * bytes.byteLength + OUTPUT_SLACK);
  let at = 0;
  let lines = 0;
  let from = 0;
  while (from < n) {
    const newline = text.indexOf('\n', from);
    let end = newline < 0 ? n : newline;
    if (end > from && text.charCodeAt(end - 1) === 13) end--;
    // The normalizer reads no further than MAX_MESSAGE_LENGTH, so a longer line is cut there, as ingest cuts it.
    end = Math.min(end, from + MAX_MESSAGE_LENGTH);
    const { template, errorHash } = normalizeLine(text, from, end, units);
    const line = `${errorHash}\t${template}\n`;
    // write() stops where the buffer ends, so room is made first: UTF-8 takes at most 3 bytes per UTF-16 unit.
    if (at + 3 * line.length > out.length) out = grown(out, at, 3 * line.length);
    at += out.write(line, at);
    lines++;
    if (newline < 0) break;
    from = newline + 1;
  }
  return { output: out.subarray(0, at), lines };
}

/**
 * normalizeBlock for a block that is all ASCII (a Buffer view of it): read as it is, no string made of it (byte i is code unit i), and
 * each template written as copies of its bytes, not made as a string and encoded.
 */
function normalizeAsciiBlock(bytes: Buffer): NormalizedBlock {
  const n = bytes.length;
  let out: Buffer = Buffer.allocUnsafeSlow(2 * n + OUTPUT_SLACK);
  let at = 0;
  let lines = 0;
  let from = 0;
  while (from < n) {
    // Buffer's indexOf, a native search: a Uint8Array's is several times slower.
    const newline = bytes.indexOf(10, from);
    let end = newline < 0 ? n : newline;
    if (end > from && bytes[end - 1] === 13) end--;
    end = Math.min(end, from + MAX_MESSAGE_LENGTH);
    const errorHash = normalizeAsciiLine(bytes, from, end);
    if (errorHash === undefined) {
      // A line longer than MAX_MESSAGE_LENGTH, which normalizeLine cuts and normalizes on its own.
      const message = bytes.toString('latin1', from, end);
      const { template, errorHash: hash } = normalizeMessage(message);
      const line = `${hash}\t${template}\n`;
      if (at + line.length > out.length) out = grown(out, at, line.length);
      at += out.write(line, at, 'latin1');
    } else {
      // The template takes at most 3 bytes per byte of its line (a one-byte variable becomes `<*>`).
      const room = errorHash.length + 2 + 3 * (end - from);
      if (at + room > out.length) out = grown(out, at, room);
      at = writeHashBytes(out, at);
      out[at++] = 9;
      at = writeTemplateBytes(bytes, out, at);
      out[at++] = 10;
    }
    lines++;
    if (newline < 0) break;
    from = newline + 1;
  }
  return { output: out.subarray(0, at), lines };
}

/**
 * Messages that take the normalizer's rules, normalized a few times on each thread before its first block of a
 * large input. V8 optimizes a function for the paths it has seen run; a path first met later in the input (a `..`,
 * a path starting `~/`, a two-letter country domain) sends the code back to the interpreter, and the function is
 * compiled again, on another core's time: on big.log, one thread, 64 times (scanWord 8 times). Met here first,
 * once or twice. ASCII, so that they take the byte path (see warmUp for the other).
 */
export const WARM_UP_MESSAGES: readonly string[] = [
  'retry 3 of 5 failed after 12 ms, then 3.5 MB in 2 s',
  'code 0x7fff0000 at 0xDEADBEEF for object deadbeefcafebabe',
  'request 123e4567-e89b-12d3-a456-426614174000 done',
  'peer [2001:db8::1]:443 closed, fe80:: too; listening on 0.0.0.0:8080',
  'open /var/log/syslog.1 failed, and C:\\Windows\\system32 and ./run.sh and ~/a/b and ../c/d',
  'fetch https://example.com/a?b=1&c=[2] or /a/b?x=1&y=2 took 12 ms',
  'mail to jane.doe@example.org bounced; @G0::@ kept',
  'resolved db-3.prod.internal and mail.example.co.uk to 10.0.0.7',
  'connect to host.example.org:443 and cdn.example.zz:80 failed',
  'fetched api.example.io, www.example.zz; loaded org.example.io and com.example.tv',
  "unknown command \"foo bar\" from 'admin' in the users' files",
  '"GET /v2/servers/detail?limit=5 HTTP/1.1" status: 200',
  "msg=\"disk is full\" code='E 12' path='/a b/c' ok",
  'open \'/Library/Application Support/x\' failed; copy "C:\\Program Files\\X\\y.dll" to "./a b" done',
  'limits: max=10 mode=fast name = alpha logname= uid=0',
  'job #42 in queue [12345] at key:value and G::0',
  'started at 2024-01-05T12:34:56.789Z and Mon Jan 15 10:00:00 UTC 2024 ok',
  'session opened for user alice by (uid=0); Username bob',
  'values 1, 2, 3 and 4,5 then 5 6:x',
  "can't open it. Sorry! Really? 6. 1.2.3.4: ]:443 ::1",
  'loading.... done at depth.....0 and KB....',
  'a < b and <*> seen, value <*>:<*> and x=<*>',
  'block blk_-6952295868487656571 of ssh2 sent to node-7',
  '  tabs\tand   spaces  ',
];

/** The messages of WARM_UP_MESSAGES as one block, and as one that is not all ASCII. */
const WARM_UP_BLOCK = Buffer.from(`${WARM_UP_MESSAGES.join('\n')}\n`, 'latin1');
const WARM_UP_TEXT_BLOCK = Buffer.concat([WARM_UP_BLOCK, Buffer.from('caf\u00e9 \u2603 ready\n', 'utf8')]);

/**
 * Normalizes WARM_UP_MESSAGES, with nothing written, on the path of a first block that is all ASCII (`ascii`) or
 * not: input whose every block holds a non-ASCII character took the string path alone, and warmed up on the byte
 * path its code read code units from two kinds of array, slower. Three times, as V8 records which paths ran only
 * once a function has run a while.
 */
export function warmUp(ascii: boolean): void {
  const block = ascii ? WARM_UP_BLOCK : WARM_UP_TEXT_BLOCK;
  for (let pass = 0; pass < 3; pass++) normalizeBlock(new Uint8Array(block));
}

/**
 * Output room beyond twice the input, enough for most blocks (a line's output is its template and about 21 bytes);
 * a block of many short lines grows its buffer.
 */
const OUTPUT_SLACK = 64 * 1024;

/** A buffer of its own with the first `used` bytes of `buffer` and room for `more` after them. */
function grown(buffer: Buffer, used: number, more: number): Buffer {
  const larger = Buffer.allocUnsafeSlow(Math.max(2 * buffer.length, used + more));
  buffer.copy(larger, 0, 0, used);
  return larger;
}

/**
 * Runs in a worker (src/core/module-worker.ts starts it): normalizes each block it receives and posts the result,
 * and counts it in `done[0]` (shared memory), which the thread that hands out blocks reads at once: the posted
 * result reaches it only when it next turns to its event loop, and until then the worker would wait for work.
 */
export function serveNormalizeBlocks(
  done: Int32Array,
  post: (message: NormalizedBlock, transfer: ArrayBuffer[]) => void,
  port: { on(event: 'message', listener: (bytes: Uint8Array) => void): void },
): void {
  let warm = false;
  port.on('message', (bytes) => {
    if (!warm) {
      warmUp(isAscii(bytes));
      warm = true;
    }
    const block = normalizeBlock(bytes);
    post(block, [block.output.buffer as ArrayBuffer]);
    Atomics.add(done, 0, 1);
  });
}

interface Waiting {
  resolve(block: NormalizedBlock): void;
  reject(error: Error): void;
}

/** Blocks normalized by worker threads, each worker answering its blocks in the order it got them. */
class WorkerPool {
  private readonly workers: Worker[] = [];
  private readonly pending: Waiting[][] = [];
  /** Per worker: blocks handed to it, and (shared with it) blocks it has finished. */
  private readonly handed: number[] = [];
  private readonly done: Int32Array[] = [];
  private failure: Error | null = null;

  constructor(count: number) {
    for (let w = 0; w < count; w++) {
      const done = new Int32Array(new SharedArrayBuffer(4));
      const worker = startModuleWorker(import.meta.url, 'serveNormalizeBlocks', done);
      const pending: Waiting[] = [];
      worker.on('message', (message: NormalizedBlock | ModuleWorkerFailure) => {
        if ('kind' in message) this.fail(new Error(message.message));
        else pending.shift()?.resolve(message);
      });
      worker.on('error', (error) => this.fail(error));
      worker.on('exit', (code) => this.fail(new Error(`exited (code ${code}) with blocks unanswered`)));
      this.workers.push(worker);
      this.pending.push(pending);
      this.handed.push(0);
      this.done.push(done);
    }
  }

  get size(): number {
    return this.workers.length;
  }

  /** The worker with the fewest blocks unfinished, if it has fewer than BLOCKS_PER_WORKER; else -1. */
  leastBusy(): number {
    let best = -1;
    let fewest = BLOCKS_PER_WORKER;
    for (let w = 0; w < this.workers.length; w++) {
      const count = (this.handed[w] as number) - Atomics.load(this.done[w] as Int32Array, 0);
      if (count < fewest) {
        best = w;
        fewest = count;
      }
    }
    return best;
  }

  /** Hands a block to worker `w` (see leastBusy). */
  normalize(w: number, bytes: Uint8Array): Promise<NormalizedBlock> {
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending[w]?.push({ resolve, reject });
      this.handed[w] = (this.handed[w] as number) + 1;
      this.workers[w]?.postMessage(bytes, [bytes.buffer as ArrayBuffer]);
    });
  }

  async close(): Promise<void> {
    this.failure ??= new Error('closed');
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }

  private fail(cause: Error): void {
    if (this.failure !== null && this.pending.every((pending) => pending.length === 0)) return;
    const error = new LogflowError(ErrorCodes.INTERNAL, `normalize worker failed: ${cause.message}`, {
      stage: 'normalize',
      cause,
    });
    this.failure ??= error;
    for (const pending of this.pending) for (const waiting of pending.splice(0)) waiting.reject(error);
  }
}

/** One core is this thread's: it reads, writes, and normalizes whenever the workers have blocks enough. */
function defaultWorkers(): number {
  return Math.min(availableParallelism() - 1, MAX_WORKERS);
}

export async function normalizeLines(
  input: AsyncIterable<Uint8Array | string>,
  output: NodeJS.WritableStream,
  options: NormalizeLinesOptions = {},
): Promise<NormalizeLinesResult> {
  const workers = options.workers ?? defaultWorkers();
  let lines = 0;
  /** Bytes of the block being filled, in order; all but its last line are whole. */
  let parts: Uint8Array[] = [];
  let partsBytes = 0;
  /** Bytes of the last, unfinished line kept so far. */
  let openLine = 0;
  /** The unfinished line has LINE_BYTES_KEPT bytes: the rest of it, up to its newline, is dropped. */
  let skipping = false;
  let pool: WorkerPool | null = null;
  /** This thread has run warmUp. */
  let warm = false;
  /** Blocks handed out and not yet written, in input order. */
  const inFlight: Promise<NormalizedBlock>[] = [];

  let outputError: unknown = null;
  const onError = (error: unknown): void => {
    outputError ??= error;
  };
  output.on('error', onError);

  const write = async (block: NormalizedBlock): Promise<void> => {
    lines += block.lines;
    if (outputError !== null) throw outputError;
    if (block.output.length > 0 && !output.write(block.output)) await drained(output);
    if (outputError !== null) throw outputError;
  };

  const writeOldest = async (): Promise<void> => {
    const oldest = inFlight.shift();
    if (oldest !== undefined) await write(await oldest);
  };

  /** Hands the filled block on: to the workers, or, for the only block of the input, to this thread. */
  const flush = async (last: boolean): Promise<void> => {
    if (partsBytes === 0) return;
    // A block of its own (not a view into a chunk or Node's buffer pool), so that it can be transferred.
    const block = new Uint8Array(partsBytes);
    let at = 0;
    for (const part of parts) {
      block.set(part, at);
      at += part.length;
    }
    parts = [];
    partsBytes = 0;
    // Not for an input of one block: warming up takes milliseconds, that input less.
    if (!warm && !last) {
      warmUp(isAscii(block));
      warm = true;
    }
    if (pool === null && (workers === 0 || last)) {
      await write(normalizeBlock(block));
      return;
    }
    pool ??= new WorkerPool(workers);
    const w = pool.leastBusy();
    // With every worker busy this thread normalizes the block itself rather than wait: the share it takes
    // adjusts itself to what reading and writing leave it.
    const normalized = w < 0 ? Promise.resolve(normalizeBlock(block)) : pool.normalize(w, block);
    // Settled later, in order; until then a rejection is not unhandled.
    normalized.catch(() => {});
    inFlight.push(normalized);
    if (inFlight.length >= pool.size * BLOCKS_PER_WORKER + BLOCKS_AHEAD) await writeOldest();
  };

  const add = (bytes: Uint8Array): void => {
    if (bytes.length === 0) return;
    parts.push(bytes);
    partsBytes += bytes.length;
  };

  /** Adds the bytes of the unfinished last line, up to LINE_BYTES_KEPT of it. */
  const addOpenLine = (bytes: Uint8Array): void => {
    const room = LINE_BYTES_KEPT - openLine;
    if (bytes.length > room) {
      add(bytes.subarray(0, room));
      openLine = LINE_BYTES_KEPT;
      skipping = true;
    } else {
      add(bytes);
      openLine += bytes.length;
    }
  };

  const consume = async (chunk: Uint8Array): Promise<void> => {
    const n = chunk.length;
    let from = 0;
    while (from < n) {
      if (skipping) {
        const newline = chunk.indexOf(10, from);
        if (newline < 0) return;
        skipping = false;
        from = newline;
      }
      const first = chunk.indexOf(10, from);
      if (first < 0) {
        addOpenLine(chunk.subarray(from));
        return;
      }
      addOpenLine(chunk.subarray(from, first));
      skipping = false;
      openLine = 0;
      // The newline that ends the open line, and whole lines after it while the block has room (a chunk can be
      // any size: a Readable's iterator hands out everything buffered at once).
      const limit = Math.min(n, first + Math.max(1, BLOCK_BYTES - partsBytes));
      const last = chunk.lastIndexOf(10, limit - 1);
      // These lines are kept whole: the block bounds them, and normalizeBlock reads what the normalizer reads.
      add(chunk.subarray(first, last + 1));
      from = last + 1;
      if (partsBytes >= BLOCK_BYTES) await flush(false);
    }
  };

  try {
    for await (const chunk of input) {
      await consume(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
    }
    await flush(true);
    while (inFlight.length > 0) await writeOldest();
  } finally {
    output.off('error', onError);
    await (pool as WorkerPool | null)?.close();
  }
  return { lines };
}

/**
 * The bytes of `fd` from its current position to its end, in chunks of up to `size` bytes, each next read started
 * before the chunk is handed on: a stream reads its next chunk only once the last one is taken, so the thread that
 * reads waited for every read, instead of normalizing meanwhile. The fd is left open.
 */
export async function* readAhead(fd: number, size: number): AsyncGenerator<Uint8Array> {
  let next = readChunk(fd, size);
  for (;;) {
    const chunk = await next;
    if (chunk.length === 0) return;
    next = readChunk(fd, size);
    // A consumer that stops early never awaits the last read: its failure must not be an unhandled rejection.
    next.catch(() => {});
    yield chunk;
  }
}

function readChunk(fd: number, size: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const buffer = Buffer.allocUnsafeSlow(size);
    read(fd, buffer, 0, size, null, (error, bytesRead) => {
      if (error) reject(error);
      else resolve(buffer.subarray(0, bytesRead));
    });
  });
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
