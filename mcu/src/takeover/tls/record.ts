/**
 * TLS 1.3 record protection (RFC 8446 5): framing of a byte stream into records, and the AEAD
 * of one record. Pure functions; the stateful layer is record-layer.ts.
 */
import { createCipheriv, createDecipheriv, type CipherGCMTypes, type CipherChaCha20Poly1305Types } from 'node:crypto';
import { TlsRecordInvalidError } from './errors.ts';
import { IV_LENGTH, TAG_LENGTH, TLS13_SUITES, trafficKeys, type TlsSuiteName } from './key-schedule.ts';

export const ContentType = {
  ChangeCipherSpec: 20,
  Alert: 21,
  Handshake: 22,
  ApplicationData: 23,
} as const;
export type ContentType = (typeof ContentType)[keyof typeof ContentType];

export const HandshakeType = {
  NewSessionTicket: 4,
  Finished: 20,
  KeyUpdate: 24,
} as const;

export const RECORD_HEADER_LENGTH = 5;
/** Largest plaintext of one record (RFC 8446 5.1). */
export const MAX_PLAINTEXT = 1 << 14;
/** Largest TLSCiphertext.length (RFC 8446 5.2): plaintext, content type, padding and tag. */
export const MAX_CIPHERTEXT = MAX_PLAINTEXT + 256;

/** One direction's traffic state: which secret (generation N of application_traffic_secret_N) and the next record's sequence number. */
export interface TrafficState {
  secret: Buffer;
  generation: number;
  seq: number;
}

/** A framed record: its header fields and its bytes in the stream. */
export interface RawRecord {
  type: number;
  /** The record's whole bytes, header included. */
  bytes: Buffer;
  /** Offset of its first byte in the stream. */
  offset: number;
}

/**
 * Cuts a byte stream into records as chunks arrive: records split across chunks, several in
 * one chunk. A header that cannot be TLS 1.3's (bad version, a length over the limit) is a
 * TlsRecordInvalidError naming the offset.
 */
export class RecordFramer {
  #pending: Buffer[] = [];
  #pendingLength = 0;
  /** Stream offset of the first pending byte. */
  #offset: number;

  constructor(startOffset = 0) {
    this.#offset = startOffset;
  }

  /** Stream offset of the next record boundary (the bytes before it were all framed). */
  get boundary(): number {
    return this.#offset;
  }

  /** Bytes of an incomplete record held. */
  get buffered(): number {
    return this.#pendingLength;
  }

