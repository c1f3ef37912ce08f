/**
 * Output commit (design notes section 3): every byte the primary writes to a client's
 * signaling connection is first appended to the standby's output log (an OutputLogChunk in a
 * binary replication frame) and reaches the kernel only once the standby acknowledged that
 * frame. Without it a promoted standby could send different bytes at an offset the client
 * already has. Also replicates each connection's TransportRecord ('transport' blobs on accept
 * and close, consumed-input updates) and, for a standby that joins mid-connection, a snapshot
 * extra from which its log starts.
 *
 * How the write path is held back: the socket's own `_write`/`_writev` are wrapped, so the
 * stream machinery stays Node's: while one commit is in flight the Writable buffers later
 * writes, cork()/uncork() and writev batches arrive as one `_writev`, the next commit carries
 * them all as one frame; write() returns false past the high-water mark counting the bytes
 * awaiting acknowledgement, 'drain' and write callbacks follow the real write to the kernel.
 *
 * Unprotected (no standby, or it was lost mid-commit): bytes pass straight through, logged
 * once per transition, and the connection's output offset still advances. A standby that
 * syncs later gets, per connection, the record and `logStart` = the offset of the first byte
 * it will be sent; bytes before it went to the kernel without it, so it can take the
 * connection over only once the client acknowledged everything before `logStart`
 * (TransportStore.resumeFrom checks that).
 *
 * Standby loss in takeover mode is not always the standby's death: a standby that promoted
 * itself (this primary was frozen, or cut off) stops acknowledging too, and then writing the
 * held output would put bytes on a connection the new primary owns. So a loss asks the
 * `lossPolicy`: `release` writes everything waiting unprotected (as above), `hold` closes the
 * gate: nothing more reaches the kernel (acknowledged commits, pass-through writes, closes)
 * until releaseHeld() (the standby is really gone) or fence() (it took over: nothing of ours
 * is ever written again). See fencing.ts.
 *
 * Consumed input: `setConsumedInput(connId, offset)` at WebSocket frame boundaries. Each
 * update carries `outputAt`, the output offset the application had reached when it made the
 * update, and the standby applies it only once its log reaches `outputAt`: a standby never
 * believes input consumed whose output it lacks (replaying it regenerates that output).
 * Updates ride just before the next commit frame, or go out within `inputFlushMs`.
 */
import { EventEmitter } from 'node:events';
import net, { type Socket } from 'node:net';
import { createLogger, type Logger } from '../../core/logger.ts';
import { preciseNow } from '../../core/clock.ts';
import { safeEmit } from '../../core/events.ts';
import type { ReplicationServer, ReplicationServerEvents } from '../../replication/replication-server.ts';
import { ConnectionAlreadyAttachedError } from '../errors.ts';
import type { TransportRecord } from './transport-record.ts';
import { BlobKind, SnapshotExtraKey, encodeOutputChunk, type InputUpdate, type TransportBlob, type TransportCloseReason, type TransportSnapshotEntry, type TransportsExtra } from '../../wire/index.ts';

/** How the standby went away: `died` (no announcement), `shutdown` (it said so), or our side replaced/closed the server. */
export interface StandbyLoss {
  kind: 'died' | 'shutdown' | 'server-closed' | 'server-replaced';
  /** The lost standby's id and address (`host:port` as seen on the link), empty when the server went. */
  standbyId: string;
  remote: string;
  detail: string;
  at: number;
}

/** What to do with output that waited for a lost standby: write it unprotected, or hold it until decided. */
export type StandbyLossDecision = 'release' | 'hold';

/**
 * The output gate: `open` writes as described above; `held` keeps every release (acknowledged
 * commits, pass-throughs, closes) in order until releaseHeld(); `fenced` drops them for good.
 */
export type OutputGate = 'open' | 'held' | 'fenced';

export type OutputCommitterEvents = {
  /** The output gate changed (hold, release, fence), with why. */
  gate: [to: OutputGate, from: OutputGate, reason: string];
  /** Output is now (true) or no longer (false) committed to a standby before it is written. */
  protection: [isProtected: boolean, reason: string];
  /** A commit was acknowledged and its bytes handed to the kernel. */
  committed: [info: { connId: string; offset: number; bytes: number; latencyMs: number }];
  /** Bytes handed to the kernel without a standby's acknowledgement. */
  unprotected: [info: { connId: string; offset: number; bytes: number; reason: string }];
};

