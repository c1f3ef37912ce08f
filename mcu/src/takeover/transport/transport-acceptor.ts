/**
 * The primary's service listener in takeover mode (design notes sections 4 and 9): accepts
 * each signaling TCP connection paused, reads what a standby needs to rebuild it (initial
 * sequence numbers, negotiated options) before Node reads or writes a byte, then hands the
 * socket to the HTTP server (socket.io attaches there as usual). Every deliberate close is
 * marked (SO_MARK) first, so its FIN/RST passes the firewall that keeps a crashed primary
 * silent. Without CAP_NET_ADMIN or without the addon it serves the same connections in
 * `reconnect` mode (no takeover for them), logging why once.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Server as HttpServer } from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import {
  NativeAddonUnavailableError,
  NativeSyscallError,
  readInitialSequenceNumbers,
  setMark,
  socketFd,
  tcpInfo,
  type TcpInfo,
} from '../../../../native/src/index.ts';
import { createLogger, type Logger } from '../../core/logger.ts';
import { preciseNow } from '../../core/clock.ts';
import { safeEmit } from '../../core/events.ts';
import { TransportAcceptorStateError } from '../errors.ts';
import type { TransportRecord } from './transport-record.ts';

/** The mark the host firewall's FIN/RST rule lets through (mcu/src/takeover/fencing/host-firewall.ts). */
export const DEFAULT_CLOSE_MARK = 0x4d43;

/** `takeover`: the record is complete and a standby can rebuild the connection; `reconnect`: it cannot (clients reconnect). */
export type TransportMode = 'takeover' | 'reconnect';
export type TransportAcceptorState = 'idle' | 'listening' | 'closing' | 'closed';
/** How a deliberate close leaves: `end` (FIN after pending output) or `destroy` (close now; RST if input is unread). */
export type DeliberateClose = 'end' | 'destroy';

export interface TransportClosedInfo {
  mode: TransportMode;
  /** The socket closed because of an error (reset by the peer, ...). */
  hadError: boolean;
  /** How the application closed it, null when it never did (e.g. destroyed by an error only). */
  closedBy: DeliberateClose | null;
  /** The mark was set before the close left (false: marks off or not permitted). */
  marked: boolean;
  bytesRead: number;
  bytesWritten: number;
  durationMs: number;
}

export type TransportAcceptorEvents = {
  listening: [address: AddressInfo];
  /**
   * A connection was accepted. Emitted synchronously before the socket reaches the HTTP server
   * and before any byte is read or written: a listener may wrap its write path here
   * (OutputCommitter.attach). In `reconnect` mode the record's sequence numbers and options are 0.
   */
  connection: [record: TransportRecord, socket: Socket, mode: TransportMode];
  /**
   * A connection this process took over (adopt()): the record's committedOutput is the output
   * offset at the socket's current bytesWritten. Emitted before the session is re-attached.
   */
  adopted: [record: TransportRecord, socket: Socket];
  /** A deliberate close is about to reach the kernel; the mark is set (null: no mark). The fd is still open. */
  closing: [connId: string, info: { how: DeliberateClose; mark: number | null }];
  closed: [connId: string, info: TransportClosedInfo];
  close: [];
};

export interface TransportAcceptorOptions {
  /** Receives every accepted socket via `emit('connection')`; it must not listen itself. */
  httpServer: HttpServer;
  /** Service address to listen on (default 0.0.0.0). */
  host?: string;
  /** Service port (default 0: any free port, see address()). */
  port?: number;
  /** Read ISNs and TCP_INFO at accept for takeover (default true); false serves every connection in `reconnect` mode. */
  takeover?: boolean;
  /** SO_MARK set just before every deliberate close so its FIN/RST passes the firewall (default 0x4d43); null: none. */
  closeMark?: number | null;
  /** Listen backlog (default 511). */
  backlog?: number;
  /**
   * Start the HTTP server's connection tracking as if it listened (default true): header and
   * request timeouts, closeIdleConnections() and closeAllConnections() only work with it.
   */
  trackHttpConnections?: boolean;
  /** Connection id factory (default: 16 random hex digits). */
  newConnId?: () => string;
  /** Time source for acceptedAt (default: epoch ms with sub-ms resolution). */
  clock?: () => number;
}

