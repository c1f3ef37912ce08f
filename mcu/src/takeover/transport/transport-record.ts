/**
 * What the standby needs to rebuild one client's signaling TCP connection, as the
 * primary records it (the connection-level takeover, design notes sections 3, 4, 9).
 * Sequence numbers are unsigned 32-bit; offsets count bytes from the first data byte
 * of each direction (client ISN + 1, server ISN + 1).
 */
import { OutputChunkError } from '../errors.ts';

export interface TransportRecord {
  /** Primary-assigned id of this connection, also carried by its output-log frames. */
  connId: string;
  local: { address: string; port: number };
  remote: { address: string; port: number };
  clientIsn: number;
  serverIsn: number;
  /** Negotiated options (TCP_INFO at accept; the standby's capture of the SYN is preferred when it has it). */
  mss: number;
  sndWscale: number;
  rcvWscale: number;
  sack: boolean;
  timestamps: boolean;
  /** Client bytes the application consumed, always at a WebSocket frame boundary. */
  consumedInput: number;
  /** Server bytes committed to the output log (acknowledged by the standby before the kernel got them). */
  committedOutput: number;
  /** Epoch-ms of the accept. */
  acceptedAt: number;
}

/** One chunk of a connection's output log: the bytes at [offset, offset + data.length). */
export interface OutputLogChunk {
  connId: string;
  offset: number;
  data: Buffer;
}

/** Binary replication frame layout of an output-log chunk: u16 id length | id (utf8) | f64 offset | bytes. */
export function encodeOutputChunk(chunk: OutputLogChunk): Buffer {
  const id = Buffer.from(chunk.connId, 'utf8');
  const head = Buffer.alloc(2 + id.length + 8);
  head.writeUInt16BE(id.length, 0);
  id.copy(head, 2);
  head.writeDoubleBE(chunk.offset, 2 + id.length);
  return Buffer.concat([head, chunk.data]);
}

export function decodeOutputChunk(buf: Buffer): OutputLogChunk {
  if (buf.length < 10) throw new OutputChunkError(`output-log frame of ${buf.length} bytes is too short`);
  const idLength = buf.readUInt16BE(0);
  if (buf.length < 2 + idLength + 8) throw new OutputChunkError('output-log frame shorter than its header');
  const connId = buf.toString('utf8', 2, 2 + idLength);
  const offset = buf.readDoubleBE(2 + idLength);
  if (!Number.isSafeInteger(offset) || offset < 0) throw new OutputChunkError(`output-log offset ${offset} is invalid`);
  return { connId, offset, data: buf.subarray(2 + idLength + 8) };
}
