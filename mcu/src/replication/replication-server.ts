import { EventEmitter } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { McuError, ReplicationClosedError, StaleEpochError } from '../core/errors.ts';
import { createLogger, type Logger } from '../core/logger.ts';
import type { SessionDelta, SessionState } from '../conference/session-state.ts';
import type { Secret } from '../wire/frame-codec.ts';
import { parseStandbyMessage, type PrimaryMessage, type StandbyHelloMessage, type StandbyMessage } from '../wire/messages.ts';
import { ReplicationLink, type FrameMeta, type LinkCloseInfo } from './replication-link.ts';
import { preciseNow } from '../core/clock.ts';
import { safeEmit } from '../core/events.ts';
import { FailoverStep } from '../wire/failover-steps.ts';

export type ReplicationServerState = 'idle' | 'listening' | 'closing' | 'closed';
/** `shutdown`: the standby (or we) stopped on purpose; `died`: it crashed, went silent or broke the protocol. */
export type StandbyLostReason = 'shutdown' | 'died';
export type StandbyPhase = 'none' | 'syncing' | 'synced';

export interface StandbyInfo {
  standbyId: string;
  pid: number;
  remote: string;
  connectedAt: number;
}

export type ReplicationServerEvents = {
  listening: [address: AddressInfo];
  /** Handshake done, snapshot sent. */
  'standby-connected': [info: StandbyInfo];
  /** The standby acknowledged its first snapshot: the primary is protected from here on. */
  'standby-synced': [info: StandbyInfo & { seq: number; syncMs: number }];
  'standby-lost': [info: StandbyInfo & { reason: StandbyLostReason; detail: string }];
  /** A connection was turned away (second standby, bad auth, malformed hello, handshake timeout). */
  'standby-refused': [info: { remote: string; reason: string; error: McuError | null }];
  /**
   * The standby is promoting itself with a higher epoch (this primary was wrongly suspected):
   * whatever this primary writes from now on may reach connections the new primary owns.
   */
  superseded: [info: StandbyInfo & { epoch: number; at: number }];
  /** A fencing probe (another primary that lost its standby) was answered with our epoch. */
  probed: [info: { remote: string; epoch: number; pid: number }];
  /** A record from the synced-or-syncing standby (the warm spare path relay), validated as a blob only. */
  'standby-blob': [kind: string, data: unknown, info: StandbyInfo];
  /** A sequenced frame was acknowledged by the standby: send-to-ack round trip. */
  acked: [info: { seq: number; rttMs: number }];
  close: [];
};

export interface ReplicationStats {
  state: ReplicationServerState;
  epoch: number;
  connected: boolean;
  standby: StandbyPhase;
  standbyId: string | null;
  standbyPid: number | null;
  /** Seq of the snapshot frame sent to the current standby. */
  snapshotSeq: number | null;
  lastSentSeq: number;
  lastAckedSeq: number;
  /** Sequenced frames sent but not yet acknowledged. */
  lagFrames: number;
  /** Send-to-ack round trip of the latest acknowledged frame. */
  lastAckRttMs: number | null;
  bytesSent: number;
  bytesReceived: number;
  framesSent: number;
  /** Bytes sent to every standby since start. */
  totalBytesSent: number;
  standbysAccepted: number;
  standbysRefused: number;
}

export interface ReplicationServerOptions {
  /** The primary's session state: snapshotted for a new standby, then every delta is forwarded. */
  state: SessionState;
  /** Epoch stamped on every frame; raised by each promotion. */
  epoch: number;
  /** Shared secret for the frame MACs (MCU_REPLICATION_SECRET). */
  secret: Secret;
  /** Listen address (default 127.0.0.1). */
  host?: string;
  /** Listen port (default 0: any free port, see address()). */
  port?: number;
  /** Identity sent in hello (default `primary-<pid>`). */
  primaryId?: string;
  /** Service address info sent in hello, opaque here (default {}). */
  service?: Record<string, unknown>;
  /** Heartbeat period towards the standby (default 10 ms). */
  heartbeatIntervalMs?: number;
  /**
   * A standby silent for this long is dropped as dead, and may be replaced by a new one
   * (default 1000 ms; losing a standby only costs protection, so this need not be fast).
   */
  standbyTimeoutMs?: number;
  /** A connection that sends no valid hello within this is closed (default 2000 ms). */
  handshakeTimeoutMs?: number;
  /** Largest frame payload (default 16 MiB). */
  maxFrameBytes?: number;
  /** Time source (default: epoch ms with sub-ms resolution). */
  clock?: () => number;
}

