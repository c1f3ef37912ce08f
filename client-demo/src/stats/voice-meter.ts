/**
 * The voice meter: every 10 ms, the level of each participant's tone in what the page plays
 * (AnalyserNode FFT energy at the tone), stamped with performance.now() when read, kept for the
 * last 30 s. perceived-gaps.ts turns the series into voice gaps.
 *
 * Its own analyser, not the tone-level one: a 1024-point FFT at 48 kHz sees the last 21 ms
 * (the 8192-point one sees 171 ms, which would blur a 10 ms sampling into 171 ms steps), with
 * 47 Hz bins, fine enough for tones at least 350 Hz apart (the Blackman window's main lobe is
 * +-3 bins). A symmetric window shifts both ends of a dropout by the same ~half window, so the
 * length of a gap is kept.
 */
import type { VoiceHistory } from './perceived-gaps.ts';

/** Sampling period, ms. */
export const VOICE_SAMPLE_MS = 10;
/** History kept, ms. */
export const VOICE_HISTORY_MS = 30_000;
const FFT_SIZE = 1024;
/** Level recorded for a tone the analyser has no reading of (no audio yet): finite, so it serialises. */
export const NO_LEVEL_DB = -200;

export class VoiceMeter {
  readonly #context: AudioContext;
  readonly #analyser: AnalyserNode;
  readonly #tones: readonly number[];
  readonly #bins: Float32Array<ArrayBuffer>;
  readonly #times: number[] = [];
  readonly #levels: Record<string, number[]> = {};
  #timer: ReturnType<typeof setInterval> | null;
  #closed = false;

  /** Samples the level of each of `tones` (Hz) in `input` every VOICE_SAMPLE_MS. */
  constructor(context: AudioContext, input: AudioNode, tones: readonly number[]) {
    this.#context = context;
    this.#tones = [...tones];
    this.#analyser = context.createAnalyser();
    this.#analyser.fftSize = FFT_SIZE;
    this.#analyser.smoothingTimeConstant = 0;
    this.#bins = new Float32Array(this.#analyser.frequencyBinCount);
    for (const hz of this.#tones) this.#levels[String(hz)] = [];
    input.connect(this.#analyser);
    this.#timer = setInterval(() => this.#sample(), VOICE_SAMPLE_MS);
  }

  /** The series so far (live arrays: read, do not keep). */
  get history(): VoiceHistory {
    return { times: this.#times, levels: this.#levels };
  }

  get tones(): readonly number[] {
    return this.#tones;
  }

  #sample(): void {
    const now = performance.now();
    this.#analyser.getFloatFrequencyData(this.#bins);
    const binHz = this.#context.sampleRate / FFT_SIZE;
    this.#times.push(now);
    for (const hz of this.#tones) {
      const centre = Math.round(hz / binHz);
      let peak = -Infinity;
      for (let b = Math.max(0, centre - 1); b <= Math.min(this.#bins.length - 1, centre + 1); b++) peak = Math.max(peak, this.#bins[b]!);
      this.#levels[String(hz)]!.push(Number.isFinite(peak) ? Math.max(peak, NO_LEVEL_DB) : NO_LEVEL_DB);
    }
    // Bounded: drop what is older than the history, in batches (shifting 3000 entries every 10 ms would cost more than the sampling).
    let old = 0;
    while (old < this.#times.length && now - this.#times[old]! > VOICE_HISTORY_MS) old++;
    if (old >= 100) {
      this.#times.splice(0, old);
      for (const hz of this.#tones) this.#levels[String(hz)]!.splice(0, old);
    }
  }

  /** Idempotent: stops sampling and detaches the analyser. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.#analyser.disconnect();
  }
}
