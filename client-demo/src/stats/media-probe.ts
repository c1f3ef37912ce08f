/**
 * Measures what the page receives, from the browser's own view: tone levels in the
 * received audio (AnalyserNode), pixel colours of the received video, rendered-frame
 * gaps (requestVideoFrameCallback) and received-audio gaps (inbound-rtp stats), and what a
 * person perceives: each participant's voice (voice-meter.ts) and each tile's motion
 * (tile-meter.ts), judged in perceived-gaps.ts.
 * Used by the tests and by the page's own glitch indicator.
 *
 * The analysers hear what the person hears: the call's received audio and, while the page
 * plays it beside (Call 'spare-audio'), the warm spare path's, summed.
 */
import { VOICE_TONES_HZ } from '../media/synthetic-media.ts';
import { medianFrameInterval, stallsSince, steadyFor, type Stall, type StallThresholds } from './glitch-stats.ts';
import { tileGaps, voiceGaps, type TileGaps, type VoiceGaps } from './perceived-gaps.ts';
import { videoFreezes } from './reception.ts';
import { TileMeter } from './tile-meter.ts';
import { VoiceMeter, type VoiceMeterMethod } from './voice-meter.ts';

/** The MCU's Opus packets carry 20 ms each. */
const AUDIO_PACKET_MS = 20;

export interface ToneLevels {
  [hz: string]: number;
}

export interface GapStats {
  /** Longest interval between rendered video frames since the last reset, ms. */
  longestVideoGapMs: number;
  /** Longest stretch without a newly received audio packet since the last reset, ms (20 ms polls, timed by the packets' own arrival stamps). */
  longestAudioGapMs: number;
  videoFrames: number;
  audioPolls: number;
}

export class MediaProbe {
  readonly #video: HTMLVideoElement;
  #audio: AudioContext | null = null;
  /** Everything the page plays, summed: the analysers' one input. */
  #heard: GainNode | null = null;
  #analyser: AnalyserNode | null = null;
  #voices: VoiceMeter | null = null;
  readonly #tiles = new TileMeter();
  #tileMeterFailed = false;
  /** The call's received audio and the spare path's, each while there is one. */
  #source: MediaStreamAudioSourceNode | null = null;
  #spareSource: MediaStreamAudioSourceNode | null = null;
  #lastFrameAt: number | null = null;
  #gaps: GapStats = { longestVideoGapMs: 0, longestAudioGapMs: 0, videoFrames: 0, audioPolls: 0 };
  readonly #audioCounts = new Map<string, number>();
  /** Arrival of the latest audio packet counted (performance.now clock). */
  #lastAudioPacketAt: number | null = null;
  #pollTimer: ReturnType<typeof setInterval> | null = null;
  #pc: RTCPeerConnection | null = null;
  /** A warm spare path whose received audio the page already plays (see Call 'spare-audio'). */
  #sparePc: RTCPeerConnection | null = null;
  /** Timestamps (performance.now) of rendered frames, kept for the last 30 s. */
  readonly frameTimes: number[] = [];
  /** [time, audio packets received] pairs polled every 20 ms, last 30 s. */
  readonly audioSamples: Array<[number, number]> = [];
  /**
   * Each poll in which some inbound audio stream grew: [first new packet, latest packet] arrival
   * (performance.now clock), last 30 s. A gap is one entry's first minus the previous entry's latest.
   */
  readonly audioArrivals: Array<[number, number]> = [];