interface ActiveStandby extends StandbyInfo {
  link: ReplicationLink<StandbyMessage, PrimaryMessage>;
  snapshotSeq: number | null;
  synced: boolean;
  /** Set when we drop the standby ourselves for a reason that is really its death. */
  lostAs: StandbyLostReason | null;
}

// Send times kept for unacknowledged frames; beyond this the oldest are forgotten (a stalled standby).
const MAX_TRACKED_SENDS = 100_000;

/**
 * The primary's side of replication: accepts one standby at a time, transfers a snapshot,
 * then forwards every SessionState delta (deltas of one tick batched into one frame).
 */
export class ReplicationServer extends EventEmitter<ReplicationServerEvents> {
  readonly #options: ReplicationServerOptions;
  readonly #state: SessionState;
  readonly #server: Server;
  readonly #clock: () => number;
  readonly #primaryId: string;
  readonly #standbyTimeoutMs: number;
  readonly #extras = new Set<() => Record<string, unknown>>();
  readonly #pending = new Set<ReplicationLink<StandbyMessage, PrimaryMessage>>();
  readonly #sentAt = new Map<number, number>();
  #log: Logger;
  #serverState: ReplicationServerState = 'idle';
  #epoch: number;
  #standby: ActiveStandby | null = null;
  #batch: SessionDelta[] = [];
  #flushScheduled = false;
  #lastAckRttMs: number | null = null;
  #totalBytesSent = 0;
  #accepted = 0;
  #refused = 0;
  #closePromise: Promise<void> | null = null;

