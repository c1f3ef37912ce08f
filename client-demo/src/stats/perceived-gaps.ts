/**
 * What a person in the call perceives, from sampled series: the **voice gap** (how long another
 * participant's tone was inaudible) and the **tile gap** (how long a tile of the received grid
 * did not move). Pure functions over the voice and tile meters' histories (voice-meter.ts,
 * tile-meter.ts), so the page, the unit tests and the benchmarks judge a gap the same way.
 *
 * Both are "the longest stretch without evidence": between two consecutive audible samples of a
 * tone, or between two consecutive frames on which a tile's marker moved. Nothing wrong, that is
 * one sampling interval (10 ms) or one frame interval (67 ms at 15 fps, 133 ms when the grid
 * repeats a participant's frame). A stretch in which the sampler itself did not run (a busy page)
 * counts as a gap: nothing showed the voice was there.
 */

/**
 * A tone counts as audible while its level is at most this far below its steady level (the
 * level it reached in a fifth of the samples before the event: STEADY_QUANTILE). Relative, not absolute: the level a tone arrives at depends on the
 * mix (gains, saturation, how many voices), on Opus and on the analyser's window, none of which
 * this judgement should depend on. 20 dB: a voice 20 dB under the others of the mix is masked by
 * them (a tenth of its amplitude), and the meter's reading of a silent tone (codec noise plus the
 * other tones' window leakage) stays more than 30 dB under the steady level, so a dropout is
 * never confused with a quieter voice. NetEq's concealment of a lost tone fades through this
 * threshold: the concealed part, which does sound like the tone, counts as heard.
 */
export const INAUDIBLE_BELOW_STEADY_DB = 20;

/** A voice whose steady level is under this (dBFS, in the voice meter's analyser) was not in the call before the event: no gap is judged for it. */
export const VOICE_PRESENT_DB = -70;

/** How long before the event the steady level of each tone is taken from, ms. */
export const STEADY_BASELINE_MS = 3000;

/**
 * The steady level is this quantile of the baseline's readings: a voice that joined (or came
 * back) only a second before the event still gets its real level, not the silence before it.
 */
export const STEADY_QUANTILE = 0.8;

/** A stretch without evidence: when it started (the last evidence before it), how long it lasted. */
export interface QuietStretch {
  /** Time of the last evidence before the stretch (the sample clock). */
  at: number;
  ms: number;
  /** The stretch was still running at `until` (no evidence after it yet). */
  open: boolean;
}

/**
 * The longest interval between consecutive `evidence` times (ascending) that ends at or after
 * `since`; an interval still running at `until` counts up to `until`. Evidence after `until` is
 * ignored. Null when there is no evidence at or before `until` (nothing to measure from).
 */
export function longestQuietStretch(evidence: readonly number[], since: number, until: number): QuietStretch | null {
  let previous: number | null = null;
  let longest: QuietStretch | null = null;
  const consider = (at: number, end: number, open: boolean): void => {
    if (end < since) return;
    const ms = end - at;
    if (longest === null || ms > longest.ms) longest = { at, ms, open };
  };
  for (const t of evidence) {
    if (t > until) break;
    if (previous !== null) consider(previous, t, false);
    previous = t;
  }
  if (previous === null) return null;
  if (until > previous) consider(previous, until, true);
  // Evidence right at `until` and none before `since` in range: a zero-length stretch.
  return longest ?? { at: previous, ms: 0, open: false };
}

/** Median of the finite values, null without any. */
export function median(values: readonly number[]): number | null {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (finite.length === 0) return null;
  const mid = finite.length >> 1;
  return finite.length % 2 === 1 ? finite[mid]! : (finite[mid - 1]! + finite[mid]!) / 2;
}

/** The `q` quantile (0..1, nearest rank) of the finite values, null without any. */
export function quantile(values: readonly number[], q: number): number | null {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (finite.length === 0) return null;
  return finite[Math.min(finite.length - 1, Math.max(0, Math.ceil(q * finite.length) - 1))]!;
}

/** The voice meter's history: sample times and, per tone, its level (dBFS) at each sample. */
export interface VoiceHistory {
  /** performance.now() of each sample, ascending. */
  readonly times: readonly number[];
  /** Tone (Hz, as a string key) -> level at each sample, aligned with `times`. */
  readonly levels: Readonly<Record<string, readonly number[]>>;
}

/** One participant's voice around an event. */
export interface VoiceGap {
  hz: number;
  /** Its steady level (STEADY_QUANTILE of the STEADY_BASELINE_MS before `since`), dBFS; null when there were no samples. */
  steadyDb: number | null;
  /** The longest stretch between audible samples ending after `since`; null when the voice was not present before the event. */
  gap: QuietStretch | null;
}

/** The voices' gaps around an event, per tone, and the page's voice gap (the worst voice's). */
export interface VoiceGaps {
  voices: VoiceGap[];
  /** The worst voice's gap, ms; null when no voice was present. */
  worstMs: number | null;
  /** Hz of the worst voice. */
  worstHz: number | null;
  /** Samples in [since, until] and the longest interval between them (a busy page samples late). */
  samples: number;
  longestSampleIntervalMs: number;
}

/**
 * Per tone: the steady level from the STEADY_BASELINE_MS before `since` (STEADY_QUANTILE), every sample within
 * INAUDIBLE_BELOW_STEADY_DB of it is evidence the voice was heard, and its gap is the longest
 * stretch between such samples that ends in [since, until].
 */
