/**
 * Primary side of connection takeover: taps every WebSocket connection of a socket.io
 * server and produces, for any of them at a clean point (frame boundary, socket.io
 * decoder idle, nothing decoded but undispatched, engine.io output flushed), the
 * `SessionRecord` another process needs to re-attach it. The caller replicates the
 * records; `hold()` parks a connection's input at the next clean point when a
 * checkpoint must be exact (a planned hand-over).
 *
 * Create it right after the Server: connections opened before it are not tracked.
 */
import { EventEmitter } from 'node:events';
import type { Socket as NetSocket } from 'node:net';
import { createLogger, type Logger } from '../../core/logger.ts';
import { safeEmit } from '../../core/events.ts';
import { ConnectionTap, type AdoptionBases, type HeartbeatTimeline } from './connection-tap.ts';
import {
  CheckpointTimeoutError,
  NotQuiescentError,
  NotRecordableError,
  ServerMisconfiguredError,
  TakeoverError,
  UnknownConnectionError,
  type NotQuiescentReason,
} from '../errors.ts';
import {
  checkInstalledVersions,
  serverInternals,
  type EngineSocketInternals,
  type ServerLike,
  type SioServerInternals,
  type SioSocketInternals,
} from './internals.ts';
import {
  SESSION_RECORD_VERSION,
  type JsonValue,
  type RecordedHandshake,
  type RecordedHeaders,
  type RecordedHeartbeat,
  type RecordedNamespace,
  type SessionRecord,
} from './session-record.ts';

export type { AdoptionBases, HeartbeatTimeline } from './connection-tap.ts';

export type SessionRecorderEvents = {
  /** A WebSocket connection is tracked from now on (a new one, or one re-attached here). */
  connection: [engineId: string];
  /** A tracked connection ended. */
  close: [engineId: string, reason: string];
  /** A connection can never be checkpointed (compression, an oversized frame...): it cannot move. */
  unrecordable: [engineId: string, reason: string];
  /**
   * The application was handed whole messages up to `consumed` (a message boundary). Emitted
   * synchronously, before socket.io dispatches them: record from a setImmediate callback.
   */
  input: [engineId: string, consumed: number];
};

export interface SessionRecorderOptions {
  /** Default: a child of the project logger, module `takeover`. */
  logger?: Logger;
}

export interface HoldOptions {
  /** Give up (and release the input) after this long. Default 2000 ms. */
  timeoutMs?: number;
}

/** Byte positions of one connection (stream offsets since it began). */
export interface ConnectionCounters {
  consumed: number;
  written: number;
  /** Client bytes read but not yet handed to the application. */
  pendingInput: number;
}

const recorders = new WeakMap<object, SessionRecorder>();

export class SessionRecorder extends EventEmitter<SessionRecorderEvents> {
  /** The recorder attached to a server, if any (the reattacher registers adopted connections with it). */
  static of(io: ServerLike): SessionRecorder | undefined {
    const engine = (io as { engine?: unknown }).engine;
    return engine && typeof engine === 'object' ? recorders.get(engine) : undefined;
  }

  readonly #sio: SioServerInternals;
  readonly #log: Logger;
  readonly #taps = new Map<string, ConnectionTap>();
  readonly #adoptions = new Map<NetSocket, AdoptionBases>();
  readonly #onEngineConnection = (es: EngineSocketInternals): void => this.#track(es);
  #closed = false;

