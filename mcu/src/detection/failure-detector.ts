import { EventEmitter } from 'node:events';
import { ConfigError } from '../core/errors.ts';
import { createLogger, type LogContext, type Logger } from '../core/logger.ts';
import { preciseNow } from '../core/clock.ts';
import { safeEmit } from '../core/events.ts';

/**
 * Decides whether the primary is dead, from two inputs: heartbeats (any verified frame) and the
 * replication channel closing. A pure state machine: time only enters through the `now`
 * arguments (or the injected clock), so tests drive it deterministically; the owner calls
 * `tick()` from a timer at `nextCheckAt()`.
 *
 *   waiting   --heartbeat-->                  alive
 *   alive     --no beat for suspectAfterMs--> suspected (late)
 *   alive     --channel closed, no shutdown-> suspected (channel-closed), confirmed after closeGraceMs
 *   suspected --heartbeat-->                  alive
 *   suspected --no beat for intervalMs*missedBeats--> dead (heartbeat-timeout)
 *   suspected --grace over after channel close-->     dead (channel-closed)
 *   any live  --deliberate shutdown-->        stopped   (never dead)
 *   dead, stopped: final until reset()
 */

export type FailureDetectorState = 'waiting' | 'alive' | 'suspected' | 'dead' | 'stopped';
export type DeathReason = 'heartbeat-timeout' | 'channel-closed';
export type SuspicionCause = 'late' | 'channel-closed';

export interface DeathInfo {
  /** Clock value when the verdict was reached (epoch ms with the default clock). */
  detectedAt: number;
  /** Last heartbeat seen, null if none ever came. */
  lastHeartbeatAt: number | null;
  reason: DeathReason;
  /** When the channel closed, if it did (channel-closed deaths). */
  channelClosedAt: number | null;
}

export type FailureDetectorEvents = {
  state: [to: FailureDetectorState, from: FailureDetectorState, at: number];
  suspected: [cause: SuspicionCause, at: number];
  alive: [at: number];
  /** Emitted at most once per detector lifetime (until reset). */
  dead: [info: DeathInfo];
  stopped: [reason: string, at: number];
};

export interface FailureDetectorOptions {
  /** Expected heartbeat period of the peer (default 10 ms). */
  intervalMs?: number;
  /** Dead after this many periods without a heartbeat (default 3). */
  missedBeats?: number;
  /** Suspect after this long without a heartbeat (default 2 * intervalMs, at most the death timeout). */
  suspectAfterMs?: number;
  /**
   * Confirmation delay after the channel closed without a shutdown (default 1 ms). A killed
   * process's kernel closes the socket at once, so end of stream is the fastest signal;
   * the grace only turns it from a suspicion into a verdict.
   */
  closeGraceMs?: number;
  /** Time source for calls without an explicit `now` (default: epoch ms, sub-ms resolution). */
  clock?: () => number;
  logContext?: LogContext;
}

export class FailureDetector extends EventEmitter<FailureDetectorEvents> {
  readonly intervalMs: number;
  readonly missedBeats: number;
  readonly timeoutMs: number;
  readonly suspectAfterMs: number;
  readonly closeGraceMs: number;
  readonly #clock: () => number;
  readonly #log: Logger;
  #state: FailureDetectorState = 'waiting';
  #lastHeartbeatAt: number | null = null;
  #suspicion: SuspicionCause | null = null;
  #channelClosedAt: number | null = null;
  #deathInfo: DeathInfo | null = null;

  constructor(options: FailureDetectorOptions = {}) {
    super();
    this.intervalMs = options.intervalMs ?? 10;
    this.missedBeats = options.missedBeats ?? 3;
    if (!(this.intervalMs > 0) || !Number.isInteger(this.missedBeats) || this.missedBeats < 1) {
      throw new ConfigError(`failure detector: intervalMs (${this.intervalMs}) must be > 0 and missedBeats (${this.missedBeats}) an integer >= 1`);
    }
    this.timeoutMs = this.intervalMs * this.missedBeats;
    this.suspectAfterMs = Math.min(options.suspectAfterMs ?? this.intervalMs * 2, this.timeoutMs);
    this.closeGraceMs = Math.max(0, options.closeGraceMs ?? 1);
    this.#clock = options.clock ?? preciseNow;
    this.#log = createLogger('failure-detector', options.logContext ?? {});
  }

  get state(): FailureDetectorState {
    return this.#state;
  }
  get lastHeartbeatAt(): number | null {
    return this.#lastHeartbeatAt;
  }
  get suspicion(): SuspicionCause | null {
    return this.#suspicion;
  }
  /** The verdict, once dead. */
  get deathInfo(): DeathInfo | null {
    return this.#deathInfo;
  }

