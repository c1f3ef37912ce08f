/** Wall clock in epoch milliseconds with sub-millisecond resolution (comparable across processes). */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}
