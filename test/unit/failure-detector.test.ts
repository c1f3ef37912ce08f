import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../mcu/src/core/errors.ts';
import {
  DEFAULT_CONFIRM_WINDOWS,
  DEFAULT_HOST_PROBE_TIMEOUT_MS,
  FailureDetector,
  failureDetectorSettings,
  type DetectorOutput,
  type FailureDetectorOptions,
} from '../../mcu/src/detection/failure-detector.ts';

const T0 = 1_000_000;

/**
 * The judge on a fake clock, driven as the heartbeat thread drives it: a tick every
 * `judgeEveryMs` and whatever arrives in between. Every output is kept with its time.
 */
function harness(options: FailureDetectorOptions = {}) {
  let now = T0;
  const judge = new FailureDetector({ ...options, startedAt: now });
  const log: Array<{ at: number; out: DetectorOutput }> = [];
  const record = (outs: DetectorOutput[]): DetectorOutput[] => {
    for (const out of outs) log.push({ at: now, out });
    return outs;
  };
  return {
    judge,
    log,
    get now(): number {
      return now;
    },
    /** Moves the clock without a tick (the judging thread was not scheduled). */
    skip(ms: number): void {
      now += ms;
    },
    tick(): DetectorOutput[] {
      return record(judge.tick(now));
    },
    /** Ticks every judgeEveryMs for `ms`, beating every `beatEveryMs` if given. */
    run(ms: number, beatEveryMs: number | null = null): void {
      const end = now + ms;
      let nextBeat = beatEveryMs === null ? Infinity : now + beatEveryMs;
      while (now + judge.judgeEveryMs <= end) {
        const tickAt = now + judge.judgeEveryMs;
        while (nextBeat <= tickAt) {
          now = nextBeat;
          record(judge.beat(now));
          nextBeat += beatEveryMs!;
        }
        now = tickAt;
        record(judge.tick(now));
      }
    },
    beat(): DetectorOutput[] {
      return record(judge.beat(now));
    },
    portUnreachable(): DetectorOutput[] {
      return record(judge.portUnreachable(now));
    },
    hostProbed(silentSince: number, answered: boolean): DetectorOutput[] {
      return record(judge.hostProbed(silentSince, answered, now));
    },
    channelClosed(deliberate: boolean): DetectorOutput[] {
      return record(judge.channelClosed(deliberate, now));
    },
    /** Outputs of one type, with the time (ms after T0) they came at. */
    times(type: DetectorOutput['type']): number[] {
      return log.filter((e) => e.out.type === type).map((e) => e.at - T0);
    },
    types(): string[] {
      return log.map((e) => `${e.at - T0}:${e.out.type}`);
    },
  };
}

describe('FailureDetector settings', () => {
  it('defaults to 10 ms beats, 3 missed, a 90 ms confirm window, a 20 ms host probe; judges every 5 ms', () => {
    const judge = new FailureDetector({ startedAt: 0 });
    assert.equal(judge.intervalMs, 10);
    assert.equal(judge.missedBeats, 3);
    assert.equal(judge.timeoutMs, 30);
    assert.equal(DEFAULT_CONFIRM_WINDOWS, 3);
    assert.equal(judge.confirmMs, 90);
    assert.equal(judge.hostProbeTimeoutMs, DEFAULT_HOST_PROBE_TIMEOUT_MS);
    assert.equal(judge.hostProbeTimeoutMs, 20);
    assert.equal(judge.judgeEveryMs, 5);
    // max(3 x judgeEveryMs, 15)
    assert.equal(judge.selfPauseMs, 15);
    assert.equal(judge.hostProbeEnabled, true);
    assert.equal(judge.state, 'waiting');
  });

  it('scales the confirm window, judge period and self-pause threshold with the beat period', () => {
    const judge = new FailureDetector({ intervalMs: 40, missedBeats: 2, startedAt: 0 });
    assert.equal(judge.timeoutMs, 80);
    assert.equal(judge.confirmMs, 240);
    assert.equal(judge.judgeEveryMs, 20);
    assert.equal(judge.selfPauseMs, 60);
    const fast = new FailureDetector({ intervalMs: 1, confirmMs: 7, hostProbeTimeoutMs: 0, startedAt: 0 });
    assert.equal(fast.judgeEveryMs, 1);
    assert.equal(fast.selfPauseMs, 15);
    assert.equal(fast.confirmMs, 7);
    assert.equal(fast.hostProbeEnabled, false);
    assert.deepEqual(failureDetectorSettings({ intervalMs: 20 }), { intervalMs: 20, missedBeats: 3, confirmMs: 180, hostProbeTimeoutMs: 20 });
  });

  it('refuses settings that cannot judge anything, with a ConfigError', () => {
    for (const bad of [{ intervalMs: 0 }, { missedBeats: 0 }, { missedBeats: 1.5 }, { confirmMs: -1 }, { confirmMs: Number.NaN }]) {
      assert.throws(() => new FailureDetector({ ...bad, startedAt: 0 }), ConfigError, JSON.stringify(bad));
    }
  });
});

