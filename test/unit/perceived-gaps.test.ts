/** Voice and tile gaps (client-demo/src/stats/perceived-gaps.ts) on hand-made sampled series, and the tile meter's marker bands. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TILE_MARKER, TILE_SIZE } from '../../client-demo/src/media/synthetic-media.ts';
import {
  INAUDIBLE_BELOW_STEADY_DB,
  longestQuietStretch,
  markerMoved,
  markerPosition,
  median,
  quantile,
  STEADY_BASELINE_MS,
  tileGaps,
  voiceGaps,
  type TileHistory,
  type VoiceHistory,
} from '../../client-demo/src/stats/perceived-gaps.ts';
import { MARKER_COLUMNS, markerBands } from '../../client-demo/src/stats/tile-meter.ts';
import { gridLayout } from '../../mcu/src/media/video-layout.ts';

/** Times from `from` to `to` (inclusive when it falls on a step), `step` apart. */
function times(from: number, to: number, step: number): number[] {
  const out: number[] = [];
  for (let t = from; t <= to; t += step) out.push(t);
  return out;
}

/** A voice meter history sampled every 10 ms over 0..`to`; each tone's level at t from `level(hz, t)`. */
function voiceHistory(to: number, tones: number[], level: (hz: number, t: number) => number): VoiceHistory {
  const ts = times(0, to, 10);
  const levels: Record<string, number[]> = {};
  for (const hz of tones) levels[String(hz)] = ts.map((t) => level(hz, t));
  return { times: ts, levels };
}

describe('longestQuietStretch', () => {
  it('is the longest interval between evidence that ends at or after `since`', () => {
    const evidence = [0, 10, 20, 300, 310, 320, 1000, 1010];
    assert.deepEqual(longestQuietStretch(evidence, 0, 1010), { at: 320, ms: 680, open: false });
    // The 320 -> 1000 stretch ended before 1005: only what ends later counts.
    assert.deepEqual(longestQuietStretch(evidence, 1005, 1010), { at: 1000, ms: 10, open: false });
  });

  it('counts a stretch still running at `until` up to `until`', () => {
    assert.deepEqual(longestQuietStretch([0, 10, 20], 0, 520), { at: 20, ms: 500, open: true });
  });

  it('ignores evidence after `until` and has nothing to say without evidence before it', () => {
    assert.deepEqual(longestQuietStretch([0, 10, 600], 0, 100), { at: 10, ms: 90, open: true });
    assert.equal(longestQuietStretch([200, 210], 0, 100), null);
    assert.equal(longestQuietStretch([], 0, 100), null);
  });

  it('is one sampling interval for evidence at every sample', () => {
    assert.equal(longestQuietStretch(times(0, 5000, 10), 1000, 5000)!.ms, 10);
  });
});

