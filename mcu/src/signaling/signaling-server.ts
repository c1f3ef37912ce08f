import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { Server, type Socket } from 'socket.io';
import type { Conference } from '../conference/conference.ts';
import type { McuConfig } from '../core/config.ts';
import { AlreadyJoinedError, InvalidMessageError, McuError, NotJoinedError, NotPrimaryError, ProtocolViolationError, RateLimitedError, isClientFacing, toWireError } from '../core/errors.ts';
import { createLogger } from '../core/logger.ts';
import type { ClientEventName, JoinReply, ServerToClientEvents, UntrustedClientEvents } from './protocol.ts';
import { JoinRateLimiter } from './join-rate-limiter.ts';
import type { EdgePeer } from '../media/edge/edge-peer.ts';
import { checkMessageSize, validate } from './validation.ts';
import { takeoverServerOptions } from '../takeover/session/takeover-adapter.ts';
import { FailoverStep } from '../wire/failover-steps.ts';

/** Per-connection data kept by socket.io (and checkpointed with the connection later). */
export interface SocketData {
  participantId: string | null;
  room: string | null;
}

type McuSocket = Socket<UntrustedClientEvents, ServerToClientEvents, Record<string, never>, SocketData>;
export type SignalingIo = Server<UntrustedClientEvents, ServerToClientEvents, Record<string, never>, SocketData>;

const CLIENT_EVENTS: readonly ClientEventName[] = [
  'join',
  'leave',
  'mute',
  'offer',
  'answer',
  'edge-capabilities',
  'edge-transport',
  'edge-connect',
  'edge-produce',
  'edge-consume',
  'edge-resume',
];

/** A handler's reply, and optionally work to do right after the acknowledgement went out. */
interface HandlerResult {
  reply: object;
  afterAck?: () => Promise<void>;
}
type Handler = (socket: McuSocket, payload: unknown) => Promise<HandlerResult> | HandlerResult;

/** What the signaling server reads of an engine.io connection. */
interface EngineConnection {
  id: string;
  remoteAddress: string;
  once(event: 'close', listener: (reason: string, description?: unknown) => void): unknown;
}

export interface SignalingServerOptions {
  /** The MCU's epoch, reported to clients so they can tell a takeover happened. */
  epoch: () => number;
  /** False while this process is not the primary: signaling is refused with NOT_PRIMARY. */
  accepting: () => boolean;
  /** The MCU's role name for NOT_PRIMARY messages. */
  role: () => string;
  /**
   * Connection-level takeover (default false): the socket.io server gets the session-restore
   * adapter (takeoverServerOptions(); wire bytes unchanged), so a standby can re-attach sessions.
   */
  takeover?: boolean;
}

/**
 * socket.io signaling: validates every client message, maps the socket to its
 * participant and calls the Conference. A bad message gets an error (ack and a
 * `signaling-error` event) and changes nothing.
 */
export class SignalingServer {
  readonly io: SignalingIo;
  readonly #conference: Conference;
  readonly #config: McuConfig;
  readonly #opts: SignalingServerOptions;
  readonly #log = createLogger('signaling');
  readonly #handlers: Record<ClientEventName, Handler>;
  readonly #refusals = new Map<string, number>();
  /** Fresh joins per client address (limits.joinsPerWindow, limits.joinWindowMs); resumes pass. */
  readonly #joinLimiter: JoinRateLimiter;
  #closed = false;

