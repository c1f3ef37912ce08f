/**
 * Output commit and the takeover acceptor, end to end: a socket.io service behind a
 * TransportAcceptor and an OutputCommitter (this process), a real standby process
 * (ReplicationClient + TransportStore) and a stock socket.io-client whose TCP socket is
 * captured byte for byte. Checks: the standby's output log equals what the client received;
 * with acks held 50 ms no byte reaches the client before the standby acknowledged it; the
 * recorded ISNs are the ones the client's own kernel has (root); a standby that syncs
 * mid-connection gets the record and the log from where it joined; a deliberate close is
 * committed and leaves marked (root); writes never hang when the standby dies mid-commit;
 * without CAP_NET_ADMIN every connection is served in reconnect mode.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import http, { type ClientRequestArgs } from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { io as ioClient, type Socket as ClientSocket } from 'socket.io-client';
import { computeClientIsn, computeServerIsn, getMark, nativeAddonAvailable, readSequenceNumbers, socketFd } from '../../native/src/index.ts';
import { preciseNow } from '../../mcu/src/core/clock.ts';
import { DEFAULT_CLOSE_MARK } from '../../mcu/src/takeover/transport/transport-acceptor.ts';
import type { TransportRecord } from '../../mcu/src/takeover/transport/transport-record.ts';
import { SnapshotExtraKey, encodeOutputChunk, type TransportBlob } from '../../mcu/src/wire/index.ts';
import { TransportStore, type TransportStoreSnapshotEntry } from '../../mcu/src/takeover/transport/transport-store.ts';
import { FixtureProcess, type FixtureMessage } from '../../scripts/common/child-process.ts';
import { startOutputCommitService, type OutputCommitService } from '../../scripts/fixtures/output-commit-service.ts';
import { until, waitFor } from '../../scripts/common/wait-for.ts';
import { cleanupsAfterEach } from '../helpers/cleanups.ts';

const SECRET = 'output-commit-test-secret-91ab';
const ACK_DELAY_MS = 50;
const ROOT = process.getuid?.() === 0;

const cleanups = cleanupsAfterEach();

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** An http.Agent that keeps the client's TCP socket: every byte received (with its arrival time) and the ISNs. */
class CapturingAgent extends http.Agent {
  socket: net.Socket | null = null;
  readonly received: Array<{ at: number; offset: number; data: Buffer }> = [];
  bytes = 0;
  /** The client's own ISN and the server's, read from the client's kernel at connect (root). */
  isns: { client: number; server: number } | null = null;
  isnError: string | null = null;
  ended = false;

  constructor() {
    super({ keepAlive: false });
  }

  override createConnection(options: ClientRequestArgs): net.Socket {
    const socket = net.connect(options as net.NetConnectOpts);
    this.socket = socket;
    // Registered before http writes the request: nothing is written or acknowledged yet.
    socket.once('connect', () => {
      try {
        const s = readSequenceNumbers(socketFd(socket));
        this.isns = { client: computeServerIsn(s), server: computeClientIsn(s) };
      } catch (err) {
        this.isnError = err instanceof Error ? err.message : String(err);
      }
    });
    // Recorded where Node's stream layer receives them from the kernel: 'data' events would show
    // bytes twice, as ws unshifts the unparsed rest of the 101 response's read back into the socket.
    const push = socket.push.bind(socket);
    socket.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
      if (Buffer.isBuffer(chunk) && chunk.length > 0) {
        this.received.push({ at: preciseNow(), offset: this.bytes, data: Buffer.from(chunk) });
        this.bytes += chunk.length;
      }
      return push(chunk, encoding);
    };
    socket.once('end', () => (this.ended = true));
    return socket;
  }

  all(): Buffer {
    return Buffer.concat(this.received.map((r) => r.data));
  }

  /** When the byte at `offset` arrived. */
  arrivalOf(offset: number): number {
    for (const r of this.received) if (offset < r.offset + r.data.length) return r.at;
    throw new Error(`byte ${offset} never arrived (received ${this.bytes})`);
  }
}

interface Client {
  socket: ClientSocket;
  agent: CapturingAgent;
  disconnects: string[];
}

