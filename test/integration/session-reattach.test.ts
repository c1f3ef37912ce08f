/**
 * Connection-level takeover without TCP_REPAIR: a live socket.io session moves between
 * server processes on the SAME TCP socket (the socket travels as an IPC handle), about ten
 * times at random moments, while both sides stream sequence-numbered messages every 10 ms
 * on two namespaces, with acks both ways and 300 ms heartbeats. A stock socket.io-client
 * must not notice: no second connect, no disconnect, same ids, every message once and in
 * order, acks answered, pings on time, rooms and data intact, and no process writes a
 * handshake byte the client already has. Also: enabling the takeover options does not
 * change a single byte a normal client sees.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, connect, type AddressInfo, type Server as TcpServer, type Socket as NetSocket } from 'node:net';
import { describe, it } from 'node:test';
import { Server, type ServerOptions } from 'socket.io';
import { Manager, type Socket as ClientSocket } from 'socket.io-client';
import { FixtureProcess, type FixtureMessage } from '../../scripts/common/child-process.ts';
import { SessionRecorder } from '../../mcu/src/takeover/session/session-recorder.ts';
import { parseSessionRecord, type SessionRecord } from '../../mcu/src/takeover/session/session-record.ts';
import { SessionRecordInvalidError } from '../../mcu/src/takeover/errors.ts';
import { TakeoverAdapter, takeoverServerOptions } from '../../mcu/src/takeover/session/takeover-adapter.ts';
import { FRAME_TOO_LARGE, FrameSplitter } from '../../mcu/src/takeover/session/frame-splitter.ts';
import { peekPacket } from '../../mcu/src/takeover/session/internals.ts';
import { cleanupsAfterEach, type Cleanups } from '../helpers/cleanups.ts';
import { until } from '../../scripts/common/wait-for.ts';

const PING_INTERVAL = 300;
const PING_TIMEOUT = 1000;
const MOVES = 10;
const NAMESPACES = ['/', '/chat'] as const;
type Nsp = (typeof NAMESPACES)[number];

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The next message of one of `types` from a fixture process. */
function nextOf(p: FixtureProcess, types: string[], timeoutMs = 10_000): Promise<FixtureMessage> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: FixtureMessage): void => {
      if (!types.includes(m.type)) return;
      clearTimeout(timer);
      p.child.off('message', onMessage);
      resolve(m);
    };
    const timer = setTimeout(() => {
      p.child.off('message', onMessage);
      reject(new Error(`no ${types.join('/')} from pid ${p.pid} within ${timeoutMs} ms\n${p.stderrTail}`));
    }, timeoutMs);
    p.child.on('message', onMessage);
  });
}

/** Stops Node reading a socket it received as a handle and is about to pass on (it would drop what it reads). */
function stopReading(socket: NetSocket): void {
  const handle = (socket as unknown as { _handle: { readStop(): number; reading: boolean } | null })._handle;
  handle?.readStop();
  if (handle) handle.reading = false;
}

/**
 * Asks `from` to hand its session over and relays the record and the TCP socket to `to`
 * (`tamper` may change the record on the way). Resolves with the record once relayed.
 */
function handOver(from: FixtureProcess, to: FixtureProcess, options: { afterPing?: boolean; tamper?: (r: SessionRecord) => SessionRecord } = {}): Promise<SessionRecord> {
  const relayed = new Promise<SessionRecord>((resolve, reject) => {
    const onMessage = (m: FixtureMessage, handle?: NetSocket): void => {
      if (m.type === 'error') {
        from.child.off('message', onMessage);
        reject(new Error(`handoff failed: ${String(m.message)}`));
        return;
      }
      if (m.type !== 'handoff') return;
      from.child.off('message', onMessage);
      if (!handle) return reject(new Error('handoff without a socket handle'));
      // Relay at once, before this process's event loop polls the socket.
      stopReading(handle);
      if (handle.readableLength !== 0) return reject(new Error(`test process read ${handle.readableLength} client bytes`));
      const record = m.record as SessionRecord;
      to.child.send({ type: 'adopt', record: options.tamper ? options.tamper(record) : record }, handle);
      resolve(record);
    };
    from.child.on('message', onMessage);
  });
  from.send({ type: 'handoff', afterPing: options.afterPing ?? false });
  return relayed;
}