describe('FailureDetector (the heartbeat thread\'s judge)', () => {
  it('judges nothing before the first beat: ticks, pauses and port unreachable (a primary still starting) say nothing', () => {
    const h = harness();
    h.run(500);
    h.skip(300);
    h.tick();
    assert.deepEqual(h.portUnreachable(), []);
    assert.deepEqual(h.log, []);
    assert.equal(h.judge.state, 'waiting');
    assert.deepEqual(h.beat(), [{ type: 'first-beat', at: h.now }]);
    assert.equal(h.judge.state, 'alive');
    assert.equal(h.judge.lastBeatAt, h.now);
  });

  it('stays quiet while beats come every 10 ms, and with beats up to 15 ms apart', () => {
    const h = harness();
    h.beat();
    h.run(2000, 10);
    h.run(2000, 15);
    assert.deepEqual(h.types(), ['0:first-beat']);
    assert.equal(h.judge.state, 'alive');
  });

  it('probes the port once, at the first tick after 1.5 beat periods of silence', () => {
    const h = harness();
    h.beat();
    h.run(15);
    assert.deepEqual(h.times('probe-port'), [], 'not at exactly 15 ms');
    h.run(15);
    assert.deepEqual(h.times('probe-port'), [20]);
    assert.equal(h.judge.state, 'alive', 'a late beat is not yet a suspicion');
    // A beat ends that silence; the next one gets its own early probe.
    h.beat();
    h.run(30);
    assert.deepEqual(h.times('probe-port'), [20, 50]);
  });

  it('suspects after the missed-beats window, probes at every tick, and gives the verdict after the confirm window', () => {
    const h = harness();
    h.beat();
    h.run(200);
    assert.deepEqual(h.times('suspected'), [35], 'suspected at the first tick past 30 ms');
    const suspicion = h.log.find((e) => e.out.type === 'suspected')!.out;
    assert.deepEqual(suspicion, { type: 'suspected', cause: 'missed-beats', at: T0 + 35, silenceMs: 35 });
    // Early probe at 20, then every tick of the confirm window (35..120), none after the verdict.
    assert.deepEqual(h.times('probe-port'), [20, ...Array.from({ length: 18 }, (_, i) => 35 + 5 * i)]);
    assert.deepEqual(h.times('dead'), [125], 'dead at the first tick past 30 + 90 ms, not at 120');
    const dead = h.log.find((e) => e.out.type === 'dead')!.out;
    assert.deepEqual(dead, { type: 'dead', verdict: { reason: 'heartbeat-timeout', lastHeartbeatAt: T0, detectedAt: T0 + 125 } });
    assert.deepEqual(h.judge.verdict, { reason: 'heartbeat-timeout', lastHeartbeatAt: T0, detectedAt: T0 + 125 });
    assert.equal(h.judge.state, 'dead');
    assert.equal(h.times('probe-host').length, 0, 'no host probe before the start-up probe showed it usable');
  });

  it('follows a custom confirm window and missed-beats count', () => {
    const h = harness({ intervalMs: 10, missedBeats: 5, confirmMs: 20, hostProbeTimeoutMs: 0 });
    h.beat();
    h.run(100);
    assert.deepEqual(h.times('suspected'), [55]);
    assert.deepEqual(h.times('dead'), [75]);
  });

  it('a beat inside the confirm window clears the suspicion: a near miss with its silence, and no verdict', () => {
    const h = harness();
    h.beat();
    h.run(100);
    assert.equal(h.judge.state, 'suspected');
    h.skip(2);
    assert.deepEqual(h.beat(), [{ type: 'late-beat', silenceMs: 102, at: T0 + 102 }]);
    assert.equal(h.judge.state, 'alive');
    h.run(1000, 10);
    assert.deepEqual(h.times('dead'), []);
    // A fresh silence is judged from the new beat, with its own suspicion and early probe.
    const lastBeat = h.judge.lastBeatAt!;
    h.run(200);
    assert.deepEqual(h.times('dead').map((t) => t + T0 - lastBeat), [125]);
    assert.equal(h.times('suspected').length, 2);
  });

  it('a beat after more than the early-probe silence but within the missed-beats window is no near miss', () => {
    const h = harness();
    h.beat();
    h.run(30);
    assert.deepEqual(h.beat(), [], '30 ms is not more than the window');
    h.run(35);
    assert.equal(h.beat()[0]?.type, 'late-beat');
  });

  it('port unreachable after a beat is a verdict at once, without waiting for any silence', () => {
    const h = harness();
    h.beat();
    h.skip(4);
    assert.deepEqual(h.portUnreachable(), [{ type: 'dead', verdict: { reason: 'port-unreachable', lastHeartbeatAt: T0, detectedAt: T0 + 4 } }]);
    assert.equal(h.judge.state, 'dead');
  });

  it('a verdict is final: once dead, nothing more comes out of any input', () => {
    const h = harness();
    h.beat();
    h.run(20);
    h.portUnreachable();
    const before = h.log.length;
    assert.deepEqual(h.portUnreachable(), []);
    assert.deepEqual(h.beat(), []);
    h.run(500);
    h.skip(100);
    h.tick();
    assert.deepEqual(h.channelClosed(false), []);
    assert.deepEqual(h.channelClosed(true), []);
    assert.deepEqual(h.hostProbed(T0, false), []);
    assert.equal(h.log.length, before);
    assert.equal(h.judge.verdict?.reason, 'port-unreachable');
  });

  it('the stream ending without a goodbye is a suspicion and a probe at once; port unreachable then judges even before any beat', () => {
    const h = harness();
    assert.deepEqual(h.channelClosed(false), [{ type: 'suspected', cause: 'channel-closed', at: T0, silenceMs: null }, { type: 'probe-port' }]);
    h.run(500);
    assert.deepEqual(h.times('dead'), [], 'no beat yet: silence proves nothing');
    assert.deepEqual(h.portUnreachable(), [{ type: 'dead', verdict: { reason: 'port-unreachable', lastHeartbeatAt: null, detectedAt: T0 + 500 } }]);
  });

  it('a beat after the stream ended clears the suspicion (only the stream broke)', () => {
    const h = harness();
    h.beat();
    h.skip(4);
    assert.deepEqual(h.channelClosed(false)[0], { type: 'suspected', cause: 'channel-closed', at: T0 + 4, silenceMs: 4 });
    assert.equal(h.judge.state, 'suspected');
    h.run(1000, 10);
    assert.equal(h.judge.state, 'alive');
    assert.deepEqual(h.times('dead'), []);
  });

  it('a deliberate end of the stream stops judging: no verdict from silence, port unreachable or the host', () => {
    const h = harness();
    h.judge.hostProbeCalibrated(0.2);
    h.beat();
    h.run(20);
    assert.deepEqual(h.channelClosed(true), []);
    assert.equal(h.judge.state, 'stopped');
    const before = h.log.length;
    h.run(1000);
    h.portUnreachable();
    h.hostProbed(T0, false);
    h.beat();
    assert.equal(h.log.length, before);
    assert.equal(h.judge.verdict, null);
    assert.equal(h.judge.state, 'stopped');
  });

  it('a deliberate end while suspected still stops, never dies', () => {
    const h = harness();
    h.beat();
    h.run(100);
    assert.equal(h.judge.state, 'suspected');
    h.channelClosed(true);
    h.run(500);
    h.portUnreachable();
    assert.equal(h.judge.state, 'stopped');
    assert.deepEqual(h.times('dead'), []);
  });
});

