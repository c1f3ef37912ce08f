import { Device, type types as msc } from 'mediasoup-client';
import type { EdgeConsumerParams, EdgeTransportParams } from '../../../mcu/src/signaling/protocol.ts';
import { TypedEmitter } from '../emitter.ts';
import type { SignalingClient } from '../signaling/signaling-client.ts';

export type EdgeTransportEvents = {
  /** The mix from the MCU: one stream with the room's grid and this page's own N-1 mix. */
  'remote-stream': [MediaStream];
};

/**
 * The page's media on the mediasoup plane (the join reply's `mediaPlane`): a mediasoup-client
 * device loaded with the room router's capabilities, a send transport producing the local audio
 * and video tracks, and a receive transport consuming the room's grid (encoded once for the whole
 * room) and this page's own N-1 mix. Every request rides the signaling connection (`edge-*`).
 */
export class EdgeTransport extends TypedEmitter<EdgeTransportEvents> {
  readonly #signaling: SignalingClient;
  readonly #localStream: MediaStream;
  #send: msc.Transport | null = null;
  #recv: msc.Transport | null = null;
  #remoteStream: MediaStream | null = null;
  #closed = false;

  constructor(signaling: SignalingClient, localStream: MediaStream) {
    super();
    this.#signaling = signaling;
    this.#localStream = localStream;
  }

  /**
   * The receive transport's peer connection (what the page's probe reads the received audio and
   * video from). mediasoup-client keeps it private (`_pc` of its Chrome handler); null before negotiate().
   */
  get pc(): RTCPeerConnection | null {
    const pc = this.#recv ? (this.#recv.handler as unknown as { _pc?: unknown })._pc : null;
    return pc instanceof RTCPeerConnection ? pc : null;
  }

  get negotiated(): boolean {
    return this.#recv !== null;
  }

  /** Loads the device, produces the local tracks and consumes the grid and the mix; resolves once both are resumed. */
  async negotiate(): Promise<void> {
    const { routerRtpCapabilities } = await this.#signaling.edgeCapabilities();
    const device = new Device();
    await device.load({ routerRtpCapabilities: routerRtpCapabilities as msc.RtpCapabilities });
    this.#assertOpen();

    const send = (this.#send = device.createSendTransport(transportOptions(await this.#signaling.edgeTransport({ direction: 'send' }))));
    send.on('connect', ({ dtlsParameters }, done, fail) => void this.#signaling.edgeConnect({ transportId: send.id, dtlsParameters }).then(done, fail));
    send.on('produce', ({ kind, rtpParameters }, done, fail) =>
      void this.#signaling.edgeProduce({ transportId: send.id, kind, rtpParameters }).then(({ producerId }) => done({ id: producerId }), fail),
    );
    const recv = (this.#recv = device.createRecvTransport(transportOptions(await this.#signaling.edgeTransport({ direction: 'recv' }))));
    recv.on('connect', ({ dtlsParameters }, done, fail) => void this.#signaling.edgeConnect({ transportId: recv.id, dtlsParameters }).then(done, fail));

    // The local tracks stay the page's: closing a producer must not stop them.
    for (const track of this.#localStream.getTracks()) await send.produce({ track, stopTracks: false });
    this.#assertOpen();

    const { consumers } = await this.#signaling.edgeConsume({ rtpCapabilities: device.rtpCapabilities });
    const tracks: MediaStreamTrack[] = [];
    for (const params of consumers) tracks.push((await this.#consume(recv, params)).track);
    await this.#signaling.edgeResume({ consumerIds: consumers.map((c) => c.consumerId) });
    this.#remoteStream = new MediaStream(tracks);
    this.emit('remote-stream', this.#remoteStream);
  }

  #consume(recv: msc.Transport, params: EdgeConsumerParams): Promise<msc.Consumer> {
    return recv.consume({ id: params.consumerId, producerId: params.producerId, kind: params.kind, rtpParameters: params.rtpParameters as msc.RtpParameters });
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error('the media transport was closed');
  }

  /** Idempotent: closes both transports (local tracks are the caller's). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#send?.close();
    this.#recv?.close();
    this.removeAllListeners();
  }
}

function transportOptions(params: EdgeTransportParams): msc.TransportOptions {
  return {
    id: params.transportId,
    iceParameters: params.iceParameters,
    iceCandidates: params.iceCandidates as msc.IceCandidate[],
    dtlsParameters: params.dtlsParameters as msc.DtlsParameters,
  };
}