export interface OutputCommitterOptions {
  /** Where the output log goes; null until replication starts (see setReplication). */
  replication?: ReplicationServer | null;
  /** Longest wait of a consumed-input update that no commit frame carries first (default 5 ms). */
  inputFlushMs?: number;
  /** Output bytes per binary frame; larger writes span several frames (default 1 MiB, below the 16 MiB frame limit). */
  maxChunkBytes?: number;
  /** Commit latencies kept for the percentiles (default 4096). */
  latencyWindow?: number;
  /** How long a destroy() waits for a commit in flight, so bytes written just before still reach the client (default 1000 ms). */
  destroyLingerMs?: number;
  /** Input updates kept per connection while their output is not all handed over (default 1024; older ones are merged). */
  maxPendingInput?: number;
  /**
   * Longest wait of an acknowledged commit on a connection that needs a session record for
   * the session record covering its bytes (see requireSessionRecord); then it is written
   * uncovered and counted (default 50 ms).
   */
  recordWaitMs?: number;
  /** Time source (default: epoch ms with sub-ms resolution). */
  clock?: () => number;
  /** Decides what a standby loss does to waiting output (default: always `release`). */
  lossPolicy?: (loss: StandbyLoss) => StandbyLossDecision;
  /** Called before anything is released through an open gate (a fencing guard checks for a stall there and may hold()). */
  beforeRelease?: () => void;
}

export interface CommitLatency {
  samples: number;
  meanMs: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

export interface OutputCommitStats {
  protected: boolean;
  connections: number;
  /** Commits (frames or frame groups) acknowledged before their bytes were written. */
  commits: number;
  committedBytes: number;
  /** Writes handed to the kernel without a standby (none, or lost mid-commit). */
  unprotectedWrites: number;
  unprotectedBytes: number;
  /** Commits released unprotected because the standby went away while they waited. */
  releasedByStandbyLoss: number;
  inFlight: number;
  inputUpdatesSent: number;
  inputBlobsSent: number;
  /** Closes committed (their FIN waited for the standby's acknowledgement). */
  closesCommitted: number;
  /** Acknowledged commits that then waited for the session record covering them. */
  recordWaits: number;
  /** Commits written after recordWaitMs without a covering session record (their connection may not survive a takeover). */
  releasedUncovered: number;
  /** Send-to-acknowledgement time of acknowledged commits (all-time mean; percentiles over the recent window). */
  latency: CommitLatency;
  gate: OutputGate;
  /** Releases waiting behind a held gate now. */
  heldReleases: number;
  /** Times the gate was held, and releases dropped by fence(). */
  holds: number;
  droppedByFence: number;
}

/** What attach() returns: a live view of one connection's output. */
export interface CommittedOutput {
  readonly connId: string;
  /** The live record: consumedInput is the latest reported, committedOutput the bytes handed to the kernel. */
  readonly record: TransportRecord;
  /** Output bytes handed to the committer (the next chunk's offset). */
  readonly offset: number;
  /** Bytes the application wrote (offset plus what waits in the Writable buffer). */
  readonly appended: number;
  /** Bytes waiting for a standby's acknowledgement. */
  readonly inFlightBytes: number;
  readonly closed: boolean;
}

type WriteCallback = (error?: Error | null) => void;
type WritevEntry = { chunk: unknown; encoding: BufferEncoding };

interface ConnState extends CommittedOutput {
  readonly socket: Socket;
  offset: number;
  closed: boolean;
  inflight: PendingCommit | null;
  closeSent: boolean;
  /** Updates whose output is not all handed over yet, oldest first. */
  inputHistory: InputUpdate[];
  /** The latest consumed offset whose output is all handed over. */
  stableInput: number;
  /** Runs once the commit in flight is written (a destroy waiting for it). */
  afterInflight: (() => void) | null;
  /** Closes waiting for the committed close record (a destroy during an end's wait joins it). */
  closeWaiters: Array<() => void> | null;
  originalWrite: Socket['_write'];
  originalWritev: NonNullable<Socket['_writev']>;
  /** Output reaches the kernel only once a session record covering it is acknowledged too. */
  needsRecord: boolean;
  /** The latest session record sent for this connection: its output offset and frame seq. */
  latestRecord: { written: number; seq: number } | null;
  /** An acknowledged commit waiting for a covering session record. */
  parked: PendingCommit | null;
  parkTimer: NodeJS.Timeout | null;
}

interface PendingCommit {
  conn: ConnState;
  kind: 'output' | 'close';
  offset: number;
  bytes: number;
  /** Seq of the (last) frame to be acknowledged; 0 until sent. */
  seq: number;
  startedAt: number;
  release: (acknowledged: boolean) => void;
}

const bytesWrittenDescriptor = Object.getOwnPropertyDescriptor(net.Socket.prototype, 'bytesWritten');

/**
 * Holds each attached socket's output until the standby acknowledged it. One per primary;
 * attach() each takeover-mode connection at accept, before anything is written to it.
 */
export class OutputCommitter extends EventEmitter<OutputCommitterEvents> {
  readonly #clock: () => number;
  readonly #log: Logger;
  readonly #conns = new Map<string, ConnState>();
  /** Commits waiting for an acknowledgement, by the seq of their (last) frame: ascending. */
  readonly #waiting = new Map<number, PendingCommit>();
  readonly #inputFlushMs: number;
  readonly #maxChunkBytes: number;
  readonly #destroyLingerMs: number;
  readonly #maxPendingInput: number;
  readonly #recordWaitMs: number;
  readonly #latencies: Float64Array;
  #latencyNext = 0;
  #latencyCount = 0;
  #latencySum = 0;
  #replication: ReplicationServer | null = null;
  #unhook: (() => void) | null = null;
  /** Highest seq the current standby acknowledged (seqs restart with each standby). */
  #ackedSeq = 0;
  #releaseScheduled = false;
  /** Bumped whenever waiting commits are released unprotected (standby lost, server replaced). */
  #generation = 0;
  #inputQueue: InputUpdate[] = [];
  #inputTimer: NodeJS.Timeout | null = null;
  #protection: 'unknown' | 'protected' | 'unprotected' = 'unknown';
  #closed = false;
  #gate: OutputGate = 'open';
  /** Releases deferred by a held gate, in the order they were due. */
  #held: Array<() => void> = [];
  #holds = 0;
  #droppedByFence = 0;
  #lossPolicy: (loss: StandbyLoss) => StandbyLossDecision;
  #beforeRelease: (() => void) | null;
  #stats = {
    commits: 0,
    committedBytes: 0,
    unprotectedWrites: 0,
    unprotectedBytes: 0,
    releasedByStandbyLoss: 0,
    inputUpdatesSent: 0,
    inputBlobsSent: 0,
    closesCommitted: 0,
    recordWaits: 0,
    releasedUncovered: 0,
  };

