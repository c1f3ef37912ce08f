import type { JoinReply, MediaKind, MediaStatus, RosterUpdate, ServerOffer, SignalingErrorEvent } from '../../mcu/src/signaling/protocol.ts';
import { TypedEmitter } from './emitter.ts';
import { EdgeTransport } from './media/edge-transport.ts';
import { MediaTransport } from './media/media-transport.ts';
import { SignalingClient, SignalingRequestError } from './signaling/signaling-client.ts';
import { SpareSwitcher, type SpareStats, type SpareSwitcherEvents, type SpareSwitcherOptions } from './spare/spare-switcher.ts';

/** Where the call is, as the page shows it. */
export type CallState = 'idle' | 'connecting' | 'joining' | 'negotiating' | 'in-call' | 'reconnecting' | 'restarting-media' | 'left' | 'failed';

export type CallEvents = SpareSwitcherEvents & {
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
};

export interface CallOptions extends SpareSwitcherOptions {
  /** MCU address; default: the page's own origin. */
  url?: string;
  /** How long a server-offered media restart may take before the page starts a fresh peer connection (default 4000 ms). */
  restartTimeoutMs?: number;
  room: string;
  name: string;
  localStream: MediaStream;
}

/**
 * The page's call: joins over the signaling client, negotiates the media transport, resumes
 * after a lost connection (the same participant, or a fresh join if the MCU forgot it), answers
 * the MCU's restart offers and falls back to a fresh peer connection when a restart fails. The
 * warm spare (SpareSwitcher) switches the media on its own; the call only tells it what it
 * learns (joins, resumes on a newer epoch, signaling losses).
 */
export class Call extends TypedEmitter<CallEvents> {
  readonly #opts: CallOptions;
  readonly #signaling: SignalingClient;
  readonly #media: MediaTransport;
  /** The mediasoup plane's transport, when the MCU's join reply says so (then #media stays unused). */
  #edge: EdgeTransport | null = null;
  readonly #spares: SpareSwitcher;
  #state: CallState = 'idle';
  #joined: JoinReply | null = null;
  #joinedPromise: Promise<JoinReply> | null = null;
  #disconnectedAt: number | null = null;
  /** When signaling last dropped, epoch ms (the clock of the stats reports the switch detector reads). */
  #signalingLostAt: number | null = null;
  #closed = false;

