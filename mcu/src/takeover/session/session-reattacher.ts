/**
 * Standby side of connection takeover: re-attaches a recorded socket.io session to a TCP
 * socket that already carries it (rebuilt with TCP_REPAIR, or handed over by another
 * process), as an already-upgraded WebSocket with the same engine.io sid, socket ids,
 * rooms and data, writing nothing the client already has (design notes 4 and 10).
 *
 * How: a server-mode ws WebSocket adopts the socket (`setSocket`, what ws does after the
 * 101) and stays paused; engine.io runs its normal post-upgrade path on a rebuilt request
 * with `generateId` answering the recorded sid; one synthetic CONNECT per namespace carries
 * a one-time secret that makes the TakeoverAdapter hand socket.io the recorded session
 * (connection state recovery), so the application sees `socket.recovered === true`. The
 * open packet and the CONNECT replies this produces are withheld (matched by content: the
 * client has them), the heartbeat continues from the record, client requests the old
 * process never answered are replayed, and only then does input flow: first the client
 * bytes the old process had not consumed, then the socket.
 *
 * On failure nothing has been written, the session is torn down here without a byte, and
 * the socket is left open and paused: the caller closes it (`closeUnattachedSocket`) and
 * the client falls back to reconnecting.
 */
import { randomBytes } from 'node:crypto';
import { IncomingMessage } from 'node:http';
import type { Socket as NetSocket } from 'node:net';
import type { Socket } from 'socket.io';
import type { Session } from 'socket.io-adapter';
import { createLogger, type Logger } from '../../core/logger.ts';
import { rearmHeartbeat } from './engine-heartbeat.ts';
import {
  ConnectionLostError,
  InputMismatchError,
  NamespaceNotRestoredError,
  ReattachInternalError,
  ServerMisconfiguredError,
  SessionInUseError,
  SettingsMismatchError,
  SocketUnusableError,
  TakeoverError,
  TakeoverTimeoutError,
  UnexpectedOutputError,
  UnknownNamespaceError,
  UnsupportedVersionError,
} from '../errors.ts';
import {
  WS_CLOSED,
  checkInstalledVersions,
  serverInternals,
  type EngineServerInternals,
  type EngineSocketInternals,
  type ServerLike,
  type SioNamespaceInternals,
  type SioServerInternals,
  type SioSocketInternals,
  type WsWebSocketClass,
  type WsWebSocketInternals,
} from './internals.ts';
import { SessionRecorder } from './session-recorder.ts';
import { parseSessionRecord, unparsedInputOf, type PendingServerAck, type RecordedNamespace, type SessionRecord } from './session-record.ts';
import { TakeoverAdapter } from './takeover-adapter.ts';

/** The client answered an emit whose callback stayed in the old process. */
export interface LateAck {
  namespace: string;
  socketId: string;
  id: number;
  /** The event that asked for the ack, when the old process saw it go out. */
  event: string | null;
  args: unknown[];
  /** The restored socket (e.g. to count or re-send). */
  socket: Socket;
}

export interface ReattachOptions {
  /** Give up (and tear down without writing) after this long. Default 5000 ms. */
  timeoutMs?: number;
  /**
   * Client requests (events with an ack) the old process consumed but never answered: replay
   * them to the application so the client gets its answer (`redeliver`, default: handlers may
   * run twice for such a request), or leave the client waiting (`drop`).
   */
  pendingClientRequests?: 'redeliver' | 'drop';
  /** A late acknowledgement from the client. Default: logged at info level and dropped. */
  onLateAck?: (late: LateAck) => void;
  /** The recorder that will checkpoint the connection here. Default: `SessionRecorder.of(io)`. */
  recorder?: SessionRecorder | null;
  /** Default: a child of the project logger, module `takeover`. */
  logger?: Logger;
}

/**
 * Re-attaches `record`'s session to `socket` on `io`. `pendingInput` is the client's bytes
 * after `record.bytes.consumed` that the socket will not deliver again (from the capture,
 * or the old process's unparsed bytes); it must start at a frame boundary.
 * Rejects with a `TakeoverError` subclass; the socket is then the caller's to close.
 */
export function reattach(io: ServerLike, socket: NetSocket, record: SessionRecord, pendingInput: Buffer, options: ReattachOptions = {}): Promise<void> {
  return new Reattachment(io, socket, record, pendingInput, options).run();
}

