/**
 * Grid layout of the composed video. Every coordinate and size is even because I420 chroma is
 * subsampled 2x2: an odd edge would split a chroma sample between two tiles (a coloured fringe).
 */

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/**
 * Places `count` equal cells on a width x height canvas: cols = ceil(sqrt(n)), rows = ceil(n/cols),
 * filled row by row; a last partial row is centred. All cells have the same size (so the scaler's
 * index tables are shared by every tile), and the grid is centred, leaving at most a few pixels
 * of margin where the canvas does not divide evenly. count 0 gives [].
 */
export function gridLayout(count: number, width: number, height: number): Rect[] {
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`count must be a non-negative integer, got ${count}`);
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 2 || height < 2) {
    throw new RangeError(`canvas must be at least 2x2 integer pixels, got ${width}x${height}`);
  }
  if (count === 0) return [];
  const cols = Math.ceil(Math.sqrt(count));
  const rows = Math.ceil(count / cols);
  const cellW = even(width / cols);
  const cellH = even(height / rows);
  if (cellW < 2 || cellH < 2) throw new RangeError(`${count} cells do not fit on a ${width}x${height} canvas`);
  const top = even((height - rows * cellH) / 2);
  const rects: Rect[] = [];
  for (let r = 0; r < rows; r++) {
    const inRow = Math.min(cols, count - r * cols);
    const left = even((width - inRow * cellW) / 2);
    for (let c = 0; c < inRow; c++) {
      rects.push({ x: left + c * cellW, y: top + r * cellH, width: cellW, height: cellH });
    }
  }
  return rects;
}

/** Largest even integer <= x. */
function even(x: number): number {
  return 2 * Math.floor(x / 2);
}
