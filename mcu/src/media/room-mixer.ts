import type { Logger } from '../core/logger.ts';
import { AudioJitterBuffer, FRAME_SAMPLES, MIX_RATE, StreamResampler } from './audio-frames.ts';
import { mixMinusOne } from './audio-mixer.ts';
import { GridComposer, type I420Frame } from './i420.ts';
import { RTCAudioSource, RTCVideoSource, type RTCAudioSourceInstance, type SinkAudioData, type SinkVideoFrame } from './wrtc.ts';

const FRAME_MS = (FRAME_SAMPLES / MIX_RATE) * 1000;
/** More ticks than this behind (a stalled event loop) are skipped instead of sent in a burst. */
const MAX_CATCH_UP_FRAMES = 10;

export interface RoomMixerOptions {
  width: number;
  height: number;
  fps: number;
  log: Logger;
}

/** Counters for /metrics and the mixing benchmark. */
export interface MixerStats {
  members: number;
  audioTicks: number;
  /** Audio ticks that ran late enough to be skipped (the event loop could not keep up). */
  audioTicksSkipped: number;
  /** Member frames that were missing when the mix was built (jitter-buffer underruns). */
  inputUnderruns: number;
  /**
   * Times a member's playback starved after it had started (AudioJitterBuffer.underruns), summed
   * over the members, departed ones included. Unlike inputUnderruns, the prefill at a join is not counted.
   */
  jitterUnderruns: number;
  /** Samples the members' jitter buffers dropped because they were over their depth (sender faster than the mix clock). */
  jitterDroppedSamples: number;
  videoFrames: number;
  videoFramesSkipped: number;
  /** Mean time spent composing one video frame, ms. */
  composeMsMean: number;
  /** Mean time spent building one 10 ms audio mix for the whole room, ms. */
  mixMsMean: number;
}

/** One participant as the mixer sees it: its decoded input and its own N-1 output. */
export class MixerMember {
  readonly id: string;
  audioMuted = false;
  videoMuted = false;
  readonly #resampler = new StreamResampler();
  readonly jitter = new AudioJitterBuffer();
  readonly frame = new Int16Array(FRAME_SAMPLES);
  readonly output = new Int16Array(FRAME_SAMPLES);
  readonly audioSource: RTCAudioSourceInstance = new RTCAudioSource();
  /** The track carrying this member's N-1 mix. */
  readonly audioTrack: MediaStreamTrack;
  readonly #videoSource: InstanceType<typeof RTCVideoSource>;
  #videoTrack: MediaStreamTrack | null = null;
  latestVideo: I420Frame | null = null;

  constructor(id: string, videoSource: InstanceType<typeof RTCVideoSource>) {
    this.id = id;
    this.audioTrack = this.audioSource.createTrack();
    this.#videoSource = videoSource;
  }

  /**
   * This member's own track on the room's shared grid source (wrtc plane: its peer connection
   * encodes the grid for it). Created on first use: the mediasoup plane never asks for it, and a
   * track it does not need would still get every composite frame.
   */
  get videoTrack(): MediaStreamTrack {
    this.#videoTrack ??= this.#videoSource.createTrack();
    return this.#videoTrack;
  }

  pushAudio(data: SinkAudioData): void {
    this.jitter.push(this.#resampler.push(data));
  }

  pushVideo(frame: SinkVideoFrame): void {
    this.latestVideo = { width: frame.width, height: frame.height, data: frame.data };
  }

  close(): void {
    this.audioTrack.stop();
    this.#videoTrack?.stop();
    this.latestVideo = null;
  }
}

/**
 * The MCU's mixer for one room: every 10 ms an N-1 audio mix per member, at the
 * configured rate one composed video grid shared by all members. Driven by its own
 * clock (not by arriving packets), so a silent or departed member never stalls the others.
 */
export class RoomMixer {
  readonly #opts: RoomMixerOptions;
  readonly #members: MixerMember[] = [];
  readonly #videoSource = new RTCVideoSource();
  readonly #composer: GridComposer;
  readonly #inputs: Array<Int16Array | null> = [];
  readonly #outputs: Int16Array[] = [];
  #audioTimer: NodeJS.Timeout | null = null;
  #videoTimer: NodeJS.Timeout | null = null;
  #audioStart = 0;
  #audioFrames = 0;
  #videoStart = 0;
  #videoFramesDue = 0;
  #closed = false;
  #gridTrack: MediaStreamTrack | null = null;
  readonly #stats: MixerStats = {
    members: 0,
    audioTicks: 0,
    audioTicksSkipped: 0,
    inputUnderruns: 0,
    jitterUnderruns: 0,
    jitterDroppedSamples: 0,
    videoFrames: 0,
    videoFramesSkipped: 0,
    composeMsMean: 0,
    mixMsMean: 0,
  };
  #composeMsTotal = 0;
  #mixMsTotal = 0;
  /** Jitter-buffer counters of members already removed, so stats() stays cumulative. */
  #departedJitterUnderruns = 0;
  #departedJitterDropped = 0;

  constructor(opts: RoomMixerOptions) {
    this.#opts = opts;
    this.#composer = new GridComposer(opts.width, opts.height);
  }

  get members(): readonly MixerMember[] {
    return this.#members;
  }

  /**
   * The room's grid as one track (mediasoup plane: produced once to the room's router and
   * consumed by every participant, so it is encoded once per room).
   */
  gridTrack(): MediaStreamTrack {
    this.#gridTrack ??= this.#videoSource.createTrack();
    return this.#gridTrack;
  }

