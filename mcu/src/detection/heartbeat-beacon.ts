import { EventEmitter } from 'node:events';
import { McuError } from '../core/errors.ts';
import { createLogger } from '../core/logger.ts';
import { ThrottledLog } from '../core/log-throttle.ts';
import { HEARTBEAT_GAP_REPORT_MS, HEARTBEAT_RT_PRIORITY, realtimeDetail } from '../core/realtime.ts';
import { heartbeatRejectionReason } from '../wire/heartbeat-wire.ts';
import { KernelLease } from '../takeover/fencing/kernel-lease.ts';
import { NativeSyscallError, startHeartbeatBeaconThread, type NativeBeaconEvent, type NativeBeaconHandle } from '../../../native/src/index.ts';

/** A main thread stuck this long is a hung process: its heartbeat thread stops beating (and answering probes). */
export const DEFAULT_MAIN_STALL_MS = 3000;

export interface HeartbeatBeaconOptions {
  host: string;
  /** UDP port: the replication port number (UDP and TCP port spaces are separate). */
  port: number;
  secret: string;
  epoch: number;
  /** Beat period (default 10 ms). */
  intervalMs?: number;
  /** Stop beating when the main thread has been stuck this long (default DEFAULT_MAIN_STALL_MS, 3000 ms). */
  mainStallMs?: number;
  /** SCHED_FIFO priority of the heartbeat thread (default HEARTBEAT_RT_PRIORITY, 99). */
  rtPriority?: number;
  /** Renew the host firewall's lease for this service port on every beat (takeover mode, kernel-lease.ts). */
  kernelLease?: { port: number; ttlMs: number };
}

export type HeartbeatBeaconEvents = {
  error: [McuError];
  /** A datagram that was not a valid subscription or beat (forged, corrupt): ignored, counted (`total` so far). */
  rejected: [reason: string, total: number];
};

/** What the heartbeat thread saw of its own scheduling (see pauses()). */
export interface BeaconPauses {
  /** Since its latest tick, ms (large: it has not run since a pause, e.g. right after SIGCONT). */
  sinceTickMs: number;
  /** Longest gap between two of its ticks since the previous call, ms: silence the standby saw. */
  maxGapMs: number;
}

/**
 * The primary's side of the heartbeat path: a native thread of the addon (native/addon/heartbeat_beacon.cc)
 * at SCHED_FIFO that beats over UDP to every subscribed standby, renews the kernel lease on every
 * beat, and stops both when this (main) thread has made no progress for `mainStallMs`. It has no
 * V8 isolate and takes no lock this thread holds: a main thread that is busy, collecting garbage
 * or starved cannot delay a beat. Its news arrives here through a lock-free ring.
 */
export class HeartbeatBeacon extends EventEmitter<HeartbeatBeaconEvents> {
  readonly #opts: HeartbeatBeaconOptions;
  readonly #log = createLogger('heartbeat-beacon');
  // Anyone who can reach the port can send datagrams: one log line per second at most.
  readonly #rejectedLog = new ThrottledLog(this.#log, 'warn', 'heartbeat datagram rejected');
  /** The highest total a 'rejected' event carried. */
  #rejected = 0;
  #thread: NativeBeaconHandle | null = null;
  #lease: KernelLease | null = null;
  #leaseFailed = false;
  #livenessTimer: NodeJS.Timeout | null = null;
  #gapReportTimer: NodeJS.Timeout | null = null;
  #closed = false;
  #subscribers = 0;

  constructor(opts: HeartbeatBeaconOptions) {
    super();
    this.#opts = opts;
  }

