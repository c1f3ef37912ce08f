import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { ConfigError, ReplicationAuthError, ReplicationMalformedError } from '../core/errors.ts';

/**
 * Wire format of the replication channel (big-endian), version 2: encrypted and authenticated.
 *
 * Each side first sends its link hello (36 bytes):
 *
 *   0      2    magic 0x48 0x52 ("HR")
 *   2      1    version (2)
 *   3      1    0 (LINK_HELLO_TYPE)
 *   4      32   nonce: fresh random bytes of this connection
 *
 * then frames:
 *
 *   offset size
 *   0      2    magic 0x48 0x52 ("HR")
 *   2      1    version (2)
 *   3      1    frame type (FrameType)
 *   4      4    epoch (u32)
 *   8      8    seq (u64, must be a safe integer)
 *   16     4    payload length (u32)
 *   20     n    payload, AES-256-GCM encrypted
 *   20+n   16   GCM tag over header (AAD) and payload
 *
 * Each direction has its own key, HKDF-SHA256(the shared secret, salt = sender's nonce ||
 * receiver's nonce), so every connection has fresh keys even with the same secret: a frame of
 * another connection (a replay) does not open. The GCM nonce is the frame's index in its
 * direction (0, 1, 2, ...), implicit: a frame replayed, dropped or moved within the connection
 * is opened with the wrong nonce and refused. Replication now carries TLS traffic secrets
 * (takeover/tls), so the channel must be confidential as well as authenticated.
 */

export const FRAME_MAGIC = 0x4852;
export const FRAME_VERSION = 2;
export const FRAME_HEADER_BYTES = 20;
/** The GCM tag at the end of each frame (the field once held an HMAC: the name stays for its position). */
export const FRAME_MAC_BYTES = 16;
export const LINK_HELLO_TYPE = 0;
export const LINK_NONCE_BYTES = 32;
export const LINK_HELLO_BYTES = 4 + LINK_NONCE_BYTES;
/** Default largest payload accepted or sent: 16 MiB (a snapshot of a big MCU fits many times). */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

const CIPHER = 'aes-256-gcm';
const KEY_INFO = Buffer.from('hot-standby-mcu replication v2 frame key', 'utf8');

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

/** The key of one direction of one connection: HKDF-SHA256(secret, senderNonce || receiverNonce). */
export function deriveFrameKey(secret: Secret, senderNonce: Buffer, receiverNonce: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', secretKey(secret), Buffer.concat([senderNonce, receiverNonce]), KEY_INFO, 32));
}

function gcmNonce(counter: number): Buffer {
  const iv = Buffer.alloc(12);
  iv.writeBigUInt64BE(BigInt(counter), 4);
  return iv;
}

/** This side's link hello: what a connection starts with, in both directions. */
/** The nonce in a complete link hello, or null when `bytes` does not start with one. */
export function linkHelloNonce(bytes: Buffer): Buffer | null {
  if (bytes.length < LINK_HELLO_BYTES || bytes.readUInt16BE(0) !== FRAME_MAGIC || bytes.readUInt8(2) !== FRAME_VERSION || bytes.readUInt8(3) !== LINK_HELLO_TYPE) return null;
  return Buffer.from(bytes.subarray(4, LINK_HELLO_BYTES));
}

export function encodeLinkHello(nonce: Buffer): Buffer {
  if (nonce.length !== LINK_NONCE_BYTES) throw new ReplicationMalformedError(`a link nonce is ${LINK_NONCE_BYTES} bytes, not ${nonce.length}`);
  const out = Buffer.alloc(LINK_HELLO_BYTES);
  out.writeUInt16BE(FRAME_MAGIC, 0);
  out.writeUInt8(FRAME_VERSION, 2);
  out.writeUInt8(LINK_HELLO_TYPE, 3);
  nonce.copy(out, 4);
  return out;
}

/**
 * Encodes and encrypts one frame as the `counter`-th frame of its direction. Throws
 * ReplicationMalformedError for a frame the peer would refuse anyway.
 */
