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
 * Its stdin is a pipe whose write end the heartbeat thread holds (HeartbeatBeacon.start:
 * `attachLease`): the native thread writes a renewal on every beat, and the revocation when it
 * stops, without the main thread (native/addon/heartbeat_beacon.cc). This class starts and
 * watches nft and owns its copy of the write end.
 */
import { spawn, execFile, type ChildProcessByStdio } from 'node:child_process';
import { closeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { createLeasePipe } from '../../../../native/src/index.ts';
import { FIREWALL_TABLE, LEASE_SET } from './host-firewall.ts';

export interface KernelLeaseSpec {
  /** The guarded service port (the set's element). */
  port: number;
  /** Lifetime of each renewal, ms: shorter than the standby's verdict on a silent primary. */
  ttlMs: number;
  /** SCHED_FIFO priority of the `nft` process (0: leave it alone). */
  rtPriority: number;
}

export type KernelLeaseState = 'running' | 'failed' | 'closed';

/** What the heartbeat thread writes: `renewal` on every beat, `revocation` when it stops, to `fd`. */
export interface KernelLeaseRenewal {
  fd: number;
  renewal: string;
  revocation: string;
}

export class KernelLease {
  readonly #spec: KernelLeaseSpec;
  readonly #onFailure: (detail: string) => void;
  readonly #line: string;
  #nft: ChildProcessByStdio<null, Readable, Readable> | null = null;
  /** Our copy of the write end of nft's stdin (the heartbeat thread holds its own). */
  #writeFd: number | null = null;
  #state: KernelLeaseState = 'running';
  #stderr = '';

  constructor(spec: KernelLeaseSpec, onFailure: (detail: string) => void) {
    if (!Number.isInteger(spec.port) || spec.port < 1 || spec.port > 65535) throw new RangeError(`kernel lease: bad port ${spec.port}`);
    if (!Number.isInteger(spec.ttlMs) || spec.ttlMs < 1) throw new RangeError(`kernel lease: ttlMs must be a positive integer, got ${spec.ttlMs}`);
    this.#spec = spec;
    this.#onFailure = onFailure;
    this.#line = `flush set inet ${FIREWALL_TABLE} ${LEASE_SET}; add element inet ${FIREWALL_TABLE} ${LEASE_SET} { ${spec.port} timeout ${spec.ttlMs}ms }\n`;
    const pipe = createLeasePipe();
    let nft: ChildProcessByStdio<null, Readable, Readable>;
    try {
      // Node's overloads do not type a file descriptor in stdio: stdin is that fd, stdout and stderr pipes.
      nft = spawn('nft', ['-i'], { stdio: [pipe.readFd, 'pipe', 'pipe'] }) as ChildProcessByStdio<null, Readable, Readable>;
    } catch (err) {
      closeSync(pipe.writeFd);
      throw err;
    } finally {
      // The child has its copy of the read end (its stdin); without ours, its input ends when the writers close.
      closeSync(pipe.readFd);
    }
    this.#writeFd = pipe.writeFd;
    this.#nft = nft;
    nft.stdout.resume();
    nft.stderr.setEncoding('utf8');
    nft.stderr.on('data', (chunk: string) => {
      // nft names the first problem (no table: the host set-up did not run) on its first line.
      this.#stderr += chunk;
      const first = this.#stderr.split('\n').find((l) => l.trim() !== '');
      if (first) this.#fail(`nft: ${first.trim()}`);
    });
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

  /** For the heartbeat thread (HeartbeatBeacon attaches it); null once failed or closed. */
  get renewal(): KernelLeaseRenewal | null {
    if (this.#state !== 'running' || this.#writeFd === null) return null;
    return { fd: this.#writeFd, renewal: this.#line, revocation: `flush set inet ${FIREWALL_TABLE} ${LEASE_SET}\n` };
  }

  /**
   * Idempotent. Closes our end of the pipe: once the heartbeat thread has closed its own (after
   * writing the revocation), nft reads what is left and exits at end of input; a stuck one is
   * killed. Without a revocation the element keeps its last timeout and lapses by itself.
   */
  close(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#closeWriteEnd();
    const nft = this.#nft;
    this.#nft = null;
    if (nft) {
      nft.removeAllListeners('exit');
      setTimeout(() => nft.kill('SIGTERM'), 1000).unref();
    }
  }

  #closeWriteEnd(): void {
    if (this.#writeFd === null) return;
    closeSync(this.#writeFd);
    this.#writeFd = null;
  }

  #fail(detail: string): void {
    if (this.#state === 'failed' || this.#state === 'closed') return;
    this.#state = 'failed';
    this.#closeWriteEnd();
    const nft = this.#nft;
    this.#nft = null;
    // The heartbeat thread's next renewal then fails (EPIPE) and it stops renewing.
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