export function voiceGaps(history: VoiceHistory, tones: readonly number[], since: number, until: number): VoiceGaps {
  const { times } = history;
  const voices: VoiceGap[] = tones.map((hz) => {
    const levels = history.levels[String(hz)] ?? [];
    const baseline: number[] = [];
    for (let i = 0; i < times.length && times[i]! < since; i++) if (times[i]! >= since - STEADY_BASELINE_MS) baseline.push(levels[i] ?? -Infinity);
    const steadyDb = quantile(baseline.map((l) => (Number.isFinite(l) ? l : -200)), STEADY_QUANTILE);
    if (steadyDb === null || steadyDb < VOICE_PRESENT_DB) return { hz, steadyDb, gap: null };
    const threshold = steadyDb - INAUDIBLE_BELOW_STEADY_DB;
    const audible: number[] = [];
    for (let i = 0; i < times.length; i++) if ((levels[i] ?? -Infinity) >= threshold) audible.push(times[i]!);
    // Judged from the baseline on: an audible sample before it is not evidence about the event.
    const from = since - STEADY_BASELINE_MS;
    const gap = longestQuietStretch(audible.filter((t) => t >= from), since, until);
    return { hz, steadyDb, gap: gap ?? { at: from, ms: until - from, open: true } };
  });
  let worst: VoiceGap | null = null;
  for (const v of voices) if (v.gap && (worst === null || v.gap.ms > worst.gap!.ms)) worst = v;
  let samples = 0;
  let longestSampleIntervalMs = 0;
  for (let i = 0; i < times.length; i++) {
    const t = times[i]!;
    if (t > until) break;
    if (t >= since) samples++;
    if (i > 0 && t >= since) longestSampleIntervalMs = Math.max(longestSampleIntervalMs, t - times[i - 1]!);
  }
  return { voices, worstMs: worst?.gap?.ms ?? null, worstHz: worst?.hz ?? null, samples, longestSampleIntervalMs };
}

/** The tile meter's history: per tile of the current layout, the times its marker moved. */
export interface TileHistory {
  /** Tiles in the grid being measured (0 before the page knows the roster). */
  readonly count: number;
  /** When the current layout was first measured: no tile evidence exists before it. */
  readonly layoutSince: number;
  /** Per tile (grid order), performance.now() of the rendered frames on which its marker moved, ascending. */
  readonly moves: ReadonlyArray<readonly number[]>;
  /** performance.now() of every measured frame, ascending. */
  readonly frames: readonly number[];
}

/** The tiles' gaps around an event and the page's tile gap (the worst tile's). */
export interface TileGaps {
  /** Per tile (grid order): the longest stretch without a move ending in [since, until]; null when the tile never moved in the kept history. */
  tiles: Array<QuietStretch | null>;
  /** The worst tile's gap, ms (a tile that never moved counts from `since`); null without tiles. */
  worstMs: number | null;
  /** Index of the worst tile. */
  worstTile: number | null;
  /** Measured frames in [since, until]. */
  frames: number;
}

/** Per tile, the longest stretch in which its marker did not move, ending in [since, until]. */
export function tileGaps(history: TileHistory, since: number, until: number): TileGaps {
  const tiles = history.moves.slice(0, history.count).map((moves) => longestQuietStretch(moves, since, until));
  let worstMs: number | null = null;
  let worstTile: number | null = null;
  tiles.forEach((gap, i) => {
    // A tile with no move at all in the kept history: frozen since the layout was first seen (or since `since`).
    const ms = gap ? gap.ms : until - Math.max(since, history.layoutSince);
    if (worstMs === null || ms > worstMs) {
      worstMs = ms;
      worstTile = i;
    }
  });
  const frames = history.frames.filter((t) => t >= since && t <= until).length;
  return { tiles, worstMs, worstTile, frames };
}

/**
 * Where the marker is in one tile's marker band, read as luma per column (left to right): the
 * centroid of the columns clearly brighter than the band's median (the tile's own colour), in
 * columns; null when no column stands out (no marker: a placeholder, a black cell, another picture).
 */
export function markerPosition(luma: ArrayLike<number>, minContrast = MARKER_MIN_CONTRAST): number | null {
  const n = luma.length;
  if (n === 0) return null;
  const sorted = Array.from(luma).sort((a, b) => a - b);
  const background = sorted[n >> 1]!;
  let weight = 0;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const excess = luma[i]! - background - minContrast;
    if (excess <= 0) continue;
    weight += excess;
    sum += excess * i;
  }
  return weight > 0 ? sum / weight : null;
}

/** Luma the marker must stand above the tile's colour (0-255): the white bar over a saturated tile is ~100-130 brighter; codec noise a few. */
export const MARKER_MIN_CONTRAST = 40;

/**
 * Did the marker move between two frames? Positions in columns; the marker advances 1.6 columns
 * a frame at the tile meter's 64 columns, codec noise on a repeated frame moves the centroid by
 * far less than half a column. A marker that appears counts as a move; one that is gone does not.
 */
export function markerMoved(previous: number | null, next: number | null, minShift = 0.5): boolean {
  if (next === null) return false;
  if (previous === null) return true;
  return Math.abs(next - previous) >= minShift;
}
