/**
 * A synthetic participant in Node: the MCU's signaling over socket.io-client and a libwebrtc
 * peer connection that sends its own tone and coloured tile and receives the room's mix (on the
 * mediasoup plane, the join reply's `mediaPlane`: mediasoup-client on wrtc with a send and a
 * receive transport, as the page does).
 * What it hears is measured with a Goertzel detector, what it sees by sampling the last
 * composite frame. Used by the media integration tests, the mixing benchmark's load
 * generators, and (later) the failover tests.
 */
import { EventEmitter } from 'node:events';
import { io, type Socket } from 'socket.io-client';
import { FRAME_SAMPLES, MIX_RATE, StreamResampler } from '../../mcu/src/media/audio-frames.ts';
import { createI420, fillRect, rgbToYuv, type I420Frame } from '../../mcu/src/media/i420.ts';
import {
  RTCAudioSink,
  RTCAudioSource,
  RTCPeerConnection,
  RTCVideoSink,
  RTCVideoSource,
  type RTCAudioSinkInstance,
  type RTCAudioSourceInstance,
  type RTCVideoSinkInstance,
  type RTCVideoSourceInstance,
  type SinkAudioData,
  type SinkVideoFrame,
} from '../../mcu/src/media/wrtc.ts';
import type {
  ClientToServerEvents,
  EdgeCapabilities,
  EdgeConsumed,
  EdgeProduced,
  EdgeTransportParams,
  JoinReply,
  Result,
  RosterUpdate,
  ServerToClientEvents,
} from '../../mcu/src/signaling/protocol.ts';
import type { types as msc } from 'mediasoup-client';
import { loadWrtcDevice, peerConnectionOf } from '../../mcu/src/media/edge/wrtc-device.ts';

type PeerSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/** Life of a synthetic peer: it joins once; `left` and `closed` are final. */
export type SyntheticPeerState = 'idle' | 'joining' | 'joined' | 'leaving' | 'left' | 'closed';

export type SyntheticPeerErrorCode = 'JOIN_REFUSED' | 'NEGOTIATION_FAILED' | 'TIMEOUT' | 'CLOSED' | 'BAD_STATE';

/** Why a synthetic peer could not do what it was asked. */
export class SyntheticPeerError extends Error {
  readonly code: SyntheticPeerErrorCode;
  constructor(code: SyntheticPeerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'SyntheticPeerError';
  }
}

export type Rgb = readonly [r: number, g: number, b: number];

export interface SyntheticPeerOptions {
  /** Base URL of the MCU, e.g. `http://127.0.0.1:3000`. */
  url: string;
  room: string;
  name: string;
  /**
   * Frequency of the tone this peer sends, Hz. Keep the tones of a room several hundred Hz
   * apart: Opus spreads coding noise around a tone (about 50 dB below it within ~200 Hz).
   */
  toneHz: number;
  /** Peak level of the tone, dBFS (0 = full-scale sine). Default -30, so a dozen tones mix without clipping. */
  toneDbfs?: number;
  /** Colour of the tile this peer sends. */
  colour: Rgb;
  /** Tile width, default 320. */
  width?: number;
  /** Tile height, default 240. */
  height?: number;
  /** Tile frame rate, default 15. */
  fps?: number;
  /**
   * Draw a moving box along the top fifth of the tile, so the encoders and decoders work as
   * with a camera instead of coding a still image; the tile's centre stays `colour`. Default true.
   */
  motion?: boolean;
  /** Received audio kept for toneLevels(), ms. Default 200. */
  analysisWindowMs?: number;
  /** Longest wait for a signaling acknowledgement, ms. Default 10000. */
  requestTimeoutMs?: number;
  /** Longest wait for the peer connection to connect after the answer, ms. Default 15000. */
  connectTimeoutMs?: number;
}

export type SyntheticPeerEvents = {
  state: [SyntheticPeerState];
  roster: [RosterUpdate];
  'connection-state': [RTCPeerConnectionState];
};

