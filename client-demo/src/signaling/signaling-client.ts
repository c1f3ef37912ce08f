import { io, type Socket } from 'socket.io-client';
import type {
  ClientAnswer,
  ClientOffer,
  ClientToServerEvents,
  EdgeCapabilities,
  EdgeConnectRequest,
  EdgeConsumed,
  EdgeConsumeRequest,
  EdgeProduced,
  EdgeProduceRequest,
  EdgeResumeRequest,
  EdgeTransportParams,
  EdgeTransportRequest,
  JoinReply,
  JoinRequest,
  MediaStatus,
  MuteRequest,
  Result,
  RosterUpdate,
  SdpMessage,
  ServerOffer,
  ServerToClientEvents,
  SignalingErrorEvent,
  SpareActivate,
  SpareActivated,
  SpareAnswer,
  SpareClose,
  SpareOffer,
} from '../../../mcu/src/signaling/protocol.ts';
import { TypedEmitter } from '../emitter.ts';

/** A request the MCU refused or never answered; `code` is the MCU's error code, or CONNECT_FAILED / TIMEOUT. */
export class SignalingRequestError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'SignalingRequestError';
    this.code = code;
  }
}

/** What the MCU sends the page, and the connection's own comings and goings. */
export type SignalingClientEvents = {
  /** Connected: the first time, or again after the connection was lost. */
  connect: [];
  disconnect: [reason: string];
  roster: [RosterUpdate];
  'signaling-error': [SignalingErrorEvent];
  'media-status': [MediaStatus];
  /** The MCU rebuilds the media path (a standby took over). */
  offer: [ServerOffer];
  'spare-offer': [SpareOffer, (res: Result<SpareAnswer>) => void];
  'spare-activate': [SpareActivate, (res: Result<SpareActivated>) => void];
  'spare-close': [SpareClose];
};

/** How long a request waits for its ack. */
const REQUEST_TIMEOUT_MS = 10000;

/**
 * The page's signaling connection to the MCU: one socket.io connection (WebSocket only) that
 * reconnects at once after a server crash, and the protocol's requests as typed promises.
 */
export class SignalingClient extends TypedEmitter<SignalingClientEvents> {
  /** The socket.io connection itself (tests and benchmarks probe it from the page). */
  readonly socket: Socket<ServerToClientEvents, ClientToServerEvents>;

  constructor(url: string) {
    super();
    this.socket = io(url, {
      transports: ['websocket'],
      autoConnect: false,
      // Reconnect at once after a server crash: the standby is already there.
      reconnectionDelay: 50,
      reconnectionDelayMax: 500,
      randomizationFactor: 0.3,
    });
    this.socket.on('roster', (update) => this.emit('roster', update));
    this.socket.on('signaling-error', (err) => this.emit('signaling-error', err));
    this.socket.on('media-status', (status) => this.emit('media-status', status));
    this.socket.on('offer', (offer) => this.emit('offer', offer));
    this.socket.on('spare-offer', (offer, ack) => this.emit('spare-offer', offer, ack));
    this.socket.on('spare-activate', (req, ack) => this.emit('spare-activate', req, ack));
    this.socket.on('spare-close', (req) => this.emit('spare-close', req));
    this.socket.on('disconnect', (reason) => this.emit('disconnect', reason));
    this.socket.on('connect', () => this.emit('connect'));
  }

  get connected(): boolean {
    return this.socket.connected;
  }

  /** Opens the connection; resolves once it is up, rejects with CONNECT_FAILED. */
  connect(): Promise<void> {
    const connected = new Promise<void>((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('connect_error', (err) => reject(new SignalingRequestError('CONNECT_FAILED', `cannot reach the MCU: ${err.message}`)));
    });
    this.socket.connect();
    return connected;
  }

  join(req: JoinRequest): Promise<JoinReply> {
    return this.#request<JoinReply>((ack) => this.socket.emit('join', req, ack));
  }

  /** The page's offer; resolves with the MCU's answer. */
  offer(req: ClientOffer): Promise<SdpMessage> {
    return this.#request<SdpMessage>((ack) => this.socket.emit('offer', req, ack));
  }

  /** The page's answer to a server offer. */
  async answer(req: ClientAnswer): Promise<void> {
    await this.#request<object>((ack) => this.socket.emit('answer', req, ack));
  }

  // ---- mediasoup plane

  edgeCapabilities(): Promise<EdgeCapabilities> {
    return this.#request<EdgeCapabilities>((ack) => this.socket.emit('edge-capabilities', ack));
  }

  edgeTransport(req: EdgeTransportRequest): Promise<EdgeTransportParams> {
    return this.#request<EdgeTransportParams>((ack) => this.socket.emit('edge-transport', req, ack));
  }

  async edgeConnect(req: EdgeConnectRequest): Promise<void> {
    await this.#request<object>((ack) => this.socket.emit('edge-connect', req, ack));
  }

  edgeProduce(req: EdgeProduceRequest): Promise<EdgeProduced> {
    return this.#request<EdgeProduced>((ack) => this.socket.emit('edge-produce', req, ack));
  }

  edgeConsume(req: EdgeConsumeRequest): Promise<EdgeConsumed> {
    return this.#request<EdgeConsumed>((ack) => this.socket.emit('edge-consume', req, ack));
  }

  async edgeResume(req: EdgeResumeRequest): Promise<void> {
    await this.#request<object>((ack) => this.socket.emit('edge-resume', req, ack));
  }

  async mute(req: MuteRequest): Promise<void> {
    await this.#request<object>((ack) => this.socket.emit('mute', req, ack));
  }

  async leave(): Promise<void> {
    await this.#request<object>((ack) => this.socket.emit('leave', ack));
  }

  /** Idempotent: closes the connection (no reconnection). */
  close(): void {
    this.socket.disconnect();
    this.removeAllListeners();
  }

  #request<T>(send: (ack: (res: Result<T>) => void) => void, timeoutMs = REQUEST_TIMEOUT_MS): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new SignalingRequestError('TIMEOUT', `no answer from the MCU within ${timeoutMs} ms`)), timeoutMs);
      send((res) => {
        clearTimeout(timer);
        if (res.ok) resolve(res as T);
        else reject(new SignalingRequestError(res.error.code, res.error.message));
      });
    });
  }
}
