import { EventEmitter } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { createLogger } from '../../mcu/src/logger.ts';
import { startTsWorker } from '../../mcu/src/ts-worker.ts';
import type { MonitorControl, MonitorVerdictReason, MonitorWorkerData, MonitorWorkerMessage } from './heartbeat-monitor-worker.ts';

export interface HeartbeatVerdict {
  reason: MonitorVerdictReason;
  /** Epoch ms of the last beat received, null if none ever came. */
  lastHeartbeatAt: number | null;
  detectedAt: number;
}

export type HeartbeatMonitorEvents = {
  /** The primary is dead (emitted once). */
  dead: [HeartbeatVerdict];
  /** The first beat arrived: from now on a death can be judged. */
  'first-beat': [at: number];
};

export interface HeartbeatMonitorOptions {
  host: string;
  port: number;
  secret: string;
  /** Expected beat period (default 10 ms). */
  intervalMs?: number;
  /** Dead after this many periods without a beat (default 3). */
  missedBeats?: number;
  /** Beats of an older epoch are ignored. */
  minEpoch: number;
  rtPriority?: number;
  /** Wait after the missed beats before the verdict, in which a late beat clears the suspicion (default: one more timeout window). */
  confirmMs?: number;
}

/** The standby's side of the heartbeat path: a real-time worker thread judging the primary's beats. */
export class HeartbeatMonitor extends EventEmitter<HeartbeatMonitorEvents> {
  readonly #opts: HeartbeatMonitorOptions;
  readonly #log = createLogger('heartbeat-monitor');
  #worker: Worker | null = null;
  #lastHeartbeatAt: number | null = null;
  #beats = 0;
  #verdict: HeartbeatVerdict | null = null;
  #closed = false;

  constructor(opts: HeartbeatMonitorOptions) {
    super();
    this.#opts = opts;
  }

  get lastHeartbeatAt(): number | null {
    return this.#lastHeartbeatAt;
  }

  get beats(): number {
    return this.#beats;
  }

  get verdict(): HeartbeatVerdict | null {
    return this.#verdict;
  }

  start(): void {
    const data: MonitorWorkerData = {
      host: this.#opts.host,
      port: this.#opts.port,
      secret: this.#opts.secret,
      intervalMs: this.#opts.intervalMs ?? 10,
      missedBeats: this.#opts.missedBeats ?? 3,
      minEpoch: this.#opts.minEpoch,
      rtPriority: this.#opts.rtPriority ?? 10,
      confirmMs: this.#opts.confirmMs ?? (this.#opts.intervalMs ?? 10) * (this.#opts.missedBeats ?? 3),
    };
    const worker = startTsWorker(new URL('./heartbeat-monitor-worker.ts', import.meta.url), data as unknown as Record<string, unknown>);
    this.#worker = worker;
    worker.unref();
    worker.on('error', (err) => this.#log.error('heartbeat thread failed', { error: err.message }));
    worker.on('message', (msg: MonitorWorkerMessage) => {
      switch (msg.type) {
        case 'realtime':
          if (msg.ok) this.#log.info('heartbeat thread is real-time', { detail: msg.detail });
          else this.#log.warn('heartbeat thread is not real-time: a loaded machine may delay heartbeats', { detail: msg.detail });
          break;
        case 'first-beat':
          this.#lastHeartbeatAt = msg.at;
          this.#log.info('receiving heartbeats', { epoch: msg.epoch, intervalMs: data.intervalMs, missedBeats: data.missedBeats });
          this.emit('first-beat', msg.at);
          break;
        case 'summary':
          this.#lastHeartbeatAt = msg.lastBeatAt;
          this.#beats = msg.beats;
          break;
        case 'rejected':
          this.#log.warn('heartbeat datagram rejected', { reason: msg.reason });
          break;
        case 'dead':
          if (this.#verdict || this.#closed) return;
          this.#verdict = { reason: msg.reason, lastHeartbeatAt: msg.lastBeatAt, detectedAt: msg.detectedAt };
          this.#lastHeartbeatAt = msg.lastBeatAt;
          this.emit('dead', this.#verdict);
          break;
      }
    });
  }

  /** The replication stream ended without a goodbye: ask the primary's host at once. */
  probe(): void {
    this.#worker?.postMessage({ type: 'probe' } satisfies MonitorControl);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = null;
    if (worker) {
      worker.postMessage({ type: 'stop' } satisfies MonitorControl);
      await worker.terminate();
    }
  }
}
