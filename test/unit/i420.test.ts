import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  BACKGROUND_YUV,
  BLACK_YUV,
  GridComposer,
  PLACEHOLDER_INSET_YUV,
  PLACEHOLDER_YUV,
  ScaleTables,
  blitFit,
  createI420,
  fillRect,
  fitRect,
  i420Size,
  rgbToYuv,
  type I420Frame,
} from '../../mcu/src/media/i420.ts';
import { gridLayout, type Rect } from '../../mcu/src/media/video-layout.ts';

/** The [Y, U, V] of pixel (x, y). */
function pixel(f: I420Frame, x: number, y: number): [number, number, number] {
  const cw = (f.width + 1) >> 1;
  const ch = (f.height + 1) >> 1;
  const u = f.width * f.height;
  const c = (y >> 1) * cw + (x >> 1);
  return [f.data[y * f.width + x], f.data[u + c], f.data[u + cw * ch + c]];
}

function solid(width: number, height: number, rgb: [number, number, number]): I420Frame {
  const f = createI420(width, height);
  const [y, u, v] = rgbToYuv(...rgb);
  fillRect(f, { x: 0, y: 0, width, height }, y, u, v);
  return f;
}

function centre(r: Rect): [number, number] {
  return [r.x + (r.width >> 1), r.y + (r.height >> 1)];
}

const RED = rgbToYuv(255, 0, 0);
const GREEN = rgbToYuv(0, 255, 0);
const BLUE = rgbToYuv(0, 0, 255);

describe('rgbToYuv (BT.601 limited range)', () => {
  it('maps the reference colours', () => {
    assert.deepEqual(rgbToYuv(0, 0, 0), [16, 128, 128]);
    assert.deepEqual(rgbToYuv(255, 255, 255), [235, 128, 128]);
    assert.deepEqual(RED, [81, 90, 240]);
    assert.deepEqual(GREEN, [145, 54, 34]);
    assert.deepEqual(BLUE, [41, 240, 110]);
    assert.deepEqual(rgbToYuv(128, 128, 128), [126, 128, 128]);
  });
});

describe('createI420 / fillRect', () => {
  it('sizes planes with rounded-up chroma for odd sizes and starts black', () => {
    assert.equal(i420Size(640, 480), 640 * 480 * 1.5);
    assert.equal(i420Size(5, 3), 15 + 2 * 3 * 2);
    const f = createI420(5, 3);
    assert.equal(f.data.length, 27);
    assert.deepEqual(pixel(f, 4, 2), [...BLACK_YUV]);
  });

  it('clips to the frame', () => {
    const f = createI420(16, 16);
    fillRect(f, { x: 10, y: 10, width: 100, height: 100 }, 200, 50, 60);
    assert.deepEqual(pixel(f, 15, 15), [200, 50, 60]);
    assert.deepEqual(pixel(f, 9, 9), [...BLACK_YUV]);
    fillRect(f, { x: -4, y: -4, width: 6, height: 6 }, 90, 91, 92);
    assert.deepEqual(pixel(f, 0, 0), [90, 91, 92]);
    assert.deepEqual(pixel(f, 2, 2), [...BLACK_YUV]);
  });
});

describe('blitFit', () => {
  it('puts the source colour at the cell centre when the aspect matches', () => {
    const dst = createI420(640, 480);
    const cell = { x: 320, y: 240, width: 320, height: 240 };
    blitFit(solid(160, 120, [255, 0, 0]), dst, cell);
    assert.deepEqual(pixel(dst, ...centre(cell)), RED);
    assert.deepEqual(pixel(dst, 320, 240), RED, 'fills the cell corner to corner');
    assert.deepEqual(pixel(dst, 639, 479), RED);
    assert.deepEqual(pixel(dst, 318, 238), [...BLACK_YUV], 'leaves the outside alone');
  });

  it('letterboxes a wide source and pillarboxes a tall one with black bars', () => {
    const dst = createI420(320, 240);
    dst.data.fill(77);
    const cell = { x: 0, y: 0, width: 320, height: 240 };
    blitFit(solid(320, 120, [0, 0, 255]), dst, cell); // 8:3 into 4:3 -> 320x120 band
    assert.deepEqual(pixel(dst, 160, 120), BLUE);
    assert.deepEqual(pixel(dst, 160, 10), [...BLACK_YUV], 'top bar');
    assert.deepEqual(pixel(dst, 160, 230), [...BLACK_YUV], 'bottom bar');
    assert.deepEqual(pixel(dst, 160, 60), BLUE, 'band starts at y=60');
    assert.deepEqual(pixel(dst, 160, 58), [...BLACK_YUV]);

    blitFit(solid(90, 160, [0, 255, 0]), dst, cell); // portrait 9:16 -> 136x240 column
    assert.deepEqual(pixel(dst, 160, 120), GREEN);
    assert.deepEqual(pixel(dst, 10, 120), [...BLACK_YUV], 'left bar');
    assert.deepEqual(pixel(dst, 310, 120), [...BLACK_YUV], 'right bar');
    const fit = fitRect(90, 160, cell);
    assert.deepEqual(fit, { x: 92, y: 0, width: 136, height: 240 });
    for (const v of [fit.x, fit.y, fit.width, fit.height]) assert.equal(v % 2, 0);
  });

  it('keeps image structure: a half-red/half-blue source stays split at the same place', () => {
    const src = solid(320, 240, [255, 0, 0]);
    const [y, u, v] = BLUE;
    fillRect(src, { x: 160, y: 0, width: 160, height: 240 }, y, u, v);
    for (const cell of [{ x: 0, y: 0, width: 212, height: 160 }, { x: 0, y: 0, width: 640, height: 480 }]) {
      const dst = createI420(640, 480);
      blitFit(src, dst, cell);
      const [cx, cy] = centre(cell);
      assert.deepEqual(pixel(dst, cell.x + 4, cy), RED);
      assert.deepEqual(pixel(dst, cx - 4, cy), RED);
      assert.deepEqual(pixel(dst, cx + 4, cy), BLUE);
      assert.deepEqual(pixel(dst, cell.x + cell.width - 4, cy), BLUE);
    }
  });

  it('handles odd source sizes (rounded-up chroma)', () => {
    const dst = createI420(320, 240);
    blitFit(solid(161, 121, [0, 255, 0]), dst, { x: 0, y: 0, width: 320, height: 240 });
    assert.deepEqual(pixel(dst, 160, 120), GREEN);
    assert.deepEqual(pixel(dst, 2, 2), GREEN);
  });

  it('caches one index table per (source, destination) length pair', () => {
    const tables = new ScaleTables();
    const dst = createI420(640, 480);
    const src = solid(320, 240, [255, 0, 0]);
    const cells = gridLayout(9, 640, 480);
    for (const cell of cells) blitFit(src, dst, cell, tables);
    const after = tables.size;
    for (let k = 0; k < 3; k++) for (const cell of cells) blitFit(src, dst, cell, tables);
    assert.equal(tables.size, after, 'no new tables in steady state');
    assert.ok(after <= 4);
    assert.equal(tables.get(320, 212), tables.get(320, 212));
  });

  it('rejects a truncated source and a cell outside the destination', () => {
    const dst = createI420(64, 64);
    assert.throws(() => blitFit({ width: 32, height: 32, data: new Uint8Array(100) }, dst, { x: 0, y: 0, width: 32, height: 32 }), RangeError);
    assert.throws(() => blitFit(createI420(8, 8), dst, { x: 40, y: 0, width: 32, height: 32 }), RangeError);
  });
});

