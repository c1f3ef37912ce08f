/**
 * Glitch statistics: what the media probe's recent history (rendered frames, audio packet
 * counts and arrivals, performance.now() clock) says about stalls. Pure functions, so the page,
 * the tests and the benchmarks judge a glitch the same way.
 */

/** The media probe's recent history (last 30 s). */
export interface ProbeHistory {
  /** Times of rendered frames. */
  readonly frameTimes: readonly number[];
  /** [poll time, audio packets received] pairs. */
  readonly audioSamples: ReadonlyArray<readonly [number, number]>;
  /** [first new packet, latest packet] arrivals of each poll in which audio grew. */
  readonly audioArrivals: ReadonlyArray<readonly [number, number]>;
}

/** What counts as a stall: a frame interval above `videoMs`, no new audio for more than `audioMs`. */
export interface StallThresholds {
  videoMs: number;
  audioMs: number;
}

export interface Stall {
  /** audio: by the packets' arrival stamps; video: between rendered frames; audio-poll: between poll times at which the audio count changed. */
  kind: 'audio' | 'video' | 'audio-poll';
  /** Start of the stall (performance.now() clock). */
  at: number;
  ms: number;
}

/**
 * How long the media has been steady up to `now`, ms: no frame interval above `videoMs` and no
 * stretch without new audio packets above `audioMs` (audio judged at the polls' times).
 */
export function steadyFor(history: ProbeHistory, now: number, thresholds: StallThresholds): number {
  const { videoMs, audioMs } = thresholds;
  let lastBad = -Infinity;
  const frames = history.frameTimes;
  for (let i = 1; i < frames.length; i++) if (frames[i]! - frames[i - 1]! > videoMs) lastBad = Math.max(lastBad, frames[i]!);
  if (frames.length === 0 || now - frames[frames.length - 1]! > videoMs) lastBad = now;
  let lastCount = -1;
  let lastChangeAt: number | null = null;
  for (const [t, count] of history.audioSamples) {
    if (count === lastCount) continue;
    if (lastChangeAt !== null && t - lastChangeAt > audioMs) lastBad = Math.max(lastBad, t);
    lastChangeAt = t;
    lastCount = count;
  }
  if (lastChangeAt === null || now - lastChangeAt > audioMs) lastBad = now;
  const oldest = Math.min(frames[0] ?? now, history.audioSamples[0]?.[0] ?? now);
  return Number.isFinite(lastBad) ? now - lastBad : now - oldest;
}

/**
 * Every stall that ended at or after `since`, audio ones first, then video, then the audio stalls
 * as the polls saw them; and the longest interval between poll times at which the received audio
 * count changed (the earlier method of measuring an audio gap, kept for comparison).
 */
export function stallsSince(history: ProbeHistory, since: number, thresholds: StallThresholds): { stalls: Stall[]; pollAudioGapMs: number } {
  const { videoMs, audioMs } = thresholds;
  const stalls: Stall[] = [];
  // Audio by the packets' own arrival stamps: a gap runs from the latest packet before it to the
  // first packet after it.
  let lastPacket: number | null = null;
  for (const [first, latest] of history.audioArrivals) {
    if (lastPacket !== null && first >= since && first - lastPacket > audioMs) stalls.push({ kind: 'audio', at: lastPacket, ms: first - lastPacket });
    lastPacket = latest;
  }
  const frames = history.frameTimes;
  for (let i = 1; i < frames.length; i++) {
    if (frames[i]! >= since && frames[i]! - frames[i - 1]! > videoMs) stalls.push({ kind: 'video', at: frames[i - 1]!, ms: frames[i]! - frames[i - 1]! });
  }
  let pollAudioGapMs = 0;
  let lastCount = -1;
  let lastChangeAt: number | null = null;
  for (const [t, count] of history.audioSamples) {
    if (count === lastCount) continue;
    if (lastChangeAt !== null && t >= since) {
      pollAudioGapMs = Math.max(pollAudioGapMs, t - lastChangeAt);
      if (t - lastChangeAt > audioMs) stalls.push({ kind: 'audio-poll', at: lastChangeAt, ms: t - lastChangeAt });
    }
    lastChangeAt = t;
    lastCount = count;
  }
  return { stalls, pollAudioGapMs };
}

/** Median interval between the last `count` rendered frames, null with fewer than two. */
export function medianFrameInterval(frameTimes: readonly number[], count = 31): number | null {
  const frames = frameTimes.slice(-count);
  const intervals: number[] = [];
  for (let i = 1; i < frames.length; i++) intervals.push(frames[i]! - frames[i - 1]!);
  intervals.sort((a, b) => a - b);
  return intervals.length > 0 ? intervals[intervals.length >> 1]! : null;
}
