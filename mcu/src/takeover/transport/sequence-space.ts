/**
 * One direction's 32-bit TCP sequence space unwrapped onto a line of safe integers,
 * so byte counts, comparisons and buffers never meet the 2^32 wrap-around. The
 * first value seen is its own position; every later one is placed within 2^31 of
 * the highest position seen so far (the same rule as TCP's own comparisons).
 */
import { seqDiff } from '../../../../native/src/index.ts';

const TWO_32 = 2 ** 32;

/** The 32-bit sequence number of an unwrapped position. */
export function wrapSeq(position: number): number {
  return ((position % TWO_32) + TWO_32) % TWO_32;
}

export class SequenceSpace {
  #highest: number | undefined;

  /** Whether any sequence number of this space was seen yet. */
  get anchored(): boolean {
    return this.#highest !== undefined;
  }

  /** Highest position seen so far (undefined before the first). */
  get highest(): number | undefined {
    return this.#highest;
  }

  /** Places a sequence number seen on the wire and remembers it when it is the newest. */
  observe(seq: number): number {
    const pos = this.position(seq);
    if (this.#highest === undefined || pos > this.#highest) this.#highest = pos;
    return pos;
  }

  /** Places a sequence number without remembering it; the first one anchors the space. */
  position(seq: number): number {
    if (this.#highest === undefined) {
      this.#highest = seq >>> 0;
      return this.#highest;
    }
    return this.#highest + seqDiff(seq >>> 0, wrapSeq(this.#highest));
  }

  /** Like position(), but undefined (and no anchoring) before the first observation. */
  peek(seq: number): number | undefined {
    if (this.#highest === undefined) return undefined;
    return this.#highest + seqDiff(seq >>> 0, wrapSeq(this.#highest));
  }
}
