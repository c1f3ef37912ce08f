/**
 * The scheduling of every thread of a process as the kernel reports it (/proc/<pid>/task/<tid>/stat),
 * and a sampler that records which threads were ever seen real-time (SCHED_FIFO/SCHED_RR):
 * the real-time-threads test and the false-takeover benchmark check with it that only the
 * heartbeat threads of an MCU are.
 */
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { startTsWorker } from '../../mcu/src/core/ts-worker.ts';

/** Linux scheduling policies as /proc reports them (field 41). */
export const SCHED_OTHER = 0;
export const SCHED_FIFO = 1;
export const SCHED_RR = 2;

export interface ThreadScheduling {
  tid: number;
  name: string;
  policy: number;
  /** Real-time priority (0 for normal threads). */
  priority: number;
  nice: number;
}

/** Parses /proc/<pid>/task/<tid>/stat: the name sits in parentheses and may itself hold spaces or ')'. */
export function parseThreadStat(tid: number, stat: string): ThreadScheduling | null {
  const open = stat.indexOf('(');
  const close = stat.lastIndexOf(')');
  if (open < 0 || close < open) return null;
  // Fields from 3 (state) on: nice is field 19, rt_priority field 40, policy field 41.
  const fields = stat.slice(close + 2).split(' ');
  const nice = Number(fields[19 - 3]);
  const priority = Number(fields[40 - 3]);
  const policy = Number(fields[41 - 3]);
  if (!Number.isInteger(priority) || !Number.isInteger(policy) || !Number.isInteger(nice)) return null;
  return { tid, name: stat.slice(open + 1, close), policy, priority, nice };
}

export function isRealtime(t: ThreadScheduling): boolean {
  return t.policy === SCHED_FIFO || t.policy === SCHED_RR;
}

/** Every thread of `pid` now (threads that end while being read are left out); empty once the process is gone. */
export function readThreads(pid: number): ThreadScheduling[] {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const threads: ThreadScheduling[] = [];
  for (const t of tids) {
    try {
      const thread = parseThreadStat(Number(t), readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8'));
      if (thread) threads.push(thread);
    } catch {
      // Ended meanwhile.
    }
  }
  return threads;
}

export interface ThreadSamplerReport {
  samples: number;
  /** Longest interval between two samples, ms (how short-lived a real-time episode could escape). */
  longestIntervalMs: number;
  /** Intervals between two samples longer than 50 ms (a loaded machine delays even the sampler now and then). */
  slowIntervals: number;
  /** Distinct threads seen. */
  threadsSeen: number;
  /** Thread names seen, with how many distinct threads had each. */
  names: Record<string, number>;
  /** Every real-time thread seen outside `allowed`, first sighting each. */
  unexpectedRealtime: Array<ThreadScheduling & { atMs: number }>;
}

/**
 * Samples every thread of a process every `intervalMs` (synchronous reads, so a sample is one
 * pass) until stop(), recording real-time threads that are not in `allowed` (the heartbeat
 * threads' tids, or a predicate).
 */
export class ThreadSchedulingSampler {
  readonly #pid: number;
  readonly #allowed: (t: ThreadScheduling) => boolean;
  readonly #timer: NodeJS.Timeout;
  readonly #startedAt = performance.now();
  #last = performance.now();
  #samples = 0;
  #longestIntervalMs = 0;
  #slowIntervals = 0;
  readonly #seen = new Map<number, string>();
  readonly #unexpected = new Map<number, ThreadScheduling & { atMs: number }>();

  constructor(pid: number, allowed: (t: ThreadScheduling) => boolean, intervalMs = 2) {
    this.#pid = pid;
    this.#allowed = allowed;
    this.#timer = setInterval(() => this.sample(), intervalMs);
    this.#timer.unref();
  }

  sample(): void {
    const now = performance.now();
    this.#longestIntervalMs = Math.max(this.#longestIntervalMs, now - this.#last);
    if (now - this.#last > 50) this.#slowIntervals++;
    this.#last = now;
    this.#samples++;
    for (const t of readThreads(this.#pid)) {
      this.#seen.set(t.tid, t.name);
      if (isRealtime(t) && !this.#allowed(t) && !this.#unexpected.has(t.tid)) this.#unexpected.set(t.tid, { ...t, atMs: Math.round(now - this.#startedAt) });
    }
  }

  stop(): ThreadSamplerReport {
    clearInterval(this.#timer);
    const names: Record<string, number> = {};
    for (const name of this.#seen.values()) names[name] = (names[name] ?? 0) + 1;
    return {
      samples: this.#samples,
      longestIntervalMs: Math.round(this.#longestIntervalMs * 10) / 10,
      slowIntervals: this.#slowIntervals,
      threadsSeen: this.#seen.size,
      names,
      unexpectedRealtime: [...this.#unexpected.values()],
    };
  }
}

/** What the sampler thread needs (workerData of thread-sampler-worker.ts). */
export interface ThreadSamplerWorkerData {
  pid: number;
  /** Tids allowed to be real-time (the heartbeat threads). */
  allowedTids: number[];
  intervalMs: number;
}

/**
 * A ThreadSchedulingSampler on a thread of its own at nice -20 (when permitted): the sampling
 * must not depend on this process's event loop, which a loaded machine delays for hundreds of
 * milliseconds (longer than a real-time episode lasts). stop() resolves with its report.
 */
export async function startThreadSampler(pid: number, allowedTids: number[], intervalMs = 5): Promise<{ stop(): Promise<ThreadSamplerReport> }> {
  const data: ThreadSamplerWorkerData = { pid, allowedTids, intervalMs };
  const worker = startTsWorker(new URL('./thread-sampler-worker.ts', import.meta.url), { ...data });
  await once(worker, 'message');
  let report: Promise<ThreadSamplerReport> | null = null;
  return {
    stop() {
      report ??= (async () => {
        worker.postMessage('stop');
        const [result] = (await once(worker, 'message')) as [ThreadSamplerReport];
        await worker.terminate();
        return result;
      })();
      return report;
    },
  };
}
