/**
 * N-1 ("mix-minus") audio mixing: every participant hears everyone but themselves,
 * so nobody gets their own voice back as an echo. Pure code over 10 ms Int16 frames.
 */
import { FRAME_SAMPLES } from './audio-frames.ts';

/** Clamps to the Int16 range, so loud overlaps clip instead of wrapping to the opposite rail (a loud crack). */
export function saturate16(x: number): number {
  return x > 32767 ? 32767 : x < -32768 ? -32768 : x;
}

/** Reused when the caller passes no scratch: the mixer runs every 10 ms and should not allocate. */
let sharedTotal = new Int32Array(FRAME_SAMPLES);

/**
 * outputs[i] = saturate(sum of inputs[j] for every j != i with inputs[j] non-null).
 * A null input (muted, no audio yet, underrun) contributes nothing. The total is summed once in
 * Int32 (16 x 32767 fits easily) and each own contribution subtracted, so the cost is O(N) frames,
 * not O(N^2). All frames must have the same length (normally FRAME_SAMPLES).
 *
 * @param scratch Int32Array of at least the frame length; defaults to a module-level buffer.
 */
export function mixMinusOne(inputs: ReadonlyArray<Int16Array | null>, outputs: Int16Array[], scratch?: Int32Array): void {
  const n = inputs.length;
  if (outputs.length !== n) throw new RangeError(`mixMinusOne needs one output per input: ${n} inputs, ${outputs.length} outputs`);
  if (n === 0) return;
  const len = outputs[0].length;
  for (let i = 0; i < n; i++) {
    const input = inputs[i];
    if (outputs[i].length !== len || (input !== null && input.length !== len)) {
      throw new RangeError(`mixMinusOne frames must all be ${len} samples (participant ${i})`);
    }
  }

  let total = scratch;
  if (total === undefined) {
    if (sharedTotal.length < len) sharedTotal = new Int32Array(len);
    total = sharedTotal;
  } else if (total.length < len) {
    throw new RangeError(`mixMinusOne scratch holds ${total.length} samples, needs ${len}`);
  }

  let active = 0;
  for (let i = 0; i < n; i++) {
    const input = inputs[i];
    if (input === null) continue;
    if (active === 0) {
      for (let s = 0; s < len; s++) total[s] = input[s];
    } else {
      for (let s = 0; s < len; s++) total[s] += input[s];
    }
    active++;
  }

  for (let i = 0; i < n; i++) {
    const out = outputs[i];
    const own = inputs[i];
    if (active === 0 || (active === 1 && own !== null)) {
      // Nobody else is talking (this includes being alone in the room).
      out.fill(0);
    } else if (own === null) {
      for (let s = 0; s < len; s++) {
        const v = total[s];
        out[s] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
      }
    } else {
      for (let s = 0; s < len; s++) {
        const v = total[s] - own[s];
        out[s] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
      }
    }
  }
}

/** Level of a frame in dBFS (0 for a full-scale square wave, -Infinity for digital silence). */
export function rmsDbfs(frame: Int16Array): number {
  if (frame.length === 0) return -Infinity;
  let sum = 0;
  for (let i = 0; i < frame.length; i++) sum += frame[i] * frame[i];
  const rms = Math.sqrt(sum / frame.length);
  return rms === 0 ? -Infinity : 20 * Math.log10(rms / 32768);
}
