import { EventEmitter } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { McuError } from '../core/errors.ts';
import { createLogger } from '../core/logger.ts';
import { ThrottledLog } from '../core/log-throttle.ts';
import { startTsWorker } from '../core/ts-worker.ts';
import type { BeaconControl, BeaconWorkerData, BeaconWorkerMessage } from './heartbeat-beacon-worker.ts';
import { disableIdleGarbageCollection, HEARTBEAT_RT_PRIORITY } from '../core/realtime.ts';

export interface HeartbeatBeaconOptions {
  host: string;
  /** UDP port: the replication port number (UDP and TCP port spaces are separate). */
  port: number;
  secret: string;
  epoch: number;
  /** Beat period (default 10 ms). */
  intervalMs?: number;
  /** Stop beating when the main thread has been stuck this long (default 3000 ms). */
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

/** The primary's side of the heartbeat path: a real-time worker thread beating over UDP. */
export class HeartbeatBeacon extends EventEmitter<HeartbeatBeaconEvents> {
  readonly #opts: HeartbeatBeaconOptions;
  readonly #log = createLogger('heartbeat-beacon');
  // Anyone who can reach the port can send datagrams: one log line per second at most.
  readonly #rejectedLog = new ThrottledLog(this.#log, 'warn', 'heartbeat datagram rejected');
  #rejected = 0;
  readonly #liveness = new SharedArrayBuffer(4);
  readonly #pauses = new Int32Array(new SharedArrayBuffer(8));
  readonly #pauseBase = Date.now();
  #worker: Worker | null = null;
  #livenessTimer: NodeJS.Timeout | null = null;
  #closed = false;
  #subscribers = 0;

  constructor(opts: HeartbeatBeaconOptions) {
    super();
    this.#opts = opts;
  }

  /** Starts the thread; resolves once its UDP socket is bound (rejects with EADDRINUSE-like errors). */
  start(): Promise<number> {
    const data: BeaconWorkerData = {
      host: this.#opts.host,
      port: this.#opts.port,
      secret: this.#opts.secret,
      epoch: this.#opts.epoch,
      intervalMs: this.#opts.intervalMs ?? 10,
      mainStallMs: this.#opts.mainStallMs ?? 3000,
      liveness: this.#liveness,
      pauses: this.#pauses.buffer as SharedArrayBuffer,
      pauseBase: this.#pauseBase,
      rtPriority: this.#opts.rtPriority ?? HEARTBEAT_RT_PRIORITY,
      kernelLease: this.#opts.kernelLease ? { ...this.#opts.kernelLease, rtPriority: (this.#opts.rtPriority ?? HEARTBEAT_RT_PRIORITY) - 1 } : null,
    };
    disableIdleGarbageCollection();
    const worker = startTsWorker(new URL('./heartbeat-beacon-worker.ts', import.meta.url), data as unknown as Record<string, unknown>);
    this.#worker = worker;
    worker.unref();
    const counter = new Int32Array(this.#liveness);
    // The main thread's proof of progress, read by the heartbeat thread.
    this.#livenessTimer = setInterval(() => Atomics.add(counter, 0, 1), 10);
    this.#livenessTimer.unref();
    return new Promise((resolve, reject) => {
      worker.on('error', (err) => {
        this.#log.error('heartbeat thread failed', { error: err.message });
        reject(err);
      });
      worker.on('message', (msg: BeaconWorkerMessage) => {
        switch (msg.type) {
          case 'ready':
            this.#log.info('heartbeat thread beating', { port: msg.port, intervalMs: data.intervalMs, kernelLeaseTtlMs: data.kernelLease?.ttlMs ?? null });
            resolve(msg.port);
            break;
          case 'bind-failed': {
            const err = Object.assign(new Error(`heartbeat UDP port ${this.#opts.port}: ${msg.message}`), { code: msg.code });
            reject(err);
            break;
          }
          case 'realtime':
            if (msg.ok) this.#log.info('heartbeat thread is real-time', { detail: msg.detail });
            else this.#log.warn('heartbeat thread is not real-time: a loaded machine may delay heartbeats', { detail: msg.detail });
            break;
          case 'subscribers':
            this.#subscribers = msg.count;
            break;
          case 'subscriber':
            this.#log.info('standby subscribed to heartbeats', { address: msg.address, port: msg.port });
            break;
          case 'main-stalled':
            this.#log.error('main thread stalled: heartbeats stopped', { stalledMs: msg.stalledMs });
            break;
          case 'main-recovered':
            this.#log.warn('main thread recovered: heartbeats resumed');
            break;
          case 'lease-failed':
            // The element stays permanent: a frozen primary's kernel may acknowledge client bytes again.
            this.#log.error('kernel lease not renewed: a frozen primary could stall a taken-over connection', { detail: msg.detail });
            break;
          case 'rejected':
            this.#rejected++;
            this.#rejectedLog.note({ reason: msg.reason, rejected: this.#rejected });
            if (!this.#closed) this.emit('rejected', msg.reason, this.#rejected);
            break;
        }
      });
    });
  }

  /**
   * The heartbeat thread's own pauses (it runs at real-time priority, so only a stopped process
   * or a starved host pauses it), and resets the longest gap. Null before the thread ticked.
   */
  pauses(): BeaconPauses | null {
    const last = Atomics.load(this.#pauses, 0);
    if (this.#closed || last === 0) return null;
    return { sinceTickMs: Date.now() - this.#pauseBase - last, maxGapMs: Atomics.exchange(this.#pauses, 1, 0) };
  }

  /** Datagrams rejected since start (not a valid subscription or beat). */
  get rejected(): number {
    return this.#rejected;
  }

  /** Standby heartbeat threads subscribed now (each renews every second). */
  get subscribers(): number {
    return this.#subscribers;
  }

  setEpoch(epoch: number): void {
    this.#worker?.postMessage({ type: 'epoch', epoch } satisfies BeaconControl);
  }

  /** Idempotent: stops beating at once (a deliberate stop is announced on the replication stream). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#rejectedLog.close();
    if (this.#livenessTimer) clearInterval(this.#livenessTimer);
    const worker = this.#worker;
    this.#worker = null;
    if (worker) {
      worker.postMessage({ type: 'stop' } satisfies BeaconControl);
      await worker.terminate();
    }
  }
}
