/** Cleanup of a chaos run: everything it started goes, on success, failure or Ctrl-C. */
import { readdirSync, readFileSync } from 'node:fs';

const cleanups: Array<() => Promise<void>> = [];
let cleaning: Promise<void> | null = null;

/** Runs at the end of the run (last registered first). */
export function registerCleanup(fn: () => Promise<void>): void {
  cleanups.push(fn);
}

/** Waits for `p` (its failure ignored), at most `ms`. */
export function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    void p.catch(() => undefined).finally(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Our own child processes (by /proc parent pid) that are MCUs, standbys or the browser: killed by pid. */
export function killOwnChildren(): number[] {
  const killed: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== process.pid) continue;
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (!/(mcu|standby)\/src\/main\.ts|chrom/.test(cmd)) continue;
      process.kill(Number(entry), 'SIGKILL');
      killed.push(Number(entry));
    } catch {
      // Gone already.
    }
  }
  return killed;
}

/** Idempotent: runs every registered cleanup (each bounded to 10 s), then kills leftover children. */
export function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const fn of cleanups.reverse()) await withTimeout(fn(), 10_000);
    const stragglers = killOwnChildren();
    if (stragglers.length > 0) console.error(`killed leftover child processes: ${stragglers.join(', ')}`);
  })();
  return cleaning;
}
