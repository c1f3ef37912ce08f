import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FRAME_SAMPLES } from '../../mcu/src/media/audio-frames.ts';
import { mixMinusOne, rmsDbfs, saturate16 } from '../../mcu/src/media/audio-mixer.ts';

function frame(fn: (i: number) => number): Int16Array {
  const f = new Int16Array(FRAME_SAMPLES);
  for (let i = 0; i < f.length; i++) f[i] = fn(i);
  return f;
}

function outputs(n: number): Int16Array[] {
  // Pre-filled with garbage so a test notices an output that was not written.
  return Array.from({ length: n }, () => new Int16Array(FRAME_SAMPLES).fill(12345));
}

/** The obvious O(N^2) definition, to check the O(N) implementation against. */
function reference(inputs: ReadonlyArray<Int16Array | null>): Int16Array[] {
  return inputs.map((_, i) => {
    const out = new Int16Array(FRAME_SAMPLES);
    for (let s = 0; s < FRAME_SAMPLES; s++) {
      let sum = 0;
      inputs.forEach((input, j) => {
        if (j !== i && input !== null) sum += input[s];
      });
      out[s] = saturate16(sum);
    }
    return out;
  });
}

/** Deterministic pseudo-random Int16 values. */
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return (x >>> 16) - 32768;
  };
}

describe('saturate16', () => {
  it('clamps to the Int16 rails and keeps values inside', () => {
    assert.equal(saturate16(40000), 32767);
    assert.equal(saturate16(-40000), -32768);
    assert.equal(saturate16(32767), 32767);
    assert.equal(saturate16(-32768), -32768);
    assert.equal(saturate16(-5), -5);
  });
});

describe('mixMinusOne', () => {
  it('gives each participant the sum of the others, excluding its own input exactly', () => {
    const a = frame((i) => 100 + i);
    const b = frame((i) => -2 * i);
    const c = frame(() => 7);
    const out = outputs(3);
    mixMinusOne([a, b, c], out);
    for (let s = 0; s < FRAME_SAMPLES; s++) {
      assert.equal(out[0][s], b[s] + c[s]);
      assert.equal(out[1][s], a[s] + c[s]);
      assert.equal(out[2][s], a[s] + b[s]);
    }
  });

  it('saturates at both rails instead of wrapping around', () => {
    const loud = frame(() => 30000);
    const quiet = frame(() => -30000);
    const out = outputs(4);
    mixMinusOne([loud, loud, loud, frame(() => 0)], out);
    // Listener 3 hears 90000: must be +32767, not a wrapped negative value.
    assert.ok(out[3].every((v) => v === 32767));
    assert.ok(out[0].every((v) => v === 32767));

    mixMinusOne([quiet, quiet, quiet, frame(() => 0)], out);
    assert.ok(out[3].every((v) => v === -32768));

    // The total overflows Int16 but one listener's share does not: no saturation must leak in.
    const big = frame(() => 32767);
    mixMinusOne([big, big, frame(() => -32768)], out.slice(0, 3));
    assert.ok(out[0].every((v) => v === -1));
    assert.ok(out[2].every((v) => v === 32767));
  });

  it('turns silence into silence', () => {
    const out = outputs(3);
    mixMinusOne([frame(() => 0), frame(() => 0), frame(() => 0)], out);
    for (const o of out) assert.ok(o.every((v) => v === 0));
    assert.equal(rmsDbfs(out[0]), -Infinity);
  });

  it('gives a participant alone in the room silence', () => {
    const out = outputs(1);
    mixMinusOne([frame((i) => 1000 * Math.sin(i))], out);
    assert.ok(out[0].every((v) => v === 0));
  });

  it('drops null (muted) inputs out of the mix, while their owners still hear the others', () => {
    const a = frame(() => 1000);
    const c = frame(() => 300);
    const out = outputs(3);
    mixMinusOne([a, null, c], out);
    assert.ok(out[0].every((v) => v === 300));
    assert.ok(out[1].every((v) => v === 1300));
    assert.ok(out[2].every((v) => v === 1000));

    mixMinusOne([null, null, c], out);
    assert.ok(out[0].every((v) => v === 300));
    assert.ok(out[2].every((v) => v === 0), 'the only talker hears nobody');

    mixMinusOne([null, null, null], out);
    for (const o of out) assert.ok(o.every((v) => v === 0));
  });

  it('matches the O(N^2) definition for 16 participants with random audio and some muted', () => {
    const rand = lcg(42);
    for (let round = 0; round < 5; round++) {
      const inputs: (Int16Array | null)[] = Array.from({ length: 16 }, (_, i) =>
        (i + round) % 5 === 0 ? null : frame(() => rand() >> (round % 3)),
      );
      const out = outputs(16);
      const scratch = new Int32Array(FRAME_SAMPLES);
      mixMinusOne(inputs, out, scratch);
      const expected = reference(inputs);
      for (let i = 0; i < 16; i++) assert.deepEqual(out[i], expected[i], `participant ${i}, round ${round}`);
    }
  });

  it('rejects mismatched shapes', () => {
    assert.throws(() => mixMinusOne([frame(() => 0)], outputs(2)), RangeError);
    assert.throws(() => mixMinusOne([new Int16Array(10)], outputs(1)), RangeError);
    assert.throws(() => mixMinusOne([frame(() => 0)], outputs(1), new Int32Array(10)), RangeError);
  });
});

describe('rmsDbfs', () => {
  it('measures full scale as about 0 dBFS and a half-scale sine as about -9 dBFS', () => {
    assert.ok(Math.abs(rmsDbfs(frame(() => -32768))) < 1e-9);
    const sine = frame((i) => Math.round(16384 * Math.sin((2 * Math.PI * i) / 48)));
    assert.ok(Math.abs(rmsDbfs(sine) - (20 * Math.log10(0.5) - 3.0103)) < 0.05);
  });
});
