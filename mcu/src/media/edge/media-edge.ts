/**
 * The mediasoup media plane's process-wide part: one mediasoup worker per MCU process, started
 * once, and one router per room on it (room-edge.ts). Only used with media.plane = mediasoup.
 */
import { EventEmitter } from 'node:events';
import type { types as ms } from 'mediasoup';
import type { MediaConfig } from '../../core/config.ts';
import { safeEmit } from '../../core/events.ts';
import { createLogger } from '../../core/logger.ts';
import { createMediasoupWorker } from '../mediasoup-worker.ts';

/** What every room's router offers: Opus and VP8 (mediasoup adds rtx), the browsers' common codecs. */
export const EDGE_MEDIA_CODECS: ms.RtpCodecCapability[] = [
  { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
  { kind: 'video', mimeType: 'video/VP8', clockRate: 90000, parameters: { 'x-google-start-bitrate': 1000 } },
];

/** The address the room mixer's own transports listen on: it lives in this process's host. */
export const MIXER_LISTEN_IP = '127.0.0.1';

export type MediaEdgeState = 'idle' | 'starting' | 'running' | 'failed' | 'closed';

export type MediaEdgeEvents = {
  /** The worker process died: every room's media is gone until the MCU restarts. */
  'worker-died': [error: Error];
  close: [];
};

export class MediaEdge extends EventEmitter<MediaEdgeEvents> {
  readonly config: MediaConfig;
  readonly #log = createLogger('media-edge');
  #state: MediaEdgeState = 'idle';
  #worker: Promise<ms.Worker> | null = null;
  #running: ms.Worker | null = null;

  constructor(config: MediaConfig) {
    super();
    this.config = config;
  }

  get state(): MediaEdgeState {
    return this.#state;
  }

  /** The worker's pid once it runs (for /status and the benchmark's CPU reading). */
  get workerPid(): number | null {
    return this.#running?.pid ?? null;
  }

  /** Starts the worker (idempotent); rejects with MediasoupWorkerMissingError or MediasoupWorkerStartError. */
  start(): Promise<ms.Worker> {
    if (this.#state === 'closed') return Promise.reject(new Error('the media edge is closed'));
    this.#worker ??= this.#startWorker();
    return this.#worker;
  }

  async #startWorker(): Promise<ms.Worker> {
    this.#state = 'starting';
    try {
      const worker = await createMediasoupWorker({ logLevel: 'warn' });
      if (this.state === 'closed') {
        worker.close();
        throw new Error('the media edge closed while its worker started');
      }
      worker.on('died', (error) => {
        this.#state = 'failed';
        this.#log.error('mediasoup worker died', { pid: worker.pid, error: error.message });
        safeEmit(this, this.#log, 'worker-died', error);
      });
      this.#running = worker;
      this.#state = 'running';
      this.#log.info('mediasoup worker started', { pid: worker.pid, listenIp: this.config.listenIp });
      return worker;
    } catch (err) {
      if (this.state !== 'closed') this.#state = 'failed';
      this.#worker = null;
      throw err;
    }
  }

  /** A router for one room, on the process's worker. */
  async createRouter(room: string): Promise<ms.Router> {
    const worker = await this.start();
    return worker.createRouter({ mediaCodecs: EDGE_MEDIA_CODECS, appData: { room } });
  }

  /** Idempotent: closes the worker (and with it every router, transport, producer and consumer). */
  close(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#running?.close();
    this.#running = null;
    this.emit('close');
    this.removeAllListeners();
  }
}
