import { ConfigError } from '../core/errors.ts';

/**
 * The judge of the standby's heartbeat thread: whether the primary is dead, and why. Pure: no
 * I/O, no timers, no clock of its own. Every input carries its time (epoch ms) and returns what
 * follows from it, so tests drive it deterministically. The heartbeat thread
 * (heartbeat-monitor-worker.ts) does the I/O: it calls tick() every `judgeEveryMs`, feeds in
 * beats, probe answers and the end of the replication stream, carries out the probes asked for
 * and reports the rest to the main thread.
 *
 *   waiting   --beat-->                                        alive
 *   alive     --silence > missed-beats window-->               suspected (missed-beats)
 *   waiting, alive, suspected --stream ended, no goodbye-->    suspected (channel-closed)
 *   suspected --beat-->                                        alive (a near miss if beats were missed)
 *   alive, suspected --silence > window + confirm window-->    dead (heartbeat-timeout)
 *   alive, suspected --port unreachable-->                     dead (port-unreachable)
 *   suspected --host silent past the probe timeout-->          dead (host-unreachable)
 *   waiting, alive, suspected --stream ended with a goodbye--> stopped (never dead)
 *   dead, stopped: final.
 *
 * Port unreachable before any beat counts only once the stream ended (the owner asked): before,
 * it is a primary still starting.
 */

export type FailureDetectorState = 'waiting' | 'alive' | 'suspected' | 'dead' | 'stopped';
export type DeathReason = 'heartbeat-timeout' | 'port-unreachable' | 'host-unreachable';
export type SuspicionCause = 'missed-beats' | 'channel-closed';

export interface HeartbeatVerdict {
  reason: DeathReason;
  /** Epoch ms of the last beat received, null if none ever came. */
  lastHeartbeatAt: number | null;
  detectedAt: number;
}

/**
 * The confirm window, in missed-beats windows (10 ms x 3 by default: 90 ms more, a verdict after
 * 120 ms of silence). Measured here (scripts/bench/false-takeover.ts, 2 cores under load with
 * both heartbeat threads at real-time priority): beats still came after 40-69 ms of silence a few
 * times in 150 s, and with a 30 ms confirm window (verdict at 60 ms) the standby took over a
 * live primary about once a minute. The cost is a host crash detected ~60 ms later; a process
 * crash is still detected at once (port unreachable).
 */
export const DEFAULT_CONFIRM_WINDOWS = 3;
/** A live host's kernel answers a SYN in well under a millisecond here; 20 ms leaves room for a loaded one. */
export const DEFAULT_HOST_PROBE_TIMEOUT_MS = 20;
/** How long the start-up host probe waits for an answer. */
export const HOST_PROBE_CALIBRATION_TIMEOUT_MS = 1000;

export interface FailureDetectorOptions {
  /** Expected beat period (default 10 ms). */
  intervalMs?: number;
  /** Suspected after this many periods without a beat (default 3). */
  missedBeats?: number;
  /** Wait after the missed beats before the verdict, in which a late beat clears the suspicion (default DEFAULT_CONFIRM_WINDOWS missed-beats windows). */
  confirmMs?: number;
  /** Once beats are missed, a host that does not answer a probe within this is dead (default 20 ms; 0, or anything not above 0: no host probe). */
  hostProbeTimeoutMs?: number;
}

/** The options with their defaults, validated: what the monitor hands its thread. */
export interface FailureDetectorSettings {
  intervalMs: number;
  missedBeats: number;
  confirmMs: number;
  hostProbeTimeoutMs: number;
}

export function failureDetectorSettings(options: FailureDetectorOptions = {}): FailureDetectorSettings {
  const intervalMs = options.intervalMs ?? 10;
  const missedBeats = options.missedBeats ?? 3;
  const confirmMs = options.confirmMs ?? DEFAULT_CONFIRM_WINDOWS * intervalMs * missedBeats;
  const hostProbeTimeoutMs = options.hostProbeTimeoutMs ?? DEFAULT_HOST_PROBE_TIMEOUT_MS;
  if (!(intervalMs > 0) || !Number.isInteger(missedBeats) || missedBeats < 1) {
    throw new ConfigError(`failure detector: intervalMs (${intervalMs}) must be > 0 and missedBeats (${missedBeats}) an integer >= 1`);
  }
  if (!(confirmMs >= 0)) throw new ConfigError(`failure detector: confirmMs (${confirmMs}) must be >= 0`);
  return { intervalMs, missedBeats, confirmMs, hostProbeTimeoutMs };
}