export function encodeFrame(frame: Frame, key: Buffer, counter: number, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Buffer {
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
  const cipher = createCipheriv(CIPHER, key, gcmNonce(counter));
  cipher.setAAD(out.subarray(0, FRAME_HEADER_BYTES));
  let at = FRAME_HEADER_BYTES;
  at += cipher.update(frame.payload).copy(out, at);
  at += cipher.final().copy(out, at);
  cipher.getAuthTag().copy(out, at);
  return out;
}

/** Encrypts the frames of one direction of one connection, counting them (the GCM nonce). */
export class FrameSealer {
  readonly #key: Buffer;
  readonly #maxFrameBytes: number;
  #counter = 0;

  constructor(key: Buffer, options: { maxFrameBytes?: number } = {}) {
    this.#key = key;
    this.#maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  }

  /** Frames sealed so far (the next one's nonce). */
  get sealed(): number {
    return this.#counter;
  }

  seal(frame: Frame): Buffer {
    // The counter moves only for a frame that was encoded: a refused one must not skip a nonce.
    const bytes = encodeFrame(frame, this.#key, this.#counter, this.#maxFrameBytes);
    this.#counter++;
    return bytes;
  }
}

/** Both directions' codecs of a connection once the peer's hello came, and what followed it in the same chunk. */
export interface LinkKeys {
  sealer: FrameSealer;
  decoder: FrameDecoder;
  /** Bytes received after the peer's hello: its first frames. */
  rest: Buffer;
  /** Our nonce and the peer's (what the keys were derived from). */
  nonce: Buffer;
  peerNonce: Buffer;
}

/**
 * The start of a connection: our hello out, the peer's in, then both directions' keys. Used by
 * the ReplicationLink, and by tests that play a peer by hand. `push` throws
 * ReplicationMalformedError for what is not a link hello of this version, and
 * ReplicationAuthError for our own nonce reflected back.
 */
export class LinkHandshake {
  /** Our hello: write it first on the connection. */
  readonly hello: Buffer;
  readonly #secret: Buffer;
  readonly #nonce: Buffer;
  readonly #maxFrameBytes: number;
  #received: Buffer = Buffer.alloc(0);
  #done = false;

  constructor(secret: Secret, options: { maxFrameBytes?: number; /** For tests: a fixed nonce. */ nonce?: Buffer } = {}) {
    this.#secret = secretKey(secret);
    this.#nonce = options.nonce ?? randomBytes(LINK_NONCE_BYTES);
    this.#maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.hello = encodeLinkHello(this.#nonce);
  }

  /** Bytes of the peer's hello received so far. */
  get bufferedBytes(): number {
    return this.#received.length;
  }

  /** Feeds received bytes: null until the peer's hello is complete, then the keys (once). */
  push(chunk: Buffer): LinkKeys | null {
    if (this.#done) throw new ReplicationMalformedError('link handshake already complete');
    this.#received = this.#received.length === 0 ? chunk : Buffer.concat([this.#received, chunk]);
    const b = this.#received;
    // Judged byte by byte as they come: a stranger (HTTP, SSH, an old version) is refused at once.
    if (b.length >= 2 && b.readUInt16BE(0) !== FRAME_MAGIC) {
      throw new ReplicationMalformedError(`bad magic 0x${b.readUInt16BE(0).toString(16)} at the start of the connection (not a replication peer?)`);
    }
    if (b.length >= 3 && b.readUInt8(2) !== FRAME_VERSION) {
      throw new ReplicationMalformedError(
        `the peer speaks replication version ${b.readUInt8(2)}, this side ${FRAME_VERSION} (version 2 encrypts the channel): run the same build on primary and standby`,
      );
    }
    if (b.length >= 4 && b.readUInt8(3) !== LINK_HELLO_TYPE) {
      throw new ReplicationMalformedError(`the connection starts with frame type ${b.readUInt8(3)}, not a link hello`);
    }
    if (b.length < LINK_HELLO_BYTES) return null;
    const peerNonce = Buffer.from(b.subarray(4, LINK_HELLO_BYTES));
    if (timingSafeEqual(peerNonce, this.#nonce)) {
      throw new ReplicationAuthError('the peer sent our own link nonce back: a reflected connection');
    }
    this.#done = true;
    this.#received = Buffer.alloc(0);
    return {
      sealer: new FrameSealer(deriveFrameKey(this.#secret, this.#nonce, peerNonce), { maxFrameBytes: this.#maxFrameBytes }),
      decoder: new FrameDecoder(deriveFrameKey(this.#secret, peerNonce, this.#nonce), { maxFrameBytes: this.#maxFrameBytes }),
      rest: b.subarray(LINK_HELLO_BYTES),
      nonce: this.#nonce,
      peerNonce,
    };
  }
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
 * Streaming decoder of one direction of one connection: accepts arbitrary chunk boundaries
 * (down to single bytes) and returns only frames that decrypted and authenticated as the next
 * frame of the direction. A stream error is final (framing cannot be trusted after it):
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

  /** `key`: deriveFrameKey(secret, the sender's nonce, ours), or what LinkHandshake gives. */
  constructor(key: Buffer, options: { /** Largest payload accepted (default 16 MiB). */ maxFrameBytes?: number } = {}) {
    this.#key = key;
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
        const payload = this.#open(h, rest);
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

  /** Decrypts the payload as frame number #decoded of the direction; a frame that does not open is refused. */
  #open(h: PendingHeader, rest: Buffer): Buffer {
    const decipher = createDecipheriv(CIPHER, this.#key, gcmNonce(this.#decoded));
    decipher.setAAD(h.header);
    decipher.setAuthTag(rest.subarray(h.length));
    const first = decipher.update(rest.subarray(0, h.length));
    try {
      const last = decipher.final();
      return last.length === 0 ? first : Buffer.concat([first, last]);
    } catch {
      throw new ReplicationAuthError(
        `frame ${this.#decoded} of this connection (seq ${h.seq}, epoch ${h.epoch}) does not open: another secret, an altered frame, or one replayed, dropped or reordered`,
      );
    }
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
