/**
 * The primary's side of connection-level takeover, glued from its parts (design notes
 * sections 3, 4 and 10): the TransportAcceptor accepts every signaling connection (ISNs and
 * options read before a byte moves), the OutputCommitter commits its output to the standby
 * before the kernel gets it, and the SessionRecorder checkpoints its socket.io session.
 *
 * Session records go to the standby as 'session' blobs. A record is only useful to the standby
 * when it matches the byte positions the standby rebuilds the connection at: the input the
 * application consumed and the output the client may have (between what the dead primary was
 * seen sending and the output log's end). So a record is taken at a clean point (frame
 * boundary, decoder idle, engine.io's buffer flushed to the socket) right after every input
 * frame and every write of the application: in the same event-loop turn, so the record's blob
 * leaves before the acknowledgement of the output it covers can be processed, hence before
 * those bytes reach the kernel (output commit). The consumed offset is reported right after
 * the record. The standby keeps a few recent records per connection and picks the one that
 * fits at takeover time (see mcu/src/takeover/standby.ts).
 */
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { AddressInfo, Socket as NetSocket } from 'node:net';
import { createLogger, type Logger } from '../core/logger.ts';
import type { ReplicationServer } from '../replication/replication-server.ts';
import { TakeoverError } from './errors.ts';
import { OutputCommitter } from './transport/output-commit.ts';
import type { SessionRecord } from './session/session-record.ts';
import { SessionRecorder } from './session/session-recorder.ts';
import { TransportAcceptor } from './transport/transport-acceptor.ts';
import type { TransportRecord } from './transport/transport-record.ts';
import { BlobKind, SnapshotExtraKey, type SessionBlob } from '../wire/index.ts';

export interface TakeoverPrimaryOptions {
  httpServer: HttpServer;
  /** The socket.io server (created with takeoverServerOptions()). */
  io: ConstructorParameters<typeof SessionRecorder>[0];
  /** Service address and port. */
  host: string;
  port: number;
  /** How long to wait before retrying a record that found the connection busy (default 1 ms). */
  retryMs?: number;
}

export interface TakeoverPrimaryStats {
  recordsSent: number;
  recordRetries: number;
  unrecordable: number;
}

/** What #pingClients uses of an engine.io Socket. */
interface EngineSocketInternals {
  readyState: string;
  protocol: number;
  sendPacket?: (type: 'ping') => void;
}

interface ConnTrack {
  connId: string;
  engineId: string | null;
  /** A record attempt is scheduled. */
  scheduled: boolean;
  timer: NodeJS.Timeout | null;
  lastSent: { consumed: number; written: number } | null;
  latest: SessionBlob | null;
  socket: NetSocket;
}

/**
 * One per primary MCU in takeover mode. Lifecycle: created with the HTTP and socket.io servers,
 * listen() instead of httpServer.listen(), setReplication() once the replication server is up,
 * close() on shutdown (idempotent).
 */
export class TakeoverPrimary {
  readonly acceptor: TransportAcceptor;
  readonly committer: OutputCommitter;
  readonly recorder: SessionRecorder;
  readonly #io: TakeoverPrimaryOptions['io'];
  readonly #log: Logger = createLogger('takeover-primary');
  readonly #retryMs: number;
  readonly #byConn = new Map<string, ConnTrack>();
  readonly #connOfSocket = new WeakMap<NetSocket, string>();
  readonly #byEngine = new Map<string, ConnTrack>();
  #replication: ReplicationServer | null = null;
  #unhookReplication: (() => void) | null = null;
  #closed = false;
  #stats: TakeoverPrimaryStats = { recordsSent: 0, recordRetries: 0, unrecordable: 0 };

