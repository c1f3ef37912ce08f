/**
 * The room mixer as one more endpoint of its room's router. Its join is mediasoup-client on wrtc
 * (wrtc-device.ts) with two WebRtcTransports on loopback, so the libwebrtc the mixer already uses
 * decodes what it consumes and encodes what it produces, with no RTP code of our own:
 * - it consumes every participant's audio and video producers, decoded into the mixer member's
 *   jitter buffer and latest frame (as media-session.ts does for a participant's peer connection);
 * - it produces ONE video grid (one track on one sender: one VP8 encoder per room, whatever the
 *   room size) and one N-1 audio mix per participant (an Opus encoder each, consumed by its
 *   participant only).
 */
import { EventEmitter } from 'node:events';
import type { types as ms } from 'mediasoup';
import type { types as msc } from 'mediasoup-client';
import type { Logger } from '../../core/logger.ts';
import type { MixerMember } from '../room-mixer.ts';
import { RTCAudioSink, RTCVideoSink, type RTCAudioSinkInstance, type RTCVideoSinkInstance, type SinkAudioData, type SinkVideoFrame } from '../wrtc.ts';
import { MIXER_LISTEN_IP } from './media-edge.ts';
import { loadWrtcDevice } from './wrtc-device.ts';

/** The grid's first bitrate, kbps: at 300 (libwebrtc's default) the encoder starts below 640x480. */
const GRID_START_KBPS = 1000;

export type MixerEndpointEvents = {
  /** A transport of the mixer failed (its DTLS or ICE): the room's mix stops reaching the router. */
  failed: [reason: string];
  close: [];
};

/** One consumed producer of a participant: the router's consumer, the mixer's, and the sink feeding the member. */
interface MixerInput {
  memberId: string;
  server: ms.Consumer;
  local: msc.Consumer;
  sink: RTCAudioSinkInstance | RTCVideoSinkInstance;
}

export class MixerEndpoint extends EventEmitter<MixerEndpointEvents> {
  readonly #log: Logger;
  readonly #serverSend: ms.WebRtcTransport;
  readonly #serverRecv: ms.WebRtcTransport;
  readonly #send: msc.Transport;
  readonly #recv: msc.Transport;
  readonly #inputs = new Map<string, MixerInput>();
  readonly #mixes = new Map<string, msc.Producer>();
  /** The router's side of what the mixer produces, by id (the same id as the mixer's producer). */
  readonly #serverProducers = new Map<string, ms.Producer>();
  /** Members removed: a request of theirs still running must not leave a producer or consumer behind. */
  readonly #removed = new Set<string>();
  readonly #device: msc.Device;
  #grid: msc.Producer | null = null;
  #closed = false;