  /** Adds a member at the end of the layout; its tile and voice appear at the next tick. */
  addMember(id: string): MixerMember {
    const member = new MixerMember(id, this.#videoSource);
    this.#members.push(member);
    this.#start();
    return member;
  }

  /** Removes a member at once: its voice is gone from the next 10 ms mix, its tile from the next frame. */
  removeMember(id: string): void {
    const index = this.#members.findIndex((m) => m.id === id);
    if (index < 0) return;
    const [member] = this.#members.splice(index, 1);
    if (member) {
      this.#departedJitterUnderruns += member.jitter.underruns;
      this.#departedJitterDropped += member.jitter.droppedSamples;
      member.close();
    }
    if (this.#members.length === 0) this.#stop();
  }

  stats(): MixerStats {
    let jitterUnderruns = this.#departedJitterUnderruns;
    let jitterDroppedSamples = this.#departedJitterDropped;
    for (const m of this.#members) {
      jitterUnderruns += m.jitter.underruns;
      jitterDroppedSamples += m.jitter.droppedSamples;
    }
    return {
      ...this.#stats,
      members: this.#members.length,
      jitterUnderruns,
      jitterDroppedSamples,
      composeMsMean: this.#stats.videoFrames > 0 ? this.#composeMsTotal / this.#stats.videoFrames : 0,
      mixMsMean: this.#stats.audioTicks > 0 ? this.#mixMsTotal / this.#stats.audioTicks : 0,
    };
  }

  #start(): void {
    if (this.#audioTimer !== null || this.#closed) return;
    this.#audioStart = performance.now();
    this.#audioFrames = 0;
    this.#videoStart = this.#audioStart;
    this.#videoFramesDue = 0;
    this.#scheduleAudio();
    this.#scheduleVideo();
  }

  #stop(): void {
    if (this.#audioTimer) clearTimeout(this.#audioTimer);
    if (this.#videoTimer) clearTimeout(this.#videoTimer);
    this.#audioTimer = null;
    this.#videoTimer = null;
  }

  // Deadline-driven clocks: each tick is scheduled against the start time, so timer
  // jitter does not accumulate into drift.
  #scheduleAudio(): void {
    const next = this.#audioStart + (this.#audioFrames + 1) * FRAME_MS;
    this.#audioTimer = setTimeout(() => this.#audioTick(), Math.max(0, next - performance.now()));
  }

  #audioTick(): void {
    if (this.#closed || this.#members.length === 0) return;
    const now = performance.now();
    let due = Math.floor((now - this.#audioStart) / FRAME_MS) - this.#audioFrames;
    if (due > MAX_CATCH_UP_FRAMES) {
      this.#stats.audioTicksSkipped += due - 1;
      this.#audioFrames += due - 1;
      due = 1;
    }
    // One mix per timer callback: when behind, the next callback comes at once, and the sink
    // audio that queued up during a stall is read in between (a burst of mixes would drain
    // every member's jitter buffer before its input is handled).
    const run = Math.min(Math.max(due, 0), 1);
    if (run > 0) this.#mixAudio();
    this.#audioFrames += run;
    this.#scheduleAudio();
  }

  #mixAudio(): void {
    const t0 = performance.now();
    const members = this.#members;
    this.#inputs.length = members.length;
    this.#outputs.length = members.length;
    for (let i = 0; i < members.length; i++) {
      const m = members[i]!;
      const got = m.jitter.pull(m.frame);
      if (!got) this.#stats.inputUnderruns++;
      this.#inputs[i] = got && !m.audioMuted ? m.frame : null;
      this.#outputs[i] = m.output;
    }
    mixMinusOne(this.#inputs, this.#outputs);
    for (const m of members) {
      m.audioSource.onData({
        samples: m.output,
        sampleRate: MIX_RATE,
        bitsPerSample: 16,
        channelCount: 1,
        numberOfFrames: FRAME_SAMPLES,
      });
    }
    this.#stats.audioTicks++;
    this.#mixMsTotal += performance.now() - t0;
  }

  #scheduleVideo(): void {
    const interval = 1000 / this.#opts.fps;
    const next = this.#videoStart + (this.#videoFramesDue + 1) * interval;
    this.#videoTimer = setTimeout(() => this.#videoTick(), Math.max(0, next - performance.now()));
  }

  #videoTick(): void {
    if (this.#closed || this.#members.length === 0) return;
    const interval = 1000 / this.#opts.fps;
    const due = Math.floor((performance.now() - this.#videoStart) / interval);
    // Video never catches up in a burst: a late frame is replaced by the next one.
    if (due - this.#videoFramesDue > 1) this.#stats.videoFramesSkipped += due - this.#videoFramesDue - 1;
    this.#videoFramesDue = Math.max(due, this.#videoFramesDue + 1);
    const t0 = performance.now();
    const frame = this.#composer.compose(this.#members.map((m) => ({ frame: m.latestVideo, muted: m.videoMuted })));
    this.#videoSource.onFrame(frame);
    this.#stats.videoFrames++;
    this.#composeMsTotal += performance.now() - t0;
    this.#scheduleVideo();
  }

  /** Idempotent: stops the clocks and every member's tracks. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop();
    for (const m of this.#members) m.close();
    this.#members.length = 0;
    this.#gridTrack?.stop();
    this.#gridTrack = null;
  }
}