/** What an input leads to: things to do (probes) and things to report. */
export type DetectorOutput =
  /** The first beat: from now on a death can be judged. */
  | { type: 'first-beat'; at: number }
  | { type: 'suspected'; cause: SuspicionCause; at: number; silenceMs: number | null }
  /** A beat after a silence longer than the missed-beats window, which the confirm window cleared: a near miss. */
  | { type: 'late-beat'; silenceMs: number; at: number }
  /** The judging thread itself was not scheduled for `ms` (its tick came late): no verdict from that silence yet. */
  | { type: 'self-pause'; ms: number; at: number }
  /**
   * Ask the primary's heartbeat port (a subscription): a live beacon answers with a beat, the
   * host of a dead one with ICMP port unreachable within a millisecond (feed it to portUnreachable()).
   */
  | { type: 'probe-port' }
  /** Ask the primary's host (a TCP SYN to a closed port) and feed the answer, or its absence within `timeoutMs`, to hostProbed(). */
  | { type: 'probe-host'; silentSince: number; timeoutMs: number }
  /** The start-up host probe's result: whether silence of the host will count. */
  | { type: 'host-probe'; usable: boolean; ms: number | null; detail: string }
  | { type: 'dead'; verdict: HeartbeatVerdict };

export class FailureDetector {
  readonly intervalMs: number;
  readonly missedBeats: number;
  /** Silence that makes a suspicion: intervalMs x missedBeats. */
  readonly timeoutMs: number;
  readonly confirmMs: number;
  readonly hostProbeTimeoutMs: number;
  /** How often the owner calls tick(). */
  readonly judgeEveryMs: number;
  /** A gap between two ticks longer than this is a pause of the judging thread itself. */
  readonly selfPauseMs: number;
  #state: FailureDetectorState = 'waiting';
  #lastBeatAt: number | null = null;
  #lastTickAt: number;
  #verdict: HeartbeatVerdict | null = null;
  /** Set once the stream ended without a goodbye: port unreachable is a verdict even before any beat. */
  #streamLost = false;
  /** Set when the start-up probe showed the host answers fast: only then does its silence count. */
  #hostProbeUsable = false;
  /** The silence (by its last beat) already given its early port probe, and its host probe. */
  #earlyProbeFor: number | null = null;
  #hostProbeFor: number | null = null;

  /** `startedAt`: when the owner starts ticking (the first tick's gap is measured from it). */
  constructor(options: FailureDetectorOptions & { startedAt: number }) {
    const settings = failureDetectorSettings(options);
    this.intervalMs = settings.intervalMs;
    this.missedBeats = settings.missedBeats;
    this.timeoutMs = settings.intervalMs * settings.missedBeats;
    this.confirmMs = settings.confirmMs;
    this.hostProbeTimeoutMs = settings.hostProbeTimeoutMs;
    this.judgeEveryMs = Math.max(1, Math.floor(settings.intervalMs / 2));
    this.selfPauseMs = Math.max(3 * this.judgeEveryMs, 15);
    this.#lastTickAt = options.startedAt;
  }

  get state(): FailureDetectorState {
    return this.#state;
  }
  get lastBeatAt(): number | null {
    return this.#lastBeatAt;
  }
  get verdict(): HeartbeatVerdict | null {
    return this.#verdict;
  }
  /** Whether the owner should run the start-up host probe (and feed hostProbeCalibrated()). */
  get hostProbeEnabled(): boolean {
    return this.hostProbeTimeoutMs > 0;
  }