/** The WebSocket frames in a byte stream, payloads unmasked; `end`: where the last frame ends. */
function parseFrames(bytes: Buffer): { frames: Array<{ opcode: number; payload: Buffer }>; end: number } {
  const frames: Array<{ opcode: number; payload: Buffer }> = [];
  let i = 0;
  while (i + 2 <= bytes.length) {
    const masked = (bytes[i + 1]! & 0x80) !== 0;
    let len = bytes[i + 1]! & 0x7f;
    let off = i + 2;
    if (len === 126) {
      len = bytes.readUInt16BE(off);
      off += 2;
    } else if (len === 127) {
      len = Number(bytes.readBigUInt64BE(off));
      off += 8;
    }
    const mask = masked ? bytes.subarray(off, off + 4) : null;
    if (masked) off += 4;
    const payload = Buffer.from(bytes.subarray(off, off + len));
    if (mask) for (let j = 0; j < payload.length; j++) payload[j] = payload[j]! ^ mask[j % 4]!;
    frames.push({ opcode: bytes[i]! & 0x0f, payload });
    i = off + len;
  }
  return { frames, end: i };
}

/** Server-to-client frames (unmasked): their text payloads. */
function serverFrames(bytes: Buffer): string[] {
  const { frames, end } = parseFrames(bytes);
  assert.equal(end, bytes.length, 'written bytes end on a frame boundary');
  return frames.map((f) => f.payload.toString('latin1'));
}

/** Client-to-server frames (masked): opcode and unmasked payload, so two captures compare despite random masks. */
function clientFrames(bytes: Buffer): string[] {
  return parseFrames(bytes).frames.map((f) => `${f.opcode.toString(16)}:${f.payload.toString('latin1')}`);
}

/** A stock client's session on the first of a few reattach-server processes, as each test starts it. */
interface LiveSession {
  /** The processes, named A, B, C...: A listens and holds the session, the others can adopt it. */
  procs: FixtureProcess[];
  manager: Manager;
  sockets: Record<Nsp, ClientSocket>;
  /** The client's TCP socket: the one every process in turn serves. */
  clientTcp: NetSocket;
  /** `connect` events per namespace. */
  connects: Record<Nsp, number>;
  /** Disconnects, connect errors, manager errors and closes the client saw. */
  clientEvents: string[];
}

/**
 * Starts `names.length` server processes and connects a client to the first on both
 * namespaces; `cleanups` gets what closes them. The servers send nothing until told `start`.
 */
async function openSession(names: string[], cleanups: Cleanups): Promise<LiveSession> {
  const env = { REATTACH_PING_INTERVAL: String(PING_INTERVAL), REATTACH_PING_TIMEOUT: String(PING_TIMEOUT), LOG_LEVEL: 'warn' };
  const procs = names.map((name, i) => new FixtureProcess('test/fixtures/reattach-server.ts', { ...env, REATTACH_NAME: name, REATTACH_LISTEN: i === 0 ? '1' : '0' }));
  cleanups.push(async () => {
    await Promise.all(procs.map((p) => p.kill()));
  });
  const ready = await Promise.all(procs.map((p) => p.next('ready', 30_000)));
  const port = ready[0]!.port as number;

  const manager = new Manager(`http://127.0.0.1:${port}`, { transports: ['websocket'], reconnection: false, query: { room: 'q1' } });
  cleanups.push(async () => {
    manager.engine?.close();
  });
  const sockets: Record<Nsp, ClientSocket> = {
    '/': manager.socket('/', { auth: { token: 'secret-root' } }),
    '/chat': manager.socket('/chat', { auth: { token: 'secret-chat' } }),
  };
  const clientEvents: string[] = [];
  manager.on('error', (err) => clientEvents.push(`manager error ${err.message}`));
  manager.on('close', (reason) => clientEvents.push(`manager close ${reason}`));
  const connects: Record<Nsp, number> = { '/': 0, '/chat': 0 };
  for (const nsp of NAMESPACES) {
    const s = sockets[nsp];
    s.on('connect', () => connects[nsp]++);
    s.on('disconnect', (reason) => clientEvents.push(`${nsp} disconnect ${reason}`));
    s.on('connect_error', (err) => clientEvents.push(`${nsp} connect_error ${err.message}`));
  }
  await until('both namespaces connected', () => connects['/'] === 1 && connects['/chat'] === 1);
  const clientTcp = (manager.engine.transport as unknown as { ws: { _socket: NetSocket } }).ws._socket;
  return { procs, manager, sockets, clientTcp, connects, clientEvents };
}

