/**
 * The signaling fuzz targets: raw WebSocket frames, engine.io packets and socket.io packets,
 * each case on a fresh connection to a real MCU beside an honest participant. A case passes when
 * the fuzzer's connection was either still answered or dropped (and the drop logged), and the
 * bed's checks hold afterwards (signaling-bed.ts).
 */
import type { FuzzTarget } from './fuzz-run.ts';
import type { SignalingFuzzBed } from './signaling-bed.ts';
import { PacketSignalingConnection, RawSignalingConnection, type SettleOutcome } from './signaling-connections.ts';
import { HONEST_ID_MARK, engineIoCase, socketIoCase, type FuzzMessage } from './signaling-packets.ts';
import { encodeWsFrameCase, violationBytes, wsFrameCase, type WsFrameCase } from './websocket-frames.ts';

/** Longest a live MCU may take to answer or drop a fuzz connection (generous: the CI machine is loaded). */
const SETTLE_MS = 10_000;

/** A dropped fuzz connection must leave a line in the MCU's log naming it. */
async function expectDropLogged(bed: SignalingFuzzBed, ids: { engineSid: string; socketId: string }): Promise<void> {
  await bed.logLine((line) => line.includes(ids.socketId) || line.includes(ids.engineSid));
}

export function webSocketFramesTarget(bed: SignalingFuzzBed): FuzzTarget<WsFrameCase> {
  return {
    name: 'websocket-frames',
    arbitrary: wsFrameCase(),
    before: () => bed.ensure(),
    afterFailure: () => bed.markDirty(),
    async run(c) {
      const conn = await RawSignalingConnection.open(bed.port);
      try {
        const { bytes, complete } = encodeWsFrameCase(c);
        conn.write(bytes);
        let outcome: SettleOutcome;
        if (complete) {
          outcome = await conn.settle(SETTLE_MS);
        } else {
          // The server cannot know where the next frame starts: the end of our stream must make it let go.
          conn.end();
          await conn.whenClosed(SETTLE_MS);
          outcome = 'dropped';
        }
        if (outcome === 'dropped') await expectDropLogged(bed, conn);
        // A first frame that breaks the protocol must be named as such: a warning with the violation.
        const shows = violationBytes(c.frames[0]!);
        if (shows !== null && (c.truncateTo === null || c.truncateTo >= shows)) {
          await bed.logLine((line) => line.includes('signaling connection dropped') && line.includes(conn.engineSid));
        }
        await bed.check();
        return outcome;
      } finally {
        conn.close();
      }
    },
  };
}

function packetTarget(name: string, bed: SignalingFuzzBed, arbitrary: FuzzTarget<FuzzMessage[]>['arbitrary']): FuzzTarget<FuzzMessage[]> {
  return {
    name,
    arbitrary,
    before: () => bed.ensure(),
    afterFailure: () => bed.markDirty(),
    async run(messages) {
      const conn = await PacketSignalingConnection.open(bed.port);
      try {
        for (const m of messages) conn.send('text' in m ? m.text.replaceAll(HONEST_ID_MARK, bed.honestId) : m.binary);
        const outcome = await conn.settle(SETTLE_MS);
        if (outcome === 'dropped') await expectDropLogged(bed, conn);
        await bed.check();
        return outcome;
      } finally {
        conn.close();
      }
    },
  };
}

export const engineIoPacketsTarget = (bed: SignalingFuzzBed): FuzzTarget<FuzzMessage[]> => packetTarget('engine.io-packets', bed, engineIoCase());
export const socketIoPacketsTarget = (bed: SignalingFuzzBed): FuzzTarget<FuzzMessage[]> => packetTarget('socket.io-packets', bed, socketIoCase());