describe('GridComposer', () => {
  it('draws three coloured tiles at their grid cells, on a dark grey background', () => {
    const composer = new GridComposer(640, 480);
    const out = composer.compose([
      { frame: solid(320, 240, [255, 0, 0]), muted: false },
      { frame: solid(320, 240, [0, 255, 0]), muted: false },
      { frame: solid(320, 240, [0, 0, 255]), muted: false },
    ]);
    assert.equal(out.width, 640);
    assert.equal(out.height, 480);
    const cells = gridLayout(3, 640, 480);
    assert.deepEqual(pixel(out, ...centre(cells[0])), RED);
    assert.deepEqual(pixel(out, ...centre(cells[1])), GREEN);
    assert.deepEqual(pixel(out, ...centre(cells[2])), BLUE);
    // The empty half-cells beside the centred last row are background.
    assert.deepEqual(pixel(out, 40, 400), [...BACKGROUND_YUV]);
    assert.deepEqual(pixel(out, 600, 400), [...BACKGROUND_YUV]);
  });

  it('draws a distinct placeholder for a muted tile or one without a frame', () => {
    const composer = new GridComposer();
    const out = composer.compose([
      { frame: solid(320, 240, [255, 0, 0]), muted: true },
      { frame: null, muted: false },
      { frame: solid(320, 240, [0, 0, 255]), muted: false },
      { frame: { width: 320, height: 240, data: new Uint8Array(10) }, muted: false }, // broken frame
    ]);
    const cells = gridLayout(4, 640, 480);
    for (const i of [0, 1, 3]) {
      assert.deepEqual(pixel(out, ...centre(cells[i])), [...PLACEHOLDER_INSET_YUV], `tile ${i} inset`);
      assert.deepEqual(pixel(out, cells[i].x + 4, cells[i].y + 4), [...PLACEHOLDER_YUV], `tile ${i} body`);
    }
    assert.deepEqual(pixel(out, ...centre(cells[2])), BLUE);
    const distinct = new Set([PLACEHOLDER_YUV, PLACEHOLDER_INSET_YUV, BACKGROUND_YUV, BLACK_YUV].map((c) => c[0]));
    assert.equal(distinct.size, 4, 'placeholder, inset, background and bars are told apart by luma');
  });

  it('reuses its output buffer and clears cells that are no longer covered when the count drops', () => {
    const composer = new GridComposer();
    const red = { frame: solid(320, 240, [255, 0, 0]), muted: false };
    const first = composer.compose([red, red, red, red]);
    const second = composer.compose([red, red, red]);
    assert.equal(first, second);
    assert.equal(first.data, second.data);
    // Cell 3 of the 4-grid (bottom right) is now half background, half the centred tile.
    assert.deepEqual(pixel(second, 600, 400), [...BACKGROUND_YUV]);
    const none = composer.compose([]);
    assert.deepEqual(pixel(none, 320, 240), [...BACKGROUND_YUV]);
  });

  it('composes 16 tiles of mixed sizes without throwing', () => {
    const composer = new GridComposer();
    const tiles = Array.from({ length: 16 }, (_, i) => ({
      frame: i % 4 === 3 ? null : solid(i % 2 === 0 ? 320 : 160, i % 3 === 0 ? 240 : 90, [i * 15, 255 - i * 15, 128]),
      muted: i === 5,
    }));
    const out = composer.compose(tiles);
    const cells = gridLayout(16, 640, 480);
    assert.deepEqual(pixel(out, ...centre(cells[0])), rgbToYuv(0, 255, 128));
    assert.deepEqual(pixel(out, ...centre(cells[5])), [...PLACEHOLDER_INSET_YUV]);
  });
});