describe('median', () => {
  it('ignores what is not finite', () => {
    assert.equal(median([3, 1, NaN, 2, Infinity]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(median([NaN]), null);
  });

  it('has a quantile by nearest rank', () => {
    assert.equal(quantile([5, 1, 4, 2, 3], 0.8), 4);
    assert.equal(quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.8), 8);
    assert.equal(quantile([], 0.5), null);
  });
});

describe('voiceGaps', () => {
  const RED = 560;
  const GREEN = 1340;
  const ABSENT = 2570;
  const STEADY = -26;
  const SILENT = -75;

  it('measures the stretch a voice was inaudible around the event, the undisturbed voices at one sample', () => {
    // Red drops out from 5000 to 5500; Green is steady with a few dB of wobble.
    const history = voiceHistory(8000, [RED, GREEN], (hz, t) => (hz === RED && t > 5000 && t < 5500 ? SILENT : STEADY + (t % 30 === 0 ? -3 : 0)));
    const gaps = voiceGaps(history, [RED, GREEN], 4000, 8000);
    const red = gaps.voices.find((v) => v.hz === RED)!;
    const green = gaps.voices.find((v) => v.hz === GREEN)!;
    // Audible at 5000 and again at 5500: 500 ms between the two audible samples around it.
    assert.equal(red.gap!.ms, 500);
    assert.equal(red.gap!.at, 5000);
    assert.equal(red.gap!.open, false);
    assert.equal(green.gap!.ms, 10);
    assert.ok(Math.abs(red.steadyDb! - STEADY) <= 3);
    assert.equal(gaps.worstMs, 500);
    assert.equal(gaps.worstHz, RED);
    assert.equal(gaps.samples, 401);
    assert.equal(gaps.longestSampleIntervalMs, 10);
  });

  it('judges audible relative to the voice\'s own steady level, not an absolute one', () => {
    // A quiet voice (-50 dB) dipping by 15 dB is still heard; dipping by more than the threshold is not.
    const quiet = -50;
    const dip = (depth: number): VoiceHistory => voiceHistory(6000, [RED], (_, t) => (t > 4000 && t < 4300 ? quiet - depth : quiet));
    assert.equal(voiceGaps(dip(INAUDIBLE_BELOW_STEADY_DB - 5), [RED], 3500, 6000).worstMs, 10);
    assert.equal(voiceGaps(dip(INAUDIBLE_BELOW_STEADY_DB + 5), [RED], 3500, 6000).worstMs, 300);
  });

  it('takes the steady level from before the event only', () => {
    // Red is silent from 5000 on for good: the median over the whole history would call that "steady".
    const history = voiceHistory(9000, [RED], (_, t) => (t >= 5000 ? SILENT : STEADY));
    const gaps = voiceGaps(history, [RED], 4000, 9000);
    assert.equal(gaps.voices[0]!.steadyDb, STEADY);
    assert.deepEqual(gaps.voices[0]!.gap, { at: 4990, ms: 4010, open: true });
  });

  it('judges no gap for a voice that was not there before the event', () => {
    const history = voiceHistory(6000, [RED, ABSENT], (hz) => (hz === RED ? STEADY : SILENT));
    const gaps = voiceGaps(history, [RED, ABSENT], 4000, 6000);
    const absent = gaps.voices.find((v) => v.hz === ABSENT)!;
    assert.equal(absent.gap, null);
    assert.equal(absent.steadyDb, SILENT);
    assert.equal(gaps.worstHz, RED);
  });

  it('counts a stretch the sampler did not run as a gap, and says so', () => {
    const history = voiceHistory(6000, [RED], () => STEADY);
    // The page was busy: no samples between 4500 and 4800.
    const keep = history.times.map((t, i) => [t, i] as const).filter(([t]) => t <= 4500 || t >= 4800);
    const busy: VoiceHistory = { times: keep.map(([t]) => t), levels: { [RED]: keep.map(([, i]) => history.levels[RED]![i]!) } };
    const gaps = voiceGaps(busy, [RED], 4000, 6000);
    assert.equal(gaps.worstMs, 300);
    assert.equal(gaps.longestSampleIntervalMs, 300);
  });

  it('gets the steady level of a voice that joined late in the baseline', () => {
    // Red came in 1 s before the event: two thirds of the baseline are silence.
    const history = voiceHistory(8000, [RED], (_, t) => (t < 3000 ? SILENT : STEADY));
    const gaps = voiceGaps(history, [RED], 4000, 8000);
    assert.equal(gaps.voices[0]!.steadyDb, STEADY);
    assert.equal(gaps.worstMs, 10);
  });

  it('uses only the baseline window before `since` for the steady level', () => {
    // Loud long before the baseline window, steady inside it.
    const history = voiceHistory(8000, [RED], (_, t) => (t < 4000 - STEADY_BASELINE_MS ? 0 : STEADY));
    assert.equal(voiceGaps(history, [RED], 4000, 8000).voices[0]!.steadyDb, STEADY);
  });
});

describe('tileGaps', () => {
  const moves = (from: number, to: number, skip: [number, number] | null = null): number[] =>
    times(from, to, 67).filter((t) => !skip || t <= skip[0] || t >= skip[1]);

  it('is the worst tile\'s longest stretch without a move around the event', () => {
    const history: TileHistory = {
      count: 3,
      layoutSince: 0,
      moves: [moves(0, 6000), moves(0, 6000, [4000, 4500]), moves(0, 6000)],
      frames: times(0, 6000, 67),
    };
    const gaps = tileGaps(history, 3500, 6000);
    assert.equal(gaps.worstTile, 1);
    // Moves at 3953 and 4556 bracket the frozen stretch.
    assert.equal(gaps.worstMs, 4556 - 3953);
    assert.equal(gaps.tiles[0]!.ms, 67);
    assert.equal(gaps.frames, times(0, 6000, 67).filter((t) => t >= 3500).length);
  });

  it('counts a tile that never moved from the later of `since` and the layout\'s start', () => {
    const history: TileHistory = { count: 2, layoutSince: 1000, moves: [moves(1000, 3000), []], frames: times(1000, 3000, 67) };
    const gaps = tileGaps(history, 500, 3000);
    assert.equal(gaps.tiles[1], null);
    assert.equal(gaps.worstTile, 1);
    assert.equal(gaps.worstMs, 2000);
  });

  it('has no gap without tiles', () => {
    const gaps = tileGaps({ count: 0, layoutSince: 0, moves: [], frames: [] }, 0, 1000);
    assert.equal(gaps.worstMs, null);
    assert.equal(gaps.worstTile, null);
  });
});

describe('the marker', () => {
  /** A marker band as the tile meter reads it: the tile's luma with the bar `width` columns wide from `at`. */
  const band = (at: number | null, tile = 110, bar = 235, width = 5): number[] =>
    Array.from({ length: MARKER_COLUMNS }, (_, c) => (at !== null && c >= at && c < at + width ? bar : tile) + ((c * 7) % 5) - 2);

  it('is found at the bar\'s centre and moves with it', () => {
    const a = markerPosition(band(10))!;
    const b = markerPosition(band(12))!;
    assert.ok(Math.abs(a - 12) < 0.3, `centre ${a}`);
    assert.ok(Math.abs(b - a - 2) < 0.3, `moved ${b - a}`);
    assert.equal(markerMoved(a, b), true);
  });

  it('is not moved by codec noise on a repeated frame, and absent without a bar', () => {
    const a = markerPosition(band(20))!;
    const noisy = band(20).map((v, c) => v + (c % 3) - 1);
    assert.equal(markerMoved(a, markerPosition(noisy)), false);
    assert.equal(markerPosition(band(null)), null);
    // A placeholder or black cell: flat.
    assert.equal(markerPosition(new Array<number>(MARKER_COLUMNS).fill(56)), null);
    assert.equal(markerMoved(a, null), false);
    assert.equal(markerMoved(null, a), true);
  });

  it('lies in the bottom band of each cell of the MCU\'s grid', () => {
    for (const count of [1, 2, 3, 4, 5]) {
      const cells = gridLayout(count, 640, 480);
      const bands = markerBands(count, 640, 480);
      assert.equal(bands.length, count);
      bands.forEach((b, i) => {
        const cell = cells[i]!;
        assert.ok(b.x >= cell.x && b.x + b.width <= cell.x + cell.width, `${count} tiles, band ${i} inside its cell horizontally`);
        assert.ok(b.y >= cell.y && b.y + b.height <= cell.y + cell.height, `${count} tiles, band ${i} inside its cell vertically`);
        // The tile is fitted at 4:3: the band's width is the fitted tile's.
        assert.ok(Math.abs(b.width / ((b.height * TILE_SIZE.height) / TILE_MARKER.height) - TILE_SIZE.width / TILE_SIZE.height) < 0.05);
      });
    }
    // 3 tiles on 640x480: 320x240 cells, the band exactly where the synthetic tile paints its bar.
    assert.deepEqual(markerBands(3, 640, 480)[0], { x: 0, y: 228, width: 320, height: 8 });
  });
});
