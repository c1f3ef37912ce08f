import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Conference } from './conference.ts';
import type { McuConfig } from './config.ts';
import { createLogger, setLogRole } from './logger.ts';
import { McuMetrics } from './metrics.ts';
import { sendJson, serveStatic } from './http-routes.ts';
import { SessionState } from './session/session-state.ts';
import { SignalingServer } from './signaling/signaling-server.ts';

/** The life of an MCU process. Only a `primary` serves calls. */
export type McuRole = 'starting' | 'standby' | 'promoting' | 'primary' | 'stopping' | 'stopped';

export interface McuStatus {
  role: McuRole;
  pid: number;
  epoch: number;
  uptimeSeconds: number;
  port: number;
  rooms: Array<{ name: string; participants: number; connected: number }>;
  participants: number;
}

export interface McuOptions {
  config: McuConfig;
  /** Starting epoch (a promoted standby starts above the dead primary's). Default 1. */
  epoch?: number;
  /** Starting session state (a promoted standby starts from its checkpoint). */
  state?: SessionState;
}

/**
 * One MCU process: the demo page and /status over HTTP, socket.io signaling, and the
 * conference (rooms, peer connections, mixers). Close order on shutdown: stop
 * accepting, close the rooms, then signaling, then HTTP.
 */
export class Mcu {
  readonly config: McuConfig;
  readonly state: SessionState;
  readonly conference: Conference;
  readonly metrics = new McuMetrics();
  readonly http: HttpServer;
  readonly signaling: SignalingServer;
  readonly #log = createLogger('mcu');
  readonly #startedAt = Date.now();
  #role: McuRole = 'starting';
  #epoch: number;
  #closing: Promise<void> | null = null;

  constructor(opts: McuOptions) {
    this.config = opts.config;
    this.#epoch = opts.epoch ?? 1;
    this.state = opts.state ?? new SessionState();
    this.conference = new Conference(this.config, this.state);
    this.http = createServer((req, res) => {
      void this.#route(req.method ?? 'GET', new URL(req.url ?? '/', 'http://localhost').pathname, res);
    });
    this.signaling = new SignalingServer(this.http, this.conference, this.config, {
      epoch: () => this.#epoch,
      accepting: () => this.#role === 'primary',
      role: () => this.#role,
    });
  }

  get role(): McuRole {
    return this.#role;
  }

  /** The one place the role changes: every transition is logged with its timestamp. */
  protected setRole(role: McuRole): void {
    if (role === this.#role) return;
    this.#log.info('role change', { from: this.#role, to: role, epoch: this.#epoch });
    this.#role = role;
    setLogRole(role);
  }

  get epoch(): number {
    return this.#epoch;
  }

  protected set epoch(value: number) {
    this.#epoch = value;
  }

  /** The bound HTTP/signaling port (useful with port 0). */
  get port(): number {
    const address = this.http.address() as AddressInfo | null;
    return address?.port ?? this.config.port;
  }

  /** Binds the HTTP/signaling port and starts serving as the primary. */
  async start(): Promise<void> {
    await this.listen();
    this.setRole('primary');
    this.#log.info('MCU serving', { port: this.port, host: this.config.host, epoch: this.#epoch });
  }

  protected listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.http.once('error', onError);
      this.http.listen(this.config.port, this.config.host, () => {
        this.http.off('error', onError);
        resolve();
      });
    });
  }

  status(): McuStatus {
    const conference = this.conference.status();
    return {
      role: this.#role,
      pid: process.pid,
      epoch: this.#epoch,
      uptimeSeconds: Math.round((Date.now() - this.#startedAt) / 100) / 10,
      port: this.port,
      rooms: conference.rooms,
      participants: conference.participants,
    };
  }

  async #route(method: string, path: string, res: import('node:http').ServerResponse): Promise<void> {
    try {
      if (method !== 'GET' && method !== 'HEAD') {
        sendJson(res, 405, { error: 'only GET is served here' });
      } else if (path === '/status') {
        sendJson(res, 200, this.status());
      } else if (path === '/metrics') {
        this.#updateGauges();
        res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
        res.end(await this.metrics.registry.metrics());
      } else if (!(await serveStatic(path, res))) {
        sendJson(res, 404, { error: `nothing at ${path}` });
      }
    } catch (err) {
      this.#log.error('HTTP handler failed', { path, error: (err as Error).stack });
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.end();
    }
  }

  #updateGauges(): void {
    const status = this.conference.status();
    this.metrics.rooms.set(status.rooms.length);
    this.metrics.participants.set(status.participants);
    let underruns = 0;
    let frames = 0;
    for (const room of this.conference.rooms()) {
      const stats = room.mixer.stats();
      underruns += stats.inputUnderruns;
      frames += stats.videoFrames;
    }
    this.metrics.mixerAudioUnderruns.set(underruns);
    this.metrics.mixerVideoFrames.set(frames);
  }

  /** Deliberate, ordered shutdown. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.setRole('stopping');
    this.conference.close('shutdown');
    await this.signaling.close();
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
    this.setRole('stopped');
  }
}
