import { EventEmitter } from 'node:events';
import type { McuConfig } from '../core/config.ts';
import {
  InvalidMessageError,
  NegotiationFailedError,
  ResumeRejectedError,
  TooManyRoomsError,
  UnknownParticipantError,
  UnknownRoomError,
  WrongMediaPlaneError,
} from '../core/errors.ts';
import type { EdgePeer } from '../media/edge/edge-peer.ts';
import type { MediaEdge } from '../media/edge/media-edge.ts';
import { createLogger } from '../core/logger.ts';
import type { Participant } from './participant.ts';
import { Room, type LeaveReason } from './room.ts';
import type { JoinRequest, MediaKind, RosterEntry, ServerOffer, SpareActivated } from '../signaling/protocol.ts';
import type { SpareHandoff } from '../spare/spare-paths.ts';
import type { ParticipantRecord, SessionState } from './session-state.ts';

export type ConferenceEvents = {
  roster: [room: string, roster: RosterEntry[]];
  /** A participant is gone for good (left, or its resume grace expired). */
  'participant-left': [participantId: string, room: string, reason: LeaveReason];
  /** A participant's client came back and resumed its session. */
  'participant-resumed': [participantId: string];
  /** A participant's media path is up again after a takeover (its answer to the restart offer was applied). */
  'media-restarted': [participantId: string, tookMs: number];
  /** A participant's page switched to the warm spare path the new primary adopted (its confirmation arrived). */
  'spare-switched': [participantId: string, activated: SpareActivated, sinceAdoptedMs: number];
};

export interface JoinOutcome {
  participant: Participant;
  record: Readonly<ParticipantRecord>;
  resumed: boolean;
}

/** Counted by the rooms' mixers since start (see MixerStats). */
export interface MixerTotals {
  inputUnderruns: number;
  videoFrames: number;
}

export interface RestoreOutcome {
  participants: number;
  onSpares: number;
}

/** The mix starting on one participant's adopted spare path. */
export interface SpareStart {
  participantId: string;
  pathId: string;
  started: Promise<void>;
}

export interface ConferenceStatus {
  rooms: Array<{ name: string; participants: number; connected: number }>;
  participants: number;
}

/**
 * All rooms of one MCU, independent of the signaling transport: join, resume, leave,
 * mute and media negotiation. Every change of replicated state goes through SessionState.
 */
export class Conference extends EventEmitter<ConferenceEvents> {
  readonly #config: McuConfig;
  readonly #state: SessionState;
  readonly #rooms = new Map<string, Room>();
  readonly #log = createLogger('conference');
  /** Mixer totals of the rooms already closed (/metrics counts since start). */
  readonly #closedMixerTotals: MixerTotals = { inputUnderruns: 0, videoFrames: 0 };
  #closed = false;
  /** The mediasoup worker's side (media.plane = mediasoup), null on the wrtc plane. */
  readonly #mediaEdge: MediaEdge | null;

  constructor(config: McuConfig, state: SessionState, mediaEdge: MediaEdge | null = null) {
    super();
    this.#config = config;
    this.#state = state;
    this.#mediaEdge = mediaEdge;
  }

