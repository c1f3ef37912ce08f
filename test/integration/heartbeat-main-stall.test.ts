/**
 * The heartbeat threads are native (no V8 isolate, no lock shared with the main thread), so a
 * main thread that is stuck (a 2 s busy loop, then a forced full garbage collection of a large
 * heap) does not pause them: on the primary's side the standby hears every beat, on the
 * standby's side its monitor thread keeps receiving and judging. The heartbeat's own gaps, as
 * the monitor thread measures them between beats, must stay within the missed-beats window (a
 * correctness check: a gap past it is a suspicion, and with the confirm window a false takeover).
 * Real processes: a primary with its HeartbeatBeacon, and in this process a HeartbeatMonitor.
 */
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, it } from 'node:test';
import { DEFAULT_MAIN_STALL_MS } from '../../mcu/src/detection/heartbeat-beacon.ts';
import { failureDetectorSettings, type HeartbeatVerdict } from '../../mcu/src/detection/failure-detector.ts';
import { HeartbeatMonitor } from '../../mcu/src/detection/heartbeat-monitor.ts';
import { nativeAddonAvailable } from '../../native/src/index.ts';
import { FixtureProcess } from '../../scripts/common/child-process.ts';
import { waitFor } from '../../scripts/common/wait-for.ts';
import { cleanupsAfterEach } from '../helpers/cleanups.ts';

const SECRET = 'heartbeat-main-stall-secret-5d20c9';
const BUSY_MS = 2000;
/** Enough live objects that a full mark takes a while (hundreds of ms here). */
const HEAP_OBJECTS = 2_000_000;
/** The default detector: a beat gap past this is a suspicion. */
const { intervalMs, missedBeats } = failureDetectorSettings();
const WINDOW_MS = intervalMs * missedBeats;

const cleanups = cleanupsAfterEach();
const skip = nativeAddonAvailable() ? false : 'the native addon is not built (bash scripts/build-native.sh)';

/** A primary beating, and a monitor here hearing it; every suspicion and verdict is kept. */
async function heardPrimary(): Promise<{ primary: FixtureProcess; monitor: HeartbeatMonitor; suspicions: string[]; verdicts: HeartbeatVerdict[] }> {
  const primary = new FixtureProcess('scripts/fixtures/replication-primary.ts', { REPL_SECRET: SECRET, REPL_BEACON: '1', LOG_LEVEL: 'warn' });
  cleanups.push(() => primary.kill());
  const port = Number((await primary.next('listening', 20_000)).port);
  const monitor = new HeartbeatMonitor({ host: '127.0.0.1', port, secret: SECRET, minEpoch: 1 });
  cleanups.push(() => monitor.close());
  const suspicions: string[] = [];
  const verdicts: HeartbeatVerdict[] = [];
  monitor.on('suspected', (cause) => suspicions.push(cause));
  monitor.on('dead', (v) => verdicts.push(v));
  const firstBeat = waitFor(monitor, 'first-beat', { timeoutMs: 10_000 });
  monitor.start();
  await firstBeat;
  // A few beats in, so the gaps measured are between regular beats.
  await new Promise((r) => setTimeout(r, 20 * intervalMs));
  return { primary, monitor, suspicions, verdicts };
}

function fullGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