async function connectClient(port: number): Promise<Client> {
  const agent = new CapturingAgent();
  const socket = ioClient(`http://127.0.0.1:${port}`, {
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
    agent: agent as unknown as string,
  });
  const disconnects: string[] = [];
  socket.on('disconnect', (reason) => disconnects.push(reason));
  cleanups.push(() => {
    socket.disconnect();
    agent.socket?.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', reject);
  });
  return { socket, agent, disconnects };
}

async function startService(options: { reportConsumedInput?: boolean; standbyTimeoutMs?: number } = {}): Promise<OutputCommitService> {
  const service = await startOutputCommitService({ mode: 'takeover', replication: true, secret: SECRET, ...options });
  cleanups.push(() => service.close());
  return service;
}

async function startStandby(service: OutputCommitService, ackDelayMs: number): Promise<FixtureProcess> {
  const standby = new FixtureProcess('scripts/fixtures/output-commit-standby.ts', {
    REPL_PORT: String(service.replicationPort),
    REPL_SECRET: SECRET,
    OC_ACK_DELAY_MS: String(ackDelayMs),
    NODE_ENV: 'test',
  });
  cleanups.push(() => standby.kill());
  await Promise.all([waitFor(service.replication!, 'standby-synced', { timeoutMs: 15_000 }), standby.next('synced', 15_000)]);
  return standby;
}

interface StandbyView {
  transports: Record<string, TransportStoreSnapshotEntry>;
  chunks: Array<{ seq: number; connId: string; offset: number; length: number; receivedAt: number }>;
  ackSentAt: Record<string, number>;
}

async function standbyView(standby: FixtureProcess): Promise<StandbyView> {
  standby.send({ type: 'snapshot' });
  const m: FixtureMessage = await standby.next('snapshot');
  return m as unknown as StandbyView;
}

/** The only connection the service accepted. */
function onlyConnection(service: OutputCommitService): { record: TransportRecord; socket: net.Socket; mode: string } {
  assert.equal(service.accepted.size, 1, 'exactly one connection accepted');
  return [...service.accepted.values()][0]!;
}

