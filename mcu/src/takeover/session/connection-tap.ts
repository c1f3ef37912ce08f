/**
 * One tracked WebSocket connection on the recording side: sits between the TCP socket
 * and ws's receiver, feeds ws whole frames only (so the consumed offset is always a
 * frame boundary), can hold the input at the next boundary, counts bytes both ways,
 * and follows what a checkpoint needs that socket.io does not keep: which acks are
 * outstanding in each direction, binary attachments still expected, and the heartbeat.
 */
import type { Socket as NetSocket } from 'node:net';
import type { Logger } from '../../core/logger.ts';
import type { NotQuiescentReason } from '../errors.ts';
import { FRAME_TOO_LARGE, FrameSplitter } from './frame-splitter.ts';
import {
  WS_RECEIVER_GET_INFO,
  peekPacket,
  type EnginePacket,
  type EngineSocketInternals,
  type WsWebSocketInternals,
} from './internals.ts';

/** Where a re-attached connection's counters start (the record's offsets). */
export interface AdoptionBases {
  consumed: number;
  written: number;
  /** `socket.bytesWritten` when re-attachment began (output-log replay is not the application's). */
  netBytesWrittenAtStart: number;
}

/** Heartbeat moments on this process's monotonic clock (`performance.now()`). */
export interface HeartbeatTimeline {
  pingTimerArmedAt: number;
  lastPingAt: number | null;
  pongDeadlineArmedAt: number | null;
}

export interface OutstandingServerAck {
  nsp: string;
  id: number;
  event: string | null;
  sentAt: number;
}

export interface OutstandingClientRequest {
  nsp: string;
  id: number;
  event: string | null;
  /** The encoded packet, null for a binary event (its attachments are not kept). */
  packet: string | null;
}

/** Beyond this many outstanding acks or requests per connection the oldest are forgotten (and logged). */
const MAX_OUTSTANDING = 4096;

type DataListener = (this: NetSocket, chunk: Buffer) => void;

export class ConnectionTap {
  readonly engineId: string;
  readonly es: EngineSocketInternals;
  readonly ws: WsWebSocketInternals | null;
  readonly net: NetSocket | null;
  /** Why this connection can never be checkpointed, null while it can. */
  unrecordable: string | null = null;
  heartbeat: HeartbeatTimeline;
  readonly serverAcks = new Map<string, OutstandingServerAck>();
  readonly clientRequests = new Map<string, OutstandingClientRequest>();

