// The addon against the real kernel on loopback: needs Linux, the built addon,
// CAP_NET_ADMIN and CAP_NET_RAW (run as root). Skipped otherwise, with the reason.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { before, describe, it } from 'node:test';
import {
  adoptFd,
  closeFd,
  destroySilently,
  getMark,
  NativeInvalidArgumentError,
  NativeNoFdError,
  NativeSyscallError,
  PacketCapture,
  readInitialSequenceNumbers,
  readRepairWindow,
  readSequenceNumbers,
  repairConnection,
  seqAdd,
  seqDiff,
  setMark,
  socketFd,
  tcpInfo,
  TcpFlag,
  type RepairState,
  type SequenceNumbers,
  type TcpSegment,
} from '../../native/src/index.ts';
import { cleanupsAfterEach } from '../helpers/cleanups.ts';
import { nativeSkipReason } from '../helpers/namespace-scenario.ts';

const skip = await nativeSkipReason(['NET_ADMIN', 'NET_RAW']);

interface Pair {
  server: net.Server;
  client: net.Socket;
  accepted: net.Socket;
  port: number;
}

/** What each test opened: closed after it. */
const cleanups = cleanupsAfterEach();

/** A listener on `host`, port 0. pauseOnConnect: Node does not read accepted sockets, so bytes stay in the kernel (inq). */
async function listen(host = '127.0.0.1', pauseOnConnect = false): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer({ pauseOnConnect });
  cleanups.push(() => server.close());
  server.listen(0, host);
  await once(server, 'listening');
  return { server, port: (server.address() as net.AddressInfo).port };
}

/** One connection to `server`, accepted; `onAccept` sees the accepted socket first (e.g. to read its ISNs at accept). */
async function connectTo(server: net.Server, port: number, host = '127.0.0.1', onAccept?: (s: net.Socket) => void): Promise<{ client: net.Socket; accepted: net.Socket }> {
  const acceptedP = new Promise<net.Socket>((resolve) =>
    server.once('connection', (s: net.Socket) => {
      onAccept?.(s);
      resolve(s);
    }),
  );
  const client = net.connect(port, host);
  cleanups.push(() => client.destroy());
  await once(client, 'connect');
  const accepted = await acceptedP;
  cleanups.push(() => accepted.destroy());
  return { client, accepted };
}

/** A loopback listener and one connection, accepted. */
async function connectPair(host = '127.0.0.1', onAccept?: (s: net.Socket) => void, pauseOnConnect = false): Promise<Pair> {
  const { server, port } = await listen(host, pauseOnConnect);
  return { server, port, ...(await connectTo(server, port, host, onAccept)) };
}

/** A capture on lo for `port`, its segments collected (drain() delivers the queued ones at once). */
function captureLoopback(port: number): { capture: PacketCapture; segments: TcpSegment[] } {
  const capture = new PacketCapture({ interface: 'lo', port });
  cleanups.push(() => capture.close());
  const segments: TcpSegment[] = [];
  capture.on('segments', (batch) => segments.push(...batch));
  return { capture, segments };
}

/** The socket's sequence numbers once `bytes` sent to it wait unread in its receive queue. */
async function unreadInput(fd: number, bytes: number): Promise<SequenceNumbers> {
  let seqs = readSequenceNumbers(fd);
  for (let i = 0; seqs.inq < bytes && i < 200; i++) {
    await new Promise((r) => setImmediate(r));
    seqs = readSequenceNumbers(fd);
  }
  assert.equal(seqs.inq, bytes);
  return seqs;
}

/** The repair state of the accepted end of a pair as its kernel has it (read it before destroying that end). */
function kernelRepairState(pair: Pair, host = '127.0.0.1'): RepairState & Required<Pick<RepairState, 'tsVal'>> {
  const fd = socketFd(pair.accepted);
  const seqs = readSequenceNumbers(fd);
  const window = readRepairWindow(fd);
  const info = tcpInfo(fd);
  return {
    localAddress: host,
    localPort: pair.port,
    remoteAddress: host,
    remotePort: pair.client.localPort!,
    sendSeq: seqs.sendSeq,
    recvSeq: seqs.recvSeq,
    mss: info.advmss,
    sndWscale: info.sndWscale,
    rcvWscale: info.rcvWscale,
    sackPermitted: info.sack,
    timestamps: info.timestamps,
    tsVal: info.tsVal,
    window,
  };
}

