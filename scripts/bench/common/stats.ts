/** Summary statistics shared by the benchmarks: nearest-rank percentiles over a sample. */

export interface Summary {
  n: number;
  min: number;
  median: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile of an ascending-sorted sample. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Rounded to microseconds when the samples are milliseconds. */
export function summarize(samples: readonly number[], decimals = 3): Summary {
  const s = [...samples].sort((a, b) => a - b);
  const scale = 10 ** decimals;
  const round = (v: number): number => Math.round(v * scale) / scale;
  if (s.length === 0) return { n: 0, min: NaN, median: NaN, p50: NaN, p90: NaN, p95: NaN, p99: NaN, max: NaN, mean: NaN };
  const median = round(percentile(s, 50));
  return {
    n: s.length,
    min: round(s[0]!),
    median,
    p50: median,
    p90: round(percentile(s, 90)),
    p95: round(percentile(s, 95)),
    p99: round(percentile(s, 99)),
    max: round(s[s.length - 1]!),
    mean: round(s.reduce((a, b) => a + b, 0) / s.length),
  };
}