  constructor(options: TakeoverPrimaryOptions) {
    this.#io = options.io;
    this.#retryMs = options.retryMs ?? 1;
    this.recorder = new SessionRecorder(options.io);
    this.committer = new OutputCommitter({ replication: null });
    this.acceptor = new TransportAcceptor({ httpServer: options.httpServer, host: options.host, port: options.port });
    this.acceptor.on('connection', (record, socket, mode) => {
      if (mode === 'takeover') this.#protect(record, socket, 0);
    });
    this.acceptor.on('adopted', (record, socket) => this.#protect(record, socket, record.committedOutput - (socket.bytesWritten ?? 0)));
    this.acceptor.on('closed', (connId) => {
      const t = this.#byConn.get(connId);
      if (!t) return;
      if (t.timer) clearTimeout(t.timer);
      this.#byConn.delete(connId);
      if (t.engineId) this.#byEngine.delete(t.engineId);
    });
    this.recorder.on('input', (engineId) => this.#schedule(engineId));
    this.recorder.on('connection', (engineId) => this.#schedule(engineId));
    this.recorder.on('unrecordable', (engineId, reason) => {
      this.#stats.unrecordable++;
      const t = this.#byEngine.get(engineId);
      if (t) this.committer.requireSessionRecord(t.connId, false);
      this.#log.warn(`connection ${engineId} cannot be taken over: ${reason}`);
    });
    this.committer.on('committed', (info) => {
      const t = this.#byConn.get(info.connId);
      if (t?.engineId) this.#schedule(t.engineId);
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * A connection this process took over (rebuilt, its session about to be re-attached): from
   * now on it is protected like an accepted one. `record.committedOutput` is the output offset
   * at the socket's current bytesWritten, `record.consumedInput` the session's consumed offset.
   */
  adopt(record: TransportRecord, socket: NetSocket): void {
    this.acceptor.adopt(record, socket);
  }

  /** Output commit and session records for one takeover-mode connection. */
  #protect(record: TransportRecord, socket: NetSocket, outputBase: number): void {
    this.committer.attach(record, socket, outputBase);
    this.#connOfSocket.set(socket, record.connId);
    // Every write of the application (ws frames, HTTP) schedules a record after it.
    const write = socket.write;
    socket.write = ((...args: Parameters<NetSocket['write']>) => {
      const result = (write as (...a: unknown[]) => boolean).apply(socket, args);
      const t = this.#byConn.get(record.connId);
      if (t?.engineId) this.#schedule(t.engineId);
      return result;
    }) as NetSocket['write'];
    this.#byConn.set(record.connId, { connId: record.connId, engineId: null, scheduled: false, timer: null, lastSent: null, latest: null, socket });
  }

  stats(): TakeoverPrimaryStats & { acceptor: ReturnType<TransportAcceptor['stats']>; commit: ReturnType<OutputCommitter['stats']> } {
    return { ...this.#stats, acceptor: this.acceptor.stats(), commit: this.committer.stats() };
  }

  listen(): Promise<AddressInfo> {
    return this.acceptor.listen();
  }

  /** Output commit and session records go to this server's standby from now on. */
  setReplication(server: ReplicationServer | null): void {
    this.#unhookReplication?.();
    this.#unhookReplication = null;
    this.#replication = server;
    this.committer.setReplication(server);
    if (!server) return;
    const removeExtra = server.addSnapshotExtra(() => ({ [SnapshotExtraKey.Sessions]: this.#sessionsExtra() }));
    // A standby that just synced has the snapshot's records; fresh ones follow at the next clean point.
    const onSynced = (): void => {
      for (const t of this.#byConn.values()) {
        t.lastSent = null;
        if (t.engineId) this.#schedule(t.engineId);
      }
      this.#pingClients();
    };
    server.on('standby-synced', onSynced);
    this.#unhookReplication = () => {
      removeExtra();
      server.off('standby-synced', onSynced);
    };
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    for (const t of this.#byConn.values()) if (t.timer) clearTimeout(t.timer);
    this.#unhookReplication?.();
    this.recorder.close();
    this.committer.close();
    return this.acceptor.close('shutting down');
  }

  #sessionsExtra(): SessionBlob[] {
    const out: SessionBlob[] = [];
    for (const t of this.#byConn.values()) if (t.latest) out.push(t.latest);
    return out;
  }

  /**
   * A standby that synced while connections were open learns each one's TCP state only from its
   * capture: it can take a connection over only once it captured a segment of ours and the
   * client's ACK of it (repair-plan.ts, `incomplete-capture`). An idle client sends nothing for
   * up to engine.io's ping interval (25 s), and a failover meanwhile would drop its connection.
   * So each client is pinged now: the ping, the client's pong and the ACKs of both complete the
   * capture within a round trip. An unsolicited pong only restarts engine.io's ping interval.
   */
  #pingClients(): void {
    const clients = (this.#io as unknown as { engine: { clients: Record<string, EngineSocketInternals | undefined> } }).engine.clients;
    let pinged = 0;
    for (const t of this.#byConn.values()) {
      const client = t.engineId ? clients[t.engineId] : undefined;
      // sendPacket is engine.io's own (private in its types); protocol 3 clients ping the server instead.
      if (!client || client.readyState !== 'open' || client.protocol === 3 || typeof client.sendPacket !== 'function') continue;
      client.sendPacket('ping');
      pinged++;
    }
    if (pinged > 0) this.#log.info(`pinged ${pinged} client(s) so the new standby captures each connection's state`);
  }

  /** The connection id of an engine.io connection (via its TCP socket), null for one the acceptor did not take. */
  #track(engineId: string): ConnTrack | null {
    const known = this.#byEngine.get(engineId);
    if (known) return known;
    const clients = (this.#io as unknown as { engine: { clients: Record<string, { request?: IncomingMessage } | undefined> } }).engine.clients;
    const socket = clients[engineId]?.request?.socket as NetSocket | undefined;
    const connId = socket ? this.#connOfSocket.get(socket) : undefined;
    const t = connId ? this.#byConn.get(connId) : undefined;
    if (!t) return null;
    t.engineId = engineId;
    this.#byEngine.set(engineId, t);
    // From its first record on, this connection's output waits for the record covering it.
    this.committer.requireSessionRecord(t.connId, true);
    return t;
  }

  #schedule(engineId: string): void {
    if (this.#closed) return;
    const t = this.#track(engineId);
    if (!t || t.scheduled) return;
    t.scheduled = true;
    // After socket.io dispatched what was just read (the recorder's 'input' fires before dispatch).
    setImmediate(() => this.#tryRecord(t));
  }

  #tryRecord(t: ConnTrack): void {
    t.scheduled = false;
    t.timer = null;
    if (this.#closed || !t.engineId || !this.#byConn.has(t.connId)) return;
    let record: SessionRecord;
    let queuedOutput: Buffer;
    try {
      ({ record, queuedOutput } = this.recorder.recordAhead(t.engineId));
    } catch (err) {
      if (err instanceof TakeoverError && err.code === 'TAKEOVER_NOT_QUIESCENT') {
        // Busy (mid-frame, a commit in flight...): try again shortly; a commit or input also reschedules.
        this.#stats.recordRetries++;
        t.scheduled = true;
        t.timer = setTimeout(() => this.#tryRecord(t), this.#retryMs);
        t.timer.unref();
        return;
      }
      if (!(err instanceof TakeoverError) || err.code !== 'TAKEOVER_UNKNOWN_CONNECTION') {
        this.#log.warn(`session of connection ${t.connId} not recorded: ${(err as Error).message}`);
      }
      return;
    }
    const { consumed, written } = record.bytes;
    const inSocket = written - queuedOutput.length;
    const logged = this.committer.connection(t.connId)?.offset ?? inSocket;
    const buffered = inSocket > logged ? bufferedOutput(t.socket, inSocket - logged) : Buffer.alloc(0);
    const tail = buffered === null ? null : Buffer.concat([buffered, queuedOutput]);
    if (tail === null) {
      // The socket's buffer does not hold exactly the bytes between the log and the record: try later.
      this.#stats.recordRetries++;
      t.scheduled = true;
      t.timer = setTimeout(() => this.#tryRecord(t), this.#retryMs);
      t.timer.unref();
      return;
    }
    const blob: SessionBlob = tail.length > 0 ? { connId: t.connId, record, outputTail: tail.toString('base64') } : { connId: t.connId, record };
    t.latest = blob;
    if (t.lastSent && t.lastSent.consumed === consumed && t.lastSent.written === written) return;
    const seq = this.#replication?.sendBlob(BlobKind.Session, blob);
    if (seq != null) {
      this.#stats.recordsSent++;
      t.lastSent = { consumed, written };
      this.committer.noteSessionRecord(t.connId, written, seq);
    }
    // After the record: the standby applies this offset only once its log reaches `written`.
    this.committer.setConsumedInput(t.connId, consumed);
  }
}

/** The last `bytes` bytes the socket holds in its write buffer, or null if it holds a different amount. */
function bufferedOutput(socket: NetSocket, bytes: number): Buffer | null {
  const pieces: Buffer[] = [];
  let total = 0;
  // Writable's buffered writes (a public getter Node's typings omit).
  const buffer = (socket as unknown as { writableBuffer?: ReadonlyArray<{ chunk: unknown; encoding: BufferEncoding | 'buffer' }> }).writableBuffer ?? [];
  for (const entry of buffer) {
    const { chunk, encoding } = entry;
    const piece = Buffer.isBuffer(chunk)
      ? chunk
      : typeof chunk === 'string'
        ? Buffer.from(chunk, encoding === 'buffer' ? 'utf8' : encoding)
        : chunk instanceof Uint8Array
          ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
          : null;
    if (!piece) return null;
    pieces.push(piece);
    total += piece.length;
  }
  return total === bytes ? Buffer.concat(pieces, total) : null;
}
