/**
 * Cuts the client-to-server WebSocket byte stream (RFC 6455) into whole frames, so the
 * ws receiver is only ever handed complete frames and the consumed input offset is
 * always at a frame boundary: the only place a connection can be checkpointed.
 */

export interface SplitFrame {
  /** The whole frame, header included, as it came off the wire. */
  bytes: Buffer;
  fin: boolean;
  opcode: number;
}

/** A header announcing more than the limit: the caller hands the stream to ws as is (ws refuses it). */
export const FRAME_TOO_LARGE = Symbol('frame-too-large');

export class FrameSplitter {
  readonly #maxFrameBytes: number;
  #chunks: Buffer[] = [];
  #length = 0;

  /** `maxPayload` is the WebSocket server's limit; frames above it are not buffered here. */
  constructor(maxPayload: number) {
    this.#maxFrameBytes = maxPayload + 14;
  }

  /** Bytes received but not yet returned as frames (a partial frame, or frames not yet taken). */
  get pendingBytes(): number {
    return this.#length;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /** The next whole frame, null if it has not fully arrived, FRAME_TOO_LARGE if it never should be buffered. */
  next(): SplitFrame | null | typeof FRAME_TOO_LARGE {
    if (this.#length < 2) return null;
    const head = this.#peek(Math.min(this.#length, 14));
    const b0 = head[0]!;
    const b1 = head[1]!;
    let headerLength = 2 + ((b1 & 0x80) !== 0 ? 4 : 0);
    let payloadLength = b1 & 0x7f;
    if (payloadLength === 126) {
      headerLength += 2;
      if (head.length < 4) return null;
      payloadLength = head.readUInt16BE(2);
    } else if (payloadLength === 127) {
      headerLength += 8;
      if (head.length < 10) return null;
      const high = head.readUInt32BE(2);
      if (high > 0x1fffff) return FRAME_TOO_LARGE;
      payloadLength = high * 0x1_0000_0000 + head.readUInt32BE(6);
    }
    const total = headerLength + payloadLength;
    if (total > this.#maxFrameBytes) return FRAME_TOO_LARGE;
    if (this.#length < total) return null;
    return { bytes: this.#take(total), fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f };
  }

  /** Everything not yet returned as a frame, in order, leaving the splitter empty. */
  drain(): Buffer {
    return this.#take(this.#length);
  }

  /** A copy of everything not yet returned as a frame. */
  peekAll(): Buffer {
    return Buffer.concat(this.#chunks, this.#length);
  }

  #peek(n: number): Buffer {
    const first = this.#chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    return Buffer.concat(this.#chunks, this.#length).subarray(0, n);
  }

  #take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.#chunks[0]!;
    if (first.length === n) {
      this.#chunks.shift();
      this.#length -= n;
      return first;
    }
    if (first.length > n) {
      this.#chunks[0] = first.subarray(n);
      this.#length -= n;
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.#chunks[0]!;
      const want = n - filled;
      if (chunk.length <= want) {
        chunk.copy(out, filled);
        filled += chunk.length;
        this.#chunks.shift();
      } else {
        chunk.copy(out, filled, 0, want);
        this.#chunks[0] = chunk.subarray(want);
        filled += want;
      }
    }
    this.#length -= n;
    return out;
  }
}
