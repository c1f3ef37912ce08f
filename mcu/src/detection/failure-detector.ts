import { ConfigError } from '../core/errors.ts';
import { createNativeFailureDetector, type NativeDetectorOutput, type NativeFailureDetectorHandle } from '../../../native/src/heartbeat.ts';

/**
 * The judge of the standby's heartbeat thread: whether the primary is dead, and why. Its rules
 * live in one place, native/addon/failure_detector.cc, because the thread that applies them is
 * native (heartbeat-monitor.ts: no V8 isolate, no lock shared with the main thread). This class
 * is that same judge on a clock the caller drives: pure, no I/O, no timers; every input carries
 * its time (epoch ms) and returns what follows from it, so tests drive it deterministically
 * (test/unit/failure-detector.test.ts). The monitor thread calls tick() every `judgeEveryMs`,
 * feeds in beats, probe answers and the end of the replication stream, carries out the probes
 * asked for and reports the rest to the main thread.
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

/**
 * What an input leads to: things to do (probes) and things to report.
 * - first-beat: from now on a death can be judged;
 * - late-beat: a beat after a silence longer than the missed-beats window, which the confirm window cleared (a near miss);
 * - self-pause: the judging thread itself was not scheduled for `ms` (its tick came late): no verdict from that silence yet;
 * - probe-port: ask the primary's heartbeat port (a subscription): a live beacon answers with a beat, the host of a dead one
 *   with ICMP port unreachable within a millisecond (portUnreachable());
 * - probe-host: ask the primary's host (a TCP SYN to a closed port) and feed the answer, or its absence within `timeoutMs`, to hostProbed();
 * - host-probe: the start-up host probe's result (whether silence of the host will count);
 * - dead: the verdict.
 */
export type DetectorOutput = Exclude<NativeDetectorOutput, { type: 'host-probe' }> | { type: 'host-probe'; usable: boolean; ms: number | null; detail: string };

/** How the start-up host probe's result reads in the logs. */
export function hostProbeDetail(ms: number | null): string {
  return ms !== null
    ? `the primary's host answered a SYN in ${ms} ms`
    : `the primary's host did not answer a SYN within ${HOST_PROBE_CALIBRATION_TIMEOUT_MS / 1000} s (filtered?): host crashes wait for the confirm window`;
}

/** The native judge's outputs, worded. */
export function detectorOutputs(outputs: NativeDetectorOutput[]): DetectorOutput[] {
  return outputs.map((out) => (out.type === 'host-probe' ? { ...out, detail: hostProbeDetail(out.ms) } : out));
}

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
  readonly #judge: NativeFailureDetectorHandle;

  /** `startedAt`: when the owner starts ticking (the first tick's gap is measured from it). */
  constructor(options: FailureDetectorOptions & { startedAt: number }) {
    const settings = failureDetectorSettings(options);
    this.#judge = createNativeFailureDetector(settings, options.startedAt);
    this.intervalMs = settings.intervalMs;
    this.missedBeats = settings.missedBeats;
    this.confirmMs = settings.confirmMs;
    this.hostProbeTimeoutMs = settings.hostProbeTimeoutMs;
    this.timeoutMs = this.#judge.timeoutMs;
    this.judgeEveryMs = this.#judge.judgeEveryMs;
    this.selfPauseMs = this.#judge.selfPauseMs;
  }

  get state(): FailureDetectorState {
    return this.#judge.state;
  }
  get lastBeatAt(): number | null {
    return this.#judge.lastBeatAt;
  }
  get verdict(): HeartbeatVerdict | null {
    return this.#judge.verdict;
  }
  /** Whether the owner should run the start-up host probe (and feed hostProbeCalibrated()). */
  get hostProbeEnabled(): boolean {
    return this.hostProbeTimeoutMs > 0;
  }

  /** A verified beat of an acceptable epoch. */
  beat(now: number): DetectorOutput[] {
    return detectorOutputs(this.#judge.beat(now));
  }

  /** Called every `judgeEveryMs`. */
  tick(now: number): DetectorOutput[] {
    return detectorOutputs(this.#judge.tick(now));
  }

  /** The primary's host answered a port probe with ICMP port unreachable: nothing listens for beats any more. */
  portUnreachable(now: number): DetectorOutput[] {
    return detectorOutputs(this.#judge.portUnreachable(now));
  }

  /** The answer to a 'probe-host' for the silence since `silentSince`: `answered` false when nothing came in time. */
  hostProbed(silentSince: number, answered: boolean, now: number): DetectorOutput[] {
    return detectorOutputs(this.#judge.hostProbed(silentSince, answered, now));
  }

  /**
   * The start-up host probe: the host answered in `ms` (null: not within
   * HOST_PROBE_CALIBRATION_TIMEOUT_MS). Its silence counts only if it answered in under half
   * the probe timeout: a host that answers slower, or a firewall that drops SYNs, would make
   * every late beat a verdict.
   */
  hostProbeCalibrated(ms: number | null): DetectorOutput[] {
    return detectorOutputs(this.#judge.hostProbeCalibrated(ms));
  }

  /** The replication stream ended: `deliberate` when the primary said goodbye (never a death then). */
  channelClosed(deliberate: boolean, now: number): DetectorOutput[] {
    return detectorOutputs(this.#judge.channelClosed(deliberate, now));
  }
}
