import { readFileSync } from 'node:fs';

/**
 * Records when the event loop was blocked, with a 1 ms timer: each late firing is a stall
 * (start, length). The mixer's clocks run on this loop, so a stall during a promotion is a
 * stretch without mixed audio; the failover timeline shows where they are.
 */
export interface LoopStall {
  /** When the stall started, epoch ms. */
  at: number;
  ms: number;
  /** Of which the thread ran (on a CPU) / waited for a CPU, from /proc/thread-self/schedstat. */
  runMs: number | null;
  waitMs: number | null;
}

/** [ran, waited for a CPU] of the calling thread so far, ns (Linux; null elsewhere). */
function schedstat(): [number, number] | null {
  try {
    const [run, wait] = readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ');
    return [Number(run), Number(wait)];
  } catch {
    return null;
  }
}

export class LoopStallRecorder {
  readonly stalls: LoopStall[] = [];
  readonly #thresholdMs: number;
  #timer: NodeJS.Timeout | null = null;
  #last = 0;

  constructor(thresholdMs = 8) {
    this.#thresholdMs = thresholdMs;
  }

  start(): this {
    if (this.#timer) return this;
    this.#last = performance.now();
    let sched = schedstat();
    this.#timer = setInterval(() => {
      const now = performance.now();
      const late = now - this.#last;
      const next = schedstat();
      if (late > this.#thresholdMs && this.stalls.length < 1000) {
        const ms = (i: 0 | 1): number | null => (sched && next ? Math.round((next[i] - sched[i]) / 1e6) : null);
        this.stalls.push({ at: performance.timeOrigin + this.#last, ms: Math.round(late), runMs: ms(0), waitMs: ms(1) });
      }
      sched = next;
      this.#last = now;
    }, 1);
    return this;
  }

  /** Stops and returns the stalls relative to `origin` (epoch ms): [startMs, lengthMs, ranMs, waitedMs]. */
  stop(origin: number): Array<[number, number, number | null, number | null]> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    return this.stalls.map((s) => [Math.round(s.at - origin), s.ms, s.runMs, s.waitMs]);
  }
}
