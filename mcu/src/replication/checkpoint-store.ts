import { isDeepStrictEqual } from 'node:util';
import type { SnapshotMessage } from '../wire/messages.ts';
import { SessionState, type SessionDelta, type SessionSnapshot } from '../conference/session-state.ts';

export interface StoredBlob {
  data: unknown;
  seq: number;
}

/**
 * The standby's checkpoint: its own SessionState copy, the snapshot extras from other modules,
 * and the latest blob of each kind, with the seq and epoch they reflect. A promoted standby is
 * rebuilt from this and nothing else.
 */
export class CheckpointStore {
  readonly state = new SessionState();
  #seq = 0;
  #epoch = 0;
  #extra: Record<string, unknown> = {};
  readonly #blobs = new Map<string, StoredBlob>();
  #hasSnapshot = false;

  /** Seq of the last frame applied. */
  get seq(): number {
    return this.#seq;
  }
  /** Highest epoch the applied frames came from. */
  get epoch(): number {
    return this.#epoch;
  }
  /** Whether a snapshot was ever applied (the state is meaningful). */
  get hasSnapshot(): boolean {
    return this.#hasSnapshot;
  }
  get extra(): Readonly<Record<string, unknown>> {
    return this.#extra;
  }

  blob(kind: string): StoredBlob | undefined {
    return this.#blobs.get(kind);
  }

  blobs(): ReadonlyMap<string, StoredBlob> {
    return this.#blobs;
  }

  /** Replaces everything: a snapshot is complete, so blobs of an earlier stream are dropped too. */
  applySnapshot(msg: SnapshotMessage, seq: number, epoch: number): void {
    this.state.restore(msg.state);
    this.#extra = structuredClone(msg.extra);
    this.#blobs.clear();
    this.#seq = seq;
    this.#epoch = Math.max(this.#epoch, epoch);
    this.#hasSnapshot = true;
  }

  /**
   * Applies deltas in order. Throws SessionStateError when one does not fit: the copy has then
   * diverged (possibly part-applied) and must be replaced by a fresh snapshot.
   */
  applyDeltas(deltas: readonly SessionDelta[], seq: number): void {
    for (const delta of deltas) this.state.apply(delta);
    this.#seq = seq;
  }

  applyBlob(kind: string, data: unknown, seq: number): void {
    this.#blobs.set(kind, { data, seq });
    this.#seq = seq;
  }

  /** A frame that changes nothing here (binary data consumed by another module) still advances the checkpoint. */
  advance(seq: number): void {
    this.#seq = seq;
  }

  setEpoch(epoch: number): void {
    this.#epoch = Math.max(this.#epoch, epoch);
  }

  snapshot(): SessionSnapshot {
    return this.state.snapshot();
  }

  /** Whether the stored session state equals `snapshot`, independent of map iteration order. */
  equals(snapshot: SessionSnapshot): boolean {
    return isDeepStrictEqual(canonicalSnapshot(this.state.snapshot()), canonicalSnapshot(snapshot));
  }
}

/**
 * A snapshot in a stable order (rooms by name, participants by id) for comparisons. The order of
 * a room's participant list is kept: it is the layout.
 */
export function canonicalSnapshot(snapshot: SessionSnapshot): SessionSnapshot {
  return {
    rooms: [...snapshot.rooms].sort((a, b) => compare(a.name, b.name)),
    participants: [...snapshot.participants].sort((a, b) => compare(a.id, b.id)),
  };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
