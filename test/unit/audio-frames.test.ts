import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AudioJitterBuffer, FRAME_SAMPLES, MIX_RATE, StreamResampler } from '../../mcu/src/media/audio-frames.ts';

const AMPLITUDE = 10000;

/** A continuous sine cut into sink-like frames: sample k of the stream is at time k / rate. */
class SineSource {
  private t = 0; // seconds
  constructor(private readonly freq: number) {}
  frame(rate: number, frames: number, channelCount = 1) {
    const samples = new Int16Array(frames * channelCount);
    for (let i = 0; i < frames; i++) {
      const v = Math.round(AMPLITUDE * Math.sin(2 * Math.PI * this.freq * (this.t + i / rate)));
      for (let c = 0; c < channelCount; c++) samples[i * channelCount + c] = v;
    }
    this.t += frames / rate;
    return { samples, sampleRate: rate, channelCount, numberOfFrames: frames };
  }
}

function concat(chunks: Int16Array[]): Int16Array {
  const out = new Int16Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** Power of `x` at `freq` (Goertzel), normalised by length. */
function goertzel(x: Int16Array, freq: number, rate: number): number {
  const coeff = 2 * Math.cos((2 * Math.PI * freq) / rate);
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < x.length; i++) {
    const s0 = x[i] + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (x.length * x.length);
}

function zeroCrossings(x: Int16Array): number {
  let n = 0;
  for (let i = 1; i < x.length; i++) if ((x[i - 1] < 0) !== (x[i] < 0)) n++;
  return n;
}

function maxStep(x: Int16Array): number {
  let m = 0;
  for (let i = 1; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - x[i - 1]));
  return m;
}

/** Largest sample-to-sample step a clean sine of this frequency can make at 48 kHz, plus rounding. */
function sineStepLimit(freq: number): number {
  return AMPLITUDE * 2 * Math.sin((Math.PI * freq) / MIX_RATE) + 2;
}

