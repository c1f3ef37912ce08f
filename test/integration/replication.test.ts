import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { ReplicationAuthError, ReplicationClosedError, ReplicationMalformedError, StaleEpochError } from '../../mcu/src/core/errors.ts';
import { RawReplicationPeer } from '../../scripts/common/raw-replication-peer.ts';
import type { PrimaryMessage, StandbyMessage } from '../../mcu/src/wire/messages.ts';
import { preciseNow } from '../../mcu/src/core/clock.ts';
import { ReplicationServer } from '../../mcu/src/replication/replication-server.ts';
import { SessionState, type SessionSnapshot } from '../../mcu/src/conference/session-state.ts';
import { canonicalSnapshot } from '../../mcu/src/replication/checkpoint-store.ts';
import { ReplicationClient, type ReplicationClientOptions } from '../../mcu/src/replication/replication-client.ts';
import { FixtureProcess } from '../../scripts/common/child-process.ts';
import { DeltaGenerator } from '../../scripts/fixtures/random-deltas.ts';
import { waitFor } from '../../scripts/common/wait-for.ts';
import { cleanupsAfterEach } from '../helpers/cleanups.ts';

const SECRET = 'integration-test-secret-4f1c9a';

const cleanups = cleanupsAfterEach();

async function startServer(state: SessionState, options: { epoch?: number; secret?: string } = {}): Promise<{ server: ReplicationServer; port: number }> {
  const server = new ReplicationServer({ state, epoch: options.epoch ?? 1, secret: options.secret ?? SECRET, primaryId: 'test-primary' });
  cleanups.push(() => server.close('test over'));
  const address = await server.listen();
  return { server, port: address.port };
}

function startClient(port: number, options: Partial<ReplicationClientOptions> = {}): ReplicationClient {
  const client = new ReplicationClient({ port, secret: SECRET, ...options });
  cleanups.push(() => client.close('test over'));
  return client.start();
}

function seededState(seed: number, deltas: number): { state: SessionState; generator: DeltaGenerator } {
  const state = new SessionState();
  const generator = new DeltaGenerator(state, seed);
  for (let i = 0; i < deltas; i++) state.apply(generator.next());
  return { state, generator };
}

function assertSameState(client: ReplicationClient, expected: SessionSnapshot, context = ''): void {
  if (!client.store.equals(expected)) {
    // deepEqual on the canonical forms gives a readable diff.
    assert.deepEqual(canonicalSnapshot(client.store.snapshot()), canonicalSnapshot(expected), context);
  }
}

/** A TCP server speaking raw frames, to play a misbehaving primary. */
async function fakePrimary(onConnection: (socket: Socket) => void | Promise<void>): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    // A standby that hung up before the link handshake ended: nothing to play.
    Promise.resolve(onConnection(socket)).catch(() => socket.destroy());
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

type AnyMessage = PrimaryMessage | StandbyMessage | Record<string, unknown>;

async function rawConnect(port: number): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1' });
  socket.on('error', () => {});
  cleanups.push(() => socket.destroy());
  await once(socket, 'connect');
  return socket;
}

