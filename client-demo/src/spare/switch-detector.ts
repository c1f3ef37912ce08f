/**
 * When should the page leave its primary media path for its warm spare path? A pure state
 * machine fed with samples (no timers, no DOM), so it can be tested on its own.
 *
 *   no-spare -> watching        a spare path is connected
 *   watching -> suspect         the primary path has been silent for `armSilenceMs` with the
 *                               signaling down: start sending on the spare too (action `arm`, cheap
 *                               to undo); nothing switched yet
 *   suspect  -> watching        the primary delivers again: a false alarm (`disarm`, counted)
 *   watching/suspect -> switched  the primary path has been silent for `silenceMs`, the spare
 *                               delivers media (only a promoted standby sends on it) and the
 *                               signaling connection dropped during this silence (a killed
 *                               primary's kernel closes it at once; the page may well have
 *                               reconnected since); or the new primary says so (`told`); or,
 *                               with `switchOnSpareMedia` (takeover mode), the spare delivers media
 *   watching/suspect -> no-spare  the spare path is gone
 *
 * Ordinary jitter cannot switch: a late packet on the primary path only raises a suspicion, and
 * a switch also needs media on the spare and a signaling drop, which only a real failover brings
 * together. A standby that wrongly promotes itself (the primary alive, its signaling up) cannot
 * pull the page away either.
 */
export interface SwitchDetectorOptions {
  /** Primary path silent this long (with the other conditions met): switch (default 60 ms). */
  silenceMs: number;
  /** Primary path silent this long (and signaling down, when required): start sending on the spare as well (default 30 ms). */
  armSilenceMs: number;
  /** Require media on the spare before switching (default true). */
  confirmWithSpareMedia: boolean;
  /** Require a drop of the signaling connection during the silence before switching on its own (default true; reconnect mode). */
  requireSignalingLoss: boolean;
  /** A signaling drop this long before the primary's last packet still counts (packets in flight, stats lag; default 500 ms). */
  signalingSlackMs: number;
  /**
   * Switch as soon as the spare delivers media, whatever the primary path does (default false).
   * For takeover mode: only a promoted standby sends on a spare, and a primary it superseded
   * fences itself, so media there means the call has moved.
   */
  switchOnSpareMedia: boolean;
}

export const DEFAULT_SWITCH_OPTIONS: SwitchDetectorOptions = {
  silenceMs: 60,
  armSilenceMs: 30,
  confirmWithSpareMedia: true,
  requireSignalingLoss: true,
  signalingSlackMs: 500,
  switchOnSpareMedia: false,
};

export interface SwitchSample {
  /** When the observation was made, ms, on the same clock as `primaryLastPacketAt`. */
  at: number;
  /** When the primary path last received an RTP packet (null: none yet). */
  primaryLastPacketAt: number | null;
  /** The spare path has received media (only a promoted standby sends on it). */
  spareDelivering: boolean;
  spareConnected: boolean;
  /** When the signaling connection to the MCU last dropped (same clock as `at`), null if never. */
  signalingLostAt: number | null;
}

export type SwitchState = 'no-spare' | 'watching' | 'suspect' | 'switched';
export type SwitchTrigger = 'silence' | 'server' | 'spare-media';

export type SwitchAction =
  | { kind: 'none' }
  /** Start sending the local tracks on the spare path (cheap to undo). */
  | { kind: 'arm'; silentMs: number }
  /** False alarm: stop sending on the spare path. */
  | { kind: 'disarm'; silentMs: number }
  /** Leave the primary path: render the spare's tracks, retire the old path. */
  | { kind: 'switch'; trigger: SwitchTrigger; silentMs: number };

const NONE: SwitchAction = { kind: 'none' };

export class SwitchDetector {
  readonly options: SwitchDetectorOptions;
  #state: SwitchState = 'no-spare';
  #lastPacketAt: number | null = null;
  #lastAt: number | null = null;
  /** Longest silence seen since the primary's last packet. */
  #silenceMax = 0;
  /** Suspicions (`armSilenceMs` of silence) that ended with the primary path delivering again. */
  falseAlarms = 0;
  /** Silences of at least `silenceMs` that ended with the primary delivering again: each would have been a false switch on silence alone. */
  falseSilences = 0;
  /** Longest primary-path silence that ended without a switch, ms. */
  longestFalseSilenceMs = 0;

