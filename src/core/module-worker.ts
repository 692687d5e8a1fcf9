/**
 * A worker thread that runs one exported function of a module. The worker is
 * started by evaluated code that imports the module: compiled (dist/, as
 * bin/logflow.js runs it) the module is JavaScript, and run from src/ (tsx,
 * vitest) the code registers tsx first, since a worker thread does not inherit
 * the loader of the thread that started it.
 */
import { Worker, type ResourceLimits } from 'node:worker_threads';

/** What the worker posts if importing the module or its function fails. */
export interface ModuleWorkerFailure {
  readonly kind: 'error';
  readonly message: string;
}

const SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  if (workerData.tsx !== undefined) (await import(workerData.tsx)).register();
  const module = await import(workerData.module);
  await module[workerData.entry](workerData.data, (message, transfer) => parentPort.postMessage(message, transfer), parentPort);
})().catch((error) => parentPort.postMessage({ kind: 'error', message: String((error && error.stack) || error) }));
`;

/**
 * Starts a worker that calls `entry(data, post, port)` of the module at `moduleUrl` (pass `import.meta.url`), where
 * `post(message, transfer)` posts to this thread and `port` is the worker's parentPort, to receive on. `data` is
 * copied with the structured clone algorithm (shared memory stays shared). `resourceLimits` bound the worker's V8
 * heap: a worker beyond them ends with ERR_WORKER_OUT_OF_MEMORY, and the process goes on.
 */
export function startModuleWorker(
  moduleUrl: string,
  entry: string,
  data: unknown,
  options: { readonly resourceLimits?: ResourceLimits } = {},
): Worker {
  return new Worker(SOURCE, {
    eval: true,
    ...(options.resourceLimits === undefined ? {} : { resourceLimits: options.resourceLimits }),
    workerData: {
      // tsx is a dev dependency: resolved only when running the TypeScript sources.
      tsx: moduleUrl.endsWith('.ts') ? import.meta.resolve('tsx/esm/api') : undefined,
      module: moduleUrl,
      entry,
      data,
    },
  });
}
