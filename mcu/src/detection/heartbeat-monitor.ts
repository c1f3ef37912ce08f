import { EventEmitter } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { createLogger } from '../core/logger.ts';
import { startTsWorker } from '../core/ts-worker.ts';
import type { MonitorControl, MonitorVerdictReason, MonitorWorkerData, MonitorWorkerMessage } from './heartbeat-monitor-worker.ts';
import { HEARTBEAT_RT_PRIORITY } from '../core/realtime.ts';

/**
 * The confirm window, in missed-beats windows (10 ms x 3 by default: 90 ms more, a verdict after
 * 120 ms of silence). Measured here (scripts/bench-false-takeover.ts, 2 cores under load with
 * both heartbeat threads at real-time priority): beats still came after 40-69 ms of silence a few
 * times in 150 s, and with a 30 ms confirm window (verdict at 60 ms) the standby took over a
 * live primary about once a minute. The cost is a host crash detected ~60 ms later; a process
 * crash is still detected at once (port unreachable).
 */
export const DEFAULT_CONFIRM_WINDOWS = 3;
/** A live host's kernel answers a SYN in well under a millisecond here; 20 ms leaves room for a loaded one. */
export const DEFAULT_HOST_PROBE_TIMEOUT_MS = 20;
export const DEFAULT_HOST_PROBE_PORT = 9;

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
  /** Wait after the missed beats before the verdict, in which a late beat clears the suspicion (default: three more missed-beats windows, see DEFAULT_CONFIRM_WINDOWS). */
  confirmMs?: number;
  /** Once beats are missed, a primary host that does not answer a TCP SYN within this is dead (default 20 ms; 0: off). */
  hostProbeTimeoutMs?: number;
  /** A closed TCP port on the primary's host for that probe (default 9, discard; MCU_HOST_PROBE_PORT). */
  hostProbePort?: number;
}

/** The standby's side of the heartbeat path: a real-time worker thread judging the primary's beats. */
export class HeartbeatMonitor extends EventEmitter<HeartbeatMonitorEvents> {
  readonly #opts: HeartbeatMonitorOptions;
  readonly #log = createLogger('heartbeat-monitor');
  #worker: Worker | null = null;
  #lastHeartbeatAt: number | null = null;
  #beats = 0;
  #verdict: HeartbeatVerdict | null = null;
  #lateBeats = 0;
  #selfPauses = 0;
  #longestSilenceMs = 0;
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

  /** Beats that came after more than the missed-beats window of silence (near misses), and the longest such silence. */
  get nearMisses(): { count: number; longestSilenceMs: number } {
    return { count: this.#lateBeats, longestSilenceMs: this.#longestSilenceMs };
  }

  /** Times the heartbeat thread itself was not scheduled long enough to skip a judgement. */
  get selfPauses(): number {
    return this.#selfPauses;
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
      rtPriority: this.#opts.rtPriority ?? HEARTBEAT_RT_PRIORITY,
      confirmMs: this.#opts.confirmMs ?? DEFAULT_CONFIRM_WINDOWS * (this.#opts.intervalMs ?? 10) * (this.#opts.missedBeats ?? 3),
      hostProbeTimeoutMs: this.#opts.hostProbeTimeoutMs ?? DEFAULT_HOST_PROBE_TIMEOUT_MS,
      hostProbePort: this.#opts.hostProbePort ?? DEFAULT_HOST_PROBE_PORT,
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
        case 'late-beat':
          this.#lateBeats++;
          this.#longestSilenceMs = Math.max(this.#longestSilenceMs, msg.silenceMs);
          this.#log.warn(`late heartbeat after ${msg.silenceMs} ms of silence (dead after ${data.intervalMs * data.missedBeats} + ${data.confirmMs} ms): near miss`, {
            nearMissMs: msg.silenceMs,
            at: new Date(msg.at).toISOString(),
          });
          break;
        case 'self-pause':
          this.#selfPauses++;
          this.#log.warn(`heartbeat thread was not scheduled for ${msg.ms} ms: judging again once the beats sent meanwhile are read`, {
            pausedMs: msg.ms,
            at: new Date(msg.at).toISOString(),
          });
          break;
        case 'host-probe':
          if (msg.usable) this.#log.info('host probe ready: a crashed host is judged without waiting for the confirm window', { detail: msg.detail });
          else this.#log.warn('host probe unusable', { detail: msg.detail });
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
