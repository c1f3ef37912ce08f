import type {
  JoinReply,
  Result,
  SpareActivate,
  SpareActivated,
  SpareAnswer,
  SpareClose,
  SpareOffer,
  SpareSwitchTrigger,
} from '../../../mcu/src/signaling/protocol.ts';
import { TypedEmitter } from '../emitter.ts';
import type { MediaTransport } from '../media/media-transport.ts';
import { reception } from '../stats/reception.ts';
import { PageSparePath, type PageSpareState } from './spare-path.ts';
import { SwitchDetector, type SwitchAction, type SwitchDetectorOptions } from './switch-detector.ts';

export type SpareSwitcherEvents = {
  /** A warm spare path changed state (answered, connected, failed, closed, in use). */
  'spare-state': [{ pathId: string; state: PageSpareState }];
  /**
   * The connected spare path's received audio (null once it is gone or in use): play it beside
   * the call's own. It is silent until a promoted standby mixes onto it, and then it is heard at
   * once, without waiting for the page to notice and switch (a wrongly promoted standby never
   * sends there: takeover mode fences the old primary first, reconnect mode owns the port first).
   */
  'spare-audio': [MediaStreamTrack | null];
  /** The page moved its media to the warm spare path (a failover): no renegotiation. */
  'spare-switched': [SpareSwitch];
  /** The primary path went silent long enough to suspect a failover (`armed`), or came back (`cleared`). */
  'spare-alarm': [{ pathId: string; kind: 'armed' | 'cleared'; silentMs: number }];
};

/** One switch to a spare path, as the page saw it. */
export interface SpareSwitch {
  pathId: string;
  trigger: SpareSwitchTrigger;
  /** How long the old path had been silent at the switch, ms. */
  primarySilentMs: number;
  /** performance.now() of the switch. */
  at: number;
  /** Epoch of the MCU the page was on before the switch. */
  epochBefore: number | null;
  /** True once the page resumed on a newer epoch (a real failover); false switches never get this. */
  real: boolean;
  /** Audio packets the spare had received when the page switched (x 20 ms: how long it had been delivering). */
  spareAudioPackets: number;
  /** When the old path's last RTP packet arrived (epoch ms, from its statistics), null if unknown. */
  oldPathLastPacketAt: number | null;
  /** When the spare's first audio packet arrived (epoch ms), estimated from its latest packet and count at 20 ms each; null if unknown. */
  spareFirstAudioAt: number | null;
}

/** The page's warm spare path counters (tests and benchmarks read them). */
export interface SpareStats {
  state: PageSpareState | 'none';
  pathId: string | null;
  switches: SpareSwitch[];
  /** Switches not followed by a resume on a newer epoch within `falseSwitchWindowMs`. */
  falseSwitches: number;
  /** Suspicions (primary path silent for `armSilenceMs`) that ended with the primary delivering again. */
  falseAlarms: number;
  /** Silences of `silenceMs` or more that ended with the primary delivering again (false switches on silence alone). */
  falseSilences: number;
  /** Longest primary-path silence that did not lead to a switch, ms. */
  longestFalseSilenceMs: number;
  offersAnswered: number;
  /** Receiver tracks of the current spare that got media (0 while it idles, as it should). */
  spareTracksWithMedia: number;
}

export interface SpareSwitcherOptions {
  /** When to switch to a warm spare path (see SwitchDetector; default 60 ms of silence, confirmed by the spare's media). */
  spareSwitch?: Partial<SwitchDetectorOptions>;
  /**
   * How often the reception of both paths is sampled (getStats) while a spare is connected
   * (default 25 ms; 50 ms in takeover mode, where the spare's media itself switches the page).
   * Chromium serves a report from a cache of about 50 ms, and each call costs the page CPU.
   */
  spareSampleMs?: number;
  /** A switch not followed by a resume on a newer epoch within this is a false switch (default 15000 ms). */
  falseSwitchWindowMs?: number;
}

/** What the switcher needs to know of the call. */
export interface SpareCallView {
  /** The MCU's reply to the current join, null while not in a call. */
  joined(): JoinReply | null;
  /** When signaling last dropped, epoch ms (the clock of the stats reports the detector reads), null if never. */
  signalingLostAt(): number | null;
}

