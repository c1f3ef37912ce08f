// Boots a TypeScript worker thread: the tsx hooks of the main thread do not reach workers.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.__entry);
