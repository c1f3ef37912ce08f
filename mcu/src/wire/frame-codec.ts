import { createHmac, timingSafeEqual } from 'node:crypto';
import { ConfigError, ReplicationAuthError, ReplicationMalformedError } from '../core/errors.ts';

/**
 * Wire format of the replication channel (big-endian):
 *
 *   offset size
 *   0      2    magic 0x48 0x52 ("HR")
 *   2      1    version (1)
 *   3      1    frame type (FrameType)
 *   4      4    epoch (u32)
 *   8      8    seq (u64, must be a safe integer)
 *   16     4    payload length (u32)
 *   20     n    payload
 *   20+n   32   HMAC-SHA256(secret, header + payload)
 *
 * The MAC covers the header too, so epoch and seq cannot be altered in flight.
 */

export const FRAME_MAGIC = 0x4852;
export const FRAME_VERSION = 1;
export const FRAME_HEADER_BYTES = 20;
export const FRAME_MAC_BYTES = 32;
/** Default largest payload accepted or sent: 16 MiB (a snapshot of a big MCU fits many times). */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

export const FrameType = {
  /** UTF-8 JSON: control and state messages (messages.ts). */
  Json: 1,
  /** Raw bytes (output-log data later): no JSON round trip for bulk bytes. */
  Binary: 2,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

const KNOWN_TYPES = new Set<number>(Object.values(FrameType));

export interface Frame {
  type: FrameType;
  epoch: number;
  seq: number;
  payload: Buffer;
}

export type FrameError = ReplicationAuthError | ReplicationMalformedError;

export type Secret = string | Buffer;

function secretKey(secret: Secret): Buffer {
  const key = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret;
  if (key.length === 0) throw new ConfigError('the replication secret is empty: set MCU_REPLICATION_SECRET on primary and standby');
  return key;
}

function mac(key: Buffer, header: Buffer, payload: Buffer): Buffer {
  return createHmac('sha256', key).update(header).update(payload).digest();
}

/** Encodes one authenticated frame. Throws ReplicationMalformedError for a frame the peer would refuse anyway. */
export function encodeFrame(frame: Frame, secret: Secret, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Buffer {
  const key = secretKey(secret);
  if (!KNOWN_TYPES.has(frame.type)) throw new ReplicationMalformedError(`unknown frame type ${frame.type}`);
  if (!Number.isInteger(frame.epoch) || frame.epoch < 0 || frame.epoch > 0xffffffff) {
    throw new ReplicationMalformedError(`epoch ${frame.epoch} is not a u32`);
  }
  if (!Number.isSafeInteger(frame.seq) || frame.seq < 0) throw new ReplicationMalformedError(`seq ${frame.seq} is not a safe unsigned integer`);
  if (frame.payload.length > maxFrameBytes) {
    throw new ReplicationMalformedError(`payload of ${frame.payload.length} bytes exceeds the limit of ${maxFrameBytes} bytes`);
  }
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + frame.payload.length + FRAME_MAC_BYTES);
  out.writeUInt16BE(FRAME_MAGIC, 0);
  out.writeUInt8(FRAME_VERSION, 2);
  out.writeUInt8(frame.type, 3);
  out.writeUInt32BE(frame.epoch, 4);
  out.writeBigUInt64BE(BigInt(frame.seq), 8);
  out.writeUInt32BE(frame.payload.length, 16);
  frame.payload.copy(out, FRAME_HEADER_BYTES);
  const header = out.subarray(0, FRAME_HEADER_BYTES);
  mac(key, header, frame.payload).copy(out, FRAME_HEADER_BYTES + frame.payload.length);
  return out;
}

export interface DecodeResult {
  /** Frames that verified, in stream order, before any error in this chunk. */
  frames: Frame[];
  /** Set once the stream is unusable; every later push returns the same error. */
  error: FrameError | null;
}

interface PendingHeader {
  header: Buffer;
  type: FrameType;
  epoch: number;
  seq: number;
  length: number;
}

/**
 * Streaming decoder: accepts arbitrary chunk boundaries (down to single bytes) and returns
 * only frames whose MAC verified. A stream error is final (framing cannot be trusted after it):
 * the caller closes the connection. `push` never throws.
 */
export class FrameDecoder {
  readonly #key: Buffer;
  readonly #maxFrameBytes: number;
  // Chunks are queued and copied once per frame, so a large frame in small chunks stays linear.
  #chunks: Buffer[] = [];
  #head = 0;
  #buffered = 0;
  #header: PendingHeader | null = null;
  #error: FrameError | null = null;
  #decoded = 0;

  constructor(secret: Secret, options: { /** Largest payload accepted (default 16 MiB). */ maxFrameBytes?: number } = {}) {
    this.#key = secretKey(secret);
    this.#maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  }

  get error(): FrameError | null {
    return this.#error;
  }

  /** Bytes received but not yet part of a complete frame. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /**
   * The frame being received once its header is in: its declared payload length, the bytes of
   * it here so far, and its index (frames decoded before it). Null between frames.
   */
  get partialFrame(): { index: number; declared: number; buffered: number } | null {
    const h = this.#header;
    return h ? { index: this.#decoded, declared: h.length, buffered: this.#buffered } : null;
  }

  push(chunk: Buffer): DecodeResult {
    const frames: Frame[] = [];
    if (this.#error) return { frames, error: this.#error };
    try {
      if (chunk.length > 0) {
        this.#chunks.push(chunk);
        this.#buffered += chunk.length;
      }
      for (;;) {
        if (!this.#header) {
          if (this.#buffered < FRAME_HEADER_BYTES) break;
          this.#header = this.#parseHeader(this.#take(FRAME_HEADER_BYTES));
        }
        const h = this.#header;
        if (this.#buffered < h.length + FRAME_MAC_BYTES) break;
        const rest = this.#take(h.length + FRAME_MAC_BYTES);
        this.#header = null;
        const payload = rest.subarray(0, h.length);
        const got = rest.subarray(h.length);
        const want = mac(this.#key, h.header, payload);
        if (!timingSafeEqual(got, want)) {
          throw new ReplicationAuthError(`bad MAC on frame seq ${h.seq}, epoch ${h.epoch}`);
        }
        this.#decoded++;
        frames.push({ type: h.type, epoch: h.epoch, seq: h.seq, payload });
      }
    } catch (err) {
      this.#fail(err);
    }
    return { frames, error: this.#error };
  }

  /** End of stream: an error when it ended inside a frame (truncated), else null. */
  finish(): FrameError | null {
    if (this.#error) return this.#error;
    if (this.#buffered > 0 || this.#header) {
      const have = this.#buffered + (this.#header ? FRAME_HEADER_BYTES : 0);
      this.#fail(new ReplicationMalformedError(`stream ended inside a frame (${have} bytes of an incomplete frame)`));
    }
    return this.#error;
  }

  #fail(err: unknown): void {
    if (err instanceof ReplicationAuthError || err instanceof ReplicationMalformedError) this.#error = err;
    else this.#error = new ReplicationMalformedError(`decoder failure: ${err instanceof Error ? err.message : String(err)}`);
    this.#chunks = [];
    this.#head = 0;
    this.#buffered = 0;
    this.#header = null;
  }

  #parseHeader(header: Buffer): PendingHeader {
    const magic = header.readUInt16BE(0);
    if (magic !== FRAME_MAGIC) throw new ReplicationMalformedError(`bad magic 0x${magic.toString(16)} (not a replication stream?)`);
    const version = header.readUInt8(2);
    if (version !== FRAME_VERSION) throw new ReplicationMalformedError(`unsupported frame version ${version} (expected ${FRAME_VERSION})`);
    const type = header.readUInt8(3);
    if (!KNOWN_TYPES.has(type)) throw new ReplicationMalformedError(`unknown frame type ${type}`);
    const epoch = header.readUInt32BE(4);
    const seq = header.readBigUInt64BE(8);
    if (seq > BigInt(Number.MAX_SAFE_INTEGER)) throw new ReplicationMalformedError(`seq ${seq} exceeds the safe integer range`);
    const length = header.readUInt32BE(16);
    // Checked before buffering anything: a forged length must not make us allocate 4 GiB.
    if (length > this.#maxFrameBytes) {
      throw new ReplicationMalformedError(`frame payload of ${length} bytes exceeds the limit of ${this.#maxFrameBytes} bytes`);
    }
    return { header, type: type as FrameType, epoch, seq: Number(seq), length };
  }

  /** Removes exactly n buffered bytes from the front (n <= buffered). */
  #take(n: number): Buffer {
    this.#buffered -= n;
    const first = this.#chunks[this.#head]!;
    if (first.length >= n) {
      // Fast path: no copy when the bytes sit in one chunk.
      if (first.length === n) this.#advance();
      else this.#chunks[this.#head] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.#chunks[this.#head]!;
      const use = Math.min(c.length, n - filled);
      c.copy(out, filled, 0, use);
      filled += use;
      if (use === c.length) this.#advance();
      else this.#chunks[this.#head] = c.subarray(use);
    }
    return out;
  }

  // A moving head instead of Array.shift keeps byte-by-byte feeding of a big frame linear.
  #advance(): void {
    this.#head++;
    if (this.#head === this.#chunks.length) {
      this.#chunks = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }
}