export interface TransportAcceptorStats {
  state: TransportAcceptorState;
  accepted: number;
  takeover: number;
  reconnect: number;
  open: number;
  /** Deliberate closes marked before they left. */
  marked: number;
  markFailures: number;
  /** Why connections are served in `reconnect` mode, null while takeover works. */
  takeoverUnavailable: string | null;
}

interface Tracked {
  record: TransportRecord;
  socket: Socket;
  mode: TransportMode;
  closedBy: DeliberateClose | null;
  marked: boolean;
}

/** TCP option bytes a timestamp takes in every segment (10, padded to 12). */
const TIMESTAMP_OPTION_BYTES = 12;

/**
 * One listening socket on the service address. Lifecycle: idle -> listening -> closing -> closed;
 * close() stops accepting and destroys (marked) the connections still open.
 */
export class TransportAcceptor extends EventEmitter<TransportAcceptorEvents> {
  readonly #options: TransportAcceptorOptions;
  readonly #http: HttpServer;
  readonly #server: net.Server;
  readonly #connections = new Map<string, Tracked>();
  readonly #connIds = new WeakMap<Socket, string>();
  readonly #clock: () => number;
  readonly #newConnId: () => string;
  readonly #closeMark: number | null;
  readonly #log: Logger;
  #state: TransportAcceptorState = 'idle';
  #takeoverUnavailable: string | null = null;
  #markUnavailable: string | null = null;
  #accepted = 0;
  #takeover = 0;
  #reconnect = 0;
  #marked = 0;
  #markFailures = 0;
  #closePromise: Promise<void> | null = null;

  constructor(options: TransportAcceptorOptions) {
    super();
    this.#options = options;
    this.#http = options.httpServer;
    this.#clock = options.clock ?? preciseNow;
    this.#newConnId = options.newConnId ?? (() => randomBytes(8).toString('hex'));
    this.#closeMark = options.closeMark === undefined ? DEFAULT_CLOSE_MARK : options.closeMark;
    this.#log = createLogger('transport-acceptor');
    if (options.takeover === false) this.#takeoverUnavailable = 'takeover disabled by configuration';
    // Same socket options http.Server would use for its own listener, plus paused accepts:
    // nothing may be read before the initial sequence numbers are.
    this.#server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true, noDelay: true }, (socket) => this.#onConnection(socket));
    this.#server.on('error', (err) => this.#log.error(`service listener error: ${err.message}`));
  }

  get state(): TransportAcceptorState {
    return this.#state;
  }
  get closed(): boolean {
    return this.#state === 'closing' || this.#state === 'closed';
  }

