import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { gridLayout, type Rect } from '../../mcu/src/media/video-layout.ts';

function overlaps(a: Rect, b: Rect): boolean {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

function checkLayout(n: number, width: number, height: number): Rect[] {
  const rects = gridLayout(n, width, height);
  const where = `${n} tiles on ${width}x${height}`;
  assert.equal(rects.length, n, where);
  const cols = Math.ceil(Math.sqrt(n));
  const rows = Math.ceil(n / cols);
  for (const r of rects) {
    for (const v of [r.x, r.y, r.width, r.height]) assert.equal(v % 2, 0, `${where}: odd value in ${JSON.stringify(r)}`);
    assert.ok(r.x >= 0 && r.y >= 0 && r.x + r.width <= width && r.y + r.height <= height, `${where}: ${JSON.stringify(r)} leaves the canvas`);
    // Reasonable: each cell gets its full share of the canvas, give or take the rounding to even.
    assert.ok(r.width >= Math.floor(width / cols) - 2 && r.width > 0, `${where}: width ${r.width}`);
    assert.ok(r.height >= Math.floor(height / rows) - 2 && r.height > 0, `${where}: height ${r.height}`);
  }
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) assert.ok(!overlaps(rects[i], rects[j]), `${where}: cells ${i} and ${j} overlap`);
  }
  return rects;
}

describe('gridLayout', () => {
  it('returns nothing for no tiles', () => {
    assert.deepEqual(gridLayout(0, 640, 480), []);
  });

  it('lays out 1..16 tiles with even, in-canvas, non-overlapping, full-share cells', () => {
    for (let n = 1; n <= 16; n++) {
      checkLayout(n, 640, 480);
      checkLayout(n, 1280, 720);
      checkLayout(n, 641, 479); // odd canvas: cells stay even and inside
    }
  });

  it('scales beyond 16', () => {
    for (const n of [17, 25, 36, 50, 100]) checkLayout(n, 640, 480);
  });

  it('gives one tile the whole canvas and four tiles a 2x2 grid', () => {
    assert.deepEqual(gridLayout(1, 640, 480), [{ x: 0, y: 0, width: 640, height: 480 }]);
    assert.deepEqual(gridLayout(4, 640, 480), [
      { x: 0, y: 0, width: 320, height: 240 },
      { x: 320, y: 0, width: 320, height: 240 },
      { x: 0, y: 240, width: 320, height: 240 },
      { x: 320, y: 240, width: 320, height: 240 },
    ]);
  });

  it('centres a last partial row', () => {
    const three = gridLayout(3, 640, 480);
    assert.deepEqual(three[2], { x: 160, y: 240, width: 320, height: 240 });
    const seven = gridLayout(7, 640, 480); // 3 cols x 3 rows, last row has one
    assert.equal(seven[6].x + seven[6].width / 2, 320);
  });

  it('fills rows in reading order', () => {
    const rects = gridLayout(9, 640, 480);
    for (let i = 1; i < rects.length; i++) {
      const a = rects[i - 1];
      const b = rects[i];
      assert.ok(b.y > a.y || (b.y === a.y && b.x > a.x));
    }
  });

  it('rejects bad arguments and canvases too small for the count', () => {
    assert.throws(() => gridLayout(-1, 640, 480), RangeError);
    assert.throws(() => gridLayout(1.5, 640, 480), RangeError);
    assert.throws(() => gridLayout(1, 0, 480), RangeError);
    assert.throws(() => gridLayout(100, 8, 8), RangeError);
  });
});
