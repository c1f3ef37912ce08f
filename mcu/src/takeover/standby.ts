/**
 * The standby's side of connection-level takeover, glued from its parts (design notes
 * sections 4, 9 and 10):
 *
 * - while standing by: the TransportStore follows the replication stream (TransportRecords,
 *   output log), 'session' blobs keep each connection's recent socket.io session records, a
 *   PacketCapture on the LAN interface feeds a ConnectionTracker, and both are pruned (client
 *   bytes the application consumed, output the client acknowledged);
 * - on promotion: fence (raise the VIP: the old primary is silenced by its host's firewall),
 *   then per connection planRepair -> repairConnection -> adoptFd -> write the output the client
 *   lacks (`prepare()`), and once the new MCU serves, re-attach each socket.io session
 *   (`reattachAll()`). A connection that cannot be rebuilt safely is counted and logged with the
 *   reason; when it has a socket it is closed cleanly (WebSocket close 1012, marked FIN) so its
 *   client reconnects at once.
 */
import { raiseVipAtPromotion, type ServiceAddress } from './fencing/vip.ts';
import { EventEmitter } from 'node:events';
import type { Socket as NetSocket } from 'node:net';
import { adoptFd, closeFd, fillReceiveQueue, PacketCapture, repairConnection, seqAdd, setMark, socketFd } from '../../../native/src/index.ts';
import { thisHost } from '../core/host-commands.ts';
import { createLogger, type Logger } from '../core/logger.ts';
import { safeEmit } from '../core/events.ts';
import { closeUnattachedSocket, reattach } from './session/session-reattacher.ts';
import { parseSessionRecord, type SessionRecord } from './session/session-record.ts';
import { BlobKind, SnapshotExtraKey, parseBlob, parseSnapshotExtra, type SessionBlobEnvelope } from '../wire/index.ts';
import type { ServerLike } from './session/internals.ts';
import type { TransportRecord } from './transport/transport-record.ts';
import type { ReplicationClient } from '../replication/replication-client.ts';
import { TransportStore } from './transport/transport-store.ts';
import { ConnectionTracker, recordConnectionKey } from './transport/connection-tracker.ts';
import { OutputLog } from './transport/output-log.ts';
import { planRepair } from './transport/repair-plan.ts';
import { wrapSeq } from './transport/sequence-space.ts';
import { advanceSessionRecord } from './session/session-advance.ts';
import { FailoverStep } from '../wire/failover-steps.ts';

/** Session records kept per connection (the one matching the takeover offsets is picked). */
const SESSIONS_KEPT = 64;

export interface TakeoverEngineOptions {
  /** The service address (VIP) and port the primary's clients connect to. */
  serviceAddress: string;
  servicePort: number;
  /** LAN interface to capture the clients' segments on (MCU_CAPTURE_INTERFACE); null: no capture, no takeover. */
  captureInterface: string | null;
  /** The VIP on this host, raised at promotion (MCU_VIP_INTERFACE, see fencing/vip.ts); null: the VIP is raised by someone else. */
  vip: ServiceAddress | null;
  /** SO_MARK letting a deliberate close's FIN through the firewall (default 0x4d43). */
  closeMark?: number;
  /** Interval of the capture/log pruning, ms (default 20). */
  pruneIntervalMs?: number;
}

/** Why a connection was not taken over (its client falls back to reconnecting). */
export interface TakeoverFallback {
  connId: string;
  /** A stable code: a RepairRefusalCode, or `unsafe-log`, `no-session`, `not-a-session`, `repair-failed`, `reattach-failed`, `no-capture`. */
  code: string;
  reason: string;
  /** The socket was rebuilt and closed cleanly (close 1012): the client reconnects at once; false: it must time out. */
  closedCleanly: boolean;
}

export interface TakeoverReport {
  connections: number;
  rebuilt: number;
  reattached: number;
  fallbacks: TakeoverFallback[];
  /** From prepare() start: VIP raised, all sockets rebuilt, all sessions re-attached (ms). */
  vipMs: number;
  rebuildMs: number;
  reattachMs: number | null;
}

