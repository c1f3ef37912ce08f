import { EventEmitter } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { createLogger } from '../core/logger.ts';
import { ThrottledLog } from '../core/log-throttle.ts';
import { startTsWorker } from '../core/ts-worker.ts';
import type { MonitorControl, MonitorWorkerData, MonitorWorkerMessage } from './heartbeat-monitor-worker.ts';
import { disableIdleGarbageCollection, HEARTBEAT_RT_PRIORITY } from '../core/realtime.ts';
import { failureDetectorSettings, type HeartbeatVerdict, type SuspicionCause } from './failure-detector.ts';

export type { HeartbeatVerdict } from './failure-detector.ts';

export const DEFAULT_HOST_PROBE_PORT = 9;

export type HeartbeatMonitorEvents = {
  /** The primary is dead (emitted once). */
  dead: [HeartbeatVerdict];
  /** The first beat arrived: from now on a death can be judged. */
  'first-beat': [at: number];
  /** Beats missed, or the replication stream ended without a goodbye: a verdict may follow. */
  suspected: [cause: SuspicionCause, at: number];
  /** A datagram that was not a valid beat of the primary (forged, corrupt, stale): ignored, counted (`total` so far). */
  rejected: [reason: string, total: number];
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
  /** Wait after the missed beats before the verdict, in which a late beat clears the suspicion (default: three more missed-beats windows, see DEFAULT_CONFIRM_WINDOWS in failure-detector.ts). */
  confirmMs?: number;
  /** Once beats are missed, a primary host that does not answer a TCP SYN within this is dead (default 20 ms; 0: off). */
  hostProbeTimeoutMs?: number;
  /** A closed TCP port on the primary's host for that probe (default 9, discard; MCU_HOST_PROBE_PORT). */
  hostProbePort?: number;
}

/** The standby's side of the heartbeat path: a real-time worker thread judging the primary's beats (FailureDetector). */
export class HeartbeatMonitor extends EventEmitter<HeartbeatMonitorEvents> {
  readonly #opts: HeartbeatMonitorOptions;
  readonly #log = createLogger('heartbeat-monitor');
  // Anyone who can reach the port can send datagrams: one log line per second at most.
  readonly #rejectedLog = new ThrottledLog(this.#log, 'warn', 'heartbeat datagram rejected');
  #rejected = 0;
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

  /** Datagrams rejected since start (not a valid beat of the primary's epoch). */
  get rejected(): number {
    return this.#rejected;
  }

  start(): void {
    const { intervalMs, missedBeats, confirmMs, hostProbeTimeoutMs } = this.#opts;
    const detector = failureDetectorSettings({ intervalMs, missedBeats, confirmMs, hostProbeTimeoutMs });
    const data: MonitorWorkerData = {
      host: this.#opts.host,
      port: this.#opts.port,
      secret: this.#opts.secret,
      minEpoch: this.#opts.minEpoch,
      rtPriority: this.#opts.rtPriority ?? HEARTBEAT_RT_PRIORITY,
      detector,
      hostProbePort: this.#opts.hostProbePort ?? DEFAULT_HOST_PROBE_PORT,
    };
    disableIdleGarbageCollection();
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
          this.#log.info('receiving heartbeats', { epoch: msg.epoch, intervalMs: detector.intervalMs, missedBeats: detector.missedBeats });
          this.emit('first-beat', msg.at);
          break;
        case 'summary':
          this.#lastHeartbeatAt = msg.lastBeatAt;
          this.#beats = msg.beats;
          break;
        case 'rejected':
          this.#rejected++;
          this.#rejectedLog.note({ reason: msg.reason, rejected: this.#rejected });
          if (!this.#closed) this.emit('rejected', msg.reason, this.#rejected);
          break;
        case 'late-beat':
          this.#lateBeats++;
          this.#longestSilenceMs = Math.max(this.#longestSilenceMs, msg.silenceMs);
          this.#log.warn(`late heartbeat after ${msg.silenceMs} ms of silence (dead after ${detector.intervalMs * detector.missedBeats} + ${detector.confirmMs} ms): near miss`, {
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
        case 'suspected':
          if (!this.#closed) this.emit('suspected', msg.cause, msg.at);
          break;
        case 'dead':
          if (this.#verdict || this.#closed) return;
          this.#verdict = msg.verdict;
          this.#lastHeartbeatAt = msg.verdict.lastHeartbeatAt;
          this.emit('dead', this.#verdict);
          break;
      }
    });
  }

  /**
   * The replication stream ended: without a goodbye (`deliberate` false) the primary is
   * suspected and asked at once (port unreachable is then a verdict even before any beat);
   * with one, no verdict follows any more.
   */
  channelClosed(deliberate: boolean): void {
    this.#worker?.postMessage({ type: 'channel-closed', deliberate } satisfies MonitorControl);
  }

  /** Sends a subscription now (a live primary answers it with a beat at once). */
  subscribeNow(): void {
    this.#worker?.postMessage({ type: 'subscribe-now' } satisfies MonitorControl);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#rejectedLog.close();
    const worker = this.#worker;
    this.#worker = null;
    if (worker) {
      worker.postMessage({ type: 'stop' } satisfies MonitorControl);
      await worker.terminate();
    }
  }
}