  constructor(http: HttpServer | HttpsServer, conference: Conference, config: McuConfig, opts: SignalingServerOptions) {
    this.#conference = conference;
    this.#config = config;
    this.#opts = opts;
    this.#joinLimiter = new JoinRateLimiter({ maxJoins: config.limits.joinsPerWindow, windowMs: config.limits.joinWindowMs });
    this.io = new Server(http, {
      // One TCP connection per client, no long-polling: the unit the takeover moves.
      transports: ['websocket'],
      allowUpgrades: false,
      perMessageDeflate: false,
      // engine.io closes the connection past this; messages between maxMessageBytes and it get a clear error.
      maxHttpBufferSize: Math.max(1_000_000, config.limits.maxMessageBytes * 4),
      serveClient: false,
      ...(opts.takeover ? takeoverServerOptions() : {}),
    });
    this.#handlers = {
      join: (socket, payload) => this.#join(socket, payload),
      leave: (socket) => ({ reply: this.#leave(socket) }),
      mute: (socket, payload) => ({ reply: this.#mute(socket, payload) }),
      offer: async (socket, payload) => ({ reply: await this.#offer(socket, payload) }),
      answer: async (socket, payload) => ({ reply: await this.#answer(socket, payload) }),
      // The mediasoup plane's request/response flows, on the same connection (and queue) as the rest.
      'edge-capabilities': async (socket) => ({ reply: { routerRtpCapabilities: (await this.#edgePeer(socket, 'edge-capabilities')).capabilities() } }),
      'edge-transport': async (socket, payload) => {
        const req = validate.edgeTransport(payload);
        return { reply: await (await this.#edgePeer(socket, 'edge-transport')).createTransport(req.direction) };
      },
      'edge-connect': async (socket, payload) => {
        const req = validate.edgeConnect(payload);
        await (await this.#edgePeer(socket, 'edge-connect')).connect(req.transportId, req.dtlsParameters);
        return { reply: {} };
      },
      'edge-produce': async (socket, payload) => {
        const req = validate.edgeProduce(payload);
        return { reply: { producerId: await (await this.#edgePeer(socket, 'edge-produce')).produce(req.transportId, req.kind, req.rtpParameters) } };
      },
      'edge-consume': async (socket, payload) => {
        const req = validate.edgeConsume(payload);
        return { reply: { consumers: await (await this.#edgePeer(socket, 'edge-consume')).consume(req.rtpCapabilities) } };
      },
      'edge-resume': async (socket, payload) => {
        const req = validate.edgeResume(payload);
        await (await this.#edgePeer(socket, 'edge-resume')).resume(req.consumerIds);
        return { reply: {} };
      },
    };
    conference.on('roster', (room, roster) => this.io.to(roomChannel(room)).emit('roster', { room, participants: roster }));
    this.io.on('connection', (socket) => this.#onConnection(socket));
    // engine.io and ws drop a client that breaks their protocol themselves: say why, and count it.
    this.io.engine.on('connection', (conn: EngineConnection) => {
      conn.once('close', (reason, description) => {
        const violation = transportViolation(reason, description);
        if (violation) this.#dropped(conn.id, conn.remoteAddress, violation);
      });
    });
  }

  /** A connection dropped for breaking the protocol: one warning per connection (a client pays a connection for each). */
  #dropped(sid: string, remote: string, detail: string, socketId?: string): void {
    const error = new ProtocolViolationError(detail);
    this.#countRefusal(error.code);
    this.#log.warn('signaling connection dropped', { sid, socket: socketId, remote, code: error.code, reason: error.message });
  }

  #onConnection(socket: McuSocket): void {
    socket.data.participantId ??= null;
    socket.data.room ??= null;
    // A packet socket.io cannot decode: it closes the connection right after this. A client may
    // also send an event named "error" (any JSON, never an Error): an unknown event, answered by onAny.
    // (engine.io's types hide the connection's id, which it documents.)
    const sid = (socket.conn as unknown as EngineConnection).id;
    socket.on('error', (err: unknown) => {
      if (err instanceof Error) this.#dropped(sid, socket.handshake.address, `invalid socket.io packet (${err.message})`, socket.id);
    });
    this.#log.debug('socket connected', { socket: socket.id, recovered: socket.recovered });
    // A session re-attached after a connection takeover: the same socket (id, rooms, data) of a
    // participant that never left, so no join: bind it again and rebuild its media at once.
    if (socket.recovered) this.#onRecovered(socket);
    // Messages of one socket are handled in order, one at a time, even when a handler awaits.
    let chain: Promise<void> = Promise.resolve();
    const enqueue = (event: string, args: unknown[]): void => {
      chain = chain.then(() => this.#dispatch(socket, event, args));
    };
    socket.onAny((event: unknown, ...args: unknown[]) => {
      if (typeof event !== 'string' || !(CLIENT_EVENTS as readonly string[]).includes(event)) {
        const ack = typeof args[args.length - 1] === 'function' ? (args.pop() as (r: unknown) => void) : undefined;
        const error = new InvalidMessageError(`unknown event "${String(event)}": expected one of ${CLIENT_EVENTS.join(', ')}`);
        this.#countRefusal(error.code);
        ack?.({ ok: false, error: error.toJSON() });
        socket.emit('signaling-error', { ...error.toJSON(), event: String(event) });
      }
    });
    for (const event of CLIENT_EVENTS) socket.on(event, (...args: unknown[]) => enqueue(event, args));
    socket.on('disconnect', (reason) => {
      const id = socket.data.participantId;
      this.#log.info('socket disconnected', { socket: socket.id, participant: id ?? undefined, reason });
      if (!id) return;
      if (reason === 'client namespace disconnect') this.#conference.leave(id, 'left');
      else this.#conference.disconnected(id);
    });
  }

  #onRecovered(socket: McuSocket): void {
    const id = socket.data.participantId;
    if (!id) return;
    if (!this.#conference.reattached(id, socket.id)) {
      this.#log.warn('re-attached socket of an unknown participant: treated as not joined', { socket: socket.id, participant: id });
      if (socket.data.room) void socket.leave(roomChannel(socket.data.room));
      socket.data.participantId = null;
      socket.data.room = null;
      return;
    }
    this.#log.info('failover step: participant re-attached on its own connection', { failover: FailoverStep.Reattached, socket: socket.id, participant: id });
    if (this.#conference.participant(id)?.adoptedSpare) {
      void this.#activateSpare(socket, id).catch((err: unknown) =>
        this.#log.error('spare activation after re-attachment failed', { participant: id, error: (err as Error)?.message ?? String(err) }),
      );
      return;
    }
    if (!this.#conference.participant(id)?.pendingRestart) return;
    void this.#sendRestartOffer(socket, id).catch((err: unknown) =>
      this.#log.error('restart offer after re-attachment failed', { participant: id, error: (err as Error)?.message ?? String(err) }),
    );
  }

  async #dispatch(socket: McuSocket, event: string, args: unknown[]): Promise<void> {
    let ack = typeof args[args.length - 1] === 'function' ? (args.pop() as (r: unknown) => void) : undefined;
    try {
      if (!this.#opts.accepting()) throw new NotPrimaryError(this.#opts.role());
      checkMessageSize(args, this.#config.limits.maxMessageBytes);
      if (args.length > 1) throw new InvalidMessageError(`"${event}" takes one payload and an acknowledgement callback, got ${args.length} arguments`);
      const result = await this.#handlers[event as ClientEventName](socket, args[0]);
      // Every answer names the epoch of the MCU that gave it and when (wall clock, ms): a client
      // (and the partition checker, scripts/lab/history-checker.ts) sees which primary served it.
      ack?.({ ok: true, epoch: this.#opts.epoch(), servedAt: Date.now(), ...result.reply });
      ack = undefined;
      if (result.afterAck) await result.afterAck();
    } catch (err) {
      const wire = toWireError(err);
      this.#countRefusal(wire.code);
      if (isClientFacing(err)) this.#log.info('signaling request refused', { socket: socket.id, event, code: wire.code, reason: wire.message });
      else this.#log.error('signaling handler failed', { socket: socket.id, event, error: (err as Error)?.stack ?? String(err) });
      ack?.({ ok: false, error: wire });
      if (socket.connected) socket.emit('signaling-error', { ...wire, event });
    }
  }

  #join(socket: McuSocket, payload: unknown): HandlerResult {
    const req = validate.join(payload);
    if (socket.data.room !== null) throw new AlreadyJoinedError(socket.data.room);
    // A resume only binds a participant that exists (and proves it with its token): after a
    // failover every client of an address resumes at once, and none may be refused.
    if (!req.resume) this.#limitJoin(socket);
    const outcome = this.#conference.join(req, socket.id);
    socket.data.participantId = outcome.record.id;
    socket.data.room = outcome.record.room;
    void socket.join(roomChannel(outcome.record.room));
    const room = this.#conference.room(outcome.record.room);
    const reply: JoinReply = {
      participantId: outcome.record.id,
      resumeToken: outcome.record.resumeToken,
      room: outcome.record.room,
      roster: room ? room.roster() : [],
      resumed: outcome.resumed,
      epoch: this.#opts.epoch(),
      mediaPlane: this.#config.media.plane,
    };
    if (!outcome.resumed) return { reply };
    const participant = outcome.participant;
    // Resumed after a failover onto its warm spare path: the mix already runs there; tell the page
    // to switch (it may have done so on its own already).
    if (participant.adoptedSpare) return { reply, afterAck: () => this.#activateSpare(socket, outcome.record.id) };
    if (!participant.pendingRestart && (participant.media === null || participant.media.closed)) {
      // Resumed on an MCU that has no media path for it (its restart was not prepared):
      // prepare one now from the recorded m-lines; without them the page starts afresh itself.
      const mlines = outcome.record.media?.mlines ?? [];
      if (mlines.length === 0) {
        this.#log.warn('resumed participant has no recorded media: the page will renegotiate', { participant: outcome.record.id });
        return { reply };
      }
      participant.prepareRestart(mlines);
    }
    if (!participant.pendingRestart) return { reply };
    // Resumed after a takeover: the media path must be rebuilt, server first (design notes 5).
    return { reply, afterAck: () => this.#sendRestartOffer(socket, outcome.record.id) };
  }

  #limitJoin(socket: McuSocket): void {
    const address = socket.handshake.address || socket.conn.remoteAddress || 'unknown';
    const decision = this.#joinLimiter.take(address);
    if (decision.allowed) return;
    throw new RateLimitedError(this.#joinLimiter.maxJoins, this.#joinLimiter.windowMs, decision.retryAfterMs);
  }

  async #sendRestartOffer(socket: McuSocket, participantId: string): Promise<void> {
    socket.emit('media-status', { state: 'restarting', reason: 'failover' });
    const offer = await this.#conference.restartOffer(participantId);
    if (offer && socket.connected) {
      socket.emit('offer', offer);
      this.#log.info('failover step: restart offer sent', { failover: FailoverStep.RestartOfferSent, participant: participantId, offerId: offer.offerId });
    }
  }

  /**
   * Tells the page to switch to the spare path the new primary adopted; its reply confirms the
   * switch. A page that no longer has that spare gets the usual restart offer instead.
   */
  async #activateSpare(socket: McuSocket, participantId: string): Promise<void> {
    const adopted = this.#conference.participant(participantId)?.adoptedSpare;
    if (!adopted) return;
    const { pathId } = adopted;
    this.#log.info('failover step: spare activation sent', { failover: FailoverStep.SpareActivateSent, participant: participantId, pathId });
    let refusal: string;
    try {
      const raw: unknown = await socket.timeout(5000).emitWithAck('spare-activate', { pathId });
      const reply = validate.spareActivatedReply(raw);
      if (reply.ok && reply.pathId === pathId) {
        this.#conference.spareSwitched(participantId, reply);
        this.#log.info('failover step: page on the spare path', {
          failover: FailoverStep.SpareSwitched,
          participant: participantId,
          pathId,
          trigger: reply.trigger,
          pagePrimarySilentMs: Math.round(reply.primarySilentMs),
        });
        return;
      }
      refusal = reply.ok ? `the page switched to ${reply.pathId}` : `${reply.error.code}: ${reply.error.message}`;
    } catch (err) {
      refusal = err instanceof McuError ? err.message : `no reply: ${(err as Error).message}`;
    }
    this.#log.warn('failover step: the page did not take the spare path, restarting media instead', {
      failover: FailoverStep.SpareRefused,
      participant: participantId,
      pathId,
      reason: refusal,
    });
    if (this.#conference.spareRefused(participantId) && socket.connected) await this.#sendRestartOffer(socket, participantId);
  }

  async #answer(socket: McuSocket, payload: unknown): Promise<object> {
    const req = validate.answer(payload);
    await this.#conference.answer(this.#joined(socket, 'answer'), req.offerId, req.sdp);
    return {};
  }

  #leave(socket: McuSocket): object {
    const id = this.#joined(socket, 'leave');
    const room = socket.data.room!;
    socket.data.participantId = null;
    socket.data.room = null;
    void socket.leave(roomChannel(room));
    this.#conference.leave(id, 'left');
    return {};
  }

  #mute(socket: McuSocket, payload: unknown): object {
    const req = validate.mute(payload);
    this.#conference.mute(this.#joined(socket, 'mute'), req.kind, req.muted);
    return {};
  }

  async #offer(socket: McuSocket, payload: unknown): Promise<object> {
    const req = validate.offer(payload);
    const sdp = await this.#conference.offer(this.#joined(socket, 'offer'), req.sdp, req.fresh ?? false);
    return { sdp };
  }

  #edgePeer(socket: McuSocket, event: string): Promise<EdgePeer> {
    return this.#conference.edgePeer(this.#joined(socket, event), event);
  }

  #joined(socket: McuSocket, event: string): string {
    const id = socket.data.participantId;
    if (!id) throw new NotJoinedError(event);
    return id;
  }

  /** Requests refused since start (an error sent back), by error code. */
  refusals(): ReadonlyMap<string, number> {
    return this.#refusals;
  }

  #countRefusal(code: string): void {
    this.#refusals.set(code, (this.#refusals.get(code) ?? 0) + 1);
  }

  /** Disconnects every client and stops accepting. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.io.disconnectSockets(true);
    await new Promise<void>((resolve) => this.io.close(() => resolve()));
  }
}

/**
 * Why engine.io closed a connection, when the client broke the protocol: an engine.io packet
 * that does not parse, an invalid WebSocket frame (ws refuses it; engine.io wraps ws's error in
 * a transport error carrying its text), or a heartbeat in the wrong direction. Null for ordinary
 * closes: the client left, the network failed (a write error), or we closed it.
 */
function transportViolation(reason: string, description: unknown): string | null {
  if (reason === 'parse error') return 'an engine.io packet that does not parse';
  if (reason !== 'transport error' || !(description instanceof Error) || description.message === 'write error') return null;
  return description.message;
}

/** The socket.io room that carries a conference room's broadcasts. */
export function roomChannel(room: string): string {
  return `room:${room}`;
}
