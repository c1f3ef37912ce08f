/** The thread of startThreadSampler() (thread-scheduling.ts): samples until told to stop, then posts its report. */
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { ThreadSchedulingSampler, type ThreadSamplerWorkerData } from './thread-scheduling.ts';

const data = workerData as ThreadSamplerWorkerData;
const port = parentPort!;
try {
  // On Linux setpriority(0) is the calling thread only.
  setPriority(0, -20);
} catch {
  // Not permitted: sample at normal priority (the report's longest interval shows the cost).
}
const allowed = new Set(data.allowedTids);
const sampler = new ThreadSchedulingSampler(data.pid, (t) => allowed.has(t.tid), data.intervalMs);
port.postMessage('started');
port.once('message', () => {
  sampler.sample();
  port.postMessage(sampler.stop());
});