/** Counters since the last resetStats() (or since the peer was created). */
export interface SyntheticPeerStats {
  state: SyntheticPeerState;
  connectionState: RTCPeerConnectionState | 'new';
  /** Composite video frames received. */
  framesReceived: number;
  /** Audio sink deliveries received (each about 10 ms, at 16 or 48 kHz). */
  audioFramesReceived: number;
  /** Milliseconds of audio received (sum of numberOfFrames / sampleRate). */
  audioMsReceived: number;
  /** Longest time between two consecutive audio deliveries, ms. */
  longestAudioGapMs: number;
  /** Longest time between two consecutive composite frames, ms. */
  longestVideoGapMs: number;
  /** 10 ms frames handed to the audio source. */
  audioFramesSent: number;
  /** Tiles handed to the video source. */
  videoFramesSent: number;
  /** Size of the last composite frame, or null before the first. */
  lastFrameSize: { width: number; height: number } | null;
  /** Wall time the counters cover, ms. */
  elapsedMs: number;
}

/** Receiver-side RTP statistics from getStats(), where libwebrtc reports them. */
export interface SyntheticPeerRtpStats {
  audio: { packetsReceived: number; packetsLost: number; concealedSamples: number; totalSamplesReceived: number } | null;
  video: { framesReceived: number; framesDecoded: number; framesDropped: number; frameWidth: number; frameHeight: number } | null;
}

export interface SampledColour {
  y: number;
  u: number;
  v: number;
  r: number;
  g: number;
  b: number;
}

/** Catch-up limit of the sending clocks: after a longer stall frames are skipped, not burst. */
const MAX_CATCH_UP = 5;
const AUDIO_FRAME_MS = (FRAME_SAMPLES / MIX_RATE) * 1000;

/**
 * One synthetic participant. `join()` connects signaling and media and resolves once the peer
 * connection is connected; `close()` is idempotent and leaves nothing running.
 */
export class SyntheticPeer extends EventEmitter<SyntheticPeerEvents> {
  readonly options: Readonly<Required<SyntheticPeerOptions>>;
  #state: SyntheticPeerState = 'idle';
  #socket: PeerSocket | null = null;
  #pc: RTCPeerConnection | null = null;
  /** mediasoup plane: the two transports (#pc is then the receive transport's peer connection). */
  #edgeTransports: msc.Transport[] = [];
  #joinReply: JoinReply | null = null;

  readonly #audioSource: RTCAudioSourceInstance = new RTCAudioSource();
  readonly #videoSource: RTCVideoSourceInstance = new RTCVideoSource();
  #audioTrack: MediaStreamTrack | null = null;
  #videoTrack: MediaStreamTrack | null = null;
  #audioSink: RTCAudioSinkInstance | null = null;
  #videoSink: RTCVideoSinkInstance | null = null;
  readonly #audioClock: SendClock;
  readonly #videoClock: SendClock;

  // Sending.
  readonly #toneFrame = new Int16Array(FRAME_SAMPLES);
  #tonePhase = 0;
  readonly #tile: I420Frame;
  #motionX = 0;

  // Receiving.
  readonly #resampler = new StreamResampler(MIX_RATE);
  readonly #history: Float32Array;
  #historyWrite = 0;
  #historyFilled = 0;
  #lastFrame: SinkVideoFrame | null = null;
  #lastAudioAt = 0;
  #lastVideoAt = 0;
  #counters = freshCounters();