  readonly #log: Logger;
  readonly #onUnrecordable: (reason: string) => void;
  readonly #onBoundary: (consumed: number) => void;
  #splitter: FrameSplitter | null = null;
  #wsOnData: DataListener | null = null;
  #consumed = 0;
  #writtenBase = 0;
  #netWrittenAtStart = 0;
  #inFragmentedMessage = false;
  #pendingAttachments = 0;
  #dispatchPending = false;
  #dispatchImmediate: NodeJS.Immediate | null = null;
  #holdRequested = false;
  #holding = false;
  #passthrough = false;
  #disposed = false;
  readonly #onData = (chunk: Buffer): void => this.#receive(chunk);
  readonly #onPacket = (packet: EnginePacket): void => this.#inbound(packet);
  readonly #onPacketCreate = (packet: EnginePacket): void => this.#outbound(packet);
  readonly #onHeartbeat = (): void => {
    this.heartbeat = { ...this.heartbeat, pingTimerArmedAt: performance.now(), pongDeadlineArmedAt: null };
  };

  constructor(
    es: EngineSocketInternals,
    bases: AdoptionBases | null,
    log: Logger,
    onUnrecordable: (reason: string) => void,
    onBoundary: (consumed: number) => void,
  ) {
    this.engineId = es.id;
    this.es = es;
    this.#log = log;
    this.#onUnrecordable = onUnrecordable;
    this.#onBoundary = onBoundary;
    this.heartbeat = { pingTimerArmedAt: performance.now(), lastPingAt: null, pongDeadlineArmedAt: null };
    this.ws = es.transport.socket ?? null;
    this.net = this.ws?._socket ?? null;
    es.on('packet', this.#onPacket);
    es.on('packetCreate', this.#onPacketCreate);
    es.on('heartbeat', this.#onHeartbeat);
    this.#install(bases);
  }

  /** Client bytes the application consumed, as a stream offset (a frame boundary). */
  get consumed(): number {
    return this.#consumed;
  }

  /** Bytes written to the client, as a stream offset. */
  get written(): number {
    return this.#writtenBase + ((this.net?.bytesWritten ?? this.#netWrittenAtStart) - this.#netWrittenAtStart);
  }

  /** Client bytes read but not handed to ws (a partial frame, or input held for a checkpoint). */
  pendingInput(): Buffer {
    return this.#splitter?.peekAll() ?? Buffer.alloc(0);
  }

  get holding(): boolean {
    return this.#holding;
  }

  /** Why the input side is not at a checkpointable point, null if it is. */
  inputReason(): NotQuiescentReason | null {
    if (this.#inFragmentedMessage) return 'fragmented-message';
    if (this.#pendingAttachments > 0) return 'binary-attachments-pending';
    const receiver = this.ws?._receiver;
    if (receiver && (receiver._state !== WS_RECEIVER_GET_INFO || receiver._bufferedBytes !== 0 || receiver._fragmented !== 0)) return 'mid-frame';
    return null;
  }

  /** Why the connection is not checkpointable right now, null if it is. */
  reason(queuedOutputAllowed = false): NotQuiescentReason | null {
    if (this.es.readyState !== 'open') return 'closing';
    const input = this.inputReason();
    if (input) return input;
    if (this.#dispatchPending) return 'dispatch-pending';
    if (!queuedOutputAllowed && this.es.writeBuffer.length > 0) return 'output-pending';
    return null;
  }

  /** Stops handing frames to ws at the next boundary; what arrives meanwhile is kept in order. */
  requestHold(): void {
    if (this.unrecordable) return;
    this.#holdRequested = true;
    this.#pump();
  }

  /** Resumes feeding ws, starting with what was held. */
  release(): void {
    this.#holdRequested = false;
    if (!this.#holding) return;
    this.#holding = false;
    this.#pump();
  }

  /**
   * Stops tapping. `returnStream` gives the socket back to ws with whatever was held; when
   * the connection already ended there is nothing to give back.
   */
  dispose(returnStream: boolean): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.es.off('packet', this.#onPacket);
    this.es.off('packetCreate', this.#onPacketCreate);
    this.es.off('heartbeat', this.#onHeartbeat);
    if (this.#dispatchImmediate) clearImmediate(this.#dispatchImmediate);
    this.#dispatchImmediate = null;
    if (!this.net || !this.#wsOnData) return;
    this.net.removeListener('data', this.#onData);
    if (!returnStream) return;
    const rest = this.#splitter?.drain() ?? Buffer.alloc(0);
    this.net.on('data', this.#wsOnData);
    if (rest.length > 0) this.#wsOnData.call(this.net, rest);
  }

  #install(bases: AdoptionBases | null): void {
    const { ws, net } = this;
    if (!ws || !net) return this.#markUnrecordable('not a WebSocket transport');
    const extensions = (ws as unknown as { _extensions?: Record<string, unknown> })._extensions;
    if (extensions && Object.keys(extensions).length > 0) return this.#markUnrecordable('a WebSocket extension (permessage-deflate) is active: its state cannot move');
    const listeners = net.listeners('data') as DataListener[];
    if (listeners.length !== 1) return this.#markUnrecordable(`expected ws alone on the socket's data, found ${listeners.length} listeners`);
    const receiver = ws._receiver;
    if (bases) {
      this.#consumed = bases.consumed;
      this.#writtenBase = bases.written;
      this.#netWrittenAtStart = bases.netBytesWrittenAtStart;
    } else {
      if (!receiver || receiver._state !== WS_RECEIVER_GET_INFO || receiver._bufferedBytes !== 0 || receiver._fragmented !== 0) {
        return this.#markUnrecordable('ws had already started parsing a frame when tracking began');
      }
      this.#consumed = net.bytesRead - net.readableLength;
      this.#writtenBase = 0;
      this.#netWrittenAtStart = 0;
    }
    const maxPayload = (receiver as unknown as { _maxPayload?: number } | undefined)?._maxPayload || 100 * 1024 * 1024;
    this.#splitter = new FrameSplitter(maxPayload);
    this.#wsOnData = listeners[0]!;
    net.removeListener('data', this.#wsOnData);
    net.on('data', this.#onData);
  }

  #markUnrecordable(reason: string): void {
    if (this.unrecordable) return;
    this.unrecordable = reason;
    this.#holdRequested = false;
    this.#holding = false;
    this.#onUnrecordable(reason);
  }

  #receive(chunk: Buffer): void {
    if (this.#passthrough) {
      this.#wsOnData!.call(this.net!, chunk);
      return;
    }
    this.#splitter!.push(chunk);
    this.#pump();
  }

  #pump(): void {
    const splitter = this.#splitter;
    const net = this.net;
    const wsOnData = this.#wsOnData;
    if (!splitter || !net || !wsOnData || this.#disposed) return;
    for (;;) {
      if (this.#holdRequested && !this.#holding && this.inputReason() === null) this.#holding = true;
      if (this.#holding) return;
      const frame = splitter.next();
      if (frame === null) return;
      if (frame === FRAME_TOO_LARGE) {
        // ws closes the connection with 1009 when it reads this header; nothing to keep.
        this.#passthrough = true;
        this.#markUnrecordable('the client sent a frame above maxPayload');
        wsOnData.call(net, splitter.drain());
        return;
      }
      this.#consumed += frame.bytes.length;
      if (frame.opcode < 8) this.#inFragmentedMessage = !frame.fin;
      this.#markDispatchPending();
      wsOnData.call(net, frame.bytes);
      if (this.es.readyState !== 'open' || this.#disposed) return;
      if (this.inputReason() === null) this.#onBoundary(this.#consumed);
    }
  }

  /** socket.io dispatches decoded packets on process.nextTick: a checkpoint waits for the check phase. */
  #markDispatchPending(): void {
    this.#dispatchPending = true;
    this.#dispatchImmediate ??= setImmediate(() => {
      this.#dispatchImmediate = null;
      this.#dispatchPending = false;
    });
  }

  #inbound(packet: EnginePacket): void {
    const es = this.es;
    if (es.pingTimeoutTimer !== null && !es.hasRefreshedPingTimeout && packet.type !== 'pong') {
      // engine.io extends the pong deadline right after emitting 'packet'.
      this.heartbeat = { ...this.heartbeat, pongDeadlineArmedAt: performance.now() };
    }
    if (packet.type !== 'message') return;
    if (typeof packet.data !== 'string') {
      if (this.#pendingAttachments > 0) this.#pendingAttachments--;
      return;
    }
    const first = packet.data.charCodeAt(0);
    if (first < 0x32 || first > 0x36 || first === 0x34) return; // only 2, 3, 5, 6 matter
    const p = peekPacket(packet.data);
    if (!p) return;
    if (p.type === 5 || p.type === 6) this.#pendingAttachments = p.attachments;
    if (p.id === null) return;
    const key = `${p.nsp}#${p.id}`;
    if (p.type === 2 || p.type === 5) {
      this.clientRequests.set(key, { nsp: p.nsp, id: p.id, event: p.event, packet: p.type === 2 ? packet.data : null });
      this.#bound(this.clientRequests, 'client requests');
    } else {
      this.serverAcks.delete(key);
    }
  }

  #outbound(packet: EnginePacket): void {
    if (packet.type === 'ping') {
      const now = performance.now();
      this.heartbeat = { ...this.heartbeat, lastPingAt: now, pongDeadlineArmedAt: now };
      return;
    }
    if (packet.type !== 'message' || typeof packet.data !== 'string') return;
    const first = packet.data.charCodeAt(0);
    if (first < 0x32 || first > 0x36 || first === 0x34) return;
    const p = peekPacket(packet.data);
    if (!p || p.id === null) return;
    const key = `${p.nsp}#${p.id}`;
    if (p.type === 2 || p.type === 5) {
      this.serverAcks.set(key, { nsp: p.nsp, id: p.id, event: p.event, sentAt: performance.now() });
      this.#bound(this.serverAcks, 'server acks');
    } else {
      this.clientRequests.delete(key);
    }
  }

  #bound(map: Map<string, unknown>, what: string): void {
    if (map.size <= MAX_OUTSTANDING) return;
    const oldest = map.keys().next().value as string;
    map.delete(oldest);
    this.#log.warn('too many outstanding acks on one connection: forgetting the oldest', { engineId: this.engineId, what, key: oldest });
  }
}
