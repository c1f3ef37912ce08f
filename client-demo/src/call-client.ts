import { io, type Socket } from 'socket.io-client';
import type {
  ClientToServerEvents,
  JoinReply,
  MediaKind,
  MediaStatus,
  Result,
  RosterUpdate,
  ServerOffer,
  ServerToClientEvents,
  SignalingErrorEvent,
  SpareActivate,
  SpareActivated,
  SpareAnswer,
  SpareOffer,
  SpareSwitchTrigger,
} from '../../mcu/src/signaling/protocol.ts';
import { TypedEmitter } from './emitter.ts';
import { PageSparePath, reception, type PageSpareState } from './spare-path.ts';
import { SwitchDetector, type SwitchAction, type SwitchDetectorOptions } from './switch-detector.ts';

/** Where the call is, as the page shows it. */
export type CallState = 'idle' | 'connecting' | 'joining' | 'negotiating' | 'in-call' | 'reconnecting' | 'restarting-media' | 'left' | 'failed';

export type CallClientEvents = {
  state: [CallState];
  roster: [RosterUpdate];
  joined: [JoinReply];
  /** The mix from the MCU: one stream with its audio and video receiver tracks. */
  'remote-stream': [MediaStream];
  'signaling-error': [SignalingErrorEvent];
  'media-status': [MediaStatus];
  /** Signaling was lost and restored; `outageMs` is how long it was down. */
  reconnected: [{ outageMs: number; resumed: boolean }];
  /** Media restarted on a server offer (same RTCPeerConnection). */
  'media-restarted': [{ reason: string; tookMs: number }];
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

/** How long the dead path of a switch lingers before it is closed (see #switchToSpare). */
const RETIRE_OLD_PATH_MS = 3000;

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

export class SignalingRequestError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'SignalingRequestError';
    this.code = code;
  }
}

export interface CallClientOptions {
  /** MCU address; default: the page's own origin. */
  url?: string;
  /** How long a server-offered media restart may take before the page starts a fresh peer connection (default 4000 ms). */
  restartTimeoutMs?: number;
  room: string;
  name: string;
  localStream: MediaStream;
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

/**
 * The page's side of a call: one socket.io connection (WebSocket only) and one
 * RTCPeerConnection to the MCU. The page offers audio + video once; afterwards the
 * MCU may send offers (media restart after a failover) on the same connection.
 */
export class CallClient extends TypedEmitter<CallClientEvents> {
  readonly socket: Socket<ServerToClientEvents, ClientToServerEvents>;
  #pc: RTCPeerConnection;
  readonly #opts: CallClientOptions;
  #restartWatchdog: ReturnType<typeof setTimeout> | null = null;
  #state: CallState = 'idle';
  #joined: JoinReply | null = null;
  #disconnectedAt: number | null = null;
  #remoteStream: MediaStream | null = null;
  #closed = false;
  #spare: PageSparePath | null = null;
  #detector: SwitchDetector | null = null;
  #sampleTimer: ReturnType<typeof setInterval> | null = null;
  readonly #switches: SpareSwitch[] = [];
  #falseSwitches = 0;
  #falseAlarms = 0;
  #falseSilences = 0;
  #longestFalseSilenceMs = 0;
  #offersAnswered = 0;