describe('StreamResampler', () => {
  it('turns 16 kHz/160-sample frames into about 480 samples per frame', () => {
    const r = new StreamResampler();
    const src = new SineSource(1000);
    const lengths: number[] = [];
    for (let k = 0; k < 100; k++) lengths.push(r.push(src.frame(16000, 160)).length);
    // The first frame has no previous sample to interpolate from, so it is 2 short; then exactly 480.
    assert.equal(lengths[0], 478);
    assert.ok(lengths.slice(1).every((n) => n === 480), `lengths: ${lengths.join(',')}`);
  });

  it('keeps a 1 kHz sine a 1 kHz sine, continuous across frame boundaries', () => {
    const r = new StreamResampler();
    const src = new SineSource(1000);
    const chunks: Int16Array[] = [];
    for (let k = 0; k < 50; k++) chunks.push(r.push(src.frame(16000, 160)).slice());
    const out = concat(chunks); // 0.5 s

    // Output sample k is at time k / 48000: compare with the ideal 48 kHz sine.
    let maxErr = 0;
    for (let k = 0; k < out.length; k++) {
      maxErr = Math.max(maxErr, Math.abs(out[k] - AMPLITUDE * Math.sin((2 * Math.PI * 1000 * k) / MIX_RATE)));
    }
    assert.ok(maxErr < 0.03 * AMPLITUDE, `max error ${maxErr}`);

    const onTone = goertzel(out, 1000, MIX_RATE);
    for (const off of [500, 1500, 3000, 15000, 17000]) {
      assert.ok(onTone > 1000 * goertzel(out, off, MIX_RATE), `tone vs ${off} Hz`);
    }
    const crossings = zeroCrossings(out);
    assert.ok(Math.abs(crossings - 1000) <= 2, `zero crossings ${crossings}`);
    assert.ok(maxStep(out) <= sineStepLimit(1000), `max step ${maxStep(out)}`);
  });

  it('carries the fractional phase with frame sizes that do not divide evenly (44.1 kHz, odd 16 kHz frames)', () => {
    for (const [rate, frames] of [[44100, 441], [16000, 157], [32000, 333]] as const) {
      const r = new StreamResampler();
      const src = new SineSource(440);
      const chunks: Int16Array[] = [];
      for (let k = 0; k < 40; k++) chunks.push(r.push(src.frame(rate, frames)).slice());
      const out = concat(chunks);
      const expected = (40 * frames * MIX_RATE) / rate;
      assert.ok(Math.abs(out.length - expected) <= 3, `${rate}: ${out.length} vs ${expected}`);
      assert.ok(maxStep(out) <= sineStepLimit(440), `${rate}: max step ${maxStep(out)}`);
      let maxErr = 0;
      for (let k = 0; k < out.length; k++) {
        maxErr = Math.max(maxErr, Math.abs(out[k] - AMPLITUDE * Math.sin((2 * Math.PI * 440 * k) / MIX_RATE)));
      }
      assert.ok(maxErr < 0.02 * AMPLITUDE, `${rate}: max error ${maxErr}`);
    }
  });

  it('switches from 16 kHz/160 to 48 kHz/480 mid-stream without a click, then passes 48 kHz through', () => {
    const r = new StreamResampler();
    const src = new SineSource(700);
    const chunks: Int16Array[] = [];
    for (let k = 0; k < 20; k++) chunks.push(r.push(src.frame(16000, 160)).slice());
    assert.equal(r.inputRate, 16000);
    const inputs48: Int16Array[] = [];
    for (let k = 0; k < 20; k++) {
      const f = src.frame(48000, 480);
      inputs48.push(f.samples);
      chunks.push(r.push(f).slice());
    }
    assert.equal(r.inputRate, 48000);
    const out = concat(chunks);
    assert.ok(Math.abs(out.length - 40 * 480) <= 3, `length ${out.length}`);
    assert.ok(maxStep(out) <= sineStepLimit(700), `max step ${maxStep(out)}`);
    // Once settled at 48 kHz the samples come out untouched, and exactly one frame per frame.
    for (let k = 1; k < 20; k++) assert.deepEqual(chunks[20 + k], inputs48[k]);
    assert.ok(Math.abs(zeroCrossings(out) - 2 * 700 * 0.4) <= 2);
  });

  it('keeps the time base exact across a rate switch at any phase', () => {
    for (const [rate, frames] of [[16000, 157], [16000, 151], [44100, 441], [32000, 317]] as const) {
      const r = new StreamResampler();
      const src = new SineSource(500);
      const chunks: Int16Array[] = [];
      for (let k = 0; k < 7; k++) chunks.push(r.push(src.frame(rate, frames)).slice());
      for (let k = 0; k < 5; k++) chunks.push(r.push(src.frame(48000, 480)).slice());
      const out = concat(chunks);
      // Output sample k is still at time k / 48000 after the switch: no slice skipped or repeated.
      let maxErr = 0;
      for (let k = 0; k < out.length; k++) {
        maxErr = Math.max(maxErr, Math.abs(out[k] - AMPLITUDE * Math.sin((2 * Math.PI * 500 * k) / MIX_RATE)));
      }
      assert.ok(maxErr < 0.02 * AMPLITUDE, `${rate}/${frames}: max error ${maxErr}`);
      assert.ok(maxStep(out) <= sineStepLimit(500), `${rate}/${frames}: max step ${maxStep(out)}`);
    }
  });

  it('switches back down from 48 kHz to 16 kHz cleanly', () => {
    const r = new StreamResampler();
    const src = new SineSource(700);
    const chunks: Int16Array[] = [];
    for (let k = 0; k < 10; k++) chunks.push(r.push(src.frame(48000, 480)).slice());
    for (let k = 0; k < 10; k++) chunks.push(r.push(src.frame(16000, 160)).slice());
    const out = concat(chunks);
    assert.ok(Math.abs(out.length - 20 * 480) <= 3);
    assert.ok(maxStep(out) <= sineStepLimit(700));
  });

  it('downmixes interleaved stereo by averaging', () => {
    const r = new StreamResampler();
    const samples = new Int16Array(960);
    for (let i = 0; i < 480; i++) {
      samples[2 * i] = 1000;
      samples[2 * i + 1] = 3000;
    }
    const out = r.push({ samples, sampleRate: 48000, channelCount: 2, numberOfFrames: 480 });
    assert.equal(out.length, 480);
    assert.ok(out.every((v) => v === 2000));

    // Opposite channels cancel; full-scale channels do not overflow.
    for (let i = 0; i < 480; i++) {
      samples[2 * i] = 32767;
      samples[2 * i + 1] = i % 2 === 0 ? 32767 : -32767;
    }
    const out2 = r.push({ samples, sampleRate: 48000, channelCount: 2, numberOfFrames: 480 });
    assert.equal(out2[0], 32767);
    assert.equal(out2[1], 0);

    // A stereo sine at 16 kHz is still the same sine.
    const r2 = new StreamResampler();
    const src = new SineSource(1000);
    const chunks: Int16Array[] = [];
    for (let k = 0; k < 20; k++) chunks.push(r2.push(src.frame(16000, 160, 2)).slice());
    const mono = concat(chunks);
    assert.ok(Math.abs(zeroCrossings(mono) - 400) <= 2);
  });

  it('derives numberOfFrames when absent and rejects impossible frames', () => {
    const r = new StreamResampler();
    assert.equal(r.push({ samples: new Int16Array(480), sampleRate: 48000, channelCount: 1 }).length, 480);
    assert.throws(() => r.push({ samples: new Int16Array(100), sampleRate: 48000, channelCount: 1, numberOfFrames: 480 }), RangeError);
    assert.throws(() => r.push({ samples: new Int16Array(480), sampleRate: 48000, channelCount: 6 }), RangeError);
    assert.throws(() => r.push({ samples: new Int16Array(480), sampleRate: 0, channelCount: 1 }), RangeError);
  });
});