describe('FailureDetector self-pause rule', () => {
  it('a tick more than max(3 x judgeEveryMs, 15) ms after the previous one judges nothing and reports the pause', () => {
    const h = harness();
    h.beat();
    h.run(5);
    h.skip(15);
    assert.deepEqual(h.tick(), [{ type: 'probe-port' }], 'a 15 ms gap is no pause (20 ms of silence: the early probe)');
    h.beat();
    h.skip(16);
    assert.deepEqual(h.tick(), [{ type: 'self-pause', ms: 16, at: h.now }]);
  });

  it('holds the verdict back for one tick after a pause, even past the confirm window, then judges', () => {
    const h = harness();
    h.beat();
    h.run(10);
    h.skip(300);
    assert.deepEqual(h.tick(), [{ type: 'self-pause', ms: 300, at: T0 + 310 }]);
    assert.equal(h.judge.state, 'alive');
    // Beats sent meanwhile are read now (the poll phase after the timers): no verdict.
    h.skip(1);
    assert.deepEqual(h.beat(), [{ type: 'late-beat', silenceMs: 311, at: T0 + 311 }]);
    h.run(5);
    assert.deepEqual(h.times('dead'), []);
  });

  it('with no beat read after a pause, the next regular tick goes through suspected to dead at once', () => {
    const h = harness();
    h.beat();
    h.run(10);
    h.skip(300);
    h.tick();
    h.run(5);
    assert.deepEqual(h.types().slice(-2), ['315:suspected', '315:dead']);
    assert.equal(h.judge.verdict?.reason, 'heartbeat-timeout');
  });

  it('measures pauses before the first beat too, but reports none then', () => {
    const h = harness();
    h.skip(100);
    assert.deepEqual(h.tick(), []);
    h.beat();
    h.skip(5);
    assert.deepEqual(h.tick(), [], 'the gap is measured from the previous tick, not from start');
  });

  it('scales the threshold with the judge period', () => {
    const h = harness({ intervalMs: 40 });
    assert.equal(h.judge.judgeEveryMs, 20);
    h.beat();
    h.skip(60);
    assert.deepEqual(h.tick(), [], '60 ms is neither more than 3 x 20 nor more than 1.5 x 40');
    h.skip(61);
    assert.equal(h.tick()[0]?.type, 'self-pause');
  });
});

