/**
 * The tile meter: on every rendered frame of the received grid, whether each tile's moving
 * marker (synthetic-media.ts TILE_MARKER) moved since the previous frame. The grid is laid out
 * exactly as the MCU composes it: its own gridLayout and aspect-preserving fit (mcu/src/media),
 * bundled into the page, with the tile count from the roster (every participant of the room
 * has a tile, in roster order). Kept for the last 30 s; perceived-gaps.ts turns it into tile gaps.
 *
 * Cheap by construction: only the marker band of each cell is drawn, scaled down to
 * MARKER_COLUMNS x 2 pixels, into one small canvas that is read back once per frame.
 */
import { fitRect } from '../../../mcu/src/media/i420.ts';
import { gridLayout, type Rect } from '../../../mcu/src/media/video-layout.ts';
import { TILE_MARKER, TILE_SIZE } from '../media/synthetic-media.ts';
import { markerMoved, markerPosition, type TileHistory } from './perceived-gaps.ts';

/** Columns each tile's marker band is read at: the marker (1/8 of the tile) spans 8, and moves 1.6 a frame. */
export const MARKER_COLUMNS = 64;
const ROWS_PER_TILE = 2;
/** History kept, ms. */
export const TILE_HISTORY_MS = 30_000;

/** The marker band of each tile on a width x height grid of `count` tiles, in the grid's pixels. */
export function markerBands(count: number, width: number, height: number): Rect[] {
  return gridLayout(count, width, height).map((cell) => {
    const fit = fitRect(TILE_SIZE.width, TILE_SIZE.height, cell);
    const scale = fit.height / TILE_SIZE.height;
    return { x: fit.x, y: fit.y + TILE_MARKER.y * scale, width: fit.width, height: TILE_MARKER.height * scale };
  });
}

export class TileMeter {
  #count = 0;
  #layoutSince = 0;
  #bands: Rect[] = [];
  #bandsFor = '';
  #positions: Array<number | null> = [];
  #moves: number[][] = [];
  readonly #frames: number[] = [];
  #canvas: HTMLCanvasElement | null = null;
  #ctx: CanvasRenderingContext2D | null = null;

  /** The grid now has `count` tiles (the room's participants): a new layout, measured afresh. */
  setTileCount(count: number): void {
    if (count === this.#count) return;
    this.#count = count;
    this.#layoutSince = performance.now();
    this.#positions = Array.from({ length: count }, () => null);
    this.#moves = Array.from({ length: count }, () => []);
    this.#bandsFor = '';
  }

  get history(): TileHistory {
    return { count: this.#count, layoutSince: this.#layoutSince, moves: this.#moves, frames: this.#frames };
  }

  /** Reads the markers of the frame `video` shows now (call from requestVideoFrameCallback). */
  onFrame(video: HTMLVideoElement, now: number): void {
    const count = this.#count;
    // Even sizes, as the composer's: gridLayout refuses odd ones.
    const width = 2 * Math.floor(video.videoWidth / 2);
    const height = 2 * Math.floor(video.videoHeight / 2);
    if (count === 0 || width < 2 || height < 2) return;
    const key = `${count}:${width}x${height}`;
    if (key !== this.#bandsFor) {
      try {
        this.#bands = markerBands(count, width, height);
      } catch {
        return; // too many tiles for this frame size: nothing to read
      }
      this.#bandsFor = key;
    }
    if (!this.#ctx) {
      this.#canvas = document.createElement('canvas');
      this.#ctx = this.#canvas.getContext('2d', { willReadFrequently: true });
      if (!this.#ctx) return;
    }
    const canvas = this.#canvas!;
    const ctx = this.#ctx;
    if (canvas.width !== MARKER_COLUMNS || canvas.height !== count * ROWS_PER_TILE) {
      canvas.width = MARKER_COLUMNS;
      canvas.height = count * ROWS_PER_TILE;
    }
    this.#bands.forEach((b, i) => ctx.drawImage(video, b.x, b.y, b.width, b.height, 0, i * ROWS_PER_TILE, MARKER_COLUMNS, ROWS_PER_TILE));
    const data = ctx.getImageData(0, 0, MARKER_COLUMNS, count * ROWS_PER_TILE).data;
    const luma = new Float32Array(MARKER_COLUMNS);
    for (let tile = 0; tile < count; tile++) {
      luma.fill(0);
      for (let row = 0; row < ROWS_PER_TILE; row++) {
        const base = (tile * ROWS_PER_TILE + row) * MARKER_COLUMNS * 4;
        for (let c = 0; c < MARKER_COLUMNS; c++) {
          const p = base + c * 4;
          luma[c]! += (0.299 * data[p]! + 0.587 * data[p + 1]! + 0.114 * data[p + 2]!) / ROWS_PER_TILE;
        }
      }
      const position = markerPosition(luma);
      if (markerMoved(this.#positions[tile] ?? null, position)) this.#moves[tile]!.push(now);
      this.#positions[tile] = position;
    }
    this.#frames.push(now);
    prune(this.#frames, now);
    for (const moves of this.#moves) prune(moves, now);
  }
}

/** Drops entries older than the history, in batches. */
function prune(times: number[], now: number): void {
  let old = 0;
  while (old < times.length && now - times[old]! > TILE_HISTORY_MS) old++;
  if (old >= 30) times.splice(0, old);
}
