import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import { McuError, ReplicationClosedError, ReplicationMalformedError } from '../core/errors.ts';
import { createLogger, type Logger } from '../core/logger.ts';
import type { Secret } from '../wire/frame-codec.ts';
import { parsePrimaryMessage, type PrimaryMessage, type StandbyMessage } from '../wire/messages.ts';
import { ReplicationLink, type FrameMeta, type LinkCloseInfo } from './replication-link.ts';
import { preciseNow } from '../core/clock.ts';
import { safeEmit } from '../core/events.ts';
import { SessionStateError } from '../conference/session-state.ts';
import { CheckpointStore } from './checkpoint-store.ts';
import { FailoverStep } from '../wire/failover-steps.ts';

/**
 * idle -> connecting -> syncing (hello received) -> synced (first snapshot applied)
 * synced/syncing -> connecting  (protocol failure or divergence: resync from a fresh snapshot)
 * synced/syncing -> lost        (the stream ended: the primary shut down, or the channel died)
 * any -> closed                 (close())
 */
export type ReplicationClientState = 'idle' | 'connecting' | 'syncing' | 'synced' | 'lost' | 'closed';

export interface PrimaryInfo {
  primaryId: string;
  epoch: number;
  pid: number;
  service: Record<string, unknown>;
  remote: string;
}

export type ReplicationClientEvents = {
  state: [to: ReplicationClientState, from: ReplicationClientState];
  /** The primary accepted us (hello received). */
  connected: [info: PrimaryInfo];
  /** The first snapshot of a connection was applied (and acknowledged). */
  synced: [info: { seq: number; epoch: number; primaryId: string }];
  /** A frame was applied to the checkpoint and acknowledged. */
  checkpoint: [seq: number];
  blob: [kind: string, data: unknown, seq: number];
  binary: [data: Buffer, seq: number];
  /** A connection or frame was refused (auth, stale epoch, malformed, refused by the primary); nothing of it was applied. */
  rejected: [error: McuError];
  /**
   * The channel to the primary is gone: `deliberate` when the primary announced its shutdown.
   * Otherwise only a suspicion: the verdict is the heartbeat thread's (HeartbeatMonitor).
   */
  lost: [info: { deliberate: boolean; reason: string }];
  close: [];
};

export interface ReplicationClientOptions {
  /** Primary's replication address (default 127.0.0.1). */
  host?: string;
  port: number;
  /** Shared secret for the frame MACs (MCU_REPLICATION_SECRET). */
  secret: Secret;
  /** Identity sent in hello (default `standby-<pid>`). */
  standbyId?: string;
  /** Where the checkpoint is kept (default: a new store). */
  store?: CheckpointStore;
  /** Lowest acceptable epoch: frames of older epochs are refused as stale (default: the store's epoch). */
  epoch?: number;
  /** Our heartbeat period towards the primary (default 10 ms). */
  heartbeatIntervalMs?: number;
  /** Delay before connection attempt `attempt` (0-based); null gives up (default 5 ms doubling up to 250 ms, forever). */
  retryDelay?: (attempt: number) => number | null;
  /** A connection attempt that is not established within this is retried (default 1000 ms). */
  connectTimeoutMs?: number;
  /** Largest frame payload (default 16 MiB). */
  maxFrameBytes?: number;
  /** An incomplete frame refused after this long while bytes keep coming: a forged length (default DEFAULT_FRAME_TIMEOUT_MS, replication-link.ts). */
  frameTimeoutMs?: number;
  /** Time source (default: epoch ms with sub-ms resolution). */
  clock?: () => number;
}

function defaultRetryDelay(attempt: number): number {
  return Math.min(250, 5 * 2 ** Math.min(attempt, 10));
}

/**
 * The standby's side of replication: connects to the primary (retrying), verifies and applies
 * the snapshot and deltas to its CheckpointStore, acknowledges each applied frame, and reports how
 * the channel ended.
 */