  /** A verified beat of an acceptable epoch. */
  beat(now: number): DetectorOutput[] {
    if (this.#final()) return [];
    const out: DetectorOutput[] = [];
    const last = this.#lastBeatAt;
    if (last === null) out.push({ type: 'first-beat', at: now });
    else if (now - last > this.timeoutMs) out.push({ type: 'late-beat', silenceMs: now - last, at: now });
    this.#lastBeatAt = now;
    this.#state = 'alive';
    return out;
  }

  /** Called every `judgeEveryMs`. */
  tick(now: number): DetectorOutput[] {
    const pausedMs = now - this.#lastTickAt;
    this.#lastTickAt = now;
    const last = this.#lastBeatAt;
    if (this.#final() || last === null) return [];
    // This thread itself did not run for a while: the beats sent meanwhile wait unread in the
    // socket (timers run before the poll for I/O), so the silence says nothing yet. Judge at
    // the next tick, once they are read. At a standby's start such pauses of 100-250 ms made
    // verdicts against a live primary.
    if (pausedMs > this.selfPauseMs) return [{ type: 'self-pause', ms: pausedMs, at: now }];
    const silentMs = now - last;
    if (silentMs <= this.timeoutMs) {
      // A beat is late: ask at once. A dead process's host answers with port unreachable
      // within a millisecond, long before the missed-beats window is over.
      if (silentMs > this.intervalMs * 1.5 && this.#earlyProbeFor !== last) {
        this.#earlyProbeFor = last;
        return [{ type: 'probe-port' }];
      }
      return [];
    }
    // Missed beats are a suspicion; the verdict waits one more window for a beat that was sent
    // but delayed on a loaded host (packet delivery runs at normal priority), while a probe
    // answered by "port unreachable" ends it at once: ask again at every tick meanwhile.
    const out: DetectorOutput[] = [];
    if (this.#state !== 'suspected') {
      this.#state = 'suspected';
      out.push({ type: 'suspected', cause: 'missed-beats', at: now, silenceMs: silentMs });
    }
    if (silentMs > this.timeoutMs + this.confirmMs) return [...out, this.#die('heartbeat-timeout', now)];
    out.push({ type: 'probe-port' });
    // Is the host itself still there? Its kernel answers within a millisecond.
    if (this.#hostProbeUsable && this.#hostProbeFor !== last) {
      this.#hostProbeFor = last;
      out.push({ type: 'probe-host', silentSince: last, timeoutMs: this.hostProbeTimeoutMs });
    }
    return out;
  }

  /** The primary's host answered a port probe with ICMP port unreachable: nothing listens for beats any more. */
  portUnreachable(now: number): DetectorOutput[] {
    if (this.#final() || (this.#lastBeatAt === null && !this.#streamLost)) return [];
    return [this.#die('port-unreachable', now)];
  }

  /** The answer to a 'probe-host' for the silence since `silentSince`: `answered` false when nothing came in time. */
  hostProbed(silentSince: number, answered: boolean, now: number): DetectorOutput[] {
    // A beat since then ended that silence: the answer is about a past one.
    if (this.#final() || answered || this.#lastBeatAt !== silentSince) return [];
    return [this.#die('host-unreachable', now)];
  }

  /**
   * The start-up host probe: the host answered in `ms` (null: not within
   * HOST_PROBE_CALIBRATION_TIMEOUT_MS). Its silence counts only if it answered in under half
   * the probe timeout: a host that answers slower, or a firewall that drops SYNs, would make
   * every late beat a verdict.
   */
  hostProbeCalibrated(ms: number | null): DetectorOutput[] {
    this.#hostProbeUsable = ms !== null && ms < this.hostProbeTimeoutMs / 2;
    const detail =
      ms !== null
        ? `the primary's host answered a SYN in ${ms} ms`
        : `the primary's host did not answer a SYN within ${HOST_PROBE_CALIBRATION_TIMEOUT_MS / 1000} s (filtered?): host crashes wait for the confirm window`;
    return [{ type: 'host-probe', usable: this.#hostProbeUsable, ms, detail }];
  }

  /** The replication stream ended: `deliberate` when the primary said goodbye (never a death then). */
  channelClosed(deliberate: boolean, now: number): DetectorOutput[] {
    if (this.#final()) return [];
    if (deliberate) {
      this.#state = 'stopped';
      return [];
    }
    this.#streamLost = true;
    this.#state = 'suspected';
    const silenceMs = this.#lastBeatAt === null ? null : now - this.#lastBeatAt;
    return [{ type: 'suspected', cause: 'channel-closed', at: now, silenceMs }, { type: 'probe-port' }];
  }

  #final(): boolean {
    return this.#state === 'dead' || this.#state === 'stopped';
  }

  #die(reason: DeathReason, now: number): DetectorOutput {
    const verdict: HeartbeatVerdict = { reason, lastHeartbeatAt: this.#lastBeatAt, detectedAt: now };
    this.#verdict = verdict;
    this.#state = 'dead';
    return { type: 'dead', verdict };
  }
}