describe('a stuck main thread does not pause the native heartbeat threads', { skip }, () => {
  it("the primary's main thread busy for 2 s, then a full GC: the standby hears every beat", async (t) => {
    const { primary, monitor, suspicions, verdicts } = await heardPrimary();
    const beatsBefore = monitor.beats;
    const stalledReply = primary.next('stalled', 30_000);
    primary.send({ cmd: 'stall', busyMs: BUSY_MS, heapObjects: HEAP_OBJECTS });
    const stalled = await stalledReply;
    const beats = monitor.beats - beatsBefore;
    const longestGapMs = monitor.longestBeatGapMs;
    const pauses = stalled.pauses as { maxGapMs: number } | null;
    t.diagnostic(
      `primary busy ${Math.round(Number(stalled.busyMs))} ms, allocation ${Math.round(Number(stalled.allocMs))} ms, full GC ${Math.round(Number(stalled.gcMs))} ms; ` +
        `standby heard ${beats} beats, longest gap ${longestGapMs} ms; beacon's own longest tick gap ${pauses?.maxGapMs ?? '?'} ms (window ${WINDOW_MS} ms)`,
    );
    assert.ok(Number(stalled.busyMs) >= BUSY_MS, 'the main thread was busy as long as asked');
    assert.deepEqual(verdicts, []);
    assert.deepEqual(suspicions, [], 'no suspicion: no beat missed');
    assert.equal(monitor.nearMisses.count, 0, 'no late beat');
    assert.ok(longestGapMs > 0 && longestGapMs <= WINDOW_MS, `longest silence between beats ${longestGapMs} ms, the missed-beats window is ${WINDOW_MS} ms`);
    assert.ok(pauses !== null && pauses.maxGapMs <= WINDOW_MS, `the beacon's own longest gap between ticks during the stall: ${JSON.stringify(pauses)}`);
    // Beats kept coming the whole time (no gap over the window means at least this many).
    const stallMs = Number(stalled.busyMs) + Number(stalled.allocMs) + Number(stalled.gcMs);
    assert.ok(beats >= Math.floor(stallMs / WINDOW_MS), `${beats} beats in ${Math.round(stallMs)} ms of stall`);
  });

  it("the standby's own main thread busy for 2 s, then a full GC: its monitor thread hears every beat and judges nothing", async (t) => {
    const { monitor, suspicions, verdicts } = await heardPrimary();
    const beatsBefore = monitor.beats;
    const gc = fullGc();
    const busyFrom = performance.now();
    while (performance.now() - busyFrom < BUSY_MS) {
      // this (the standby's) main thread is busy
    }
    const heap = Array.from({ length: HEAP_OBJECTS }, (_, i) => ({ i, text: `object ${i}` }));
    const gcFrom = performance.now();
    gc();
    const stallMs = performance.now() - busyFrom;
    t.diagnostic(`main thread busy ${BUSY_MS} ms, then ${heap.length} objects and a full GC of ${Math.round(performance.now() - gcFrom)} ms`);
    // Let the news the thread queued meanwhile arrive.
    await new Promise((r) => setTimeout(r, 10 * intervalMs));
    const beats = monitor.beats - beatsBefore;
    const longestGapMs = monitor.longestBeatGapMs;
    t.diagnostic(`monitor heard ${beats} beats, longest gap ${longestGapMs} ms, self-pauses ${monitor.selfPauses}`);
    assert.deepEqual(verdicts, []);
    assert.deepEqual(suspicions, []);
    assert.equal(monitor.selfPauses, 0, 'the monitor thread was never kept from judging');
    assert.equal(monitor.nearMisses.count, 0);
    assert.ok(longestGapMs > 0 && longestGapMs <= WINDOW_MS, `longest silence between beats ${longestGapMs} ms, the missed-beats window is ${WINDOW_MS} ms`);
    assert.ok(beats >= Math.floor(stallMs / WINDOW_MS), `${beats} beats in ${Math.round(stallMs)} ms of stall`);
  });

  it("a main thread stuck longer than mainStallMs is a hung process: the beacon stops beating and answering probes, and the standby judges it dead", async (t) => {
    const { primary, monitor, verdicts } = await heardPrimary();
    const dead = waitFor(monitor, 'dead', { timeoutMs: DEFAULT_MAIN_STALL_MS + 10_000 });
    const askedAt = Date.now();
    primary.send({ cmd: 'stall', busyMs: DEFAULT_MAIN_STALL_MS + 1000, heapObjects: 0 });
    const [verdict] = await dead;
    const silentFromMs = (verdict.lastHeartbeatAt ?? 0) - askedAt;
    t.diagnostic(`verdict ${verdict.reason} ${verdict.detectedAt - askedAt} ms after the stall began, the last beat ${silentFromMs} ms after it`);
    assert.equal(verdict.reason, 'heartbeat-timeout', 'its host and port still answer: only the silence tells');
    assert.equal(verdicts.length, 1);
    // Beats went on while the main thread was stuck for less than mainStallMs.
    assert.ok(silentFromMs >= DEFAULT_MAIN_STALL_MS - WINDOW_MS, `the last beat came ${silentFromMs} ms into the stall`);
  });
});
