/**
 * The generator on its own thread. Making up realistic logs costs about a
 * fifth of the main thread's time per log in `npm start`, where the main
 * thread also validates, normalizes and routes every log and is the limit on
 * throughput; here it overlaps with that work instead. Each generated second
 * crosses as one packed block whose buffers are transferred, not copied, and
 * its values arrive as Buffers ready for a producer.
 */
import { Observable } from 'rxjs';
import { LogflowError, ErrorCodes } from '../core/errors.ts';
import { startModuleWorker } from '../core/module-worker.ts';
import type { OutgoingMessage } from './topics.ts';
import { generateLogs, type GeneratedLog, type GeneratorOptions } from './generator.ts';

/** What the worker can be given: the generator's options without a scheduler (it paces on its own clock). */
export type WorkerGeneratorOptions = Omit<GeneratorOptions, 'scheduler'>;

export interface PackedSecond {
  readonly second: number;
  /** Distinct keys of this second; keyIndex points into them. */
  readonly keys: readonly string[];
  readonly keyIndex: Uint16Array;
  /** End of each value in data, in bytes. */
  readonly ends: Uint32Array;
  readonly data: Uint8Array;
}

type WorkerMessage =
  | { readonly kind: 'second'; readonly packed: PackedSecond }
  | { readonly kind: 'done' }
  | { readonly kind: 'error'; readonly message: string };

export function packSecond(second: number, logs: readonly GeneratedLog[]): PackedSecond {
  const keys: string[] = [];
  const keyNumbers = new Map<string, number>();
  const keyIndex = new Uint16Array(logs.length);
  const ends = new Uint32Array(logs.length);
  let bytes = 0;
  for (let i = 0; i < logs.length; i++) {
    const log = logs[i]!;
    let k = keyNumbers.get(log.key);
    if (k === undefined) {
      k = keys.length;
      keys.push(log.key);
      keyNumbers.set(log.key, k);
    }
    keyIndex[i] = k;
    bytes += Buffer.byteLength(log.value);
    ends[i] = bytes;
  }
  const data = Buffer.allocUnsafeSlow(bytes);
  let at = 0;
  for (const log of logs) at += data.write(log.value, at);
  return { second, keys, keyIndex, ends, data };
}

export function unpackSecond(packed: PackedSecond): { readonly second: number; readonly logs: OutgoingMessage[] } {
  const { keys, keyIndex, ends, data } = packed;
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const logs: OutgoingMessage[] = new Array<OutgoingMessage>(ends.length);
  let start = 0;
  for (let i = 0; i < ends.length; i++) {
    const end = ends[i]!;
    logs[i] = { key: keys[keyIndex[i]!]!, value: bytes.subarray(start, end) };
    start = end;
  }
  return { second: packed.second, logs };
}

/** Runs in the worker (src/core/module-worker.ts starts it): generates as generateLogs does and posts each second. */
export async function runGeneratorWorker(
  { options, credits }: { readonly options: WorkerGeneratorOptions; readonly credits: Int32Array | undefined },
  post: (message: WorkerMessage, transfer: ArrayBuffer[]) => void,
): Promise<void> {
  await new Promise<void>((resolve) => {
    generateLogs(options).subscribe({
      next: ({ second, logs }) => {
        if (credits !== undefined) {
          // Blocks this thread only: it has nothing else to do until the main thread has taken a second off its hands.
          let available: number;
          while ((available = Atomics.load(credits, 0)) <= 0) Atomics.wait(credits, 0, available, 200);
          Atomics.sub(credits, 0, 1);
        }
        const packed = packSecond(second, logs);
        post({ kind: 'second', packed }, [
          packed.keyIndex.buffer as ArrayBuffer,
          packed.ends.buffer as ArrayBuffer,
          packed.data.buffer as ArrayBuffer,
        ]);
      },
      error: (error: unknown) => {
        post({ kind: 'error', message: error instanceof Error ? error.message : String(error) }, []);
        resolve();
      },
      complete: () => {
        post({ kind: 'done' }, []);
        resolve();
      },
    });
  });
}

export interface WorkerSecond {
  readonly second: number;
  readonly logs: readonly OutgoingMessage[];
  /**
   * Says the second has been dealt with: with `maxAhead`, the worker makes no more than that many seconds not yet
   * released.
   */
  readonly release: () => void;
}

/**
 * generateLogs' output from a worker thread, with values as Buffers;
 * unsubscribing stops the worker. Without `maxAhead` the worker keeps its own
 * pace whatever happens to its seconds; with it, a consumer slower than the
 * generator slows the generator instead of piling seconds up in memory.
 */
export function generateLogsInWorker(options: WorkerGeneratorOptions, maxAhead?: number): Observable<WorkerSecond> {
  if (maxAhead !== undefined && !(Number.isInteger(maxAhead) && maxAhead >= 1))
    throw new RangeError(`maxAhead must be an integer >= 1, got ${maxAhead}`);
  return new Observable((subscriber) => {
    const credits = maxAhead === undefined ? undefined : new Int32Array(new SharedArrayBuffer(4)).fill(maxAhead);
    const worker = startModuleWorker(import.meta.url, 'runGeneratorWorker', { options, credits });
    let finished = false;
    worker.on('message', (message: WorkerMessage) => {
      if (message.kind === 'second') {
        let released = false;
        const release = () => {
          if (released || credits === undefined) return;
          released = true;
          Atomics.add(credits, 0, 1);
          Atomics.notify(credits, 0);
        };
        subscriber.next({ ...unpackSecond(message.packed), release });
      } else if (message.kind === 'done') {
        finished = true;
        subscriber.complete();
      } else {
        finished = true;
        subscriber.error(
          new LogflowError(ErrorCodes.INTERNAL, `generator worker failed: ${message.message}`, { stage: 'source' }),
        );
      }
    });
    worker.on('error', (error) => {
      finished = true;
      subscriber.error(
        new LogflowError(ErrorCodes.INTERNAL, `generator worker failed: ${error.message}`, {
          stage: 'source',
          cause: error,
        }),
      );
    });
    worker.on('exit', (code) => {
      if (!finished)
        subscriber.error(
          new LogflowError(ErrorCodes.INTERNAL, `generator worker exited (code ${code}) before it finished`, {
            stage: 'source',
          }),
        );
    });
    return () => {
      finished = true;
      void worker.terminate();
    };
  });
}