  private constructor(log: Logger, parts: { serverSend: ms.WebRtcTransport; serverRecv: ms.WebRtcTransport; device: msc.Device }) {
    super();
    this.#device = parts.device;
    this.#log = log;
    this.#serverSend = parts.serverSend;
    this.#serverRecv = parts.serverRecv;
    const { serverSend, serverRecv, device } = parts;
    this.#send = device.createSendTransport(transportOptions(serverSend));
    this.#send.on('connect', ({ dtlsParameters }, done, fail) => void serverSend.connect({ dtlsParameters }).then(done, fail));
    this.#send.on('produce', ({ kind, rtpParameters, appData }, done, fail) =>
      void serverSend.produce({ kind, rtpParameters, appData }).then((producer) => {
        this.#serverProducers.set(producer.id, producer);
        producer.observer.on('close', () => this.#serverProducers.delete(producer.id));
        done({ id: producer.id });
      }, fail),
    );
    this.#recv = device.createRecvTransport(transportOptions(serverRecv));
    this.#recv.on('connect', ({ dtlsParameters }, done, fail) => void serverRecv.connect({ dtlsParameters }).then(done, fail));
    for (const transport of [this.#send, this.#recv]) {
      transport.on('connectionstatechange', (state) => {
        if (this.#closed || (state !== 'failed' && state !== 'closed')) return;
        this.#log.error('mixer transport lost', { direction: transport.direction, state });
        this.emit('failed', `mixer ${transport.direction} transport ${state}`);
      });
    }
  }

  /** The mixer's two transports on `router`, and its mediasoup-client device loaded with the router's capabilities. */
  static async create(router: ms.Router, log: Logger): Promise<MixerEndpoint> {
    const listen: ms.WebRtcTransportOptions = { listenInfos: [{ protocol: 'udp', ip: MIXER_LISTEN_IP }], enableTcp: false, initialAvailableOutgoingBitrate: 10_000_000 };
    const serverSend = await router.createWebRtcTransport({ ...listen, appData: { mixer: 'send' } });
    const serverRecv = await router.createWebRtcTransport({ ...listen, appData: { mixer: 'recv' } });
    try {
      const device = await loadWrtcDevice(router.rtpCapabilities as msc.RtpCapabilities);
      return new MixerEndpoint(log, { serverSend, serverRecv, device });
    } catch (err) {
      serverSend.close();
      serverRecv.close();
      throw err;
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Produces the room's grid (once): returns the router's producer id every participant consumes. */
  async produceGrid(track: MediaStreamTrack): Promise<string> {
    this.#grid ??= await this.#send.produce({
      track,
      stopTracks: false,
      codecOptions: { videoGoogleStartBitrate: GRID_START_KBPS },
      appData: { output: 'grid' },
    });
    return this.#grid.id;
  }

  /** Produces a member's N-1 mix: returns the router's producer id that only this member consumes. */
  async produceMix(memberId: string, track: MediaStreamTrack): Promise<string> {
    const existing = this.#mixes.get(memberId);
    if (existing) return existing.id;
    const producer = await this.#send.produce({ track, stopTracks: false, codecOptions: { opusStereo: false, opusDtx: false, opusFec: true }, appData: { output: 'mix', memberId } });
    if (this.#closed || this.#removed.has(memberId)) {
      producer.close();
      this.#serverProducers.get(producer.id)?.close();
      throw new Error(`member ${memberId} left while its mix was being produced`);
    }
    this.#mixes.set(memberId, producer);
    return producer.id;
  }

  /** Consumes a participant's producer into its mixer member: its voice into the mix, its picture into the grid. */
  async consume(member: MixerMember, producer: ms.Producer): Promise<void> {
    if (this.#closed) return;
    const server = await this.#serverRecv.consume({ producerId: producer.id, rtpCapabilities: this.#recvCapabilities(), paused: true });
    let local: msc.Consumer;
    try {
      local = await this.#recv.consume({ id: server.id, producerId: producer.id, kind: server.kind, rtpParameters: server.rtpParameters as msc.RtpParameters });
    } catch (err) {
      server.close();
      throw err;
    }
    if (this.#closed || this.#removed.has(member.id)) {
      local.close();
      server.close();
      return;
    }
    const sink = server.kind === 'audio' ? audioSink(local.track, member) : videoSink(local.track, member);
    const input: MixerInput = { memberId: member.id, server, local, sink };
    this.#inputs.set(server.id, input);
    // The participant's producer closed (it left, or its page stopped a track): drop the input.
    server.on('producerclose', () => this.#dropInput(server.id));
    await server.resume();
  }

  /** The mixer's device capabilities, as the router's consume() takes them (the same JSON shape). */
  #recvCapabilities(): ms.RtpCapabilities {
    return this.#device.rtpCapabilities as ms.RtpCapabilities;
  }

  #dropInput(consumerId: string): void {
    const input = this.#inputs.get(consumerId);
    if (!input) return;
    this.#inputs.delete(consumerId);
    input.sink.stop();
    input.local.close();
    input.server.close();
  }

  /** A member left: its inputs and its mix are closed (the grid has one tile less from the next frame). */
  removeMember(memberId: string): void {
    this.#removed.add(memberId);
    for (const [id, input] of this.#inputs) if (input.memberId === memberId) this.#dropInput(id);
    const mix = this.#mixes.get(memberId);
    this.#mixes.delete(memberId);
    if (!mix) return;
    // mediasoup-client's close() only stops the sender: the router's producer is closed here.
    mix.close();
    this.#serverProducers.get(mix.id)?.close();
  }

  /** Idempotent: stops every sink, closes the producers, consumers and both transports. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const id of [...this.#inputs.keys()]) this.#dropInput(id);
    for (const mix of this.#mixes.values()) mix.close();
    this.#mixes.clear();
    this.#grid?.close();
    this.#grid = null;
    this.#send.close();
    this.#recv.close();
    this.#serverSend.close();
    this.#serverRecv.close();
    this.emit('close');
    this.removeAllListeners();
  }
}

function transportOptions(t: ms.WebRtcTransport): msc.TransportOptions {
  return {
    id: t.id,
    iceParameters: t.iceParameters as msc.IceParameters,
    iceCandidates: t.iceCandidates as msc.IceCandidate[],
    dtlsParameters: t.dtlsParameters as msc.DtlsParameters,
  };
}

function audioSink(track: MediaStreamTrack, member: MixerMember): RTCAudioSinkInstance {
  const sink = new RTCAudioSink(track);
  sink.ondata = (data: SinkAudioData) => member.pushAudio(data);
  return sink;
}

function videoSink(track: MediaStreamTrack, member: MixerMember): RTCVideoSinkInstance {
  const sink = new RTCVideoSink(track);
  sink.onframe = ({ frame }: { frame: SinkVideoFrame }) => member.pushVideo(frame);
  return sink;
}