export type TakeoverEngineEvents = {
  fallback: [fallback: TakeoverFallback];
  reattached: [connId: string, ms: number];
};

/** A session record and the output it counts as written that the output log may not hold yet. */
interface HeldSession {
  record: SessionRecord;
  /** The last bytes before record.bytes.written (SessionBlob.outputTail), empty if none. */
  tail: Buffer;
}

/** Sessions re-attached side by side before yielding to the event loop (see reattachAll). */
const REATTACH_BATCH = 2;

/**
 * How long the capture keeps filling holes in the rebuilt connections after the rebuild, ms, and
 * how often it looks. A primary that is not dead (frozen, cut off) still has a kernel that
 * acknowledges client segments until its lease lapses or it fences (kernel-lease.ts: at most
 * the verdict window after its last beat, plus the fence): a segment it took while our socket
 * was not yet live never comes again, and would stall the connection for good.
 */
const HOLE_WATCH_MS = 2000;
const HOLE_WATCH_TICK_MS = 5;

/** A rebuilt connection whose client bytes the capture still follows (see HOLE_WATCH_MS). */
interface Watched {
  connId: string;
  key: string;
  socket: NetSocket;
  /** Client position up to which the socket is known to hold the stream. */
  heldTo: number;
}

/**
 * Hands a rebuilt connection to the new primary's transport layer (TakeoverPrimary.adopt)
 * before its session is re-attached. `record.committedOutput` is the output offset at the
 * socket's current bytesWritten.
 */
export type ConnectionAdopter = (record: TransportRecord, socket: NetSocket) => void;

interface Rebuilt {
  connId: string;
  socket: NetSocket;
  session: SessionRecord;
  pendingInput: Buffer;
}

export class TakeoverEngine extends EventEmitter<TakeoverEngineEvents> {
  readonly transports = new TransportStore();
  readonly #opts: TakeoverEngineOptions;
  readonly #closeMark: number;
  readonly #log: Logger = createLogger('takeover-engine', { role: 'standby' });
  readonly #sessions = new Map<string, HeldSession[]>();
  #capture: PacketCapture | null = null;
  #tracker: ConnectionTracker | null = null;
  #pruneTimer: NodeJS.Timeout | null = null;
  #rebuilt: Rebuilt[] = [];
  #watched: Watched[] = [];
  #holeWatch: NodeJS.Timeout | null = null;
  #holesFilled = { connections: new Set<string>(), bytes: 0 };
  #adopt: ConnectionAdopter | null = null;
  #report: TakeoverReport | null = null;
  #startedAt = 0;
  #closed = false;

