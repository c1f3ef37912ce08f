import { EventEmitter } from 'node:events';
import { NegotiationFailedError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { NegotiatedMedia } from '../conference/session-state.ts';
import {
  RTCAudioSink,
  RTCPeerConnection,
  RTCVideoSink,
  type RTCAudioSinkInstance,
  type RTCVideoSinkInstance,
  type SinkAudioData,
  type SinkVideoFrame,
} from './wrtc.ts';

export interface MediaSessionOptions {
  /** This participant's N-1 audio mix. */
  audioOut: MediaStreamTrack;
  /** The room's composed video grid. */
  videoOut: MediaStreamTrack;
  /** Only ICE candidates on these addresses are offered (empty = all). */
  iceAddresses: string[];
  iceGatherTimeoutMs: number;
  log: Logger;
  /** An already connected peer connection to take over (a warm spare path); default: a new one. */
  pc?: RTCPeerConnection;
}

export type MediaSessionEvents = {
  /** Decoded audio from the browser, as the sink delivers it. */
  'remote-audio': [SinkAudioData];
  /** Decoded video frame from the browser. */
  'remote-video': [SinkVideoFrame];
  'connection-state': [RTCPeerConnectionState];
  close: [];
};

/**
 * One server-side peer connection with one browser. The browser offers audio + video
 * (sendrecv); the answer sends the mix back on the same transceivers, so joins and
 * leaves in the room never need a renegotiation.
 */
export class MediaSession extends EventEmitter<MediaSessionEvents> {
  readonly #opts: MediaSessionOptions;
  readonly #pc: RTCPeerConnection;
  #audioSink: RTCAudioSinkInstance | null = null;
  #videoSink: RTCVideoSinkInstance | null = null;
  #closed = false;
  #negotiated: NegotiatedMedia | null = null;
  /** Serialises negotiations: one offer/answer at a time on this connection. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(opts: MediaSessionOptions) {
    super();
    this.#opts = opts;
    this.#pc = opts.pc ?? new RTCPeerConnection({ iceServers: [] });
    this.#pc.onconnectionstatechange = () => {
      if (this.#closed) return;
      opts.log.info('peer connection state', { state: this.#pc.connectionState });
      this.emit('connection-state', this.#pc.connectionState);
    };
  }

  get closed(): boolean {
    return this.#closed;
  }

  get connectionState(): RTCPeerConnectionState {
    return this.#pc.connectionState;
  }

  /** The m-lines and offer of the last negotiation, for the checkpoint. */
  get negotiated(): NegotiatedMedia | null {
    return this.#negotiated;
  }

  /** Answers a browser offer: receive its audio and video, send the mix on the same transceivers. */
  acceptOffer(offerSdp: string): Promise<string> {
    const run = this.#queue.then(() => this.#acceptOffer(offerSdp));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #acceptOffer(offerSdp: string): Promise<string> {
    if (this.#closed) throw new NegotiationFailedError('the participant left');
    const pc = this.#pc;
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp: offerSdp });
    } catch (err) {
      throw new NegotiationFailedError(`the offer was refused: ${(err as Error).message}`, err);
    }
    const mlines: NegotiatedMedia['mlines'] = [];
    let audioSent = false;
    let videoSent = false;
    for (const transceiver of pc.getTransceivers()) {
      const kind = transceiver.receiver.track.kind as 'audio' | 'video';
      if (transceiver.mid !== null) mlines.push({ mid: transceiver.mid, kind });
      // The first transceiver of each kind carries the mix back; any extra one stays receive-only.
      const out = kind === 'audio' && !audioSent ? this.#opts.audioOut : kind === 'video' && !videoSent ? this.#opts.videoOut : null;
      if (out === null) continue;
      if (kind === 'audio') audioSent = true;
      else videoSent = true;
      if (transceiver.sender.track !== out) await transceiver.sender.replaceTrack(out);
      transceiver.direction = 'sendrecv';
      this.#attachSink(kind, transceiver.receiver.track);
    }
    if (!audioSent && !videoSent) throw new NegotiationFailedError('the offer has neither an audio nor a video m-line');
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    await this.#gatheringComplete();
    this.#negotiated = { mlines, remoteSdp: offerSdp };
    const local = pc.localDescription;
    if (!local) throw new NegotiationFailedError('no local description after answering');
    return filterCandidates(local.sdp, this.#opts.iceAddresses);
  }

  /**
   * Offers from the server side (media restart after a takeover): a fresh peer connection
   * with transceivers in the browser's original m-line order, so the mids line up and the
   * browser keeps its transceivers and receiver tracks.
   */
  createOffer(mlines: NegotiatedMedia['mlines']): Promise<string> {
    const run = this.#queue.then(() => this.#createOffer(mlines));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #createOffer(mlines: NegotiatedMedia['mlines']): Promise<string> {
    if (this.#closed) throw new NegotiationFailedError('the participant left');
    if (mlines.length === 0) throw new NegotiationFailedError('no m-lines recorded for this participant');
    const pc = this.#pc;
    if (pc.getTransceivers().length === 0) {
      let audioSent = false;
      let videoSent = false;
      for (const { kind } of mlines) {
        const out = kind === 'audio' && !audioSent ? this.#opts.audioOut : kind === 'video' && !videoSent ? this.#opts.videoOut : null;
        if (kind === 'audio') audioSent = true;
        else videoSent = true;
        if (out) pc.addTransceiver(out, { direction: 'sendrecv' });
        else pc.addTransceiver(kind, { direction: 'recvonly' });
      }
    }
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await this.#gatheringComplete();
    const local = pc.localDescription;
    if (!local) throw new NegotiationFailedError('no local description after offering');
    return filterCandidates(remapMids(local.sdp, pc.getTransceivers().map((t) => t.mid), mlines.map((m) => m.mid)), this.#opts.iceAddresses);
  }

  /** Applies the browser's answer to a server offer; media flows once ICE and DTLS are done. */
  acceptAnswer(answerSdp: string, mlines: NegotiatedMedia['mlines'], remoteOffer: string): Promise<void> {
    const run = this.#queue.then(async () => {
      if (this.#closed) throw new NegotiationFailedError('the participant left');
      const pc = this.#pc;
      const ownMids = pc.getTransceivers().map((t) => t.mid ?? '');
      try {
        await pc.setRemoteDescription({ type: 'answer', sdp: remapMids(answerSdp, mlines.map((m) => m.mid), ownMids) });
      } catch (err) {
        throw new NegotiationFailedError(`the answer was refused: ${(err as Error).message}`, err);
      }
      for (const transceiver of pc.getTransceivers()) {
        this.#attachSink(transceiver.receiver.track.kind as 'audio' | 'video', transceiver.receiver.track);
      }
      this.#negotiated = { mlines, remoteSdp: remoteOffer };
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Starts the mix on a warm spare path this session was created on (`pc` option): no
   * negotiation, the spare's idle senders get the mix tracks and its receivers feed the mixer.
   * Resolves once both senders carry their track.
   */
  startOnSpare(mlines: NegotiatedMedia['mlines'], remoteSdp: string): Promise<void> {
    const run = this.#queue.then(async () => {
      if (this.#closed) throw new NegotiationFailedError('the participant left');
      const replacing: Array<Promise<void>> = [];
      let audioSent = false;
      let videoSent = false;
      for (const transceiver of this.#pc.getTransceivers()) {
        const kind = transceiver.receiver.track.kind as 'audio' | 'video';
        const out = kind === 'audio' && !audioSent ? this.#opts.audioOut : kind === 'video' && !videoSent ? this.#opts.videoOut : null;
        if (kind === 'audio') audioSent = true;
        else videoSent = true;
        this.#attachSink(kind, transceiver.receiver.track);
        if (out !== null && transceiver.sender.track !== out) replacing.push(transceiver.sender.replaceTrack(out));
      }
      await Promise.all(replacing);
      this.#negotiated = { mlines, remoteSdp };
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #attachSink(kind: 'audio' | 'video', track: MediaStreamTrack): void {
    if (kind === 'audio' && this.#audioSink === null) {
      const sink = new RTCAudioSink(track);
      sink.ondata = (data: SinkAudioData) => {
        if (!this.#closed) this.emit('remote-audio', data);
      };
      this.#audioSink = sink;
    } else if (kind === 'video' && this.#videoSink === null) {
      const sink = new RTCVideoSink(track);
      sink.onframe = ({ frame }: { frame: SinkVideoFrame }) => {
        if (!this.#closed) this.emit('remote-video', frame);
      };
      this.#videoSink = sink;
    }
  }

  #gatheringComplete(): Promise<void> {
    const pc = this.#pc;
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#opts.log.warn('ICE gathering did not complete in time, answering with the candidates so far', {
          timeoutMs: this.#opts.iceGatherTimeoutMs,
        });
        resolve();
      }, this.#opts.iceGatherTimeoutMs);
      pc.onicegatheringstatechange = () => {
        if (pc.iceGatheringState === 'complete') {
          clearTimeout(timer);
          resolve();
        }
      };
    });
  }

  /** Idempotent: stops the sinks and closes the peer connection. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#audioSink?.stop();
    this.#videoSink?.stop();
    this.#audioSink = null;
    this.#videoSink = null;
    this.#pc.onconnectionstatechange = null;
    this.#pc.onicegatheringstatechange = null;
    this.#pc.close();
    this.emit('close');
    this.removeAllListeners();
  }
}

/** Keeps only the ICE candidates on the configured addresses (a host with many interfaces). */
export function filterCandidates(sdp: string, addresses: readonly string[]): string {
  if (addresses.length === 0) return sdp;
  const allowed = new Set(addresses);
  return sdp
    .split('\r\n')
    .filter((line) => {
      if (!line.startsWith('a=candidate:')) return true;
      const address = line.split(' ')[4];
      return address !== undefined && allowed.has(address);
    })
    .join('\r\n');
}

/** Renames the mids of an SDP (a=mid and the BUNDLE group) from one list to another, position by position. */
export function remapMids(sdp: string, from: ReadonlyArray<string | null>, to: readonly string[]): string {
  const map = new Map<string, string>();
  from.forEach((mid, i) => {
    const target = to[i];
    if (mid !== null && target !== undefined && mid !== target) map.set(mid, target);
  });
  if (map.size === 0) return sdp;
  return sdp
    .split('\r\n')
    .map((line) => {
      if (line.startsWith('a=mid:')) return `a=mid:${map.get(line.slice(6)) ?? line.slice(6)}`;
      if (line.startsWith('a=group:BUNDLE ')) {
        return 'a=group:BUNDLE ' + line.slice(15).split(' ').map((m) => map.get(m) ?? m).join(' ');
      }
      return line;
    })
    .join('\r\n');
}

/**
 * Sets the start bitrate (kbps) of the video we send, through the remote description's codec
 * parameters (`x-google-start-bitrate`, which libwebrtc reads from the negotiated send codec).
 * Without it a fresh peer connection starts its estimate at 300 kbps and the encoder drops its
 * first frames of the 640x480 grid to ask for a smaller resolution: the first picture after a
 * switch to a warm spare path came hundreds of ms after the first audio.
 */
export function withVideoStartBitrate(sdp: string, kbps: number): string {
  const lines = sdp.split('\r\n');
  const out: string[] = [];
  let inVideo = false;
  const codecs = new Set<string>();
  const withFmtp = new Set<string>();
  const param = `x-google-start-bitrate=${Math.round(kbps)}`;
  const flush = (): void => {
    for (const pt of codecs) if (!withFmtp.has(pt)) out.push(`a=fmtp:${pt} ${param}`);
    codecs.clear();
    withFmtp.clear();
  };
  for (const line of lines) {
    if (line.startsWith('m=')) {
      if (inVideo) flush();
      inVideo = line.startsWith('m=video');
    }
    if (inVideo) {
      const rtpmap = /^a=rtpmap:(\d+) (VP8|VP9|H264|AV1)\//i.exec(line);
      if (rtpmap) codecs.add(rtpmap[1]!);
      const fmtp = /^a=fmtp:(\d+) (.*)$/.exec(line);
      if (fmtp && codecs.has(fmtp[1]!)) {
        withFmtp.add(fmtp[1]!);
        if (!fmtp[2]!.includes('x-google-start-bitrate')) {
          out.push(`${line};${param}`);
          continue;
        }
      }
    }
    out.push(line);
  }
  if (inVideo) {
    // Before the trailing empty line of the SDP.
    const tail = out.length > 0 && out[out.length - 1] === '' ? out.pop() : undefined;
    flush();
    if (tail !== undefined) out.push(tail);
  }
  return out.join('\r\n');
}