/** Waits until nothing waits for a commit and the client has every byte the server wrote. */
async function quiescent(service: OutputCommitService, client: Client, serverSocket: net.Socket): Promise<void> {
  await until('output to settle', () => service.committer!.stats().inFlight === 0 && client.agent.bytes === (serverSocket.bytesWritten ?? -1), { timeoutMs: 10_000 }).catch((err: Error) => {
    throw new Error(`${err.message}: in flight ${service.committer!.stats().inFlight}, client has ${client.agent.bytes} bytes, server wrote ${serverSocket.bytesWritten}`);
  });
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex').slice(0, 16);

describe('output commit', { timeout: 60_000 }, () => {
  it('commits every byte before the kernel gets it: the standby log equals what the client received', async (t) => {
    const service = await startService({ reportConsumedInput: true });
    const standby = await startStandby(service, ACK_DELAY_MS);

    const t0 = preciseNow();
    const client = await connectClient(service.servicePort);
    const connectMs = preciseNow() - t0;
    const conn = onlyConnection(service);
    // 101 response, engine.io open packet, socket.io CONNECT ack: at least two commits in a row.
    assert.ok(connectMs >= 2 * ACK_DELAY_MS - 2, `connect took ${connectMs.toFixed(1)} ms with ${ACK_DELAY_MS} ms acks`);

    const rtts: number[] = [];
    for (let i = 0; i < 10; i++) {
      const start = preciseNow();
      const reply = (await client.socket.timeout(5000).emitWithAck('echo', { i, text: `hello ${i} ✓` })) as { echo: { i: number } };
      rtts.push(preciseNow() - start);
      assert.equal(reply.echo.i, i);
    }
    assert.ok(Math.min(...rtts) >= ACK_DELAY_MS - 2, `every reply waited for its commit: min RTT ${Math.min(...rtts).toFixed(1)} ms`);

    // Many writes while a commit is in flight: coalesced into few frames, order kept.
    const ticks: number[] = [];
    client.socket.on('tick', (m: { i: number }) => ticks.push(m.i));
    const burst = (await client.socket.timeout(10_000).emitWithAck('burst', { count: 200, size: 300 })) as { sent: number };
    assert.equal(burst.sent, 200);
    await until('all ticks', () => ticks.length === 200);
    assert.deepEqual(ticks, [...Array(200).keys()]);

    await quiescent(service, client, conn.socket);
    const received = client.agent.all();
    const stats = service.committer!.stats();
    let view = await standbyView(standby);
    const stored = view.transports[conn.record.connId];
    assert.ok(stored, 'the standby has the connection');
    const log = Buffer.from(stored.log ?? '', 'base64');
    assert.equal(stored.logStart, 0);
    assert.equal(log.length, received.length, 'log length = bytes received by the client');
    assert.equal(sha(log), sha(received));
    assert.ok(log.equals(received), 'byte for byte');
    assert.ok(stored.safe);
    assert.equal(stats.unprotectedWrites, 0);
    assert.ok(stats.commits < 200 + 20, `writes coalesced: ${stats.commits} commits for ${received.length} bytes`);
    t.diagnostic(`${received.length} bytes in ${stats.commits} commits; commit latency mean ${stats.latency.meanMs?.toFixed(1)} ms p99 ${stats.latency.p99Ms?.toFixed(1)} ms`);

    // No byte reached the client before the standby had sent the ack of its frame.
    const mine = view.chunks.filter((c) => c.connId === conn.record.connId);
    assert.ok(mine.length > 3);
    for (const c of mine) {
      const arrived = client.agent.arrivalOf(c.offset);
      const acked = view.ackSentAt[String(c.seq)];
      assert.ok(acked !== undefined, `ack of seq ${c.seq} was sent`);
      assert.ok(arrived >= acked - 1, `bytes at ${c.offset} arrived ${(acked - arrived).toFixed(2)} ms before their ack left`);
      assert.ok(arrived - c.receivedAt >= ACK_DELAY_MS - 2, `bytes at ${c.offset} arrived ${(arrived - c.receivedAt).toFixed(1)} ms after the standby got them`);
    }

    // The consumed input reported after the last echo comes into force with the output it produced.
    const expectedInput = service.committer!.connection(conn.record.connId)!.record.consumedInput;
    assert.ok(expectedInput > 0);
    await until('consumed input on the standby', async () => {
      view = await standbyView(standby);
      return view.transports[conn.record.connId]?.record.consumedInput === expectedInput;
    });

    // ISNs: the client's kernel agrees with the record (needs root and the addon).
    if (conn.mode !== 'takeover' || !client.agent.isns) {
      t.diagnostic(`ISN check skipped: mode ${conn.mode}, client read: ${client.agent.isnError ?? 'none'}`);
      return;
    }
    assert.equal(conn.record.clientIsn, client.agent.isns.client, 'client ISN');
    assert.equal(conn.record.serverIsn, client.agent.isns.server, 'server ISN');
    assert.equal(conn.record.remote.port, client.agent.socket!.localPort);
    assert.equal(stored.record.clientIsn, client.agent.isns.client);
    assert.equal(stored.record.serverIsn, client.agent.isns.server);
    assert.ok(conn.record.mss > 0 && conn.record.timestamps && conn.record.sack);
  });

  it('a connection that needs session records writes nothing before a record covering it is acknowledged', async (t) => {
    const service = await startService();
    await startStandby(service, 0);
    const client = await connectClient(service.servicePort);
    const conn = onlyConnection(service);
    const committer = service.committer!;
    const replication = service.replication!;
    committer.requireSessionRecord(conn.record.connId, true);

    // The reply is committed and acknowledged, then waits for a record covering it.
    let repliedAt: number | null = null;
    const reply = client.socket
      .timeout(5000)
      .emitWithAck('echo', { i: 1 })
      .then(() => (repliedAt = preciseNow()));
    await until('the reply parked', () => committer.stats().recordWaits === 1);
    assert.equal(repliedAt, null, 'no reply before a covering record');
    const covering = committer.connection(conn.record.connId)!.appended;
    const seq = replication.sendBlob('session', { connId: conn.record.connId, note: 'a stand-in record' });
    assert.ok(seq !== null);
    const recordSentAt = preciseNow();
    committer.noteSessionRecord(conn.record.connId, covering, seq);
    await reply;
    assert.ok(repliedAt !== null && repliedAt >= recordSentAt, 'the reply left after its record');

    // A record that does not cover the next reply does not release it; the wait is bounded.
    const before = committer.stats().releasedUncovered;
    const late = client.socket.timeout(5000).emitWithAck('echo', { i: 2 });
    await until('the second reply parked', () => committer.stats().recordWaits === 2);
    const short = replication.sendBlob('session', { connId: conn.record.connId, note: 'behind the output' });
    committer.noteSessionRecord(conn.record.connId, covering, short!);
    await late;
    assert.equal(committer.stats().releasedUncovered, before + 1, 'released uncovered after recordWaitMs, and counted');
    t.diagnostic(`record waits ${committer.stats().recordWaits}, released uncovered ${committer.stats().releasedUncovered}`);
  });

  it('a standby that syncs mid-connection gets the record and the log from where it joined', async () => {
    const service = await startService({ reportConsumedInput: true });
    const client = await connectClient(service.servicePort);
    const conn = onlyConnection(service);
    for (let i = 0; i < 5; i++) await client.socket.timeout(5000).emitWithAck('echo', { i });
    await quiescent(service, client, conn.socket);
    const before = service.committer!.stats();
    assert.equal(before.commits, 0);
    assert.ok(before.unprotectedWrites > 0);
    const bytesBefore = client.agent.bytes;

    const standby = await startStandby(service, 0);
    for (let i = 5; i < 10; i++) await client.socket.timeout(5000).emitWithAck('echo', { i });
    await client.socket.timeout(5000).emitWithAck('burst', { count: 20, size: 10 });
    await quiescent(service, client, conn.socket);

    const view = await standbyView(standby);
    const stored = view.transports[conn.record.connId];
    assert.ok(stored, 'the snapshot carried the record');
    assert.equal(stored.logStart, bytesBefore, 'the log starts where the standby joined');
    assert.equal(stored.record.clientIsn, conn.record.clientIsn);
    const log = Buffer.from(stored.log ?? '', 'base64');
    assert.ok(log.equals(client.agent.all().subarray(bytesBefore)), 'log = client bytes from logStart');
    assert.equal(stored.logEnd, client.agent.bytes);
    assert.ok(service.committer!.stats().commits > 0);
  });

  it('writes never hang when the standby dies mid-commit: they go out unprotected, in order', async () => {
    const service = await startService({ standbyTimeoutMs: 500 });
    const standby = await startStandby(service, 100);
    const client = await connectClient(service.servicePort);

    const lost = waitFor(service.replication!, 'standby-lost', { timeoutMs: 5000 });
    const replies = Array.from({ length: 20 }, (_, i) => client.socket.timeout(5000).emitWithAck('echo', { i }) as Promise<{ echo: { i: number } }>);
    await sleep(30);
    assert.ok(service.committer!.stats().inFlight > 0, 'commits are waiting for the standby');
    await standby.kill('SIGKILL');
    const [info] = await lost;
    assert.equal(info.reason, 'died');
    const answered = await Promise.all(replies);
    assert.deepEqual(
      answered.map((r) => r.echo.i),
      [...Array(20).keys()],
    );
    for (let i = 20; i < 30; i++) {
      const reply = (await client.socket.timeout(2000).emitWithAck('echo', { i })) as { echo: { i: number } };
      assert.equal(reply.echo.i, i);
    }
    const stats = service.committer!.stats();
    assert.ok(stats.releasedByStandbyLoss >= 1, `released ${stats.releasedByStandbyLoss}`);
    assert.ok(stats.unprotectedWrites > 0);
    assert.equal(stats.inFlight, 0);
    assert.equal(service.committer!.protected, false);
    assert.deepEqual(client.disconnects, []);
  });

  it('a deliberate close is committed to the standby, then leaves with the mark', async (t) => {
    const service = await startService();
    const standby = await startStandby(service, 0);
    const client = await connectClient(service.servicePort);
    const conn = onlyConnection(service);
    await client.socket.timeout(5000).emitWithAck('echo', { hello: true });
    assert.ok((await standbyView(standby)).transports[conn.record.connId]);

    let markAtClose: number | string | null = null;
    const closing = waitFor(service.acceptor!, 'closing', { timeoutMs: 5000 });
    service.acceptor!.on('closing', () => {
      // The fd is still open here: read the mark the FIN will carry.
      try {
        markAtClose = getMark(socketFd(conn.socket));
      } catch (err) {
        markAtClose = err instanceof Error ? err.message : String(err);
      }
    });
    const closed = waitFor(service.acceptor!, 'closed', { timeoutMs: 5000 });
    client.socket.emit('bye');
    const [connId, info] = await closing;
    assert.equal(connId, conn.record.connId);
    const [, closedInfo] = await closed;
    await until('the client to see the FIN', () => client.agent.ended);
    assert.ok(service.committer!.stats().closesCommitted >= 1, 'the close waited for the standby');
    await until('the standby to drop the connection', async () => !(await standbyView(standby)).transports[conn.record.connId]);
    assert.equal(closedInfo.closedBy, info.how);
    t.diagnostic(`closed by ${info.how}`);

    if (conn.mode !== 'takeover') {
      t.diagnostic(`mark check skipped: connection in ${conn.mode} mode (${service.acceptor!.stats().takeoverUnavailable})`);
      return;
    }
    assert.equal(info.mark, DEFAULT_CLOSE_MARK);
    assert.equal(markAtClose, DEFAULT_CLOSE_MARK, 'SO_MARK set on the socket before the close');
    assert.ok(closedInfo.marked);
  });

  it('a write followed at once by destroy() still reaches the client (engine.io refusing an upgrade)', async (t) => {
    const service = await startService();
    await startStandby(service, ACK_DELAY_MS);
    const socket = net.connect(service.servicePort, '127.0.0.1');
    cleanups.push(() => socket.destroy());
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const closing = waitFor(service.acceptor!, 'closing', { timeoutMs: 5000 });
    // An unknown sid: engine.io writes a 400 and destroys the socket in the same tick.
    socket.write(
      'GET /socket.io/?EIO=4&transport=websocket&sid=no-such-session HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    const [, info] = await closing;
    await ended;
    const response = Buffer.concat(chunks).toString('latin1');
    assert.match(response, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(response, /Session ID unknown/);
    assert.equal(info.how, 'destroy');
    t.diagnostic(`${response.length} bytes before the close`);
  });

  it('without CAP_NET_ADMIN every connection is served in reconnect mode', async (t) => {
    const script = fileURLToPath(new URL('../../scripts/fixtures/output-commit-primary.ts', import.meta.url));
    const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
    if (ROOT && !setpriv) {
      t.skip('root without setpriv: cannot drop CAP_NET_ADMIN');
      return;
    }
    // Root keeps every capability in its bounding set: drop CAP_NET_ADMIN there, before exec, and
    // CAP_NET_RAW too (since 5.17 either one allows SO_MARK).
    const argv = ROOT ? [setpriv!, '--bounding-set', '-net_admin,-net_raw', process.execPath] : [process.execPath];
    const child = spawn(argv[0]!, [...argv.slice(1), '--import', 'tsx', script], {
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      env: { ...process.env, OC_MODE: 'takeover', OC_REPLICATION: '0', NODE_ENV: 'test' },
    });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr = (stderr + s).slice(-4000)));
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await new Promise((resolve) => child.once('exit', resolve));
      }
    });
    const next = (type: string): Promise<Record<string, unknown>> =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${type} from the primary\n${stderr}`)), 15_000);
        const onMessage = (m: Record<string, unknown>): void => {
          if (m.type !== type) return;
          clearTimeout(timer);
          child.off('message', onMessage);
          resolve(m);
        };
        child.on('message', onMessage);
      });
    const ready = await next('ready');
    const client = await connectClient(Number(ready.servicePort));
    const reply = (await client.socket.timeout(5000).emitWithAck('echo', { x: 1 })) as { echo: { x: number } };
    assert.equal(reply.echo.x, 1);
    client.socket.emit('bye');
    await until('the client to see the close', () => client.agent.ended);
    child.send({ type: 'stats' });
    const stats = (await next('stats')) as {
      acceptor: { takeover: number; reconnect: number; takeoverUnavailable: string | null; marked: number; markFailures: number };
      committer: { connections: number };
      modes: string[];
    };
    assert.deepEqual(stats.modes, ['reconnect']);
    assert.equal(stats.acceptor.takeover, 0);
    assert.match(stats.acceptor.takeoverUnavailable ?? '', /EPERM|unavailable/);
    assert.equal(stats.acceptor.marked, 0, 'no mark without CAP_NET_ADMIN');
    assert.equal(stats.committer.connections, 0, 'reconnect-mode connections are not committed');
    t.diagnostic(`unprivileged: ${stats.acceptor.takeoverUnavailable}`);
  });
});

describe('TransportStore', () => {
  const record = (connId: string): TransportRecord => ({
    connId,
    local: { address: '10.0.0.1', port: 3000 },
    remote: { address: '10.0.0.2', port: 40000 },
    clientIsn: 1,
    serverIsn: 2,
    mss: 1460,
    sndWscale: 7,
    rcvWscale: 7,
    sack: true,
    timestamps: true,
    consumedInput: 0,
    committedOutput: 0,
    acceptedAt: 0,
  });
  const blob = (b: TransportBlob): unknown => JSON.parse(JSON.stringify(b));
  const chunk = (connId: string, offset: number, text: string): Buffer => encodeOutputChunk({ connId, offset, data: Buffer.from(text) });

  it('keeps a contiguous log, applies consumed input only once its output is in, prunes, resumes', () => {
    const store = new TransportStore();
    store.applyBlob(blob({ op: 'accept', record: record('a'), logStart: 0 }));
    store.applyBinary(chunk('a', 0, 'hello '));
    store.applyBlob(blob({ op: 'input', updates: [{ connId: 'a', consumedInput: 50, outputAt: 12 }] }));
    assert.equal(store.get('a')!.record.consumedInput, 0, 'its output is not all in the log yet');
    store.applyBinary(chunk('a', 6, 'world!'));
    assert.equal(store.get('a')!.record.consumedInput, 50);
    assert.equal(store.outputLog('a').toString(), 'hello world!');
    store.applyBinary(chunk('a', 6, 'world!'));
    assert.equal(store.stats().duplicateChunks, 1, 'an identical resend is ignored');

    assert.equal(store.prune('a', 3), 3);
    assert.equal(store.outputLog('a').toString(), 'lo world!');
    const resume = store.resumeFrom('a', 8);
    assert.ok(resume.ok && resume.data.toString() === 'rld!');
    assert.equal(store.resumeFrom('a', 2).ok, false, 'pruned bytes cannot be resent');

    store.applyBinary(chunk('a', 20, 'late'));
    assert.equal(store.get('a')!.safe, false, 'a gap makes the connection unsafe');
    assert.match(store.get('a')!.unsafeReason ?? '', /gap/);

    store.applyBlob(blob({ op: 'close', connId: 'a', reason: 'end', committedOutput: 12 }));
    assert.equal(store.get('a'), undefined);
  });

  it('starts from a snapshot extra: log from logStart, pending input kept', () => {
    const store = new TransportStore();
    store.loadSnapshotExtra({
      [SnapshotExtraKey.Transports]: {
        version: 1,
        connections: [
          {
            record: { ...record('b'), consumedInput: 10, committedOutput: 100 },
            logStart: 100,
            pendingInput: [{ connId: 'b', consumedInput: 20, outputAt: 104 }],
          },
        ],
      },
    });
    assert.equal(store.get('b')!.record.consumedInput, 10);
    assert.equal(store.resumeFrom('b', 99).ok, false, 'bytes before logStart are not held');
    store.applyBinary(chunk('b', 100, 'abcd'));
    assert.equal(store.get('b')!.record.consumedInput, 20);
    assert.equal(store.get('b')!.logEnd, 104);
    store.applyBinary(chunk('b', 102, 'xx'));
    assert.equal(store.get('b')!.safe, false, 'a conflicting overlap makes it unsafe');
  });
});
