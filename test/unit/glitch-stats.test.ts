/** The page's glitch statistics (client-demo/src/stats/glitch-stats.ts) on hand-made probe histories. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { medianFrameInterval, stallsSince, steadyFor, type ProbeHistory } from '../../client-demo/src/stats/glitch-stats.ts';

const THRESHOLDS = { videoMs: 200, audioMs: 150 };

/** Times from `from` to `to` (inclusive when it falls on a step), `step` apart. */
function times(from: number, to: number, step: number): number[] {
  const out: number[] = [];
  for (let t = from; t <= to; t += step) out.push(t);
  return out;
}

/** Audio polls every 20 ms whose count grows by one packet per poll, except in `stalled` (count unchanged). */
function polls(from: number, to: number, stalled: [number, number] | null = null): Array<[number, number]> {
  let count = 0;
  return times(from, to, 20).map((t) => {
    if (!stalled || t <= stalled[0] || t >= stalled[1]) count++;
    return [t, count];
  });
}

/** One arrival per poll: [first new packet, latest packet]. */
function arrivals(at: number[]): Array<[number, number]> {
  return at.map((t) => [t - 5, t]);
}

describe('steadyFor', () => {
  it('counts from the oldest sample when nothing stalled', () => {
    const history: ProbeHistory = { frameTimes: times(100, 2000, 66), audioSamples: polls(0, 2000), audioArrivals: [] };
    assert.equal(steadyFor(history, 2010, THRESHOLDS), 2010);
  });

  it('counts from the frame that ended a video stall', () => {
    const frames = [...times(0, 990, 66), ...times(1300, 2000, 66)];
    const history: ProbeHistory = { frameTimes: frames, audioSamples: polls(0, 2000), audioArrivals: [] };
    assert.equal(steadyFor(history, 2010, THRESHOLDS), 2010 - 1300);
  });

  it('counts from the poll that ended an audio stall', () => {
    const history: ProbeHistory = { frameTimes: times(0, 2000, 66), audioSamples: polls(0, 2000, [500, 700]), audioArrivals: [] };
    // The count stops changing after 500 and changes again at 700: 200 ms > 150 ms.
    assert.equal(steadyFor(history, 2010, THRESHOLDS), 2010 - 700);
  });

  it('is 0 while the media stands still now, or before any audio', () => {
    const stale: ProbeHistory = { frameTimes: times(0, 1500, 66), audioSamples: polls(0, 2000), audioArrivals: [] };
    assert.equal(steadyFor(stale, 2000, THRESHOLDS), 0);
    const silent: ProbeHistory = { frameTimes: times(0, 2000, 66), audioSamples: [], audioArrivals: [] };
    assert.equal(steadyFor(silent, 2000, THRESHOLDS), 0);
  });
});

describe('stallsSince', () => {
  const frames = [...times(0, 990, 66), ...times(1300, 2000, 66)];
  const arrived = arrivals([...times(0, 1000, 20), ...times(1400, 2000, 20)]);
  const history: ProbeHistory = { frameTimes: frames, audioSamples: polls(0, 2000, [1000, 1420]), audioArrivals: arrived };

  it('lists audio stalls by arrival stamps, then video, then audio as the polls saw it', () => {
    const { stalls, pollAudioGapMs } = stallsSince(history, 500, THRESHOLDS);
    assert.deepEqual(stalls, [
      { kind: 'audio', at: 1000, ms: 1395 - 1000 },
      { kind: 'video', at: 990, ms: 310 },
      { kind: 'audio-poll', at: 1000, ms: 420 },
    ]);
    assert.equal(pollAudioGapMs, 420);
  });

  it('leaves out stalls that ended before `since`', () => {
    const { stalls, pollAudioGapMs } = stallsSince(history, 1500, THRESHOLDS);
    assert.deepEqual(stalls, []);
    assert.equal(pollAudioGapMs, 20);
  });
});

describe('medianFrameInterval', () => {
  it('is the median of the latest intervals, null before two frames', () => {
    assert.equal(medianFrameInterval([]), null);
    assert.equal(medianFrameInterval([5]), null);
    assert.equal(medianFrameInterval([0, 10, 30, 60]), 20);
    // Only the last 31 frames count: the early slow frames are forgotten.
    assert.equal(medianFrameInterval([...times(0, 10_000, 1000), ...times(10_050, 10_050 + 40 * 50, 50)]), 50);
  });
});
