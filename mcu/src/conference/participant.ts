import { EventEmitter } from 'node:events';
import type { Logger } from '../core/logger.ts';
import { MediaSession } from '../media/media-session.ts';
import type { MixerMember } from '../media/room-mixer.ts';
import type { NegotiatedMedia } from './session-state.ts';
import type { SpareHandoff } from '../spare/spare-paths.ts';
import type { EdgePeer } from '../media/edge/edge-peer.ts';

/** A server offer prepared for this participant's media restart, waiting for the browser's answer. */
export interface PendingRestart {
  offerId: number;
  mlines: NegotiatedMedia['mlines'];
  /** Resolves with the offer SDP once ICE gathering is done (started ahead of the client's resume). */
  sdp: Promise<string>;
  preparedAt: number;
}

let nextOfferId = 1;

/** A warm spare path that became this participant's media session at a failover, until the page confirms its switch. */
export interface AdoptedSpare {
  pathId: string;
  mlines: NegotiatedMedia['mlines'];
  remoteSdp: string;
  adoptedAt: number;
  /** Set by startSpare(): resolves once the mix runs on the spare's senders. */
  started: Promise<void> | null;
}

/** Connection state of a participant's signaling, as the roster shows it. */
export type SignalingState = 'connected' | 'away' | 'closed';

export type ParticipantEvents = {
  /** The media path failed or closed on the browser's side. */
  'media-lost': [reason: string];
  close: [];
};

export interface ParticipantOptions {
  id: string;
  room: string;
  member: MixerMember;
  iceAddresses: string[];
  iceGatherTimeoutMs: number;
  log: Logger;
}

/**
 * The runtime side of one participant: its peer connection and its place in the
 * mixer. Its replicated record (name, mute state, ...) lives in SessionState.
 */
export class Participant extends EventEmitter<ParticipantEvents> {
  readonly id: string;
  readonly room: string;
  readonly member: MixerMember;
  readonly log: Logger;
  /** The socket.io socket id currently bound to this participant, or null while away. */
  socketId: string | null = null;
  #signaling: SignalingState = 'connected';
  #media: MediaSession | null = null;
  #awayTimer: NodeJS.Timeout | null = null;
  #pendingRestart: PendingRestart | null = null;
  #adoptedSpare: AdoptedSpare | null = null;
  #edgePeer: EdgePeer | null = null;
  readonly #opts: ParticipantOptions;
  #closed = false;

  constructor(opts: ParticipantOptions) {
    super();
    this.#opts = opts;
    this.id = opts.id;
    this.room = opts.room;
    this.member = opts.member;
    this.log = opts.log;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get signaling(): SignalingState {
    return this.#signaling;
  }

  get media(): MediaSession | null {
    return this.#media;
  }

  /** The peer connection, created on the first offer (or the warm spare's, once adopted). */
  mediaSession(pc?: RTCPeerConnection): MediaSession {
    if (this.#media && !this.#media.closed) return this.#media;
    const media = new MediaSession({
      audioOut: this.member.audioTrack,
      videoOut: this.member.videoTrack,
      iceAddresses: this.#opts.iceAddresses,
      iceGatherTimeoutMs: this.#opts.iceGatherTimeoutMs,
      log: this.log,
      ...(pc ? { pc } : {}),
    });
    media.on('remote-audio', (data) => this.member.pushAudio(data));
    media.on('remote-video', (frame) => this.member.pushVideo(frame));
    media.on('connection-state', (state) => {
      if (state === 'failed' || state === 'closed') this.emit('media-lost', `peer connection ${state}`);
    });
    this.#media = media;
    return media;
  }

  /**
   * mediasoup plane: this participant's peer on the room's router, watched like a peer connection
   * (a transport whose DTLS failed or closed is a lost media path). Idempotent per peer.
   */
  watchEdgePeer(peer: EdgePeer): EdgePeer {
    if (this.#edgePeer === peer) return peer;
    this.#edgePeer = peer;
    peer.on('transport-lost', (reason) => this.emit('media-lost', reason));
    return peer;
  }

  get pendingRestart(): PendingRestart | null {
    return this.#pendingRestart;
  }

  /**
   * Prepares a server-initiated offer on a fresh peer connection (after a takeover), in the
   * browser's original m-line order. Started before the client asks, so the offer is ready
   * when its signaling comes back.
   */
  prepareRestart(mlines: NegotiatedMedia['mlines']): PendingRestart {
    this.resetMedia();
    const media = this.mediaSession();
    const sdp = media.createOffer(mlines);
    sdp.catch((err: unknown) => this.log.warn('restart offer failed', { error: (err as Error).message }));
    this.#pendingRestart = { offerId: nextOfferId++, mlines, sdp, preparedAt: Date.now() };
    return this.#pendingRestart;
  }

  /**
   * A failover onto the warm spare path: the standby's connected spare peer connection becomes
   * this participant's media session. Nothing is sent on it before startSpare().
   */
  adoptSpare(handoff: SpareHandoff): AdoptedSpare {
    this.resetMedia();
    this.mediaSession(handoff.pc);
    this.#adoptedSpare = { pathId: handoff.pathId, mlines: handoff.mlines, remoteSdp: handoff.remoteSdp, adoptedAt: Date.now(), started: null };
    return this.#adoptedSpare;
  }

  /** Starts the mix on the adopted spare path (idempotent): no negotiation, the idle senders get the mix. */
  startSpare(): Promise<void> | null {
    const adopted = this.#adoptedSpare;
    const media = this.#media;
    if (!adopted || !media || media.closed) return null;
    if (!adopted.started) {
      adopted.started = media.startOnSpare(adopted.mlines, adopted.remoteSdp);
      adopted.started.catch((err: unknown) => this.log.warn('mixing onto the spare path failed', { pathId: adopted.pathId, error: (err as Error).message }));
    }
    return adopted.started;
  }

  /** The adopted spare path whose switch the page has not confirmed yet, if any. */
  get adoptedSpare(): AdoptedSpare | null {
    return this.#adoptedSpare;
  }

  /** The page confirmed it switched to the adopted spare path. */
  confirmSpare(): void {
    this.#adoptedSpare = null;
  }

  /** Drops the current peer connection (and any pending restart or adopted spare): the next offer starts afresh. */
  resetMedia(): void {
    this.#media?.close();
    this.#media = null;
    this.#pendingRestart = null;
    this.#adoptedSpare = null;
  }

  /** The browser answered the pending restart offer. */
  completeRestart(): void {
    this.#pendingRestart = null;
  }

  /** The signaling connection is bound (joined or resumed). */
  bind(socketId: string): void {
    this.socketId = socketId;
    this.#setSignaling('connected');
    if (this.#awayTimer) clearTimeout(this.#awayTimer);
    this.#awayTimer = null;
  }

  /** The signaling connection dropped: keep the participant for `graceMs` so it can resume. */
  markAway(graceMs: number, onExpired: () => void): void {
    this.socketId = null;
    this.#setSignaling('away');
    if (this.#awayTimer) clearTimeout(this.#awayTimer);
    this.#awayTimer = setTimeout(onExpired, graceMs);
    this.#awayTimer.unref();
  }

  #setSignaling(state: SignalingState): void {
    if (this.#signaling === state) return;
    this.log.info('signaling state', { from: this.#signaling, to: state });
    this.#signaling = state;
  }

  /** Idempotent: closes the peer connection and the mixer member's tracks. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#setSignaling('closed');
    if (this.#awayTimer) clearTimeout(this.#awayTimer);
    this.#awayTimer = null;
    this.#media?.close();
    this.#media = null;
    this.emit('close');
    this.removeAllListeners();
  }
}