  /** Starts the thread; resolves once its UDP socket is bound (rejects with EADDRINUSE-like errors, `code` set). */
  start(): Promise<number> {
    const intervalMs = this.#opts.intervalMs ?? 10;
    const rtPriority = this.#opts.rtPriority ?? HEARTBEAT_RT_PRIORITY;
    let thread: NativeBeaconHandle;
    try {
      thread = startHeartbeatBeaconThread(
        {
          host: this.#opts.host,
          port: this.#opts.port,
          secret: this.#opts.secret,
          epoch: this.#opts.epoch,
          intervalMs,
          mainStallMs: this.#opts.mainStallMs ?? DEFAULT_MAIN_STALL_MS,
          rtPriority,
        },
        (events) => this.#onEvents(events),
      );
    } catch (err) {
      if (err instanceof NativeSyscallError && err.step.startsWith('bind')) {
        return Promise.reject(Object.assign(new Error(`heartbeat UDP port ${this.#opts.port}: ${err.message}`), { code: err.errnoName }));
      }
      return Promise.reject(err);
    }
    this.#thread = thread;
    const spec = this.#opts.kernelLease;
    if (spec) {
      // The lease's `nft -i` runs at one below the thread's priority; the thread writes its renewals.
      const lease = new KernelLease({ ...spec, rtPriority: rtPriority - 1 }, (detail) => this.#leaseFailure(detail));
      this.#lease = lease;
      const renewal = lease.renewal;
      if (renewal) thread.attachLease(renewal);
    }
    // The main thread's proof of progress, read by the heartbeat thread.
    this.#livenessTimer = setInterval(() => thread.touch(), 10);
    this.#livenessTimer.unref();
    this.#gapReportTimer = setInterval(() => {
      this.#log.info('heartbeat thread gaps', { longestTickGapMs: thread.takeWindowGap(), intervalMs, periodMs: HEARTBEAT_GAP_REPORT_MS });
    }, HEARTBEAT_GAP_REPORT_MS);
    this.#gapReportTimer.unref();
    this.#log.info('heartbeat thread beating', { port: thread.port, intervalMs, kernelLeaseTtlMs: spec?.ttlMs ?? null });
    return Promise.resolve(thread.port);
  }

  #onEvents(events: NativeBeaconEvent[]): void {
    for (const event of events) {
      switch (event.type) {
        case 'realtime':
          if (event.ok) this.#log.info('heartbeat thread is real-time', { detail: realtimeDetail(event) });
          else this.#log.warn('heartbeat thread is not real-time: a loaded machine may delay heartbeats', { detail: realtimeDetail(event) });
          break;
        case 'subscriber':
          this.#subscribers = event.count;
          this.#log.info('standby subscribed to heartbeats', { address: event.address, port: event.port });
          break;
        case 'subscribers':
          this.#subscribers = event.count;
          break;
        case 'main-stalled':
          this.#log.error('main thread stalled: heartbeats stopped', { stalledMs: event.stalledMs });
          break;
        case 'main-recovered':
          this.#log.warn('main thread recovered: heartbeats resumed');
          break;
        case 'lease-failed':
          this.#leaseFailure(`writing to nft: ${event.errnoName} (${event.message})`);
          break;
        case 'rejected':
          this.#noteRejected(`${event.address}:${event.port}: ${heartbeatRejectionReason(event.reason, event)}`, event.total);
          break;
        case 'dropped':
          if (event.rejectedTotal > this.#rejected) this.#noteRejected(`${event.rejectedTotal - this.#rejected} more (not itemized: the heartbeat thread's event ring was full)`, event.rejectedTotal);
          break;
      }
    }
  }

  #noteRejected(reason: string, total: number): void {
    this.#rejected = Math.max(this.#rejected, total);
    this.#rejectedLog.note({ reason, rejected: total });
    if (!this.#closed) this.emit('rejected', reason, total);
  }

  #leaseFailure(detail: string): void {
    if (this.#leaseFailed || this.#closed) return;
    this.#leaseFailed = true;
    // The element stays permanent: a frozen primary's kernel may acknowledge client bytes again.
    this.#log.error('kernel lease not renewed: a frozen primary could stall a taken-over connection', { detail });
  }

  /**
   * The heartbeat thread's own pauses (it runs at real-time priority, so only a stopped process
   * or a starved host pauses it), and resets the longest gap. Null before the thread ticked.
   */
  pauses(): BeaconPauses | null {
    if (this.#closed) return null;
    return this.#thread?.pauses() ?? null;
  }

  /** The longest gap between two of the heartbeat thread's ticks since it started, ms (null before start). */
  get longestTickGapMs(): number | null {
    return this.#thread?.stats().longestGapMs ?? null;
  }

  /** Datagrams rejected since start (not a valid subscription or beat). */
  get rejected(): number {
    return this.#thread?.stats().rejected ?? this.#rejected;
  }

  /** Standby heartbeat threads subscribed now (each renews every second). */
  get subscribers(): number {
    return this.#thread?.stats().subscribers ?? this.#subscribers;
  }

  setEpoch(epoch: number): void {
    this.#thread?.setEpoch(epoch);
  }

  /** Idempotent: stops beating at once (a deliberate stop is announced on the replication stream) and revokes the kernel lease. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#rejectedLog.close();
    if (this.#livenessTimer) clearInterval(this.#livenessTimer);
    if (this.#gapReportTimer) clearInterval(this.#gapReportTimer);
    const thread = this.#thread;
    this.#thread = null;
    // The thread writes the revocation on its way out; then nft reads it and its input ends.
    thread?.close();
    this.#lease?.close();
    this.#lease = null;
  }
}
