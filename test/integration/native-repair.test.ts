// The takeover primitive end to end, in a network namespace made for the test:
// a client process exchanges numbered lines with a "primary" socket; the test
// repeatedly kills that socket silently (repair mode, then close: no FIN/RST)
// and rebuilds the connection with repairConnection() from what a standby
// would have: the capture (sequence numbers, windows, timestamps, the client's
// bytes) and the output log (what the old socket had sent beyond the client's
// last ACK goes into the send queue as in flight, the rest is written
// normally). The client must see no loss, duplicate or EOF.
//
// The file runs twice: under node --test it creates the namespace and re-runs
// itself inside it (test/helpers/namespace-scenario.ts), where the scenario
// runs and prints its result.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { ManagedProcess } from '../../mcu/src/core/child-process.ts';
import { thisHost } from '../../mcu/src/core/host-commands.ts';
import {
  adoptFd,
  PacketCapture,
  readSequenceNumbers,
  repairConnection,
  seqAdd,
  seqAfter,
  seqDiff,
  setMark,
  setRepair,
  RepairMode,
  socketFd,
  takeoverTimestamp,
  TcpFlag,
  type RepairState,
  type TcpSegment,
} from '../../native/src/index.ts';
import { isInnerRun, nativeSkipReason, playScenario, runSelfInNamespace } from '../helpers/namespace-scenario.ts';

const ITERATIONS = 20;
/** Traffic between two takeovers. */
const DWELL_MS = 60;
/** Both sides send a numbered line this often. */
const LINE_INTERVAL_MS = 2;
/** Every few takeovers, a line this long is written just before the kill, so unacknowledged output must be rewritten. */
const BURST_BYTES = 256 * 1024;
const BURST_EVERY = 4;
/** Longest wait for the client to answer after the last takeover (a stalled connection fails here). */
const SETTLE_TIMEOUT_MS = 15_000;
/** SO_MARK of a deliberate close: the namespace's firewall lets its FIN through. */
const CLOSE_MARK = 0x7a11;

const thisFile = fileURLToPath(import.meta.url);

// ---------------------------------------------------------------------------
// The client: a separate, stock Node process that knows nothing of takeovers.
const CLIENT_JS = `
const net = require('node:net');
const port = Number(process.argv[1]);
const interval = Number(process.argv[2]);
const sock = net.connect(port, '127.0.0.1');
sock.setNoDelay(true);
let sent = 0, expected = 0, buf = '', done = false, reported = false, lastRx = 0, maxGapMs = 0, timer;
const gaps = [];
const errors = [];
sock.on('connect', () => {
  timer = setInterval(() => sock.write('c ' + (sent++) + '\\n'), interval);
});
sock.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    const now = performance.now();
    if (lastRx && !done) {
      maxGapMs = Math.max(maxGapMs, now - lastRx);
      if (now - lastRx > 10) gaps.push({ atMs: performance.timeOrigin + now, gapMs: now - lastRx });
    }
    lastRx = now;
    if (line === 'done') {
      done = true;
      clearInterval(timer);
      sock.write('cdone ' + (sent - 1) + '\\n');
      continue;
    }
    const m = /^s (\\d+)( x*)?$/.exec(line);
    if (!m || Number(m[1]) !== expected) errors.push('expected "s ' + expected + '", got ' + JSON.stringify(line.slice(0, 40)));
    else expected++;
  }
});
sock.on('error', (e) => errors.push('socket error ' + e.code));
sock.on('end', () => report('end'));
sock.on('close', () => report('close'));
process.stdin.on('end', () => process.exit(3));
process.stdin.resume();
function report(event) {
  if (reported) return;
  reported = true;
  clearInterval(timer);
  console.log(JSON.stringify({ sent, received: expected, errors, doneBeforeEof: done, firstEvent: event, maxGapMs, gaps }));
  sock.destroy();
  process.exit(0);
}
`;

// ---------------------------------------------------------------------------
// What a standby learns from the capture.

/** Reassembles one direction's byte stream from captured segments, by sequence number. */
class StreamReassembler {
  #chunks: Buffer[] = [];
  #length = 0;
  #pending = new Map<number, Buffer>();
  constructor(readonly base: number) {}

  get length(): number {
    return this.#length;
  }

