/**
 * A TLS 1.3 session continued on the standby: a Duplex of plaintext over the rebuilt socket
 * (a repaired net.Socket, or any Duplex), with our record layer in between at the exact
 * sequence numbers the tracker found. What ws's `setSocket` (and engine.io's upgrade path)
 * gets instead of the socket (design.md 10 and 12). A taken-over session stays on this layer
 * for good: Node cannot load a session into its own TLS.
 */
import { EventEmitter } from 'node:events';
import type { Socket as NetSocket } from 'node:net';
import { Duplex } from 'node:stream';
import { safeEmit } from '../../core/events.ts';
import { createLogger, type Logger } from '../../core/logger.ts';
import { TlsContinuationStateError, TlsRecordInvalidError } from './errors.ts';
import { TlsRecordLayer, type TlsContinuationState, type TlsReceiveResult } from './record-layer.ts';

/** The transport under the session: a net.Socket's extras are used when present. */
export type TlsTransport = Duplex & Partial<Pick<NetSocket, 'setTimeout' | 'setNoDelay' | 'setKeepAlive' | 'remoteAddress' | 'remotePort' | 'localAddress' | 'localPort'>>;

export interface TlsContinuationOptions {
  /**
   * Client bytes captured from the tracked input boundary on that the primary never
   * processed (a record in flight at the crash, whole or its first part): decrypted before
   * anything read from the transport. Default none.
   */
  head?: Buffer;
  /** Input stream offset of the tracked boundary, for error messages (default 0). */
  inputOffset?: number;
  /** How long a closed continuation waits for the peer to close TCP after our close_notify, ms (default 2000). */
  lingerMs?: number;
  logger?: Logger;
}

/** Monitoring events (mediasoup's `observer` idea): the Duplex's own events stay the stream's. */
export type TlsContinuationObserverEvents = {
  /** The peer moved its key (`requested`: it asked for ours, which was sent). */
  keyupdate: [info: { generation: number; requested: boolean }];
  /** We moved our write key. */
  localkeyupdate: [info: { generation: number; requestedPeer: boolean }];
  closenotify: [];
  /** A fatal alert from the peer. */
  alert: [info: { level: number; description: number }];
  /** A broken record (also the Duplex's 'error'). */
  recordinvalid: [err: TlsRecordInvalidError];
  close: [];
};

export class TlsContinuation extends Duplex {
  readonly observer = new EventEmitter<TlsContinuationObserverEvents>();
  /** Like TLSSocket's: ws and engine.io read it to know the connection is secure. */
  readonly encrypted = true;
  readonly #socket: TlsTransport;
  readonly #layer: TlsRecordLayer;
  readonly #log: Logger;
  readonly #lingerMs: number;
  #closed = false;

