/**
 * Moves a socket.io session record forward over output the dead primary wrote after it.
 *
 * The primary records a session at clean points only; output it writes between two of them
 * (a broadcast, the answer to a request) may reach the client before the next record exists.
 * Such output changes the session in only two ways this code accepts: an EVENT without an ack
 * id (a push: no session state at all) and an ACK answering one of the record's pending client
 * requests (that request is then answered: it must not be replayed). Anything else (pings, a
 * server emit expecting an ack, a handshake, binary, a fragmented frame) stops the walk: the
 * record cannot be advanced past it.
 *
 * Pure: reads the output-log bytes (server-to-client WebSocket frames, never masked).
 */
import { peekPacket } from './internals.ts';
import type { SessionRecord } from './session-record.ts';

export type AdvanceResult = { ok: true; record: SessionRecord; advancedBy: number } | { ok: false; reason: string };

/**
 * Advances `record` over `output` (the log's bytes from record.bytes.written on) to the first
 * frame boundary at or after `minBytes`. `minBytes` 0 returns the record as is.
 */
export function advanceSessionRecord(record: SessionRecord, output: Buffer, minBytes: number): AdvanceResult {
  if (minBytes <= 0) return { ok: true, record, advancedBy: 0 };
  const pending = new Map<string, Set<number>>();
  for (const ns of record.namespaces) pending.set(ns.name, new Set(ns.pendingClientRequests.map((r) => r.id)));
  let pos = 0;
  while (pos < minBytes) {
    if (output.length - pos < 2) return { ok: false, reason: `output ends inside a frame header at +${pos}` };
    const b0 = output[pos]!;
    const b1 = output[pos + 1]!;
    if ((b1 & 0x80) !== 0) return { ok: false, reason: `masked frame at +${pos}: not server output` };
    let len = b1 & 0x7f;
    let head = 2;
    if (len === 126) {
      if (output.length - pos < 4) return { ok: false, reason: `output ends inside a frame header at +${pos}` };
      len = output.readUInt16BE(pos + 2);
      head = 4;
    } else if (len === 127) {
      if (output.length - pos < 10) return { ok: false, reason: `output ends inside a frame header at +${pos}` };
      const big = output.readBigUInt64BE(pos + 2);
      if (big > BigInt(output.length)) return { ok: false, reason: `frame at +${pos} longer than the log` };
      len = Number(big);
      head = 10;
    }
    const end = pos + head + len;
    if (end > output.length) return { ok: false, reason: `output ends inside a frame at +${pos}` };
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    if (!fin || opcode !== 1) return { ok: false, reason: `frame at +${pos} is not a whole text frame (opcode ${opcode})` };
    const payload = output.toString('utf8', pos + head, end);
    if (!payload.startsWith('4')) return { ok: false, reason: `engine.io packet "${payload.slice(0, 8)}" at +${pos} is not a message` };
    const packet = peekPacket(payload.slice(1));
    if (!packet) return { ok: false, reason: `unparsable socket.io packet at +${pos}` };
    if (packet.type === 2 && packet.id === null) {
      // A push: no session state.
    } else if (packet.type === 3 && packet.id !== null && pending.get(packet.nsp)?.has(packet.id)) {
      pending.get(packet.nsp)!.delete(packet.id);
    } else {
      return { ok: false, reason: `socket.io packet type ${packet.type} id ${String(packet.id)} on ${packet.nsp} at +${pos} changes the session` };
    }
    pos = end;
  }
  const advanced: SessionRecord = {
    ...record,
    namespaces: record.namespaces.map((ns) => ({
      ...ns,
      pendingClientRequests: ns.pendingClientRequests.filter((r) => pending.get(ns.name)?.has(r.id)),
    })),
    bytes: { ...record.bytes, written: record.bytes.written + pos },
  };
  return { ok: true, record: advanced, advancedBy: pos };
}