  constructor(io: ServerLike, options: SessionRecorderOptions = {}) {
    super();
    checkInstalledVersions();
    this.#sio = serverInternals(io);
    this.#log = options.logger ?? createLogger('takeover');
    if (recorders.has(this.#sio.engine)) throw new ServerMisconfiguredError('a SessionRecorder is already attached to this server');
    recorders.set(this.#sio.engine, this);
    this.#sio.engine.on('connection', this.#onEngineConnection);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** engine.io ids of the tracked connections. */
  get connectionIds(): string[] {
    return [...this.#taps.keys()];
  }

  counters(engineId: string): ConnectionCounters {
    const tap = this.#tap(engineId);
    return { consumed: tap.consumed, written: tap.written, pendingInput: tap.pendingInput().length };
  }

  /** Client bytes read past the consumed offset (what a re-attachment must be fed first). */
  pendingInput(engineId: string): Buffer {
    return this.#tap(engineId).pendingInput();
  }

  /** Why `record(engineId)` would refuse right now, null if it would succeed (for polling). */
  notQuiescentReason(engineId: string): NotQuiescentReason | null {
    const tap = this.#tap(engineId);
    return tap.reason() ?? (this.#socketsOf(tap.es).connecting ? 'namespace-connecting' : null);
  }

  /**
   * The record of one connection, now. Throws `NotQuiescentError` when the connection is not
   * at a clean point (retry after the next frame or use `hold()`), `NotRecordableError` when it
   * never will be, `UnknownConnectionError` when it is not tracked.
   */
  record(engineId: string): SessionRecord {
    return this.#build(engineId, false).record;
  }

  /**
   * Like record(), also while engine.io holds packets it has not written yet (its transport
   * waits for the previous write): the record counts them as written, and `queuedOutput` is
   * the exact bytes they become on the wire (one unmasked WebSocket text frame per packet, as
   * ws writes them), so whoever uses the record can send them itself. Binary packets refuse.
   */
  recordAhead(engineId: string): { record: SessionRecord; queuedOutput: Buffer } {
    return this.#build(engineId, true);
  }

  #build(engineId: string, ahead: boolean): { record: SessionRecord; queuedOutput: Buffer } {
    const tap = this.#tap(engineId);
    if (tap.unrecordable) throw new NotRecordableError(engineId, tap.unrecordable);
    const reason = tap.reason(ahead);
    if (reason) throw new NotQuiescentError(engineId, reason);
    const queuedOutput = ahead ? queuedFrames(tap.es) : Buffer.alloc(0);
    if (queuedOutput === null) throw new NotQuiescentError(engineId, 'output-pending');
    const { connected, connecting } = this.#socketsOf(tap.es);
    if (connecting) throw new NotQuiescentError(engineId, 'namespace-connecting');
    const es = tap.es;
    const net = tap.net!;
    if (net.remoteAddress === undefined || net.remotePort === undefined || net.localAddress === undefined || net.localPort === undefined) {
      throw new NotQuiescentError(engineId, 'closing');
    }
    const opts = this.#sio.engine.opts;
    const request = es.request;
    const record: SessionRecord = {
      version: SESSION_RECORD_VERSION,
      recordedAt: Date.now(),
      peer: { remoteAddress: net.remoteAddress, remotePort: net.remotePort, localAddress: net.localAddress, localPort: net.localPort },
      request: {
        method: 'GET',
        url: request.url ?? '/',
        headers: copyHeaders(request.headers),
        httpVersion: request.httpVersion ?? '1.1',
      },
      engine: {
        sid: es.id,
        protocol: 4,
        upgrades: es.getAvailableUpgrades(),
        pingIntervalMs: opts.pingInterval,
        pingTimeoutMs: opts.pingTimeout,
        maxPayload: opts.maxHttpBufferSize,
        heartbeat: heartbeatOf(es, tap.heartbeat),
      },
      namespaces: connected.map((socket) => this.#namespaceRecord(engineId, tap, socket)),
      bytes: { consumed: tap.consumed, written: tap.written + queuedOutput.length },
      unparsedInput: tap.pendingInput().toString('base64'),
    };
    return { record, queuedOutput };
  }

  /** Records of every tracked connection that is at a clean point; the others with the reason. */
  recordAll(): { records: SessionRecord[]; skipped: Array<{ engineId: string; error: TakeoverError }> } {
    const records: SessionRecord[] = [];
    const skipped: Array<{ engineId: string; error: TakeoverError }> = [];
    for (const engineId of this.#taps.keys()) {
      try {
        records.push(this.record(engineId));
      } catch (err) {
        if (!(err instanceof TakeoverError)) throw err;
        skipped.push({ engineId, error: err });
      }
    }
    return { records, skipped };
  }

  /**
   * Parks the connection's input at the next frame boundary and resolves once `record()` would
   * succeed (decoder idle, everything dispatched, output flushed). Input keeps arriving and is
   * kept in order until `release()`. Rejects with `CheckpointTimeoutError` (input released).
   */
  async hold(engineId: string, options: HoldOptions = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? 2000;
    const tap = this.#tap(engineId);
    if (tap.unrecordable) throw new NotRecordableError(engineId, tap.unrecordable);
    tap.requestHold();
    const deadline = performance.now() + timeoutMs;
    let last: NotQuiescentReason | null = null;
    await new Promise<void>((resolve) => setImmediate(resolve));
    for (;;) {
      if (this.#taps.get(engineId) !== tap || tap.unrecordable) throw new NotQuiescentError(engineId, 'closing');
      last = tap.holding ? this.notQuiescentReason(engineId) : (tap.inputReason() ?? 'mid-frame');
      if (tap.holding && last === null) return;
      if (performance.now() > deadline) {
        tap.release();
        throw new CheckpointTimeoutError(engineId, timeoutMs, last);
      }
      await new Promise<void>((resolve) => setTimeout(resolve, 1));
    }
  }

  /** Lets held input flow to the application again. */
  release(engineId: string): void {
    this.#taps.get(engineId)?.release();
  }

  /** Stops tracking; every connection goes on untouched (held input is handed to ws). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sio.engine.off('connection', this.#onEngineConnection);
    for (const tap of this.#taps.values()) tap.dispose(true);
    this.#taps.clear();
    this.#adoptions.clear();
    if (recorders.get(this.#sio.engine) === this) recorders.delete(this.#sio.engine);
  }

  /**
   * For the reattacher: the engine.io connection about to be created over `socket` continues a
   * recorded one, so its counters start at the record's offsets. Returns a cancel function.
   */
  expectAdoption(socket: NetSocket, bases: AdoptionBases): () => void {
    this.#adoptions.set(socket, bases);
    return () => {
      if (this.#adoptions.get(socket) === bases) this.#adoptions.delete(socket);
    };
  }

  /** For the reattacher: where the re-armed heartbeat of an adopted connection stands. */
  setHeartbeatTimeline(engineId: string, timeline: HeartbeatTimeline): void {
    const tap = this.#taps.get(engineId);
    if (tap) tap.heartbeat = timeline;
  }

  #tap(engineId: string): ConnectionTap {
    const tap = this.#taps.get(engineId);
    if (!tap) throw new UnknownConnectionError(engineId);
    return tap;
  }

  #track(es: EngineSocketInternals): void {
    if (es.transport.name !== 'websocket') return;
    const net = es.transport.socket?._socket ?? null;
    const bases = net ? this.#adoptions.get(net) : undefined;
    if (net && bases) this.#adoptions.delete(net);
    const tap = new ConnectionTap(
      es,
      bases ?? null,
      this.#log,
      (reason) => {
        this.#log.warn('connection cannot be checkpointed', { engineId: es.id, reason });
        safeEmit(this, this.#log, 'unrecordable', es.id, reason);
      },
      (consumed) => {
        if (this.listenerCount('input') > 0) safeEmit(this, this.#log, 'input', es.id, consumed);
      },
    );
    this.#taps.set(es.id, tap);
    es.once('close', (reason: string) => {
      tap.dispose(false);
      if (this.#taps.get(es.id) === tap) this.#taps.delete(es.id);
      safeEmit(this, this.#log, 'close', es.id, reason);
    });
    safeEmit(this, this.#log, 'connection', es.id);
  }

  #socketsOf(es: EngineSocketInternals): { connected: SioSocketInternals[]; connecting: boolean } {
    const connected: SioSocketInternals[] = [];
    let connecting = false;
    for (const nsp of this.#sio._nsps.values()) {
      for (const socket of nsp.sockets.values()) if (socket.conn === es) connected.push(socket);
      for (const socket of nsp._preConnectSockets.values()) if (socket.conn === es) connecting = true;
    }
    // The order the client connected them: the new process replays the CONNECTs in this order.
    connected.sort((a, b) => Number(a.handshake.issued) - Number(b.handshake.issued));
    return { connected, connecting };
  }

  #namespaceRecord(engineId: string, tap: ConnectionTap, socket: SioSocketInternals): RecordedNamespace {
    const nsp = socket.nsp.name;
    const now = performance.now();
    const pendingServerAcks = [...socket.acks.keys()].map((id) => {
      const seen = tap.serverAcks.get(`${nsp}#${id}`);
      return { id, event: seen?.event ?? null, ageMs: seen ? round(now - seen.sentAt) : 0 };
    });
    const pendingClientRequests = [...tap.clientRequests.values()]
      .filter((r) => r.nsp === nsp)
      .map((r) => ({ id: r.id, event: r.event, packet: r.packet }));
    return {
      name: nsp,
      socketId: socket.id,
      pid: typeof socket.pid === 'string' ? socket.pid : null,
      rooms: [...socket.rooms],
      data: toJson(socket.data, `socket.data of namespace ${nsp}`, engineId),
      handshake: handshakeOf(socket, engineId),
      ackCounter: Math.max(socket.nsp._ids, ...pendingServerAcks.map((a) => a.id + 1)),
      pendingServerAcks,
      pendingClientRequests,
    };
  }
}

function round(ms: number): number {
  return Math.max(0, Math.round(ms * 10) / 10);
}

function heartbeatOf(es: EngineSocketInternals, timeline: HeartbeatTimeline): RecordedHeartbeat {
  const now = performance.now();
  const awaitingPong = es.pingTimeoutTimer !== null;
  const lastPing = timeline.lastPingAt;
  return {
    awaitingPong,
    sinceLastPingMs: lastPing === null ? (awaitingPong ? 0 : null) : round(now - lastPing),
    sincePingTimerArmedMs: round(now - timeline.pingTimerArmedAt),
    sincePongDeadlineArmedMs: awaitingPong ? round(now - (timeline.pongDeadlineArmedAt ?? lastPing ?? now)) : null,
    pongDeadlineRefreshed: awaitingPong && es.hasRefreshedPingTimeout === true,
  };
}

function copyHeaders(headers: Record<string, string | string[] | undefined>): RecordedHeaders {
  const out: RecordedHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (typeof value === 'string') out[name] = value;
    else if (Array.isArray(value)) out[name] = [...value];
  }
  return out;
}

function handshakeOf(socket: SioSocketInternals, engineId: string): RecordedHandshake {
  const h = socket.handshake as {
    headers?: Record<string, string | string[] | undefined>;
    time?: unknown;
    address?: unknown;
    xdomain?: unknown;
    secure?: unknown;
    issued?: unknown;
    url?: unknown;
    query?: Record<string, unknown>;
    auth?: unknown;
  };
  const query: Record<string, string> = {};
  for (const [k, v] of Object.entries(h.query ?? {})) if (typeof v === 'string') query[k] = v;
  const auth = toJson(h.auth ?? {}, `handshake.auth of namespace ${socket.nsp.name}`, engineId);
  return {
    headers: copyHeaders(h.headers ?? {}),
    time: String(h.time ?? ''),
    address: String(h.address ?? ''),
    xdomain: h.xdomain === true,
    secure: h.secure === true,
    issued: typeof h.issued === 'number' ? h.issued : 0,
    url: String(h.url ?? ''),
    query,
    auth: auth !== null && typeof auth === 'object' && !Array.isArray(auth) ? auth : {},
  };
}

/**
 * `value` as plain JSON. Properties set to undefined are dropped (as JSON does); anything JSON
 * would silently change (Date, Map, class instances, NaN, functions, bigint) is refused, because
 * the new process would then resume with different data.
 */
function toJson(value: unknown, what: string, engineId: string, path = '', depth = 0): JsonValue {
  const where = `${what}${path}`;
  if (depth > 32) throw new NotRecordableError(engineId, `${where} is nested too deeply`);
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (value === undefined) return null;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new NotRecordableError(engineId, `${where} is ${value}, which JSON cannot carry`);
    return value;
  }
  if (Array.isArray(value)) return value.map((v, i) => toJson(v, what, engineId, `${path}[${i}]`, depth + 1));
  if (typeof value === 'object') {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      throw new NotRecordableError(engineId, `${where} is a ${(value as object).constructor?.name ?? 'non-plain object'}: keep socket.data plain JSON`);
    }
    const out: { [key: string]: JsonValue } = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (v === undefined) continue;
      out[k] = toJson(v, what, engineId, `${path}.${k}`, depth + 1);
    }
    return out;
  }
  throw new NotRecordableError(engineId, `${where} is a ${typeof value}, which JSON cannot carry`);
}

const ENGINE_PACKET_CODES: Record<string, string> = { open: '0', close: '1', ping: '2', pong: '3', message: '4', upgrade: '5', noop: '6' };

/**
 * The wire bytes of the packets waiting in engine.io's write buffer: per packet the engine.io
 * string encoding (type digit + data) in one server WebSocket text frame. Null when a packet
 * is not plain text (binary, pre-encoded frames would also do, but are not worth the risk).
 */
function queuedFrames(es: EngineSocketInternals): Buffer | null {
  const frames: Buffer[] = [];
  for (const packet of es.writeBuffer as ReadonlyArray<{ type: string; data?: unknown; options?: { wsPreEncodedFrame?: unknown } }>) {
    const code = ENGINE_PACKET_CODES[packet.type];
    if (code === undefined || (packet.data !== undefined && typeof packet.data !== 'string')) return null;
    if (packet.options?.wsPreEncodedFrame !== undefined) {
      const pre = packet.options.wsPreEncodedFrame;
      if (!Array.isArray(pre) || !pre.every((b) => Buffer.isBuffer(b))) return null;
      frames.push(...(pre as Buffer[]));
      continue;
    }
    frames.push(textFrame(Buffer.from(code + ((packet.data as string | undefined) ?? ''), 'utf8')));
  }
  return Buffer.concat(frames);
}

/** An unmasked, final WebSocket text frame (RFC 6455 5.2), as a server sends it. */
function textFrame(payload: Buffer): Buffer {
  const len = payload.length;
  const head = len < 126 ? 2 : len < 0x10000 ? 4 : 10;
  const frame = Buffer.allocUnsafe(head + len);
  frame[0] = 0x81;
  if (head === 2) frame[1] = len;
  else if (head === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(len, 2);
  } else {
    frame[1] = 127;
    frame.writeBigUInt64BE(BigInt(len), 2);
  }
  payload.copy(frame, head);
  return frame;
}