/**
 * Closes a socket that could not be re-attached with a WebSocket close frame (1012, service
 * restart) so the client reconnects at once. Only valid when everything the client was sent
 * ends on a frame boundary (the output log was replayed in full).
 */
export function closeUnattachedSocket(socket: NetSocket, code = 1012, reason = 'service restart'): void {
  if (socket.destroyed) return;
  const text = Buffer.from(reason.slice(0, 100));
  const frame = Buffer.alloc(4 + text.length);
  frame[0] = 0x88;
  frame[1] = 2 + text.length;
  frame.writeUInt16BE(code, 2);
  text.copy(frame, 4);
  socket.on('error', () => {});
  socket.end(frame);
  setTimeout(() => socket.destroy(), 1000).unref();
}

// engine.io asks generateId() for the sid of every new connection: adopted requests get the recorded one.
const adoptedSids = new WeakMap<IncomingMessage, string>();
const idDispatchers = new WeakMap<EngineServerInternals, EngineServerInternals['generateId']>();

function ensureIdDispatcher(engine: EngineServerInternals): void {
  const current = engine.generateId;
  if (idDispatchers.get(engine) === current) return;
  const dispatcher = (req: IncomingMessage): string | PromiseLike<string> => adoptedSids.get(req) ?? current.call(engine, req);
  engine.generateId = dispatcher;
  idDispatchers.set(engine, dispatcher);
}

/** Frames that only a handshake produces: never let an unexpected one reach the client. */
function isHandshakeFrame(frame: string): boolean {
  return frame.startsWith('0') || frame.startsWith('40') || frame.startsWith('44');
}

function sameAddress(a: string | undefined, b: string): boolean {
  const norm = (s: string): string => (s.startsWith('::ffff:') ? s.slice(7) : s);
  return a !== undefined && norm(a) === norm(b);
}

type SendFn = WsWebSocketInternals['send'];
type Listener = (...args: unknown[]) => void;
const WATCHED_EVENTS = ['data', 'end', 'close', 'error'] as const;

/**
 * Withholds the frames the client already has (matched by content), and any other handshake
 * frame (a failure: reported, not sent). Everything else passes.
 */
class HandshakeFilter {
  readonly complete: Promise<void>;
  withheldBytes = 0;
  readonly #expected: Set<string>;
  readonly #onViolation: (frame: string) => void;
  #resolve: () => void = () => {};
  #ws: WsWebSocketInternals | null = null;

