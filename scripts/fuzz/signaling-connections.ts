/**
 * The fuzzer's connections to the MCU's socket.io endpoint, each already past the engine.io
 * handshake and connected to the main namespace (so what follows reaches the MCU's handlers):
 * - RawSignalingConnection: a TCP socket doing the WebSocket upgrade itself, to write any bytes
 *   (malformed frames);
 * - PacketSignalingConnection: a `ws` client, to send well-framed but malformed engine.io and
 *   socket.io packets.
 * After the fuzzed input, settle() asks a question every live connection must answer (a connect
 * to a namespace that does not exist) and resolves with the answer or with the server's drop.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { connect, type Socket } from 'node:net';
import WebSocket from 'ws';
import { McuError } from '../../mcu/src/core/errors.ts';
import { WsFrameReader, clientFrame } from './websocket-frames.ts';

/** How a connection came out of a fuzz case. */
export type SettleOutcome = 'answered' | 'dropped';

const SENTINEL_NAMESPACE = '/fuzz-sentinel';
const SENTINEL_REQUEST = `40${SENTINEL_NAMESPACE},`;
const SENTINEL_REPLY = `44${SENTINEL_NAMESPACE},`;

/** A fuzz connection that did not reach the state a case starts from, or did not settle in time. */
export class FuzzConnectionError extends McuError {
  constructor(message: string) {
    super('INTERNAL', `fuzz connection: ${message}`);
  }
}

type ConnectionEvents = { text: [packet: string]; closed: [] };

abstract class SignalingConnection extends EventEmitter<ConnectionEvents> {
  /** engine.io session id (the `sid` of the open packet). */
  engineSid = '';
  /** socket.io socket id in the main namespace. */
  socketId = '';
  readonly #inbox: string[] = [];
  #closed = false;

  get closed(): boolean {
    return this.#closed;
  }

