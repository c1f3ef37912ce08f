import { randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { McuConfig } from '../core/config.ts';
import { RoomFullError, UnknownParticipantError } from '../core/errors.ts';
import { createLogger, type Logger } from '../core/logger.ts';
import { RoomMixer } from '../media/room-mixer.ts';
import type { MediaEdge } from '../media/edge/media-edge.ts';
import { RoomEdge } from '../media/edge/room-edge.ts';
import { Participant } from './participant.ts';
import type { RosterEntry } from '../signaling/protocol.ts';
import type { ParticipantChanges, ParticipantRecord, SessionState } from './session-state.ts';

export type RoomEvents = {
  /** The roster changed (join, leave, mute, away/back): tell everyone in the room. */
  roster: [RosterEntry[]];
  close: [];
};

export type LeaveReason = 'left' | 'resume-expired' | 'media-lost' | 'room-closed' | 'shutdown';

/**
 * One room: its participants' runtime objects and its mixer. The replicated record of
 * the room and its participants lives in SessionState; every change goes through it.
 */
export class Room extends EventEmitter<RoomEvents> {
  readonly name: string;
  readonly mixer: RoomMixer;
  /** The room's router and the mixer's endpoint on it (mediasoup plane), null on the wrtc plane. */
  readonly edge: RoomEdge | null;
  readonly #participants = new Map<string, Participant>();
  readonly #state: SessionState;
  readonly #config: McuConfig;
  readonly #log: Logger;
  #closed = false;

  constructor(name: string, state: SessionState, config: McuConfig, mediaEdge: MediaEdge | null = null) {
    super();
    this.name = name;
    this.#state = state;
    this.#config = config;
    this.#log = createLogger('room', { room: name });
    this.mixer = new RoomMixer({ ...config.video, log: this.#log });
    this.edge = mediaEdge ? new RoomEdge(name, mediaEdge, this.mixer, this.#log) : null;
    if (!state.room(name)) state.apply({ op: 'room-created', room: { name, createdAt: Date.now(), participants: [] } });
  }

  get closed(): boolean {
    return this.#closed;
  }

  get size(): number {
    return this.#participants.size;
  }

  participant(id: string): Participant | undefined {
    return this.#participants.get(id);
  }

  participants(): IterableIterator<Participant> {
    return this.#participants.values();
  }

  /** Adds a new participant (a fresh join). */
  add(name: string, muted: { audio: boolean; video: boolean }): { participant: Participant; record: ParticipantRecord } {
    if (this.#participants.size >= this.#config.limits.maxParticipantsPerRoom) {
      throw new RoomFullError(this.name, this.#config.limits.maxParticipantsPerRoom);
    }
    const record: ParticipantRecord = {
      id: randomUUID(),
      room: this.name,
      name,
      audioMuted: muted.audio,
      videoMuted: muted.video,
      joinedAt: Date.now(),
      resumeToken: randomBytes(24).toString('base64url'),
      media: null,
    };
    this.#state.apply({ op: 'participant-joined', participant: record });
    const participant = this.#attach(record);
    this.#log.info('participant joined', { participant: record.id, name, participants: this.#participants.size });
    return { participant, record };
  }

  /** Re-creates the runtime side of a participant from its record (a standby taking over). */
  restore(record: ParticipantRecord): Participant {
    const participant = this.#attach(record);
    this.#log.info('participant restored from checkpoint', { participant: record.id });
    return participant;
  }

  #attach(record: ParticipantRecord): Participant {
    const member = this.mixer.addMember(record.id);
    member.audioMuted = record.audioMuted;
    member.videoMuted = record.videoMuted;
    this.edge?.addMember(member);
    const participant = new Participant({
      id: record.id,
      room: this.name,
      member,
      iceAddresses: this.#config.ice.addresses,
      iceGatherTimeoutMs: this.#config.ice.gatherTimeoutMs,
      log: createLogger('participant', { room: this.name, participant: record.id }),
    });
    this.#participants.set(record.id, participant);
    return participant;
  }

  update(id: string, changes: ParticipantChanges): void {
    const participant = this.#participants.get(id);
    if (!participant) throw new UnknownParticipantError(id);
    this.#state.apply({ op: 'participant-updated', id, changes });
    if (changes.audioMuted !== undefined) participant.member.audioMuted = changes.audioMuted;
    if (changes.videoMuted !== undefined) participant.member.videoMuted = changes.videoMuted;
    if (changes.audioMuted !== undefined || changes.videoMuted !== undefined || changes.name !== undefined) this.emitRoster();
  }

  /** Removes a participant at once: voice, tile, peer connection and record. */
  remove(id: string, reason: LeaveReason): void {
    const participant = this.#participants.get(id);
    if (!participant) return;
    this.#participants.delete(id);
    this.edge?.removeMember(id);
    this.mixer.removeMember(id);
    participant.close();
    if (this.#state.participant(id)) this.#state.apply({ op: 'participant-left', id });
    this.#log.info('participant left', { participant: id, reason, participants: this.#participants.size });
    this.emitRoster();
  }

  roster(): RosterEntry[] {
    return this.#state.participantsOf(this.name).map((p) => ({
      id: p.id,
      name: p.name,
      audioMuted: p.audioMuted,
      videoMuted: p.videoMuted,
      joinedAt: p.joinedAt,
      connected: this.#participants.get(p.id)?.signaling === 'connected',
    }));
  }

  emitRoster(): void {
    if (!this.#closed) this.emit('roster', this.roster());
  }

  /** Idempotent: removes every participant, stops the mixer and drops the room's record. */
  close(reason: LeaveReason = 'room-closed'): void {
    if (this.#closed) return;
    for (const id of [...this.#participants.keys()]) this.remove(id, reason);
    this.#closed = true;
    this.edge?.close();
    this.mixer.close();
    if (this.#state.room(this.name)) this.#state.apply({ op: 'room-closed', room: this.name });
    this.#log.info('room closed', { reason });
    this.emit('close');
    this.removeAllListeners();
  }
}