describe('session re-attachment on the same TCP socket (IPC handle, no TCP_REPAIR)', () => {
  // Each test starts its own processes and client, and closes them whatever happens.
  const cleanups = cleanupsAfterEach();

  it(`moves a live session ${MOVES} times without the client noticing`, async () => {
    const { procs, manager, sockets, clientTcp, connects, clientEvents } = await openSession(['A', 'B', 'C'], cleanups);

    // Asynchronous reports from every process.
    const violations: FixtureMessage[] = [];
    const serverDisconnects: FixtureMessage[] = [];
    const lateAcks: FixtureMessage[] = [];
    const connections: FixtureMessage[] = [];
    for (const p of procs) {
      p.child.on('message', (m: FixtureMessage) => {
        if (m.type === 'violation' || m.type === 'error' || m.type === 'socket-error' || m.type === 'adopt-failed') violations.push(m);
        if (m.type === 'disconnect') serverDisconnects.push(m);
        if (m.type === 'late-ack') lateAcks.push(m);
        if (m.type === 'connection') connections.push(m);
      });
    }

    // ---- the client ----------------------------------------------------------------------------
    const pings: number[] = [];
    manager.on('ping', () => pings.push(performance.now()));
    const lastIn: Record<Nsp, number> = { '/': 0, '/chat': 0 };
    const sreqReceived: Record<Nsp, number> = { '/': 0, '/chat': 0 };
    const roomTags: Record<Nsp, Set<number>> = { '/': new Set(), '/chat': new Set() };
    const seqOut: Record<Nsp, number> = { '/': 0, '/chat': 0 };
    const creqSent: Record<Nsp, number> = { '/': 0, '/chat': 0 };
    const creqAnswers: Record<Nsp, Map<number, number>> = { '/': new Map(), '/chat': new Map() };
    const creqBy: Record<string, number> = {};
    const orderErrors: string[] = [];
    for (const nsp of NAMESPACES) {
      const s = sockets[nsp];
      const inOrder = (n: number): void => {
        if (n !== lastIn[nsp] + 1) orderErrors.push(`${nsp}: server seq ${n} after ${lastIn[nsp]}`);
        lastIn[nsp] = n;
      };
      s.on('seq', (msg: { n: number }) => inOrder(msg.n));
      s.on('sreq', (msg: { n: number }, ack: () => void) => {
        inOrder(msg.n);
        sreqReceived[nsp]++;
        setTimeout(ack, Math.floor(Math.random() * 40));
      });
      s.on('room', (msg: { tag: number }) => roomTags[nsp].add(msg.tag));
    }
    const engineId = manager.engine.id;
    const socketIds = { '/': sockets['/'].id, '/chat': sockets['/chat'].id };
    const localPort = clientTcp.localPort;

    const whoami = (nsp: Nsp): Promise<Record<string, unknown>> =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`whoami on ${nsp} unanswered`)), 3000);
        sockets[nsp].emit('whoami', (r: Record<string, unknown>) => {
          clearTimeout(timer);
          resolve(r);
        });
      });
    const initial = { '/': await whoami('/'), '/chat': await whoami('/chat') };

    let sending = true;
    const sender = setInterval(() => {
      if (!sending) return;
      for (const nsp of NAMESPACES) {
        const s = sockets[nsp];
        s.emit('seq', { n: ++seqOut[nsp] });
        if (seqOut[nsp] % 3 === 0) {
          const k = ++creqSent[nsp];
          s.emit('creq', { k }, (ans: { k: number; by: string }) => {
            creqAnswers[nsp].set(ans.k, (creqAnswers[nsp].get(ans.k) ?? 0) + 1);
            creqBy[ans.by] = (creqBy[ans.by] ?? 0) + 1;
          });
        }
      }
    }, 10);

    try {
      procs[0]!.send({ type: 'start' });
      await procs[0]!.next('started');

      // ---- the moves -------------------------------------------------------------------------
      const moves: Array<Record<string, unknown>> = [];
      let holder = 0;
      for (let move = 1; move <= MOVES; move++) {
        await sleep(120 + Math.random() * 380);
        // Three kinds of moment: right after a ping (its pong still to come), late in the ping
        // cycle (a new process that restarted the cycle would leave the client without a ping
        // for almost two intervals), and anywhere.
        const kind = (['after-ping', 'late-in-cycle', 'random'] as const)[move % 3]!;
        if (kind === 'late-in-cycle') {
          const pingsSoFar = pings.length;
          await until('a ping', () => pings.length > pingsSoFar, { timeoutMs: 2 * PING_INTERVAL });
          await sleep(PING_INTERVAL * (0.55 + Math.random() * 0.3));
        }
        const afterPing = kind === 'after-ping';
        const from = procs[holder]!;
        const toIndex = (holder + 1) % procs.length;
        const to = procs[toIndex]!;
        const outcome = nextOf(to, ['adopted', 'adopt-failed']);
        await handOver(from, to, { afterPing });
        const result = await outcome;
        assert.equal(result.type, 'adopted', `move ${move}: ${String(result.message)}\n${String(result.stack)}`);
        const written = Buffer.from(String(result.writtenDuringReattach), 'base64');
        const frames = written.length > 0 ? serverFrames(written) : [];
        const handshakeBytes = frames.filter((f) => f.startsWith('0') || f.startsWith('40') || f.startsWith('44')).reduce((n, f) => n + f.length, 0);
        assert.equal(handshakeBytes, 0, `move ${move}: the new process wrote handshake frames ${JSON.stringify(frames)}`);
        assert.ok(frames.every((f) => f === '2'), `move ${move}: only a due ping may go out during re-attachment, got ${JSON.stringify(frames)}`);
        assert.equal(result.counterDelta, written.length, `move ${move}: byte counter continues from the record`);
        if (afterPing) {
          // The pong reaches the new process, as unparsed input of the record or from the socket.
          assert.equal(result.awaitingPong, true, `move ${move}: recorded while a pong was due`);
        }
        moves.push({ move, kind, from: from.pid, to: to.pid, ...result, writtenDuringReattach: written.length });
        holder = toIndex;

        to.send({ type: 'broadcast', tag: move });
        await to.next('broadcasted');
        for (const nsp of NAMESPACES) {
          const who = await whoami(nsp);
          assert.equal(who.proc, ['A', 'B', 'C'][holder], `move ${move}: ${nsp} served by the new process`);
          assert.equal(who.recovered, true, `move ${move}: ${nsp} socket.recovered`);
          assert.equal(who.id, socketIds[nsp]);
          assert.deepEqual(who.rooms, initial[nsp].rooms, `move ${move}: ${nsp} rooms`);
          assert.deepEqual(who.auth, initial[nsp].auth, `move ${move}: ${nsp} handshake.auth`);
          assert.deepEqual(who.query, initial[nsp].query, `move ${move}: ${nsp} handshake.query`);
          assert.equal(who.issued, initial[nsp].issued, `move ${move}: ${nsp} handshake.issued`);
          assert.equal((who.data as { user: string }).user, 'alice');
        }
        await until(`room broadcast of move ${move}`, () => roomTags['/'].has(move) && roomTags['/chat'].has(move), { timeoutMs: 3000 });
      }

      // A few more heartbeats on the last process.
      await sleep(2 * PING_INTERVAL + 100);

      // ---- wind down and reconcile ------------------------------------------------------------
      sending = false;
      const last = procs[holder]!;
      last.send({ type: 'stop' });
      await last.next('stopped');
      await until('every client request answered', () => NAMESPACES.every((nsp) => creqAnswers[nsp].size === creqSent[nsp]));
      await sleep(200);
      last.send({ type: 'state' });
      const final = await last.next('state');
      const finalSockets = final.sockets as Record<Nsp, { id: string; data: { in: number; out: number; sreqSent: number; sreqAcked: number; sreqLate: number }; rooms: string[] }>;

      // The byte counts of client and final server agree exactly (pings may cross: retry).
      let reconciled = false;
      let lastSeen = '';
      for (let attempt = 0; attempt < 50 && !reconciled; attempt++) {
        last.send({ type: 'state' });
        const a = (await last.next('state')).counters as { consumed: number; written: number; pendingInput: number };
        const clientRead = clientTcp.bytesRead;
        const clientWritten = clientTcp.bytesWritten;
        last.send({ type: 'state' });
        const b = (await last.next('state')).counters as { consumed: number; written: number; pendingInput: number };
        lastSeen = JSON.stringify({ a, b, clientRead, clientWritten });
        reconciled = JSON.stringify(a) === JSON.stringify(b) && a.written === clientRead && a.consumed + a.pendingInput === clientWritten;
        if (!reconciled) await sleep(7);
      }
      assert.ok(reconciled, `byte counts of client and server disagree: ${lastSeen}`);

      // ---- the verdict ------------------------------------------------------------------------
      const report = {
        moves: moves.map((m) => ({
          move: m.move,
          kind: m.kind,
          ms: Math.round(Number(m.ms) * 10) / 10,
          wrote: m.writtenDuringReattach,
          pendingRequests: m.pendingClientRequests,
          pendingAcks: m.pendingServerAcks,
          awaitingPong: m.awaitingPong,
          unparsed: m.unparsedInput,
        })),
        lateAcks: lateAcks.length,
        creqBy,
        pings: pings.length,
      };
      console.log(`reattach report: ${JSON.stringify(report)}`);
      assert.deepEqual(violations, [], 'no server-side violation or failure');
      assert.deepEqual(orderErrors, [], 'server-to-client messages once and in order');
      assert.deepEqual(clientEvents, [], 'the client saw no disconnect, error or close');
      assert.deepEqual(connects, { '/': 1, '/chat': 1 }, 'connect fired once per namespace');
      assert.equal(manager.engine.id, engineId, 'engine.io id unchanged');
      assert.equal(sockets['/'].id, socketIds['/']);
      assert.equal(sockets['/chat'].id, socketIds['/chat']);
      assert.equal(clientTcp.localPort, localPort, 'same TCP connection');
      assert.ok(!clientTcp.destroyed, 'TCP connection open');
      for (const nsp of NAMESPACES) {
        const d = finalSockets[nsp].data;
        assert.equal(finalSockets[nsp].id, socketIds[nsp]);
        assert.equal(d.in, seqOut[nsp], `${nsp}: the server got every client message (in order, checked server-side)`);
        assert.equal(d.out, lastIn[nsp], `${nsp}: the client got every server message`);
        assert.equal(d.sreqSent, sreqReceived[nsp], `${nsp}: every server request reached the client`);
        assert.equal(d.sreqAcked + d.sreqLate, d.sreqSent, `${nsp}: every server request acknowledged (${d.sreqLate} late, after a move)`);
        for (const [k, n] of creqAnswers[nsp]) assert.equal(n, 1, `${nsp}: client request ${k} answered once`);
        assert.equal(creqAnswers[nsp].size, creqSent[nsp], `${nsp}: every client request answered`);
        for (let move = 1; move <= MOVES; move++) assert.ok(roomTags[nsp].has(move), `${nsp}: room broadcast after move ${move}`);
      }
      const pendingAtMoves = moves.reduce((n, m) => n + Number(m.pendingClientRequests), 0);
      assert.ok(pendingAtMoves > 0, 'some client requests were pending at a move (and answered by the new process)');
      assert.ok(connections.filter((c) => c.recovered === true).length === MOVES * 2, 'each move restored both namespaces');
      // Each old process saw its handed-over socket go away (closed, or a write failing on it).
      assert.equal(serverDisconnects.length, MOVES * 2, 'one local disconnect per namespace and move');
      assert.deepEqual(serverDisconnects.map((d) => d.reason).filter((r) => r !== 'transport close' && r !== 'transport error'), []);

      // Heartbeats kept their rhythm across the moves.
      assert.ok(pings.length >= 5, `pings received: ${pings.length}`);
      const gaps = pings.slice(1).map((t, i) => t - pings[i]!);
      const maxGap = Math.max(...gaps);
      assert.ok(maxGap < PING_INTERVAL * 1.4, `longest gap between pings ${Math.round(maxGap)} ms (interval ${PING_INTERVAL} ms)`);
      assert.ok(Number(final.inputEvents) > 0, 'the recorder reported message boundaries');
      // recordAll() skips a connection caught mid-heartbeat: the idle one is soon recordable.
      let recorded = final;
      for (let attempt = 0; attempt < 50 && (recorded.recordBytes as number[]).length !== 1; attempt++) {
        await sleep(7);
        last.send({ type: 'state' });
        recorded = await last.next('state');
      }
      assert.equal((recorded.recordBytes as number[]).length, 1, `recordAll() recorded the idle connection (skipped: ${JSON.stringify(recorded.skipped)})`);
      console.log(`reattach pings: max gap ${Math.round(maxGap)} ms; record size ${JSON.stringify(recorded.recordBytes)} bytes`);
    } finally {
      clearInterval(sender);
    }
  });

  it('a failed re-attachment writes nothing and the client falls back to reconnecting', async () => {
    const { procs, sockets, clientTcp, clientEvents } = await openSession(['A', 'B'], cleanups);
    const [from, to] = procs as [FixtureProcess, FixtureProcess];
    const disconnected = Promise.all(NAMESPACES.map((nsp) => new Promise<string>((resolve) => sockets[nsp].once('disconnect', (reason) => resolve(reason)))));
    const outcome = nextOf(to, ['adopted', 'adopt-failed']);
    // The standby was configured with another heartbeat than the one the client was told.
    const record = await handOver(from, to, { tamper: (r) => ({ ...r, engine: { ...r.engine, pingIntervalMs: r.engine.pingIntervalMs + 1 } }) });
    const result = await outcome;
    assert.equal(result.type, 'adopt-failed');
    assert.equal(result.code, 'TAKEOVER_SETTINGS_MISMATCH', String(result.message));
    assert.deepEqual(await disconnected, ['transport close', 'transport close'], 'the client saw the connection close and would reconnect');
    // Nothing but the WebSocket close frame (1012 "service restart": 4 + 15 bytes) after what the old process wrote.
    await until('the close frame arrived', () => clientTcp.bytesRead >= record.bytes.written + 19, { timeoutMs: 2000 });
    assert.equal(clientTcp.bytesRead, record.bytes.written + 19);
    assert.deepEqual(clientEvents.filter((e) => !e.includes('disconnect') && !e.includes('close')), []);
  });
});

