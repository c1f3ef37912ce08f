/**
 * advanceSessionRecord: walking a session record over output the dead primary wrote after it
 * (pushes pass, answers to pending requests clear them, anything else stops the walk).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SessionRecord } from '../../mcu/src/takeover/session/session-record.ts';
import { advanceSessionRecord } from '../../mcu/src/takeover/session/session-advance.ts';

/** A server-to-client WebSocket text frame (unmasked). */
function frame(text: string): Buffer {
  const payload = Buffer.from(text, 'utf8');
  if (payload.length < 126) return Buffer.concat([Buffer.from([0x81, payload.length]), payload]);
  const head = Buffer.alloc(4);
  head[0] = 0x81;
  head[1] = 126;
  head.writeUInt16BE(payload.length, 2);
  return Buffer.concat([head, payload]);
}

function record(pending: number[]): SessionRecord {
  return {
    version: 1,
    recordedAt: 0,
    peer: { remoteAddress: '10.0.0.1', remotePort: 40000, localAddress: '10.0.0.100', localPort: 3000 },
    request: { method: 'GET', url: '/socket.io/?EIO=4&transport=websocket', headers: {}, httpVersion: '1.1' },
    engine: {
      sid: 'sid',
      protocol: 4,
      upgrades: [],
      pingIntervalMs: 25000,
      pingTimeoutMs: 20000,
      maxPayload: 1e6,
      heartbeat: { awaitingPong: false, sinceLastPingMs: null, sincePingTimerArmedMs: 0, sincePongDeadlineArmedMs: null, pongDeadlineRefreshed: false },
    },
    namespaces: [
      {
        name: '/',
        socketId: 'sock',
        pid: null,
        rooms: [],
        data: null,
        handshake: { headers: {}, time: '', address: '', xdomain: false, secure: false, issued: 0, url: '', query: {}, auth: {} },
        ackCounter: 0,
        pendingServerAcks: [],
        pendingClientRequests: pending.map((id) => ({ id, event: 'mute', packet: `2${id}["mute",{}]` })),
      },
    ],
    bytes: { consumed: 100, written: 1000 },
    unparsedInput: '',
  };
}

describe('advanceSessionRecord', () => {
  it('passes pushes and clears answered requests, up to the first frame boundary past the minimum', () => {
    const push = frame(`42["roster",${JSON.stringify({ room: 'r', participants: 'x'.repeat(200) })}]`);
    const ack = frame('437[{"ok":true}]');
    const later = frame('42["roster",{}]');
    const out = Buffer.concat([push, ack, later]);
    const r = advanceSessionRecord(record([7, 8]), out, push.length + 1);
    assert.equal(r.ok, true);
    if (!r.ok) return;
    assert.equal(r.advancedBy, push.length + ack.length);
    assert.equal(r.record.bytes.written, 1000 + push.length + ack.length);
    assert.deepEqual(r.record.namespaces[0]!.pendingClientRequests.map((p) => p.id), [8]);
  });

  it('returns the record unchanged when nothing must be passed', () => {
    const r = advanceSessionRecord(record([]), Buffer.alloc(0), 0);
    assert.equal(r.ok, true);
  });

  it('stops at an answer to a request the record does not hold, a ping, or a truncated frame', () => {
    const ack = frame('439[{"ok":true}]');
    assert.equal(advanceSessionRecord(record([7]), ack, 1).ok, false);
    assert.equal(advanceSessionRecord(record([]), frame('2'), 1).ok, false);
    assert.equal(advanceSessionRecord(record([]), frame('42["roster",{}]').subarray(0, 5), 1).ok, false);
    // A server emit expecting an ack changes the session (its callback is gone).
    assert.equal(advanceSessionRecord(record([]), frame('423["ask",{}]'), 1).ok, false);
  });
});