export class ReplicationClient extends EventEmitter<ReplicationClientEvents> {
  readonly store: CheckpointStore;
  readonly standbyId: string;
  readonly #options: ReplicationClientOptions;
  readonly #clock: () => number;
  readonly #retryDelay: (attempt: number) => number | null;
  readonly #log: Logger;
  #state: ReplicationClientState = 'idle';
  #epoch: number;
  #attempt = 0;
  #socket: Socket | null = null;
  #link: ReplicationLink<PrimaryMessage, StandbyMessage> | null = null;
  #primary: PrimaryInfo | null = null;
  #snapshotApplied = false;
  #linkFailure: McuError | null = null;
  #retryTimer: NodeJS.Timeout | null = null;

  constructor(options: ReplicationClientOptions) {
    super();
    this.#options = options;
    this.store = options.store ?? new CheckpointStore();
    this.#epoch = options.epoch ?? this.store.epoch;
    this.#clock = options.clock ?? preciseNow;
    this.#retryDelay = options.retryDelay ?? defaultRetryDelay;
    this.standbyId = options.standbyId ?? `standby-${process.pid}`;
    this.#log = createLogger('replication-client', { role: 'standby', standby: this.standbyId });
  }

  get state(): ReplicationClientState {
    return this.#state;
  }
  get closed(): boolean {
    return this.#state === 'closed';
  }
  /** Highest epoch accepted so far. */
  get epoch(): number {
    return this.#epoch;
  }
  get primary(): PrimaryInfo | null {
    return this.#primary;
  }
  get link(): ReplicationLink<PrimaryMessage, StandbyMessage> | null {
    return this.#link;
  }