  protected markClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.emit('closed');
  }

  protected abstract sendTextPacket(packet: string): void;
  abstract close(): void;

  /** Waits for the open packet, connects to the main namespace. */
  protected async handshake(timeoutMs: number): Promise<void> {
    const open = await this.nextText((p) => p.startsWith('0'), timeoutMs);
    if (open === null) throw new FuzzConnectionError('closed before the engine.io open packet');
    this.engineSid = (JSON.parse(open.slice(1)) as { sid: string }).sid;
    const connected = this.nextText((p) => p.startsWith('40'), timeoutMs);
    this.sendTextPacket('40');
    const ack = await connected;
    if (ack === null) throw new FuzzConnectionError('closed before the namespace connect was acknowledged');
    this.socketId = (JSON.parse(ack.slice(2)) as { sid: string }).sid;
  }

  /** Called for every text packet received: kept until a nextText() takes it, and announced. */
  protected receive(packet: string): void {
    this.#inbox.push(packet);
    if (this.#inbox.length > 200) this.#inbox.shift();
    this.emit('text', packet);
  }

  /** The first text packet passing `predicate`, received already or to come (and taken); null once the connection closed. */
  nextText(predicate: (packet: string) => boolean, timeoutMs: number): Promise<string | null> {
    const i = this.#inbox.findIndex(predicate);
    if (i >= 0) return Promise.resolve(this.#inbox.splice(i, 1)[0]!);
    if (this.#closed) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const done = (value: string | null): void => {
        clearTimeout(timer);
        this.off('text', onText);
        this.off('closed', onClosed);
        resolve(value);
      };
      const onText = (p: string): void => {
        if (!predicate(p)) return;
        this.#inbox.splice(this.#inbox.lastIndexOf(p), 1);
        done(p);
      };
      const onClosed = (): void => done(null);
      const timer = setTimeout(() => {
        this.off('text', onText);
        this.off('closed', onClosed);
        reject(new FuzzConnectionError(`no answer and no drop within ${timeoutMs} ms (engine sid ${this.engineSid})`));
      }, timeoutMs);
      this.on('text', onText);
      this.on('closed', onClosed);
    });
  }

  /**
   * After the fuzzed input: the server must either still answer (a connect to an unknown
   * namespace gets its CONNECT_ERROR) or have dropped the connection. A server that does
   * neither within `timeoutMs` hangs on the input: FuzzConnectionError.
   */
  async settle(timeoutMs: number): Promise<SettleOutcome> {
    if (this.#closed) return 'dropped';
    const reply = this.nextText((p) => p.startsWith(SENTINEL_REPLY), timeoutMs);
    try {
      this.sendTextPacket(SENTINEL_REQUEST);
    } catch {
      // Already going down: the close event tells.
    }
    return (await reply) === null ? 'dropped' : 'answered';
  }

  /** Resolves once the connection is closed (by either side). */
  async whenClosed(timeoutMs: number): Promise<void> {
    if (this.#closed) return;
    const closed = once(this, 'closed', { signal: AbortSignal.timeout(timeoutMs) });
    await closed.catch(() => {
      throw new FuzzConnectionError(`not closed within ${timeoutMs} ms (engine sid ${this.engineSid})`);
    });
  }
}

/** A TCP connection that speaks WebSocket by hand: `write` sends any bytes at all. */
export class RawSignalingConnection extends SignalingConnection {
  readonly #socket: Socket;
  readonly #reader = new WsFrameReader();

  private constructor(socket: Socket) {
    super();
    this.#socket = socket;
  }

  static async open(port: number, timeoutMs = 5000): Promise<RawSignalingConnection> {
    const socket = connect({ host: '127.0.0.1', port, noDelay: true });
    const conn = new RawSignalingConnection(socket);
    socket.on('error', () => conn.markClosed());
    socket.on('close', () => conn.markClosed());
    let head = Buffer.alloc(0);
    let upgraded = false;
    const upgradedPromise = new Promise<void>((resolve, reject) => {
      socket.on('data', (chunk: Buffer) => {
        if (upgraded) return conn.#onFrames(chunk);
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const status = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
        if (!status.startsWith('HTTP/1.1 101')) return reject(new FuzzConnectionError(`upgrade refused: ${status}`));
        upgraded = true;
        resolve();
        conn.#onFrames(head.subarray(end + 4));
      });
      socket.once('close', () => reject(new FuzzConnectionError('closed during the WebSocket upgrade')));
    });
    socket.write(
      [
        'GET /socket.io/?EIO=4&transport=websocket HTTP/1.1',
        `Host: 127.0.0.1:${port}`,
        'Upgrade: websocket',
        'Connection: Upgrade',
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
        'Sec-WebSocket-Version: 13',
        '',
        '',
      ].join('\r\n'),
    );
    try {
      await upgradedPromise;
      await conn.handshake(timeoutMs);
    } catch (err) {
      conn.close();
      throw err;
    }
    return conn;
  }

  #onFrames(chunk: Buffer): void {
    if (chunk.length === 0) return;
    for (const frame of this.#reader.push(chunk)) {
      if (frame.opcode === 1) this.receive(frame.payload.toString('utf8'));
      if (frame.opcode === 8) {
        // The server closes the WebSocket: answer as a client does, and the TCP connection ends.
        this.write(clientFrame(8, frame.payload.subarray(0, 2)));
        this.#socket.end();
        this.markClosed();
      }
    }
  }

  protected sendTextPacket(packet: string): void {
    this.write(clientFrame(1, packet));
  }

  write(bytes: Uint8Array): void {
    if (!this.closed && this.#socket.writable) this.#socket.write(bytes);
  }

  /** Half-closes: the server sees the end of the stream. */
  end(): void {
    if (!this.closed) this.#socket.end();
  }

  close(): void {
    this.#socket.destroy();
    this.markClosed();
  }
}

/** A `ws` client: every frame well-formed, the packets inside them fuzzed. */
export class PacketSignalingConnection extends SignalingConnection {
  readonly #ws: WebSocket;

  private constructor(ws: WebSocket) {
    super();
    this.#ws = ws;
  }

  static async open(port: number, timeoutMs = 5000): Promise<PacketSignalingConnection> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`, { perMessageDeflate: false });
    const conn = new PacketSignalingConnection(ws);
    ws.on('message', (data, isBinary) => {
      if (!isBinary) conn.receive(data.toString());
    });
    ws.on('error', () => conn.markClosed());
    ws.on('close', () => conn.markClosed());
    try {
      await conn.handshake(timeoutMs);
    } catch (err) {
      conn.close();
      throw err;
    }
    return conn;
  }

  protected sendTextPacket(packet: string): void {
    this.send(packet);
  }

  /** One WebSocket message: text for a string, binary for bytes. */
  send(data: string | Uint8Array): void {
    if (!this.closed && this.#ws.readyState === WebSocket.OPEN) this.#ws.send(data);
  }

  close(): void {
    this.#ws.terminate();
    this.markClosed();
  }
}