  /** A heartbeat (or any verified frame) from the peer. */
  heartbeat(now: number = this.#clock()): void {
    if (this.#state === 'dead' || this.#state === 'stopped') return;
    if (this.#lastHeartbeatAt === null || now > this.#lastHeartbeatAt) this.#lastHeartbeatAt = now;
    if (this.#state === 'waiting' || this.#state === 'suspected') {
      this.#suspicion = null;
      this.#channelClosedAt = null;
      this.#setState('alive', now, 'heartbeat');
      safeEmit(this, this.#log, 'alive', now);
    }
  }

  /** The replication channel closed: `deliberate` when the peer announced a shutdown first. */
  channelClosed(deliberate: boolean, now: number = this.#clock(), reason = deliberate ? 'peer shut down' : 'channel closed'): void {
    if (this.#state === 'dead' || this.#state === 'stopped') return;
    if (deliberate) {
      this.stop(reason, now);
      return;
    }
    if (this.#state === 'waiting') {
      // No heartbeat ever came: nothing was alive, so there is nothing to declare dead.
      this.#log.info(`channel closed before the first heartbeat (${reason}): still waiting`, { at: ms(now) });
      return;
    }
    this.#channelClosedAt = now;
    this.#suspect('channel-closed', now, reason);
    this.tick(now);
  }

  /** Deliberate end of watching (the peer shut down, or the owner closed): never a death. */
  stop(reason: string, now: number = this.#clock()): void {
    if (this.#state === 'dead' || this.#state === 'stopped') return;
    this.#suspicion = null;
    this.#setState('stopped', now, reason);
    safeEmit(this, this.#log, 'stopped', reason, now);
  }

  /** Re-evaluates timeouts at `now`. */
  tick(now: number = this.#clock()): void {
    if (this.#state !== 'alive' && this.#state !== 'suspected') return;
    const last = this.#lastHeartbeatAt ?? now;
    const silent = now - last;
    if (this.#suspicion === 'channel-closed' && this.#channelClosedAt !== null && now - this.#channelClosedAt >= this.closeGraceMs) {
      this.#die('channel-closed', now);
      return;
    }
    if (silent >= this.timeoutMs) {
      // Pass through 'suspected' so the log shows the whole path even when a tick came late.
      if (this.#state === 'alive') this.#suspect('late', now, `no heartbeat for ${fmt(silent)} ms`);
      this.#die('heartbeat-timeout', now);
      return;
    }
    if (this.#state === 'alive' && silent >= this.suspectAfterMs) {
      this.#suspect('late', now, `no heartbeat for ${fmt(silent)} ms`);
    }
  }

  /** When the next tick could change the state; null when only an input can. */
  nextCheckAt(): number | null {
    if (this.#state !== 'alive' && this.#state !== 'suspected') return null;
    const last = this.#lastHeartbeatAt ?? this.#clock();
    let at = last + this.timeoutMs;
    if (this.#state === 'alive') at = Math.min(at, last + this.suspectAfterMs);
    if (this.#suspicion === 'channel-closed' && this.#channelClosedAt !== null) at = Math.min(at, this.#channelClosedAt + this.closeGraceMs);
    return at;
  }

  /** Back to 'waiting' for a new channel (a new primary, a reconnect after a deliberate stop). */
  reset(now: number = this.#clock()): void {
    this.#lastHeartbeatAt = null;
    this.#suspicion = null;
    this.#channelClosedAt = null;
    this.#deathInfo = null;
    if (this.#state !== 'waiting') this.#setState('waiting', now, 'reset');
  }

  #suspect(cause: SuspicionCause, now: number, detail: string): void {
    this.#suspicion = cause;
    if (this.#state === 'suspected') {
      this.#log.info(`suspicion now ${cause}: ${detail}`, { at: ms(now) });
    } else {
      this.#setState('suspected', now, `${cause}: ${detail}`);
    }
    safeEmit(this, this.#log, 'suspected', cause, now);
  }

  #die(reason: DeathReason, now: number): void {
    const info: DeathInfo = {
      detectedAt: now,
      lastHeartbeatAt: this.#lastHeartbeatAt,
      reason,
      channelClosedAt: this.#channelClosedAt,
    };
    this.#deathInfo = info;
    this.#setState('dead', now, reason);
    safeEmit(this, this.#log, 'dead', info);
  }

  /** The one place the state changes: every transition is logged with ms timestamps. */
  #setState(to: FailureDetectorState, now: number, cause: string): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    const level = to === 'dead' ? 'warn' : 'info';
    this.#log.log(level, `${from} -> ${to} (${cause})`, {
      at: ms(now),
      lastHeartbeatAt: this.#lastHeartbeatAt === null ? undefined : ms(this.#lastHeartbeatAt),
      sinceHeartbeatMs: this.#lastHeartbeatAt === null ? undefined : ms(now - this.#lastHeartbeatAt),
    });
    safeEmit(this, this.#log, 'state', to, from, now);
  }
}

function fmt(value: number): string {
  return value.toFixed(3);
}

/** Clock values on log lines: milliseconds with microsecond digits, to line up two processes' logs. */
function ms(value: number): number {
  return Math.round(value * 1000) / 1000;
}
