/**
 * The voice meter: every 10 ms, the level of each participant's tone in what the page plays,
 * stamped on the sample clock (the audio context's frames, converted to performance.now()),
 * kept for the last 30 s. perceived-gaps.ts turns the series into voice gaps.
 *
 * Measured on the audio rendering thread (an AudioWorklet), not by reading an AnalyserNode from
 * a page timer: the page's main thread stalls for 50-120 ms at a time on this 2-core machine with
 * three pages (seen in test/browser/mix.test.ts), and an analyser read late has missed what
 * played in between: the stall would read as a voice gap. The worklet sees every sample and its
 * readings queue up until the main thread takes them. Each reading is the energy at each tone
 * (Goertzel) over the last 20 ms (960 samples, Blackman window: main lobe +-150 Hz, side lobes
 * -58 dB, so tones at least 350 Hz apart do not leak into each other), every 10 ms. A symmetric
 * window shifts both ends of a dropout by the same ~10 ms, so the length of a gap is kept.
 *
 * AudioWorklet exists only in a secure context: a page served over plain HTTP from another host
 * (takeover mode in the lab, behind no TLS) falls back to an AnalyserNode (1024 points: the last
 * 21 ms, 47 Hz bins) read every 10 ms by a page timer, stamped with performance.now() at the
 * read; there a stall of the page's main thread counts as a gap (`method` says which ran).
 */
import type { VoiceHistory } from './perceived-gaps.ts';

/** Sampling period, ms. */
export const VOICE_SAMPLE_MS = 10;
/** Analysis window, ms. */
export const VOICE_WINDOW_MS = 20;
/** History kept, ms. */
export const VOICE_HISTORY_MS = 30_000;
/** Level recorded for a tone with no energy at all (no audio yet): finite, so it serialises. */
export const NO_LEVEL_DB = -200;

/**
 * The worklet, as source text (loaded from a Blob URL: the page is one bundle). Levels are dBFS
 * of the tone's amplitude: a full-scale sine reads 0 dB.
 */
const PROCESSOR_SOURCE = `
registerProcessor('voice-meter', class extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { tones, windowSamples, hopSamples } = options.processorOptions;
    this.tones = tones;
    this.size = windowSamples;
    this.hop = hopSamples;
    this.ring = new Float32Array(windowSamples);
    this.at = 0;
    this.filled = 0;
    this.sinceHop = 0;
    this.window = new Float32Array(windowSamples);
    let sum = 0;
    for (let i = 0; i < windowSamples; i++) {
      const x = (2 * Math.PI * i) / (windowSamples - 1);
      this.window[i] = 0.42 - 0.5 * Math.cos(x) + 0.08 * Math.cos(2 * x);
      sum += this.window[i];
    }
    this.windowSum = sum;
    this.coeff = tones.map((f) => 2 * Math.cos((2 * Math.PI * f) / sampleRate));
  }
  process(inputs) {
    const channels = inputs[0] || [];
    const n = channels.length;
    const block = n > 0 ? channels[0].length : 128;
    for (let i = 0; i < block; i++) {
      let x = 0;
      for (let c = 0; c < n; c++) x += channels[c][i];
      this.ring[this.at] = n > 0 ? x / n : 0;
      this.at = (this.at + 1) % this.size;
      if (this.filled < this.size) this.filled++;
      if (++this.sinceHop < this.hop || this.filled < this.size) continue;
      this.sinceHop = 0;
      const levels = [];
      for (let t = 0; t < this.tones.length; t++) {
        const k = this.coeff[t];
        let s1 = 0;
        let s2 = 0;
        for (let j = 0; j < this.size; j++) {
          const s = this.ring[(this.at + j) % this.size] * this.window[j] + k * s1 - s2;
          s2 = s1;
          s1 = s;
        }
        const power = Math.max(0, s1 * s1 + s2 * s2 - k * s1 * s2);
        const amplitude = (2 * Math.sqrt(power)) / this.windowSum;
        levels.push(amplitude > 0 ? 20 * Math.log10(amplitude) : -Infinity);
      }
      // Stamped at the window's centre, on the sample clock.
      this.port.postMessage({ frame: currentFrame + i + 1 - this.size / 2, levels });
    }
    return true;
  }
});
`;

/** How the levels are read: on the audio thread, or from an analyser by a page timer (no AudioWorklet outside a secure context). */
export type VoiceMeterMethod = 'worklet' | 'analyser';

export class VoiceMeter {
  readonly #context: AudioContext;
  readonly method: VoiceMeterMethod;
  #analyser: AnalyserNode | null = null;
  #timer: ReturnType<typeof setInterval> | null = null;
  readonly #tones: readonly number[];
  readonly #times: number[] = [];
  readonly #levels: Record<string, number[]> = {};
  #node: AudioWorkletNode | null = null;
  #mute: GainNode | null = null;
  #closed = false;

