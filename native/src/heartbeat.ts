/**
 * Typed access to the addon's heartbeat threads (native/addon/heartbeat_*.cc): the primary's
 * beacon and the standby's monitor as native pthreads at SCHED_FIFO, with no V8 isolate and no
 * lock shared with the main thread; the failure detector they judge with, on a clock the caller
 * drives (for its unit tests); the datagram codec the threads use (checked against
 * mcu/src/wire/heartbeat-wire.ts); the pipe a kernel lease is renewed through. The classes in
 * mcu/src/detection/ wrap these with logging and typed events.
 */
import { callAddon } from './addon.ts';

/** What a heartbeat thread reports once it tried to make itself real-time. */
export interface NativeRealtimeReport {
  type: 'realtime';
  ok: boolean;
  priority: number;
  tid: number;
  /** On failure: the step, and the errno. */
  step?: string;
  errnoName?: string;
  errno?: number;
  message?: string;
}

/** Why the wire codec refused a datagram (heartbeat-wire.ts words them). */
export type NativeWireRejection = 'length' | 'magic' | 'mac' | 'kind';

/** The thread's event ring was full: `count` records were not delivered (`rejectedTotal`: the count of rejected datagrams now). */
export interface NativeDroppedEvents {
  type: 'dropped';
  count: number;
  rejectedTotal: number;
}

export type NativeBeaconEvent =
  | NativeRealtimeReport
  | { type: 'subscriber'; address: string; port: number; count: number }
  | { type: 'subscribers'; count: number }
  | { type: 'main-stalled'; stalledMs: number }
  | { type: 'main-recovered' }
  | { type: 'rejected'; address: string; port: number; reason: NativeWireRejection; length: number; kind: number; total: number }
  | { type: 'lease-failed'; errnoName: string; message: string }
  | NativeDroppedEvents;

export interface NativeBeaconOptions {
  host: string;
  port: number;
  /** The HMAC key (a string is taken as UTF-8, as node:crypto does). */
  secret: string | Buffer;
  epoch: number;
  intervalMs: number;
  /** Stop beating when touch() has not been called for this long. */
  mainStallMs: number;
  rtPriority: number;
}

export interface NativeBeaconHandle {
  /** The bound UDP port. */
  readonly port: number;
  /** The main thread's proof of progress. */
  touch(): void;
  setEpoch(epoch: number): void;
  /** The thread's own scheduling: since its last tick, and its longest gap between ticks since the previous call (reset). Null before its first tick. */
  pauses(): { sinceTickMs: number; maxGapMs: number } | null;
  /** `longestGapMs`: the longest gap between two of its ticks since it started. */
  stats(): { subscribers: number; rejected: number; beatsSent: number; longestGapMs: number };
  /** The longest gap between two ticks since the previous call (reset), ms. */
  takeWindowGap(): number;
  /** Renew a kernel lease on every beat by writing `renewal` to `fd`; `revocation` when the thread ends. Once. */
  attachLease(lease: { fd: number; renewal: string; revocation: string }): void;
  /** Stops and joins the thread (it revokes the lease on its way out). Idempotent. */
  close(): void;
}

/** What the failure detector outputs (failure-detector.ts adds the host probe's wording). */
export type NativeDetectorOutput =
  | { type: 'first-beat'; at: number }
  | { type: 'suspected'; cause: 'missed-beats' | 'channel-closed'; at: number; silenceMs: number | null }
  | { type: 'late-beat'; silenceMs: number; at: number }
  | { type: 'self-pause'; ms: number; at: number }
  | { type: 'probe-port' }
  | { type: 'probe-host'; silentSince: number; timeoutMs: number }
  | { type: 'host-probe'; usable: boolean; ms: number | null }
  | { type: 'dead'; verdict: { reason: 'heartbeat-timeout' | 'port-unreachable' | 'host-unreachable'; lastHeartbeatAt: number | null; detectedAt: number } };

export type NativeMonitorEvent =
  | NativeRealtimeReport
  | { type: 'first-beat'; at: number; epoch: number }
  | Exclude<NativeDetectorOutput, { type: 'first-beat' | 'probe-port' | 'probe-host' }>
  | { type: 'rejected'; reason: NativeWireRejection | 'not-a-beat' | 'stale-epoch'; length: number; kind: number; epoch: number; minEpoch: number; total: number }
  | NativeDroppedEvents;