  constructor(options: Partial<SwitchDetectorOptions> = {}) {
    this.options = { ...DEFAULT_SWITCH_OPTIONS, ...options };
    const { silenceMs, armSilenceMs } = this.options;
    if (!(silenceMs > 0) || !(armSilenceMs > 0) || armSilenceMs > silenceMs) {
      throw new RangeError(`invalid switch thresholds (0 < armSilenceMs <= silenceMs): ${JSON.stringify(this.options)}`);
    }
  }

  get state(): SwitchState {
    return this.#state;
  }

  /** When the primary path's latest packet arrived, as last reported (null before the first). */
  get lastPacketAt(): number | null {
    return this.#lastPacketAt;
  }

  /** How long the primary path had been silent at `at` (0 before its first packet). */
  silentMs(at: number): number {
    return this.#lastPacketAt === null ? 0 : Math.max(0, at - this.#lastPacketAt);
  }

  feed(sample: SwitchSample): SwitchAction {
    const { at } = sample;
    // A report older than one already seen (reports of two connections interleave) adds nothing.
    if (this.#lastAt !== null && at < this.#lastAt) return NONE;
    this.#lastAt = at;
    if (this.#state === 'switched') return NONE;
    const previous = this.#lastPacketAt;
    const grew = sample.primaryLastPacketAt !== null && (previous === null || sample.primaryLastPacketAt > previous);
    if (grew) {
      if (previous !== null) {
        if (this.#silenceMax >= this.options.silenceMs) this.falseSilences++;
        this.longestFalseSilenceMs = Math.max(this.longestFalseSilenceMs, this.#silenceMax);
      }
      this.#lastPacketAt = sample.primaryLastPacketAt;
      this.#silenceMax = 0;
    }
    const silentMs = this.silentMs(at);
    this.#silenceMax = Math.max(this.#silenceMax, silentMs);

    if (!sample.spareConnected) {
      const was = this.#state;
      this.#state = 'no-spare';
      return was === 'suspect' ? { kind: 'disarm', silentMs } : NONE;
    }
    if (this.#state === 'no-spare') this.#state = 'watching';
    if (grew) {
      if (this.#state !== 'suspect') return NONE;
      this.#state = 'watching';
      this.falseAlarms++;
      return { kind: 'disarm', silentMs };
    }
    const { silenceMs, armSilenceMs, confirmWithSpareMedia, requireSignalingLoss, switchOnSpareMedia } = this.options;
    if (switchOnSpareMedia && sample.spareDelivering) return this.#switch('spare-media', silentMs);
    const signalingLost =
      !requireSignalingLoss ||
      (sample.signalingLostAt !== null && this.#lastPacketAt !== null && sample.signalingLostAt >= this.#lastPacketAt - this.options.signalingSlackMs);
    if (silentMs >= silenceMs && (!confirmWithSpareMedia || sample.spareDelivering) && signalingLost) {
      return this.#switch('silence', silentMs);
    }
    // Jitter alone (signaling up) never arms: an idle spare stays idle. Switching on spare media
    // needs no arming (the switch puts the tracks on the spare).
    if (this.#state === 'watching' && silentMs >= armSilenceMs && signalingLost && !switchOnSpareMedia) {
      this.#state = 'suspect';
      return { kind: 'arm', silentMs };
    }
    return NONE;
  }

  /** The new primary says: switch now. Refused (none) without a connected spare or after a switch. */
  told(at: number = this.#lastAt ?? 0): SwitchAction {
    if (this.#state === 'no-spare' || this.#state === 'switched') return NONE;
    return this.#switch('server', this.silentMs(at));
  }

  #switch(trigger: SwitchTrigger, silentMs: number): SwitchAction {
    this.#state = 'switched';
    return { kind: 'switch', trigger, silentMs };
  }
}