  constructor(expected: string[], onViolation: (frame: string) => void) {
    this.#expected = new Set(expected);
    this.#onViolation = onViolation;
    this.complete = new Promise((resolve) => (this.#resolve = resolve));
  }

  get outstanding(): string[] {
    return [...this.#expected];
  }

  install(ws: WsWebSocketInternals): void {
    const original = ws.send;
    this.#ws = ws;
    ws.send = ((data: unknown, options?: unknown, cb?: (err?: Error) => void): void => {
      const callback = typeof options === 'function' ? (options as (err?: Error) => void) : cb;
      if (typeof data === 'string' && isHandshakeFrame(data)) {
        // ws would call back once the bytes are out; engine.io then flushes its next batch.
        if (callback) process.nextTick(callback);
        if (this.#expected.delete(data)) {
          this.withheldBytes += Buffer.byteLength(data);
          if (this.#expected.size === 0) this.#resolve();
        } else {
          this.#onViolation(data);
        }
        return;
      }
      original.call(ws, data, options, cb);
    }) as SendFn;
  }

  remove(): void {
    if (this.#ws && Object.prototype.hasOwnProperty.call(this.#ws, 'send')) delete (this.#ws as { send?: unknown }).send;
    this.#ws = null;
  }
}

class Reattachment {
  readonly #io: ServerLike;
  readonly #socket: NetSocket;
  readonly #input: Buffer;
  readonly #opts: ReattachOptions;
  readonly #log: Logger;
  #record: SessionRecord;
  #sio: SioServerInternals | null = null;
  #recorder: SessionRecorder | null = null;
  #step = 'checking';
  #failure: TakeoverError | null = null;
  #rejectFailure: (err: TakeoverError) => void = () => {};
  #listenersBefore = new Map<string, Listener[]>();
  #websocket: WsWebSocketInternals | null = null;
  #filter: HandshakeFilter | null = null;
  #es: EngineSocketInternals | null = null;
  #request: IncomingMessage | null = null;
  #staged: Array<{ adapter: TakeoverAdapter; session: Session }> = [];
  #cancelAdoption: (() => void) | null = null;
  #unguardWrites: (() => void) | null = null;
  #stopWaitingForEngine: (() => void) | null = null;
  readonly #onSocketError = (err: Error): void => {
    this.#log.info('adopted socket error during re-attachment', { error: err.message });
  };
  readonly #onSocketClose = (): void => this.#fail(new ConnectionLostError(`socket closed while ${this.#step}`));

  constructor(io: ServerLike, socket: NetSocket, record: SessionRecord, pendingInput: Buffer, opts: ReattachOptions) {
    this.#io = io;
    this.#socket = socket;
    this.#record = record;
    this.#input = pendingInput;
    this.#opts = opts;
    this.#log = opts.logger ?? createLogger('takeover', { sid: record?.engine?.sid });
  }

  async run(): Promise<void> {
    const started = performance.now();
    const timeoutMs = this.#opts.timeoutMs ?? 5000;
    const failed = new Promise<never>((_, reject) => (this.#rejectFailure = reject));
    failed.catch(() => {});
    const timer = setTimeout(() => this.#fail(new TakeoverTimeoutError(this.#step, timeoutMs)), timeoutMs);
    try {
      this.#check();
      await Promise.race([this.#attach(), failed]);
      this.#alive();
    } catch (err) {
      const error = err instanceof TakeoverError ? err : new ReattachInternalError(this.#step, err);
      this.#failure ??= error;
      this.#teardown(error);
      this.#log.warn('re-attachment failed: the caller closes the connection', { step: this.#step, code: error.code, reason: error.message });
      throw error;
    } finally {
      clearTimeout(timer);
    }
    this.#log.info('session re-attached', {
      ms: Math.round((performance.now() - started) * 10) / 10,
      namespaces: this.#record.namespaces.map((n) => n.name).join(','),
      withheldBytes: this.#filter?.withheldBytes ?? 0,
      pendingInput: this.#input.length,
    });
  }

  #fail(error: TakeoverError): void {
    if (this.#failure) return;
    this.#failure = error;
    this.#rejectFailure(error);
  }

  /** Throws the failure if one happened meanwhile: no step runs after a failure. */
  #alive(): void {
    if (this.#failure) throw this.#failure;
  }

  #check(): void {
    this.#record = parseSessionRecord(this.#record);
    const rec = this.#record;
    checkInstalledVersions();
    const sio = serverInternals(this.#io);
    this.#sio = sio;
    const engine = sio.engine;
    this.#recorder = this.#opts.recorder === undefined ? (SessionRecorder.of(this.#io) ?? null) : this.#opts.recorder;

    if (!engine.opts.transports.includes('websocket') || !engine.ws) throw new ServerMisconfiguredError("transports must include 'websocket'");
    const WebSocketClass = engine.ws.options.WebSocket;
    if (typeof WebSocketClass !== 'function' || typeof WebSocketClass.prototype?.setSocket !== 'function') {
      throw new UnsupportedVersionError('engine.io\'s ws server has no WebSocket class with setSocket() in its options');
    }
    if (engine.opts.perMessageDeflate || engine.ws.options.perMessageDeflate) throw new ServerMisconfiguredError('perMessageDeflate must be false');
    if (engine.opts.initialPacket !== undefined) throw new ServerMisconfiguredError('engine.io initialPacket must not be set (the client already has it)');
    const recovery = sio.opts.connectionStateRecovery;
    if (!recovery) throw new ServerMisconfiguredError('connectionStateRecovery must be enabled');
    if (recovery.skipMiddlewares !== true) throw new ServerMisconfiguredError('connectionStateRecovery.skipMiddlewares must be true (middlewares must not judge a session twice)');

    const local = {
      pingInterval: engine.opts.pingInterval,
      pingTimeout: engine.opts.pingTimeout,
      maxPayload: engine.opts.maxHttpBufferSize,
      upgrades: engine.opts.allowUpgrades ? (engine as unknown as { upgrades(t: string): string[] }).upgrades('websocket').filter((t) => engine.opts.transports.includes(t)) : [],
    };
    if (local.pingInterval !== rec.engine.pingIntervalMs) throw new SettingsMismatchError('pingInterval', rec.engine.pingIntervalMs, local.pingInterval);
    if (local.pingTimeout !== rec.engine.pingTimeoutMs) throw new SettingsMismatchError('pingTimeout', rec.engine.pingTimeoutMs, local.pingTimeout);
    if (local.maxPayload !== rec.engine.maxPayload) throw new SettingsMismatchError('maxPayload (maxHttpBufferSize)', rec.engine.maxPayload, local.maxPayload);
    if (JSON.stringify(local.upgrades) !== JSON.stringify(rec.engine.upgrades)) throw new SettingsMismatchError('upgrades', rec.engine.upgrades, local.upgrades);

    if (Object.prototype.hasOwnProperty.call(engine.clients, rec.engine.sid)) throw new SessionInUseError('engine.io session', rec.engine.sid);
    for (const ns of rec.namespaces) {
      const nsp = sio._nsps.get(ns.name);
      if (!nsp) throw new UnknownNamespaceError(ns.name);
      if (!(nsp.adapter instanceof TakeoverAdapter)) throw new ServerMisconfiguredError(`namespace "${ns.name}" does not use the TakeoverAdapter`);
      if (nsp.sockets.has(ns.socketId) || nsp._preConnectSockets.has(ns.socketId)) throw new SessionInUseError(`socket.io socket of namespace "${ns.name}"`, ns.socketId);
    }

    const socket = this.#socket;
    if (socket.destroyed || !socket.readable || !socket.writable) throw new SocketUnusableError('it is closed or half-closed');
    if (socket.listenerCount('data') > 0) throw new SocketUnusableError('something else already reads it');
    if (!sameAddress(socket.remoteAddress, rec.peer.remoteAddress) || socket.remotePort !== rec.peer.remotePort || socket.localPort !== rec.peer.localPort) {
      throw new SocketUnusableError(
        `it connects ${socket.localAddress}:${socket.localPort} to ${socket.remoteAddress}:${socket.remotePort}, the record ${rec.peer.localAddress}:${rec.peer.localPort} to ${rec.peer.remoteAddress}:${rec.peer.remotePort}`,
      );
    }
    const unparsed = unparsedInputOf(rec);
    if (unparsed.length > 0 && !this.#input.subarray(0, unparsed.length).equals(unparsed)) {
      throw new InputMismatchError(`the record's ${unparsed.length} unparsed bytes are not at the start of the ${this.#input.length} pending bytes`);
    }
  }

  async #attach(): Promise<void> {
    const rec = this.#record;
    const sio = this.#sio!;
    const engine = sio.engine;
    const socket = this.#socket;

    this.#step = 'adopting the socket';
    socket.pause();
    for (const event of WATCHED_EVENTS) this.#listenersBefore.set(event, socket.listeners(event) as Listener[]);
    socket.on('error', this.#onSocketError);
    socket.once('close', this.#onSocketClose);
    this.#guardRawWrites();
    const netBytesWrittenAtStart = socket.bytesWritten;
    this.#cancelAdoption = this.#recorder?.expectAdoption(socket, { consumed: rec.bytes.consumed, written: rec.bytes.written, netBytesWrittenAtStart }) ?? null;

    const wsOptions = engine.ws!.options;
    const WebSocketClass = wsOptions.WebSocket as WsWebSocketClass;
    const websocket = new WebSocketClass(null, undefined, wsOptions);
    this.#websocket = websocket;
    websocket.setSocket(socket, this.#input, {
      allowSynchronousEvents: wsOptions.allowSynchronousEvents,
      maxBufferedChunks: wsOptions.maxBufferedChunks,
      maxFragments: wsOptions.maxFragments,
      maxPayload: wsOptions.maxPayload,
      skipUTF8Validation: wsOptions.skipUTF8Validation,
    });
    // Paused until every namespace exists again: early frames would be lost or hit a missing namespace.
    websocket.pause();

    this.#step = 'staging the namespaces';
    const restored: Array<Promise<void>> = [];
    const expected = [
      `0${JSON.stringify({ sid: rec.engine.sid, upgrades: rec.engine.upgrades, pingInterval: rec.engine.pingIntervalMs, pingTimeout: rec.engine.pingTimeoutMs, maxPayload: rec.engine.maxPayload })}`,
    ];
    const connects: string[] = [];
    for (const ns of rec.namespaces) {
      const nsp = sio._nsps.get(ns.name)!;
      const adapter = nsp.adapter as TakeoverAdapter;
      const pid = ns.pid ?? randomBytes(15).toString('base64url');
      const session: Session = { sid: ns.socketId, pid, rooms: [...ns.rooms], data: structuredClone(ns.data), missedPackets: [] };
      let done: () => void = () => {};
      restored.push(new Promise<void>((resolve) => (done = resolve)));
      const offset = adapter.stage(session, (restoredSocket) => {
        this.#restoreSocket(ns, nsp, restoredSocket);
        done();
      });
      this.#staged.push({ adapter, session });
      const prefix = ns.name === '/' ? '' : `${ns.name},`;
      expected.push(`40${prefix}${JSON.stringify({ sid: ns.socketId, pid })}`);
      connects.push(`0${prefix}${JSON.stringify({ pid, offset })}`);
    }
    this.#filter = new HandshakeFilter(expected, (frame) => this.#fail(violation(frame)));
    this.#filter.install(websocket);

    this.#step = 'running the engine.io handshake';
    const request = buildRequest(socket, rec);
    this.#request = request;
    adoptedSids.set(request, rec.engine.sid);
    ensureIdDispatcher(engine);
    const connected = new Promise<EngineSocketInternals>((resolve) => {
      const onConnection = (es: EngineSocketInternals): void => {
        if (es.request !== request) return;
        engine.off('connection', onConnection);
        this.#stopWaitingForEngine = null;
        this.#es = es;
        resolve(es);
      };
      engine.on('connection', onConnection);
      this.#stopWaitingForEngine = () => engine.off('connection', onConnection);
    });
    engine.prepare(request);
    engine.onWebSocket(request, socket, websocket);
    const es = await connected;
    this.#alive();
    this.#unguardWrites?.();
    this.#unguardWrites = null;
    const timeline = rearmHeartbeat(es, rec.engine, rec.recordedAt);
    this.#recorder?.setHeartbeatTimeline(es.id, timeline);

    this.#step = 'restoring the socket.io sockets';
    for (const packet of connects) es.onPacket({ type: 'message', data: packet });
    await Promise.all(restored);
    this.#alive();

    this.#step = 'withholding the handshake frames';
    await this.#filter.complete;
    this.#alive();
    this.#filter.remove();

    this.#step = 'replaying unanswered client requests';
    this.#replayRequests(es);

    this.#step = 'resuming input';
    socket.off('error', this.#onSocketError);
    socket.off('close', this.#onSocketClose);
    websocket.resume();
  }

  /** Runs on the restored socket before the application's connection listeners. */
  #restoreSocket(ns: RecordedNamespace, nsp: SioNamespaceInternals, socket: SioSocketInternals): void {
    socket.handshake = structuredClone(ns.handshake) as unknown as Record<string, unknown>;
    socket.pid = ns.pid ?? undefined;
    nsp._ids = Math.max(nsp._ids, ns.ackCounter);
    for (const ack of ns.pendingServerAcks) socket.acks.set(ack.id, (...args: unknown[]) => this.#lateAck(ns, socket, ack, args));
  }

  #lateAck(ns: RecordedNamespace, socket: SioSocketInternals, ack: PendingServerAck, args: unknown[]): void {
    const late: LateAck = { namespace: ns.name, socketId: ns.socketId, id: ack.id, event: ack.event, args, socket: socket as unknown as Socket };
    if (this.#opts.onLateAck) {
      try {
        this.#opts.onLateAck(late);
      } catch (err) {
        this.#log.error('onLateAck threw', { error: (err as Error)?.stack ?? String(err) });
      }
      return;
    }
    this.#log.info('late acknowledgement dropped: its callback stayed in the old process', { namespace: ns.name, socket: ns.socketId, id: ack.id, event: ack.event ?? undefined });
  }

  #replayRequests(es: EngineSocketInternals): void {
    for (const ns of this.#record.namespaces) {
      for (const req of ns.pendingClientRequests) {
        if (req.packet === null) {
          this.#log.warn('unanswered binary request cannot be replayed: the client gets no answer', { namespace: ns.name, id: req.id, event: req.event ?? undefined });
        } else if (this.#opts.pendingClientRequests === 'drop') {
          this.#log.info('unanswered client request dropped', { namespace: ns.name, id: req.id, event: req.event ?? undefined });
        } else {
          es.onPacket({ type: 'message', data: req.packet });
        }
      }
    }
  }

  /** Until engine.io owns the connection nothing may be written raw (engine.io answers a failed handshake with HTTP 400). */
  #guardRawWrites(): void {
    const socket = this.#socket;
    const own = Object.prototype.hasOwnProperty.call(socket, 'write');
    const original = socket.write;
    socket.write = ((chunk: unknown, ...rest: unknown[]): boolean => {
      const text = Buffer.isBuffer(chunk) ? chunk.toString('latin1') : String(chunk);
      this.#fail(new UnexpectedOutputError(text, 'a raw write before engine.io took the connection'));
      const cb = rest.find((r) => typeof r === 'function') as ((err?: Error) => void) | undefined;
      if (cb) process.nextTick(cb);
      return true;
    }) as NetSocket['write'];
    this.#unguardWrites = () => {
      if (own) socket.write = original;
      else delete (socket as { write?: unknown }).write;
    };
  }

  /** Undoes everything without writing a byte; leaves the socket open and paused for the caller. */
  #teardown(error: TakeoverError): void {
    const socket = this.#socket;
    this.#filter?.remove();
    for (const { adapter, session } of this.#staged) adapter.unstage(session);
    this.#staged = [];
    this.#cancelAdoption?.();
    // Refused before touching the socket: it is exactly as the caller gave it.
    if (this.#listenersBefore.size === 0) return;
    // ws must neither read nor write from now on: take the socket away from it first.
    for (const event of WATCHED_EVENTS) {
      const before = new Set(this.#listenersBefore.get(event) ?? []);
      for (const listener of socket.listeners(event) as Listener[]) if (!before.has(listener)) socket.removeListener(event, listener);
    }
    if (this.#websocket) this.#websocket._readyState = WS_CLOSED;
    this.#unguardWrites?.();
    this.#unguardWrites = null;
    if (this.#es) {
      if (this.#es.readyState !== 'closed') this.#es.onClose('transport error', error);
    } else if (this.#stopWaitingForEngine && this.#request) {
      // The handshake may still complete (it awaits generateId): end that connection silently too.
      this.#stopWaitingForEngine();
      const engine = this.#sio!.engine;
      const request = this.#request;
      const late = (es: EngineSocketInternals): void => {
        if (es.request !== request) return;
        engine.off('connection', late);
        es.onClose('transport error', error);
      };
      engine.on('connection', late);
      setTimeout(() => engine.off('connection', late), 5000).unref();
    }
    socket.pause();
    if (socket.listenerCount('error') === 0) socket.on('error', (err) => this.#log.info('unattached socket error', { error: err.message }));
  }
}

/** The error for a withheld handshake frame nobody expected. */
function violation(frame: string): TakeoverError {
  if (frame.startsWith('40') || frame.startsWith('44')) {
    const nsp = /^4[04](\/[^,]*),/.exec(frame)?.[1] ?? '/';
    const what = frame.startsWith('44') ? 'the namespace refused the socket (CONNECT_ERROR)' : 'socket.io started a fresh socket instead of restoring the recorded one';
    return new NamespaceNotRestoredError(nsp, `${what}; withheld from the client: ${frame.slice(0, 120)}`);
  }
  return new UnexpectedOutputError(frame, 'a handshake frame the client already finished');
}

/** The upgrade request as engine.io and socket.io expect it (they read method, url, headers, socket). */
function buildRequest(socket: NetSocket, rec: SessionRecord): IncomingMessage {
  const req = new IncomingMessage(socket);
  req.method = rec.request.method;
  req.url = rec.request.url;
  req.httpVersion = rec.request.httpVersion;
  req.httpVersionMajor = 1;
  req.httpVersionMinor = rec.request.httpVersion === '1.0' ? 0 : 1;
  const headers: Record<string, string | string[]> = {};
  const raw: string[] = [];
  for (const [name, value] of Object.entries(rec.request.headers)) {
    headers[name] = Array.isArray(value) ? [...value] : value;
    for (const v of Array.isArray(value) ? value : [value]) raw.push(name, v);
  }
  req.headers = headers;
  req.rawHeaders = raw;
  req.complete = true;
  return req;
}