  /** The held bytes of an incomplete record. */
  pendingBytes(): Buffer {
    return Buffer.concat(this.#pending, this.#pendingLength);
  }

  push(chunk: Buffer): RawRecord[] {
    if (chunk.length === 0) return [];
    this.#pending.push(chunk);
    this.#pendingLength += chunk.length;
    if (this.#pendingLength < RECORD_HEADER_LENGTH) return [];
    let buf = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending, this.#pendingLength);
    const records: RawRecord[] = [];
    let at = 0;
    while (buf.length - at >= RECORD_HEADER_LENGTH) {
      const type = buf[at]!;
      const version = buf.readUInt16BE(at + 1);
      const length = buf.readUInt16BE(at + 3);
      const offset = this.#offset + at;
      if (type < ContentType.ChangeCipherSpec || type > ContentType.ApplicationData) {
        throw new TlsRecordInvalidError('unexpected_message', offset, `unknown content type ${type}`);
      }
      // legacy_record_version is 0x0303, or 0x0301 on a first ClientHello.
      if (version !== 0x0303 && version !== 0x0301) throw new TlsRecordInvalidError('decode_error', offset, `record version 0x${version.toString(16)}`);
      if (length > MAX_CIPHERTEXT) throw new TlsRecordInvalidError('record_overflow', offset, `record length ${length} over ${MAX_CIPHERTEXT}`);
      if (buf.length - at < RECORD_HEADER_LENGTH + length) break;
      // Copied: the caller may keep a record while the chunk's memory is reused.
      records.push({ type, offset, bytes: Buffer.from(buf.subarray(at, at + RECORD_HEADER_LENGTH + length)) });
      at += RECORD_HEADER_LENGTH + length;
    }
    buf = buf.subarray(at);
    this.#offset += at;
    this.#pending = buf.length > 0 ? [buf] : [];
    this.#pendingLength = buf.length;
    return records;
  }
}

/** Per-record nonce (RFC 8446 5.3): the IV XOR the 64-bit sequence number, right-aligned. */
export function recordNonce(iv: Buffer, seq: number): Buffer {
  const nonce = Buffer.from(iv);
  const big = BigInt(seq);
  const high = Number(big >> 32n);
  const low = Number(big & 0xffffffffn);
  nonce.writeUInt32BE((nonce.readUInt32BE(IV_LENGTH - 8) ^ high) >>> 0, IV_LENGTH - 8);
  nonce.writeUInt32BE((nonce.readUInt32BE(IV_LENGTH - 4) ^ low) >>> 0, IV_LENGTH - 4);
  return nonce;
}

/** Keys derived once per traffic secret: deriving per record would cost two HMACs each. */
export interface RecordKeys {
  suite: TlsSuiteName;
  key: Buffer;
  iv: Buffer;
}

export function recordKeys(suite: TlsSuiteName, secret: Buffer): RecordKeys {
  return { suite, ...trafficKeys(suite, secret) };
}

/** Protects one record: `content` of inner type `type`, padded with `padding` zeros. Returns the record's bytes. */
export function sealRecord(keys: RecordKeys, seq: number, type: ContentType, content: Buffer, padding = 0): Buffer {
  if (content.length > MAX_PLAINTEXT) throw new RangeError(`record content of ${content.length} bytes over ${MAX_PLAINTEXT}`);
  const inner = Buffer.alloc(content.length + 1 + padding);
  content.copy(inner, 0);
  inner[content.length] = type;
  const header = Buffer.of(ContentType.ApplicationData, 0x03, 0x03, 0, 0);
  header.writeUInt16BE(inner.length + TAG_LENGTH, 3);
  const cipherName = TLS13_SUITES[keys.suite].cipher;
  const cipher =
    cipherName === 'chacha20-poly1305'
      ? createCipheriv(cipherName as CipherChaCha20Poly1305Types, keys.key, recordNonce(keys.iv, seq), { authTagLength: TAG_LENGTH })
      : createCipheriv(cipherName as CipherGCMTypes, keys.key, recordNonce(keys.iv, seq), { authTagLength: TAG_LENGTH });
  cipher.setAAD(header, { plaintextLength: inner.length });
  const body = Buffer.concat([cipher.update(inner), cipher.final(), cipher.getAuthTag()]);
  return Buffer.concat([header, body]);
}

export interface OpenedRecord {
  /** The inner content type (the outer one is always application_data). */
  type: number;
  content: Buffer;
}

/**
 * Opens one protected record (outer type application_data), or returns null when its tag does
 * not verify under these keys at this sequence number (trial decryption uses that).
 * A record that opens but carries no content type is a TlsRecordInvalidError.
 */
export function openRecord(keys: RecordKeys, seq: number, record: RawRecord): OpenedRecord | null {
  const length = record.bytes.length - RECORD_HEADER_LENGTH;
  if (length < TAG_LENGTH + 1) return null;
  const header = record.bytes.subarray(0, RECORD_HEADER_LENGTH);
  const body = record.bytes.subarray(RECORD_HEADER_LENGTH, record.bytes.length - TAG_LENGTH);
  const tag = record.bytes.subarray(record.bytes.length - TAG_LENGTH);
  const cipherName = TLS13_SUITES[keys.suite].cipher;
  const decipher =
    cipherName === 'chacha20-poly1305'
      ? createDecipheriv(cipherName as CipherChaCha20Poly1305Types, keys.key, recordNonce(keys.iv, seq), { authTagLength: TAG_LENGTH })
      : createDecipheriv(cipherName as CipherGCMTypes, keys.key, recordNonce(keys.iv, seq), { authTagLength: TAG_LENGTH });
  decipher.setAAD(header, { plaintextLength: body.length });
  decipher.setAuthTag(tag);
  let inner: Buffer;
  try {
    inner = Buffer.concat([decipher.update(body), decipher.final()]);
  } catch {
    return null;
  }
  // Padding is zeros after the content type (RFC 8446 5.4).
  let end = inner.length - 1;
  while (end >= 0 && inner[end] === 0) end--;
  if (end < 0) throw new TlsRecordInvalidError('unexpected_message', record.offset, 'a protected record with no content type (all padding)');
  if (end > MAX_PLAINTEXT) throw new TlsRecordInvalidError('record_overflow', record.offset, `plaintext of ${end} bytes over ${MAX_PLAINTEXT}`);
  return { type: inner[end]!, content: inner.subarray(0, end) };
}

/** One handshake message in protected records after the handshake (post-handshake messages). */
export interface HandshakeMessage {
  type: number;
  body: Buffer;
}

/**
 * Joins handshake messages across records (a message may span records; several may share one).
 * Post-handshake messages only: NewSessionTicket and KeyUpdate matter here.
 */
export class HandshakeReassembler {
  #buffer: Buffer = Buffer.alloc(0);

  /** True while a message is incomplete (a key change must not fall inside one). */
  get partial(): boolean {
    return this.#buffer.length > 0;
  }

  push(content: Buffer): HandshakeMessage[] {
    this.#buffer = this.#buffer.length === 0 ? content : Buffer.concat([this.#buffer, content]);
    const messages: HandshakeMessage[] = [];
    while (this.#buffer.length >= 4) {
      const length = this.#buffer.readUIntBE(1, 3);
      if (this.#buffer.length < 4 + length) break;
      messages.push({ type: this.#buffer[0]!, body: Buffer.from(this.#buffer.subarray(4, 4 + length)) });
      this.#buffer = this.#buffer.subarray(4 + length);
    }
    return messages;
  }
}

/** The KeyUpdate handshake message (RFC 8446 4.6.3). */
export function keyUpdateMessage(requestUpdate: boolean): Buffer {
  return Buffer.of(HandshakeType.KeyUpdate, 0, 0, 1, requestUpdate ? 1 : 0);
}

/** TLS alert descriptions used here (RFC 8446 6). */
export const AlertDescription = {
  close_notify: 0,
  unexpected_message: 10,
  bad_record_mac: 20,
  record_overflow: 22,
  decode_error: 50,
} as const;