  add(seq: number, payload: Buffer): void {
    if (payload.length === 0) return;
    const offset = seqDiff(seq, this.base);
    const end = offset + payload.length;
    if (end <= this.#length) return; // retransmission of bytes we have
    if (offset > this.#length) {
      this.#pending.set(offset, Buffer.from(payload));
      return;
    }
    this.#append(payload.subarray(this.#length - offset));
    for (let progressed = true; progressed; ) {
      progressed = false;
      for (const [off, data] of this.#pending) {
        if (off <= this.#length) {
          this.#pending.delete(off);
          if (off + data.length > this.#length) this.#append(data.subarray(this.#length - off));
          progressed = true;
        }
      }
    }
  }

  slice(from: number): Buffer {
    return Buffer.concat(this.#chunks).subarray(from);
  }

  #append(data: Buffer): void {
    this.#chunks.push(Buffer.from(data));
    this.#length += data.length;
  }
}

/** The per-connection view a standby builds from the capture. */
class ConnectionObserver {
  syn?: TcpSegment;
  synAck?: TcpSegment;
  clientStream?: StreamReassembler;
  /** The client's highest ACK, the segment that carried it, its window and the time it was seen. */
  lastClientAck?: { ack: number; seq: number; window: number; tsecr?: number; tsNs: bigint };
  lastServer?: { ack: number; window: number; tsval?: number; tsNs: bigint };
  /** Sequence number after the last byte the server was seen sending. */
  serverSentEnd?: number;
  segments = 0;

  constructor(readonly port: number) {}

  onSegment(s: TcpSegment): void {
    this.segments++;
    const fromClient = s.dstPort === this.port;
    if ((s.flags & TcpFlag.SYN) !== 0) {
      if (fromClient) {
        this.syn = s;
        this.clientStream = new StreamReassembler(seqAdd(s.seq, 1));
      } else {
        this.synAck = s;
      }
      return;
    }
    if (fromClient) {
      this.clientStream?.add(s.seq, s.payload);
      if ((s.flags & TcpFlag.ACK) !== 0) {
        const prev = this.lastClientAck;
        // RFC 793's window update rule: a newer ACK, or the same ACK on a newer segment.
        if (!prev || seqAfter(s.ack, prev.ack) || (s.ack === prev.ack && !seqAfter(prev.seq, s.seq))) {
          this.lastClientAck = { ack: s.ack, seq: s.seq, window: s.window, tsecr: s.options.tsecr, tsNs: s.tsNs };
        }
      }
    } else if ((s.flags & TcpFlag.ACK) !== 0) {
      const end = seqAdd(s.seq, s.payload.length);
      if (this.serverSentEnd === undefined || seqAfter(end, this.serverSentEnd)) this.serverSentEnd = end;
      const prev = this.lastServer;
      if (!prev || !seqAfter(prev.ack, s.ack)) {
        this.lastServer = { ack: s.ack, window: s.window, tsval: s.options.tsval ?? prev?.tsval, tsNs: s.tsNs };
      }
    }
  }

  /** The repair state for the connection as the capture saw it up to now. */
  repairState(localPort: number): RepairState & { clientBase: number; serverBase: number } {
    const { syn, synAck, clientStream, lastClientAck, lastServer } = this;
    if (!syn || !synAck || !clientStream || !lastClientAck || !lastServer) throw new Error('capture incomplete');
    const recvSeq = seqAdd(clientStream.base, clientStream.length);
    const clientWscale = syn.options.wscale ?? 0;
    const serverWscale = synAck.options.wscale ?? 0;
    const windowBytes = lastClientAck.window << clientWscale;
    // Capture stamps are CLOCK_REALTIME (SO_TIMESTAMPNS).
    const elapsedMs = Date.now() - Number(lastClientAck.tsNs / 1_000_000n);
    return {
      localAddress: syn.dstIp,
      localPort,
      remoteAddress: syn.srcIp,
      remotePort: syn.srcPort,
      sendSeq: lastClientAck.ack,
      recvSeq,
      mss: syn.options.mss ?? 536,
      ...(syn.options.wscale !== undefined && synAck.options.wscale !== undefined
        ? { sndWscale: clientWscale, rcvWscale: serverWscale }
        : {}),
      sackPermitted: syn.options.sackPerm === true && synAck.options.sackPerm === true,
      timestamps: syn.options.tsval !== undefined && synAck.options.tsval !== undefined,
      tsVal: takeoverTimestamp({
        lastServerTsval: lastServer.tsval,
        lastClientTsecr: lastClientAck.tsecr,
        elapsedMs: Math.max(0, elapsedMs),
        marginMs: 1,
      }),
      window: {
        sndWl1: lastClientAck.seq,
        sndWnd: windowBytes,
        maxWindow: windowBytes,
        rcvWnd: lastServer.window << serverWscale,
        rcvWup: lastServer.ack,
      },
      clientBase: clientStream.base,
      serverBase: seqAdd(synAck.seq, 1),
    };
  }
}

// ---------------------------------------------------------------------------
// The "application" on the server side: its state is what a checkpoint holds,
// so it survives the takeover (consumed input offset, parser, output log).
class LineApp {
  consumed = 0;
  consumedBytes: Buffer[] = [];
  outputLog: Buffer[] = [];
  outputLength = 0;
  nextServerLine = 0;
  expectedClientLine = 0;
  clientDone: number | undefined;
  errors: string[] = [];
  #partial = '';
  #socket: net.Socket | undefined;
  #onClientDone: (() => void) | undefined;

  attach(socket: net.Socket): void {
    this.#socket = socket;
    socket.on('data', (d: Buffer) => this.input(d));
    socket.on('error', (e) => this.errors.push(`server socket error ${(e as NodeJS.ErrnoException).code}`));
  }

  detach(): net.Socket | undefined {
    const s = this.#socket;
    s?.removeAllListeners('data');
    s?.removeAllListeners('error');
    s?.on('error', () => {});
    this.#socket = undefined;
    return s;
  }

  input(data: Buffer): void {
    this.consumed += data.length;
    this.consumedBytes.push(Buffer.from(data));
    this.#partial += data.toString('latin1');
    let i: number;
    while ((i = this.#partial.indexOf('\n')) >= 0) {
      const line = this.#partial.slice(0, i);
      this.#partial = this.#partial.slice(i + 1);
      const done = /^cdone (\d+)$/.exec(line);
      if (done) {
        this.clientDone = Number(done[1]);
        this.#onClientDone?.();
      } else if (line !== `c ${this.expectedClientLine}`) {
        this.errors.push(`expected "c ${this.expectedClientLine}", got ${JSON.stringify(line.slice(0, 40))}`);
      } else {
        this.expectedClientLine++;
      }
    }
  }

  write(text: string): void {
    const data = Buffer.from(text, 'latin1');
    this.outputLog.push(data);
    this.outputLength += data.length;
    this.#socket?.write(data);
  }

  writeRaw(socket: net.Socket, data: Buffer): void {
    if (data.length > 0) socket.write(data);
  }

  /** Output-log bytes [start, end), without copying the whole log. */
  outputRange(start: number, end = this.outputLength): Buffer {
    const parts: Buffer[] = [];
    let chunkEnd = this.outputLength;
    for (let i = this.outputLog.length - 1; i >= 0 && chunkEnd > start; i--) {
      const chunk = this.outputLog[i];
      const chunkStart = chunkEnd - chunk.length;
      if (chunkStart < end) parts.unshift(chunk.subarray(Math.max(0, start - chunkStart), Math.min(chunk.length, end - chunkStart)));
      chunkEnd = chunkStart;
    }
    return Buffer.concat(parts);
  }

  whenClientDone(): Promise<void> {
    if (this.clientDone !== undefined) return Promise.resolve();
    return new Promise((resolve) => (this.#onClientDone = resolve));
  }
}

interface IterationTiming {
  /** When the old socket was silenced, epoch ms. */
  atMs: number;
  /** repairConnection() alone. */
  rebuildUs: number;
  /** From silencing the old socket to the output rewrite queued on the new one. */
  takeoverUs: number;
  /** Captured client bytes the application had not consumed, handed to it from the capture. */
  replayedInputBytes: number;
  /** Output the old socket had sent beyond the client's last ACK, queued as in flight. */
  inFlightOutputBytes: number;
  /** Output-log bytes the old socket had not sent, written normally. */
  rewrittenOutputBytes: number;
}

interface InnerResult {
  iterations: IterationTiming[];
  client: {
    sent: number;
    received: number;
    errors: string[];
    doneBeforeEof: boolean;
    firstEvent: string;
    maxGapMs: number;
    /** Gaps over 10 ms between server lines at the client, ending at atMs (epoch ms). */
    gaps: Array<{ atMs: number; gapMs: number }>;
  };
  server: { expectedClientLine: number; clientDone: number | undefined; errors: string[]; linesSent: number };
  capture: { packets: number; drops: number; truncated: number; unparsed: number; segments: number };
  checks: string[];
}

async function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** process.hrtime.bigint() in ms at performance's time origin, to turn hrtime stamps into epoch ms. */
const hrtimeOriginMs = Number(process.hrtime.bigint()) / 1e6 - performance.now();

async function runInner(): Promise<InnerResult> {
  const checks: string[] = [];
  const table = `tkt_${process.pid}`;
  const server = net.createServer({ pauseOnConnect: false });
  let capture: PacketCapture | undefined;
  let client: ManagedProcess | undefined;
  let current: net.Socket | undefined;
  let nftInstalled = false;
  try {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;

    // The primary host's rule (design notes 4): no FIN/RST leaves the service
    // port unless the socket carries the deliberate-close mark. Here it also
    // drops the listener's RST to a client segment that lands mid-takeover.
    await thisHost.run(['nft', '-f', '-'], {
      input: `table inet ${table} {
  chain out {
    type filter hook output priority 0; policy accept;
    tcp sport ${port} tcp flags & (fin | rst) != 0 meta mark != ${CLOSE_MARK} drop
  }
}
`,
    });
    nftInstalled = true;

    const observer = new ConnectionObserver(port);
    capture = new PacketCapture({ interface: 'lo', port });
    capture.on('segments', (batch) => batch.forEach((s) => observer.onSegment(s)));

    const app = new LineApp();
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    client = ManagedProcess.spawn(process.execPath, ['-e', CLIENT_JS, String(port), String(LINE_INTERVAL_MS)], { label: 'line client', stdin: 'pipe', echoStderr: '' });

    current = await accepted;
    current.setNoDelay(true);
    app.attach(current);
    const sender = setInterval(() => app.write(`s ${app.nextServerLine++}\n`), LINE_INTERVAL_MS);

    const iterations: IterationTiming[] = [];
    try {
      for (let i = 0; i < ITERATIONS; i++) {
        await new Promise((r) => setTimeout(r, DWELL_MS));
        if (i % BURST_EVERY === BURST_EVERY - 1) app.write(`s ${app.nextServerLine++} ${'x'.repeat(BURST_BYTES)}\n`);
        const old = current;
        const oldFd = socketFd(old);
        // Diagnostics only (a dead primary cannot be asked): the kernel's view just before.
        const kernel = readSequenceNumbers(oldFd);

        const t0 = process.hrtime.bigint();
        setRepair(oldFd, RepairMode.ON); // from here the old socket sends nothing
        app.detach();
        old.destroy();
        capture.drain(); // every frame seen so far reaches the observer
        const state = observer.repairState(port);
        const ackOffset = seqDiff(state.sendSeq, state.serverBase);
        const sentOffset = Math.max(ackOffset, seqDiff(observer.serverSentEnd ?? state.sendSeq, state.serverBase));
        const inFlight = app.outputRange(ackOffset, sentOffset);
        const t1 = process.hrtime.bigint();
        const fd = repairConnection({ ...state, sendQueue: inFlight });
        const t2 = process.hrtime.bigint();
        const next = adoptFd(fd);
        // Input: captured client bytes the application never consumed.
        const replay = observer.clientStream!.slice(app.consumed);
        const consumedBefore = app.consumed;
        app.attach(next);
        if (replay.length > 0) app.input(replay);
        // Output: what the old socket had transmitted beyond the client's last
        // ACK went into the send queue as in flight (see sendQueue); the rest
        // of the log is written as ordinary data.
        const rewrite = app.outputRange(sentOffset);
        app.writeRaw(next, rewrite);
        const t3 = process.hrtime.bigint();
        current = next;

        // The capture must never be behind what the primary's kernel acknowledged.
        const capturedEnd = seqDiff(state.recvSeq, state.clientBase);
        const kernelEnd = seqDiff(kernel.recvSeq, state.clientBase);
        if (capturedEnd < kernelEnd) checks.push(`iteration ${i}: capture ${capturedEnd} behind kernel ${kernelEnd}`);
        if (ackOffset < 0 || sentOffset > app.outputLength) {
          checks.push(`iteration ${i}: client ACK ${ackOffset} / sent ${sentOffset} outside the log (${app.outputLength})`);
        }
        const consumedPrefix = Buffer.concat(app.consumedBytes).subarray(0, consumedBefore);
        if (!observer.clientStream!.slice(0).subarray(0, consumedBefore).equals(consumedPrefix)) {
          checks.push(`iteration ${i}: captured client stream differs from what the application read`);
        }
        iterations.push({
          atMs: performance.timeOrigin + Number(t0) / 1e6 - hrtimeOriginMs,
          rebuildUs: Number(t2 - t1) / 1000,
          takeoverUs: Number(t3 - t0) / 1000,
          replayedInputBytes: replay.length,
          inFlightOutputBytes: inFlight.length,
          rewrittenOutputBytes: rewrite.length,
        });
      }
    } finally {
      clearInterval(sender);
    }

    app.write('done\n');
    await withTimeout(app.whenClientDone(), SETTLE_TIMEOUT_MS, 'the client never answered "done": connection stalled after a takeover');
    // Deliberate close: the mark lets the FIN through the firewall.
    setMark(socketFd(current), CLOSE_MARK);
    current.end();
    await withTimeout(client.exited, SETTLE_TIMEOUT_MS, 'the client did not see the deliberate close');
    const clientReport = (await client.waitFor((e) => 'firstEvent' in e)) as unknown as InnerResult['client'];
    capture.drain();
    const stats = capture.stats();
    return {
      iterations,
      client: clientReport,
      server: {
        expectedClientLine: app.expectedClientLine,
        clientDone: app.clientDone,
        errors: app.errors,
        linesSent: app.nextServerLine,
      },
      capture: { ...stats, segments: observer.segments },
      checks,
    };
  } finally {
    capture?.close();
    current?.destroy();
    await client?.kill();
    server.close();
    if (nftInstalled) await thisHost.run(['nft', 'delete', 'table', 'inet', table], { check: false });
  }
}

// ---------------------------------------------------------------------------

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

if (isInnerRun()) {
  // The outer test kills us on its own timeout; this bounds a hang before the settle timeouts apply.
  await playScenario(runInner, 90_000);
} else {
  const skip = await nativeSkipReason(['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN'], ['ip', 'nft']);
  describe('TCP_REPAIR takeover of a live connection (network namespace, loopback)', { skip }, () => {
    it(`survives ${ITERATIONS} silent kills of the server socket with no loss, duplicate or EOF`, { timeout: 120_000 }, async () => {
      const ns = `tkt-${process.pid}-repair`;
      await thisHost.run(['ip', 'netns', 'add', ns]);
      try {
        await thisHost.run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
        const result = await runSelfInNamespace<InnerResult>(thisFile, ns, 110_000);

        const rebuild = result.iterations.map((t) => t.rebuildUs).sort((a, b) => a - b);
        const takeover = result.iterations.map((t) => t.takeoverUs).sort((a, b) => a - b);
        console.log(
          `rebuild (repairConnection) us: min ${rebuild[0].toFixed(0)} median ${percentile(rebuild, 50).toFixed(0)} ` +
            `max ${rebuild[rebuild.length - 1].toFixed(0)}; whole takeover us: min ${takeover[0].toFixed(0)} ` +
            `median ${percentile(takeover, 50).toFixed(0)} max ${takeover[takeover.length - 1].toFixed(0)}`,
        );
        console.log(
          `per iteration rebuild us: ${result.iterations.map((t) => t.rebuildUs.toFixed(0)).join(' ')}; ` +
            `replayed input bytes: ${result.iterations.map((t) => t.replayedInputBytes).join(' ')}; ` +
            `in-flight output bytes: ${result.iterations.map((t) => t.inFlightOutputBytes).join(' ')}; ` +
            `rewritten output bytes: ${result.iterations.map((t) => t.rewrittenOutputBytes).join(' ')}`,
        );
        console.log(
          `client: ${result.client.sent} lines sent, ${result.client.received} received, max gap ${result.client.maxGapMs.toFixed(1)} ms; ` +
            `capture: ${result.capture.segments} segments, ${result.capture.drops} drops`,
        );

        const gapNotes = result.client.gaps.map((g) => {
          const start = g.atMs - g.gapMs;
          const during = result.iterations.some((t) => t.atMs >= start - 1 && t.atMs <= g.atMs);
          return `${g.gapMs.toFixed(1)} ms${during ? ' (spans a takeover)' : ''}`;
        });
        console.log(`client gaps over 10 ms: ${gapNotes.length > 0 ? gapNotes.join(', ') : 'none'}`);

        assert.equal(result.iterations.length, ITERATIONS);
        assert.deepEqual(result.checks, []);
        assert.deepEqual(result.client.errors, [], 'client saw every server line once, in order');
        assert.equal(result.client.doneBeforeEof, true, 'no EOF before the deliberate close');
        assert.equal(result.client.firstEvent, 'end', 'the deliberate close arrived as a FIN');
        assert.equal(result.client.received, result.server.linesSent);
        assert.deepEqual(result.server.errors, [], 'server saw every client line once, in order');
        assert.equal(result.server.clientDone, result.client.sent - 1);
        assert.equal(result.server.expectedClientLine, result.client.sent);
        assert.equal(result.capture.drops, 0);
        assert.ok(result.client.received > ITERATIONS * 5, 'traffic flowed between takeovers');
      } finally {
        await thisHost.run(['ip', 'netns', 'del', ns], { check: false });
      }
    });
  });
}
