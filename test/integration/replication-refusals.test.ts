/**
 * What a refused replication frame must leave behind: nothing. Regressions found by the
 * replication fuzzer (test/fuzz/replication.fuzz.test.ts), each against a real ReplicationClient
 * over TCP and a peer writing raw frames.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { ReplicationMalformedError } from '../../mcu/src/core/errors.ts';
import { FRAME_VERSION, FrameType } from '../../mcu/src/wire/frame-codec.ts';
import { RawReplicationPeer } from '../../scripts/common/raw-replication-peer.ts';
import { ReplicationClient, type ReplicationClientOptions } from '../../mcu/src/replication/replication-client.ts';
import { waitFor } from '../../scripts/common/wait-for.ts';
import { cleanupsAfterEach } from '../helpers/cleanups.ts';

const SECRET = 'refusals-test-secret-5d2e8b';

const cleanups = cleanupsAfterEach();

/** A primary played by hand: `script(socket, n)` writes what the n-th connection (0-based) gets. */
async function scriptedPrimary(script: (socket: Socket, peer: RawReplicationPeer, n: number) => void): Promise<number> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    const n = connections++;
    RawReplicationPeer.start(socket, SECRET).then(
      (peer) => script(socket, peer, n),
      () => socket.destroy(),
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return (server.address() as AddressInfo).port;
}


const EMPTY_SNAPSHOT = { rooms: [], participants: [] };

/** hello and an empty snapshot at `epoch`: seqs 1 and 2. */
function handshake(socket: Socket, peer: RawReplicationPeer, epoch: number): void {
  socket.write(peer.json({ type: 'hello', primaryId: 'p', epoch, pid: 1, service: {} }, 1, epoch));
  socket.write(peer.json({ type: 'snapshot', seq: 2, state: EMPTY_SNAPSHOT, extra: {} }, 2, epoch));
}

function startClient(port: number, options: Partial<ReplicationClientOptions> = {}): ReplicationClient {
  const client = new ReplicationClient({ port, secret: SECRET, ...options });
  cleanups.push(() => client.close('test over'));
  return client.start();
}

describe('a refused replication frame changes nothing', () => {
  const refusedAhead: Array<[string, (peer: RawReplicationPeer, epoch: number) => Buffer]> = [
    ['out of order', (peer, epoch) => peer.json({ type: 'heartbeat', sentAt: 1 }, 9, epoch)],
    ['malformed body', (peer, epoch) => peer.json('{"type":"delta","deltas":[]}', 3, epoch)],
    ['not JSON', (peer, epoch) => peer.json(Buffer.from([0x7b, 0xff]), 3, epoch)],
  ];
  for (const [what, bad] of refusedAhead) {
    it(`a frame of a higher epoch refused as ${what} does not move the standby to that epoch`, async () => {
      const port = await scriptedPrimary((socket, peer, n) => {
        handshake(socket, peer, 4);
        // The first connection then gets the bad frame, at epoch 9; the next one is the real primary again.
        if (n === 0) socket.write(bad(peer, 9));
      });
      const client = startClient(port);
      const [error] = await waitFor(client, 'rejected');
      assert.ok(error instanceof ReplicationMalformedError, String(error));
      assert.equal(client.epoch, 4);
      assert.equal(client.store.epoch, 4);
      // Before the fix the standby followed epoch 9 and refused the real primary (epoch 4) as stale, for good.
      const [synced] = await waitFor(client, 'synced', { filter: () => client.state === 'synced' });
      assert.equal(synced.epoch, 4);
      assert.equal(client.epoch, 4);
    });
  }

  it('a forged length within the limit is refused once the frame stalls (frameTimeoutMs), not followed for megabytes', async () => {
    const port = await scriptedPrimary((socket, peer, n) => {
      handshake(socket, peer, 3);
      if (n > 0) return;
      // The primary beats on; a forged header in between makes the standby take every later byte for its body.
      const beats = setInterval(() => socket.write(peer.json({ type: 'heartbeat', sentAt: Date.now() }, 2, 3)), 10);
      socket.once('close', () => clearInterval(beats));
      const forged = Buffer.alloc(20);
      forged.writeUInt16BE(0x4852, 0);
      forged.writeUInt8(FRAME_VERSION, 2);
      forged.writeUInt8(FrameType.Json, 3);
      forged.writeUInt32BE(3, 4);
      forged.writeBigUInt64BE(3n, 8);
      forged.writeUInt32BE(1024 * 1024, 16);
      setTimeout(() => socket.write(forged), 20);
    });
    const client = startClient(port, { frameTimeoutMs: 200 });
    await waitFor(client, 'synced');
    // Before the fix: no refusal for the ~15 minutes a megabyte of heartbeats takes, and no replication meanwhile.
    const [error] = await waitFor(client, 'rejected', { timeoutMs: 5000 });
    assert.ok(error instanceof ReplicationMalformedError, String(error));
    assert.match(error.message, /declaring 1048576 bytes is still incomplete/);
    await waitFor(client, 'synced');
    assert.equal(client.epoch, 3);
  });
});