  readonly #onDelta = (delta: SessionDelta): void => {
    const standby = this.#standby;
    // Before the snapshot went out, the snapshot itself will carry this change.
    if (!standby || standby.snapshotSeq === null || standby.link.closed) return;
    // Cloned now: the caller may reuse its delta object before the batch is flushed.
    this.#batch.push(structuredClone(delta));
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => this.#flush());
    }
  };

  constructor(options: ReplicationServerOptions) {
    super();
    this.#options = options;
    this.#state = options.state;
    this.#epoch = options.epoch;
    this.#clock = options.clock ?? preciseNow;
    this.#primaryId = options.primaryId ?? `primary-${process.pid}`;
    this.#standbyTimeoutMs = options.standbyTimeoutMs ?? 1000;
    this.#log = createLogger('replication-server', { epoch: this.#epoch });
    this.#server = createServer({ noDelay: true }, (socket) => this.#onConnection(socket));
    this.#server.on('error', (err) => this.#log.error(`replication listener error: ${err.message}`));
    this.#state.on('delta', this.#onDelta);
  }

  get closed(): boolean {
    return this.#serverState === 'closing' || this.#serverState === 'closed';
  }
  get state(): ReplicationServerState {
    return this.#serverState;
  }
  get epoch(): number {
    return this.#epoch;
  }

  /** Starts listening; resolves with the bound address. */
  listen(): Promise<AddressInfo> {
    if (this.#serverState !== 'idle') return Promise.reject(new ReplicationClosedError(`cannot listen: server is ${this.#serverState}`));
    return new Promise<AddressInfo>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.#server.once('error', onError);
      this.#server.listen(this.#options.port ?? 0, this.#options.host ?? '127.0.0.1', () => {
        this.#server.off('error', onError);
        const address = this.#server.address() as AddressInfo;
        this.#setState('listening', `${address.address}:${address.port}`);
        safeEmit(this, this.#log, 'listening', address);
        resolve(address);
      });
    });
  }

  /** The bound address, null before listen() completes or after close. */
  address(): AddressInfo | null {
    const a = this.#server.address();
    return a !== null && typeof a === 'object' ? a : null;
  }

  /** Raises the epoch stamped on frames from now on. Lowering it is refused (StaleEpochError). */
  setEpoch(epoch: number): void {
    if (!Number.isInteger(epoch) || epoch < this.#epoch) throw new StaleEpochError(epoch, this.#epoch);
    if (epoch === this.#epoch) return;
    this.#log.info(`epoch ${this.#epoch} -> ${epoch}`);
    this.#epoch = epoch;
    this.#log = createLogger('replication-server', { epoch });
    // Deltas of this tick were produced under the old epoch: send them with it.
    this.#flush();
    this.#standby?.link.setEpoch(epoch);
    for (const link of this.#pending) link.setEpoch(epoch);
  }

  /** Adds a contributor to every snapshot's `extra` (merged in registration order). Returns a remover. */
  addSnapshotExtra(provider: () => Record<string, unknown>): () => void {
    this.#extras.add(provider);
    return () => this.#extras.delete(provider);
  }

  /**
   * Sends an opaque record after every pending delta; returns its seq, or null without a standby
   * that got its snapshot. Throws ReplicationMalformedError when it exceeds the frame limit.
   */
  sendBlob(kind: string, data: unknown): number | null {
    return this.#sendOrdered({ type: 'blob', kind, data });
  }

  /** Like sendBlob, resolved when the standby acknowledged it (output commit); rejected with ReplicationClosedError without one. */
  sendBlobAndWaitAck(kind: string, data: unknown): Promise<void> {
    try {
      const seq = this.sendBlob(kind, data);
      const standby = this.#standby;
      if (seq === null || !standby) return Promise.reject(new ReplicationClosedError('no standby connected'));
      return standby.link.waitAck(seq);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new ReplicationClosedError(String(err)));
    }
  }

  /** Sends raw bytes (output log) after every pending delta; returns the seq or null without a standby. */
  sendBinary(data: Buffer): number | null {
    this.#flush();
    const standby = this.#activeStandby();
    if (!standby) return null;
    const seq = standby.link.sendBinary(data);
    this.#trackSend(seq);
    return seq;
  }

  stats(): ReplicationStats {
    const s = this.#standby;
    const link = s?.link;
    return {
      state: this.#serverState,
      epoch: this.#epoch,
      connected: s !== null,
      standby: s === null ? 'none' : s.synced ? 'synced' : 'syncing',
      standbyId: s?.standbyId ?? null,
      standbyPid: s?.pid ?? null,
      snapshotSeq: s?.snapshotSeq ?? null,
      lastSentSeq: link?.lastSentSeq ?? 0,
      lastAckedSeq: link?.lastAckedSeq ?? 0,
      lagFrames: link ? link.lastSentSeq - link.lastAckedSeq : 0,
      lastAckRttMs: this.#lastAckRttMs,
      bytesSent: link?.bytesSent ?? 0,
      bytesReceived: link?.bytesReceived ?? 0,
      framesSent: link?.framesSent ?? 0,
      totalBytesSent: this.#totalBytesSent + (link?.bytesSent ?? 0),
      standbysAccepted: this.#accepted,
      standbysRefused: this.#refused,
    };
  }

  /**
   * Deliberate shutdown (idempotent): pending deltas go out, the standby is told `shutdown`
   * (so it does not fail over), then the listener closes.
   */
  /**
   * `announce` false: no goodbye to the standby (a fenced primary: its standby must judge for
   * itself whether to take over, as after a crash).
   */
  close(reason = 'primary shutting down', options: { announce?: boolean } = {}): Promise<void> {
    if (this.#closePromise) return this.#closePromise;
    this.#setState('closing', reason);
    this.#flush();
    this.#state.off('delta', this.#onDelta);
    this.#closePromise = new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#standby?.link.close(reason, { announce: options.announce ?? true });
      for (const link of this.#pending) link.close(reason, { announce: false });
    }).then(() => {
      this.#setState('closed', reason);
      safeEmit(this, this.#log, 'close');
    });
    return this.#closePromise;
  }

  #activeStandby(): ActiveStandby | null {
    const s = this.#standby;
    return s && s.snapshotSeq !== null && !s.link.closed ? s : null;
  }

  #sendOrdered(msg: PrimaryMessage): number | null {
    // Anything sent directly must follow the deltas already applied, or the standby sees effects before causes.
    this.#flush();
    const standby = this.#activeStandby();
    if (!standby) return null;
    const seq = standby.link.send(msg);
    this.#trackSend(seq);
    return seq;
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#batch.length === 0) return;
    const deltas = this.#batch;
    this.#batch = [];
    const standby = this.#activeStandby();
    if (!standby) return;
    try {
      this.#trackSend(standby.link.send({ type: 'delta', deltas }));
    } catch (err) {
      // A batch too large for one frame cannot be replicated: the standby must resync from a snapshot.
      this.#log.error(`delta batch of ${deltas.length} not sent: ${errorText(err)}; dropping the standby to force a resync`);
      standby.lostAs = 'died';
      standby.link.close(`delta batch not sendable: ${errorText(err)}`);
    }
  }

  #trackSend(seq: number): void {
    this.#sentAt.set(seq, this.#clock());
    if (this.#sentAt.size > MAX_TRACKED_SENDS) {
      const oldest = this.#sentAt.keys().next().value;
      if (oldest !== undefined) this.#sentAt.delete(oldest);
    }
  }

  #onConnection(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    const link = new ReplicationLink<StandbyMessage, PrimaryMessage>({
      socket,
      secret: this.#options.secret,
      epoch: this.#epoch,
      parse: parseStandbyMessage,
      heartbeatIntervalMs: this.#options.heartbeatIntervalMs,
      peerTimeoutMs: this.#standbyTimeoutMs,
      maxFrameBytes: this.#options.maxFrameBytes,
      clock: this.#clock,
      logContext: { role: 'primary', epoch: this.#epoch },
    });
    this.#pending.add(link);
    let refusal: string | null = null;
    const handshakeMs = this.#options.handshakeTimeoutMs ?? 2000;
    const handshakeTimer = setTimeout(() => {
      refusal = `no valid hello within ${handshakeMs} ms`;
      link.close(refusal, { announce: false });
    }, handshakeMs);
    handshakeTimer.unref();

    // The standby's hello is its first frame; anything else first is a protocol violation, refused at once.
    const notHello = (what: string): void => {
      if (!this.#pending.has(link) || link.closed) return;
      clearTimeout(handshakeTimer);
      refusal = `first frame was "${what}", expected hello`;
      link.close(refusal, { announce: false });
    };
    link.on('frame', (meta) => {
      // A standby leaving mid-handshake says `shutdown`: the link closes itself, no violation.
      if (meta.kind !== 'hello' && meta.kind !== 'shutdown' && meta.kind !== 'probe') notHello(meta.kind);
    });
    link.on('message', (msg, meta) => {
      if (this.#pending.has(link) && msg.type === 'hello') {
        clearTimeout(handshakeTimer);
        this.#onHello(link, msg, meta, remote, (r) => (refusal = r));
        return;
      }
      if (this.#pending.has(link) && msg.type === 'probe') {
        clearTimeout(handshakeTimer);
        this.#pending.delete(link);
        // The answer is the epoch on our (authenticated) shutdown frame.
        this.#log.warn(`fencing probe from ${remote} (pid ${msg.pid}, epoch ${msg.epoch}) answered: this primary serves epoch ${this.#epoch}`);
        safeEmit(this, this.#log, 'probed', { remote, epoch: msg.epoch, pid: msg.pid });
        link.close(`fencing probe answered: primary of epoch ${this.#epoch}`);
        return;
      }
      if (msg.type === 'superseded' && this.#standby?.link === link) {
        this.#onSuperseded(this.#standby, msg.epoch, meta.receivedAt);
        return;
      }
      const standby = this.#standby;
      if (msg.type === 'blob' && standby?.link === link) {
        safeEmit(this, this.#log, 'standby-blob', msg.kind, msg.data, infoOf(standby));
        return;
      }
      this.#log.warn(`unexpected "${msg.type}" from the standby, ignored`);
    });
    link.on('ack', (seq, at) => this.#onAck(link, seq, at));
    link.on('close', (info) => {
      clearTimeout(handshakeTimer);
      const wasPending = this.#pending.delete(link);
      if (wasPending) {
        this.#refused++;
        const reason = refusal ?? `handshake failed: ${info.reason}`;
        this.#log.warn(`standby connection from ${remote} refused: ${reason}`);
        safeEmit(this, this.#log, 'standby-refused', { remote, reason, error: info.error });
        return;
      }
      if (this.#standby?.link === link) this.#onStandbyClosed(this.#standby, info);
    });
  }

  #onHello(
    link: ReplicationLink<StandbyMessage, PrimaryMessage>,
    hello: StandbyHelloMessage,
    meta: FrameMeta,
    remote: string,
    refuse: (reason: string) => void,
  ): void {
    if (meta.epoch > this.#epoch) {
      // The standby has followed a newer primary: we may be deposed. The standby refuses our frames itself.
      this.#log.warn(`standby ${hello.standbyId} has seen epoch ${meta.epoch} > ours (${this.#epoch}): this primary may be deposed`);
    }
    const current = this.#standby;
    if (current && !current.link.closed) {
      const silentMs = this.#clock() - current.link.lastReceivedAt;
      if (silentMs <= this.#standbyTimeoutMs) {
        const reason = `standby ${current.standbyId} (pid ${current.pid}) is already connected, heard ${Math.round(silentMs)} ms ago`;
        refuse(reason);
        // Announced, so the refused standby knows this primary is alive and it is not needed.
        link.close(`refused: ${reason}`);
        return;
      }
      current.lostAs = 'died';
      current.link.close(`replaced by standby ${hello.standbyId}: silent for ${Math.round(silentMs)} ms`, { announce: false });
    }

    this.#pending.delete(link);
    this.#batch = [];
    this.#sentAt.clear();
    const standby: ActiveStandby = {
      standbyId: hello.standbyId,
      pid: hello.pid,
      remote,
      connectedAt: this.#clock(),
      link,
      snapshotSeq: null,
      synced: false,
      lostAs: null,
    };
    this.#standby = standby;
    this.#accepted++;
    try {
      link.send({ type: 'hello', primaryId: this.#primaryId, epoch: this.#epoch, pid: process.pid, service: this.#options.service ?? {} });
      const seq = link.lastSentSeq + 1;
      const sent = link.send({ type: 'snapshot', seq, state: this.#state.snapshot(), extra: this.#collectExtra() });
      this.#trackSend(sent);
      standby.snapshotSeq = sent;
    } catch (err) {
      this.#log.error(`state transfer to standby ${hello.standbyId} failed: ${errorText(err)}`);
      standby.lostAs = 'died';
      link.close(`state transfer failed: ${errorText(err)}`);
      return;
    }
    link.startHeartbeats();
    this.#log.info(`standby ${hello.standbyId} (pid ${hello.pid}) connected from ${remote}, snapshot at seq ${standby.snapshotSeq}`, {
      rooms: this.#state.rooms().length,
      participants: this.#state.participantCount,
    });
    safeEmit(this, this.#log, 'standby-connected', infoOf(standby));
  }

  #collectExtra(): Record<string, unknown> {
    const extra: Record<string, unknown> = {};
    for (const provider of this.#extras) {
      try {
        Object.assign(extra, provider());
      } catch (err) {
        // One broken contributor must not stop state transfer; its part is missing and logged.
        this.#log.error(`snapshot extra provider threw: ${errorText(err)}`);
      }
    }
    return extra;
  }

  #onAck(link: ReplicationLink<StandbyMessage, PrimaryMessage>, seq: number, at: number): void {
    const standby = this.#standby;
    if (!standby || standby.link !== link) return;
    for (const [sentSeq, sentAt] of this.#sentAt) {
      if (sentSeq > seq) break;
      this.#sentAt.delete(sentSeq);
      const rttMs = at - sentAt;
      this.#lastAckRttMs = rttMs;
      safeEmit(this, this.#log, 'acked', { seq: sentSeq, rttMs });
    }
    if (!standby.synced && standby.snapshotSeq !== null && seq >= standby.snapshotSeq) {
      standby.synced = true;
      const syncMs = at - standby.connectedAt;
      this.#log.info(`standby ${standby.standbyId} synced at seq ${seq} in ${syncMs.toFixed(1)} ms`);
      safeEmit(this, this.#log, 'standby-synced', { ...infoOf(standby), seq, syncMs });
    }
  }

  #onSuperseded(standby: ActiveStandby, epoch: number, at: number): void {
    if (epoch <= this.#epoch) {
      this.#log.warn(`standby ${standby.standbyId} claims to supersede us with epoch ${epoch}, not above ours (${this.#epoch}): ignored`);
      return;
    }
    this.#log.error(`standby ${standby.standbyId} is promoting itself with epoch ${epoch}: this primary (epoch ${this.#epoch}) is superseded`, {
      failover: FailoverStep.SupersededReceived,
      newEpoch: epoch,
    });
    safeEmit(this, this.#log, 'superseded', { ...infoOf(standby), epoch, at });
  }

  #onStandbyClosed(standby: ActiveStandby, info: LinkCloseInfo): void {
    this.#standby = null;
    this.#batch = [];
    this.#sentAt.clear();
    this.#totalBytesSent += standby.link.bytesSent;
    const reason: StandbyLostReason = standby.lostAs ?? (info.kind === 'died' ? 'died' : 'shutdown');
    const level = reason === 'died' ? 'warn' : 'info';
    this.#log.log(level, `standby ${standby.standbyId} lost (${reason}): ${info.reason}; the primary is unprotected until a standby syncs`);
    safeEmit(this, this.#log, 'standby-lost', { ...infoOf(standby), reason, detail: info.reason });
  }

  #setState(to: ReplicationServerState, cause: string): void {
    const from = this.#serverState;
    if (from === to) return;
    this.#serverState = to;
    this.#log.info(`${from} -> ${to} (${cause})`);
  }
}

function infoOf(s: ActiveStandby): StandbyInfo {
  return { standbyId: s.standbyId, pid: s.pid, remote: s.remote, connectedAt: s.connectedAt };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
