/**
 * /status and /metrics, for operators only: served by an admin listener of their own (loopback
 * by default, `admin.host`:`admin.port`), and on the public listener only to a request carrying
 * the admin token. With `admin.token` set, the admin listener asks for it too.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AdminListenError } from '../core/errors.ts';
import { safeEmit } from '../core/events.ts';
import { createLogger, type Logger } from '../core/logger.ts';
import { sendJson } from './http-routes.ts';

/** What an admin listener serves, read at each request. */
export interface AdminRoutes {
  /** The /status document. */
  status(): unknown;
  /** The /metrics text (Prometheus exposition format) and its content type. */
  metrics(): Promise<{ contentType: string; body: string }>;
}

/** The paths that are for operators only. */
export const ADMIN_PATHS: ReadonlySet<string> = new Set(['/status', '/metrics']);

/** How a request stands with the admin token. */
export type AdminAccess = 'granted' | 'no-token-configured' | 'no-credentials' | 'wrong-token';

/** Compares the request's `Authorization: Bearer <token>` with `token` in constant time. */
export function adminAccess(req: IncomingMessage, token: string | null): AdminAccess {
  if (token === null) return 'no-token-configured';
  const header = req.headers.authorization;
  const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) return 'no-credentials';
  // Digests first: equal lengths for timingSafeEqual, and no length leaked.
  const given = createHash('sha256').update(match[1]!).digest();
  const expected = createHash('sha256').update(token).digest();
  return timingSafeEqual(given, expected) ? 'granted' : 'wrong-token';
}

/**
 * Answers `path` if it is an admin path: served when `access` allows it, else 401 (a token is
 * configured and the request lacks it) or 404 (`public` listener without a token: not here).
 * Returns false for any other path, which the caller serves.
 */
export async function serveAdminPath(
  path: string,
  req: IncomingMessage,
  res: ServerResponse,
  routes: AdminRoutes,
  options: { token: string | null; listener: 'admin' | 'public' },
): Promise<boolean> {
  if (!ADMIN_PATHS.has(path)) return false;
  const access = adminAccess(req, options.token);
  if (access === 'no-token-configured' && options.listener === 'public') {
    sendJson(res, 404, { error: `${path} is served on the admin listener (admin.host, admin.port), or here with admin.token (MCU_ADMIN_TOKEN) set` });
    return true;
  }
  if (access === 'no-credentials' || access === 'wrong-token') {
    res.setHeader('www-authenticate', 'Bearer realm="mcu-admin"');
    sendJson(res, 401, { error: `${path} needs the header "Authorization: Bearer <admin.token>" (MCU_ADMIN_TOKEN)` });
    return true;
  }
  if (path === '/status') {
    sendJson(res, 200, routes.status());
  } else {
    const { contentType, body } = await routes.metrics();
    res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' });
    res.end(body);
  }
  return true;
}

export type AdminServerState = 'idle' | 'binding' | 'listening' | 'closed';

export type AdminServerEvents = {
  listening: [address: AddressInfo];
};

export interface AdminServerOptions {
  host: string;
  /** 0: any free port (see port). */
  port: number;
  /** Bearer token every request must carry; null: none asked (a loopback listener, see config.ts). */
  token: string | null;
  routes: AdminRoutes;
  /** Whose listener, on its log lines (`mcu`, `standby`). */
  owner: string;
}

/** The admin listener: GET /status and /metrics, nothing else. Lifecycle idle -> binding -> listening -> closed. */
export class AdminServer extends EventEmitter<AdminServerEvents> {
  readonly #opts: AdminServerOptions;
  readonly #server: HttpServer;
  readonly #log: Logger;
  #state: AdminServerState = 'idle';
  #closing: Promise<void> | null = null;

  constructor(opts: AdminServerOptions) {
    super();
    this.#opts = opts;
    this.#log = createLogger('admin', { owner: opts.owner });
    this.#server = createServer((req, res) => void this.#handle(req, res));
  }

  get state(): AdminServerState {
    return this.#state;
  }

  /** The bound port; null until listening (and after close). */
  get port(): number | null {
    const address = this.#server.address();
    return address !== null && typeof address === 'object' ? address.port : null;
  }

  /**
   * Binds `host`:`port`. A port still held (EADDRINUSE: a dead primary's kernel releasing it) is
   * retried every 20 ms for up to `retryMs`; then, or on any other error, rejects with it.
   */
  async listen(retryMs = 0): Promise<AddressInfo> {
    const { host, port } = this.#opts;
    if (this.#state !== 'idle') throw new AdminListenError(host, port, `the listener is ${this.#state}`);
    this.#state = 'binding';
    const deadline = performance.now() + retryMs;
    for (;;) {
      try {
        const address = await this.#bind();
        if (this.#state !== 'binding') {
          // close() came while binding.
          this.#server.close();
          throw new AdminListenError(host, port, 'closed while binding');
        }
        this.#state = 'listening';
        this.#log.info('admin listener up: /status, /metrics', { host: address.address, port: address.port, token: this.#opts.token !== null });
        safeEmit(this, this.#log, 'listening', address);
        return address;
      } catch (err) {
        if (err instanceof AdminListenError) throw err;
        const inUse = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
        if (!inUse || performance.now() >= deadline || this.#state !== 'binding') {
          if (this.#state === 'binding') this.#state = 'idle';
          throw new AdminListenError(host, port, inUse ? 'the port is in use (another MCU still holds it?)' : (err as Error).message, { cause: err });
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  #bind(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        this.#server.off('listening', onListening);
        reject(err);
      };
      const onListening = (): void => {
        this.#server.off('error', onError);
        resolve(this.#server.address() as AddressInfo);
      };
      this.#server.once('error', onError);
      this.#server.once('listening', onListening);
      this.#server.listen(this.#opts.port, this.#opts.host);
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') sendJson(res, 405, { error: 'only GET is served here' });
      else if (!(await serveAdminPath(path, req, res, this.#opts.routes, { token: this.#opts.token, listener: 'admin' }))) {
        sendJson(res, 404, { error: `nothing at ${path}: the admin listener serves /status and /metrics` });
      }
    } catch (err) {
      this.#log.error('admin request failed', { path, error: (err as Error).stack });
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.end();
    }
  }

  /** Stops listening and drops open connections. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      const wasListening = this.#state === 'listening';
      this.#state = 'closed';
      if (!wasListening) return resolve();
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
    return this.#closing;
  }
}
