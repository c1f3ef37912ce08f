import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import {
  McuError,
  ReplicationAuthError,
  ReplicationClosedError,
  ReplicationMalformedError,
  StaleEpochError,
} from '../core/errors.ts';
import { preciseNow } from '../core/clock.ts';
import { safeEmit } from '../core/events.ts';
import { createLogger, type LogContext, type Logger } from '../core/logger.ts';
import { DEFAULT_MAX_FRAME_BYTES, FrameType, LinkHandshake, type Frame, type FrameDecoder, type FrameSealer, type Secret } from '../wire/frame-codec.ts';
import {
  decodeJson,
  encodeJson,
  isUnsequenced,
  type AckMessage,
  type HeartbeatMessage,
  type ReplicationMessage,
  type ShutdownMessage,
} from '../wire/messages.ts';

export interface FrameMeta {
  /** Message type of a JSON frame, or 'binary'. */
  kind: string;
  seq: number;
  epoch: number;
  /** Local clock when the frame was decoded. */
  receivedAt: number;
}

/**
 * How a link ended: `local` we closed it; `shutdown` the peer announced a deliberate stop;
 * `died` the stream ended or broke without an announcement (crash, timeout, protocol error).
 */
export type LinkCloseKind = 'local' | 'shutdown' | 'died';

export interface LinkCloseInfo {
  kind: LinkCloseKind;
  reason: string;
  /** The protocol error that ended the link, if one did. */
  error: McuError | null;
  at: number;
}

type LinkControl = HeartbeatMessage | AckMessage | ShutdownMessage;

export type ReplicationLinkEvents<TIn> = {
  /** A verified and validated message other than heartbeat, ack and shutdown (the link handles those). */
  message: [msg: Exclude<TIn, LinkControl>, meta: FrameMeta];
  /** A verified binary frame. */
  binary: [data: Buffer, meta: FrameMeta];
  /** Any verified frame: the liveness signal for a failure detector. */
  frame: [meta: FrameMeta];
  heartbeat: [sentAt: number, meta: FrameMeta];
  /** The peer acknowledged every sequenced frame up to `seq`. */
  ack: [seq: number, at: number];
  /** The peer's frames moved to a higher epoch (only with minPeerEpoch set). */
  epoch: [epoch: number];
  /** A frame was refused (auth, malformed, stale epoch); the link closes right after. */
  'protocol-error': [error: McuError];
  close: [info: LinkCloseInfo];
};

export interface ReplicationLinkOptions<TIn> {
  socket: Socket;
  secret: Secret;
  /** Epoch stamped on outgoing frames. */
  epoch: number;
  /** Validates an incoming JSON payload; throws ReplicationMalformedError. */
  parse: (value: unknown) => TIn;
  /** Refuse peer frames below this epoch (StaleEpochError) and adopt higher ones; null = no check (default null). */
  minPeerEpoch?: number | null;
  /** Heartbeat period once startHeartbeats() is called (default 10 ms). */
  heartbeatIntervalMs?: number;
  /** Close as `died` when no verified frame arrived for this long; null = off (default null). */
  peerTimeoutMs?: number | null;
  /** Largest frame payload sent or accepted (default 16 MiB). */
  maxFrameBytes?: number;
  /** Close as `died` when this much output is queued: the peer stopped reading (default 64 MiB). */
  maxBufferedBytes?: number;
  /**
   * A frame whose header came but whose bytes are still incomplete this long later, while more
   * bytes keep arriving, is refused (REPLICATION_MALFORMED): its length was forged or corrupted
   * on the way, and waiting for it would swallow the peer's next frames (default
   * DEFAULT_FRAME_TIMEOUT_MS). Judged when bytes arrive: a peer that sends nothing is not.
   */
  frameTimeoutMs?: number;
  /** How long a locally closed socket may take to flush before it is destroyed (default 1000 ms). */
  lingerMs?: number;
  /** Time source (default preciseNow). */
  clock?: () => number;
  /** Extra context on every log line (peer, role). */
  logContext?: LogContext;
}

/** Default frameTimeoutMs: a frame is written whole, so even 16 MiB arrive well within it on a LAN. */
export const DEFAULT_FRAME_TIMEOUT_MS = 2000;

