/**
 * Audio framing for the mixer: everything that arrives from RTCAudioSink is turned into
 * 48 kHz mono Int16 samples, buffered per participant, and handed out in 10 ms frames,
 * because RTCAudioSource.onData accepts exactly 10 ms (480 samples, 960 bytes) and nothing else.
 * Pure code over typed arrays: no wrtc objects, so it can be unit-tested and benchmarked.
 */

/** The mixer's sample rate: what the browsers' Opus decoders deliver once settled. */
export const MIX_RATE = 48000;
/** Samples in one mixer frame: 10 ms of mono at MIX_RATE. */
export const FRAME_SAMPLES = 480;

/** The shape of one RTCAudioSink `ondata` event, as far as resampling cares. */
export interface AudioSinkData {
  /** Interleaved when channelCount is 2. */
  samples: Int16Array;
  sampleRate: number;
  channelCount: number;
  /** Samples per channel; derived from samples.length when absent. */
  numberOfFrames?: number;
}

/**
 * Converts a stream of sink frames (any rate, mono or interleaved stereo) into 48 kHz mono.
 *
 * Linear interpolation with the phase and the last input sample carried across calls, so a
 * frame boundary is just another sample step (no click). wrtc starts a sink at 16 kHz/160 and
 * switches to 48 kHz/480 mid-stream: the segment from the last old-rate sample to the first
 * new-rate one is finished on the old grid, then the leftover phase carries on at the new rate,
 * so the output's time base stays exact (nothing skipped or repeated, no tick).
 */
export class StreamResampler {
  /** Output rate; positions below are counted in 1/outRate of an input sample, so they stay integers. */
  readonly outRate: number;
  private inRate = 0;
  /** Position of the next output sample, in 1/outRate input samples, relative to `prev`. */
  private pos = 0;
  /** Last input sample of the previous frame (virtual index 0). */
  private prev = 0;
  private started = false;
  /** Grown on demand and reused: push() returns a view of it. */
  private out = new Int16Array(FRAME_SAMPLES * 2);
  /** Mono copy of the current frame, reused. */
  private mono = new Int16Array(FRAME_SAMPLES);

  /** @param outRate output sample rate, default MIX_RATE (48000). */
  constructor(outRate: number = MIX_RATE) {
    if (!Number.isInteger(outRate) || outRate <= 0) throw new RangeError(`outRate must be a positive integer, got ${outRate}`);
    this.outRate = outRate;
  }

  /** Sample rate of the last frame pushed (0 before the first). */
  get inputRate(): number {
    return this.inRate;
  }

  /**
   * Converts one sink frame. Returns a view of an internal buffer that is valid until the next
   * push() (it is meant to go straight into an AudioJitterBuffer); copy it with slice() to keep it.
   */
  push(data: AudioSinkData): Int16Array {
    const { samples, sampleRate, channelCount } = data;
    if (!Number.isInteger(sampleRate) || sampleRate <= 0) throw new RangeError(`sampleRate must be a positive integer, got ${sampleRate}`);
    if (channelCount !== 1 && channelCount !== 2) throw new RangeError(`channelCount must be 1 or 2, got ${channelCount}`);
    const frames = data.numberOfFrames ?? Math.floor(samples.length / channelCount);
    if (!Number.isInteger(frames) || frames < 0 || frames * channelCount > samples.length) {
      throw new RangeError(`numberOfFrames ${frames} x ${channelCount} channels exceeds the ${samples.length} samples delivered`);
    }
    if (frames === 0) return this.out.subarray(0, 0);

    const x = this.toMono(samples, channelCount, frames);
    const OUT = this.outRate;

    const step = sampleRate;
    // Upper bound of outputs: the new-rate span, plus a rate-change segment of at most one old period.
    const maxOut = Math.ceil((frames * OUT) / step) + (this.inRate > 0 ? Math.ceil(OUT / this.inRate) : 0) + 2;
    if (this.out.length < maxOut) this.out = new Int16Array(maxOut * 2);
    const out = this.out;
    let n = 0;

    if (!this.started) {
      // Nothing before the first sample: pretend it was preceded by itself and start on it.
      this.started = true;
      this.prev = x[0];
      this.pos = OUT;
    } else if (sampleRate !== this.inRate) {
      // prev and x[0] are one sample period of the OLD rate apart: finish that segment on the old
      // grid, then carry the leftover phase over in new-rate units. Treating the gap as a new-rate
      // period instead would skip (or repeat) a slice of signal: an audible tick.
      const oldStep = this.inRate;
      const a = this.prev;
      const b = x[0];
      let pos = this.pos;
      while (pos <= OUT) {
        out[n++] = Math.round(a + ((b - a) * pos) / OUT);
        pos += oldStep;
      }
      this.pos = OUT + Math.max(1, Math.round(((pos - OUT) * sampleRate) / oldStep));
    }
    this.inRate = sampleRate;

    const end = frames * OUT; // virtual index `frames` is x[frames - 1]
    let idx = Math.floor(this.pos / OUT); // virtual index: 0 is prev, i >= 1 is x[i - 1]
    let frac = this.pos - idx * OUT;
    const prev = this.prev;
    while (idx < frames || (idx === frames && frac === 0)) {
      const a = idx === 0 ? prev : x[idx - 1];
      if (frac === 0) {
        out[n++] = a;
      } else {
        const b = x[idx]; // idx < frames here, so x[idx] is virtual idx + 1
        out[n++] = Math.round(a + ((b - a) * frac) / OUT);
      }
      frac += step;
      while (frac >= OUT) {
        frac -= OUT;
        idx++;
      }
    }
    this.pos = idx * OUT + frac - end;
    this.prev = x[frames - 1];
    return out.subarray(0, n);
  }

