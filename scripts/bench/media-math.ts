/**
 * Cost of the pure media math on this host, to size the mixer's budget: mixMinusOne runs every
 * 10 ms per room, GridComposer.compose at 15 fps per room. Fixed iteration counts (a few seconds
 * in all). Prints a table and writes bench-results/media-math.json.
 *
 *   node --import tsx scripts/bench/media-math.ts [--out bench-results/media-math.json]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { AudioJitterBuffer, FRAME_SAMPLES, StreamResampler } from '../../mcu/src/media/audio-frames.ts';
import { mixMinusOne } from '../../mcu/src/media/audio-mixer.ts';
import { GridComposer, createI420, type I420Frame } from '../../mcu/src/media/i420.ts';
import { projectRoot } from '../common/processes.ts';
import { parseBenchArgs } from './common/args.ts';

interface Result {
  name: string;
  iterations: number;
  usPerCall: number;
  /** Share of one core at the rate the MCU calls it (100/s for audio, 15/s for video). */
  corePercentAtRate: number;
}

/** Median of several timed batches, so one GC pause or scheduler hiccup does not decide. */
function bench(name: string, callsPerSecond: number, iterations: number, fn: () => void): Result {
  for (let i = 0; i < Math.max(10, iterations / 10); i++) fn();
  const batches = 5;
  const per = Math.max(1, Math.floor(iterations / batches));
  const samples: number[] = [];
  for (let b = 0; b < batches; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < per; i++) fn();
    samples.push(Number(process.hrtime.bigint() - t0) / 1000 / per);
  }
  samples.sort((a, b) => a - b);
  const usPerCall = samples[Math.floor(batches / 2)];
  return {
    name,
    iterations: per * batches,
    usPerCall: round(usPerCall),
    corePercentAtRate: round((usPerCall * callsPerSecond) / 1e4),
  };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** A 320x240 frame with some structure (gradients), like a decoded camera frame. */
function cameraFrame(seed: number): I420Frame {
  const f = createI420(320, 240);
  const { data } = f;
  for (let y = 0; y < 240; y++) for (let x = 0; x < 320; x++) data[y * 320 + x] = (x + y + seed * 37) & 0xff;
  for (let i = 320 * 240; i < data.length; i++) data[i] = (i * 7 + seed) & 0xff;
  return f;
}

const args = parseBenchArgs({
  command: 'scripts/bench/media-math.ts',
  summary: 'Cost of the pure media math (mixMinusOne, GridComposer.compose, resampler, jitter buffer) on this host, fixed iteration counts.',
  options: {
    out: { type: 'string', default: join(projectRoot, 'bench-results', 'media-math.json'), help: 'report file' },
  },
});

const results: Result[] = [];

for (const n of [3, 8, 16]) {
  const inputs = Array.from({ length: n }, (_, p) => {
    const f = new Int16Array(FRAME_SAMPLES);
    for (let i = 0; i < f.length; i++) f[i] = Math.round(8000 * Math.sin((i + p * 13) / 7));
    return f;
  });
  const outputs = Array.from({ length: n }, () => new Int16Array(FRAME_SAMPLES));
  const scratch = new Int32Array(FRAME_SAMPLES);
  results.push(bench(`mixMinusOne ${n} participants`, 100, 20000, () => mixMinusOne(inputs, outputs, scratch)));
}

for (const n of [1, 3, 4, 9, 16]) {
  const composer = new GridComposer(640, 480);
  const tiles = Array.from({ length: n }, (_, i) => ({ frame: cameraFrame(i), muted: false }));
  results.push(bench(`GridComposer.compose ${n} tiles 320x240 -> 640x480`, 15, n > 4 ? 300 : 500, () => composer.compose(tiles)));
}

{
  // Per participant and 10 ms frame: the sink's early 16 kHz frames, the settled 48 kHz ones, and the FIFO.
  const r16 = new StreamResampler();
  const f16 = { samples: new Int16Array(160).map((_, i) => 1000 * Math.sin(i / 3)), sampleRate: 16000, channelCount: 1, numberOfFrames: 160 };
  results.push(bench('StreamResampler.push 16 kHz/160 mono', 100, 50000, () => { r16.push(f16); }));
  const r48 = new StreamResampler();
  const f48 = { samples: new Int16Array(960).map((_, i) => 1000 * Math.sin(i / 9)), sampleRate: 48000, channelCount: 2, numberOfFrames: 480 };
  results.push(bench('StreamResampler.push 48 kHz/480 stereo', 100, 50000, () => { r48.push(f48); }));
  const jb = new AudioJitterBuffer();
  const frame = new Int16Array(FRAME_SAMPLES);
  const out = new Int16Array(FRAME_SAMPLES);
  jb.push(frame);
  results.push(bench('AudioJitterBuffer push+pull 480', 100, 50000, () => { jb.push(frame); jb.pull(out); }));
}

const width = Math.max(...results.map((r) => r.name.length));
console.log(`${'benchmark'.padEnd(width)}  ${'us/call'.padStart(10)}  ${'% core at rate'.padStart(14)}`);
for (const r of results) {
  console.log(`${r.name.padEnd(width)}  ${r.usPerCall.toFixed(2).padStart(10)}  ${r.corePercentAtRate.toFixed(3).padStart(14)}`);
}

const outFile = args.out;
mkdirSync(dirname(outFile), { recursive: true });
writeFileSync(outFile, JSON.stringify({
  date: new Date().toISOString(),
  node: process.version,
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: cpus().length,
  loadavg1m: round(loadavg()[0]),
  results,
}, null, 2) + '\n');
console.log(`written ${outFile}`);