  /**
   * mediasoup plane: the participant's peer on its room's router, for its `edge-*` requests
   * (`event` names the request in errors). WRONG_MEDIA_PLANE on the wrtc plane.
   */
  async edgePeer(participantId: string, event: string): Promise<EdgePeer> {
    const participant = this.participant(participantId);
    if (!participant) throw new UnknownParticipantError(participantId);
    const edge = this.#rooms.get(participant.room)?.edge;
    if (!edge) throw new WrongMediaPlaneError(event, this.#config.media.plane);
    return participant.watchEdgePeer(await edge.peer(participantId));
  }

  get state(): SessionState {
    return this.#state;
  }

  room(name: string): Room | undefined {
    return this.#rooms.get(name);
  }

  rooms(): IterableIterator<Room> {
    return this.#rooms.values();
  }

  participant(id: string): Participant | undefined {
    const record = this.#state.participant(id);
    return record ? this.#rooms.get(record.room)?.participant(id) : undefined;
  }

  /** A fresh join, or a resume when the request carries valid credentials of a live participant. */
  join(req: JoinRequest, socketId: string): JoinOutcome {
    if (req.resume) return this.#resume(req, socketId);
    const room = this.#roomFor(req.room);
    try {
      const { participant, record } = room.add(req.name, { audio: req.audioMuted ?? false, video: req.videoMuted ?? false });
      participant.bind(socketId);
      this.#watch(room, participant);
      room.emitRoster();
      return { participant, record, resumed: false };
    } catch (err) {
      if (room.size === 0) this.#closeRoom(room);
      throw err;
    }
  }

  #resume(req: JoinRequest, socketId: string): JoinOutcome {
    const creds = req.resume!;
    if (!this.#rooms.has(req.room)) throw new UnknownRoomError(req.room);
    const record = this.#state.participant(creds.participantId);
    if (!record) throw new ResumeRejectedError(`participant ${creds.participantId} is unknown here (its grace period may have expired)`);
    if (record.resumeToken !== creds.resumeToken) throw new ResumeRejectedError('the resume token does not match');
    if (record.room !== req.room) throw new ResumeRejectedError(`participant ${creds.participantId} is in room "${record.room}", not "${req.room}"`);
    const participant = this.participant(record.id);
    if (!participant) throw new ResumeRejectedError(`participant ${record.id} has no runtime state`);
    participant.bind(socketId);
    participant.log.info('participant resumed', { socket: socketId });
    this.emit('participant-resumed', record.id);
    this.#rooms.get(record.room)?.emitRoster();
    return { participant, record, resumed: true };
  }

  /**
   * The participant's own signaling connection was re-attached after a connection takeover
   * (same socket id): bind it again, as a resume without credentials. False when unknown here.
   */
  reattached(participantId: string, socketId: string): boolean {
    const participant = this.participant(participantId);
    if (!participant) return false;
    participant.bind(socketId);
    participant.log.info('participant re-attached', { socket: socketId });
    this.emit('participant-resumed', participantId);
    this.#rooms.get(participant.room)?.emitRoster();
    return true;
  }

  /**
   * Rebuilds every room and participant from the session state (a standby promoting itself).
   * Participants start away, waiting for their clients to resume. A participant with a connected
   * warm spare path (`spares`) adopts it as its media session (startSpares() puts the mix on it).
   * With `prepareMedia` (default true) the others' restart offers are prepared at once so they can
   * be sent the moment a client is back; without it the caller does that later with prepareRestarts().
   */
  restore(
    options: { prepareMedia?: boolean; spares?: (participantId: string) => SpareHandoff | null } = {},
  ): RestoreOutcome {
    let participants = 0;
    let onSpares = 0;
    for (const roomRecord of this.#state.rooms()) {
      const room = this.#roomFor(roomRecord.name);
      for (const record of this.#state.participantsOf(roomRecord.name)) {
        const participant = room.restore(record);
        this.#watch(room, participant);
        participant.markAway(this.#config.limits.resumeGraceMs, () => {
          participant.log.info('resume grace expired after takeover', { graceMs: this.#config.limits.resumeGraceMs });
          this.leave(record.id, 'resume-expired');
        });
        const spare = options.spares?.(record.id) ?? null;
        if (spare) {
          participant.adoptSpare(spare);
          onSpares++;
        }
        participants++;
      }
    }
    // Participants on a spare have media already: prepareRestarts() passes them by.
    if (options.prepareMedia ?? true) this.prepareRestarts();
    return { participants, onSpares };
  }

  /**
   * Starts the mix on every adopted spare path (the promoted standby serves: the dead primary's
   * port was free, so it really is dead). Returns each participant's start.
   */
  startSpares(): SpareStart[] {
    const starts: SpareStart[] = [];
    for (const room of this.#rooms.values()) {
      for (const participant of room.participants()) {
        const pathId = participant.adoptedSpare?.pathId;
        const started = participant.startSpare();
        if (pathId && started) starts.push({ participantId: participant.id, pathId, started });
      }
    }
    return starts;
  }

  /**
   * The page confirmed it switched to the adopted spare path: the spare's m-lines are its media
   * from now on (replicated, so a later restart offer lines up with the page's new peer connection).
   */
  spareSwitched(participantId: string, activated: SpareActivated): void {
    const participant = this.participant(participantId);
    const adopted = participant?.adoptedSpare;
    if (!participant || !adopted || adopted.pathId !== activated.pathId) return;
    participant.confirmSpare();
    if (this.#state.participant(participantId)) {
      this.#state.apply({ op: 'participant-updated', id: participantId, changes: { media: { mlines: adopted.mlines, remoteSdp: adopted.remoteSdp } } });
    }
    this.emit('spare-switched', participantId, activated, Date.now() - adopted.adoptedAt);
  }

  /**
   * The page could not switch to the adopted spare path (it no longer has it): rebuild its media
   * the usual way, with a restart offer on its current peer connection. False without recorded media.
   */
  spareRefused(participantId: string): boolean {
    const participant = this.participant(participantId);
    const record = this.#state.participant(participantId);
    if (!participant || !record) return false;
    participant.resetMedia();
    if (!record.media || record.media.mlines.length === 0) return false;
    participant.prepareRestart(record.media.mlines);
    return true;
  }

  /**
   * Prepares the restart offer of every participant without a media path yet. Takeover mode
   * calls it only once the service address (VIP) is up: libwebrtc gathers no ICE candidate on
   * an interface that is down and the offer keeps only candidates on MCU_ICE_ADDRESSES, so an
   * offer gathered before the VIP came up had no candidate at all and the page's restart on
   * its peer connection could never connect (it fell back to a new one after 4 s).
   */
  prepareRestarts(): number {
    let prepared = 0;
    for (const room of this.#rooms.values()) {
      for (const participant of room.participants()) {
        if (participant.pendingRestart || participant.media) continue;
        const record = this.#state.participant(participant.id);
        if (record?.media && record.media.mlines.length > 0) {
          participant.prepareRestart(record.media.mlines);
          prepared++;
        } else {
          participant.log.warn('restored without negotiated media: its page must renegotiate');
        }
      }
    }
    return prepared;
  }

  /** The restart offer for a resumed participant, if its media must be rebuilt. */
  async restartOffer(participantId: string): Promise<ServerOffer | null> {
    const participant = this.participant(participantId);
    const pending = participant?.pendingRestart;
    if (!participant || !pending) return null;
    return { sdp: await pending.sdp, offerId: pending.offerId, reason: 'failover' };
  }

  /** The browser's answer to a restart offer. */
  async answer(participantId: string, offerId: number, sdp: string): Promise<void> {
    const participant = this.participant(participantId);
    if (!participant) throw new UnknownParticipantError(participantId);
    const pending = participant.pendingRestart;
    if (!pending) throw new InvalidMessageError('"answer" without a pending server offer');
    if (pending.offerId !== offerId) throw new InvalidMessageError(`"answer" to offer ${offerId}, but the pending offer is ${pending.offerId}`);
    const media = participant.media;
    if (!media) throw new NegotiationFailedError('the restart peer connection is gone');
    await media.acceptAnswer(sdp, pending.mlines, sdp);
    participant.completeRestart();
    if (media.negotiated && this.#state.participant(participantId)) {
      this.#state.apply({ op: 'participant-updated', id: participantId, changes: { media: media.negotiated } });
    }
    this.emit('media-restarted', participantId, Date.now() - pending.preparedAt);
  }

  #roomFor(name: string): Room {
    const existing = this.#rooms.get(name);
    if (existing) return existing;
    if (this.#rooms.size >= this.#config.limits.maxRooms) throw new TooManyRoomsError(this.#config.limits.maxRooms);
    const room = new Room(name, this.#state, this.#config, this.#mediaEdge);
    room.on('roster', (roster) => this.emit('roster', name, roster));
    this.#rooms.set(name, room);
    this.#log.info('room created', { room: name, rooms: this.#rooms.size });
    return room;
  }

  #watch(room: Room, participant: Participant): void {
    participant.on('media-lost', (reason) => {
      // A page that closed without a word: its peer connection closes. Only remove it when its
      // signaling is gone too, otherwise the page is alive and may renegotiate.
      if (participant.signaling === 'away') {
        participant.log.info('media lost while away: removing', { reason });
        this.leave(participant.id, 'media-lost');
      }
    });
  }

  leave(participantId: string, reason: LeaveReason): void {
    const record = this.#state.participant(participantId);
    if (!record) return;
    const room = this.#rooms.get(record.room);
    if (!room) return;
    room.remove(participantId, reason);
    this.emit('participant-left', participantId, record.room, reason);
    if (room.size === 0) this.#closeRoom(room);
  }

  /** The participant's signaling connection dropped without a leave: it may resume within the grace period. */
  disconnected(participantId: string): void {
    const participant = this.participant(participantId);
    if (!participant) return;
    participant.markAway(this.#config.limits.resumeGraceMs, () => {
      participant.log.info('resume grace expired', { graceMs: this.#config.limits.resumeGraceMs });
      this.leave(participantId, 'resume-expired');
    });
    this.#rooms.get(participant.room)?.emitRoster();
  }

  mute(participantId: string, kind: MediaKind, muted: boolean): void {
    const record = this.#state.participant(participantId);
    if (!record) throw new UnknownParticipantError(participantId);
    const room = this.#rooms.get(record.room);
    if (!room) throw new UnknownParticipantError(participantId);
    room.update(participantId, kind === 'audio' ? { audioMuted: muted } : { videoMuted: muted });
  }

  /** Answers the browser's offer on the participant's peer connection. */
  async offer(participantId: string, sdp: string, fresh: boolean): Promise<string> {
    if (this.#mediaEdge) throw new WrongMediaPlaneError('offer', this.#config.media.plane);
    const participant = this.participant(participantId);
    if (!participant) throw new UnknownParticipantError(participantId);
    // A new browser peer connection (or one that gave up on a restart offer) needs a new one here too.
    if (fresh || participant.pendingRestart) participant.resetMedia();
    const media = participant.mediaSession();
    const answer = await media.acceptOffer(sdp);
    // The participant may have left while the negotiation ran.
    if (!participant.closed && media.negotiated && this.#state.participant(participantId)) {
      this.#state.apply({ op: 'participant-updated', id: participantId, changes: { media: media.negotiated } });
    }
    return answer;
  }

  #closeRoom(room: Room): void {
    this.#rooms.delete(room.name);
    room.close();
    const stats = room.mixer.stats();
    this.#closedMixerTotals.inputUnderruns += stats.inputUnderruns;
    this.#closedMixerTotals.videoFrames += stats.videoFrames;
    this.#log.info('room removed', { room: room.name, rooms: this.#rooms.size });
  }

  status(): ConferenceStatus {
    const rooms = [...this.#rooms.values()].map((r) => ({
      name: r.name,
      participants: r.size,
      connected: [...r.participants()].filter((p) => p.signaling === 'connected').length,
    }));
    return { rooms, participants: rooms.reduce((n, r) => n + r.participants, 0) };
  }

  /** Mixer totals since start: the live rooms' and the closed ones'. */
  mixerTotals(): MixerTotals {
    const totals = { ...this.#closedMixerTotals };
    for (const room of this.#rooms.values()) {
      const stats = room.mixer.stats();
      totals.inputUnderruns += stats.inputUnderruns;
      totals.videoFrames += stats.videoFrames;
    }
    return totals;
  }

  /** Idempotent: closes every room (participants, peer connections, mixers). */
  close(reason: LeaveReason = 'shutdown'): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const room of [...this.#rooms.values()]) {
      this.#rooms.delete(room.name);
      room.close(reason);
    }
    this.removeAllListeners();
  }
}
