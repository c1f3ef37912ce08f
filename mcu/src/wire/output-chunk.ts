import { ReplicationMalformedError } from '../core/errors.ts';
import type { OutputLogChunk } from '../takeover/transport/transport-record.ts';

/**
 * The payload of every binary replication frame: one chunk of a connection's output log (output
 * commit), raw so bulk bytes skip a JSON round trip.
 *
 * Layout (big endian): u16 connId length | connId (utf8) | f64 offset | bytes
 */

export function encodeOutputChunk(chunk: OutputLogChunk): Buffer {
  const id = Buffer.from(chunk.connId, 'utf8');
  const head = Buffer.alloc(2 + id.length + 8);
  head.writeUInt16BE(id.length, 0);
  id.copy(head, 2);
  head.writeDoubleBE(chunk.offset, 2 + id.length);
  return Buffer.concat([head, chunk.data]);
}

/** Throws ReplicationMalformedError for a payload that is not a chunk. `data` is a view into `buf`. */
export function decodeOutputChunk(buf: Buffer): OutputLogChunk {
  if (buf.length < 10) throw new ReplicationMalformedError(`output-log frame of ${buf.length} bytes is too short`);
  const idLength = buf.readUInt16BE(0);
  if (buf.length < 2 + idLength + 8) throw new ReplicationMalformedError('output-log frame shorter than its header');
  const connId = buf.toString('utf8', 2, 2 + idLength);
  const offset = buf.readDoubleBE(2 + idLength);
  if (!Number.isSafeInteger(offset) || offset < 0) throw new ReplicationMalformedError(`output-log offset ${offset} is invalid`);
  return { connId, offset, data: buf.subarray(2 + idLength + 8) };
}