  constructor(opts: CallOptions) {
    super();
    this.#opts = opts;
    const restartTimeoutMs = opts.restartTimeoutMs ?? 4000;
    const signaling = (this.#signaling = new SignalingClient(opts.url ?? window.location.origin));
    const media = (this.#media = new MediaTransport(signaling, opts.localStream, restartTimeoutMs));
    const spares = (this.#spares = new SpareSwitcher(media, opts.localStream, { joined: () => this.#joined, signalingLostAt: () => this.#signalingLostAt }, opts));
    signaling.on('roster', (update) => this.emit('roster', update));
    signaling.on('signaling-error', (err) => this.emit('signaling-error', err));
    signaling.on('media-status', (status) => this.emit('media-status', status));
    signaling.on('offer', (offer) => void this.#onServerOffer(offer));
    signaling.on('spare-offer', (offer, ack) => void spares.answer(offer, ack));
    signaling.on('spare-activate', (req, ack) => spares.activate(req, ack));
    signaling.on('spare-close', (req) => spares.closedByServer(req));
    signaling.on('disconnect', (reason) => this.#onDisconnect(reason));
    signaling.on('connect', () => void this.#onConnect());
    media.on('remote-stream', (stream) => this.emit('remote-stream', stream));
    media.on('restart-stalled', (why) => void this.#fallbackToFreshPeerConnection(why));
    spares.on('spare-state', (info) => this.emit('spare-state', info));
    spares.on('spare-audio', (track) => this.emit('spare-audio', track));
    spares.on('spare-switched', (sw) => this.emit('spare-switched', sw));
    spares.on('spare-alarm', (alarm) => this.emit('spare-alarm', alarm));
  }

  /** The socket.io connection to the MCU (tests and benchmarks probe it). */
  get socket(): SignalingClient['socket'] {
    return this.#signaling.socket;
  }

  /**
   * The peer connection the MCU's media arrives on: the same one across server restarts, a new one
   * only after a fallback or a spare switch. On the mediasoup plane, the receive transport's.
   */
  get pc(): RTCPeerConnection {
    return this.#edge?.pc ?? this.#media.pc;
  }

  /** The media plane the MCU serves this call on (from its join reply); null before joining. */
  get mediaPlane(): JoinReply['mediaPlane'] | null {
    return this.#joined?.mediaPlane ?? null;
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

  /** The spare path's peer connection while the page holds one (benchmarks read its statistics). */
  get sparePeerConnection(): RTCPeerConnection | null {
    return this.#spares.peerConnection;
  }

  get spareStats(): SpareStats {
    return this.#spares.stats;
  }

  /** Connects, joins the room and negotiates media. Resolves when the call is up. */
  async join(): Promise<JoinReply> {
    this.#setState('connecting');
    await this.#signaling.connect();
    return this.#joinedPromise ?? (await this.#firstJoin());
  }

  /** The camera and microphone this call sends (on either media plane). */
  get localStream(): MediaStream {
    return this.#opts.localStream;
  }

  async setMuted(kind: MediaKind, muted: boolean): Promise<void> {
    for (const track of this.#opts.localStream.getTracks()) if (track.kind === kind) track.enabled = !muted;
    await this.#signaling.mute({ kind, muted });
  }

  async leave(): Promise<void> {
    if (this.#state === 'left') return;
    try {
      if (this.#signaling.connected && this.#joined) await this.#signaling.leave();
    } finally {
      this.#setState('left');
      this.close();
    }
  }

  /** Idempotent: closes the spare path, the socket and the peer connection (local tracks are the caller's). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#spares.close();
    this.#signaling.close();
    this.#media.close();
    this.#edge?.close();
    this.removeAllListeners();
  }

  #setState(state: CallState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.emit('state', state);
  }

  async #firstJoin(): Promise<JoinReply> {
    this.#joinedPromise = (async () => {
      this.#setState('joining');
      const reply = await this.#signaling.join({ room: this.#opts.room, name: this.#opts.name });
      this.#joined = reply;
      this.emit('joined', reply);
      this.emit('roster', { room: reply.room, participants: reply.roster });
      // A fresh join after the MCU forgot us: the old peer connection belongs to a dead server.
      const used = this.#media.negotiated;
      if (used) {
        this.#media.renew();
        // A spare path belonged to the participant the MCU forgot.
        this.#spares.drop('joined afresh');
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

  async #negotiate(fresh: boolean): Promise<void> {
    this.#setState('negotiating');
    if (this.#joined?.mediaPlane === 'mediasoup') {
      // mediasoup plane: a device and two transports instead of the offered peer connection.
      this.#edge?.close();
      this.#media.close();
      const edge = (this.#edge = new EdgeTransport(this.#signaling, this.#opts.localStream));
      edge.on('remote-stream', (stream) => this.emit('remote-stream', stream));
      await edge.negotiate();
      return;
    }
    await this.#media.negotiate(fresh);
  }

  #onDisconnect(reason: string): void {
    if (this.#closed || this.#state === 'left') return;
    this.#disconnectedAt = performance.now();
    this.#signalingLostAt = performance.timeOrigin + performance.now();
    console.info('signaling lost', reason);
    this.#setState('reconnecting');
  }

  /** After a reconnect: resume the same participant, or join afresh if the MCU forgot it. */
  async #onConnect(): Promise<void> {
    if (this.#disconnectedAt === null || this.#joined === null || this.#closed) return;
    const outageStart = this.#disconnectedAt;
    this.#disconnectedAt = null;
    const joined = this.#joined;
    const resume = (): Promise<JoinReply> =>
      this.#signaling.join({ room: joined.room, name: this.#opts.name, resume: { participantId: joined.participantId, resumeToken: joined.resumeToken } });
    for (let attempt = 0; ; attempt++) {
      try {
        const reply = await resume();
        this.#joined = reply;
        // Resumed on a newer MCU epoch: a failover really happened.
        if (reply.epoch > joined.epoch) this.#spares.newEpoch(reply.epoch);
        this.emit('roster', { room: reply.room, participants: reply.roster });
        this.emit('reconnected', { outageMs: performance.now() - outageStart, resumed: reply.resumed });
        if (this.#state === 'reconnecting') this.#setState('in-call');
        this.#expectRestart(reply.epoch === joined.epoch, outageStart);
        return;
      } catch (err) {
        const code = err instanceof SignalingRequestError ? err.code : 'UNKNOWN';
        // A standby still promoting itself answers NOT_PRIMARY for a moment: try again.
        if ((code === 'NOT_PRIMARY' || code === 'TIMEOUT') && attempt < 50 && this.#signaling.connected) {
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        if (!this.#signaling.connected) return;
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
    const pc = this.#media.pc;
    const timeoutMs = this.#opts.restartTimeoutMs ?? 4000;
    setTimeout(() => {
      // Any server offer since the connection was lost counts (it may beat the resume's ack here).
      if (this.#closed || this.#media.pc !== pc || this.#media.lastRestartAt >= since || this.#state === 'restarting-media') return;
      void this.#fallbackToFreshPeerConnection(`no restart offer within ${timeoutMs} ms of resuming on a new MCU`);
    }, timeoutMs);
  }

  /** The MCU rebuilds the media path (a standby took over): answer on the same peer connection. */
  async #onServerOffer(offer: ServerOffer): Promise<void> {
    const started = performance.now();
    this.#setState('restarting-media');
    // Media is rebuilt without the spare path (the new primary had none connected for us): its
    // standby is gone, and a new one will offer a fresh spare.
    if (offer.reason === 'failover') this.#spares.drop('media restarted by a server offer');
    try {
      await this.#media.acceptOffer(offer, started);
    } catch (err) {
      await this.#fallbackToFreshPeerConnection((err as Error).message);
      return;
    }
    this.emit('media-restarted', { reason: offer.reason, tookMs: performance.now() - started });
    this.#setState(this.#signaling.connected ? 'in-call' : 'reconnecting');
  }

  /**
   * The restart on the same peer connection failed or took too long: start a new peer
   * connection with the same local tracks (slower, but the call goes on).
   */
  async #fallbackToFreshPeerConnection(why: string): Promise<void> {
    if (this.#closed) return;
    console.warn('media restart failed, starting a fresh peer connection:', why);
    this.#media.renew();
    try {
      await this.#negotiate(true);
      this.emit('media-restarted', { reason: `fallback: ${why}`, tookMs: 0 });
      this.#setState('in-call');
    } catch (err) {
      console.error('fresh peer connection failed too', err);
      this.#setState('failed');
    }
  }
}