  readonly #onData = (chunk: Buffer): void => this.#receive(chunk);
  readonly #onEnd = (): void => {
    // TCP ended without close_notify: a truncation; the application sees the end all the same.
    if (this.#layer.state === 'open') this.#log.debug('transport ended without close_notify');
    this.push(null);
  };
  readonly #onSocketError = (err: Error): void => {
    this.destroy(err);
  };
  readonly #onSocketClose = (): void => {
    if (!this.destroyed) this.destroy();
  };

  constructor(socket: TlsTransport, start: TlsContinuationState, options: TlsContinuationOptions = {}) {
    super({ allowHalfOpen: false });
    this.#socket = socket;
    this.#log = options.logger ?? createLogger('tls-continuation');
    this.#lingerMs = options.lingerMs ?? 2000;
    this.#layer = new TlsRecordLayer(start, { inputOffset: options.inputOffset ?? 0 });
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onSocketError);
    socket.on('close', this.#onSocketClose);
    // A KeyUpdate the peer asked for before the crash and the primary never sent goes first.
    const owed = this.#layer.flushOwedKeyUpdate();
    if (owed) socket.write(owed);
    if (options.head && options.head.length > 0) this.#receive(options.head);
    if (!this.destroyed) socket.on('data', this.#onData);
  }

  /** Where both directions stand now (for a chained takeover, or logs). */
  get tlsState(): TlsContinuationState {
    return this.#layer.snapshot();
  }

  get remoteAddress(): string | undefined {
    return this.#socket.remoteAddress;
  }
  get remotePort(): number | undefined {
    return this.#socket.remotePort;
  }
  get localAddress(): string | undefined {
    return this.#socket.localAddress;
  }
  get localPort(): number | undefined {
    return this.#socket.localPort;
  }
  setTimeout(ms: number, callback?: () => void): this {
    this.#socket.setTimeout?.(ms, callback);
    return this;
  }
  setNoDelay(noDelay?: boolean): this {
    this.#socket.setNoDelay?.(noDelay);
    return this;
  }
  setKeepAlive(enable?: boolean, initialDelay?: number): this {
    this.#socket.setKeepAlive?.(enable, initialDelay);
    return this;
  }

  /** Moves our write key on (RFC 8446 4.6.3); `requestPeer`: the peer must answer with its own. */
  keyUpdate(requestPeer = true): void {
    if (this.destroyed || this.#layer.writeClosed) throw new TlsContinuationStateError('keyUpdate on a closed session');
    this.#socket.write(this.#layer.initiateKeyUpdate(requestPeer));
    safeEmit(this.observer, this.#log, 'localkeyupdate', { generation: this.#layer.snapshot().write.generation, requestedPeer: requestPeer });
  }

  #receive(chunk: Buffer): void {
    let result: TlsReceiveResult;
    try {
      result = this.#layer.receive(chunk);
    } catch (err) {
      this.#fail(err);
      return;
    }
    for (const out of result.output) this.#socket.write(out);
    for (const event of result.events) {
      switch (event.kind) {
        case 'data':
          if (!this.push(event.data)) this.#socket.pause();
          break;
        case 'key-update':
          safeEmit(this.observer, this.#log, 'keyupdate', { generation: event.generation, requested: event.requested });
          break;
        case 'close-notify':
          safeEmit(this.observer, this.#log, 'closenotify');
          this.push(null);
          break;
        case 'alert':
          this.#log.info('peer sent a fatal TLS alert', { description: event.description });
          safeEmit(this.observer, this.#log, 'alert', { level: event.level, description: event.description });
          this.push(null);
          this.#socket.destroy();
          break;
      }
    }
  }

  /** A broken record: tell the peer with the alert it warrants, then end the connection. Never a throw out of a socket event. */
  #fail(err: unknown): void {
    if (err instanceof TlsRecordInvalidError) {
      this.#log.warn(err.message, { code: err.code });
      safeEmit(this.observer, this.#log, 'recordinvalid', err);
      const alert = this.#layer.fatalAlert(err.alert);
      if (alert && this.#socket.writable) this.#socket.end(alert);
    }
    this.destroy(err instanceof Error ? err : new Error(String(err)));
  }

  override _read(): void {
    this.#socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    let records: Buffer;
    try {
      records = this.#layer.sealApplicationData(chunk);
    } catch (err) {
      callback(err as Error);
      return;
    }
    this.#socket.write(records, callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this._write(Buffer.concat(chunks.map((c) => c.chunk)), 'binary', callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.#layer.writeClosed && this.#socket.writable) this.#socket.write(this.#layer.closeNotify());
    this.#socket.end();
    callback();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.#closed = true;
    this.#socket.off('data', this.#onData);
    this.#socket.off('end', this.#onEnd);
    this.#socket.off('close', this.#onSocketClose);
    // Keep a listener: a late socket error must not become an uncaught exception.
    this.#socket.off('error', this.#onSocketError);
    this.#socket.on('error', () => undefined);
    if (this.#socket.writableEnded && !this.#socket.destroyed) {
      // Our close_notify (or fatal alert) and FIN are on their way: let the peer read them first.
      const linger = setTimeout(() => this.#socket.destroy(), this.#lingerMs);
      linger.unref();
      this.#socket.once('close', () => clearTimeout(linger));
    } else {
      this.#socket.destroy();
    }
    safeEmit(this.observer, this.#log, 'close');
    callback(err);
  }

  /** Ends the session cleanly (close_notify, FIN), then releases the socket; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#layer.writeClosed && this.#socket.writable && !this.destroyed) {
      this.#socket.write(this.#layer.closeNotify());
      this.#socket.end();
    }
    this.destroy();
  }
}