/**
 * The page's side of the warm spare: at most one spare path at a time (a newer offer replaces
 * the older), the sampling of both paths' reception that feeds the SwitchDetector while a spare
 * is connected, the switch itself (the media transport adopts the spare's peer connection) and
 * the counters of real and false switches.
 */
export class SpareSwitcher extends TypedEmitter<SpareSwitcherEvents> {
  readonly #media: MediaTransport;
  readonly #localStream: MediaStream;
  readonly #call: SpareCallView;
  readonly #opts: SpareSwitcherOptions;
  readonly #falseSwitchWindowMs: number;
  #spare: PageSparePath | null = null;
  #detector: SwitchDetector | null = null;
  #sampleTimer: ReturnType<typeof setInterval> | null = null;
  #sampling = false;
  readonly #switches: SpareSwitch[] = [];
  #falseSwitches = 0;
  #falseAlarms = 0;
  #falseSilences = 0;
  #longestFalseSilenceMs = 0;
  #offersAnswered = 0;
  #lastNewEpochAt: number | null = null;
  #closed = false;

  constructor(media: MediaTransport, localStream: MediaStream, call: SpareCallView, options: SpareSwitcherOptions) {
    super();
    this.#media = media;
    this.#localStream = localStream;
    this.#call = call;
    this.#opts = options;
    this.#falseSwitchWindowMs = options.falseSwitchWindowMs ?? 15000;
  }

  /** The spare path's peer connection while the page holds one (benchmarks read its statistics). */
  get peerConnection(): RTCPeerConnection | null {
    return this.#spare?.pc ?? null;
  }

