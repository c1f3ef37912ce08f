/**
 * A client that breaks the signaling protocol is dropped, and the MCU says why: one warning per
 * connection naming the engine.io session and the violation (PROTOCOL_VIOLATION, counted in
 * /metrics), whether ws, engine.io or socket.io refused it. Found by the signaling fuzzer: such
 * drops were logged, if at all, as a bare "socket disconnected, forced close". A client that
 * leaves properly is not a violation.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startMcu, type RunningMcu } from '../../scripts/common/processes.ts';
import { PacketSignalingConnection, RawSignalingConnection } from '../../scripts/fuzz/signaling-connections.ts';
import { clientFrame, encodeWsFrame } from '../../scripts/fuzz/websocket-frames.ts';

describe('signaling: protocol violations are dropped and logged (real MCU process)', () => {
  let mcu: RunningMcu;
  before(async () => {
    mcu = await startMcu();
  });
  after(() => mcu?.stop());

  function logLine(predicate: (line: string) => boolean, timeoutMs = 5000): Promise<string> {
    const seen = mcu.process.stderr.find(predicate);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        mcu.process.off('stderr', on);
        reject(new Error(`no such log line within ${timeoutMs} ms:\n${mcu.process.stderrTail}`));
      }, timeoutMs);
      const on = (line: string): void => {
        if (!predicate(line)) return;
        clearTimeout(timer);
        mcu.process.off('stderr', on);
        resolve(line);
      };
      mcu.process.on('stderr', on);
    });
  }

  const dropLine = (sid: string): ((line: string) => boolean) => (line) => line.includes('signaling connection dropped') && line.includes(sid);

  const rawCases: Array<[string, Buffer, RegExp]> = [
    ['a reserved opcode', encodeWsFrame({ fin: true, rsv: 0, opcode: 3, mask: Uint8Array.from([1, 2, 3, 4]), payload: Buffer.from('x'), length: 'minimal' }), /Invalid WebSocket frame: invalid opcode 3/],
    ['an unmasked frame', encodeWsFrame({ fin: true, rsv: 0, opcode: 1, mask: null, payload: Buffer.from('42["leave"]'), length: 'minimal' }), /Invalid WebSocket frame: MASK must be set/],
    ['text that is not UTF-8', clientFrame(1, Buffer.from([0x34, 0x32, 0xc0, 0xaf])), /Invalid WebSocket frame: invalid UTF-8 sequence/],
    ['a fragmented ping', encodeWsFrame({ fin: false, rsv: 0, opcode: 9, mask: Uint8Array.from([1, 2, 3, 4]), payload: Buffer.alloc(0), length: 'minimal' }), /Invalid WebSocket frame: FIN must be set/],
    ['a length over the limit', encodeWsFrame({ fin: true, rsv: 0, opcode: 2, mask: Uint8Array.from([1, 2, 3, 4]), payload: Buffer.alloc(0), length: 'huge' }), /Max payload size exceeded/],
  ];
  for (const [what, bytes, expected] of rawCases) {
    it(`${what}: dropped, and the warning names the violation`, async () => {
      const conn = await RawSignalingConnection.open(mcu.port);
      try {
        conn.write(bytes);
        await conn.whenClosed(5000);
        assert.match(await logLine(dropLine(conn.engineSid)), expected);
      } finally {
        conn.close();
      }
    });
  }

  const packetCases: Array<[string, string | Uint8Array, RegExp]> = [
    ['a socket.io packet of no known type', '4Z', /invalid socket\.io packet \(unknown packet type NaN\)/],
    ['a binary attachment nobody announced', Uint8Array.from([1, 2, 3]), /invalid socket\.io packet \(got binary data when not reconstructing a packet\)/],
    ['an engine.io packet that does not parse', '7', /engine\.io packet that does not parse/],
    ['a ping from the client (the server pings in engine.io 4)', '2', /invalid heartbeat direction/],
  ];
  for (const [what, data, expected] of packetCases) {
    it(`${what}: dropped, and the warning names the violation`, async () => {
      const conn = await PacketSignalingConnection.open(mcu.port);
      try {
        conn.send(data);
        await conn.whenClosed(5000);
        assert.match(await logLine(dropLine(conn.engineSid)), expected);
      } finally {
        conn.close();
      }
    });
  }

  it('an event the client names "error" is an unknown event, not a decoder error (the fuzzer crashed the MCU with 42["error"])', async () => {
    for (const packet of ['421["error"]', '422["error",{"message":"x"}]', '423["error",null,7]']) {
      const conn = await PacketSignalingConnection.open(mcu.port);
      try {
        const id = packet.slice(2, 3);
        conn.send(packet);
        const ack = await conn.nextText((p) => p.startsWith(`43${id}`), 5000);
        assert.ok(ack !== null, `${packet}: dropped instead of answered`);
        assert.match(ack, /INVALID_MESSAGE.*unknown event/);
        assert.equal(await conn.settle(5000), 'answered');
      } finally {
        conn.close();
      }
    }
    assert.ok(mcu.process.running);
  });

  it('a client that leaves properly is no violation; every violation is counted in /metrics', async () => {
    const polite = await RawSignalingConnection.open(mcu.port);
    polite.write(clientFrame(8, Buffer.from([0x03, 0xe8])));
    await polite.whenClosed(5000);
    await logLine((line) => line.includes('socket disconnected') && line.includes(polite.socketId));
    // A violation after it: its warning comes after anything the polite close could have logged.
    const rude = await RawSignalingConnection.open(mcu.port);
    rude.write(encodeWsFrame({ fin: true, rsv: 0, opcode: 15, mask: Uint8Array.from([9, 9, 9, 9]), payload: Buffer.alloc(0), length: 'minimal' }));
    await rude.whenClosed(5000);
    await logLine(dropLine(rude.engineSid));
    assert.equal(mcu.process.stderr.filter(dropLine(polite.engineSid)).length, 0, 'the polite close was logged as a violation');
    polite.close();
    rude.close();

    const metrics = await (await fetch(`${mcu.adminUrl}/metrics`)).text();
    const count = Number(/^mcu_signaling_errors_total\{code="PROTOCOL_VIOLATION"\} (\d+)$/m.exec(metrics)?.[1]);
    assert.equal(count, rawCases.length + packetCases.length + 1, metrics.split('\n').filter((l) => l.startsWith('mcu_signaling_errors_total')).join('\n'));
  });
});