describe('takeover options do not change the wire format', () => {
  const closers = cleanupsAfterEach();

  /** Runs one scripted session through a capturing TCP proxy; returns the normalized bytes both ways. */
  async function capture(options: Partial<ServerOptions>, withRecorder: boolean): Promise<{ down: string; up: string[] }> {
    const http = createHttpServer();
    const io = new Server(http, { transports: ['websocket'], allowUpgrades: false, perMessageDeflate: false, serveClient: false, ...options });
    const recorder = withRecorder ? new SessionRecorder(io) : null;
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const down: Buffer[] = [];
    const up: Buffer[] = [];
    const proxy: TcpServer = createTcpServer((client) => {
      const upstream = connect((http.address() as AddressInfo).port, '127.0.0.1');
      client.on('data', (b) => {
        up.push(b);
        upstream.write(b);
      });
      upstream.on('data', (b) => {
        down.push(b);
        client.write(b);
      });
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      client.on('error', () => {});
      upstream.on('error', () => {});
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    closers.push(async () => {
      recorder?.close();
      io.close();
      proxy.close();
    });

    for (const nsp of [io.of('/'), io.of('/chat')]) {
      nsp.on('connection', (socket) => {
        void socket.join('room-1');
        socket.data = { user: 'bob' };
        socket.emit('hello', { id: socket.id, n: 1 });
        socket.on('ask', (x: number, ack: (r: unknown) => void) => ack({ twice: x * 2 }));
        socket.on('go', (done: () => void) => {
          socket.timeout(2000).emit('question', 'why?', () => {
            io.of(nsp.name).to('room-1').emit('broadcast', { to: 'room-1' });
            socket.emit('binary', Buffer.from([1, 2, 3, 4]));
            done();
          });
        });
      });
    }
    const mgr = new Manager(`http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, { transports: ['websocket'], reconnection: false });
    const ids: string[] = [];
    for (const name of ['/', '/chat']) {
      const s = mgr.socket(name, { auth: { token: 't' } });
      const hello = new Promise<void>((resolve) => s.once('hello', () => resolve()));
      s.on('question', (_q: string, ack: (a: string) => void) => ack('because'));
      await new Promise<void>((resolve) => s.once('connect', () => resolve()));
      await hello;
      ids.push(s.id!);
      assert.deepEqual(await s.emitWithAck('ask', 21), { twice: 42 });
      const binary = new Promise<void>((resolve) => s.once('binary', () => resolve()));
      await s.emitWithAck('go');
      await binary;
    }
    ids.push(mgr.engine.id);
    mgr.engine.close();
    await sleep(50);
    let downText = Buffer.concat(down).toString('latin1');
    let upText = Buffer.concat(up).toString('latin1');
    const key = /sec-websocket-key: (\S+)/i.exec(upText)?.[1];
    const accept = /sec-websocket-accept: (\S+)/i.exec(downText)?.[1];
    assert.ok(key && accept, 'captured an upgrade');
    for (const [i, id] of ids.entries()) {
      downText = downText.split(id).join(`<id${i}>`);
      upText = upText.split(id).join(`<id${i}>`);
    }
    downText = downText.replace(accept, '<accept>');
    const headerEnd = upText.indexOf('\r\n\r\n') + 4;
    const upHeader = upText.slice(0, headerEnd).replace(key, '<key>').replace(/^host: .*$/im, 'host: <proxy>');
    const upFrames = clientFrames(Buffer.from(upText.slice(headerEnd), 'latin1')).map((f) => {
      let out = f;
      for (const [i, id] of ids.entries()) out = out.split(id).join(`<id${i}>`);
      return out;
    });
    return { down: downText, up: [upHeader, ...upFrames] };
  }

  it('a normal client gets the same bytes with connection state recovery, the TakeoverAdapter and the recorder', async () => {
    const stock = await capture({}, false);
    const takeover = await capture(takeoverServerOptions(), true);
    assert.ok(stock.down.includes('40{"sid":"<id0>"}'), 'CONNECT reply without pid');
    assert.equal(takeover.down, stock.down, 'server-to-client bytes identical');
    assert.deepEqual(takeover.up, stock.up, 'client-to-server frames identical');
    // And what the takeover options would add without the TakeoverAdapter: a pid on every CONNECT reply.
    const plainRecovery = await capture({ connectionStateRecovery: { skipMiddlewares: true } }, false);
    assert.notEqual(plainRecovery.down, stock.down, 'stock connection state recovery changes the bytes (pid, offsets)');
  });

  it('rejects a forged or malformed record with a clear error', () => {
    assert.throws(() => parseSessionRecord('{"version":1'), (err: unknown) => err instanceof SessionRecordInvalidError && /not JSON/.test(err.message));
    assert.throws(
      () => parseSessionRecord({ version: 1, recordedAt: 1, peer: {}, request: { method: 'POST' } }),
      (err: unknown) =>
        err instanceof SessionRecordInvalidError &&
        err.code === 'TAKEOVER_RECORD_INVALID' &&
        /request\.method/.test(err.message) &&
        err.issues.some((i) => i.startsWith('engine: Required')),
    );
  });
});

describe('takeover building blocks', () => {
  it('splits a client byte stream into whole frames, across chunks, whatever the length encoding', () => {
    const frame = (payload: Buffer, fin = true, opcode = 1): Buffer => {
      const mask = Buffer.from([1, 2, 3, 4]);
      const len = payload.length;
      const head = len < 126 ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | len]) : len < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
      if (len >= 126 && len < 65536) {
        head[0] = (fin ? 0x80 : 0) | opcode;
        head[1] = 0x80 | 126;
        head.writeUInt16BE(len, 2);
      } else if (len >= 65536) {
        head[0] = (fin ? 0x80 : 0) | opcode;
        head[1] = 0x80 | 127;
        head.writeBigUInt64BE(BigInt(len), 2);
      }
      return Buffer.concat([head, mask, payload.map((b, i) => b ^ mask[i % 4]!)]);
    };
    const frames = [frame(Buffer.from('42["a"]')), frame(Buffer.alloc(300, 7), false), frame(Buffer.alloc(70_000, 9), true, 0), frame(Buffer.alloc(0), true, 9)];
    const stream = Buffer.concat(frames);
    const splitter = new FrameSplitter(1_000_000);
    const got: Buffer[] = [];
    for (let i = 0; i < stream.length; i += 997) {
      splitter.push(stream.subarray(i, i + 997));
      for (let f = splitter.next(); f !== null; f = splitter.next()) {
        assert.notEqual(f, FRAME_TOO_LARGE);
        if (f !== FRAME_TOO_LARGE) got.push(f.bytes);
      }
    }
    assert.deepEqual(got.map((b) => b.length), frames.map((b) => b.length));
    assert.ok(Buffer.concat(got).equals(stream));
    assert.equal(splitter.pendingBytes, 0);
    const small = new FrameSplitter(100);
    small.push(frame(Buffer.alloc(200)).subarray(0, 10));
    assert.equal(small.next(), FRAME_TOO_LARGE);
  });

  it('peeks ack ids, namespaces, events and attachments in socket.io packets', () => {
    assert.deepEqual(peekPacket('2/chat,17["offer",{"sdp":"x"}]'), { type: 2, nsp: '/chat', id: 17, attachments: 0, event: 'offer' });
    assert.deepEqual(peekPacket('2["seq",{"n":1}]'), { type: 2, nsp: '/', id: null, attachments: 0, event: null });
    assert.deepEqual(peekPacket('35[{"ok":true}]'), { type: 3, nsp: '/', id: 5, attachments: 0, event: null });
    assert.deepEqual(peekPacket('51-/chat,3["bin",{"_placeholder":true,"num":0}]'), { type: 5, nsp: '/chat', id: 3, attachments: 1, event: 'bin' });
    assert.equal(peekPacket('hello'), null);
  });

  it('restores a staged session once, and only with its one-time offset', async () => {
    const io = new Server({ ...takeoverServerOptions() });
    const adapter = io.of('/').adapter as unknown as TakeoverAdapter;
    assert.ok(adapter instanceof TakeoverAdapter);
    const session = { sid: 'sock-1', pid: 'pid-1', rooms: ['sock-1', 'r'], data: { a: 1 }, missedPackets: [] };
    const offset = adapter.stage(session, () => {});
    assert.equal(await adapter.restoreSession('pid-1', 'guessed'), null, 'a wrong offset gets nothing');
    assert.equal(await adapter.restoreSession('pid-1', offset), session);
    assert.equal(await adapter.restoreSession('pid-1', offset), null, 'one time only');
    adapter.unstage(session);
    assert.equal(adapter.stagedCount, 0);
  });
});