  constructor(video: HTMLVideoElement) {
    this.#video = video;
    const onFrame = (now: number): void => {
      if (this.#lastFrameAt !== null) this.#gaps.longestVideoGapMs = Math.max(this.#gaps.longestVideoGapMs, now - this.#lastFrameAt);
      this.#lastFrameAt = now;
      this.#gaps.videoFrames++;
      this.frameTimes.push(now);
      while (this.frameTimes.length > 0 && now - this.frameTimes[0]! > 30000) this.frameTimes.shift();
      video.requestVideoFrameCallback(onFrame);
      // Last, and never able to end the frame loop above.
      try {
        this.#tiles.onFrame(video, now);
      } catch (err) {
        if (!this.#tileMeterFailed) console.warn('tile meter failed:', err);
        this.#tileMeterFailed = true;
      }
    };
    video.requestVideoFrameCallback(onFrame);
  }

  /** Watches the received audio of this peer connection (inbound-rtp packetsReceived); the call's own path. */
  watch(pc: RTCPeerConnection, stream: MediaStream): void {
    this.#pc = pc;
    const track = stream.getAudioTracks()[0];
    if (track) {
      const heard = this.#hearing();
      this.#source?.disconnect();
      this.#source = heard.context.createMediaStreamSource(new MediaStream([track]));
      this.#source.connect(heard.node);
    }
    if (this.#pollTimer === null) this.#pollTimer = setInterval(() => void this.#pollAudio(), 20);
  }

  /**
   * Also counts the audio received on this spare path (null: none): the page plays it beside the
   * call's own, so its first packets end a gap even before the page switched to it; with its
   * audio `track`, the analysers hear it too.
   */
  watchSpare(pc: RTCPeerConnection | null, track: MediaStreamTrack | null = null): void {
    this.#sparePc = pc;
    this.#spareSource?.disconnect();
    this.#spareSource = null;
    if (track) {
      const heard = this.#hearing();
      this.#spareSource = heard.context.createMediaStreamSource(new MediaStream([track]));
      this.#spareSource.connect(heard.node);
    }
  }

  /** The grid has `count` tiles (the room's participants, from the roster): the tile meter's layout. */
  setTileCount(count: number): void {
    this.#tiles.setTileCount(count);
  }

  /** The audio graph, made on first use: the sum of what the page plays, feeding the tone-level analyser and the voice meter. */
  #hearing(): { context: AudioContext; node: GainNode } {
    if (!this.#audio || !this.#heard) {
      const context = (this.#audio ??= new AudioContext({ sampleRate: 48000 }));
      const heard = (this.#heard = context.createGain());
      this.#analyser = context.createAnalyser();
      this.#analyser.fftSize = 8192;
      this.#analyser.smoothingTimeConstant = 0;
      heard.connect(this.#analyser);
      this.#voices = new VoiceMeter(context, heard, VOICE_TONES_HZ);
      void context.resume();
    }
    return { context: this.#audio, node: this.#heard };
  }

  async #pollAudio(): Promise<void> {
    const pc = this.#pc;
    if (!pc || pc.connectionState === 'closed') return;
    const spare = this.#sparePc && this.#sparePc !== pc && this.#sparePc.connectionState !== 'closed' ? this.#sparePc : null;
    const reports = await Promise.all([pc.getStats(), ...(spare ? [spare.getStats().catch(() => null)] : [])]);
    // Received RTP packets per stream, not played-out samples (concealment keeps those running
    // through a gap). A gap ends only when some stream's count grows: a stream that disappears
    // (the old server's SSRC after a restart) must not read as audio arriving.
    // Timed by the packets' own arrival stamps, not by when the poll ran (Chromium serves a report
    // from a cache of about 50 ms and a busy page answers late: poll times put both ends of a gap
    // up to ~70 ms off). A gap runs from the latest packet known before it (lastPacketReceivedTimestamp)
    // to the first new packet after it: the stream's latest, less 20 ms per packet before it (the
    // MCU sends one Opus packet per 20 ms).
    let grew = false;
    let firstNew: number | null = null;
    let latest: number | null = null;
    let total = 0;
    const seen = new Set<string>();
    for (const stats of reports) {
      stats?.forEach((s: { id: string; type: string; kind?: string; packetsReceived?: number; lastPacketReceivedTimestamp?: number }) => {
        if (s.type !== 'inbound-rtp' || s.kind !== 'audio') return;
        const count = s.packetsReceived ?? 0;
        seen.add(s.id);
        total += count;
        const previous = this.#audioCounts.get(s.id);
        const last = s.lastPacketReceivedTimestamp === undefined ? null : s.lastPacketReceivedTimestamp - performance.timeOrigin;
        if (previous === undefined ? count > 0 : count > previous) {
          grew = true;
          if (last !== null) {
            firstNew = Math.min(firstNew ?? Infinity, last - (count - (previous ?? 0) - 1) * AUDIO_PACKET_MS);
            latest = Math.max(latest ?? -Infinity, last);
          }
        }
        this.#audioCounts.set(s.id, count);
      });
    }
    for (const id of [...this.#audioCounts.keys()]) if (!seen.has(id)) this.#audioCounts.delete(id);
    const now = performance.now();
    this.#gaps.audioPolls++;
    this.audioSamples.push([now, total]);
    while (this.audioSamples.length > 0 && now - this.audioSamples[0]![0] > 30000) this.audioSamples.shift();
    if (!grew) return;
    const previousLast = this.#lastAudioPacketAt;
    // Never later than this poll, never before the packets already counted (two reports' clocks).
    const from = Math.max(Math.min(firstNew ?? now, now), previousLast ?? -Infinity);
    const to = Math.max(Math.min(latest ?? now, now), from);
    this.audioArrivals.push([from, to]);
    while (this.audioArrivals.length > 0 && now - this.audioArrivals[0]![1] > 30000) this.audioArrivals.shift();
    if (previousLast !== null) this.#gaps.longestAudioGapMs = Math.max(this.#gaps.longestAudioGapMs, from - previousLast);
    this.#lastAudioPacketAt = to;
  }

  /** Level in dB (full scale) of the received audio at each frequency. */
  toneLevels(frequencies: readonly number[]): ToneLevels {
    const levels: ToneLevels = {};
    if (!this.#analyser || !this.#audio) {
      for (const f of frequencies) levels[String(f)] = -Infinity;
      return levels;
    }
    const bins = new Float32Array(this.#analyser.frequencyBinCount);
    this.#analyser.getFloatFrequencyData(bins);
    const binHz = this.#audio.sampleRate / this.#analyser.fftSize;
    for (const f of frequencies) {
      const centre = Math.round(f / binHz);
      let peak = -Infinity;
      for (let b = Math.max(0, centre - 2); b <= Math.min(bins.length - 1, centre + 2); b++) peak = Math.max(peak, bins[b]!);
      levels[String(f)] = peak;
    }
    return levels;
  }

  /** RGB of the received video at relative positions (0..1) of the frame. */
  samplePixels(points: ReadonlyArray<[number, number]>): Array<[number, number, number]> {
    const video = this.#video;
    const w = video.videoWidth;
    const h = video.videoHeight;
    if (w === 0 || h === 0) return points.map(() => [0, 0, 0]);
    const canvas = document.createElement('canvas');
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext('2d', { willReadFrequently: true })!;
    ctx.drawImage(video, 0, 0, w, h);
    return points.map(([x, y]) => {
      // Average a 5x5 patch: robust against codec noise.
      const px = Math.min(w - 3, Math.max(2, Math.round(x * w)));
      const py = Math.min(h - 3, Math.max(2, Math.round(y * h)));
      const data = ctx.getImageData(px - 2, py - 2, 5, 5).data;
      let r = 0;
      let g = 0;
      let b = 0;
      for (let i = 0; i < data.length; i += 4) {
        r += data[i]!;
        g += data[i + 1]!;
        b += data[i + 2]!;
      }
      const n = data.length / 4;
      return [Math.round(r / n), Math.round(g / n), Math.round(b / n)];
    });
  }

  /** How long the received media has been steady up to now, ms (see glitch-stats). */
  steadyFor(thresholds: StallThresholds): number {
    return steadyFor(this, performance.now(), thresholds);
  }

  /** Every stall that ended at or after `since` (performance.now() clock), and the poll-times audio gap. */
  stallsSince(since: number, thresholds: StallThresholds): { stalls: Stall[]; pollAudioGapMs: number } {
    return stallsSince(this, since, thresholds);
  }

  /** Median interval between the latest rendered frames, ms (null before two frames). */
  medianFrameInterval(): number | null {
    return medianFrameInterval(this.frameTimes);
  }

  /**
   * Each of `tones`' voice gap around an event: the longest stretch it was inaudible (more than
   * INAUDIBLE_BELOW_STEADY_DB under its level before `since`) ending in [since, until]
   * (performance.now() clock), and the worst voice's.
   */
  voiceGaps(tones: readonly number[], since: number, until = performance.now()): VoiceGaps {
    return voiceGaps(this.#voices?.history ?? { times: [], levels: {} }, tones, since, until);
  }

  /** The voice meter's readings of `hz` in [since, until]: [time, dBFS] pairs (for failure messages and plots). */
  voiceLevels(hz: number, since: number, until = performance.now()): Array<[number, number]> {
    const history = this.#voices?.history;
    const levels = history?.levels[String(hz)];
    if (!history || !levels) return [];
    const out: Array<[number, number]> = [];
    history.times.forEach((t, i) => {
      if (t >= since && t <= until) out.push([t, levels[i]!]);
    });
    return out;
  }

  /** How the voice meter reads (AudioWorklet in a secure context, else an analyser on a page timer); null before any audio. */
  get voiceMeterMethod(): VoiceMeterMethod | null {
    return this.#voices?.method ?? null;
  }

  /** Each tile's longest stretch without its marker moving, ending in [since, until], and the worst tile's. */
  tileGaps(since: number, until = performance.now()): TileGaps {
    return tileGaps(this.#tiles.history, since, until);
  }

  /** Chromium's freeze counters of the inbound video streams of `pc` (the call's peer connection). */
  videoFreezes(pc: RTCPeerConnection): Promise<Record<string, [number, number]>> {
    return videoFreezes(pc);
  }

  gaps(): GapStats {
    return { ...this.#gaps };
  }

  resetGaps(): void {
    this.#gaps = { longestVideoGapMs: 0, longestAudioGapMs: 0, videoFrames: 0, audioPolls: 0 };
  }

  close(): void {
    if (this.#pollTimer) clearInterval(this.#pollTimer);
    this.#pollTimer = null;
    this.#source?.disconnect();
    this.#spareSource?.disconnect();
    this.#voices?.close();
    void this.#audio?.close();
    this.#audio = null;
    this.#heard = null;
  }
}