/** Reads exactly n bytes from a socket. */
function readBytes(socket: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let have = 0;
    const onData = (d: Buffer): void => {
      chunks.push(d);
      have += d.length;
      if (have >= n) {
        socket.off('data', onData);
        socket.off('error', reject);
        socket.pause();
        resolve(Buffer.concat(chunks));
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.resume();
  });
}

describe('native addon on loopback', { skip }, () => {
  it('readSequenceNumbers matches the client view, at accept and after an exchange', async () => {
    let isn: ReturnType<typeof readInitialSequenceNumbers> | undefined;
    const { client, accepted } = await connectPair('127.0.0.1', (s) => {
      isn = readInitialSequenceNumbers(socketFd(s));
    });
    assert.ok(isn);
    assert.ok(isn.attempts >= 2);
    const server0 = readSequenceNumbers(socketFd(accepted));
    const client0 = readSequenceNumbers(socketFd(client));
    assert.equal(client0.recvSeq, server0.sendSeq);
    assert.equal(client0.sendSeq, server0.recvSeq);
    assert.equal(server0.sendSeq, seqAdd(isn.serverIsn, 1));
    assert.equal(server0.recvSeq, seqAdd(isn.clientIsn, 1));
    for (const v of [server0.sendSeq, server0.recvSeq, client0.sendSeq, client0.recvSeq]) {
      assert.ok(Number.isInteger(v) && v >= 0 && v <= 0xffffffff, `unsigned 32-bit: ${v}`);
    }

    client.write('hello');
    assert.equal((await readBytes(accepted, 5)).toString(), 'hello');
    accepted.write('world!');
    assert.equal((await readBytes(client, 6)).toString(), 'world!');
    const server1 = readSequenceNumbers(socketFd(accepted));
    const client1 = readSequenceNumbers(socketFd(client));
    assert.equal(server1.recvSeq, seqAdd(isn.clientIsn, 1 + 5));
    assert.equal(server1.sendSeq, seqAdd(isn.serverIsn, 1 + 6));
    assert.equal(client1.recvSeq, server1.sendSeq);
    assert.equal(client1.sendSeq, server1.recvSeq);
    assert.equal(server1.inq, 0);

    // Unread bytes show up in inq, and the socket still works after repair mode (-1, no window probe).
    const paused = await connectPair('127.0.0.1', undefined, true);
    const pausedFd = socketFd(paused.accepted);
    const isnBefore = readInitialSequenceNumbers(pausedFd);
    paused.client.write('abc');
    await unreadInput(pausedFd, 3);
    assert.deepEqual(readInitialSequenceNumbers(pausedFd).clientIsn, isnBefore.clientIsn, 'ISN accounts for unread bytes');
    assert.equal((await readBytes(paused.accepted, 3)).toString(), 'abc');
  });

  it('tcpInfo reports a sane ESTABLISHED loopback connection', async () => {
    const { accepted } = await connectPair();
    const info = tcpInfo(socketFd(accepted));
    assert.equal(info.state, 1);
    assert.equal(info.stateName, 'ESTABLISHED');
    assert.equal(info.timestamps, true, 'net.ipv4.tcp_timestamps on by default');
    assert.equal(info.sack, true);
    assert.equal(info.wscale, true);
    assert.ok(info.sndWscale >= 0 && info.sndWscale <= 14);
    assert.ok(info.rcvWscale >= 0 && info.rcvWscale <= 14);
    assert.ok(info.sndMss > 0 && info.rcvMss > 0 && info.maxSeg > 0);
    assert.ok(info.sndCwnd >= 1);
    assert.ok(info.rtt >= 0);
    assert.equal(info.tsClockUsec, false);
    assert.equal(info.tsVal % 2, 0, 'ms clock: bit 0 clear');
    const window = readRepairWindow(socketFd(accepted));
    assert.ok(window.sndWnd > 0 && window.maxWindow >= window.sndWnd && window.rcvWnd > 0);
  });

  it('setMark / getMark', async () => {
    const { accepted } = await connectPair();
    const fd = socketFd(accepted);
    assert.equal(getMark(fd), 0);
    setMark(fd, 0xc0ffee);
    assert.equal(getMark(fd), 0xc0ffee);
    setMark(fd, 0xffffffff);
    assert.equal(getMark(fd), 0xffffffff);
  });

  it('names failing steps and bad arguments', async () => {
    const { server } = await listen();
    const listenerFd = (server as unknown as { _handle: { fd: number } })._handle.fd;
    assert.throws(
      () => readSequenceNumbers(listenerFd),
      (e: unknown) => e instanceof NativeSyscallError && e.step === 'TCP_REPAIR' && e.errnoName === 'EPERM',
    );
    assert.throws(() => readSequenceNumbers(-1), NativeInvalidArgumentError);
    assert.throws(() => socketFd(new net.Socket()), NativeNoFdError);

    const { client, accepted, port } = await connectPair();
    const seqs = readSequenceNumbers(socketFd(accepted));
    const base = {
      localAddress: '127.0.0.1',
      localPort: port,
      remoteAddress: '127.0.0.1',
      remotePort: client.localPort!,
      sendSeq: seqs.sendSeq,
      recvSeq: seqs.recvSeq,
      mss: 65495,
      window: { sndWl1: seqs.recvSeq, sndWnd: 65536, maxWindow: 65536, rcvWnd: 65536, rcvWup: seqs.recvSeq },
    };
    // The live connection still owns the 4-tuple.
    assert.throws(
      () => repairConnection(base),
      (e: unknown) => e instanceof NativeSyscallError && e.step === 'connect' && e.errnoName === 'EADDRNOTAVAIL',
    );
    destroySilently(accepted);
    // rcv_wup beyond rcv_nxt.
    assert.throws(
      () => repairConnection({ ...base, window: { ...base.window, rcvWup: seqAdd(seqs.recvSeq, 10) } }),
      (e: unknown) =>
        e instanceof NativeSyscallError && e.step === 'TCP_REPAIR_WINDOW' && /^TCP_REPAIR_WINDOW: EINVAL/.test(e.message),
    );
    assert.throws(() => repairConnection({ ...base, localAddress: 'nope' }), NativeInvalidArgumentError);
    assert.throws(() => repairConnection({ ...base, sndWscale: 7 }), NativeInvalidArgumentError);
    assert.throws(() => repairConnection({ ...base, timestamps: true }), NativeInvalidArgumentError);
    // A failed rebuild leaves nothing behind: the same state succeeds now.
    const fd = repairConnection(base);
    closeFd(fd);
  });

  for (const host of ['127.0.0.1', '::1']) {
    it(`rebuilds a connection from the kernel's own state and adopts it (${host})`, async (t) => {
      if (host === '::1' && !(await loopbackV6Available())) {
        t.skip('no IPv6 loopback');
        return;
      }
      const pair = await connectPair(host);
      const { client, accepted, port } = pair;
      client.write('before');
      assert.equal((await readBytes(accepted, 6)).toString(), 'before');
      const state = kernelRepairState(pair, host);
      let clientEnded = false;
      client.on('end', () => (clientEnded = true));
      client.on('close', () => (clientEnded = true));
      destroySilently(accepted);

      const rebuilt = repairConnection({ ...state, tsVal: state.tsVal + 1 });
      const adopted = adoptFd(rebuilt);
      cleanups.push(() => adopted.destroy());
      assert.equal(tcpInfo(rebuilt).stateName, 'ESTABLISHED');
      assert.equal(adopted.remotePort, client.localPort);
      assert.equal(adopted.localPort, port);

      client.write('after-1');
      assert.equal((await readBytes(adopted, 7)).toString(), 'after-1');
      adopted.write('reply-1');
      assert.equal((await readBytes(client, 7)).toString(), 'reply-1');
      const big = Buffer.alloc(300_000, 0x5a);
      adopted.write(big);
      assert.equal((await readBytes(client, big.length)).equals(big), true);
      assert.equal(clientEnded, false, 'the client saw no FIN/RST');
    });
  }

  it('rebuilds with in-flight output (sendQueue) when the client got more than the last captured ACK', async () => {
    // The old socket sends a window's worth at once; the capture's last client
    // ACK lags behind what the client received. Rebuilt with sendSeq = that ACK
    // alone, the new socket's first flight (window rounded down to whole MSS)
    // ends before the client's next ACK, which the kernel then discards as
    // "ACK of unsent data": a permanent stall (seen here). Queuing what the old
    // socket had sent as in flight avoids it.
    const { server, port } = await listen();
    const { capture, segments } = captureLoopback(port);
    let isn: ReturnType<typeof readInitialSequenceNumbers> | undefined;
    const { client, accepted } = await connectTo(server, port, '127.0.0.1', (s) => {
      isn = readInitialSequenceNumbers(socketFd(s));
    });
    assert.ok(isn);
    const total = 400_000;
    const output = Buffer.alloc(total);
    for (let i = 0; i < total; i++) output[i] = (i * 7 + (i >> 9)) & 0xff;
    const received = readBytes(client, total);

    const fd = socketFd(accepted);
    accepted.write(output);
    capture.drain();
    const info = tcpInfo(fd);
    const kernel = readSequenceNumbers(fd);
    const window = readRepairWindow(fd);
    destroySilently(accepted);
    capture.drain();

    const base = seqAdd(isn.serverIsn, 1);
    const clientAcks = segments.filter((s) => s.dstPort === port && (s.flags & TcpFlag.ACK) !== 0);
    const lastAck = clientAcks[clientAcks.length - 1];
    const sentEnd = Math.max(
      ...segments.filter((s) => s.srcPort === port && (s.flags & TcpFlag.SYN) === 0).map((s) => seqDiff(seqAdd(s.seq, s.payload.length), base)),
    );
    const ackOffset = seqDiff(lastAck.ack, base);
    assert.ok(sentEnd > ackOffset, `the old socket had data in flight (${ackOffset}..${sentEnd})`);
    const fdNew = repairConnection({
      localAddress: '127.0.0.1',
      localPort: port,
      remoteAddress: '127.0.0.1',
      remotePort: client.localPort!,
      sendSeq: lastAck.ack,
      recvSeq: kernel.recvSeq,
      mss: 65495,
      sndWscale: info.sndWscale,
      rcvWscale: info.rcvWscale,
      sackPermitted: true,
      timestamps: true,
      tsVal: info.tsVal + 2,
      sendQueue: output.subarray(ackOffset, sentEnd),
      window: {
        ...window,
        sndWl1: lastAck.seq,
        sndWnd: lastAck.window << info.sndWscale,
        maxWindow: lastAck.window << info.sndWscale,
      },
    });
    const adopted = adoptFd(fdNew);
    cleanups.push(() => adopted.destroy());
    adopted.write(output.subarray(sentEnd));
    const timeout = setTimeout(() => client.destroy(new Error('stalled: client did not get all bytes in 5 s')), 5000);
    try {
      assert.equal((await received).equals(output), true);
    } finally {
      clearTimeout(timeout);
    }
  });

  it('rebuilds with unread input in the receive queue (recvQueue)', async () => {
    const pair = await connectPair('127.0.0.1', undefined, true);
    const { client, accepted } = pair;
    client.write('unread');
    await unreadInput(socketFd(accepted), 6);
    const state = kernelRepairState(pair);
    destroySilently(accepted);
    const adopted = adoptFd(repairConnection({ ...state, recvSeq: seqAdd(state.recvSeq, -6), recvQueue: Buffer.from('unread'), tsVal: state.tsVal + 2 }));
    cleanups.push(() => adopted.destroy());
    assert.equal((await readBytes(adopted, 6)).toString(), 'unread');
    client.write('live');
    assert.equal((await readBytes(adopted, 4)).toString(), 'live');
    adopted.write('ok');
    assert.equal((await readBytes(client, 2)).toString(), 'ok');
  });

  it('captures SYN/SYN-ACK options and the payload on lo, once each, with no drops', async () => {
    const { server, port } = await listen();
    const { capture, segments } = captureLoopback(port);
    let closes = 0;
    capture.on('close', () => closes++);

    // Traffic on another port must not pass the kernel filter.
    const other = await connectPair();
    other.client.write('noise');
    await readBytes(other.accepted, 5);

    let isn: ReturnType<typeof readInitialSequenceNumbers> | undefined;
    const { client, accepted } = await connectTo(server, port, '127.0.0.1', (s) => {
      isn = readInitialSequenceNumbers(socketFd(s));
    });
    client.write('ping-123');
    assert.equal((await readBytes(accepted, 8)).toString(), 'ping-123');
    accepted.write('pong-4567');
    assert.equal((await readBytes(client, 9)).toString(), 'pong-4567');
    // The frames are queued before TCP saw them: drain delivers them now.
    capture.drain();

    assert.ok(segments.every((s) => s.srcPort === port || s.dstPort === port), 'filter keeps only our port');
    const syns = segments.filter((s) => s.flags === TcpFlag.SYN);
    const synAcks = segments.filter((s) => s.flags === (TcpFlag.SYN | TcpFlag.ACK));
    assert.equal(syns.length, 1, 'one SYN: outgoing copies on lo are ignored');
    assert.equal(synAcks.length, 1);
    const syn = syns[0];
    const synAck = synAcks[0];
    assert.ok(isn);
    assert.equal(syn.seq, isn.clientIsn, 'client ISN from readInitialSequenceNumbers = captured SYN');
    assert.equal(synAck.seq, isn.serverIsn);
    assert.equal(synAck.ack, seqAdd(isn.clientIsn, 1));
    assert.equal(syn.dstPort, port);
    assert.equal(syn.srcPort, client.localPort);
    assert.equal(syn.options.mss, 65495);
    assert.equal(syn.options.sackPerm, true);
    assert.ok(syn.options.wscale !== undefined && syn.options.tsval !== undefined);
    assert.equal(synAck.options.sackPerm, true);
    assert.ok(synAck.options.wscale !== undefined && synAck.options.mss !== undefined);
    assert.equal(synAck.options.tsecr, syn.options.tsval);
    const info = tcpInfo(socketFd(accepted));
    assert.equal(info.sndWscale, syn.options.wscale, "server's snd_wscale is the client's SYN wscale");
    assert.equal(info.rcvWscale, synAck.options.wscale);
    assert.ok(segments.every((s) => s.tsNs > 0n));

    const toServer = Buffer.concat(segments.filter((s) => s.dstPort === port).map((s) => s.payload));
    const toClient = Buffer.concat(segments.filter((s) => s.srcPort === port).map((s) => s.payload));
    assert.equal(toServer.toString(), 'ping-123');
    assert.equal(toClient.toString(), 'pong-4567');

    const stats = capture.stats();
    assert.equal(stats.drops, 0);
    assert.equal(stats.truncated, 0);
    assert.equal(stats.unparsed, 0);
    assert.ok(stats.packets >= segments.length, `${stats.packets} >= ${segments.length}`);
    capture.close();
    capture.close();
    assert.equal(capture.closed, true);
    assert.equal(closes, 1);
    assert.equal(capture.drain(), 0);
  });

  it('delivers segments asynchronously from the poll handle', async () => {
    const { server, port } = await listen();
    const { capture } = captureLoopback(port);
    const gotPayload = new Promise<void>((resolve) => {
      capture.on('segments', (batch) => {
        if (batch.some((s) => s.payload.toString() === 'async!')) resolve();
      });
    });
    const { client } = await connectTo(server, port);
    client.write('async!');
    await gotPayload;
    capture.close();
  });

  it('reports a missing interface by name', () => {
    assert.throws(
      () => new PacketCapture({ interface: 'tkt-no-such0', port: 1 }),
      (e: unknown) => e instanceof NativeSyscallError && e.step.startsWith('if_nametoindex') && e.errnoName === 'ENODEV',
    );
  });
});

async function loopbackV6Available(): Promise<boolean> {
  const probe = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen(0, '::1', () => resolve());
    });
    return true;
  } catch {
    return false;
  } finally {
    probe.close();
  }
}

before(() => {
  if (skip) console.log(`# native addon tests skipped: ${skip}`);
});