  get stats(): SpareStats {
    return {
      state: this.#spare?.state ?? 'none',
      pathId: this.#spare?.pathId ?? null,
      switches: this.#switches.map((s) => ({ ...s })),
      falseSwitches: this.#falseSwitches,
      falseAlarms: this.#falseAlarms + (this.#detector?.falseAlarms ?? 0),
      falseSilences: this.#falseSilences + (this.#detector?.falseSilences ?? 0),
      longestFalseSilenceMs: Math.max(this.#longestFalseSilenceMs, this.#detector?.longestFalseSilenceMs ?? 0),
      offersAnswered: this.#offersAnswered,
      spareTracksWithMedia: this.#spare?.unmuted ?? 0,
    };
  }

  /** A standby offers a spare path: answer it on a second peer connection with idle senders. */
  async answer(offer: SpareOffer, ack: (res: Result<SpareAnswer>) => void): Promise<void> {
    if (this.#closed || this.#call.joined() === null || typeof offer?.pathId !== 'string' || typeof offer.sdp !== 'string') {
      ack({ ok: false, error: { code: 'NOT_READY', message: 'this page is not in a call' } });
      return;
    }
    // One spare at a time: a newer offer (a new standby) replaces the old one.
    this.drop('replaced by a newer spare offer');
    const spare = new PageSparePath(
      offer.pathId,
      (state) => {
        this.emit('spare-state', { pathId: spare.pathId, state });
        if (spare !== this.#spare) return;
        if (state === 'connected') {
          this.#startSampling(offer.signalingSurvives === true);
          const audio = spare.pc.getTransceivers().find((t) => t.receiver.track.kind === 'audio')?.receiver.track;
          if (audio) this.emit('spare-audio', audio);
        }
        if (state === 'failed') this.drop('spare peer connection failed');
      },
      () => {
        const detector = this.#detector;
        if (spare !== this.#spare || !detector) return;
        // Takeover mode: media on the spare is the switch signal by itself (only a promoted
        // standby sends there), so switch in this event, without waiting for statistics.
        if (detector.options.switchOnSpareMedia && spare.state === 'connected') {
          const now = performance.timeOrigin + performance.now();
          const action = detector.feed({ at: now, primaryLastPacketAt: detector.lastPacketAt, spareDelivering: true, spareConnected: true, signalingLostAt: this.#call.signalingLostAt() });
          if (action.kind === 'switch') this.#switchToSpare(spare, action.trigger, action.silentMs);
          return;
        }
        // Media on the spare: judge now rather than at the next sample.
        this.#sampleNow();
      },
    );
    this.#spare = spare;
    try {
      const sdp = await spare.answer(offer.sdp);
      if (this.#spare !== spare) throw new Error('replaced while answering');
      this.#offersAnswered++;
      ack({ ok: true, pathId: spare.pathId, sdp });
    } catch (err) {
      if (this.#spare === spare) this.drop(`answer failed: ${(err as Error).message}`);
      ack({ ok: false, error: { code: 'NEGOTIATION_FAILED', message: (err as Error).message } });
    }
  }

  /** The new primary says the mix runs on this spare path: switch now, or confirm a switch already made. */
  activate(req: SpareActivate, ack: (res: Result<SpareActivated>) => void): void {
    const done = this.#switches.find((s) => s.pathId === req?.pathId);
    if (done) {
      ack({ ok: true, pathId: done.pathId, trigger: done.trigger, primarySilentMs: done.primarySilentMs });
      return;
    }
    const spare = this.#spare;
    if (!spare || spare.pathId !== req?.pathId || spare.state !== 'connected' || !this.#detector) {
      ack({ ok: false, error: { code: 'NO_SPARE', message: `no connected spare path ${String(req?.pathId)} here` } });
      return;
    }
    const action = this.#detector.told(performance.timeOrigin + performance.now());
    if (action.kind !== 'switch') {
      ack({ ok: false, error: { code: 'NO_SPARE', message: `the spare path cannot switch (${this.#detector.state})` } });
      return;
    }
    const sw = this.#switchToSpare(spare, action.trigger, action.silentMs);
    ack({ ok: true, pathId: sw.pathId, trigger: sw.trigger, primarySilentMs: sw.primarySilentMs });
  }

  /** The MCU closed a spare path (its standby stopped or failed). */
  closedByServer(req: SpareClose): void {
    if (this.#spare?.pathId === req.pathId) this.drop(`closed by the MCU: ${req.reason}`);
  }

  /** Resumed on a newer MCU epoch: a failover really happened; switches shortly before it were right. */
  newEpoch(epoch: number): void {
    const now = performance.now();
    this.#lastNewEpochAt = now;
    const windowMs = this.#falseSwitchWindowMs;
    for (const sw of this.#switches) if (!sw.real && now - sw.at < windowMs && (sw.epochBefore ?? 0) < epoch) sw.real = true;
  }

  /** Closes the spare path the page holds, if any. */
  drop(why: string): void {
    const spare = this.#spare;
    if (!spare) return;
    this.#spare = null;
    this.#stopSampling();
    this.emit('spare-audio', null);
    console.info('spare path dropped', spare.pathId, why);
    spare.close();
  }

  /** Idempotent: drops the spare path; a switch made before stays the call's media. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.drop('call closed');
    this.removeAllListeners();
  }

  /** `signalingSurvives`: takeover mode, a failover never drops the signaling (see SpareOffer). */
  #startSampling(signalingSurvives: boolean): void {
    this.#detector = new SwitchDetector({ ...this.#opts.spareSwitch, ...(signalingSurvives ? { requireSignalingLoss: false, switchOnSpareMedia: true } : {}) });
    if (this.#sampleTimer !== null) return;
    this.#sampleTimer = setInterval(() => this.#sampleNow(), this.#opts.spareSampleMs ?? (signalingSurvives ? 50 : 25));
  }

  #stopSampling(): void {
    if (this.#sampleTimer !== null) clearInterval(this.#sampleTimer);
    this.#sampleTimer = null;
    if (this.#detector) {
      this.#falseAlarms += this.#detector.falseAlarms;
      this.#falseSilences += this.#detector.falseSilences;
      this.#longestFalseSilenceMs = Math.max(this.#longestFalseSilenceMs, this.#detector.longestFalseSilenceMs);
    }
    this.#detector = null;
  }

  /** One sample at a time: a sample still waiting for its statistics makes this a no-op. */
  #sampleNow(): void {
    if (this.#sampling) return;
    this.#sampling = true;
    void this.#sample()
      .catch((err: unknown) => console.warn('spare path sampling failed', err))
      .finally(() => (this.#sampling = false));
  }

  async #sample(): Promise<void> {
    const spare = this.#spare;
    const detector = this.#detector;
    if (!spare || !detector) return this.#stopSampling();
    const pc = this.#media.pc;
    const [primary, spareRx] = await Promise.all([reception(pc), spare.reception()]);
    if (spare !== this.#spare || detector !== this.#detector || pc !== this.#media.pc) return;
    const action: SwitchAction = detector.feed({
      at: primary.at,
      primaryLastPacketAt: primary.lastPacketAt,
      spareDelivering: spareRx.packets > 0 || spare.unmuted > 0,
      spareConnected: spare.state === 'connected',
      signalingLostAt: this.#call.signalingLostAt(),
    });
    switch (action.kind) {
      case 'arm':
        this.emit('spare-alarm', { pathId: spare.pathId, kind: 'armed', silentMs: action.silentMs });
        void spare.arm(this.#localStream).catch((err: unknown) => console.warn('arming the spare path failed', err));
        return;
      case 'disarm':
        this.emit('spare-alarm', { pathId: spare.pathId, kind: 'cleared', silentMs: action.silentMs });
        void spare.disarm().catch((err: unknown) => console.warn('disarming the spare path failed', err));
        return;
      case 'switch':
        this.#switchToSpare(spare, action.trigger, action.silentMs, {
          spareAudioPackets: spareRx.audioPackets,
          oldPathLastPacketAt: primary.lastPacketAt,
          spareFirstAudioAt: spareRx.audioPackets > 0 && spareRx.lastAudioPacketAt !== null ? spareRx.lastAudioPacketAt - (spareRx.audioPackets - 1) * 20 : null,
        });
        return;
      case 'none':
        return;
    }
  }

  /**
   * Moves the call to the spare path: local tracks on its senders, its receiver tracks rendered,
   * the old (dead) peer connection closed. No negotiation.
   */
  #switchToSpare(
    spare: PageSparePath,
    trigger: SpareSwitchTrigger,
    primarySilentMs: number,
    seen: Pick<SpareSwitch, 'spareAudioPackets' | 'oldPathLastPacketAt' | 'spareFirstAudioAt'> = { spareAudioPackets: 0, oldPathLastPacketAt: null, spareFirstAudioAt: null },
  ): SpareSwitch {
    const at = performance.now();
    const oldPathLastPacketAt = this.#detector?.lastPacketAt ?? null;
    void spare.arm(this.#localStream).catch((err: unknown) => console.warn('arming the spare path failed', err));
    spare.markInUse();
    this.#spare = null;
    this.#stopSampling();
    this.#media.adopt(spare.pc, at);
    // Its audio plays in the call's own element from now on.
    this.emit('spare-audio', null);
    const windowMs = this.#falseSwitchWindowMs;
    // Real: told by the new primary (only a promoted standby says so), or a resume on a newer
    // epoch close to the switch (before it: the resume may win the race).
    // Only a promoted standby sends on a spare: a switch on its media follows a real failover.
    const real = trigger !== 'silence' || (this.#lastNewEpochAt !== null && at - this.#lastNewEpochAt < windowMs);
    const sw: SpareSwitch = { pathId: spare.pathId, trigger, primarySilentMs, at, epochBefore: this.#call.joined()?.epoch ?? null, real, ...seen };
    this.#switches.push(sw);
    setTimeout(() => {
      if (!sw.real && !this.#closed) this.#falseSwitches++;
    }, windowMs);
    sw.oldPathLastPacketAt ??= oldPathLastPacketAt;
    void this.#measureSpareStart(sw, spare.pc).finally(() => this.emit('spare-switched', { ...sw }));
    return sw;
  }

  /**
   * When the first audio packet arrived on the path just switched to (it may come after the
   * switch when the server's message came first): the spare's first packets counted at 20 ms each
   * back from the latest. Polled for up to a second.
   */
  async #measureSpareStart(sw: SpareSwitch, pc: RTCPeerConnection): Promise<void> {
    for (let i = 0; sw.spareFirstAudioAt === null && i < 50 && pc.connectionState !== 'closed'; i++) {
      const rx = await reception(pc).catch(() => null);
      if (rx && rx.audioPackets > 0 && rx.lastAudioPacketAt !== null) sw.spareFirstAudioAt = rx.lastAudioPacketAt - (rx.audioPackets - 1) * 20;
      else await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}