  /** Starts listening on the service address; resolves with the bound address. */
  listen(): Promise<AddressInfo> {
    if (this.#state !== 'idle') return Promise.reject(new TransportAcceptorStateError(`cannot listen: the acceptor is ${this.#state}`));
    return new Promise<AddressInfo>((resolve, reject) => {
      // Both listeners removed whichever fires: a failed listen (EADDRINUSE) may be retried.
      const onError = (err: Error): void => {
        this.#server.off('listening', onListening);
        reject(err);
      };
      const onListening = (): void => {
        this.#server.off('error', onError);
        const address = this.#server.address() as AddressInfo;
        this.#setState('listening', `${address.address}:${address.port}`);
        // http.Server starts its connection tracking on its own 'listening'; it never listens here.
        if (this.#options.trackHttpConnections ?? true) this.#http.emit('listening');
        safeEmit(this, this.#log, 'listening', address);
        resolve(address);
      };
      this.#server.once('error', onError);
      this.#server.once('listening', onListening);
      this.#server.listen({ host: this.#options.host ?? '0.0.0.0', port: this.#options.port ?? 0, backlog: this.#options.backlog ?? 511 });
    });
  }

  /** The bound address, null before listen() completes or after close. */
  address(): AddressInfo | null {
    const a = this.#server.address();
    return a !== null && typeof a === 'object' ? a : null;
  }

  /** An open connection by id. */
  connection(connId: string): { record: TransportRecord; socket: Socket; mode: TransportMode } | undefined {
    const t = this.#connections.get(connId);
    return t && { record: t.record, socket: t.socket, mode: t.mode };
  }

  /** The connection id of an accepted socket (e.g. `socket.request.socket` of a socket.io socket), null if unknown. */
  connIdOf(socket: Socket): string | null {
    return this.#connIds.get(socket) ?? null;
  }

  /** Ids of the open connections. */
  connectionIds(): string[] {
    return [...this.#connections.keys()];
  }

  stats(): TransportAcceptorStats {
    return {
      state: this.#state,
      accepted: this.#accepted,
      takeover: this.#takeover,
      reconnect: this.#reconnect,
      open: this.#connections.size,
      marked: this.#marked,
      markFailures: this.#markFailures,
      takeoverUnavailable: this.#takeoverUnavailable,
    };
  }

  /**
   * Deliberate shutdown (idempotent): stops accepting, then destroys every open connection
   * (each marked, so clients see the close); resolves when all are closed.
   */
  close(reason = 'shutting down'): Promise<void> {
    if (this.#closePromise) return this.#closePromise;
    const wasListening = this.#state === 'listening';
    this.#setState('closing', reason);
    this.#closePromise = new Promise<void>((resolve) => {
      if (!wasListening) return resolve();
      // The callback runs once the last accepted socket is gone (net counts them).
      this.#server.close(() => resolve());
      for (const { socket } of this.#connections.values()) socket.destroy();
    }).then(() => {
      this.#setState('closed', reason);
      safeEmit(this, this.#log, 'close');
    });
    return this.#closePromise;
  }

  #onConnection(socket: Socket): void {
    if (this.closed) {
      this.#markForClose(socket, null, 'destroy');
      socket.destroy();
      return;
    }
    this.#accepted++;
    const acceptedAt = this.#clock();
    const connId = this.#newConnId();
    const { record, mode } = this.#readRecord(socket, connId, acceptedAt);
    if (mode === 'takeover') this.#takeover++;
    else this.#reconnect++;
    this.#track(record, socket, mode, acceptedAt);
    safeEmit(this, this.#log, 'connection', record, socket, mode);
    // A listener may have refused it.
    if (socket.destroyed) return;
    this.#http.emit('connection', socket);
    socket.resume();
  }

  /** Reads the takeover state synchronously, before the socket is resumed (Node reads ahead once it is). */
  #readRecord(socket: Socket, connId: string, acceptedAt: number): { record: TransportRecord; mode: TransportMode } {
    const record: TransportRecord = {
      connId,
      local: { address: plainAddress(socket.localAddress), port: socket.localPort ?? 0 },
      remote: { address: plainAddress(socket.remoteAddress), port: socket.remotePort ?? 0 },
      clientIsn: 0,
      serverIsn: 0,
      mss: 0,
      sndWscale: 0,
      rcvWscale: 0,
      sack: false,
      timestamps: false,
      consumedInput: 0,
      committedOutput: 0,
      acceptedAt,
    };
    if (this.#takeoverUnavailable !== null) return { record, mode: 'reconnect' };
    try {
      const fd = socketFd(socket);
      const isn = readInitialSequenceNumbers(fd);
      const info = tcpInfo(fd);
      record.clientIsn = isn.clientIsn;
      record.serverIsn = isn.serverIsn;
      record.mss = estimatePeerMss(info);
      record.sndWscale = info.wscale ? info.sndWscale : 0;
      record.rcvWscale = info.wscale ? info.rcvWscale : 0;
      record.sack = info.sack;
      record.timestamps = info.timestamps;
      return { record, mode: 'takeover' };
    } catch (err) {
      const why = errorText(err);
      if (isPermanent(err)) {
        // Every later connection would fail the same way: stop trying, say it once.
        this.#takeoverUnavailable = why;
        this.#log.warn(`connection takeover unavailable, serving in reconnect mode: ${why}`);
      } else {
        this.#log.warn(`connection ${connId} served in reconnect mode: ${why}`, { conn: connId });
      }
      return { record, mode: 'reconnect' };
    }
  }

  /**
   * Every way a net.Socket can close goes through _final (end: shutdown, FIN) or _destroy
   * (close or reset of the handle): whichever of ws, engine.io or http asks, the mark is set
   * just before. Whatever wraps these later (OutputCommitter) runs first and calls these.
   */
  /**
   * Takes charge of a connection this process took over from a dead primary (rebuilt with
   * TCP_REPAIR): its deliberate closes are marked and it is reported like an accepted one, so
   * it is protected again (output commit, session records) for the next standby. Never
   * handed to the HTTP server: its session is re-attached by the caller.
   */
  adopt(record: TransportRecord, socket: Socket): void {
    if (this.#connections.has(record.connId)) throw new TransportAcceptorStateError(`connection ${record.connId} is already tracked`);
    this.#track(record, socket, 'takeover', this.#clock());
    safeEmit(this, this.#log, 'adopted', record, socket);
  }

  #track(record: TransportRecord, socket: Socket, mode: TransportMode, acceptedAt: number): void {
    const connId = record.connId;
    const tracked: Tracked = { record, socket, mode, closedBy: null, marked: false };
    this.#connections.set(connId, tracked);
    this.#connIds.set(socket, connId);
    this.#wrapCloses(tracked);
    socket.once('close', (hadError: boolean) => {
      this.#connections.delete(connId);
      safeEmit(this, this.#log, 'closed', connId, {
        mode,
        hadError,
        closedBy: tracked.closedBy,
        marked: tracked.marked,
        bytesRead: socket.bytesRead,
        bytesWritten: socket.bytesWritten ?? 0,
        durationMs: this.#clock() - acceptedAt,
      });
    });
  }

  #wrapCloses(tracked: Tracked): void {
    const { socket } = tracked;
    const final = socket._final;
    const destroy = socket._destroy;
    socket._final = (cb) => {
      this.#markForClose(socket, tracked, 'end');
      final.call(socket, cb);
    };
    socket._destroy = (err, cb) => {
      this.#markForClose(socket, tracked, 'destroy');
      destroy.call(socket, err, cb);
    };
  }

  #markForClose(socket: Socket, tracked: Tracked | null, how: DeliberateClose): void {
    if (tracked) {
      if (tracked.closedBy !== null) return;
      tracked.closedBy = how;
    }
    let mark: number | null = null;
    if (this.#closeMark !== null && this.#markUnavailable === null && hasHandle(socket)) {
      try {
        setMark(socketFd(socket), this.#closeMark);
        mark = this.#closeMark;
        this.#marked++;
        if (tracked) tracked.marked = true;
      } catch (err) {
        this.#markFailures++;
        if (isPermanent(err)) {
          this.#markUnavailable = errorText(err);
          this.#log.warn(`close mark unavailable, deliberate closes leave unmarked: ${this.#markUnavailable}`);
        } else {
          this.#log.warn(`could not mark a deliberate close: ${errorText(err)}`);
        }
      }
    }
    if (tracked) safeEmit(this, this.#log, 'closing', tracked.record.connId, { how, mark });
  }

  #setState(to: TransportAcceptorState, cause: string): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    this.#log.info(`${from} -> ${to} (${cause})`);
  }
}

/**
 * The peer's SYN MSS as far as TCP_INFO tells (the standby's capture of the SYN is exact and
 * preferred). The send MSS is the peer's clamp minus the timestamp option, unless it was cut to
 * half the peer's first window (loopback: 65495-byte MSS, 64 KiB window); then our own
 * advertised MSS stands in (same link MTU on both sides).
 */
export function estimatePeerMss(info: TcpInfo): number {
  const options = info.timestamps ? TIMESTAMP_OPTION_BYTES : 0;
  const halfWindowBound = info.sndWnd !== undefined && info.sndWnd > 0 && info.sndMss >= Math.floor(info.sndWnd / 2);
  const send = halfWindowBound || info.sndMss >= info.advmss ? info.advmss : info.sndMss;
  return send + options;
}

/** Failures that will repeat on every connection: no addon, or no CAP_NET_ADMIN. */
function isPermanent(err: unknown): boolean {
  if (err instanceof NativeAddonUnavailableError) return true;
  return err instanceof NativeSyscallError && (err.errnoName === 'EPERM' || err.errnoName === 'EACCES' || err.errnoName === 'ENOPROTOOPT');
}

/** Whether the socket still has its libuv handle (an fd); Node internal, null once destroyed. */
function hasHandle(socket: Socket): boolean {
  return Boolean((socket as unknown as { _handle?: unknown })._handle);
}

function plainAddress(address: string | undefined): string {
  if (!address) return '';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