  /** Forgets the carried phase and sample, e.g. when the track is replaced. */
  reset(): void {
    this.started = false;
    this.inRate = 0;
    this.pos = 0;
    this.prev = 0;
  }

  private toMono(samples: Int16Array, channelCount: number, frames: number): Int16Array {
    if (channelCount === 1) return samples;
    if (this.mono.length < frames) this.mono = new Int16Array(frames);
    const mono = this.mono;
    for (let i = 0, j = 0; i < frames; i++, j += 2) {
      // Average rather than sum: a centred voice must not clip after downmix.
      mono[i] = (samples[j] + samples[j + 1]) >> 1;
    }
    return mono;
  }
}

/** Options of an AudioJitterBuffer. */
export interface AudioJitterBufferOptions {
  /** Most audio held, in ms; older samples are dropped beyond it to bound latency. Default 100. */
  maxDepthMs?: number;
  /** Audio needed before playing (at start and after an underrun), in ms, so playback does not stutter. Default 20. */
  prefillMs?: number;
  /** Rate of the samples pushed. Default MIX_RATE (48000). */
  sampleRate?: number;
}

/** Whether the buffer is waiting for its prefill or handing out frames. */
export type JitterBufferState = 'buffering' | 'playing';

/**
 * Per-participant FIFO between the sink's irregular deliveries and the mixer's 10 ms clock.
 * A fixed ring of Int16 samples: pushing and pulling never allocate.
 */
export class AudioJitterBuffer {
  /** Ring capacity in samples, equal to the maximum depth. */
  readonly capacity: number;
  /** Samples needed to leave 'buffering'. */
  readonly prefill: number;
  /** Samples discarded because the buffer was over its maximum depth. */
  droppedSamples = 0;
  /** Times playback starved ('playing' -> 'buffering'). */
  underruns = 0;
  /** pull() calls that returned false, including while prefilling; each is a frame of silence. */
  missedPulls = 0;
  private readonly ring: Int16Array;
  private readPos = 0;
  private count = 0;
  private _state: JitterBufferState = 'buffering';

  constructor(options: AudioJitterBufferOptions = {}) {
    const rate = options.sampleRate ?? MIX_RATE;
    const maxDepthMs = options.maxDepthMs ?? 100;
    const prefillMs = options.prefillMs ?? 20;
    if (!(maxDepthMs > 0)) throw new RangeError(`maxDepthMs must be > 0, got ${maxDepthMs}`);
    if (!(prefillMs >= 0) || prefillMs > maxDepthMs) {
      throw new RangeError(`prefillMs must be between 0 and maxDepthMs (${maxDepthMs}), got ${prefillMs}`);
    }
    this.capacity = Math.max(1, Math.round((rate * maxDepthMs) / 1000));
    this.prefill = Math.round((rate * prefillMs) / 1000);
    this.ring = new Int16Array(this.capacity);
  }

  /** Samples currently buffered. */
  get depth(): number {
    return this.count;
  }

  get state(): JitterBufferState {
    return this._state;
  }

  /** Appends samples; when that would exceed the capacity, the oldest ones go. */
  push(samples: Int16Array): void {
    const cap = this.capacity;
    // More than the whole capacity at once: only its newest part can survive.
    const start = samples.length > cap ? samples.length - cap : 0;
    this.droppedSamples += start;
    const len = samples.length - start;
    if (len === 0) return;
    const overflow = this.count + len - cap;
    if (overflow > 0) {
      this.readPos = (this.readPos + overflow) % cap;
      this.count -= overflow;
      this.droppedSamples += overflow;
    }
    const ring = this.ring;
    let w = this.readPos + this.count;
    if (w >= cap) w -= cap;
    // Plain loops instead of set(subarray()): no view objects per call.
    for (let i = start, e = samples.length; i < e; i++) {
      ring[w] = samples[i];
      if (++w === cap) w = 0;
    }
    this.count += len;
  }

  /**
   * Fills all of `out` (normally FRAME_SAMPLES) and returns true, or returns false and consumes
   * nothing when the buffer is prefilling or holds less than out.length samples.
   */
  pull(out: Int16Array): boolean {
    const len = out.length;
    if (this._state === 'buffering') {
      if (this.count < this.prefill || this.count < len) {
        this.missedPulls++;
        return false;
      }
      this._state = 'playing';
    }
    if (this.count < len) {
      this._state = 'buffering';
      this.underruns++;
      this.missedPulls++;
      return false;
    }
    const ring = this.ring;
    const cap = this.capacity;
    let r = this.readPos;
    for (let i = 0; i < len; i++) {
      out[i] = ring[r];
      if (++r === cap) r = 0;
    }
    this.readPos = r;
    this.count -= len;
    return true;
  }

  /** Drops everything buffered and waits for the prefill again; counters are kept. */
  clear(): void {
    this.readPos = 0;
    this.count = 0;
    this._state = 'buffering';
  }
}
