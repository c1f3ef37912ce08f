/**
 * A TCP relay between a TLS client and a real TLS server that records the raw bytes both ways:
 * the stand-in for the standby's capture (client input) and output log (server output).
 * `takeOver()` drops the server side and hands the client's socket, with everything recorded,
 * to the test, as a TCP_REPAIR rebuild would hand the standby the connection.
 */
import { EventEmitter, once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface RelayedConnection {
  /** The client's socket (the relay's accepted end). */
  client: Socket;
  /** Client to server bytes as they arrived (forwarded or held). */
  fromClient: Buffer[];
  /** Server to client bytes (all forwarded). */
  fromServer: Buffer[];
  /** Client bytes the server was given (the rest is held: in flight at the takeover). */
  forwardedToServer: number;
}

export interface TakenOver {
  client: Socket;
  clientBytes: Buffer;
  serverBytes: Buffer;
  /** Offset in clientBytes up to which the server received input. */
  forwardedToServer: number;
}

type RelayEvents = { 'client-bytes': [total: number]; 'server-bytes': [total: number]; connection: [] };

export class RecordingRelay extends EventEmitter<RelayEvents> {
  readonly #server: Server;
  readonly #targetPort: number;
  #conn: (RelayedConnection & { upstream: Socket; clientTotal: number; serverTotal: number }) | null = null;
  /** While true, client bytes are recorded but not forwarded (a message in flight at the crash). */
  holdClientInput = false;
  #closed = false;

  constructor(targetPort: number) {
    super();
    this.#targetPort = targetPort;
    this.#server = createServer((client) => this.#accept(client));
  }

  async listen(): Promise<number> {
    this.#server.listen(0, '127.0.0.1');
    await once(this.#server, 'listening');
    return (this.#server.address() as { port: number }).port;
  }

  get clientBytes(): number {
    return this.#conn?.clientTotal ?? 0;
  }
  get serverBytes(): number {
    return this.#conn?.serverTotal ?? 0;
  }

  #accept(client: Socket): void {
    const upstream = connect(this.#targetPort, '127.0.0.1');
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const conn = { client, upstream, fromClient: [] as Buffer[], fromServer: [] as Buffer[], forwardedToServer: 0, clientTotal: 0, serverTotal: 0 };
    this.#conn = conn;
    client.on('data', (chunk: Buffer) => {
      conn.fromClient.push(chunk);
      conn.clientTotal += chunk.length;
      if (!this.holdClientInput) {
        upstream.write(chunk);
        conn.forwardedToServer = conn.clientTotal;
      }
      this.emit('client-bytes', conn.clientTotal);
    });
    upstream.on('data', (chunk: Buffer) => {
      conn.fromServer.push(chunk);
      conn.serverTotal += chunk.length;
      client.write(chunk);
      this.emit('server-bytes', conn.serverTotal);
    });
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
    upstream.on('close', () => {
      if (this.#conn === conn) client.destroy();
    });
    client.on('close', () => upstream.destroy());
    this.emit('connection');
  }

  /** Waits until the client has sent more than `total` bytes in all. */
  async clientBytesAbove(total: number): Promise<void> {
    while (this.clientBytes <= total) await once(this, 'client-bytes');
  }

  /** Stops relaying: the server side is dropped, the client's socket and the recording are the caller's. */
  takeOver(): TakenOver {
    const conn = this.#conn;
    if (!conn) throw new Error('no relayed connection');
    this.#conn = null;
    conn.client.removeAllListeners('data');
    conn.client.removeAllListeners('close');
    conn.client.pause();
    conn.upstream.removeAllListeners('data');
    conn.upstream.destroy();
    return {
      client: conn.client,
      clientBytes: Buffer.concat(conn.fromClient),
      serverBytes: Buffer.concat(conn.fromServer),
      forwardedToServer: conn.forwardedToServer,
    };
  }

  /** Closes the listener and any relayed connection; idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#conn?.client.destroy();
    this.#conn?.upstream.destroy();
    this.#conn = null;
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** Collects a stream's text and resolves when a line matching `pattern` arrives. */
export class LineReader {
  text = '';
  readonly #waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = [];
  readonly #seen: string[] = [];

  constructor(stream: NodeJS.ReadableStream) {
    stream.on('data', (chunk: Buffer | string) => {
      this.text += chunk.toString();
      const lines = this.text.split('\n');
      this.text = lines.pop() ?? '';
      for (const line of lines) {
        this.#seen.push(line);
        for (let i = this.#waiters.length - 1; i >= 0; i--) {
          const w = this.#waiters[i]!;
          if (w.pattern.test(line)) {
            this.#waiters.splice(i, 1);
            w.resolve(line);
          }
        }
      }
    });
  }

  get lines(): readonly string[] {
    return this.#seen;
  }

  waitFor(pattern: RegExp, timeoutMs = 10_000): Promise<string> {
    const found = this.#seen.find((l) => pattern.test(l));
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms; lines: ${JSON.stringify(this.#seen.slice(-10))}`)), timeoutMs);
      timer.unref();
      this.#waiters.push({ pattern, resolve: (line) => (clearTimeout(timer), resolve(line)) });
    });
  }
}
