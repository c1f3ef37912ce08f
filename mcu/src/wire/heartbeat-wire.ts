import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The heartbeat datagrams between a primary and its standby. They travel over UDP on the
 * replication port number, apart from the replication stream, so that a real-time thread
 * on each side can send and judge them whatever the main threads are doing.
 *
 * Layout (big endian): magic u32 | kind u8 | epoch u32 | seq u32 | sentAt f64 | mac[16]
 *
 * This file is the format's reference. The heartbeat threads themselves are native
 * (native/addon/heartbeat_wire.cc, no node:crypto there); test/unit/native-heartbeat.test.ts
 * checks that codec against this one, byte for byte and reason for reason.
 */
export const HEARTBEAT_MAGIC = 0x4842_5431; // "HBT1"
export const HEARTBEAT_BYTES = 4 + 1 + 4 + 4 + 8 + 16;
const MAC_BYTES = 16;

export type HeartbeatKind = 'beat' | 'subscribe';
const KIND_CODES: Record<HeartbeatKind, number> = { beat: 1, subscribe: 2 };

export interface HeartbeatDatagram {
  kind: HeartbeatKind;
  epoch: number;
  seq: number;
  /** Sender's wall clock, epoch ms. */
  sentAt: number;
}

export type HeartbeatDecodeResult = { ok: true; datagram: HeartbeatDatagram } | { ok: false; reason: string };

function mac(secret: string | Buffer, body: Buffer): Buffer {
  return createHmac('sha256', secret).update(body).digest().subarray(0, MAC_BYTES);
}

export function encodeHeartbeat(d: HeartbeatDatagram, secret: string | Buffer): Buffer {
  const buf = Buffer.alloc(HEARTBEAT_BYTES);
  buf.writeUInt32BE(HEARTBEAT_MAGIC, 0);
  buf.writeUInt8(KIND_CODES[d.kind], 4);
  buf.writeUInt32BE(d.epoch >>> 0, 5);
  buf.writeUInt32BE(d.seq >>> 0, 9);
  buf.writeDoubleBE(d.sentAt, 13);
  mac(secret, buf.subarray(0, 21)).copy(buf, 21);
  return buf;
}

/** Why a datagram is not a heartbeat, checked in this order. */
export type HeartbeatRejection = 'length' | 'magic' | 'mac' | 'kind';

/** The words for a rejection (`length`: the datagram's, `kind`: its kind byte): one wording for this decoder and the native one. */
export function heartbeatRejectionReason(rejection: HeartbeatRejection, datagram: { length: number; kind: number }): string {
  switch (rejection) {
    case 'length':
      return `length ${datagram.length}, expected ${HEARTBEAT_BYTES}`;
    case 'magic':
      return 'bad magic';
    case 'mac':
      return 'authentication failed (wrong MCU_REPLICATION_SECRET?)';
    case 'kind':
      return `unknown kind ${datagram.kind}`;
  }
}

/** Never throws: a datagram from anyone on the network is untrusted. */
export function decodeHeartbeat(buf: Buffer, secret: string | Buffer): HeartbeatDecodeResult {
  const reject = (rejection: HeartbeatRejection): HeartbeatDecodeResult => ({ ok: false, reason: heartbeatRejectionReason(rejection, { length: buf.length, kind: buf.length > 4 ? buf.readUInt8(4) : 0 }) });
  if (buf.length !== HEARTBEAT_BYTES) return reject('length');
  if (buf.readUInt32BE(0) !== HEARTBEAT_MAGIC) return reject('magic');
  const expected = mac(secret, buf.subarray(0, 21));
  if (!timingSafeEqual(expected, buf.subarray(21))) return reject('mac');
  const code = buf.readUInt8(4);
  const kind = code === 1 ? 'beat' : code === 2 ? 'subscribe' : null;
  if (kind === null) return reject('kind');
  return { ok: true, datagram: { kind, epoch: buf.readUInt32BE(5), seq: buf.readUInt32BE(9), sentAt: buf.readDoubleBE(13) } };
}