  constructor(opts: CallClientOptions) {
    super();
    this.#opts = opts;
    this.socket = io(opts.url ?? window.location.origin, {
      transports: ['websocket'],
      autoConnect: false,
      // Reconnect at once after a server crash: the standby is already there.
      reconnectionDelay: 50,
      reconnectionDelayMax: 500,
      randomizationFactor: 0.3,
    });
    this.#pc = this.#newPeerConnection();
    this.socket.on('roster', (update) => this.emit('roster', update));
    this.socket.on('signaling-error', (err) => this.emit('signaling-error', err));
    this.socket.on('media-status', (status) => this.emit('media-status', status));
    this.socket.on('offer', (offer) => void this.#onServerOffer(offer));
    this.socket.on('spare-offer', (offer, ack) => void this.#onSpareOffer(offer, ack));
    this.socket.on('spare-activate', (req, ack) => this.#onSpareActivate(req, ack));
    this.socket.on('spare-close', (req) => {
      if (this.#spare?.pathId === req.pathId) this.#dropSpare(`closed by the MCU: ${req.reason}`);
    });
    this.socket.on('disconnect', (reason) => {
      if (this.#closed || this.#state === 'left') return;
      this.#disconnectedAt = performance.now();
      this.#signalingLostAt = performance.timeOrigin + performance.now();
      console.info('signaling lost', reason);
      this.#setState('reconnecting');
    });
    this.socket.on('connect', () => void this.#onConnect());
  }

  /** The peer connection to the MCU: the same one across server restarts, a new one only after a fallback. */
  get pc(): RTCPeerConnection {
    return this.#pc;
  }

  #newPeerConnection(): RTCPeerConnection {
    const pc = new RTCPeerConnection();
    for (const track of this.#opts.localStream.getTracks()) {
      pc.addTransceiver(track, { direction: 'sendrecv', streams: [this.#opts.localStream] });
    }
    this.#watchRestart(pc);
    return pc;
  }

  #watchRestart(pc: RTCPeerConnection): void {
    pc.addEventListener('connectionstatechange', () => {
      if (pc === this.#pc && pc.connectionState === 'connected' && this.#restartWatchdog) {
        clearTimeout(this.#restartWatchdog);
        this.#restartWatchdog = null;
      }
    });
  }

  get state(): CallState {
    return this.#state;
  }

  get participantId(): string | null {
    return this.#joined?.participantId ?? null;
  }

  get joinReply(): JoinReply | null {
    return this.#joined;
  }

  #setState(state: CallState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.emit('state', state);
  }

  /** Connects, joins the room and negotiates media. Resolves when the call is up. */
  async join(): Promise<JoinReply> {
    this.#setState('connecting');
    const connected = new Promise<void>((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('connect_error', (err) => reject(new SignalingRequestError('CONNECT_FAILED', `cannot reach the MCU: ${err.message}`)));
    });
    this.socket.connect();
    await connected;
    return this.#joinedPromise ?? (await this.#firstJoin());
  }

  #joinedPromise: Promise<JoinReply> | null = null;

  async #firstJoin(): Promise<JoinReply> {
    this.#joinedPromise = (async () => {
      this.#setState('joining');
      const reply = await this.#request<JoinReply>((ack) => this.socket.emit('join', { room: this.#opts.room, name: this.#opts.name }, ack));
      this.#joined = reply;
      this.emit('joined', reply);
      this.emit('roster', { room: reply.room, participants: reply.roster });
      // A fresh join after the MCU forgot us: the old peer connection belongs to a dead server.
      const used = this.#pc.remoteDescription !== null;
      if (used) {
        const old = this.#pc;
        this.#pc = this.#newPeerConnection();
        old.close();
        this.#remoteStream = null;
        // A spare path belonged to the participant the MCU forgot.
        this.#dropSpare('joined afresh');
      }
      await this.#negotiate(used);
      this.#setState('in-call');
      return reply;
    })();
    try {
      return await this.#joinedPromise;
    } catch (err) {
      this.#joinedPromise = null;
      this.#setState('failed');
      throw err;
    }
  }

  /** After a reconnect: resume the same participant, or join afresh if the MCU forgot it. */
  async #onConnect(): Promise<void> {
    if (this.#disconnectedAt === null || this.#joined === null || this.#closed) return;
    const outageStart = this.#disconnectedAt;
    this.#disconnectedAt = null;
    const joined = this.#joined;
    const resume = (): Promise<JoinReply> =>
      this.#request<JoinReply>((ack) =>
        this.socket.emit(
          'join',
          { room: joined.room, name: this.#opts.name, resume: { participantId: joined.participantId, resumeToken: joined.resumeToken } },
          ack,
        ),
      );
    for (let attempt = 0; ; attempt++) {
      try {
        const reply = await resume();
        this.#joined = reply;
        if (reply.epoch > joined.epoch) this.#newEpochAt(reply.epoch);
        this.emit('roster', { room: reply.room, participants: reply.roster });
        this.emit('reconnected', { outageMs: performance.now() - outageStart, resumed: reply.resumed });
        if (this.#state === 'reconnecting') this.#setState('in-call');
        this.#expectRestart(reply.epoch === joined.epoch, outageStart);
        return;
      } catch (err) {
        const code = err instanceof SignalingRequestError ? err.code : 'UNKNOWN';
        // A standby still promoting itself answers NOT_PRIMARY for a moment: try again.
        if ((code === 'NOT_PRIMARY' || code === 'TIMEOUT') && attempt < 50 && this.socket.connected) {
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        if (!this.socket.connected) return;
        console.warn('resume refused, joining afresh', err);
        this.#joinedPromise = null;
        await this.#firstJoin();
        this.emit('reconnected', { outageMs: performance.now() - outageStart, resumed: false });
        return;
      }
    }
  }

  /**
   * After a resume the MCU sends its restart offer at once. If none comes and the media path
   * is not up within the restart timeout, start a fresh peer connection instead.
   */
  #expectRestart(sameServer: boolean, since: number): void {
    // The same MCU (a network blip): its media path never went away.
    if (sameServer) return;
    const pc = this.#pc;
    const timeoutMs = this.#opts.restartTimeoutMs ?? 4000;
    setTimeout(() => {
      // Any server offer since the connection was lost counts (it may beat the resume's ack here).
      if (this.#closed || this.#pc !== pc || this.#lastRestartAt >= since || this.#state === 'restarting-media') return;
      void this.#fallbackToFreshPeerConnection(`no restart offer within ${timeoutMs} ms of resuming on a new MCU`);
    }, timeoutMs);
  }

  #lastRestartAt = -Infinity;

  async #negotiate(fresh = false): Promise<void> {
    this.#setState('negotiating');
    const pc = this.#pc;
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const reply = await this.#request<{ sdp: string }>((ack) => this.socket.emit('offer', { sdp: pc.localDescription!.sdp, fresh }, ack));
    await pc.setRemoteDescription({ type: 'answer', sdp: reply.sdp });
    this.#publishRemoteStream();
  }

  /**
   * The restart on the same peer connection failed or took too long: start a new peer
   * connection with the same local tracks (slower, but the call goes on).
   */
  async #fallbackToFreshPeerConnection(why: string): Promise<void> {
    if (this.#closed) return;
    console.warn('media restart failed, starting a fresh peer connection:', why);
    if (this.#restartWatchdog) clearTimeout(this.#restartWatchdog);
    this.#restartWatchdog = null;
    const old = this.#pc;
    this.#pc = this.#newPeerConnection();
    old.close();
    this.#remoteStream = null;
    try {
      await this.#negotiate(true);
      this.emit('media-restarted', { reason: `fallback: ${why}`, tookMs: 0 });
      this.#setState('in-call');
    } catch (err) {
      console.error('fresh peer connection failed too', err);
      this.#setState('failed');
    }
  }

  /** The MCU rebuilds the media path (a standby took over): answer on the same peer connection. */
  async #onServerOffer(offer: ServerOffer): Promise<void> {
    const started = performance.now();
    this.#setState('restarting-media');
    // Media is rebuilt without the spare path (the new primary had none connected for us): its
    // standby is gone, and a new one will offer a fresh spare.
    if (offer.reason === 'failover') this.#dropSpare('media restarted by a server offer');
    const pc = this.#pc;
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      await this.#request<object>((ack) => this.socket.emit('answer', { sdp: pc.localDescription!.sdp, offerId: offer.offerId }, ack));
    } catch (err) {
      await this.#fallbackToFreshPeerConnection((err as Error).message);
      return;
    }
    this.#publishRemoteStream();
    if (this.#restartWatchdog) clearTimeout(this.#restartWatchdog);
    if (pc.connectionState !== 'connected') {
      this.#restartWatchdog = setTimeout(() => {
        this.#restartWatchdog = null;
        if (this.#pc === pc && pc.connectionState !== 'connected') void this.#fallbackToFreshPeerConnection(`not connected after ${this.#opts.restartTimeoutMs ?? 4000} ms`);
      }, this.#opts.restartTimeoutMs ?? 4000);
    }
    this.#lastRestartAt = started;
    this.emit('media-restarted', { reason: offer.reason, tookMs: performance.now() - started });
    this.#setState(this.socket.connected ? 'in-call' : 'reconnecting');
  }

  // Remote tracks come from the transceivers' receivers: they survive a server-side restart,
  // while the stream ids in the SDP change with every server peer connection.
  #publishRemoteStream(): void {
    const tracks = this.#pc.getTransceivers().map((t) => t.receiver.track);
    if (this.#remoteStream && tracks.every((t) => this.#remoteStream!.getTracks().includes(t))) return;
    this.#remoteStream = new MediaStream(tracks);
    this.emit('remote-stream', this.#remoteStream);
  }

  /**
   * After a switch to the spare path: its receiver tracks replace the old ones inside the same
   * MediaStream, so the element keeps its srcObject (no reload of the media element).
   */
  #swapRemoteTracks(): void {
    const stream = this.#remoteStream;
    if (!stream) return this.#publishRemoteStream();
    const tracks = this.#pc.getTransceivers().map((t) => t.receiver.track);
    for (const old of stream.getTracks()) if (!tracks.includes(old)) stream.removeTrack(old);
    for (const track of tracks) if (!stream.getTracks().includes(track)) stream.addTrack(track);
    this.emit('remote-stream', stream);
  }

  // ---- warm spare path ----

  /** The spare path's peer connection while the page holds one (benchmarks read its statistics). */
  get sparePeerConnection(): RTCPeerConnection | null {
    return this.#spare?.pc ?? null;
  }

  get spareStats(): SpareStats {
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
  async #onSpareOffer(offer: SpareOffer, ack: (res: Result<SpareAnswer>) => void): Promise<void> {
    if (this.#closed || this.#joined === null || typeof offer?.pathId !== 'string' || typeof offer.sdp !== 'string') {
      ack({ ok: false, error: { code: 'NOT_READY', message: 'this page is not in a call' } });
      return;
    }
    // One spare at a time: a newer offer (a new standby) replaces the old one.
    this.#dropSpare('replaced by a newer spare offer');
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
        if (state === 'failed') this.#dropSpare('spare peer connection failed');
      },
      () => {
        const detector = this.#detector;
        if (spare !== this.#spare || !detector) return;
        // Takeover mode: media on the spare is the switch signal by itself (only a promoted
        // standby sends there), so switch in this event, without waiting for statistics.
        if (detector.options.switchOnSpareMedia && spare.state === 'connected') {
          const now = performance.timeOrigin + performance.now();
          const action = detector.feed({ at: now, primaryLastPacketAt: detector.lastPacketAt, spareDelivering: true, spareConnected: true, signalingLostAt: this.#signalingLostAt });
          if (action.kind === 'switch') this.#switchToSpare(spare, action.trigger, action.silentMs);
          return;
        }
        // Media on the spare: judge now rather than at the next sample.
        if (!this.#sampling) {
          this.#sampling = true;
          void this.#sample()
            .catch((err: unknown) => console.warn('spare path sampling failed', err))
            .finally(() => (this.#sampling = false));
        }
      },
    );
    this.#spare = spare;
    try {
      const sdp = await spare.answer(offer.sdp);
      if (this.#spare !== spare) throw new Error('replaced while answering');
      this.#offersAnswered++;
      ack({ ok: true, pathId: spare.pathId, sdp });
    } catch (err) {
      if (this.#spare === spare) this.#dropSpare(`answer failed: ${(err as Error).message}`);
      ack({ ok: false, error: { code: 'NEGOTIATION_FAILED', message: (err as Error).message } });
    }
  }

  /** The new primary says the mix runs on this spare path: switch now, or confirm a switch already made. */
  #onSpareActivate(req: SpareActivate, ack: (res: Result<SpareActivated>) => void): void {
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

  /** `signalingSurvives`: takeover mode, a failover never drops the signaling (see SpareOffer). */
  #startSampling(signalingSurvives: boolean): void {
    this.#detector = new SwitchDetector({ ...this.#opts.spareSwitch, ...(signalingSurvives ? { requireSignalingLoss: false, switchOnSpareMedia: true } : {}) });
    if (this.#sampleTimer !== null) return;
    this.#sampleTimer = setInterval(() => {
      if (this.#sampling) return;
      this.#sampling = true;
      void this.#sample()
        .catch((err: unknown) => console.warn('spare path sampling failed', err))
        .finally(() => (this.#sampling = false));
    }, this.#opts.spareSampleMs ?? (signalingSurvives ? 50 : 25));
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

  #sampling = false;

  async #sample(): Promise<void> {
    const spare = this.#spare;
    const detector = this.#detector;
    if (!spare || !detector) return this.#stopSampling();
    const pc = this.#pc;
    const [primary, spareRx] = await Promise.all([reception(pc), spare.reception()]);
    if (spare !== this.#spare || detector !== this.#detector || pc !== this.#pc) return;
    const action: SwitchAction = detector.feed({
      at: primary.at,
      primaryLastPacketAt: primary.lastPacketAt,
      spareDelivering: spareRx.packets > 0 || spare.unmuted > 0,
      spareConnected: spare.state === 'connected',
      signalingLostAt: this.#signalingLostAt,
    });
    switch (action.kind) {
      case 'arm':
        this.emit('spare-alarm', { pathId: spare.pathId, kind: 'armed', silentMs: action.silentMs });
        void spare.arm(this.#opts.localStream).catch((err: unknown) => console.warn('arming the spare path failed', err));
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
    void spare.arm(this.#opts.localStream).catch((err: unknown) => console.warn('arming the spare path failed', err));
    spare.markInUse();
    this.#spare = null;
    this.#stopSampling();
    const old = this.#pc;
    this.#pc = spare.pc;
    this.#watchRestart(spare.pc);
    if (this.#restartWatchdog) clearTimeout(this.#restartWatchdog);
    this.#restartWatchdog = null;
    this.#lastRestartAt = at;
    for (const t of old.getTransceivers()) void t.sender.replaceTrack(null).catch(() => undefined);
    // Closed a little later: closing a peer connection holds the page's WebRTC threads for a
    // moment, and packets of the path just switched to would wait behind it (a second gap).
    setTimeout(() => old.close(), RETIRE_OLD_PATH_MS);
    this.#swapRemoteTracks();
    // Its audio plays in the call's own element from now on.
    this.emit('spare-audio', null);
    const windowMs = this.#opts.falseSwitchWindowMs ?? 15000;
    // Real: told by the new primary (only a promoted standby says so), or a resume on a newer
    // epoch close to the switch (before it: the resume may win the race).
    // Only a promoted standby sends on a spare: a switch on its media follows a real failover.
    const real = trigger !== 'silence' || (this.#lastNewEpochAt !== null && at - this.#lastNewEpochAt < windowMs);
    const sw: SpareSwitch = { pathId: spare.pathId, trigger, primarySilentMs, at, epochBefore: this.#joined?.epoch ?? null, real, ...seen };
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

  #lastNewEpochAt: number | null = null;
  /** When signaling last dropped, epoch ms (the clock of the stats reports the detector reads). */
  #signalingLostAt: number | null = null;

  /** Resumed on a newer MCU epoch: a failover really happened; switches shortly before it were right. */
  #newEpochAt(epoch: number): void {
    const now = performance.now();
    this.#lastNewEpochAt = now;
    const windowMs = this.#opts.falseSwitchWindowMs ?? 15000;
    for (const sw of this.#switches) if (!sw.real && now - sw.at < windowMs && (sw.epochBefore ?? 0) < epoch) sw.real = true;
  }

  #dropSpare(why: string): void {
    const spare = this.#spare;
    if (!spare) return;
    this.#spare = null;
    this.#stopSampling();
    this.emit('spare-audio', null);
    console.info('spare path dropped', spare.pathId, why);
    spare.close();
  }

  async setMuted(kind: MediaKind, muted: boolean): Promise<void> {
    for (const track of this.#opts.localStream.getTracks()) if (track.kind === kind) track.enabled = !muted;
    await this.#request<object>((ack) => this.socket.emit('mute', { kind, muted }, ack));
  }

  async leave(): Promise<void> {
    if (this.#state === 'left') return;
    try {
      if (this.socket.connected && this.#joined) await this.#request<object>((ack) => this.socket.emit('leave', ack));
    } finally {
      this.#setState('left');
      this.close();
    }
  }

  #request<T>(send: (ack: (res: Result<T>) => void) => void, timeoutMs = 10000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new SignalingRequestError('TIMEOUT', `no answer from the MCU within ${timeoutMs} ms`)), timeoutMs);
      send((res) => {
        clearTimeout(timer);
        if (res.ok) resolve(res as T);
        else reject(new SignalingRequestError(res.error.code, res.error.message));
      });
    });
  }

  /** Idempotent: closes the socket and the peer connection (local tracks are the caller's). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#restartWatchdog) clearTimeout(this.#restartWatchdog);
    this.#dropSpare('call closed');
    this.socket.disconnect();
    this.#pc.close();
    this.removeAllListeners();
  }
}
