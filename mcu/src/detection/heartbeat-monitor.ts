import { EventEmitter } from 'node:events';
import { createLogger } from '../core/logger.ts';
import { ThrottledLog } from '../core/log-throttle.ts';
import { HEARTBEAT_GAP_REPORT_MS, HEARTBEAT_RT_PRIORITY, realtimeDetail } from '../core/realtime.ts';
import { heartbeatRejectionReason } from '../wire/heartbeat-wire.ts';
import { hostProbeDetail, failureDetectorSettings, type FailureDetectorSettings, type HeartbeatVerdict, type SuspicionCause } from './failure-detector.ts';
import { startHeartbeatMonitorThread, type NativeMonitorEvent, type NativeMonitorHandle } from '../../../native/src/index.ts';

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

/**
 * The standby's side of the heartbeat path: a native thread of the addon (native/addon/heartbeat_monitor.cc)
 * at SCHED_FIFO that subscribes to the primary's beats, probes its port and host, and judges
 * with the FailureDetector on its own clock. It has no V8 isolate and takes no lock this (main)
 * thread holds; its news (first beat, suspicions, near misses, the verdict) arrives here through
 * a lock-free ring, its counters are read on demand.
 */
export class HeartbeatMonitor extends EventEmitter<HeartbeatMonitorEvents> {
  readonly #opts: HeartbeatMonitorOptions;
  readonly #log = createLogger('heartbeat-monitor');
  // Anyone who can reach the port can send datagrams: one log line per second at most.
  readonly #rejectedLog = new ThrottledLog(this.#log, 'warn', 'heartbeat datagram rejected');
  #rejected = 0;
  /** The highest total a 'rejected' event carried. */
  #rejectedReported = 0;
  #thread: NativeMonitorHandle | null = null;
  #gapReportTimer: NodeJS.Timeout | null = null;
  #longestGapMs = 0;
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

  /** Epoch ms of the last beat the judge took (frozen at the verdict), null before the first. */
  get lastHeartbeatAt(): number | null {
    this.#readCounters();
    return this.#lastHeartbeatAt;
  }

  get beats(): number {
    this.#readCounters();
    return this.#beats;
  }

