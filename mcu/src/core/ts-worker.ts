import { Worker } from 'node:worker_threads';

/** Starts a worker thread running a TypeScript module of this project. */
export function startTsWorker(entry: URL, workerData: Record<string, unknown>): Worker {
  return new Worker(new URL('./ts-worker-boot.mjs', import.meta.url), {
    workerData: { ...workerData, __entry: entry.href },
    // The worker's own stdout/stderr go through the main thread; keep logs there.
    stdout: false,
    stderr: false,
  });
}
