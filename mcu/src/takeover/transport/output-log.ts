/**
 * One connection's output log on the standby (output commit, design notes 3): every
 * byte the primary writes to the client is appended here before the primary's kernel
 * gets it. The log must be contiguous; bytes the client acknowledged are pruned, so it
 * holds about one send window. At takeover it supplies the bytes from the client's
 * last ACK on: what the old socket had in flight, and what it never sent.
 */
import type { OutputLogChunk } from './transport-record.ts';
import { OutputLogConflictError, OutputLogGapError, OutputLogRangeError, OutputLogWrongConnectionError, TrackerInvalidArgumentError } from '../errors.ts';

interface Piece {
  offset: number;
  data: Buffer;
}

export interface OutputLogOptions {
  /**
   * Offset of the first byte this log will hold (default 0). A standby that joined
   * an established connection (re-protection) starts where the state transfer starts.
   */
  startOffset?: number;
}

export class OutputLog {
  readonly connId: string;
  /** Pieces in offset order, contiguous; those before #head were pruned. */
  #pieces: Piece[] = [];
  #head = 0;
  #start: number;
  #end: number;
  #pruned = 0;

  constructor(connId: string, options: OutputLogOptions = {}) {
    const start = options.startOffset ?? 0;
    if (!Number.isSafeInteger(start) || start < 0) throw new TrackerInvalidArgumentError(`output log startOffset ${start} must be a non-negative integer`);
    this.connId = connId;
    this.#start = start;
    this.#end = start;
  }

  /** Offset of the first byte still held. */
  get start(): number {
    return this.#start;
  }

  /** Offset after the last byte logged (committedOutput). */
  get end(): number {
    return this.#end;
  }

  /** Bytes held. */
  get length(): number {
    return this.#end - this.#start;
  }

  /** Bytes dropped by prune() so far. */
  get prunedBytes(): number {
    return this.#pruned;
  }

  /**
   * Appends a chunk. A chunk overlapping what is logged is accepted when the
   * overlap matches (a replayed frame), its new tail appended; bytes below the
   * prune point are not compared. Returns the bytes added. Throws
   * OutputLogGapError when the chunk starts after the end (never fill a gap:
   * the client may have received those bytes), OutputLogConflictError when the
   * overlap differs, OutputLogWrongConnectionError for another connection's chunk.
   */
  append(chunk: OutputLogChunk): number {
    if (chunk.connId !== this.connId) throw new OutputLogWrongConnectionError(this.connId, chunk.connId);
    if (!Number.isSafeInteger(chunk.offset) || chunk.offset < 0) throw new TrackerInvalidArgumentError(`output-log chunk offset ${chunk.offset} is invalid`);
    const chunkEnd = chunk.offset + chunk.data.length;
    if (chunk.offset > this.#end) throw new OutputLogGapError(this.connId, this.#end, chunk.offset);
    if (chunkEnd <= this.#end) {
      this.#verifyOverlap(chunk.offset, chunk.data);
      return 0;
    }
    this.#verifyOverlap(chunk.offset, chunk.data.subarray(0, this.#end - chunk.offset));
    // Copy: a replication frame's buffer may be reused or be a slice of a large read.
    const tail = Buffer.from(chunk.data.subarray(this.#end - chunk.offset));
    this.#pieces.push({ offset: this.#end, data: tail });
    this.#end = chunkEnd;
    return tail.length;
  }

  /**
   * Drops the bytes below `acknowledgedOffset` (the client acknowledged them, so
   * no takeover will ever need them). Clamped to the end; returns the bytes dropped.
   */
  prune(acknowledgedOffset: number): number {
    const target = Math.min(acknowledgedOffset, this.#end);
    if (target <= this.#start) return 0;
    while (this.#head < this.#pieces.length) {
      const piece = this.#pieces[this.#head];
      const pieceEnd = piece.offset + piece.data.length;
      if (pieceEnd <= target) {
        this.#head++;
        continue;
      }
      if (piece.offset < target) {
        this.#pieces[this.#head] = { offset: target, data: piece.data.subarray(target - piece.offset) };
      }
      break;
    }
    // Compact now and then so the array does not grow with the connection's age.
    if (this.#head > 64 && this.#head * 2 > this.#pieces.length) {
      this.#pieces = this.#pieces.slice(this.#head);
      this.#head = 0;
    }
    const dropped = target - this.#start;
    this.#start = target;
    this.#pruned += dropped;
    return dropped;
  }

  /** Whether [from, to) is held. */
  has(from: number, to: number = this.#end): boolean {
    return from >= this.#start && to <= this.#end && from <= to;
  }

  /** A copy of the bytes [from, to) (to defaults to the end). Throws OutputLogRangeError outside [start, end]. */
  bytes(from: number, to: number = this.#end): Buffer {
    if (!this.has(from, to)) throw new OutputLogRangeError(this.connId, from, to, this.#start, this.#end);
    if (from === to) return Buffer.alloc(0);
    const parts: Buffer[] = [];
    for (let i = this.#find(from); i < this.#pieces.length; i++) {
      const piece = this.#pieces[i];
      if (piece.offset >= to) break;
      const a = Math.max(from, piece.offset) - piece.offset;
      const b = Math.min(to, piece.offset + piece.data.length) - piece.offset;
      parts.push(piece.data.subarray(a, b));
    }
    return Buffer.concat(parts, to - from);
  }

  /** Index of the live piece holding `offset` (binary search). */
  #find(offset: number): number {
    let lo = this.#head;
    let hi = this.#pieces.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#pieces[mid].offset <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  #verifyOverlap(offset: number, data: Buffer): void {
    const from = Math.max(offset, this.#start);
    const to = offset + data.length;
    if (to <= from) return;
    const held = this.bytes(from, to);
    const given = data.subarray(from - offset);
    if (!held.equals(given)) {
      let i = 0;
      while (held[i] === given[i]) i++;
      throw new OutputLogConflictError(this.connId, from + i);
    }
  }
}
