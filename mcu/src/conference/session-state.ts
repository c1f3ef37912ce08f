import { EventEmitter } from 'node:events';
import { McuError } from '../core/errors.ts';

/**
 * The session state of an MCU: everything a standby needs to rebuild the calls.
 * Plain data only (JSON-serialisable), changed only through `apply(delta)`, so the
 * primary's copy and the standby's copy stay equal by construction.
 */

/** What the new primary needs to answer (or offer) a browser's media restart at once. */
export interface NegotiatedMedia {
  /** m-line order of the browser's offer: mids and kinds, so a server offer lines up. */
  mlines: Array<{ mid: string; kind: 'audio' | 'video' }>;
  /** The browser's last offer SDP (codecs, SSRCs, ICE credentials). */
  remoteSdp: string;
}

export interface ParticipantRecord {
  id: string;
  room: string;
  name: string;
  audioMuted: boolean;
  videoMuted: boolean;
  /** Epoch milliseconds. */
  joinedAt: number;
  /** Secret the client presents to resume this participant after a reconnect. */
  resumeToken: string;
  media: NegotiatedMedia | null;
}

export interface RoomRecord {
  name: string;
  createdAt: number;
  /** Participant ids in join order: this order is the video layout order. */
  participants: string[];
}

export interface SessionSnapshot {
  rooms: RoomRecord[];
  participants: ParticipantRecord[];
}

export type ParticipantChanges = Partial<Pick<ParticipantRecord, 'name' | 'audioMuted' | 'videoMuted' | 'media'>>;

export type SessionDelta =
  | { op: 'room-created'; room: RoomRecord }
  | { op: 'room-closed'; room: string }
  | { op: 'participant-joined'; participant: ParticipantRecord }
  | { op: 'participant-updated'; id: string; changes: ParticipantChanges }
  | { op: 'participant-left'; id: string };

/** A delta that does not fit the state (a room or participant that exists, or does not): the copies diverged. */
export class SessionStateError extends McuError {
  constructor(message: string) {
    super('SESSION_STATE_CONFLICT', message);
  }
}

type SessionStateEvents = { delta: [SessionDelta] };

export class SessionState extends EventEmitter<SessionStateEvents> {
  readonly #rooms = new Map<string, RoomRecord>();
  readonly #participants = new Map<string, ParticipantRecord>();

  static fromSnapshot(snapshot: SessionSnapshot): SessionState {
    const state = new SessionState();
    state.restore(snapshot);
    return state;
  }

  /** Replaces the whole state (state transfer to a standby). */
  restore(snapshot: SessionSnapshot): void {
    this.#rooms.clear();
    this.#participants.clear();
    for (const room of snapshot.rooms) this.#rooms.set(room.name, structuredClone(room));
    for (const p of snapshot.participants) this.#participants.set(p.id, structuredClone(p));
  }

  snapshot(): SessionSnapshot {
    return {
      rooms: [...this.#rooms.values()].map((r) => structuredClone(r)),
      participants: [...this.#participants.values()].map((p) => structuredClone(p)),
    };
  }

  room(name: string): Readonly<RoomRecord> | undefined {
    return this.#rooms.get(name);
  }

  participant(id: string): Readonly<ParticipantRecord> | undefined {
    return this.#participants.get(id);
  }

  rooms(): ReadonlyArray<Readonly<RoomRecord>> {
    return [...this.#rooms.values()];
  }

  participantsOf(room: string): ReadonlyArray<Readonly<ParticipantRecord>> {
    const r = this.#rooms.get(room);
    if (!r) return [];
    return r.participants.map((id) => this.#participants.get(id)).filter((p): p is ParticipantRecord => p !== undefined);
  }

  get participantCount(): number {
    return this.#participants.size;
  }

  /** Applies one change and announces it (the replication sender listens). Throws SessionStateError when it does not fit. */
  apply(delta: SessionDelta): void {
    switch (delta.op) {
      case 'room-created': {
        if (this.#rooms.has(delta.room.name)) throw new SessionStateError(`room ${delta.room.name} exists`);
        this.#rooms.set(delta.room.name, structuredClone(delta.room));
        break;
      }
      case 'room-closed': {
        const room = this.#rooms.get(delta.room);
        if (!room) throw new SessionStateError(`room ${delta.room} does not exist`);
        for (const id of room.participants) this.#participants.delete(id);
        this.#rooms.delete(delta.room);
        break;
      }
      case 'participant-joined': {
        const p = delta.participant;
        const room = this.#rooms.get(p.room);
        if (!room) throw new SessionStateError(`room ${p.room} does not exist`);
        if (this.#participants.has(p.id)) throw new SessionStateError(`participant ${p.id} exists`);
        this.#participants.set(p.id, structuredClone(p));
        room.participants.push(p.id);
        break;
      }
      case 'participant-updated': {
        const p = this.#participants.get(delta.id);
        if (!p) throw new SessionStateError(`participant ${delta.id} does not exist`);
        Object.assign(p, structuredClone(delta.changes));
        break;
      }
      case 'participant-left': {
        const p = this.#participants.get(delta.id);
        if (!p) throw new SessionStateError(`participant ${delta.id} does not exist`);
        this.#participants.delete(delta.id);
        const room = this.#rooms.get(p.room);
        if (room) room.participants = room.participants.filter((id) => id !== delta.id);
        break;
      }
    }
    this.emit('delta', delta);
  }
}