  #readCounters(): void {
    const stats = this.#thread?.stats();
    if (!stats) return;
    this.#lastHeartbeatAt = stats.lastBeatAt;
    this.#beats = stats.beats;
    this.#longestGapMs = stats.longestGapMs;
    this.#rejected = Math.max(this.#rejected, stats.rejected);
  }

  /** Beats that came after more than the missed-beats window of silence (near misses), and the longest such silence. */
  get nearMisses(): { count: number; longestSilenceMs: number } {
    return { count: this.#lateBeats, longestSilenceMs: this.#longestSilenceMs };
  }

  /** The longest silence between two beats since the first, ms, as the heartbeat thread measured it (0 before two beats). */
  get longestBeatGapMs(): number {
    this.#readCounters();
    return this.#longestGapMs;
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
    this.#readCounters();
    return this.#rejected;
  }

  /** Starts the heartbeat thread (throws NativeAddonUnavailableError without the addon, NativeSyscallError if the primary's address is unusable). */
  start(): void {
    if (this.#thread || this.#closed) return;
    const { intervalMs, missedBeats, confirmMs, hostProbeTimeoutMs } = this.#opts;
    const detector = failureDetectorSettings({ intervalMs, missedBeats, confirmMs, hostProbeTimeoutMs });
    this.#thread = startHeartbeatMonitorThread(
      {
        host: this.#opts.host,
        port: this.#opts.port,
        secret: this.#opts.secret,
        minEpoch: this.#opts.minEpoch,
        rtPriority: this.#opts.rtPriority ?? HEARTBEAT_RT_PRIORITY,
        detector,
        hostProbePort: this.#opts.hostProbePort ?? DEFAULT_HOST_PROBE_PORT,
      },
      (events) => {
        for (const event of events) this.#onEvent(event, detector);
      },
    );
    const thread = this.#thread;
    let beatsBefore = 0;
    this.#gapReportTimer = setInterval(() => {
      const beats = thread.stats().beats;
      if (beats === 0) return;
      this.#log.info('heartbeat gaps', { longestBeatGapMs: thread.takeWindowGap(), beats: beats - beatsBefore, periodMs: HEARTBEAT_GAP_REPORT_MS });
      beatsBefore = beats;
    }, HEARTBEAT_GAP_REPORT_MS);
    this.#gapReportTimer.unref();
  }

  #onEvent(event: NativeMonitorEvent, detector: FailureDetectorSettings): void {
    switch (event.type) {
      case 'realtime':
        if (event.ok) this.#log.info('heartbeat thread is real-time', { detail: realtimeDetail(event) });
        else this.#log.warn('heartbeat thread is not real-time: a loaded machine may delay heartbeats', { detail: realtimeDetail(event) });
        break;
      case 'first-beat':
        this.#lastHeartbeatAt = event.at;
        this.#log.info('receiving heartbeats', { epoch: event.epoch, intervalMs: detector.intervalMs, missedBeats: detector.missedBeats });
        if (!this.#closed) this.emit('first-beat', event.at);
        break;
      case 'rejected': {
        const reason =
          event.reason === 'not-a-beat' ? 'not a beat' : event.reason === 'stale-epoch' ? `stale epoch ${event.epoch} < ${event.minEpoch}` : heartbeatRejectionReason(event.reason, event);
        this.#noteRejected(reason, event.total);
        break;
      }
      case 'dropped':
        if (event.rejectedTotal > this.#rejectedReported) this.#noteRejected(`${event.rejectedTotal - this.#rejectedReported} more (not itemized: the heartbeat thread's event ring was full)`, event.rejectedTotal);
        break;
      case 'late-beat':
        this.#lateBeats++;
        this.#longestSilenceMs = Math.max(this.#longestSilenceMs, event.silenceMs);
        this.#log.warn(`late heartbeat after ${event.silenceMs} ms of silence (dead after ${detector.intervalMs * detector.missedBeats} + ${detector.confirmMs} ms): near miss`, {
          nearMissMs: event.silenceMs,
          at: new Date(event.at).toISOString(),
        });
        break;
      case 'self-pause':
        this.#selfPauses++;
        this.#log.warn(`heartbeat thread was not scheduled for ${event.ms} ms: judging again once the beats sent meanwhile are read`, {
          pausedMs: event.ms,
          at: new Date(event.at).toISOString(),
        });
        break;
      case 'host-probe':
        if (event.usable) this.#log.info('host probe ready: a crashed host is judged without waiting for the confirm window', { detail: hostProbeDetail(event.ms) });
        else this.#log.warn('host probe unusable', { detail: hostProbeDetail(event.ms) });
        break;
      case 'suspected':
        if (!this.#closed) this.emit('suspected', event.cause, event.at);
        break;
      case 'dead':
        if (this.#verdict || this.#closed) return;
        this.#verdict = event.verdict;
        this.#lastHeartbeatAt = event.verdict.lastHeartbeatAt;
        this.emit('dead', this.#verdict);
        break;
    }
  }

  #noteRejected(reason: string, total: number): void {
    this.#rejected = Math.max(this.#rejected, total);
    this.#rejectedReported = Math.max(this.#rejectedReported, total);
    this.#rejectedLog.note({ reason, rejected: total });
    if (!this.#closed) this.emit('rejected', reason, total);
  }

  /**
   * The replication stream ended: without a goodbye (`deliberate` false) the primary is
   * suspected and asked at once (port unreachable is then a verdict even before any beat);
   * with one, no verdict follows any more.
   */
  channelClosed(deliberate: boolean): void {
    this.#thread?.channelClosed(deliberate);
  }

  /** Sends a subscription now (a live primary answers it with a beat at once). */
  subscribeNow(): void {
    this.#thread?.subscribeNow();
  }

  /** Idempotent: stops and joins the heartbeat thread. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#rejectedLog.close();
    if (this.#gapReportTimer) clearInterval(this.#gapReportTimer);
    this.#readCounters();
    const thread = this.#thread;
    this.#thread = null;
    thread?.close();
  }
}