  constructor(options: OutputCommitterOptions = {}) {
    super();
    this.#clock = options.clock ?? preciseNow;
    this.#inputFlushMs = options.inputFlushMs ?? 5;
    this.#maxChunkBytes = options.maxChunkBytes ?? 1024 * 1024;
    this.#destroyLingerMs = options.destroyLingerMs ?? 1000;
    this.#maxPendingInput = Math.max(2, options.maxPendingInput ?? 1024);
    this.#recordWaitMs = Math.max(0, options.recordWaitMs ?? 50);
    this.#latencies = new Float64Array(Math.max(16, options.latencyWindow ?? 4096));
    this.#log = createLogger('output-commit');
    this.#lossPolicy = options.lossPolicy ?? (() => 'release');
    this.#beforeRelease = options.beforeRelease ?? null;
    if (options.replication) this.setReplication(options.replication);
  }

  /** Replaces the standby-loss policy (the fencing guard installs its own). */
  setLossPolicy(policy: (loss: StandbyLoss) => StandbyLossDecision, beforeRelease: (() => void) | null = null): void {
    this.#lossPolicy = policy;
    this.#beforeRelease = beforeRelease;
  }

  get gate(): OutputGate {
    return this.#gate;
  }

  /** Closes the gate (idempotent while held): nothing more reaches the kernel until releaseHeld() or fence(). */
  hold(reason: string): void {
    if (this.#gate !== 'open') return;
    this.#holds++;
    this.#setGate('held', reason);
  }

  /** Opens a held gate: everything it kept is written now, in order. No effect once fenced. */
  releaseHeld(reason: string): void {
    if (this.#gate !== 'held') return;
    this.#setGate('open', reason);
    const held = this.#held;
    this.#held = [];
    if (held.length > 0) this.#log.info(`${held.length} held release(s) written: ${reason}`);
    for (const release of held) {
      // A release may hold the gate again (a stall seen meanwhile): the rest waits again.
      if ((this.#gate as OutputGate) === 'open') release();
      else this.#defer(release);
    }
  }

  /**
   * Another primary owns our connections now: nothing of ours may reach them again. Held and
   * waiting output is dropped (its write callbacks never run, so the sockets buffer any later
   * write forever), closes never happen, input is no longer read. Final and idempotent.
   */
  fence(reason: string): void {
    if (this.#gate === 'fenced') return;
    this.#setGate('fenced', reason);
    this.#droppedByFence += this.#held.length + this.#waiting.size;
    this.#held = [];
    this.#waiting.clear();
    if (this.#inputTimer) clearTimeout(this.#inputTimer);
    this.#inputTimer = null;
    this.#inputQueue = [];
    for (const conn of this.#conns.values()) {
      if (conn.parkTimer) clearTimeout(conn.parkTimer);
      conn.parkTimer = null;
      conn.parked = null;
      conn.afterInflight = null;
      // Nothing read can be answered: stop consuming the clients' input.
      conn.socket.pause();
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Whether a standby is connected: output is committed to it before it is written. */
  get protected(): boolean {
    return !this.#closed && this.#standbyConnected();
  }

  /**
   * Uses `server` for the output log from now on (null: none, everything passes through).
   * Commits waiting on the previous server are released unprotected.
   */
  setReplication(server: ReplicationServer | null): void {
    if (server === this.#replication) return;
    this.#unhook?.();
    this.#unhook = null;
    this.#replication = null;
    this.#releaseAllUnprotected('replication server replaced', { kind: 'server-replaced', standbyId: '', remote: '', detail: 'replication server replaced', at: this.#clock() });
    if (!server || this.#closed) return;
    this.#replication = server;
    const onAcked = (info: { seq: number }): void => this.#onAcked(info.seq);
    const onLost = (info: ReplicationServerEvents['standby-lost'][0]): void => {
      this.#releaseAllUnprotected(`standby ${info.standbyId} lost (${info.reason}: ${info.detail})`, {
        kind: info.reason === 'died' ? 'died' : 'shutdown',
        standbyId: info.standbyId,
        remote: info.remote,
        detail: info.detail,
        at: this.#clock(),
      });
    };
    const onClose = (): void =>
      this.#releaseAllUnprotected('replication server closed', { kind: 'server-closed', standbyId: '', remote: '', detail: 'replication server closed', at: this.#clock() });
    server.on('acked', onAcked);
    server.on('standby-lost', onLost);
    server.on('close', onClose);
    const removeExtra = server.addSnapshotExtra(() => ({ [SnapshotExtraKey.Transports]: this.#snapshotExtra() }));
    this.#unhook = () => {
      server.off('acked', onAcked);
      server.off('standby-lost', onLost);
      server.off('close', onClose);
      removeExtra();
    };
    // A standby already synced from a snapshot without our records: announce them now.
    if (this.#standbyConnected()) this.#announceAll();
  }

  /**
   * Wraps `socket`'s write path (and its closes) for output commit and announces the record to
   * the standby. Call at accept, before anything is written (TransportAcceptor 'connection'),
   * or for a connection this process took over: then `outputBase` is the output offset of the
   * socket's first byte written here (what the previous primaries wrote before it).
   */
  attach(record: TransportRecord, socket: Socket, outputBase = 0): CommittedOutput {
    if (this.#conns.has(record.connId)) throw new ConnectionAlreadyAttachedError(record.connId);
    const written = outputBase + currentBytesWritten(socket);
    if (written > 0 && outputBase === 0) this.#log.warn(`connection ${record.connId} attached after ${written} bytes were written: its log starts there`);
    const conn: ConnState = {
      connId: record.connId,
      record,
      socket,
      offset: written,
      closed: false,
      inflight: null,
      closeSent: false,
      inputHistory: [],
      stableInput: record.consumedInput,
      afterInflight: null,
      closeWaiters: null,
      originalWrite: socket._write,
      originalWritev: socket._writev ?? net.Socket.prototype._writev!,
      needsRecord: false,
      latestRecord: null,
      parked: null,
      parkTimer: null,
      get appended(): number {
        return outputBase + currentBytesWritten(socket);
      },
      get inFlightBytes(): number {
        return this.inflight?.bytes ?? 0;
      },
    };
    record.committedOutput = written;
    this.#conns.set(record.connId, conn);
    this.#hookSocket(conn);
    this.#sendBlob({ op: 'accept', record: { ...record }, logStart: written });
    return conn;
  }

  /**
   * From now on `connId`'s output reaches the kernel only once the standby also acknowledged
   * a session record whose output offset covers it (noteSessionRecord), so a standby never
   * holds output the client may have without the session state that produced it. Off again
   * for a connection whose session can never be recorded.
   */
  requireSessionRecord(connId: string, required: boolean): void {
    const conn = this.#conns.get(connId);
    if (!conn || conn.needsRecord === required) return;
    conn.needsRecord = required;
    if (!required && conn.parked) this.#unpark(conn, true);
  }

  /** A session record of `connId` covering its output up to `written` went out in frame `seq`. */
  noteSessionRecord(connId: string, written: number, seq: number): void {
    const conn = this.#conns.get(connId);
    if (!conn) return;
    if (!conn.latestRecord || written >= conn.latestRecord.written) conn.latestRecord = { written, seq };
    const parked = conn.parked;
    if (parked && written >= parked.offset + parked.bytes) {
      this.#unpark(conn, false);
      parked.seq = seq;
      this.#waiting.set(seq, parked);
      if (seq <= this.#ackedSeq) this.#onAcked(this.#ackedSeq);
    }
  }

  /** A live connection's view, by id. */
  connection(connId: string): CommittedOutput | undefined {
    return this.#conns.get(connId);
  }

  /** Copies of the records of the attached connections. */
  records(): TransportRecord[] {
    return [...this.#conns.values()].map((c) => ({ ...c.record }));
  }

  /**
   * The application consumed the client's bytes up to `offset` (a WebSocket frame boundary).
   * Call after the frame's handlers ran, so output they wrote counts as the frame's. Ignored
   * for unknown (reconnect-mode, closed) connections and for offsets that do not advance.
   */
  setConsumedInput(connId: string, offset: number): void {
    const conn = this.#conns.get(connId);
    if (!conn || conn.closed) return;
    if (!Number.isSafeInteger(offset) || offset <= conn.record.consumedInput) return;
    conn.record.consumedInput = offset;
    const outputAt = conn.appended;
    const history = conn.inputHistory;
    const last = history[history.length - 1];
    if (last && last.outputAt === outputAt) last.consumedInput = offset;
    else history.push({ connId, consumedInput: offset, outputAt });
    this.#settleInput(conn);
    if (history.length > this.#maxPendingInput) {
      // Output stalled for long: merging loses only precision (an older offset stays in force longer).
      const [a, b] = history.splice(0, 2) as [InputUpdate, InputUpdate];
      history.unshift({ ...b, outputAt: Math.max(a.outputAt, b.outputAt) });
    }
    const queued = this.#inputQueue[this.#inputQueue.length - 1];
    if (queued && queued.connId === connId && queued.outputAt === outputAt) queued.consumedInput = offset;
    else this.#inputQueue.push({ connId, consumedInput: offset, outputAt });
    if (!this.#inputTimer) {
      this.#inputTimer = setTimeout(() => {
        this.#inputTimer = null;
        this.#flushInput();
      }, this.#inputFlushMs);
      this.#inputTimer.unref();
    }
  }

  stats(): OutputCommitStats {
    let inFlight = 0;
    for (const c of this.#conns.values()) if (c.inflight) inFlight++;
    return {
      protected: this.protected,
      connections: this.#conns.size,
      inFlight,
      ...this.#stats,
      latency: this.#latencySummary(),
      gate: this.#gate,
      heldReleases: this.#held.length,
      holds: this.#holds,
      droppedByFence: this.#droppedByFence,
    };
  }

  /**
   * Stops committing (idempotent): waiting commits are released unprotected and attached
   * sockets keep working, their output passing straight through.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.setReplication(null);
    if (this.#inputTimer) clearTimeout(this.#inputTimer);
    this.#inputTimer = null;
    this.#inputQueue = [];
  }

  // ---- the socket side ----

  #hookSocket(conn: ConnState): void {
    const socket = conn.socket;
    socket._write = (chunk: unknown, encoding: BufferEncoding, cb: WriteCallback) => {
      this.#submit(conn, [toBuffer(chunk, encoding)], cb);
    };
    socket._writev = (chunks: WritevEntry[], cb: WriteCallback) => {
      this.#submit(
        conn,
        chunks.map((c) => toBuffer(c.chunk, c.encoding)),
        cb,
      );
    };
    // Node counts buffered bytes in bytesWritten; bytes held for a commit are buffered too.
    if (bytesWrittenDescriptor?.get) {
      const get = bytesWrittenDescriptor.get;
      Object.defineProperty(socket, 'bytesWritten', {
        configurable: true,
        enumerable: false,
        get(): number | undefined {
          const base = get.call(socket) as number | undefined;
          return base === undefined ? undefined : base + (conn.inflight?.kind === 'output' ? conn.inflight.bytes : 0);
        },
      });
    }
    const final = socket._final;
    const destroy = socket._destroy;
    // The FIN is output too: the standby must know the connection is closing before the client can.
    socket._final = (cb) => this.#beforeClose(conn, 'end', () => final.call(socket, cb));
    socket._destroy = (err, cb) => {
      if (err) {
        // Broken connection: nothing more can reach the client, do not hold its close.
        this.#sendClose(conn, 'error');
        destroy.call(socket, err, cb);
        return;
      }
      this.#beforeClose(conn, 'destroy', () => destroy.call(socket, err, cb));
    };
    socket.once('close', () => {
      conn.closed = true;
      if (conn.parked) this.#unpark(conn, true);
      this.#sendClose(conn, 'closed');
      this.#conns.delete(conn.connId);
      conn.inputHistory = [];
    });
  }

  #submit(conn: ConnState, bufs: Buffer[], cb: WriteCallback): void {
    if (this.#gate === 'fenced') {
      // Never written, never acknowledged: the Writable keeps everything after it buffered.
      this.#droppedByFence++;
      return;
    }
    let bytes = 0;
    for (const b of bufs) bytes += b.length;
    const offset = conn.offset;
    conn.offset += bytes;
    const commit: PendingCommit = {
      conn,
      kind: 'output',
      offset,
      bytes,
      seq: 0,
      startedAt: this.#clock(),
      release: () => this.#write(conn, commit, bufs, cb),
    };
    conn.inflight = commit;
    if (bytes === 0) {
      commit.release(true);
      return;
    }
    const server = this.#activeServer();
    if (!server) {
      this.#passThrough(commit, this.#replication ? 'no standby connected' : 'no replication');
      return;
    }
    const generation = this.#generation;
    this.#flushInput();
    let seq: number | null = null;
    try {
      const data = bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs, bytes);
      // Large writes span frames; the commit waits for the last one (acks are cumulative).
      for (let at = 0; at < data.length; at += this.#maxChunkBytes) {
        const piece = data.subarray(at, at + this.#maxChunkBytes);
        seq = server.sendBinary(encodeOutputChunk({ connId: conn.connId, offset: offset + at, data: piece }));
        if (seq === null) break;
      }
    } catch (err) {
      this.#log.error(`output commit of ${bytes} bytes on ${conn.connId} not sent: ${errorText(err)}`, { conn: conn.connId });
      seq = null;
    }
    if (seq === null) {
      this.#passThrough(commit, 'no standby connected');
      return;
    }
    if (!this.#wait(commit, seq, generation)) return;
    this.#noteProtection(true, 'output committed to the standby');
  }

  /**
   * Parks a sent commit until its acknowledgement. A link that died while sending (it closes
   * synchronously, e.g. a standby that stopped reading) already released everything waiting:
   * then this one passes through at once instead of waiting for an ack that cannot come.
   */
  #wait(commit: PendingCommit, seq: number, generation: number): boolean {
    if (generation !== this.#generation || !this.#activeServer()) {
      this.#passThrough(commit, 'standby lost while sending');
      return false;
    }
    commit.seq = seq;
    this.#waiting.set(seq, commit);
    return true;
  }

  /** The real write: called once the commit is acknowledged or passed through. */
  #write(conn: ConnState, commit: PendingCommit, bufs: Buffer[], cb: WriteCallback): void {
    if (conn.inflight === commit) conn.inflight = null;
    conn.record.committedOutput = commit.offset + commit.bytes;
    this.#settleInput(conn);
    const socket = conn.socket;
    try {
      if (bufs.length === 1) {
        conn.originalWrite.call(socket, bufs[0], 'buffer' as BufferEncoding, cb);
      } else {
        const entries = bufs.map((chunk) => ({ chunk, encoding: 'buffer' as BufferEncoding })) as WritevEntry[] & { allBuffers?: boolean };
        entries.allBuffers = true;
        conn.originalWritev.call(socket, entries, cb);
      }
    } catch (err) {
      cb(err instanceof Error ? err : new Error(String(err)));
    }
    const after = conn.afterInflight;
    if (after) {
      conn.afterInflight = null;
      after();
    }
  }

  #passThrough(commit: PendingCommit, reason: string): void {
    if (!this.#gateOpen()) {
      this.#defer(() => this.#passThrough(commit, reason));
      return;
    }
    this.#noteProtection(false, reason);
    if (commit.kind === 'output') {
      this.#stats.unprotectedWrites++;
      this.#stats.unprotectedBytes += commit.bytes;
      safeEmit(this, this.#log, 'unprotected', { connId: commit.conn.connId, offset: commit.offset, bytes: commit.bytes, reason });
    }
    commit.release(false);
  }

  /** Holds a deliberate close until the standby knows of it (and a destroy until the write in flight is out). */
  #beforeClose(conn: ConnState, reason: 'end' | 'destroy', closeNow: () => void): void {
    // The FIN (or RST) is output as well: it waits behind a held gate and never goes once fenced.
    const proceed = (): void => {
      if (this.#gateOpen()) closeNow();
      else this.#defer(proceed);
    };
    const commitClose = (): void => {
      if (conn.closeWaiters) {
        conn.closeWaiters.push(proceed);
        return;
      }
      const server = this.#activeServer();
      if (!server || conn.closeSent) {
        this.#sendClose(conn, reason);
        proceed();
        return;
      }
      const commit: PendingCommit = {
        conn,
        kind: 'close',
        offset: conn.offset,
        bytes: 0,
        seq: 0,
        startedAt: this.#clock(),
        release: (acknowledged) => {
          if (acknowledged) this.#stats.closesCommitted++;
          const waiters = conn.closeWaiters ?? [];
          conn.closeWaiters = null;
          for (const waiter of waiters) waiter();
        },
      };
      const generation = this.#generation;
      const seq = this.#sendClose(conn, reason);
      if (seq === null) {
        proceed();
        return;
      }
      conn.closeWaiters = [proceed];
      this.#wait(commit, seq, generation);
    };
    if (conn.inflight?.kind === 'output') {
      const timer = setTimeout(() => {
        conn.afterInflight = null;
        this.#log.warn(`destroy of ${conn.connId} waited ${this.#destroyLingerMs} ms for a commit: closing without it`, { conn: conn.connId });
        commitClose();
      }, this.#destroyLingerMs);
      timer.unref();
      conn.afterInflight = () => {
        clearTimeout(timer);
        commitClose();
      };
      return;
    }
    commitClose();
  }

  /** Sends the close record once; returns its seq, or null when no standby got it. */
  #sendClose(conn: ConnState, reason: TransportCloseReason): number | null {
    if (conn.closeSent) return null;
    conn.closeSent = true;
    return this.#sendBlob({ op: 'close', connId: conn.connId, reason, committedOutput: conn.offset });
  }

  // ---- the replication side ----

  #activeServer(): ReplicationServer | null {
    const server = this.#replication;
    return server && !server.closed ? server : null;
  }

  #standbyConnected(): boolean {
    const server = this.#activeServer();
    return server !== null && server.stats().standby !== 'none';
  }

  #sendBlob(blob: TransportBlob): number | null {
    const server = this.#activeServer();
    if (!server) return null;
    // Consumed-input updates first: they describe input that came before this record change.
    if (blob.op !== 'input') this.#flushInput();
    try {
      return server.sendBlob(BlobKind.Transport, blob);
    } catch (err) {
      this.#log.error(`transport ${blob.op} record not sent: ${errorText(err)}`);
      return null;
    }
  }

  #flushInput(): void {
    if (this.#inputTimer) {
      clearTimeout(this.#inputTimer);
      this.#inputTimer = null;
    }
    if (this.#inputQueue.length === 0) return;
    const updates = this.#inputQueue;
    this.#inputQueue = [];
    // Without a standby nothing is lost: a later snapshot carries each record's state.
    if (this.#sendBlob({ op: 'input', updates }) === null) return;
    this.#stats.inputBlobsSent++;
    this.#stats.inputUpdatesSent += updates.length;
  }

  #onAcked(seq: number): void {
    if (seq > this.#ackedSeq) this.#ackedSeq = seq;
    if (this.#releaseScheduled) return;
    this.#releaseScheduled = true;
    // Released outside the replication server's frame handling: the writes run application callbacks.
    queueMicrotask(() => {
      this.#releaseScheduled = false;
      const now = this.#clock();
      // Not in seq order once a commit re-waits for a record frame: look at every entry.
      for (const [waitSeq, commit] of this.#waiting) {
        if (waitSeq > this.#ackedSeq) continue;
        this.#waiting.delete(waitSeq);
        if (commit.kind === 'output' && !this.#covered(commit)) continue;
        this.#complete(commit, now);
      }
    });
  }

  #complete(commit: PendingCommit, now: number): void {
    if (!this.#gateOpen()) {
      this.#defer(() => this.#complete(commit, this.#clock()));
      return;
    }
    if (commit.kind === 'output') {
      const latencyMs = now - commit.startedAt;
      this.#stats.commits++;
      this.#stats.committedBytes += commit.bytes;
      this.#recordLatency(latencyMs);
      safeEmit(this, this.#log, 'committed', { connId: commit.conn.connId, offset: commit.offset, bytes: commit.bytes, latencyMs });
    }
    commit.release(true);
  }

  /**
   * Whether an acknowledged output commit may be written: its connection needs no record, or
   * an acknowledged record covers it. Otherwise it waits for the covering record's frame (sent
   * already) or is parked until one is sent.
   */
  #covered(commit: PendingCommit): boolean {
    const conn = commit.conn;
    if (!conn.needsRecord || conn.closed) return true;
    const end = commit.offset + commit.bytes;
    const record = conn.latestRecord;
    if (record && record.written >= end) {
      if (record.seq <= this.#ackedSeq) return true;
      commit.seq = record.seq;
      this.#waiting.set(record.seq, commit);
      return false;
    }
    this.#stats.recordWaits++;
    conn.parked = commit;
    conn.parkTimer = setTimeout(() => {
      conn.parkTimer = null;
      if (conn.parked !== commit) return;
      this.#stats.releasedUncovered++;
      this.#log.warn(`no session record covered output ${commit.offset}+${commit.bytes} of ${conn.connId} within ${this.#recordWaitMs} ms: written uncovered`, { conn: conn.connId });
      this.#unpark(conn, true);
    }, this.#recordWaitMs);
    conn.parkTimer.unref();
    return false;
  }

  /** Takes the parked commit off its connection; `write` completes it now. */
  #unpark(conn: ConnState, write: boolean): void {
    const parked = conn.parked;
    conn.parked = null;
    if (conn.parkTimer) clearTimeout(conn.parkTimer);
    conn.parkTimer = null;
    if (parked && write) this.#complete(parked, this.#clock());
  }

  /**
   * The standby went away (or the server did): nothing waits for an acknowledgement that cannot
   * come. What waited is written unprotected, unless the loss policy holds it behind the gate.
   */
  #releaseAllUnprotected(reason: string, loss: StandbyLoss): void {
    // Asked even behind a held gate (a stall being verified): the loss needs judging all the same.
    if (this.#gate !== 'fenced' && !this.#closed) {
      let decision: StandbyLossDecision = 'release';
      try {
        decision = this.#lossPolicy(loss);
      } catch (err) {
        this.#log.error(`loss policy threw (holding, to be safe): ${errorText(err)}`);
        decision = 'hold';
      }
      if (decision === 'hold') this.hold(`${reason}: held until the loss is judged`);
    }
    this.#ackedSeq = 0;
    this.#generation++;
    const waiting = [...this.#waiting.values()];
    this.#waiting.clear();
    for (const conn of this.#conns.values()) {
      // Records went to the lost standby, in its seq space: the next one starts afresh.
      conn.latestRecord = null;
      const parked = conn.parked;
      if (!parked) continue;
      this.#unpark(conn, false);
      waiting.push(parked);
    }
    if (waiting.length === 0) {
      if (this.#protection === 'protected') this.#noteProtection(false, reason);
      return;
    }
    this.#log.warn(`${reason}: ${waiting.length} commit(s) in flight ${this.#gate === 'open' ? 'written unprotected' : `behind the ${this.#gate} gate`}`);
    this.#stats.releasedByStandbyLoss += waiting.length;
    for (const commit of waiting) this.#passThrough(commit, reason);
  }

  /** Whether a release may go to the kernel now (the guard's stall check may close the gate first). */
  #gateOpen(): boolean {
    if (this.#gate === 'open' && this.#beforeRelease) {
      try {
        this.#beforeRelease();
      } catch (err) {
        this.#log.error(`beforeRelease hook threw: ${errorText(err)}`);
      }
    }
    return this.#gate === 'open';
  }

  /** Keeps a release behind a held gate; a fenced gate drops it. */
  #defer(release: () => void): void {
    if (this.#gate === 'fenced') {
      this.#droppedByFence++;
      return;
    }
    this.#held.push(release);
  }

  /** The one place the gate changes: every transition is logged with its timestamp. */
  #setGate(to: OutputGate, reason: string): void {
    const from = this.#gate;
    if (from === to) return;
    this.#gate = to;
    const level = to === 'open' ? 'info' : 'warn';
    this.#log.log(level, `output gate ${from} -> ${to}: ${reason}`, { at: new Date().toISOString(), held: this.#held.length, waiting: this.#waiting.size });
    safeEmit(this, this.#log, 'gate', to, from, reason);
  }

  /** Per connection: the record a standby starts from, and from which output offset its log begins. */
  #snapshotExtra(): TransportsExtra {
    const connections: TransportSnapshotEntry[] = [];
    for (const conn of this.#conns.values()) {
      if (conn.closed || conn.closeSent) continue;
      if (conn.inflight?.kind === 'output' && this.#waiting.size > 0) {
        // Cannot happen (a new standby follows the old one's loss, which released everything); if it did,
        // these bytes would reach the kernel without the new standby: its log starts after them, as for any earlier byte.
        this.#log.error(`snapshot taken with a commit in flight on ${conn.connId}`, { conn: conn.connId });
      }
      this.#settleInput(conn);
      connections.push({
        record: { ...conn.record, consumedInput: conn.stableInput, committedOutput: conn.offset },
        logStart: conn.offset,
        pendingInput: conn.inputHistory.map((u) => ({ ...u })),
      });
    }
    // Queued updates are in the snapshot already (as stable or pending input).
    this.#inputQueue = [];
    return { version: 1, connections };
  }

  /** Every open connection as if accepted now: its log starts at its current output offset. */
  #announceAll(): void {
    const { connections } = this.#snapshotExtra();
    const pending: InputUpdate[] = [];
    for (const c of connections) {
      this.#sendBlob({ op: 'accept', record: c.record, logStart: c.logStart });
      pending.push(...c.pendingInput);
    }
    if (pending.length > 0) this.#sendBlob({ op: 'input', updates: pending });
  }

  /** Moves updates whose output is all handed over into the stable consumed offset. */
  #settleInput(conn: ConnState): void {
    const history = conn.inputHistory;
    while (history.length > 0 && history[0]!.outputAt <= conn.offset) conn.stableInput = history.shift()!.consumedInput;
  }

  #noteProtection(isProtected: boolean, reason: string): void {
    const next = isProtected ? 'protected' : 'unprotected';
    if (this.#protection === next) return;
    this.#protection = next;
    if (isProtected) this.#log.info(`protected: ${reason}`);
    else if (this.#gate === 'open') this.#log.warn(`unprotected, output passes straight through: ${reason}`);
    else this.#log.warn(`unprotected, and output stays behind the ${this.#gate} gate: ${reason}`);
    safeEmit(this, this.#log, 'protection', isProtected, reason);
  }

  #recordLatency(ms: number): void {
    this.#latencies[this.#latencyNext] = ms;
    this.#latencyNext = (this.#latencyNext + 1) % this.#latencies.length;
    this.#latencyCount++;
    this.#latencySum += ms;
  }

  #latencySummary(): CommitLatency {
    const n = Math.min(this.#latencyCount, this.#latencies.length);
    if (n === 0) return { samples: 0, meanMs: null, p50Ms: null, p99Ms: null, maxMs: null };
    const sorted = Float64Array.from(this.#latencies.subarray(0, n)).sort();
    const pct = (p: number): number => sorted[Math.min(n - 1, Math.max(0, Math.ceil(p * n) - 1))]!;
    return {
      samples: this.#latencyCount,
      meanMs: this.#latencySum / this.#latencyCount,
      p50Ms: pct(0.5),
      p99Ms: pct(0.99),
      maxMs: sorted[n - 1]!,
    };
  }
}

/** Node's bytesWritten (buffered bytes included), without our in-flight adjustment when unhooked. */
function currentBytesWritten(socket: Socket): number {
  return socket.bytesWritten ?? 0;
}

function toBuffer(chunk: unknown, encoding: BufferEncoding | 'buffer'): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk, encoding === 'buffer' ? 'utf8' : encoding);
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new TypeError(`cannot write a chunk of type ${typeof chunk}`);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