export interface NativeDetectorSettings {
  intervalMs: number;
  missedBeats: number;
  confirmMs: number;
  hostProbeTimeoutMs: number;
}

export interface NativeMonitorOptions {
  host: string;
  port: number;
  secret: string | Buffer;
  /** Beats of an older epoch are refused. */
  minEpoch: number;
  rtPriority: number;
  detector: NativeDetectorSettings;
  /** A closed TCP port of the primary's host, for the host probe. */
  hostProbePort: number;
}

export interface NativeMonitorHandle {
  channelClosed(deliberate: boolean): void;
  subscribeNow(): void;
  /** `lastBeatAt`: the judge's last beat (frozen at its verdict); `longestGapMs`: the longest silence between two beats since start. */
  stats(): { beats: number; rejected: number; lastBeatAt: number | null; longestGapMs: number };
  /** The longest silence between two beats since the previous call (reset), ms. */
  takeWindowGap(): number;
  /** Stops and joins the thread. Idempotent. */
  close(): void;
}

/** The failure detector on the caller's clock (epoch ms in every input). */
export interface NativeFailureDetectorHandle {
  readonly state: 'waiting' | 'alive' | 'suspected' | 'dead' | 'stopped';
  readonly lastBeatAt: number | null;
  readonly verdict: Extract<NativeDetectorOutput, { type: 'dead' }>['verdict'] | null;
  readonly timeoutMs: number;
  readonly judgeEveryMs: number;
  readonly selfPauseMs: number;
  beat(now: number): NativeDetectorOutput[];
  tick(now: number): NativeDetectorOutput[];
  portUnreachable(now: number): NativeDetectorOutput[];
  hostProbed(silentSince: number, answered: boolean, now: number): NativeDetectorOutput[];
  hostProbeCalibrated(ms: number | null): NativeDetectorOutput[];
  channelClosed(deliberate: boolean, now: number): NativeDetectorOutput[];
}

export interface NativeHeartbeatDatagram {
  /** 1 beat, 2 subscribe (any byte, to test the decoder). */
  kind: number;
  epoch: number;
  seq: number;
  sentAt: number;
}

export type NativeHeartbeatDecodeResult = ({ ok: true } & NativeHeartbeatDatagram) | { ok: false; error: NativeWireRejection; length: number; kind: number };

/** Starts the primary's heartbeat thread; its UDP socket is bound when this returns (a bind failure throws NativeSyscallError). */
export function startHeartbeatBeaconThread(options: NativeBeaconOptions, onEvents: (events: NativeBeaconEvent[]) => void): NativeBeaconHandle {
  return callAddon((a) => new a.NativeHeartbeatBeacon(options, onEvents));
}

/** Starts the standby's heartbeat thread, its UDP socket connected to the primary's heartbeat port. */
export function startHeartbeatMonitorThread(options: NativeMonitorOptions, onEvents: (events: NativeMonitorEvent[]) => void): NativeMonitorHandle {
  return callAddon((a) => new a.NativeHeartbeatMonitor(options, onEvents));
}

export function createNativeFailureDetector(settings: NativeDetectorSettings, startedAt: number): NativeFailureDetectorHandle {
  return callAddon((a) => new a.NativeFailureDetector(settings, startedAt));
}

/** The heartbeat threads' encoder. */
export function nativeEncodeHeartbeat(datagram: NativeHeartbeatDatagram, secret: string | Buffer): Buffer {
  return callAddon((a) => a.encodeHeartbeat(datagram, secret));
}

/** The heartbeat threads' decoder. */
export function nativeDecodeHeartbeat(bytes: Buffer, secret: string | Buffer): NativeHeartbeatDecodeResult {
  return callAddon((a) => a.decodeHeartbeat(bytes, secret));
}

/** A pipe for a kernel lease: both ends close-on-exec, the write end non-blocking (the beacon thread's), the read end blocking (`nft -i`'s stdin). */
export function createLeasePipe(): { readFd: number; writeFd: number } {
  return callAddon((a) => a.createLeasePipe());
}
