import { execFile } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { setPriority } from 'node:os';
import type { RealtimeConfig } from './config.ts';
import type { Logger } from './logger.ts';

/**
 * SCHED_FIFO priority of the heartbeat threads (beacon and monitor): the highest. libwebrtc
 * (@roamhq/wrtc) runs its own threads at FIFO 49 (encoders, pacer) and 98 (video decoding) when
 * the process may: at FIFO 10 a heartbeat thread waited behind a video decode on this 2-core
 * machine, and the standby took over a live primary. The heartbeat threads work microseconds
 * per beat, so at 99 they cost the media nothing.
 */
export const HEARTBEAT_RT_PRIORITY = 99;

/**
 * Gives the calling thread a real-time (SCHED_FIFO) priority, so a loaded machine cannot
 * delay it: the heartbeat threads use it (a late heartbeat is a false takeover). Needs
 * root or CAP_SYS_NICE; without it the thread stays at normal priority and says why.
 */
export function makeCurrentThreadRealtime(priority: number): Promise<{ ok: boolean; tid: string; detail: string }> {
  let tid = '';
  try {
    // "/proc/thread-self" -> "<pid>/task/<tid>"
    tid = readlinkSync('/proc/thread-self').split('/').pop() ?? '';
  } catch (err) {
    return Promise.resolve({ ok: false, tid, detail: `cannot find the thread id: ${(err as Error).message}` });
  }
  return new Promise((resolve) => {
    execFile('chrt', ['-f', '-p', String(priority), tid], { timeout: 2000 }, (err, _out, stderr) => {
      if (err) resolve({ ok: false, tid, detail: `chrt failed (${stderr.trim() || err.message}): heartbeats run at normal priority` });
      else resolve({ ok: true, tid, detail: `SCHED_FIFO priority ${priority}` });
    });
  });
}

/** Linux scheduling policies as /proc/<pid>/task/<tid>/stat reports them (field 41). */
const SCHED_FIFO = 1;
const SCHED_RR = 2;

export interface RealtimeThread {
  tid: number;
  name: string;
  policy: number;
  priority: number;
  nice: number;
}

