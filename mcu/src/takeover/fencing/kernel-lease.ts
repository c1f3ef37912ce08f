/**
 * The primary's lease on its own kernel (host-firewall.ts, rule `lease`).
 *
 * Output commit keeps a frozen primary's *process* from writing, but its kernel goes on running:
 * it acknowledges every client segment that reaches it (on a shared segment all of them do). If
 * the standby takes over meanwhile, a segment that arrives between the standby's last look at
 * its capture and its rebuilt socket going live is dropped by the standby and acknowledged by
 * the frozen primary's kernel: the client never sends it again and the rebuilt connection
 * stalls at that hole for good.
 *
 * So the heartbeat thread, which the standby's verdict is about, renews an nftables set element
 * with a timeout shorter than the standby's verdict on every beat. When the beats stop (SIGSTOP,
 * a starved host, a stuck main thread) the element expires before the standby can promote, and
 * the host's firewall drops everything the process's sockets send on the service port,
 * acknowledgements included: the client retransmits to whoever holds the connection next.
 *
 * One long-lived `nft -i` reads the renewals (one transaction per line: flush and re-add, so the
 * timeout restarts); it runs at real-time priority so that load does not let the lease lapse.
 */
import { spawn, execFile, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { FIREWALL_TABLE, LEASE_SET } from './host-firewall.ts';

export interface KernelLeaseSpec {
  /** The guarded service port (the set's element). */
  port: number;
  /** Lifetime of each renewal, ms: shorter than the standby's verdict on a silent primary. */
  ttlMs: number;
  /** SCHED_FIFO priority of the `nft` process (0: leave it alone). */
  rtPriority: number;
}

export type KernelLeaseState = 'starting' | 'renewing' | 'failed' | 'closed';

export class KernelLease {
  readonly #spec: KernelLeaseSpec;
  readonly #onFailure: (detail: string) => void;
  readonly #line: string;
  #nft: ChildProcessWithoutNullStreams | null = null;
  #state: KernelLeaseState = 'starting';
  #stderr = '';

  constructor(spec: KernelLeaseSpec, onFailure: (detail: string) => void) {
    if (!Number.isInteger(spec.port) || spec.port < 1 || spec.port > 65535) throw new RangeError(`kernel lease: bad port ${spec.port}`);
    if (!Number.isInteger(spec.ttlMs) || spec.ttlMs < 1) throw new RangeError(`kernel lease: ttlMs must be a positive integer, got ${spec.ttlMs}`);
    this.#spec = spec;
    this.#onFailure = onFailure;
    this.#line = `flush set inet ${FIREWALL_TABLE} ${LEASE_SET}; add element inet ${FIREWALL_TABLE} ${LEASE_SET} { ${spec.port} timeout ${spec.ttlMs}ms }\n`;
    const nft = spawn('nft', ['-i'], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#nft = nft;
    nft.stdout.resume();
    nft.stderr.setEncoding('utf8');
    nft.stderr.on('data', (chunk: string) => {
      // nft names the first problem (no table: the host set-up did not run) on its first line.
      this.#stderr += chunk;
      const first = this.#stderr.split('\n').find((l) => l.trim() !== '');
      if (first) this.#fail(`nft: ${first.trim()}`);
    });
    nft.stdin.on('error', () => undefined);
    nft.on('error', (err) => this.#fail(`cannot run nft: ${err.message}`));
    nft.on('exit', (code, signal) => this.#fail(`nft exited (${signal ?? code})`));
    nft.on('spawn', () => {
      if (spec.rtPriority > 0 && nft.pid !== undefined) {
        // Best effort: without it the lease may lapse under load (output delayed, never lost).
        execFile('chrt', ['-f', '-p', String(spec.rtPriority), String(nft.pid)], () => undefined);
      }
    });
  }

  get state(): KernelLeaseState {
    return this.#state;
  }

  /** Restarts the lease's timeout (skipped while nft has not read the previous renewal). */
  renew(): void {
    const nft = this.#nft;
    if (!nft || this.#state === 'failed' || this.#state === 'closed') return;
    if (nft.stdin.writableNeedDrain) return;
    nft.stdin.write(this.#line);
    this.#state = 'renewing';
  }

  /**
   * Ends the lease at once (a fenced primary, a stop): the firewall drops the service port's
   * output from now on instead of after the last renewal's timeout. Then close().
   */
  revoke(): void {
    const nft = this.#nft;
    if (nft && this.#state === 'renewing') nft.stdin.write(`flush set inet ${FIREWALL_TABLE} ${LEASE_SET}\n`);
    this.close();
  }

  /** Idempotent. The element keeps its last timeout and lapses by itself. */
  close(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    const nft = this.#nft;
    this.#nft = null;
    if (nft) {
      nft.removeAllListeners('exit');
      // nft reads what is left (a revocation) and exits at end of input; a stuck one is killed.
      nft.stdin.end();
      setTimeout(() => nft.kill('SIGTERM'), 1000).unref();
    }
  }

  #fail(detail: string): void {
    if (this.#state === 'failed' || this.#state === 'closed') return;
    this.#state = 'failed';
    const nft = this.#nft;
    this.#nft = null;
    nft?.kill('SIGTERM');
    this.#onFailure(detail);
  }
}

/**
 * The renewal lifetime for a standby that judges a silent primary dead after `verdictMs` (missed
 * beats plus confirm window): one beat interval short of it, so the lease has lapsed before any
 * verdict, and never below two intervals.
 */
export function kernelLeaseTtlMs(verdictMs: number, intervalMs: number): number {
  return Math.max(2 * intervalMs, Math.floor(verdictMs - intervalMs));
}