  /** Measures the level of each of `tones` (Hz) in `input` every VOICE_SAMPLE_MS, from when the worklet is loaded. */
  constructor(context: AudioContext, input: AudioNode, tones: readonly number[]) {
    this.#context = context;
    this.#tones = [...tones];
    for (const hz of this.#tones) this.#levels[String(hz)] = [];
    // context.audioWorklet is undefined outside a secure context.
    this.method = (context as { audioWorklet?: AudioWorklet }).audioWorklet ? 'worklet' : 'analyser';
    if (this.method === 'worklet') void this.#start(input).catch((err: unknown) => console.warn('voice meter unavailable:', err));
    else this.#startAnalyser(input);
  }

  #startAnalyser(input: AudioNode): void {
    const size = 1024;
    const analyser = (this.#analyser = this.#context.createAnalyser());
    analyser.fftSize = size;
    analyser.smoothingTimeConstant = 0;
    input.connect(analyser);
    const bins = new Float32Array(analyser.frequencyBinCount);
    const binHz = this.#context.sampleRate / size;
    this.#timer = setInterval(() => {
      analyser.getFloatFrequencyData(bins);
      const levels = this.#tones.map((hz) => {
        const centre = Math.round(hz / binHz);
        let peak = -Infinity;
        for (let b = Math.max(0, centre - 1); b <= Math.min(bins.length - 1, centre + 1); b++) peak = Math.max(peak, bins[b]!);
        return peak;
      });
      this.#push(performance.now(), levels);
    }, VOICE_SAMPLE_MS);
  }

  async #start(input: AudioNode): Promise<void> {
    const url = URL.createObjectURL(new Blob([PROCESSOR_SOURCE], { type: 'text/javascript' }));
    try {
      await this.#context.audioWorklet.addModule(url);
    } finally {
      URL.revokeObjectURL(url);
    }
    if (this.#closed) return;
    const rate = this.#context.sampleRate;
    const node = (this.#node = new AudioWorkletNode(this.#context, 'voice-meter', {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      processorOptions: { tones: this.#tones, windowSamples: Math.round((rate * VOICE_WINDOW_MS) / 1000), hopSamples: Math.round((rate * VOICE_SAMPLE_MS) / 1000) },
    }));
    node.port.onmessage = (e: MessageEvent<{ frame: number; levels: number[] }>) => this.#record(e.data.frame, e.data.levels);
    input.connect(node);
    // Rendered only when something pulls it: into the destination, silenced.
    this.#mute = this.#context.createGain();
    this.#mute.gain.value = 0;
    node.connect(this.#mute).connect(this.#context.destination);
  }

  /** The series so far (live arrays: read, do not keep). */
  get history(): VoiceHistory {
    return { times: this.#times, levels: this.#levels };
  }

  get tones(): readonly number[] {
    return this.#tones;
  }

  /** One reading: `frame` on the sample clock, mapped to performance.now() through the context's latest output timestamp. */
  #record(frame: number, levels: number[]): void {
    const stamp = this.#context.getOutputTimestamp();
    const contextTime = stamp.contextTime ?? this.#context.currentTime;
    const performanceTime = stamp.performanceTime ?? performance.now();
    this.#push(performanceTime + (frame / this.#context.sampleRate - contextTime) * 1000, levels);
  }

  #push(at: number, levels: number[]): void {
    // Ascending times (the worklet's mapping is re-read per reading and may wobble by a fraction of a ms).
    const last = this.#times.at(-1);
    this.#times.push(last !== undefined && at < last ? last : at);
    this.#tones.forEach((hz, i) => {
      const level = levels[i] ?? -Infinity;
      this.#levels[String(hz)]!.push(Number.isFinite(level) ? Math.max(level, NO_LEVEL_DB) : NO_LEVEL_DB);
    });
    // Bounded: drop what is older than the history, in batches (shifting 3000 entries every 10 ms would cost more than the sampling).
    const now = this.#times.at(-1)!;
    let old = 0;
    while (old < this.#times.length && now - this.#times[old]! > VOICE_HISTORY_MS) old++;
    if (old >= 100) {
      this.#times.splice(0, old);
      for (const hz of this.#tones) this.#levels[String(hz)]!.splice(0, old);
    }
  }

  /** Idempotent: stops measuring and detaches the worklet. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.#analyser?.disconnect();
    if (this.#node) {
      this.#node.port.onmessage = null;
      this.#node.disconnect();
    }
    this.#mute?.disconnect();
  }
}