/** Parses /proc/<pid>/task/<tid>/stat: the name sits in parentheses and may itself hold spaces or ')'. */
export function parseThreadStat(tid: number, stat: string): RealtimeThread | null {
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

export interface RealtimeLimiterStats {
  /** Threads set back to normal scheduling so far. */
  demoted: number;
  failures: number;
  /** Names of the threads demoted, with counts. */
  names: Record<string, number>;
}

/**
 * Keeps real-time scheduling for the heartbeat threads alone. libwebrtc runs its encoder and
 * pacer threads at SCHED_FIFO 49 and its video decoding at 98 when the process may (root): on
 * a 2-core machine, the encoders a failover starts (one key frame per participant) then took
 * every CPU from the JS thread that mixes the audio, for 100-200 ms right when the mix moved to
 * the spare paths. Every real-time thread below the heartbeat priority is set back to normal
 * scheduling, at start and then every `intervalMs` (libwebrtc makes threads per peer connection).
 * The main thread, the real-time path of this design (mixing, signaling), gets `mainNice`; other
 * threads that inherited it are set back to 0.
 */
export class RealtimeThreadLimiter {
  readonly #intervalMs: number;
  readonly #mainNice: number;
  readonly #demote: (tid: number) => Promise<void>;
  readonly #onDemoted: (threads: RealtimeThread[], failures: string[]) => void;
  #timer: NodeJS.Timeout | null = null;
  #scanning = false;
  readonly #stats: RealtimeLimiterStats = { demoted: 0, failures: 0, names: {} };

  constructor(options: {
    intervalMs?: number;
    /** Nice value of the main (JS) thread, which mixes the audio and runs signaling (default 0: unchanged). */
    mainNice?: number;
    /** Sets one thread to SCHED_OTHER (default: the native addon, or `chrt -o` without it). */
    demote?: (tid: number) => Promise<void>;
    onDemoted?: (threads: RealtimeThread[], failures: string[]) => void;
  } = {}) {
    this.#intervalMs = options.intervalMs ?? 250;
    this.#mainNice = options.mainNice ?? 0;
    this.#demote = options.demote ?? demoteThread;
    this.#onDemoted = options.onDemoted ?? (() => undefined);
  }

  start(): this {
    if (this.#timer || process.platform !== 'linux') return this;
    if (this.#mainNice !== 0) {
      try {
        // The calling (main) thread only: on Linux setpriority applies to one thread.
        setPriority(0, this.#mainNice);
      } catch (err) {
        this.#onDemoted([], [`main thread nice ${this.#mainNice}: ${(err as Error).message}`]);
      }
    }
    void this.scan();
    this.#timer = setInterval(() => void this.scan(), this.#intervalMs);
    this.#timer.unref();
    return this;
  }

  /** One pass over this process's threads; resolves with the threads demoted. */
  async scan(): Promise<RealtimeThread[]> {
    if (this.#scanning) return [];
    this.#scanning = true;
    try {
      const tids = await readdir('/proc/self/task').catch(() => [] as string[]);
      const found: RealtimeThread[] = [];
      await Promise.all(
        tids.map(async (t) => {
          const stat = await readFile(`/proc/self/task/${t}/stat`, 'utf8').catch(() => null);
          const thread = stat === null ? null : parseThreadStat(Number(t), stat);
          if (!thread || thread.tid === process.pid) return;
          if ((thread.policy === SCHED_FIFO || thread.policy === SCHED_RR) && thread.priority < HEARTBEAT_RT_PRIORITY) found.push(thread);
          // Threads started from the main thread inherit its raised priority: only it keeps it.
          else if (thread.policy === 0 && thread.nice < 0) {
            try {
              setPriority(thread.tid, 0);
            } catch {
              // Gone meanwhile.
            }
          }
        }),
      );
      const demoted: RealtimeThread[] = [];
      const failures: string[] = [];
      for (const thread of found) {
        try {
          await this.#demote(thread.tid);
          demoted.push(thread);
          this.#stats.demoted++;
          this.#stats.names[thread.name] = (this.#stats.names[thread.name] ?? 0) + 1;
        } catch (err) {
          this.#stats.failures++;
          failures.push(`${thread.name}/${thread.tid}: ${(err as Error).message}`);
        }
      }
      if (demoted.length > 0 || failures.length > 0) this.#onDemoted(demoted, failures);
      return demoted;
    } finally {
      this.#scanning = false;
    }
  }

  stats(): RealtimeLimiterStats {
    return { ...this.#stats, names: { ...this.#stats.names } };
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }
}

/** SCHED_OTHER for one thread: a syscall through the native addon when it is built, `chrt -o` otherwise. */
async function demoteThread(tid: number): Promise<void> {
  try {
    const native = await import('../../../native/src/index.ts');
    if (native.nativeAddonAvailable()) {
      native.setThreadNormal(tid);
      return;
    }
  } catch {
    // No addon: chrt below.
  }
  await new Promise<void>((resolve, reject) => {
    execFile('chrt', ['-o', '-p', '0', String(tid)], { timeout: 2000 }, (err, _out, stderr) => (err ? reject(new Error(stderr.trim() || err.message)) : resolve()));
  });
}

let running: RealtimeThreadLimiter | null = null;

/**
 * libwebrtc just made threads (a peer connection was created or negotiated): scan at once
 * rather than at the next period, before a fresh encoder spends its first key frames at FIFO.
 */
export function scanRealtimeThreadsSoon(): void {
  const limiter = running;
  if (!limiter) return;
  setTimeout(() => void limiter.scan(), 0).unref();
}

/**
 * Starts the RealtimeThreadLimiter for this process (MCU or standby), logging what it demotes.
 * realtime.mediaRealtime leaves libwebrtc's real-time threads alone.
 */
export function limitRealtimeThreads(log: Logger, config: RealtimeConfig): RealtimeThreadLimiter | null {
  if (config.mediaRealtime) return null;
  running?.close();
  running = new RealtimeThreadLimiter({
    mainNice: config.mainNice,
    onDemoted: (threads, failures) => {
      if (threads.length > 0) {
        log.info('real-time media threads set to normal scheduling (only the heartbeat threads stay real-time)', {
          threads: threads.map((t) => `${t.name}/${t.tid}@${t.priority}`).join(' '),
        });
      }
      if (failures.length > 0) log.warn('could not lower the scheduling of real-time media threads', { failures: failures.join('; ') });
    },
  }).start();
  return running;
}