describe('FailureDetector host probe', () => {
  it('is usable only when the start-up probe was answered in under half the probe timeout', () => {
    const judge = new FailureDetector({ startedAt: 0 });
    assert.deepEqual(judge.hostProbeCalibrated(0.3), [{ type: 'host-probe', usable: true, ms: 0.3, detail: "the primary's host answered a SYN in 0.3 ms" }]);
    const [justUnder] = judge.hostProbeCalibrated(9.9);
    assert.ok(justUnder?.type === 'host-probe' && justUnder.usable);
    assert.deepEqual(judge.hostProbeCalibrated(10), [{ type: 'host-probe', usable: false, ms: 10, detail: "the primary's host answered a SYN in 10 ms" }]);
    const [unanswered] = judge.hostProbeCalibrated(null);
    assert.ok(unanswered?.type === 'host-probe');
    assert.equal(unanswered.usable, false);
    assert.equal(unanswered.ms, null);
    assert.match(unanswered.detail, /did not answer a SYN within 1 s/);
  });

  it('asks the host once per silence, at the first tick past the missed-beats window; no answer in time is a verdict', () => {
    const h = harness();
    h.judge.hostProbeCalibrated(0.5);
    h.beat();
    h.run(60);
    assert.deepEqual(h.times('probe-host'), [35]);
    const ask = h.log.find((e) => e.out.type === 'probe-host')!.out;
    assert.deepEqual(ask, { type: 'probe-host', silentSince: T0, timeoutMs: 20 });
    h.skip(1);
    assert.deepEqual(h.hostProbed(T0, false), [{ type: 'dead', verdict: { reason: 'host-unreachable', lastHeartbeatAt: T0, detectedAt: T0 + 61 } }]);
  });

  it('a host that answers keeps the full confirm window (its beats may only be late)', () => {
    const h = harness();
    h.judge.hostProbeCalibrated(0.5);
    h.beat();
    h.run(40);
    assert.deepEqual(h.hostProbed(T0, true), []);
    h.run(200);
    assert.deepEqual(h.times('probe-host'), [35]);
    assert.deepEqual(h.times('dead'), [125]);
    assert.equal(h.judge.verdict?.reason, 'heartbeat-timeout');
  });

  it('an unanswered probe about a silence a beat has since ended is no verdict', () => {
    const h = harness();
    h.judge.hostProbeCalibrated(0.5);
    h.beat();
    h.run(35);
    h.skip(3);
    h.beat();
    assert.deepEqual(h.hostProbed(T0, false), []);
    assert.equal(h.judge.state, 'alive');
    // The next silence gets its own probe.
    const second = h.judge.lastBeatAt!;
    h.run(40);
    const asks = h.log.filter((e) => e.out.type === 'probe-host').map((e) => (e.out.type === 'probe-host' ? e.out.silentSince : 0));
    assert.deepEqual(asks, [T0, second]);
  });

  it('an unusable host probe (slow or no start-up answer) is never asked: host crashes wait for the confirm window', () => {
    for (const ms of [15, null]) {
      const h = harness();
      h.judge.hostProbeCalibrated(ms);
      h.beat();
      h.run(200);
      assert.deepEqual(h.times('probe-host'), []);
      assert.deepEqual(h.times('dead'), [125]);
    }
  });

  it('with the host probe off (timeout 0, or not a positive number), the start-up probe is not asked for', () => {
    for (const hostProbeTimeoutMs of [0, -5, Number.NaN]) assert.equal(new FailureDetector({ hostProbeTimeoutMs, startedAt: 0 }).hostProbeEnabled, false);
  });
});
