/**
 * The socket.io adapter that lets a process adopt sessions another process started.
 *
 * It is the plain in-memory adapter (events carry no offsets, nothing is buffered for
 * replay) plus one extension point: `restoreSession` hands socket.io the session of a
 * connection being re-attached, staged by the reattacher with a one-time secret. Normal
 * clients see exactly the bytes they would see without connection state recovery: the
 * private session id (pid) socket.io would add to every CONNECT reply is withheld.
 */
import { randomBytes } from 'node:crypto';
import { Adapter, type Session } from 'socket.io-adapter';
import type { SioNamespaceInternals, SioSocketInternals } from './internals.ts';

/**
 * Server options connection takeover needs, to spread into `new Server(http, {...})`
 * next to `transports: ['websocket'], allowUpgrades: false, perMessageDeflate: false`.
 */
export function takeoverServerOptions(): {
  connectionStateRecovery: { maxDisconnectionDuration: number; skipMiddlewares: true };
  adapter: typeof TakeoverAdapter;
} {
  return {
    // Enables socket.io's restore path (Namespace#_createSocket asks the adapter); nothing is kept
    // after a disconnect (persistSession does nothing), so the duration is moot.
    connectionStateRecovery: { maxDisconnectionDuration: 0, skipMiddlewares: true },
    adapter: TakeoverAdapter,
  };
}

/** A session staged for re-attachment: socket.io restores it when the synthetic CONNECT arrives. */
export interface StagedSession {
  session: Session;
  /** The one-time secret the synthetic CONNECT carries as its offset. */
  offset: string;
  /** Runs on the restored socket before any application listener sees it. */
  onConnect: (socket: SioSocketInternals) => void;
}

export class TakeoverAdapter extends Adapter {
  readonly #byPid = new Map<string, StagedSession>();
  readonly #bySocketId = new Map<string, StagedSession>();

  constructor(nsp: unknown) {
    super(nsp);
    const namespace = nsp as SioNamespaceInternals;
    // First middleware of the namespace: a new socket's CONNECT reply carries no pid, as without
    // connection state recovery. Adopted sockets skip middlewares (skipMiddlewares: true).
    namespace.use((socket, next) => {
      if (!socket.recovered) socket.pid = undefined;
      next();
    });
    // Runs before the application's 'connect'/'connection' listeners (registered later).
    namespace.prependListener('connect', (socket: SioSocketInternals) => this.#onConnect(socket));
  }

  /** Nothing outlives a connection here: the takeover record carries the session instead. */
  override persistSession(): void {}

  override restoreSession(pid: string, offset: string): Promise<Session> {
    const staged = this.#byPid.get(pid);
    if (!staged || staged.offset !== offset) {
      // An ordinary client reconnecting with a recovery offer, or a forged one: start afresh.
      return Promise.resolve(null as unknown as Session);
    }
    this.#byPid.delete(pid);
    return Promise.resolve(staged.session);
  }

  /** Stages a session; returns the offset the synthetic CONNECT must carry. */
  stage(session: Session, onConnect: (socket: SioSocketInternals) => void): string {
    const offset = randomBytes(18).toString('base64url');
    const staged: StagedSession = { session, offset, onConnect };
    this.#byPid.set(session.pid, staged);
    this.#bySocketId.set(session.sid, staged);
    return offset;
  }

  /** Forgets a staged session (re-attachment failed or finished). */
  unstage(session: Session): void {
    if (this.#byPid.get(session.pid)?.session === session) this.#byPid.delete(session.pid);
    if (this.#bySocketId.get(session.sid)?.session === session) this.#bySocketId.delete(session.sid);
  }

  /** Sessions staged and not yet connected (for leak checks). */
  get stagedCount(): number {
    return this.#bySocketId.size;
  }

  #onConnect(socket: SioSocketInternals): void {
    if (!socket.recovered) return;
    const staged = this.#bySocketId.get(socket.id);
    if (!staged) return;
    this.#bySocketId.delete(socket.id);
    staged.onConnect(socket);
  }
}
