import { EventEmitter } from 'node:events';
import type { Logger } from './logger.ts';
import { MediaSession } from './media/media-session.ts';
import type { MixerMember } from './media/room-mixer.ts';

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

  /** The peer connection, created on the first offer. */
  mediaSession(): MediaSession {
    if (this.#media && !this.#media.closed) return this.#media;
    const media = new MediaSession({
      audioOut: this.member.audioTrack,
      videoOut: this.member.videoTrack,
      iceAddresses: this.#opts.iceAddresses,
      iceGatherTimeoutMs: this.#opts.iceGatherTimeoutMs,
      log: this.log,
    });
    media.on('remote-audio', (data) => this.member.pushAudio(data));
    media.on('remote-video', (frame) => this.member.pushVideo(frame));
    media.on('connection-state', (state) => {
      if (state === 'failed' || state === 'closed') this.emit('media-lost', `peer connection ${state}`);
    });
    this.#media = media;
    return media;
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