  /**
   * Sends a record to the primary (not acknowledged, not part of the checkpoint); false when no
   * primary has accepted us on the current connection.
   */
  sendBlob(kind: string, data: unknown): boolean {
    const link = this.#link;
    if (!link || link.closed || !this.#primary) return false;
    link.send({ type: 'blob', kind, data });
    return true;
  }

  /** Starts connecting (idempotent). */
  start(): this {
    if (this.#state !== 'idle') return this;
    this.#setState('connecting', 'start');
    this.#connect();
    return this;
  }

  /**
   * Tells the primary we are promoting ourselves with `epoch` (call just before close()): a
   * primary that was only frozen or cut off reads it and fences itself. False when no link is open.
   */
  supersede(epoch: number): boolean {
    const link = this.#link;
    if (!link || link.closed) return false;
    try {
      link.send({ type: 'superseded', epoch, standbyId: this.standbyId });
      this.#log.info(`told the primary it is superseded by epoch ${epoch}`, { failover: FailoverStep.SupersededSent, epoch });
      return true;
    } catch (err) {
      this.#log.warn(`could not tell the primary it is superseded: ${err instanceof Error ? err.message : String(err)}`);
      return false;
    }
  }

  /** Deliberate stop (idempotent): the primary is told, so it does not take this for a standby crash. */
  close(reason = 'standby shutting down'): void {
    if (this.#state === 'closed') return;
    this.#setState('closed', reason);
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    const link = this.#link;
    this.#link = null;
    if (link) link.close(reason);
    else this.#socket?.destroy();
    this.#socket = null;
    safeEmit(this, this.#log, 'close');
  }

  #connect(): void {
    if (this.#state !== 'connecting') return;
    const host = this.#options.host ?? '127.0.0.1';
    const socket = connect({ host, port: this.#options.port, noDelay: true });
    this.#socket = socket;
    const onError = (err: NodeJS.ErrnoException): void => {
      if (this.#socket !== socket) return;
      this.#socket = null;
      this.#scheduleRetry(`connect to ${host}:${this.#options.port} failed: ${err.code ?? err.message}`);
    };
    socket.once('error', onError);
    // An unreachable host would otherwise hold us in SYN retries for minutes.
    const connectTimeoutMs = this.#options.connectTimeoutMs ?? 1000;
    socket.setTimeout(connectTimeoutMs, () => {
      socket.destroy();
      onError(Object.assign(new Error(`no answer within ${connectTimeoutMs} ms`), { code: 'ETIMEDOUT' }));
    });
    socket.once('connect', () => {
      socket.setTimeout(0);
      socket.off('error', onError);
      if (this.#socket !== socket || this.#state !== 'connecting') {
        socket.destroy();
        return;
      }
      this.#onConnected(socket);
    });
  }

  #onConnected(socket: Socket): void {
    const link = new ReplicationLink<PrimaryMessage, StandbyMessage>({
      socket,
      secret: this.#options.secret,
      epoch: this.#epoch,
      parse: parsePrimaryMessage,
      minPeerEpoch: this.#epoch,
      heartbeatIntervalMs: this.#options.heartbeatIntervalMs,
      maxFrameBytes: this.#options.maxFrameBytes,
      frameTimeoutMs: this.#options.frameTimeoutMs,
      clock: this.#clock,
      logContext: { role: 'standby', standby: this.standbyId },
    });
    this.#link = link;
    this.#primary = null;
    this.#snapshotApplied = false;
    this.#linkFailure = null;
    link.on('message', (msg, meta) => this.#onMessage(link, msg, meta));
    link.on('binary', (data, meta) => this.#onBinary(link, data, meta));
    link.on('epoch', (epoch) => {
      this.#log.info(`primary moved to epoch ${epoch}`);
      this.#epoch = epoch;
      this.store.setEpoch(epoch);
      link.setEpoch(epoch);
    });
    link.on('protocol-error', (err) => {
      this.#linkFailure = err;
    });
    link.on('close', (info) => this.#onLinkClosed(link, info));
    link.send({ type: 'hello', standbyId: this.standbyId, pid: process.pid });
    link.startHeartbeats();
  }

  #onMessage(link: ReplicationLink<PrimaryMessage, StandbyMessage>, msg: Exclude<PrimaryMessage, { type: 'heartbeat' | 'shutdown' }>, meta: FrameMeta): void {
    if (this.#link !== link) return;
    switch (msg.type) {
      case 'hello': {
        if (this.#primary) return this.#refuse(link, new ReplicationMalformedError('second hello on one connection'));
        if (msg.epoch !== meta.epoch) {
          return this.#refuse(link, new ReplicationMalformedError(`hello announces epoch ${msg.epoch} in a frame of epoch ${meta.epoch}`));
        }
        this.#primary = { primaryId: msg.primaryId, epoch: msg.epoch, pid: msg.pid, service: msg.service, remote: link.remoteAddress };
        this.#attempt = 0;
        this.#epoch = Math.max(this.#epoch, msg.epoch);
        this.store.setEpoch(this.#epoch);
        this.#log.info(`connected to primary ${msg.primaryId} (pid ${msg.pid}, epoch ${msg.epoch})`);
        this.#setState('syncing', `hello from ${msg.primaryId}`);
        safeEmit(this, this.#log, 'connected', this.#primary);
        this.#ack(link, meta.seq);
        return;
      }
      case 'snapshot': {
        if (!this.#primary) return this.#refuse(link, new ReplicationMalformedError('snapshot before hello'));
        if (msg.seq !== meta.seq) {
          return this.#refuse(link, new ReplicationMalformedError(`snapshot claims seq ${msg.seq} in frame seq ${meta.seq}`));
        }
        this.store.applySnapshot(msg, meta.seq, meta.epoch);
        const first = !this.#snapshotApplied;
        this.#snapshotApplied = true;
        this.#ack(link, meta.seq);
        if (first) {
          this.#setState('synced', `snapshot at seq ${meta.seq}`);
          safeEmit(this, this.#log, 'synced', { seq: meta.seq, epoch: meta.epoch, primaryId: this.#primary.primaryId });
        }
        safeEmit(this, this.#log, 'checkpoint', meta.seq);
        return;
      }
      case 'delta': {
        if (!this.#snapshotApplied) return this.#refuse(link, new ReplicationMalformedError('delta before the snapshot'));
        try {
          this.store.applyDeltas(msg.deltas, meta.seq);
        } catch (err) {
          // Our copy no longer matches the primary's (SessionStateError): only a fresh snapshot can repair it.
          const detail = err instanceof SessionStateError ? err.message : `unexpected ${err instanceof Error ? err.message : String(err)}`;
          this.#log.error(`checkpoint diverged at seq ${meta.seq}: ${detail}; resyncing`);
          this.#resync(link, `checkpoint diverged: ${detail}`);
          return;
        }
        this.#ack(link, meta.seq);
        safeEmit(this, this.#log, 'checkpoint', meta.seq);
        return;
      }
      case 'blob': {
        if (!this.#snapshotApplied) return this.#refuse(link, new ReplicationMalformedError('blob before the snapshot'));
        this.store.applyBlob(msg.kind, msg.data, meta.seq);
        this.#ack(link, meta.seq);
        safeEmit(this, this.#log, 'blob', msg.kind, msg.data, meta.seq);
        safeEmit(this, this.#log, 'checkpoint', meta.seq);
        return;
      }
    }
  }

  #onBinary(link: ReplicationLink<PrimaryMessage, StandbyMessage>, data: Buffer, meta: FrameMeta): void {
    if (this.#link !== link) return;
    if (!this.#snapshotApplied) return this.#refuse(link, new ReplicationMalformedError('binary frame before the snapshot'));
    // Delivered before the ack: a listener that stores the bytes (output log) does so synchronously.
    safeEmit(this, this.#log, 'binary', data, meta.seq);
    this.store.advance(meta.seq);
    this.#ack(link, meta.seq);
    safeEmit(this, this.#log, 'checkpoint', meta.seq);
  }

  #ack(link: ReplicationLink<PrimaryMessage, StandbyMessage>, seq: number): void {
    if (!link.closed) link.send({ type: 'ack', seq });
  }

  /** A frame that verified but makes no sense here: nothing of it is applied, the connection is dropped and retried. */
  #refuse(link: ReplicationLink<PrimaryMessage, StandbyMessage>, error: McuError): void {
    this.#log.warn(`frame refused: ${error.message}`, { code: error.code });
    this.#linkFailure = error;
    link.close(`refused: ${error.message}`, { announce: false });
  }

  #resync(link: ReplicationLink<PrimaryMessage, StandbyMessage>, reason: string): void {
    this.#linkFailure = null;
    this.#link = null;
    // Announced: the primary sees a deliberate leave, not a standby crash.
    link.close(reason);
    this.#restartConnecting(reason);
  }

  #onLinkClosed(link: ReplicationLink<PrimaryMessage, StandbyMessage>, info: LinkCloseInfo): void {
    if (this.#link !== link) return;
    this.#link = null;
    this.#socket = null;
    if (this.#state === 'closed' || this.#state === 'lost') return;

    const failure = this.#linkFailure;
    if (failure) {
      // Refused frames say nothing about the primary's health (a deposed primary, a wrong secret,
      // a bug): not even a suspicion.
      safeEmit(this, this.#log, 'rejected', failure);
      this.#restartConnecting(`refused: ${failure.message}`);
      return;
    }
    if (!this.#primary) {
      if (info.kind === 'shutdown') {
        const error = new ReplicationClosedError(`refused by the primary: ${info.reason}`);
        this.#log.warn(error.message);
        safeEmit(this, this.#log, 'rejected', error);
      }
      this.#scheduleRetry(`connection ended before the primary's hello (${info.kind}: ${info.reason})`);
      return;
    }
    const deliberate = info.kind === 'shutdown';
    this.#setState('lost', `${deliberate ? 'primary shut down' : 'channel died'}: ${info.reason}`);
    safeEmit(this, this.#log, 'lost', { deliberate, reason: info.reason });
  }

  #restartConnecting(reason: string): void {
    this.#primary = null;
    this.#setState('connecting', reason);
    this.#scheduleRetry(reason);
  }

  #scheduleRetry(why: string): void {
    if (this.#state !== 'connecting') return;
    const delay = this.#retryDelay(this.#attempt++);
    if (delay === null) {
      this.#log.error(`giving up connecting after ${this.#attempt} attempts: ${why}`);
      this.#setState('lost', `gave up: ${why}`);
      safeEmit(this, this.#log, 'lost', { deliberate: false, reason: `gave up connecting: ${why}` });
      return;
    }
    this.#log.debug(`retrying in ${delay} ms: ${why}`);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#connect();
    }, delay);
    this.#retryTimer.unref();
  }

  #setState(to: ReplicationClientState, cause: string): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    this.#log.info(`${from} -> ${to} (${cause})`, { epoch: this.#epoch, seq: this.store.seq });
    safeEmit(this, this.#log, 'state', to, from);
  }
}
