/**
 * What the soak's MCU processes hold, read from /proc (the lab's hosts are network namespaces
 * only: the pids are this machine's): resident memory, open file descriptors, threads. Sampled
 * after every failover; the trend per role (the first quarter of the run against the last) says
 * whether anything leaks across failovers.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { percentile } from '../common/stats.ts';

export type ProcessRole = 'primary' | 'standby';

export interface ProcessResources {
  rssKb: number;
  fds: number;
  threads: number;
}

export interface ResourceSample extends ProcessResources {
  /** The failover after which it was taken (0: before the first). */
  failover: number;
  at: number;
  role: ProcessRole;
  pid: number;
}

export type ResourceMetric = keyof ProcessResources;
export const RESOURCE_METRICS: readonly ResourceMetric[] = ['rssKb', 'fds', 'threads'];

/**
 * How much the last quarter's median may exceed the first quarter's before the metric counts as
 * growing: a relative and an absolute allowance, the larger wins (a fresh standby's RSS varies by
 * tens of MB with what it replicated; a few fds and threads come and go with the load).
 */
export const FLAT_ALLOWANCE: Record<ResourceMetric, { ratio: number; absolute: number }> = {
  rssKb: { ratio: 0.25, absolute: 40 * 1024 },
  fds: { ratio: 0.15, absolute: 10 },
  threads: { ratio: 0.15, absolute: 4 },
};

export interface ResourceTrend {
  role: ProcessRole;
  metric: ResourceMetric;
  samples: number;
  /** Medians over the first and the last quarter of the failovers (at least one sample each). */
  firstQuarter: number;
  lastQuarter: number;
  /** lastQuarter - firstQuarter. */
  change: number;
  /** Within FLAT_ALLOWANCE. */
  flat: boolean;
}

/** RSS, fds and threads of a live process; null when it is gone, exiting or not readable. */
export function readProcessResources(pid: number): ProcessResources | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    const threads = /^Threads:\s+(\d+)/m.exec(status);
    // A process on its way out (a zombie) has no memory left to report: not a sample.
    if (!rss || !threads) return null;
    return { rssKb: Number(rss[1]), fds: readdirSync(`/proc/${pid}/fd`).length, threads: Number(threads[1]) };
  } catch {
    return null;
  }
}

/** First quarter against last quarter of the run, per role and metric (needs samples from at least two failovers). */
export function resourceTrends(samples: readonly ResourceSample[]): ResourceTrend[] {
  const trends: ResourceTrend[] = [];
  for (const role of ['primary', 'standby'] as const) {
    const mine = samples.filter((s) => s.role === role);
    const failovers = [...new Set(mine.map((s) => s.failover))].sort((a, b) => a - b);
    if (failovers.length < 2) continue;
    const quarter = Math.max(1, Math.floor(failovers.length / 4));
    const first = new Set(failovers.slice(0, quarter));
    const last = new Set(failovers.slice(-quarter));
    for (const metric of RESOURCE_METRICS) {
      const a = medianOf(mine.filter((s) => first.has(s.failover)).map((s) => s[metric]));
      const b = medianOf(mine.filter((s) => last.has(s.failover)).map((s) => s[metric]));
      const allowance = FLAT_ALLOWANCE[metric];
      trends.push({ role, metric, samples: mine.length, firstQuarter: a, lastQuarter: b, change: b - a, flat: b - a <= Math.max(allowance.absolute, a * allowance.ratio) });
    }
  }
  return trends;
}

function medianOf(values: number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}
