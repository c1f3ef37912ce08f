/** The tone plan (client-demo/src/media/synthetic-media.ts): one tone per seat, and no tone the others' mix could fake. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VOICE_TONES_HZ, voiceToneHz } from '../../client-demo/src/media/synthetic-media.ts';
import { PARTICIPANTS, TONES } from '../../scripts/probe/mix.ts';

/** Harmonics and intermodulation products a nonlinearity (saturating mix, codec) makes of two tones. */
function products(a: number, b: number): number[] {
  const out = [a + b, Math.abs(a - b), 2 * a - b, 2 * a + b, 3 * a - b, 3 * a - 2 * b, 2 * a - 2 * b];
  for (let k = 2; k <= 6; k++) out.push(k * a, k * b);
  return out.filter((f) => f > 0);
}

describe('voice tone plan', () => {
  it('gives every seat of the plan its own tone and refuses seats beyond it', () => {
    const tones = VOICE_TONES_HZ.map((_, seat) => voiceToneHz(seat));
    assert.deepEqual(tones, [...VOICE_TONES_HZ]);
    assert.equal(new Set(tones).size, tones.length);
    assert.throws(() => voiceToneHz(VOICE_TONES_HZ.length), RangeError);
    assert.throws(() => voiceToneHz(-1), RangeError);
    assert.throws(() => voiceToneHz(0.5), RangeError);
  });

  it('keeps tones at least 350 Hz apart (the voice meter resolves 47 Hz bins, +-3 under its window)', () => {
    for (const a of VOICE_TONES_HZ) for (const b of VOICE_TONES_HZ) if (a !== b) assert.ok(Math.abs(a - b) >= 350, `${a} and ${b} Hz`);
  });

  it('has no harmonic or intermodulation product of the other tones within 110 Hz of a tone', () => {
    for (const own of VOICE_TONES_HZ) {
      const others = VOICE_TONES_HZ.filter((f) => f !== own);
      for (const a of others) {
        for (let k = 2; k <= 6; k++) assert.ok(Math.abs(k * a - own) >= 110, `${k} x ${a} Hz lands near ${own} Hz`);
        for (const b of others) {
          if (a === b) continue;
          for (const p of products(a, b)) assert.ok(Math.abs(p - own) >= 110, `a product of ${a} and ${b} Hz (${p} Hz) lands near ${own} Hz`);
        }
      }
    }
  });

  it('is what the tests and benchmarks assign: participant i sounds at seat i', () => {
    PARTICIPANTS.forEach((p, seat) => assert.equal(p.toneHz, voiceToneHz(seat), p.name));
    assert.deepEqual(TONES, PARTICIPANTS.map((p) => p.toneHz));
  });
});