/** Samples whose values are their stream positions (mod 2^15), to check order and continuity. */
class Counter {
  next = 0;
  chunk(n: number): Int16Array {
    const c = new Int16Array(n);
    for (let i = 0; i < n; i++) c[i] = this.next++ & 0x7fff;
    return c;
  }
}

describe('AudioJitterBuffer', () => {
  it('waits for the 20 ms prefill before the first frame', () => {
    const jb = new AudioJitterBuffer();
    const out = new Int16Array(FRAME_SAMPLES);
    assert.equal(jb.prefill, 960);
    assert.equal(jb.capacity, 4800);
    jb.push(new Int16Array(480));
    assert.equal(jb.pull(out), false);
    assert.equal(jb.state, 'buffering');
    assert.equal(jb.underruns, 0, 'not having started yet is not an underrun');
    jb.push(new Int16Array(480));
    assert.equal(jb.pull(out), true);
    assert.equal(jb.state, 'playing');
    assert.equal(jb.depth, 480);
  });

  it('counts an underrun, consumes nothing partial, and prefills again before resuming', () => {
    const jb = new AudioJitterBuffer();
    const counter = new Counter();
    const out = new Int16Array(FRAME_SAMPLES);
    jb.push(counter.chunk(960));
    assert.equal(jb.pull(out), true);
    assert.equal(jb.pull(out), true);
    jb.push(counter.chunk(300));
    out.fill(-1);
    assert.equal(jb.pull(out), false);
    assert.equal(jb.underruns, 1);
    assert.equal(jb.depth, 300, 'the partial frame stays buffered');
    assert.ok(out.every((v) => v === -1), 'out is untouched on underrun');
    assert.equal(jb.state, 'buffering');

    jb.push(counter.chunk(480)); // 780 < 960: still prefilling, even though a frame is there
    assert.equal(jb.pull(out), false);
    assert.equal(jb.underruns, 1, 'prefilling is not another underrun');
    jb.push(counter.chunk(480)); // 1260
    assert.equal(jb.pull(out), true);
    assert.equal(out[0], 960, 'resumes exactly where it stopped');
    assert.equal(out[479], 960 + 479);
    assert.equal(jb.missedPulls, 2);
  });

  it('drops the oldest samples beyond the maximum depth and counts them', () => {
    const jb = new AudioJitterBuffer({ maxDepthMs: 100, prefillMs: 20 });
    const counter = new Counter();
    for (let k = 0; k < 12; k++) jb.push(counter.chunk(480)); // 5760 samples into 4800
    assert.equal(jb.depth, 4800);
    assert.equal(jb.droppedSamples, 960);
    const out = new Int16Array(FRAME_SAMPLES);
    assert.equal(jb.pull(out), true);
    assert.equal(out[0], 960, 'the newest 100 ms are kept');

    // A single push larger than the whole buffer keeps only its tail.
    const jb2 = new AudioJitterBuffer({ maxDepthMs: 10, prefillMs: 10 });
    const big = new Counter().chunk(1000);
    jb2.push(big);
    assert.equal(jb2.depth, 480);
    assert.equal(jb2.droppedSamples, 520);
    assert.equal(jb2.pull(out), true);
    assert.equal(out[0], 520);
  });

  it('keeps order across ring wrap-arounds with irregular push sizes', () => {
    const jb = new AudioJitterBuffer({ maxDepthMs: 30, prefillMs: 10 });
    const counter = new Counter();
    const out = new Int16Array(FRAME_SAMPLES);
    let expected = 0;
    const sizes = [160, 480, 333, 700, 17, 480, 960];
    for (let k = 0; k < 2000; k++) {
      jb.push(counter.chunk(sizes[k % sizes.length]));
      while (jb.pull(out)) {
        for (let i = 0; i < out.length; i++) {
          // Dropped samples are a jump forward, never a reorder.
          const got = out[i];
          if (got !== (expected & 0x7fff)) {
            assert.ok(jb.droppedSamples > 0, `sample ${expected}: got ${got}`);
            expected += ((got - expected) & 0x7fff);
          }
          expected++;
        }
      }
    }
    assert.ok(jb.depth <= jb.capacity);
  });

  it('rejects a prefill above the maximum depth', () => {
    assert.throws(() => new AudioJitterBuffer({ maxDepthMs: 20, prefillMs: 40 }), RangeError);
  });
});