describe('replication over TCP', () => {
  it('replicates the snapshot and 500 random deltas: the standby equals the primary after every acked frame', async () => {
    const { state, generator } = seededState(11, 30);
    const { server, port } = await startServer(state);
    const synced = waitFor(server, 'standby-synced');
    const client = startClient(port, { standbyId: 'sb-500' });
    const [syncInfo] = await waitFor(client, 'synced');
    assert.equal(syncInfo.seq, 2); // hello = 1, snapshot = 2
    assertSameState(client, state.snapshot(), 'after the snapshot');
    const [serverSync] = await synced;
    assert.equal(serverSync.standbyId, 'sb-500');

    const ops = new Map<string, number>();
    for (let i = 0; i < 500; i++) {
      const delta = generator.next();
      ops.set(delta.op, (ops.get(delta.op) ?? 0) + 1);
      const applied = waitFor(client, 'checkpoint');
      state.apply(delta);
      const [seq] = await applied;
      assert.equal(seq, 3 + i);
      assertSameState(client, state.snapshot(), `after delta ${i} (${delta.op})`);
    }
    for (const op of ['room-created', 'room-closed', 'participant-joined', 'participant-updated', 'participant-left']) {
      assert.ok((ops.get(op) ?? 0) > 0, `the random sequence exercised ${op}`);
    }
    if (server.stats().lagFrames > 0) await waitFor(server, 'acked', { filter: (a) => a.seq === 502 });
    const stats = server.stats();
    assert.equal(stats.connected, true);
    assert.equal(stats.standby, 'synced');
    assert.equal(stats.lastSentSeq, 502);
    assert.equal(stats.lastAckedSeq, 502);
    assert.equal(stats.lagFrames, 0);
    assert.ok(stats.bytesSent > 0 && stats.lastAckRttMs !== null);
    assert.equal(client.state, 'synced');
    // The primary's heartbeats still flow on the stream.
    await waitFor(client.link!, 'heartbeat');
  });

  it('batches the deltas of one tick into one frame', async () => {
    const { state, generator } = seededState(12, 10);
    const { server, port } = await startServer(state);
    const client = startClient(port);
    await waitFor(client, 'synced');
    const before = server.stats().lastSentSeq;
    const applied = waitFor(client, 'checkpoint');
    for (let i = 0; i < 25; i++) state.apply(generator.next());
    const [seq] = await applied;
    assert.equal(seq, before + 1);
    assert.equal(server.stats().lastSentSeq, before + 1);
    assertSameState(client, state.snapshot());
  });

  it('transfers the state to a standby that connects while changes are flowing', async () => {
    const { state, generator } = seededState(13, 50);
    const { server, port } = await startServer(state);
    let applied = 0;
    let running = true;
    // Changes keep coming, one to three per macrotask, before, during and after the state transfer.
    const churn = (): void => {
      if (!running) return;
      const n = 1 + (applied % 3);
      for (let i = 0; i < n; i++, applied++) state.apply(generator.next());
      setImmediate(churn);
    };
    churn();
    cleanups.push(() => (running = false));
    await new Promise((r) => setImmediate(r));
    const client = startClient(port);
    await waitFor(client, 'synced');
    const atSync = applied;
    assert.ok(atSync > 0);
    while (applied < atSync + 600) await new Promise((r) => setImmediate(r));
    running = false;
    const last = server.stats().lastSentSeq;
    if (client.store.seq < last) await waitFor(client, 'checkpoint', { filter: (seq) => seq >= last });
    assertSameState(client, state.snapshot(), 'after the churn stopped');
    assert.ok(last > 10, `many delta frames flowed (${last})`);
  });

  it('transfers a multi-megabyte snapshot across many TCP chunks', async () => {
    const state = new SessionState();
    state.apply({ op: 'room-created', room: { name: 'big', createdAt: 1, participants: [] } });
    const sdp = 'a=candidate:1 1 udp 2122260223 10.0.0.1 5000 typ host\r\n'.repeat(120);
    for (let i = 0; i < 400; i++) {
      state.apply({
        op: 'participant-joined',
        participant: { id: `p${i}`, room: 'big', name: `n${i}`, audioMuted: false, videoMuted: false, joinedAt: i, resumeToken: `t${i}`, media: { mlines: [{ mid: '0', kind: 'audio' }], remoteSdp: sdp } },
      });
    }
    const { server, port } = await startServer(state);
    const client = startClient(port);
    await waitFor(client, 'synced');
    assert.ok(server.stats().bytesSent > 2_000_000, `snapshot of ${server.stats().bytesSent} bytes`);
    assertSameState(client, state.snapshot());
  });

  it('carries snapshot extras, blobs and binary frames, and output commit waits for the ack', async () => {
    const { state } = seededState(14, 5);
    const { server, port } = await startServer(state);
    const remove = server.addSnapshotExtra(() => ({ transport: { conns: 2 } }));
    server.addSnapshotExtra(() => {
      throw new Error('a broken provider');
    });
    server.addSnapshotExtra(() => ({ media: ['a'] }));
    const client = startClient(port);
    await waitFor(client, 'synced');
    assert.deepEqual(client.store.extra, { transport: { conns: 2 }, media: ['a'] });
    remove();

    const blob = waitFor(client, 'blob');
    await server.sendBlobAndWaitAck('output-log', { conn: 'c1', offset: 10, text: 'hé' });
    const [kind, data] = await blob;
    assert.equal(kind, 'output-log');
    assert.deepEqual(data, { conn: 'c1', offset: 10, text: 'hé' });
    assert.deepEqual(client.store.blob('output-log')?.data, { conn: 'c1', offset: 10, text: 'hé' });

    const binary = waitFor(client, 'binary');
    const seq = server.sendBinary(Buffer.from([0, 1, 2, 255]));
    const [bytes, binSeq] = await binary;
    assert.deepEqual([...bytes], [0, 1, 2, 255]);
    assert.equal(binSeq, seq);
  });

  it('keeps ordering: a blob sent after a state change arrives after that change', async () => {
    const { state, generator } = seededState(15, 5);
    const { server, port } = await startServer(state);
    const client = startClient(port);
    await waitFor(client, 'synced');
    const delta = generator.next();
    state.apply(delta);
    const blob = waitFor(client, 'blob');
    server.sendBlob('marker', { after: delta.op });
    await blob;
    assertSameState(client, state.snapshot(), 'the delta was applied before the blob');
  });

  it('rejects pending acks with ReplicationClosedError when the standby goes', async () => {
    const { state } = seededState(16, 5);
    const { server, port } = await startServer(state);
    // A standby that says hello and never acknowledges anything.
    const socket = await rawConnect(port);
    const connected = waitFor(server, 'standby-connected');
    const peer = await RawReplicationPeer.start(socket, SECRET);
    socket.write(peer.json({ type: 'hello', standbyId: 'mute', pid: 1 }, 1, 0));
    await connected;
    const pending = server.sendBlobAndWaitAck('output-log', { n: 1 });
    const lost = waitFor(server, 'standby-lost');
    socket.destroy();
    await assert.rejects(pending, ReplicationClosedError);
    const [info] = await lost;
    assert.equal(info.reason, 'died');
    await assert.rejects(server.sendBlobAndWaitAck('output-log', { n: 2 }), ReplicationClosedError);
  });

  it('refuses a standby with the wrong secret and applies nothing', async () => {
    const { state } = seededState(17, 20);
    const { server, port } = await startServer(state);
    const refused = waitFor(server, 'standby-refused');
    const client = startClient(port, { secret: 'not-the-secret' });
    const [info] = await refused;
    assert.ok(info.error instanceof ReplicationAuthError, String(info.error));
    assert.equal(server.stats().connected, false);
    assert.equal(client.store.hasSnapshot, false);
    assert.equal(client.store.state.rooms().length, 0);
    assert.equal(client.primary, null);
    assert.equal(client.state, 'connecting');
  });

  it('refuses frames from a primary with the wrong secret (standby side)', async () => {
    const port = await fakePrimary(async (socket) => {
      const peer = await RawReplicationPeer.start(socket, 'wrong-secret');
      socket.write(peer.json({ type: 'hello', primaryId: 'impostor', epoch: 1, pid: 1, service: {} }, 1, 1));
      socket.write(peer.json({ type: 'snapshot', seq: 2, state: { rooms: [], participants: [] }, extra: {} }, 2, 1));
    });
    const client = startClient(port);
    const [error] = await waitFor(client, 'rejected');
    assert.ok(error instanceof ReplicationAuthError);
    assert.equal(client.primary, null);
    assert.equal(client.store.hasSnapshot, false);
    assert.equal(client.state, 'connecting');
  });

  it('refuses a primary of a stale epoch', async () => {
    const { state } = seededState(18, 20);
    const { port } = await startServer(state, { epoch: 3 });
    const client = startClient(port, { epoch: 5 });
    const [error] = await waitFor(client, 'rejected');
    assert.ok(error instanceof StaleEpochError, String(error));
    assert.equal(error.code, 'REPLICATION_STALE_EPOCH');
    assert.equal(client.store.hasSnapshot, false);
    assert.equal(client.primary, null);
  });

  it('refuses a frame whose epoch goes backwards mid-stream, after applying what came before', async () => {
    const port = await fakePrimary(async (socket) => {
      const peer = await RawReplicationPeer.start(socket, SECRET);
      socket.write(peer.json({ type: 'hello', primaryId: 'p', epoch: 4, pid: 1, service: {} }, 1, 4));
      socket.write(peer.json({ type: 'snapshot', seq: 2, state: { rooms: [], participants: [] }, extra: {} }, 2, 4));
      const room = { name: 'r', createdAt: 1, participants: [] };
      socket.write(peer.json({ type: 'delta', deltas: [{ op: 'room-created', room }] }, 3, 3));
    });
    const client = startClient(port);
    const [error] = await waitFor(client, 'rejected');
    assert.ok(error instanceof StaleEpochError);
    assert.equal(client.store.seq, 2);
    assert.equal(client.store.state.rooms().length, 0, 'the stale delta was not applied');
    assert.equal(client.epoch, 4);
  });

  it('follows an epoch raised with setEpoch()', async () => {
    const { state, generator } = seededState(19, 5);
    const { server, port } = await startServer(state, { epoch: 2 });
    const client = startClient(port);
    await waitFor(client, 'synced');
    server.setEpoch(3);
    assert.throws(() => server.setEpoch(1), StaleEpochError);
    const applied = waitFor(client, 'checkpoint');
    state.apply(generator.next());
    await applied;
    assert.equal(client.epoch, 3);
    assert.equal(client.store.epoch, 3);
    assertSameState(client, state.snapshot());
  });

  it('refuses malformed input from a would-be standby and stays up', async () => {
    const { state } = seededState(20, 20);
    const { server, port } = await startServer(state);

    // What a would-be standby sends once the link handshake is done (a Buffer: no handshake, these raw bytes).
    const cases: Array<[string, ((peer: RawReplicationPeer) => Buffer) | Buffer, new (...args: never[]) => Error]> = [
      ['invalid hello', (peer) => peer.json({ type: 'hello', standbyId: 42 }, 1, 0), ReplicationMalformedError],
      ['not JSON', (peer) => peer.json('{"type":"hel', 1, 0), ReplicationMalformedError],
      ['not a frame', Buffer.from('GET / HTTP/1.1\r\nHost: primary\r\n\r\n'), ReplicationMalformedError],
      ['ack before hello', (peer) => peer.json({ type: 'ack', seq: 0 }, 0, 0), ReplicationMalformedError],
      ['oversized', () => Buffer.from('48520201' + '00000000' + '0000000000000001' + 'ffffffff', 'hex'), ReplicationMalformedError],
      ['another secret', (peer) => peer.json({ type: 'hello', standbyId: 's', pid: 1 }, 1, 0), ReplicationAuthError],
    ];
    for (const [name, bytes, errorClass] of cases) {
      const refused = waitFor(server, 'standby-refused');
      const socket = await rawConnect(port);
      if (Buffer.isBuffer(bytes)) {
        socket.write(bytes);
        // Reads (and drops) the primary's link hello, so the end of the stream is seen.
        socket.resume();
      } else socket.write(bytes(await RawReplicationPeer.start(socket, name === 'another secret' ? 'another-secret-entirely' : SECRET)));
      const [info] = await refused;
      if (name === 'ack before hello') {
        // A valid frame at the wrong protocol step.
        assert.match(info.reason, /expected hello/);
      } else {
        assert.ok(info.error instanceof errorClass, `${name}: ${String(info.error)} / ${info.reason}`);
      }
      await once(socket, 'close');
    }
    assert.equal(server.state, 'listening');
    assert.equal(server.stats().standbysRefused, cases.length);

    const client = startClient(port);
    await waitFor(client, 'synced');
    assertSameState(client, state.snapshot());
  });

  it('refuses a malformed payload from the primary and applies nothing of it', async () => {
    const port = await fakePrimary(async (socket) => {
      const peer = await RawReplicationPeer.start(socket, SECRET);
      socket.write(peer.json({ type: 'hello', primaryId: 'p', epoch: 1, pid: 1, service: {} }, 1, 1));
      socket.write(peer.json({ type: 'snapshot', seq: 2, state: { rooms: [{ name: 'r' }], participants: 'x' }, extra: {} }, 2, 1));
    });
    const client = startClient(port);
    const [error] = await waitFor(client, 'rejected');
    assert.ok(error instanceof ReplicationMalformedError);
    assert.equal(client.store.hasSnapshot, false);
  });

  it('refuses a second standby while the first is alive, accepts it once the first left', async () => {
    const { state } = seededState(21, 20);
    const { server, port } = await startServer(state);
    const first = startClient(port, { standbyId: 'first' });
    await waitFor(first, 'synced');

    const refused = waitFor(server, 'standby-refused');
    const second = startClient(port, { standbyId: 'second' });
    const [rejected] = await waitFor(second, 'rejected');
    assert.ok(rejected instanceof ReplicationClosedError);
    assert.match(rejected.message, /refused by the primary.*first/);
    const [info] = await refused;
    assert.match(info.reason, /already connected/);
    assert.equal(server.stats().standbyId, 'first');
    assert.equal(second.store.hasSnapshot, false);
    assert.equal(second.primary, null);
    assert.equal(second.state, 'connecting');

    const lost = waitFor(server, 'standby-lost');
    first.close('making room');
    const [lostInfo] = await lost;
    assert.equal(lostInfo.reason, 'shutdown');
    await waitFor(second, 'synced');
    assert.equal(server.stats().standbyId, 'second');
    assertSameState(second, state.snapshot());
  });

  it('a deliberate close of the primary is reported as deliberate, and nothing follows', async () => {
    const { state } = seededState(22, 20);
    const { server, port } = await startServer(state);
    const client = startClient(port);
    await waitFor(client, 'synced');
    const losses: Array<{ deliberate: boolean; reason: string }> = [];
    client.on('lost', (info) => losses.push(info));
    const lost = waitFor(client, 'lost');
    const standbyLost = waitFor(server, 'standby-lost');
    await server.close('maintenance');
    await server.close('idempotent');
    const [info] = await lost;
    assert.equal(info.deliberate, true);
    assert.equal(info.reason, 'maintenance');
    assert.equal((await standbyLost)[0].reason, 'shutdown');
    // Absence of anything more: wait five missed-beats windows (10 ms x 3).
    await new Promise((r) => setTimeout(r, 150));
    assert.deepEqual(losses, [{ deliberate: true, reason: 'maintenance' }]);
    assert.equal(client.state, 'lost');
  });

  it('a primary process stopped with SIGTERM shuts down deliberately: a deliberate loss, nothing more', async () => {
    const primary = new FixtureProcess('scripts/fixtures/replication-primary.ts', { REPL_SECRET: SECRET });
    cleanups.push(() => primary.kill());
    const { port } = await primary.next('listening');
    const client = startClient(Number(port));
    await waitFor(client, 'synced');
    const losses: Array<{ deliberate: boolean; reason: string }> = [];
    client.on('lost', (info) => losses.push(info));
    const lost = waitFor(client, 'lost');
    primary.child.kill('SIGTERM');
    const [info] = await lost;
    assert.equal(info.deliberate, true);
    assert.equal((await primary.exited).code, 0);
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(losses.length, 1);
    assert.equal(client.state, 'lost');
  });

  it('a primary process killed with SIGKILL: the end of the stream is reported at once (a suspicion), and the checkpoint holds its last state', async () => {
    const primary = new FixtureProcess('scripts/fixtures/replication-primary.ts', { REPL_SECRET: SECRET, REPL_SEED: '23' });
    cleanups.push(() => primary.kill());
    const { port } = await primary.next('listening');
    const client = startClient(Number(port));
    await waitFor(client, 'synced');

    primary.send({ cmd: 'churn', count: 300 });
    const { lastSentSeq } = await primary.next('churned');
    if (client.store.seq < Number(lastSentSeq)) await waitFor(client, 'checkpoint', { filter: (s) => s >= Number(lastSentSeq) });
    primary.send({ cmd: 'snapshot' });
    const { state: primaryState } = await primary.next('snapshot');
    assertSameState(client, primaryState as SessionSnapshot, 'checkpoint before the kill');

    const lost = waitFor(client, 'lost', { timeoutMs: 2000 });
    const killedAt = preciseNow();
    process.kill(primary.pid, 'SIGKILL');
    const [info] = await lost;
    const lostMs = preciseNow() - killedAt;
    console.log(`SIGKILL of the primary: stream lost after ${lostMs.toFixed(2)} ms (${info.reason})`);
    assert.equal(info.deliberate, false);
    assert.ok(lostMs < 2000);
    assert.equal(client.state, 'lost');
    assertSameState(client, primaryState as SessionSnapshot, 'checkpoint after the kill');
    assert.equal((await primary.exited).signal, 'SIGKILL');
  });

  it('a primary process stopped with SIGSTOP: the stream judges nothing (the heartbeat thread does), and flows again after SIGCONT', async () => {
    const primary = new FixtureProcess('scripts/fixtures/replication-primary.ts', { REPL_SECRET: SECRET });
    cleanups.push(() => primary.kill());
    const { port } = await primary.next('listening');
    const client = startClient(Number(port));
    await waitFor(client, 'synced');
    let lost = false;
    client.on('lost', () => (lost = true));
    process.kill(primary.pid, 'SIGSTOP');
    // Ten missed-beats windows of silence.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(lost, false);
    assert.equal(client.state, 'synced');
    process.kill(primary.pid, 'SIGCONT');
    await waitFor(client.link!, 'heartbeat');
    primary.send({ cmd: 'churn', count: 5 });
    const { lastSentSeq } = await primary.next('churned');
    if (client.store.seq < Number(lastSentSeq)) await waitFor(client, 'checkpoint', { filter: (s) => s >= Number(lastSentSeq) });
    assert.equal(client.state, 'synced');
  });

  it('a standby killed with SIGKILL leaves the primary running, unprotected until a new standby syncs', async () => {
    const { state, generator } = seededState(24, 30);
    const { server, port } = await startServer(state);
    const standby = new FixtureProcess('test/fixtures/replication-standby.ts', { REPL_SECRET: SECRET, REPL_PORT: String(port), REPL_STANDBY_ID: 'doomed' });
    cleanups.push(() => standby.kill());
    const synced = waitFor(server, 'standby-synced', { timeoutMs: 10_000 });
    await standby.next('synced');
    await synced;
    assert.equal(server.stats().connected, true);

    const lost = waitFor(server, 'standby-lost');
    await standby.kill('SIGKILL');
    const [info] = await lost;
    assert.equal(info.reason, 'died');
    assert.equal(info.standbyId, 'doomed');
    assert.equal(server.stats().connected, false);

    // The primary carries on without a standby.
    for (let i = 0; i < 50; i++) state.apply(generator.next());
    await new Promise((r) => setImmediate(r));
    assert.equal(server.stats().connected, false);
    assert.equal(server.state, 'listening');

    const resynced = waitFor(server, 'standby-synced');
    const replacement = startClient(port, { standbyId: 'replacement' });
    await resynced;
    assert.equal(server.stats().connected, true);
    assert.equal(server.stats().standby, 'synced');
    assert.equal(server.stats().standbyId, 'replacement');
    assertSameState(replacement, state.snapshot());
  });
});