  constructor(opts: SyntheticPeerOptions) {
    super();
    this.options = {
      toneDbfs: -30,
      width: 320,
      height: 240,
      fps: 15,
      motion: true,
      analysisWindowMs: 200,
      requestTimeoutMs: 10000,
      connectTimeoutMs: 15000,
      ...opts,
    };
    this.#history = new Float32Array(Math.round((MIX_RATE * this.options.analysisWindowMs) / 1000));
    this.#tile = createI420(this.options.width, this.options.height);
    const [y, u, v] = rgbToYuv(...this.options.colour);
    fillRect(this.#tile, { x: 0, y: 0, width: this.options.width, height: this.options.height }, y, u, v);
    this.#audioClock = new SendClock(AUDIO_FRAME_MS, () => this.#sendAudio());
    this.#videoClock = new SendClock(1000 / this.options.fps, () => this.#sendVideo());
  }

  get state(): SyntheticPeerState {
    return this.#state;
  }

  get closed(): boolean {
    return this.#state === 'closed';
  }

  /** What the MCU answered to the join (participant id, resume token, roster, epoch). */
  get joinReply(): JoinReply | null {
    return this.#joinReply;
  }

  get participantId(): string | null {
    return this.#joinReply?.participantId ?? null;
  }

  get connectionState(): RTCPeerConnectionState | 'new' {
    return this.#pc?.connectionState ?? 'new';
  }

  /** The one place the state changes. */
  #setState(state: SyntheticPeerState): void {
    if (state === this.#state) return;
    this.#state = state;
    this.emit('state', state);
  }

  /**
   * Connects signaling, joins the room, offers audio + video (sendrecv) and resolves when the
   * peer connection is connected. Sending starts before the offer, so media flows at once.
   */
  async join(): Promise<JoinReply> {
    if (this.#state !== 'idle') throw new SyntheticPeerError('BAD_STATE', `join() needs an idle peer, this one is ${this.#state}`);
    this.#setState('joining');
    try {
      const socket = await this.#connect();
      const joined = await this.#request<JoinReply>('join', (ack) =>
        socket.emit('join', { room: this.options.room, name: this.options.name }, ack),
      );
      this.#joinReply = joined;
      if (joined.mediaPlane === 'mediasoup') await this.#negotiateEdge(socket);
      else await this.#negotiate(socket);
      this.#assertOpen();
      this.#setState('joined');
      return joined;
    } catch (err) {
      this.close();
      throw err;
    }
  }

  #connect(): Promise<PeerSocket> {
    const socket: PeerSocket = io(this.options.url, { transports: ['websocket'], reconnection: false, forceNew: true });
    this.#socket = socket;
    socket.on('roster', (update) => this.emit('roster', update));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new SyntheticPeerError('TIMEOUT', `no signaling connection to ${this.options.url} within ${this.options.requestTimeoutMs} ms`)),
        this.options.requestTimeoutMs,
      );
      timer.unref();
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(socket);
      });
      socket.once('connect_error', (err) => {
        clearTimeout(timer);
        reject(new SyntheticPeerError('JOIN_REFUSED', `signaling connection to ${this.options.url} failed: ${err.message}`, { cause: err }));
      });
    });
  }

  async #negotiate(socket: PeerSocket): Promise<void> {
    const pc = new RTCPeerConnection({ iceServers: [] });
    this.#pc = pc;
    pc.onconnectionstatechange = () => {
      if (this.#pc === pc) this.emit('connection-state', pc.connectionState);
    };
    this.#audioTrack = this.#audioSource.createTrack();
    this.#videoTrack = this.#videoSource.createTrack();
    const audio = pc.addTransceiver(this.#audioTrack, { direction: 'sendrecv' });
    const video = pc.addTransceiver(this.#videoTrack, { direction: 'sendrecv' });
    // The receiver tracks exist before negotiation and survive a server-side renegotiation.
    this.#attachSinks(audio.receiver.track, video.receiver.track);
    this.#audioClock.start();
    this.#videoClock.start();

    await pc.setLocalDescription(await pc.createOffer());
    await waitForGathering(pc, this.options.connectTimeoutMs);
    const offer = pc.localDescription;
    if (!offer) throw new SyntheticPeerError('NEGOTIATION_FAILED', 'no local description after createOffer');
    this.#assertOpen();
    const { sdp } = await this.#request<{ sdp: string }>('offer', (ack) => socket.emit('offer', { sdp: offer.sdp }, ack));
    this.#assertOpen();
    try {
      await pc.setRemoteDescription({ type: 'answer', sdp });
    } catch (err) {
      throw new SyntheticPeerError('NEGOTIATION_FAILED', `the MCU's answer was refused: ${(err as Error).message}`, { cause: err });
    }
    await this.#connected(pc);
  }

  /**
   * mediasoup plane: a device on wrtc, a send transport producing the tone and the tile, a receive
   * transport consuming the grid and this peer's mix; resolves once the receive transport is connected.
   */
  async #negotiateEdge(socket: PeerSocket): Promise<void> {
    const { routerRtpCapabilities } = await this.#request<EdgeCapabilities>('edge-capabilities', (ack) => socket.emit('edge-capabilities', ack));
    const device = await loadWrtcDevice(routerRtpCapabilities as msc.RtpCapabilities);
    const options = (p: EdgeTransportParams): msc.TransportOptions => ({
      id: p.transportId,
      iceParameters: p.iceParameters,
      iceCandidates: p.iceCandidates as msc.IceCandidate[],
      dtlsParameters: p.dtlsParameters as msc.DtlsParameters,
    });
    const connect = (transport: msc.Transport): void => {
      transport.on('connect', ({ dtlsParameters }, done, fail) =>
        void this.#request<object>('edge-connect', (ack) => socket.emit('edge-connect', { transportId: transport.id, dtlsParameters }, ack)).then(() => done(), fail),
      );
    };
    const send = device.createSendTransport(options(await this.#request<EdgeTransportParams>('edge-transport', (ack) => socket.emit('edge-transport', { direction: 'send' }, ack))));
    this.#edgeTransports.push(send);
    connect(send);
    send.on('produce', ({ kind, rtpParameters }, done, fail) =>
      void this.#request<EdgeProduced>('edge-produce', (ack) => socket.emit('edge-produce', { transportId: send.id, kind, rtpParameters }, ack)).then(
        ({ producerId }) => done({ id: producerId }),
        fail,
      ),
    );
    const recv = device.createRecvTransport(options(await this.#request<EdgeTransportParams>('edge-transport', (ack) => socket.emit('edge-transport', { direction: 'recv' }, ack))));
    this.#edgeTransports.push(recv);
    connect(recv);
    this.#assertOpen();

    this.#audioTrack = this.#audioSource.createTrack();
    this.#videoTrack = this.#videoSource.createTrack();
    this.#audioClock.start();
    this.#videoClock.start();
    await send.produce({ track: this.#audioTrack, stopTracks: false });
    await send.produce({ track: this.#videoTrack, stopTracks: false, codecOptions: { videoGoogleStartBitrate: 600 } });
    this.#assertOpen();

    const { consumers } = await this.#request<EdgeConsumed>('edge-consume', (ack) => socket.emit('edge-consume', { rtpCapabilities: device.rtpCapabilities }, ack));
    const tracks: Partial<Record<'audio' | 'video', MediaStreamTrack>> = {};
    for (const c of consumers) {
      const consumer = await recv.consume({ id: c.consumerId, producerId: c.producerId, kind: c.kind, rtpParameters: c.rtpParameters as msc.RtpParameters });
      tracks[c.kind] = consumer.track;
    }
    if (!tracks.audio || !tracks.video) throw new SyntheticPeerError('NEGOTIATION_FAILED', `the MCU offered ${consumers.map((c) => c.output).join(' and ')}, not a mix and a grid`);
    this.#attachSinks(tracks.audio, tracks.video);
    await this.#request<object>('edge-resume', (ack) => socket.emit('edge-resume', { consumerIds: consumers.map((c) => c.consumerId) }, ack));
    const pc = peerConnectionOf(recv);
    if (!pc) throw new SyntheticPeerError('NEGOTIATION_FAILED', 'no peer connection under the receive transport');
    this.#pc = pc;
    pc.addEventListener('connectionstatechange', () => {
      if (this.#pc === pc) this.emit('connection-state', pc.connectionState);
    });
    await this.#connected(pc);
  }

  #attachSinks(audioTrack: MediaStreamTrack, videoTrack: MediaStreamTrack): void {
    const audioSink = new RTCAudioSink(audioTrack);
    audioSink.ondata = (data: SinkAudioData) => this.#onAudio(data);
    this.#audioSink = audioSink;
    const videoSink = new RTCVideoSink(videoTrack);
    videoSink.onframe = ({ frame }: { frame: SinkVideoFrame }) => this.#onVideo(frame);
    this.#videoSink = videoSink;
  }

  #connected(pc: RTCPeerConnection): Promise<void> {
    if (pc.connectionState === 'connected') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (err?: Error): void => {
        clearTimeout(timer);
        this.off('connection-state', onState);
        this.off('state', onClose);
        if (err) reject(err);
        else resolve();
      };
      const onState = (state: RTCPeerConnectionState): void => {
        if (state === 'connected') done();
        else if (state === 'failed' || state === 'closed') done(new SyntheticPeerError('NEGOTIATION_FAILED', `peer connection ${state} while connecting`));
      };
      const onClose = (state: SyntheticPeerState): void => {
        if (state === 'closed') done(new SyntheticPeerError('CLOSED', 'closed while connecting'));
      };
      const timer = setTimeout(
        () => done(new SyntheticPeerError('TIMEOUT', `peer connection not connected within ${this.options.connectTimeoutMs} ms (state ${pc.connectionState})`)),
        this.options.connectTimeoutMs,
      );
      timer.unref();
      this.on('connection-state', onState);
      this.on('state', onClose);
    });
  }

  /** Emits one signaling request and unwraps its Result, with a timeout. */
  #request<T extends object>(event: string, send: (ack: (res: Result<T>) => void) => void): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new SyntheticPeerError('TIMEOUT', `no acknowledgement of "${event}" within ${this.options.requestTimeoutMs} ms`)),
        this.options.requestTimeoutMs,
      );
      timer.unref();
      send((res) => {
        clearTimeout(timer);
        if (res.ok) resolve(res);
        else reject(new SyntheticPeerError(event === 'offer' || event.startsWith('edge-') ? 'NEGOTIATION_FAILED' : 'JOIN_REFUSED', `"${event}" refused: ${res.error.code}: ${res.error.message}`));
      });
    });
  }

  #assertOpen(): void {
    if (this.#state === 'closed') throw new SyntheticPeerError('CLOSED', 'the peer was closed');
  }

  // ---- sending -------------------------------------------------------------------------

  #sendAudio(): void {
    const amplitude = 32767 * 10 ** (this.options.toneDbfs / 20);
    const step = (2 * Math.PI * this.options.toneHz) / MIX_RATE;
    const frame = this.#toneFrame;
    let phase = this.#tonePhase;
    for (let i = 0; i < FRAME_SAMPLES; i++) {
      frame[i] = Math.round(amplitude * Math.sin(phase));
      phase += step;
    }
    this.#tonePhase = phase % (2 * Math.PI);
    this.#audioSource.onData({ samples: frame, sampleRate: MIX_RATE, bitsPerSample: 16, channelCount: 1, numberOfFrames: FRAME_SAMPLES });
    this.#counters.audioFramesSent++;
  }

  #sendVideo(): void {
    if (this.options.motion) this.#drawMotion();
    this.#videoSource.onFrame(this.#tile);
    this.#counters.videoFramesSent++;
  }

  /** A light box sliding along the top fifth of the tile; the rest keeps the tile's colour. */
  #drawMotion(): void {
    const { width, height, colour } = this.options;
    const band = { x: 0, y: 0, width, height: even(height / 5) };
    const [y, u, v] = rgbToYuv(...colour);
    fillRect(this.#tile, band, y, u, v);
    const side = Math.max(2, band.height);
    this.#motionX = (this.#motionX + 8) % Math.max(2, width - side);
    fillRect(this.#tile, { x: even(this.#motionX), y: 0, width: side, height: side }, 235, 128, 128);
  }

  // ---- receiving -----------------------------------------------------------------------

  #onAudio(data: SinkAudioData): void {
    if (this.#state === 'closed') return;
    const now = performance.now();
    if (this.#lastAudioAt > 0) this.#counters.longestAudioGapMs = Math.max(this.#counters.longestAudioGapMs, now - this.#lastAudioAt);
    this.#lastAudioAt = now;
    this.#counters.audioFramesReceived++;
    this.#counters.audioMsReceived += (data.numberOfFrames / data.sampleRate) * 1000;
    // The sink starts at 16 kHz/160 and switches to 48 kHz/480: analyse everything at 48 kHz.
    const samples = this.#resampler.push(data);
    const history = this.#history;
    let w = this.#historyWrite;
    for (let i = 0; i < samples.length; i++) {
      history[w] = samples[i] / 32768;
      if (++w === history.length) w = 0;
    }
    this.#historyWrite = w;
    this.#historyFilled = Math.min(history.length, this.#historyFilled + samples.length);
  }

  #onVideo(frame: SinkVideoFrame): void {
    if (this.#state === 'closed') return;
    const now = performance.now();
    if (this.#lastVideoAt > 0) this.#counters.longestVideoGapMs = Math.max(this.#counters.longestVideoGapMs, now - this.#lastVideoAt);
    this.#lastVideoAt = now;
    this.#counters.framesReceived++;
    this.#lastFrame = frame;
  }

  /**
   * Level of each frequency in the last `analysisWindowMs` of received audio, in dBFS
   * (0 = a full-scale sine), by a Hann-windowed Goertzel filter. -Infinity before any audio.
   */
  toneLevels(freqs: readonly number[]): number[] {
    const n = this.#historyFilled;
    if (n < FRAME_SAMPLES) return freqs.map(() => -Infinity);
    const history = this.#history;
    const start = (this.#historyWrite - n + history.length) % history.length;
    return freqs.map((freq) => {
      const coeff = 2 * Math.cos((2 * Math.PI * freq) / MIX_RATE);
      let s1 = 0;
      let s2 = 0;
      let gain = 0;
      for (let i = 0, r = start; i < n; i++) {
        const w = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1));
        const s0 = history[r] * w + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
        gain += w;
        if (++r === history.length) r = 0;
      }
      const power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
      // A sine of amplitude A gives |X| = A * sum(w) / 2.
      const amplitude = (2 * Math.sqrt(Math.max(0, power))) / gain;
      return amplitude > 0 ? 20 * Math.log10(amplitude) : -Infinity;
    });
  }

  /**
   * Colour of the last composite frame around relative position (x, y) in [0, 1] (a 4x4 luma
   * average and its chroma), with an approximate RGB. Null before the first frame.
   */
  sampleColour(x: number, y: number): SampledColour | null {
    const frame = this.#lastFrame;
    if (!frame) return null;
    const { width, height, data } = frame;
    const cx = clamp(Math.round(x * width), 2, width - 3);
    const cy = clamp(Math.round(y * height), 2, height - 3);
    let luma = 0;
    for (let row = cy - 2; row < cy + 2; row++) {
      for (let col = cx - 2; col < cx + 2; col++) luma += data[row * width + col];
    }
    luma /= 16;
    const cw = (width + 1) >> 1;
    const ch = (height + 1) >> 1;
    const uBase = width * height;
    const vBase = uBase + cw * ch;
    const ci = (cy >> 1) * cw + (cx >> 1);
    const u = data[uBase + ci];
    const v = data[vBase + ci];
    const [r, g, b] = yuvToRgb(luma, u, v);
    return { y: luma, u, v, r, g, b };
  }

  stats(): SyntheticPeerStats {
    const c = this.#counters;
    return {
      state: this.#state,
      connectionState: this.connectionState,
      framesReceived: c.framesReceived,
      audioFramesReceived: c.audioFramesReceived,
      audioMsReceived: Math.round(c.audioMsReceived),
      longestAudioGapMs: round1(c.longestAudioGapMs),
      longestVideoGapMs: round1(c.longestVideoGapMs),
      audioFramesSent: c.audioFramesSent,
      videoFramesSent: c.videoFramesSent,
      lastFrameSize: this.#lastFrame ? { width: this.#lastFrame.width, height: this.#lastFrame.height } : null,
      elapsedMs: Math.round(performance.now() - c.since),
    };
  }

  /** Starts a new measurement window: counters and longest gaps back to zero. */
  resetStats(): void {
    this.#counters = freshCounters();
  }

  /** Inbound RTP statistics of the mix as libwebrtc reports them (fields it lacks are 0). */
  async rtpStats(): Promise<SyntheticPeerRtpStats> {
    const pc = this.#pc;
    const result: SyntheticPeerRtpStats = { audio: null, video: null };
    if (!pc || this.#state === 'closed') return result;
    const report = await pc.getStats();
    report.forEach((s: Record<string, unknown>) => {
      if (s.type !== 'inbound-rtp') return;
      const kind = (s.kind ?? s.mediaType) as string | undefined;
      const num = (k: string): number => (typeof s[k] === 'number' ? (s[k] as number) : 0);
      if (kind === 'audio') {
        result.audio = {
          packetsReceived: num('packetsReceived'),
          packetsLost: num('packetsLost'),
          concealedSamples: num('concealedSamples'),
          totalSamplesReceived: num('totalSamplesReceived'),
        };
      } else if (kind === 'video') {
        result.video = {
          framesReceived: num('framesReceived'),
          framesDecoded: num('framesDecoded'),
          framesDropped: num('framesDropped'),
          frameWidth: num('frameWidth'),
          frameHeight: num('frameHeight'),
        };
      }
    });
    return result;
  }

  /** Leaves the room on purpose (the MCU removes the participant at once) and stops the media. */
  async leave(): Promise<void> {
    if (this.#state !== 'joined') throw new SyntheticPeerError('BAD_STATE', `leave() needs a joined peer, this one is ${this.#state}`);
    this.#setState('leaving');
    const socket = this.#socket!;
    try {
      await this.#request<object>('leave', (ack) => socket.emit('leave', ack));
    } finally {
      this.#stopMedia();
      if (this.state === 'leaving') this.#setState('left');
    }
  }

  #stopMedia(): void {
    this.#audioClock.stop();
    this.#videoClock.stop();
    this.#audioSink?.stop();
    this.#videoSink?.stop();
    this.#audioSink = null;
    this.#videoSink = null;
    this.#audioTrack?.stop();
    this.#videoTrack?.stop();
    this.#audioTrack = null;
    this.#videoTrack = null;
    const pc = this.#pc;
    this.#pc = null;
    if (pc) {
      pc.onconnectionstatechange = null;
      pc.close();
    }
    for (const transport of this.#edgeTransports) transport.close();
    this.#edgeTransports = [];
    this.#lastFrame = null;
  }

  /** Idempotent: stops the sources' clocks, the sinks, the peer connection and the socket. */
  close(): void {
    if (this.#state === 'closed') return;
    this.#stopMedia();
    this.#socket?.removeAllListeners();
    this.#socket?.disconnect();
    this.#socket = null;
    this.#setState('closed');
    this.removeAllListeners();
  }
}

/**
 * A deadline-driven sending clock: tick i is due at start + i * period, so timer jitter does not
 * add up to drift (the audio source accepts exactly 10 ms per call, so a drifting clock would
 * send too little audio). Unref'd: it never keeps a process alive.
 */
class SendClock {
  readonly #periodMs: number;
  readonly #tick: () => void;
  #timer: NodeJS.Timeout | null = null;
  #start = 0;
  #done = 0;

  constructor(periodMs: number, tick: () => void) {
    this.#periodMs = periodMs;
    this.#tick = tick;
  }

  start(): void {
    if (this.#timer) return;
    this.#start = performance.now();
    this.#done = 0;
    this.#schedule();
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #schedule(): void {
    const next = this.#start + (this.#done + 1) * this.#periodMs;
    this.#timer = setTimeout(() => this.#run(), Math.max(0, next - performance.now()));
    this.#timer.unref();
  }

  #run(): void {
    let due = Math.floor((performance.now() - this.#start) / this.#periodMs) - this.#done;
    if (due > MAX_CATCH_UP) {
      this.#done += due - 1;
      due = 1;
    }
    for (let i = 0; i < due; i++) this.#tick();
    this.#done += Math.max(due, 0);
    if (this.#timer) this.#schedule();
  }
}

/** The stats a peer counts itself, and when it started counting. */
type PeerCounters = Pick<
  SyntheticPeerStats,
  'framesReceived' | 'audioFramesReceived' | 'audioMsReceived' | 'longestAudioGapMs' | 'longestVideoGapMs' | 'audioFramesSent' | 'videoFramesSent'
> & { since: number };

function freshCounters(): PeerCounters {
  return {
    since: performance.now(),
    framesReceived: 0,
    audioFramesReceived: 0,
    audioMsReceived: 0,
    longestAudioGapMs: 0,
    longestVideoGapMs: 0,
    audioFramesSent: 0,
    videoFramesSent: 0,
  };
}

/** Resolves when ICE gathering is complete (the MCU takes no trickled candidates), or after timeoutMs. */
function waitForGathering(pc: RTCPeerConnection, timeoutMs: number): Promise<void> {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    timer.unref();
    pc.onicegatheringstatechange = () => {
      if (pc.iceGatheringState !== 'complete') return;
      clearTimeout(timer);
      pc.onicegatheringstatechange = null;
      resolve();
    };
  });
}

/** BT.601 limited range back to RGB, the inverse of rgbToYuv (approximately). */
function yuvToRgb(y: number, u: number, v: number): [number, number, number] {
  const c = 1.164 * (y - 16);
  const d = u - 128;
  const e = v - 128;
  return [clampByte(c + 1.596 * e), clampByte(c - 0.392 * d - 0.813 * e), clampByte(c + 2.017 * d)];
}

function clampByte(x: number): number {
  return Math.round(x < 0 ? 0 : x > 255 ? 255 : x);
}

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}

function even(x: number): number {
  return 2 * Math.floor(x / 2);
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
