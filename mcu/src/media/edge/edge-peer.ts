/**
 * One participant on its room's router (mediasoup plane): a send transport carrying the page's
 * audio and video producers, and a receive transport carrying its consumers of the room's grid
 * and of its own N-1 mix. Serves the page's `edge-*` requests; what the page produces goes to the
 * room mixer through RoomEdge.
 */
import { EventEmitter } from 'node:events';
import type { types as ms } from 'mediasoup';
import { EdgeRequestFailedError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type {
  EdgeConsumerParams,
  EdgeDirection,
  EdgeDtlsParameters,
  EdgeRtpCapabilities,
  EdgeRtpParameters,
  EdgeTransportParams,
  MediaKind,
} from '../../signaling/protocol.ts';

/** What the page consumes, as the room gives it: the grid producer and this participant's mix producer. */
export interface EdgeOutputs {
  grid: string;
  mix: string;
}

export interface EdgePeerOptions {
  id: string;
  router: ms.Router;
  listenIp: string;
  log: Logger;
  /** Resolves with the room's outputs for this participant once the mixer produces them. */
  outputs: () => Promise<EdgeOutputs>;
  /** A producer of the page: the room mixer consumes it. */
  produced: (producer: ms.Producer) => void;
}

export type EdgePeerEvents = {
  /** A transport of the page failed or closed (its page went away without a leave). */
  'transport-lost': [reason: string];
  close: [];
};

/** What the server starts each of the page's transports with, bits/s: enough for the 640x480 grid from the first frame. */
const INITIAL_OUTGOING_BITRATE = 1_500_000;

export class EdgePeer extends EventEmitter<EdgePeerEvents> {
  readonly id: string;
  readonly #opts: EdgePeerOptions;
  readonly #transports = new Map<string, ms.WebRtcTransport>();
  readonly #byDirection = new Map<EdgeDirection, ms.WebRtcTransport>();
  readonly #producers = new Map<string, ms.Producer>();
  readonly #consumers = new Map<string, ms.Consumer>();
  #closed = false;

  constructor(opts: EdgePeerOptions) {
    super();
    this.id = opts.id;
    this.#opts = opts;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The router's RTP capabilities (the page's device loads them). */
  capabilities(): EdgeRtpCapabilities {
    return this.#opts.router.rtpCapabilities as EdgeRtpCapabilities;
  }

  /** A WebRtcTransport for one direction; asking again replaces the old one (a page that started over). */
  async createTransport(direction: EdgeDirection): Promise<EdgeTransportParams> {
    this.#assertOpen('edge-transport');
    const transport = await this.#request('edge-transport', () =>
      this.#opts.router.createWebRtcTransport({
        listenInfos: [{ protocol: 'udp', ip: this.#opts.listenIp }],
        enableTcp: false,
        initialAvailableOutgoingBitrate: INITIAL_OUTGOING_BITRATE,
        appData: { participant: this.id, direction },
      }),
    );
    if (this.#closed) {
      transport.close();
      this.#assertOpen('edge-transport');
    }
    this.#byDirection.get(direction)?.close();
    this.#transports.set(transport.id, transport);
    this.#byDirection.set(direction, transport);
    transport.on('dtlsstatechange', (state) => {
      if (state === 'failed' || state === 'closed') this.#lost(`${direction} transport DTLS ${state}`);
    });
    transport.on('icestatechange', (state) => {
      if (state === 'disconnected' || state === 'closed') this.#opts.log.info('edge transport ICE', { direction, state });
    });
    transport.observer.on('close', () => {
      this.#transports.delete(transport.id);
      if (this.#byDirection.get(direction) === transport) this.#byDirection.delete(direction);
    });
    return {
      transportId: transport.id,
      iceParameters: transport.iceParameters,
      iceCandidates: transport.iceCandidates as EdgeTransportParams['iceCandidates'],
      dtlsParameters: transport.dtlsParameters as EdgeDtlsParameters,
    };
  }

  async connect(transportId: string, dtlsParameters: EdgeDtlsParameters): Promise<void> {
    const transport = this.#transport('edge-connect', transportId);
    await this.#request('edge-connect', () => transport.connect({ dtlsParameters: dtlsParameters as ms.DtlsParameters }));
  }

  /** A producer of the page's audio or video on its send transport; the room mixer consumes it. */
  async produce(transportId: string, kind: MediaKind, rtpParameters: EdgeRtpParameters): Promise<string> {
    const transport = this.#transport('edge-produce', transportId);
    if (transport !== this.#byDirection.get('send')) throw new EdgeRequestFailedError('edge-produce', 'produce on the send transport');
    const producer = await this.#request('edge-produce', () =>
      transport.produce({ kind, rtpParameters: rtpParameters as ms.RtpParameters, appData: { participant: this.id } }),
    );
    if (this.#closed) {
      producer.close();
      this.#assertOpen('edge-produce');
    }
    this.#producers.set(producer.id, producer);
    producer.observer.on('close', () => this.#producers.delete(producer.id));
    this.#opts.produced(producer);
    return producer.id;
  }

  /**
   * Consumers (paused, until edge-resume) of the room's grid and of this participant's own mix, on
   * its receive transport. Waits for the mixer's producers when they are still being set up.
   */
  async consume(rtpCapabilities: EdgeRtpCapabilities): Promise<EdgeConsumerParams[]> {
    this.#assertOpen('edge-consume');
    const transport = this.#byDirection.get('recv');
    if (!transport) throw new EdgeRequestFailedError('edge-consume', 'create the receive transport first (edge-transport with direction "recv")');
    const outputs = await this.#request('edge-consume', () => this.#opts.outputs());
    const wanted: Array<{ producerId: string; output: EdgeConsumerParams['output'] }> = [
      { producerId: outputs.grid, output: 'grid' },
      { producerId: outputs.mix, output: 'mix' },
    ];
    const caps = rtpCapabilities as ms.RtpCapabilities;
    const result: EdgeConsumerParams[] = [];
    for (const { producerId, output } of wanted) {
      if (!this.#opts.router.canConsume({ producerId, rtpCapabilities: caps })) {
        throw new EdgeRequestFailedError('edge-consume', `the page cannot receive the ${output} (no common codec)`);
      }
      const consumer = await this.#request('edge-consume', () => transport.consume({ producerId, rtpCapabilities: caps, paused: true, appData: { output } }));
      if (this.#closed) {
        consumer.close();
        this.#assertOpen('edge-consume');
      }
      this.#consumers.set(consumer.id, consumer);
      consumer.observer.on('close', () => this.#consumers.delete(consumer.id));
      result.push({ consumerId: consumer.id, producerId, kind: consumer.kind, rtpParameters: consumer.rtpParameters as EdgeRtpParameters, output });
    }
    return result;
  }

  async resume(consumerIds: readonly string[]): Promise<void> {
    this.#assertOpen('edge-resume');
    for (const id of consumerIds) {
      const consumer = this.#consumers.get(id);
      if (!consumer) throw new EdgeRequestFailedError('edge-resume', `no consumer ${id} of this participant`);
      await this.#request('edge-resume', () => consumer.resume());
    }
  }

  #transport(event: string, id: string): ms.WebRtcTransport {
    this.#assertOpen(event);
    const transport = this.#transports.get(id);
    if (!transport) throw new EdgeRequestFailedError(event, `no transport ${id} of this participant`);
    return transport;
  }

  #assertOpen(event: string): void {
    if (this.#closed) throw new EdgeRequestFailedError(event, 'the participant left');
  }

  /** Runs a mediasoup call: its refusals (TypeError for bad parameters, InvalidStateError) become EDGE_REQUEST_FAILED. */
  async #request<T>(event: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      if (err instanceof EdgeRequestFailedError) throw err;
      throw new EdgeRequestFailedError(event, err instanceof Error ? err.message : String(err), err);
    }
  }

  #lost(reason: string): void {
    if (this.#closed) return;
    this.#opts.log.info('edge transport lost', { reason });
    this.emit('transport-lost', reason);
  }

  /** Idempotent: closes both transports (and with them the page's producers and consumers). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const transport of [...this.#transports.values()]) transport.close();
    this.#transports.clear();
    this.#byDirection.clear();
    this.#producers.clear();
    this.#consumers.clear();
    this.emit('close');
    this.removeAllListeners();
  }
}