interface AckWaiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * One encrypted, authenticated, ordered replication connection over a TCP socket. It starts
 * with the link handshake (both hellos, fresh per-connection keys: frame-codec.ts); frames sent
 * before the peer's hello came wait for it. Frames are verified (GCM tag at their place in the
 * stream, epoch, order, schema) before any listener sees them; the first bad frame ends the link.
 * Sequenced frames (everything but heartbeat and ack) are numbered 1, 2, ...; heartbeat and ack
 * frames carry the seq of the sender's last sequenced frame.
 */
export class ReplicationLink<TIn extends ReplicationMessage, TOut extends ReplicationMessage> extends EventEmitter<
  ReplicationLinkEvents<TIn>
> {
  readonly #socket: Socket;
  readonly #parse: (value: unknown) => TIn;
  readonly #handshake: LinkHandshake;
  /** Null until the peer's link hello came. */
  #decoder: FrameDecoder | null = null;
  #sealer: FrameSealer | null = null;
  /** Frames sent before the peer's hello: sealed and written once the keys exist. */
  #unsealed: Frame[] = [];
  readonly #clock: () => number;
  readonly #heartbeatIntervalMs: number;
  readonly #peerTimeoutMs: number | null;
  readonly #maxFrameBytes: number;
  readonly #maxBufferedBytes: number;
  readonly #lingerMs: number;
  readonly #frameTimeoutMs: number;
  readonly #log: Logger;
  readonly #waiters = new Map<number, AckWaiter>();
  #epoch: number;
  #minPeerEpoch: number | null;
  #closed: LinkCloseInfo | null = null;
  /** The incomplete frame being received (its index in the stream) and since when. */
  #partial: { index: number; since: number } | null = null;
  #heartbeatTimer: NodeJS.Timeout | null = null;
  #peerTimer: NodeJS.Timeout | null = null;
  #lastSentSeq = 0;
  #lastReceivedSeq = 0;
  #lastAckedSeq = 0;
  #lastReceivedAt: number;
  #bytesSent = 0;
  #bytesReceived = 0;
  #framesSent = 0;
  #framesReceived = 0;

  constructor(options: ReplicationLinkOptions<TIn>) {
    super();
    this.#socket = options.socket;
    this.#parse = options.parse;
    this.#epoch = options.epoch;
    this.#minPeerEpoch = options.minPeerEpoch ?? null;
    this.#clock = options.clock ?? preciseNow;
    this.#heartbeatIntervalMs = options.heartbeatIntervalMs ?? 10;
    this.#peerTimeoutMs = options.peerTimeoutMs ?? null;
    this.#maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.#maxBufferedBytes = options.maxBufferedBytes ?? 64 * 1024 * 1024;
    this.#lingerMs = options.lingerMs ?? 1000;
    this.#frameTimeoutMs = options.frameTimeoutMs ?? DEFAULT_FRAME_TIMEOUT_MS;
    this.#handshake = new LinkHandshake(options.secret, { maxFrameBytes: this.#maxFrameBytes });
    this.#lastReceivedAt = this.#clock();
    this.#log = createLogger('replication-link', {
      peer: `${this.#socket.remoteAddress ?? '?'}:${this.#socket.remotePort ?? '?'}`,
      ...options.logContext,
    });

    // Replication frames are small and latency-bound (heartbeats, output commit): never wait for Nagle.
    this.#socket.setNoDelay(true);
    this.#socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    this.#socket.on('end', () => this.#onEnd());
    this.#socket.on('error', (err: NodeJS.ErrnoException) => this.#die(`socket error ${err.code ?? err.message}`, null));
    this.#socket.on('close', () => this.#die('socket closed', null));
    this.#socket.write(this.#handshake.hello);
    this.#bytesSent += this.#handshake.hello.length;

    if (this.#peerTimeoutMs !== null) {
      const timeout = this.#peerTimeoutMs;
      const silentFor = (): number => this.#clock() - this.#lastReceivedAt;
      this.#peerTimer = setInterval(() => {
        if (silentFor() <= timeout) return;
        // Judged after one poll for input: a process that was stopped (SIGSTOP, starvation) runs
        // its timers before it reads what arrived meanwhile, such as a standby's `superseded`.
        setImmediate(() => {
          const silent = silentFor();
          if (silent > timeout) this.#die(`peer silent for ${Math.round(silent)} ms (limit ${timeout} ms)`, null);
        });
      }, Math.max(1, Math.floor(timeout / 4)));
      this.#peerTimer.unref();
    }
  }

  get closed(): boolean {
    return this.#closed !== null;
  }
  get closeInfo(): LinkCloseInfo | null {
    return this.#closed;
  }
  get epoch(): number {
    return this.#epoch;
  }
  get lastSentSeq(): number {
    return this.#lastSentSeq;
  }
  get lastReceivedSeq(): number {
    return this.#lastReceivedSeq;
  }
  get lastAckedSeq(): number {
    return this.#lastAckedSeq;
  }
  get lastReceivedAt(): number {
    return this.#lastReceivedAt;
  }
  get bytesSent(): number {
    return this.#bytesSent;
  }
  get bytesReceived(): number {
    return this.#bytesReceived;
  }
  get framesSent(): number {
    return this.#framesSent;
  }
  get framesReceived(): number {
    return this.#framesReceived;
  }
  get remoteAddress(): string {
    return `${this.#socket.remoteAddress ?? '?'}:${this.#socket.remotePort ?? '?'}`;
  }

  /** Epoch stamped on frames sent from now on. */
  setEpoch(epoch: number): void {
    this.#epoch = epoch;
  }

  /** Starts sending heartbeats (idempotent); the first goes out at once. */
  startHeartbeats(): void {
    if (this.#heartbeatTimer || this.#closed) return;
    const beat = (): void => {
      if (this.#closed) return;
      this.send({ type: 'heartbeat', sentAt: Date.now() } as TOut);
    };
    this.#heartbeatTimer = setInterval(beat, this.#heartbeatIntervalMs);
    this.#heartbeatTimer.unref();
    beat();
  }

  /** Sends one message; returns its seq (for heartbeat/ack: the last sequenced seq). Throws ReplicationClosedError after close. */
  send(msg: TOut): number {
    const sequenced = !isUnsequenced(msg);
    return this.#write(FrameType.Json, encodeJson(msg), sequenced);
  }

  /** Sends raw bytes in a sequenced binary frame; returns its seq. */
  sendBinary(data: Buffer): number {
    return this.#write(FrameType.Binary, data, true);
  }

  /** Sends a sequenced message and resolves once the peer acknowledged it (output commit). */
  sendAndWaitAck(msg: TOut): Promise<void> {
    if (isUnsequenced(msg)) return Promise.reject(new ReplicationMalformedError(`"${msg.type}" frames are not acknowledged`));
    let seq: number;
    try {
      seq = this.send(msg);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new ReplicationClosedError(String(err)));
    }
    return this.waitAck(seq);
  }

  /** Resolves once the peer acknowledged `seq`; rejected with ReplicationClosedError if the link closes first. */
  waitAck(seq: number): Promise<void> {
    if (seq <= this.#lastAckedSeq) return Promise.resolve();
    if (this.#closed) return Promise.reject(new ReplicationClosedError(this.#closed.reason));
    const existing = this.#waiters.get(seq);
    return new Promise<void>((resolve, reject) => {
      if (existing) {
        // Several waiters on one seq: chain them.
        this.#waiters.set(seq, {
          resolve: () => (existing.resolve(), resolve()),
          reject: (e) => (existing.reject(e), reject(e)),
        });
      } else {
        this.#waiters.set(seq, { resolve, reject });
      }
    });
  }

  /**
   * Closes on purpose (idempotent). With `announce` (default) the peer first gets a `shutdown`
   * frame, so it knows this is not a crash.
   */
  close(reason: string, options: { announce?: boolean } = {}): void {
    if (this.#closed) return;
    const announce = options.announce ?? true;
    if (announce && this.#socket.writable) {
      try {
        this.#write(FrameType.Json, encodeJson({ type: 'shutdown', reason }), true, true);
      } catch (err) {
        this.#log.warn(`could not announce shutdown: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    this.#finish({ kind: 'local', reason, error: null, at: this.#clock() }, 'end');
  }

  #write(type: FrameType, payload: Buffer, sequenced: boolean, closing = false): number {
    if (this.#closed && !closing) throw new ReplicationClosedError(this.#closed.reason);
    const seq = sequenced ? this.#lastSentSeq + 1 : this.#lastSentSeq;
    const frame: Frame = { type, epoch: this.#epoch, seq, payload };
    if (payload.length > this.#maxFrameBytes) {
      throw new ReplicationMalformedError(`payload of ${payload.length} bytes exceeds the limit of ${this.#maxFrameBytes} bytes`);
    }
    if (sequenced) this.#lastSentSeq = seq;
    this.#framesSent++;
    if (this.#sealer) this.#writeSealed(this.#sealer.seal(frame), closing);
    else this.#unsealed.push(frame);
    return seq;
  }

  #writeSealed(bytes: Buffer, closing = false): void {
    this.#socket.write(bytes);
    this.#bytesSent += bytes.length;
    if (!closing && this.#socket.writableLength > this.#maxBufferedBytes) {
      // The peer stopped reading (stopped process, stalled host): buffering more only hides it.
      this.#die(`peer not reading: ${this.#socket.writableLength} bytes queued (limit ${this.#maxBufferedBytes})`, null);
    }
  }

  /** The peer's hello: from here on frames are sealed and opened with this connection's keys. */
  #onLinkKeys(sealer: FrameSealer, decoder: FrameDecoder): void {
    this.#sealer = sealer;
    this.#decoder = decoder;
    const queued = this.#unsealed;
    this.#unsealed = [];
    for (const frame of queued) this.#writeSealed(sealer.seal(frame));
  }

  #onData(chunk: Buffer): void {
    if (this.#closed) return;
    this.#bytesReceived += chunk.length;
    if (!this.#decoder) {
      let keys;
      try {
        keys = this.#handshake.push(chunk);
      } catch (err) {
        this.#protocolError(err);
        return;
      }
      if (!keys) return;
      this.#onLinkKeys(keys.sealer, keys.decoder);
      if (this.#closed || keys.rest.length === 0) return;
      chunk = keys.rest;
    }
    const decoder = this.#decoder;
    if (!decoder) return;
    const { frames, error } = decoder.push(chunk);
    for (const frame of frames) {
      if (this.#closed) return;
      try {
        this.#onFrame(frame);
      } catch (err) {
        this.#protocolError(err);
        return;
      }
    }
    if (error && !this.#closed) this.#protocolError(error);
    if (!this.#closed) this.#checkPartialFrame();
  }

  #checkPartialFrame(): void {
    const partial = this.#decoder?.partialFrame ?? null;
    if (!partial) {
      this.#partial = null;
      return;
    }
    const now = this.#clock();
    if (this.#partial?.index !== partial.index) {
      this.#partial = { index: partial.index, since: now };
      return;
    }
    const waited = now - this.#partial.since;
    if (waited <= this.#frameTimeoutMs) return;
    this.#protocolError(
      new ReplicationMalformedError(
        `a frame declaring ${partial.declared} bytes is still incomplete after ${Math.round(waited)} ms while bytes keep coming (${partial.buffered} of it received, limit ${this.#frameTimeoutMs} ms): a forged or corrupted length`,
      ),
    );
  }

  #onFrame(frame: Frame): void {
    if (this.#minPeerEpoch !== null && frame.epoch < this.#minPeerEpoch) throw new StaleEpochError(frame.epoch, this.#minPeerEpoch);
    const receivedAt = this.#clock();

    if (frame.type === FrameType.Binary) {
      this.#checkSeq(frame.seq, true);
      this.#adoptEpoch(frame.epoch);
      const meta: FrameMeta = { kind: 'binary', seq: frame.seq, epoch: frame.epoch, receivedAt };
      this.#accepted(meta);
      if (!this.#closed) safeEmit(this, this.#log, 'binary', frame.payload, meta);
      return;
    }

    const msg = this.#parse(decodeJson(frame.payload));
    this.#checkSeq(frame.seq, !isUnsequenced(msg));
    this.#adoptEpoch(frame.epoch);
    const meta: FrameMeta = { kind: msg.type, seq: frame.seq, epoch: frame.epoch, receivedAt };
    this.#accepted(meta);
    // A 'frame' listener may have closed the link (handshake rule): nothing more of this frame.
    if (this.#closed) return;
    switch (msg.type) {
      case 'heartbeat':
        safeEmit(this, this.#log, 'heartbeat', msg.sentAt, meta);
        return;
      case 'ack':
        this.#onAck(msg.seq, receivedAt);
        return;
      case 'shutdown':
        this.#log.info(`peer shut down on purpose: ${msg.reason}`);
        this.#finish({ kind: 'shutdown', reason: msg.reason, error: null, at: receivedAt }, 'end');
        return;
      default:
        safeEmit(this, this.#log, 'message', msg as Exclude<TIn, LinkControl>, meta);
    }
  }

  /**
   * A higher epoch is followed only once its frame verified entirely (MAC, order, schema): a
   * refused frame must change nothing, or a forged epoch would make us refuse the real primary.
   */
  #adoptEpoch(epoch: number): void {
    if (this.#minPeerEpoch === null || epoch <= this.#minPeerEpoch) return;
    this.#minPeerEpoch = epoch;
    safeEmit(this, this.#log, 'epoch', epoch);
  }

  #checkSeq(seq: number, sequenced: boolean): void {
    const expected = sequenced ? this.#lastReceivedSeq + 1 : this.#lastReceivedSeq;
    if (seq !== expected) {
      throw new ReplicationMalformedError(`frame seq ${seq} out of order (expected ${expected})`);
    }
    this.#lastReceivedSeq = seq;
  }

  #accepted(meta: FrameMeta): void {
    this.#lastReceivedAt = meta.receivedAt;
    this.#framesReceived++;
    safeEmit(this, this.#log, 'frame', meta);
  }

  #onAck(seq: number, at: number): void {
    if (seq > this.#lastSentSeq) throw new ReplicationMalformedError(`ack of seq ${seq} that was never sent (last sent ${this.#lastSentSeq})`);
    if (seq <= this.#lastAckedSeq) return;
    this.#lastAckedSeq = seq;
    for (const [waitSeq, waiter] of this.#waiters) {
      if (waitSeq > seq) continue;
      this.#waiters.delete(waitSeq);
      waiter.resolve();
    }
    safeEmit(this, this.#log, 'ack', seq, at);
  }

  #onEnd(): void {
    if (this.#closed) return;
    const truncated = this.#decoder
      ? this.#decoder.finish()
      : this.#handshake.bufferedBytes > 0
        ? new ReplicationMalformedError(`stream ended inside the link hello (${this.#handshake.bufferedBytes} bytes of it)`)
        : null;
    this.#die(truncated ? `end of stream inside a frame (${truncated.message})` : 'end of stream without shutdown', truncated);
  }

  #protocolError(err: unknown): void {
    const error =
      err instanceof McuError ? err : new ReplicationMalformedError(`frame handling failed: ${err instanceof Error ? err.message : String(err)}`);
    const level = error instanceof ReplicationAuthError || error instanceof StaleEpochError ? 'error' : 'warn';
    this.#log.log(level, `frame refused, closing the link: ${error.message}`, { code: error.code });
    safeEmit(this, this.#log, 'protocol-error', error);
    this.#die(`protocol error: ${error.code}`, error);
  }

  #die(reason: string, error: McuError | null): void {
    if (this.#closed) return;
    this.#finish({ kind: 'died', reason, error, at: this.#clock() }, 'destroy');
  }

  #finish(info: LinkCloseInfo, how: 'end' | 'destroy'): void {
    if (this.#closed) return;
    this.#closed = info;
    if (this.#heartbeatTimer) clearInterval(this.#heartbeatTimer);
    if (this.#peerTimer) clearInterval(this.#peerTimer);
    this.#heartbeatTimer = this.#peerTimer = null;
    if (how === 'destroy') {
      this.#socket.destroy();
    } else {
      this.#socket.end();
      // A peer that never reads would keep the socket (and the process) alive: bound the flush.
      const linger = setTimeout(() => this.#socket.destroy(), this.#lingerMs);
      linger.unref();
      this.#socket.once('close', () => clearTimeout(linger));
    }
    const closedError = new ReplicationClosedError(info.reason);
    for (const waiter of this.#waiters.values()) waiter.reject(closedError);
    this.#waiters.clear();
    const level = info.kind === 'died' ? 'warn' : 'info';
    this.#log.log(level, `link closed (${info.kind}): ${info.reason}`, {
      lastSentSeq: this.#lastSentSeq,
      lastAckedSeq: this.#lastAckedSeq,
      lastReceivedSeq: this.#lastReceivedSeq,
    });
    safeEmit(this, this.#log, 'close', info);
  }
}