  constructor(options: TakeoverEngineOptions) {
    super();
    this.#opts = options;
    this.#closeMark = options.closeMark ?? 0x4d43;
    this.transports.on('connection', (record) => {
      try {
        this.#tracker?.bindRecord(record);
      } catch (err) {
        this.#log.warn(`capture cannot follow connection ${record.connId}: ${(err as Error).message}`);
      }
    });
    this.transports.on('closed', (connId) => this.#sessions.delete(connId));
    this.transports.on('unsafe', (connId, reason) => this.#log.warn(`connection ${connId} cannot be taken over: ${reason}`));
  }

  get closed(): boolean {
    return this.#closed;
  }

  get report(): TakeoverReport | null {
    return this.#report;
  }

  /** Follows one replication client (call for each new one). Returns the function that stops following. */
  follow(client: ReplicationClient): () => void {
    const stopStore = this.transports.follow(client);
    const onSynced = (): void => {
      this.#sessions.clear();
      const raw = client.store.extra[SnapshotExtraKey.Sessions];
      if (raw === undefined) return;
      try {
        for (const blob of parseSnapshotExtra(SnapshotExtraKey.Sessions, raw)) this.#applySessionBlob(blob);
      } catch (err) {
        this.#log.error(`snapshot's session records refused: ${(err as Error).message}`);
      }
    };
    const onBlob = (kind: string, data: unknown): void => {
      if (kind === BlobKind.Session) this.#applySessionBlob(data);
    };
    client.on('synced', onSynced);
    client.on('blob', onBlob);
    return () => {
      stopStore();
      client.off('synced', onSynced);
      client.off('blob', onBlob);
    };
  }

  /** Starts the capture (from the standby's start: connections are seen from their SYN). */
  start(): void {
    if (this.#closed || this.#capture) return;
    const ifname = this.#opts.captureInterface;
    if (!ifname) {
      this.#log.warn('no capture interface (MCU_CAPTURE_INTERFACE): no connection can be taken over, clients will reconnect');
      return;
    }
    try {
      const capture = new PacketCapture({ interface: ifname, port: this.#opts.servicePort });
      const anyAddress = this.#opts.serviceAddress === '' || this.#opts.serviceAddress === '0.0.0.0' || this.#opts.serviceAddress === '::';
      const tracker = new ConnectionTracker({ servicePort: this.#opts.servicePort, ...(anyAddress ? {} : { serviceAddress: this.#opts.serviceAddress }) });
      tracker.attach(capture);
      capture.on('error', (err) => this.#log.error(`capture error: ${err.message}`));
      tracker.on('unsafe', (conn, reason) => this.#log.warn(`captured connection ${conn.key} unsafe: ${reason.code}: ${reason.detail}`));
      this.#capture = capture;
      this.#tracker = tracker;
      for (const id of this.transports.connectionIds()) {
        const stored = this.transports.get(id);
        if (stored) tracker.bindRecord(stored.record);
      }
      this.#log.info(`capturing ${this.#opts.serviceAddress}:${this.#opts.servicePort} on ${ifname}`);
    } catch (err) {
      this.#log.error(`capture unavailable on ${ifname}, clients will reconnect: ${(err as Error).message}`);
      return;
    }
    this.#pruneTimer = setInterval(() => this.#prune(), this.#opts.pruneIntervalMs ?? 20);
    this.#pruneTimer.unref();
    this.#clearLeftovers();
  }

  /**
   * A host that ran a primary keeps the dead process's orphaned sockets on the service
   * 4-tuples (FIN-WAIT with unacknowledged output) for minutes: they would make this
   * standby's rebuild fail (EADDRNOTAVAIL) and its bind too (EADDRINUSE). Destroyed once at
   * start (`ss -K`, SOCK_DESTROY): no live socket of ours uses the service address yet, and
   * their RSTs are unmarked (dropped by the host's firewall) and leave from a VIP that is down.
   */
  #clearLeftovers(): void {
    const address = this.#opts.serviceAddress;
    if (!address || address === '0.0.0.0' || address === '::') return;
    const args = ['-tnHK', 'state', 'connected', 'src', address, 'sport', '=', `:${this.#opts.servicePort}`];
    thisHost.run(['ss', ...args], { timeoutMs: 5000 }).then(
      ({ stdout }) => {
        const cleared = stdout.split('\n').filter((l) => l.trim() !== '').length;
        if (cleared > 0) this.#log.info(`cleared ${cleared} leftover socket(s) of an earlier primary on ${address}:${this.#opts.servicePort}`);
      },
      (err: Error) => this.#log.warn(`could not clear leftover sockets of an earlier primary on this host: ${err.message}`),
    );
  }

  stats(): Record<string, unknown> {
    return {
      connections: this.transports.connectionIds().length,
      sessions: [...this.#sessions.values()].reduce((n, l) => n + l.length, 0),
      store: this.transports.stats(),
      tracker: this.#tracker?.stats ?? null,
      capture: this.#capture?.stats() ?? null,
      report: this.#report,
    };
  }

  /**
   * Promotion, first half (synchronous work after the VIP): raises the VIP, then rebuilds every
   * connection's socket and writes the output its client lacks. Sessions are re-attached by
   * reattachAll() once the new MCU serves (its signaling refuses requests before).
   */
  async prepare(adopt?: ConnectionAdopter): Promise<void> {
    this.#adopt = adopt ?? null;
    this.#startedAt = performance.now();
    const report: TakeoverReport = { connections: 0, rebuilt: 0, reattached: 0, fallbacks: [], vipMs: 0, rebuildMs: 0, reattachMs: null };
    this.#report = report;
    // Everything the kernel captured so far reaches the tracker before any decision.
    if (this.#capture) this.#capture.drain();
    if (this.#pruneTimer) clearInterval(this.#pruneTimer);
    this.#pruneTimer = null;
    await this.#raiseVip();
    report.vipMs = performance.now() - this.#startedAt;
    const ids = this.transports.connectionIds();
    report.connections = ids.length;
    if (this.#capture) this.#capture.drain();
    for (const connId of ids) this.#rebuild(connId, report);
    report.rebuildMs = performance.now() - this.#startedAt;
    this.#watchHoles();
    this.#log.info('failover step: connections rebuilt', {
      failover: FailoverStep.ConnectionsRebuilt,
      connections: report.connections,
      rebuilt: report.rebuilt,
      fallbacks: report.fallbacks.length,
      vipMs: round(report.vipMs),
      rebuildMs: round(report.rebuildMs),
    });
  }

  /** Promotion, second half: re-attaches every rebuilt socket's socket.io session to `io`. */
  async reattachAll(io: ServerLike): Promise<TakeoverReport> {
    const report = this.#report ?? { connections: 0, rebuilt: 0, reattached: 0, fallbacks: [], vipMs: 0, rebuildMs: 0, reattachMs: null };
    const rebuilt = this.#rebuilt;
    this.#rebuilt = [];
    // A few at a time, yielding to the event loop between them: the mixer's clocks run on this
    // thread, and re-attaching every session in one go stopped the mixed audio for 100+ ms.
    for (let i = 0; i < rebuilt.length; i += REATTACH_BATCH) {
      if (i > 0) await new Promise((resolve) => setImmediate(resolve));
      await Promise.all(
        rebuilt.slice(i, i + REATTACH_BATCH).map(async (r) => {
          const t0 = performance.now();
          try {
            await reattach(io, r.socket, r.session, r.pendingInput);
            report.reattached++;
            safeEmit(this, this.#log, 'reattached', r.connId, performance.now() - t0);
          } catch (err) {
            this.#fallback(report, { connId: r.connId, code: 'reattach-failed', reason: (err as Error).message, closedCleanly: false }, r.socket);
          }
        }),
      );
    }
    report.reattachMs = performance.now() - this.#startedAt;
    this.#log.info('failover step: sessions re-attached', {
      failover: FailoverStep.SessionsReattached,
      connections: report.connections,
      reattached: report.reattached,
      fallbacks: report.fallbacks.length,
      fallbackReasons: report.fallbacks.map((f) => `${f.connId}: ${f.code}`),
      totalMs: round(report.reattachMs),
    });
    return report;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#pruneTimer) clearInterval(this.#pruneTimer);
    this.#stopCapture();
    for (const r of this.#rebuilt) r.socket.destroy();
    this.#rebuilt = [];
  }

  #rebuild(connId: string, report: TakeoverReport): void {
    const stored = this.transports.get(connId);
    if (!stored) return;
    if (!stored.safe) return this.#fallback(report, { connId, code: 'unsafe-log', reason: stored.unsafeReason ?? 'unsafe', closedCleanly: false });
    if (!this.#tracker) return this.#fallback(report, { connId, code: 'no-capture', reason: 'no capture ran on this standby', closedCleanly: false });
    const key = recordConnectionKey(stored.record);
    const tracked = this.#tracker.get(key);
    const held = this.transports.outputLog(connId);
    /** The output from prunedTo to `end`: the log, then the session's tail beyond the log's end. */
    const logUpTo = (end: number, session: HeldSession | null): OutputLog => {
      const log = new OutputLog(connId, { startOffset: stored.prunedTo });
      const fromLog = Math.min(end, stored.logEnd);
      if (fromLog > stored.prunedTo) log.append({ connId, offset: stored.prunedTo, data: held.subarray(0, fromLog - stored.prunedTo) });
      if (session && end > stored.logEnd) {
        const tailStart = session.record.bytes.written - session.tail.length;
        log.append({ connId, offset: stored.logEnd, data: session.tail.subarray(stored.logEnd - tailStart, end - tailStart) });
      }
      return log;
    };
    // First with the whole log: where the client and the dead primary stood.
    let plan = planRepair(stored.record, tracked, logUpTo(stored.logEnd, null), Date.now());
    if (!plan.ok) return this.#fallback(report, { connId, code: plan.code, reason: plan.reason, closedCleanly: false });
    let session = this.#sessionFor(connId, stored.record.consumedInput, plan.details.primarySentOutput, stored.logEnd);
    if (typeof session === 'string') {
      // The client may have output written after the latest record: walk the record over it.
      const base = this.#latestBefore(connId, stored.record.consumedInput, plan.details.primarySentOutput, stored.prunedTo);
      if (base) {
        const from = base.record.bytes.written - stored.prunedTo;
        const advanced = advanceSessionRecord(base.record, held.subarray(from), plan.details.primarySentOutput - base.record.bytes.written);
        if (advanced.ok) {
          this.#log.info(`session of ${connId} advanced by ${advanced.advancedBy} output bytes written after its record`, { conn: connId });
          session = { record: advanced.record, tail: Buffer.alloc(0) };
        } else {
          session = `${session}; the latest record before cannot be advanced: ${advanced.reason}`;
        }
      }
    }
    if (typeof session !== 'string') {
      // The session record is the application's own word on what it consumed and wrote: the
      // store's consumedInput may lag it (its update rides the next frame, or 5 ms later), and
      // output committed after it never left the dead primary (dropped: the client lacks it).
      // Output it counts beyond the log's end comes from its tail.
      const record = { ...stored.record, consumedInput: session.record.bytes.consumed };
      plan = planRepair(record, tracked, logUpTo(session.record.bytes.written, session), Date.now());
      if (!plan.ok) return this.#fallback(report, { connId, code: plan.code, reason: plan.reason, closedCleanly: false });
    }
    let fd: number;
    try {
      fd = repairConnection(plan.state);
    } catch (err) {
      return this.#fallback(report, { connId, code: 'repair-failed', reason: (err as Error).message, closedCleanly: false });
    }
    let socket: NetSocket;
    try {
      socket = adoptFd(fd);
    } catch (err) {
      closeFd(fd);
      return this.#fallback(report, { connId, code: 'repair-failed', reason: `adoptFd: ${(err as Error).message}`, closedCleanly: false });
    }
    socket.setNoDelay(true);
    socket.on('error', (err) => this.#log.warn(`rebuilt connection ${connId}: ${err.message}`));
    report.rebuilt++;
    const heldTo = tracked?.clientSpace.peek(plan.state.recvSeq >>> 0);
    if (heldTo === undefined) this.#tracker.release(key);
    else this.#watched.push({ connId, key, socket, heldTo });
    // The output the client lacks, before anything the new process writes.
    if (plan.writeAfterRepair.length > 0) socket.write(plan.writeAfterRepair);
    if (typeof session === 'string') {
      // Never a socket.io session (e.g. an HTTP keep-alive connection): a plain marked FIN.
      const plain = (this.#sessions.get(connId) ?? []).length === 0;
      return this.#fallback(report, { connId, code: plain ? 'not-a-session' : 'no-session', reason: session, closedCleanly: false }, socket, plain);
    }
    if (this.#adopt) {
      // Protected again on the new primary (output commit, session records) for the next standby.
      const adopted: TransportRecord = {
        ...stored.record,
        consumedInput: session.record.bytes.consumed,
        committedOutput: session.record.bytes.written,
      };
      try {
        this.#adopt(adopted, socket);
      } catch (err) {
        return this.#fallback(report, { connId, code: 'repair-failed', reason: `adoption: ${(err as Error).message}`, closedCleanly: false }, socket);
      }
    }
    this.#rebuilt.push({ connId, socket, session: session.record, pendingInput: plan.pendingInput });
  }

  /**
   * The latest session record taken at or after the consumed offset the store holds, whose
   * output offset lies between what the dead primary was seen sending (the client may have all
   * of that) and the log's end (beyond it nothing is known), or why there is none. Output the
   * client got beyond a record would be unknown to the re-attached session (an ack it would
   * send again, a ping): never use such a record.
   */
  #sessionFor(connId: string, consumed: number, sentOutput: number, logEnd: number): HeldSession | string {
    const list = this.#sessions.get(connId) ?? [];
    for (let i = list.length - 1; i >= 0; i--) {
      const held = list[i]!;
      const { bytes } = held.record;
      // Output beyond the log's end is usable when the record's tail holds it.
      if (bytes.consumed >= consumed && bytes.written >= sentOutput && bytes.written - held.tail.length <= logEnd) return held;
    }
    const latest = list[list.length - 1]?.record;
    return (
      `no session record at consumed input >= ${consumed}, output in [${sentOutput}, ${logEnd}] (${list.length} held` +
      (latest ? `, latest at ${latest.bytes.consumed} / ${latest.bytes.written})` : ')')
    );
  }

  /** The latest record at or after `consumed` whose output offset lies in [logStart, before). */
  #latestBefore(connId: string, consumed: number, before: number, logStart: number): HeldSession | null {
    const list = this.#sessions.get(connId) ?? [];
    for (let i = list.length - 1; i >= 0; i--) {
      const held = list[i]!;
      const { bytes } = held.record;
      if (held.tail.length === 0 && bytes.consumed >= consumed && bytes.written < before && bytes.written >= logStart) return held;
    }
    return null;
  }

  #fallback(report: TakeoverReport, fallback: TakeoverFallback, socket?: NetSocket, plainClose = false): void {
    if (socket && !socket.destroyed) {
      try {
        // The host's firewall drops unmarked FINs from the service port.
        setMark(socketFd(socket), this.#closeMark);
        if (plainClose) socket.end();
        else closeUnattachedSocket(socket);
        fallback.closedCleanly = true;
      } catch (err) {
        this.#log.warn(`could not close connection ${fallback.connId} cleanly: ${(err as Error).message}`);
        socket.destroy();
      }
    }
    report.fallbacks.push(fallback);
    this.#log.warn(`connection ${fallback.connId} not taken over (${fallback.code}): ${fallback.reason}; its client reconnects`, {
      conn: fallback.connId,
      code: fallback.code,
      closedCleanly: fallback.closedCleanly,
    });
    safeEmit(this, this.#log, 'fallback', fallback);
  }

  #applySessionBlob(data: unknown): void {
    let blob: SessionBlobEnvelope;
    try {
      blob = parseBlob(BlobKind.Session, data);
    } catch (err) {
      this.#log.error(`session blob refused: ${(err as Error).message}`);
      return;
    }
    let record: SessionRecord;
    try {
      record = parseSessionRecord(blob.record);
    } catch (err) {
      this.#log.error(`session record of ${blob.connId} refused: ${(err as Error).message}`);
      return;
    }
    const tail = blob.outputTail !== undefined ? Buffer.from(blob.outputTail, 'base64') : Buffer.alloc(0);
    if (tail.length > record.bytes.written) {
      this.#log.error(`session record of ${blob.connId} refused: its output tail (${tail.length} bytes) is longer than its output (${record.bytes.written})`);
      return;
    }
    let list = this.#sessions.get(blob.connId);
    if (!list) this.#sessions.set(blob.connId, (list = []));
    list.push({ record, tail });
    if (list.length > SESSIONS_KEPT) list.splice(0, list.length - SESSIONS_KEPT);
  }

  /** Client bytes the application consumed and output the client acknowledged are never needed again. */
  #prune(): void {
    const tracker = this.#tracker;
    if (!tracker) return;
    for (const connId of this.transports.connectionIds()) {
      const stored = this.transports.get(connId);
      if (!stored) continue;
      const key = recordConnectionKey(stored.record);
      const tracked = tracker.get(key);
      if (!tracked) continue;
      tracker.prune(key, stored.record.consumedInput);
      const ack = tracked.clientAck;
      if (!ack) continue;
      const logEndPos = tracked.serverSpace.peek(seqAdd(stored.record.serverIsn >>> 0, 1 + stored.logEnd));
      if (logEndPos === undefined) continue;
      let acked = stored.logEnd + (ack.ackPos - logEndPos);
      // Keep the output after the latest session record: a takeover may walk the record over it.
      const latest = this.#sessions.get(connId)?.at(-1)?.record;
      if (latest) acked = Math.min(acked, latest.bytes.written);
      if (acked > stored.prunedTo && acked <= stored.logEnd) this.transports.prune(connId, acked);
    }
  }

  /**
   * After the rebuild the capture goes on for HOLE_WATCH_MS: client bytes it sees beyond what a
   * rebuilt socket is known to hold are queued on that socket in repair mode
   * (fillReceiveQueue: only the part beyond the kernel's next expected byte, so bytes the socket
   * got normally are never queued twice). Then the capture stops: from there on this host is
   * the primary and its own segments are of no interest.
   */
  #watchHoles(): void {
    if (this.#watched.length === 0 || !this.#tracker) {
      this.#stopCapture();
      return;
    }
    const until = performance.now() + HOLE_WATCH_MS;
    this.#holeWatch = setInterval(() => {
      this.#fillHoles();
      if (performance.now() >= until) this.#stopCapture();
    }, HOLE_WATCH_TICK_MS);
    this.#holeWatch.unref();
  }

  #fillHoles(): void {
    const tracker = this.#tracker;
    if (!tracker) return;
    this.#capture?.drain();
    this.#watched = this.#watched.filter((w) => {
      const tracked = tracker.get(w.key);
      if (!tracked || w.socket.destroyed) return false;
      const end = tracked.contiguousEnd(w.heldTo);
      if (end <= w.heldTo) return true;
      const bytes = tracked.clientBytesFrom(w.heldTo, end);
      try {
        const queued = fillReceiveQueue(socketFd(w.socket), bytes, wrapSeq(w.heldTo));
        if (queued > 0) {
          this.#holesFilled.connections.add(w.connId);
          this.#holesFilled.bytes += queued;
          this.#log.warn(`connection ${w.connId}: ${queued} client byte(s) taken by another host's kernel queued from the capture`, {
            conn: w.connId,
            bytes: queued,
            failover: FailoverStep.HoleFilled,
          });
        }
      } catch (err) {
        this.#log.warn(`connection ${w.connId}: could not queue captured client bytes: ${(err as Error).message}`, { conn: w.connId });
        return false;
      }
      w.heldTo = end;
      const origin = tracked.clientPositionOfOffset(0);
      if (origin !== undefined) tracker.prune(w.key, end - origin);
      return true;
    });
  }

  #stopCapture(): void {
    if (this.#holeWatch) clearInterval(this.#holeWatch);
    this.#holeWatch = null;
    if (this.#holesFilled.bytes > 0) {
      this.#log.warn(`capture stopped; ${this.#holesFilled.bytes} client byte(s) another kernel had acknowledged were queued on ${this.#holesFilled.connections.size} connection(s)`);
    }
    this.#watched = [];
    this.#tracker?.close();
    this.#capture?.close();
    this.#tracker = null;
    this.#capture = null;
  }

  /** Fencing, our half: the VIP moves here (one `ip -batch` process: link up, then its route). */
  #raiseVip(): Promise<void> {
    return raiseVipAtPromotion(this.#opts.vip, this.#log);
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
