import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SwitchDetector, type SwitchAction, type SwitchSample } from '../../client-demo/src/spare/switch-detector.ts';

/** A primary path delivering a packet every `intervalMs` until `stopAt`, sampled every `sampleMs` with reports `staleMs` old. */
function run(
  detector: SwitchDetector,
  opts: {
    until: number;
    sampleMs?: number;
    packetTimes: (t: number) => number | null;
    spareDeliveringFrom?: number;
    signalingDownFrom?: number;
    spareConnected?: (t: number) => boolean;
  },
): Array<{ at: number; action: SwitchAction }> {
  const actions: Array<{ at: number; action: SwitchAction }> = [];
  for (let at = 0; at <= opts.until; at += opts.sampleMs ?? 10) {
    const sample: SwitchSample = {
      at,
      primaryLastPacketAt: opts.packetTimes(at),
      spareDelivering: opts.spareDeliveringFrom !== undefined && at >= opts.spareDeliveringFrom,
      spareConnected: opts.spareConnected ? opts.spareConnected(at) : true,
      signalingLostAt: opts.signalingDownFrom !== undefined && at >= opts.signalingDownFrom ? opts.signalingDownFrom : null,
    };
    const action = detector.feed(sample);
    if (action.kind !== 'none') actions.push({ at, action });
  }
  return actions;
}

/** Last packet time at `t` for packets every `interval` ms, with some intervals stretched by jitter, none after `stop`. */
function packets(interval: number, jitter: Map<number, number> = new Map(), stop = Infinity): (t: number) => number | null {
  const times: number[] = [];
  let t = 0;
  let i = 0;
  while (t < 10000) {
    times.push(t);
    t += interval + (jitter.get(i) ?? 0);
    i++;
  }
  return (now) => {
    let last: number | null = null;
    for (const p of times) if (p <= now && p <= stop) last = p;
    return last;
  };
}

describe('spare path switch detector', () => {
  it('does not switch on jitter, even long gaps, while signaling is up and the spare is idle', () => {
    const detector = new SwitchDetector();
    // 20 ms audio with gaps of 45, 80 and 250 ms: a busy MCU or page.
    const jitter = new Map([
      [10, 25],
      [30, 60],
      [50, 230],
    ]);
    const actions = run(detector, { until: 3000, packetTimes: packets(20, jitter) });
    assert.deepEqual(actions, [], 'jitter with signaling up neither switches nor arms the spare');
    assert.equal(detector.state, 'watching');
    assert.equal(detector.falseSilences, 2, 'the 80 and 250 ms gaps would have switched on silence alone');
    assert.ok(detector.longestFalseSilenceMs >= 240);
  });

  it('arms on silence with signaling down, and disarms when the primary delivers again (a signaling blip)', () => {
    const detector = new SwitchDetector();
    const actions = run(detector, { until: 1000, packetTimes: packets(20, new Map([[10, 50]])), signalingDownFrom: 150 });
    assert.deepEqual(
      actions.map((a) => [a.at, a.action.kind]),
      [
        [230, 'arm'],
        [270, 'disarm'],
      ],
    );
    assert.equal(detector.falseAlarms, 1);
  });

  it('does not switch while the primary is silent but signaling is up (a standby promoting itself wrongly)', () => {
    const detector = new SwitchDetector();
    const actions = run(detector, { until: 1000, packetTimes: packets(20, new Map([[10, 500]])), spareDeliveringFrom: 300 });
    assert.equal(actions.filter((a) => a.action.kind === 'switch').length, 0);
  });

  it('switches on silence once the spare delivers and signaling is lost', () => {
    const detector = new SwitchDetector();
    // Kill at 500: last packet at 500, signaling closed at once, the promoted standby's media at 540.
    const actions = run(detector, { until: 1000, packetTimes: packets(20, new Map(), 500), signalingDownFrom: 502, spareDeliveringFrom: 540 });
    assert.deepEqual(
      actions.map((a) => [a.at, a.action.kind]),
      [
        [530, 'arm'],
        [560, 'switch'],
      ],
    );
    const sw = actions.at(-1)!.action;
    assert.ok(sw.kind === 'switch' && sw.trigger === 'silence' && sw.silentMs === 60);
    assert.equal(detector.state, 'switched');
    // Nothing more after a switch.
    assert.equal(detector.feed({ at: 2000, primaryLastPacketAt: 2000, spareDelivering: true, spareConnected: true, signalingLostAt: null }).kind, 'none');
  });

  it('waits for the spare media even after long silence, then switches at once', () => {
    const detector = new SwitchDetector();
    const actions = run(detector, { until: 1000, packetTimes: packets(20, new Map(), 200), signalingDownFrom: 200, spareDeliveringFrom: 700 });
    assert.deepEqual(
      actions.map((a) => [a.at, a.action.kind]),
      [
        [230, 'arm'],
        [700, 'switch'],
      ],
    );
  });

  it('never switches without a connected spare, and disarms when the spare goes', () => {
    const detector = new SwitchDetector();
    const actions = run(detector, {
      until: 1000,
      packetTimes: packets(20, new Map(), 200),
      signalingDownFrom: 200,
      spareDeliveringFrom: 400,
      spareConnected: (t) => t < 300,
    });
    assert.deepEqual(
      actions.map((a) => [a.at, a.action.kind]),
      [
        [230, 'arm'],
        [300, 'disarm'],
      ],
    );
    assert.equal(detector.state, 'no-spare');
    assert.equal(detector.told(1000).kind, 'none', 'the server cannot switch a page without a spare');
  });

  it('still switches when the page has already reconnected (the drop happened during this silence)', () => {
    const detector = new SwitchDetector();
    let signalingLostAt: number | null = null;
    const last = packets(20, new Map(), 500);
    const actions: Array<[number, string]> = [];
    for (let at = 0; at <= 1000; at += 10) {
      if (at === 510) signalingLostAt = 502; // dropped at 502, reconnected to the new primary at 560: still counts
      const action = detector.feed({ at, primaryLastPacketAt: last(at), spareDelivering: at >= 600, spareConnected: true, signalingLostAt });
      if (action.kind !== 'none') actions.push([at, action.kind]);
    }
    assert.deepEqual(actions, [
      [530, 'arm'],
      [600, 'switch'],
    ]);
  });

  it('an old signaling drop does not count for a later silence', () => {
    const detector = new SwitchDetector();
    const last = packets(20, new Map(), 3000);
    let switched = false;
    for (let at = 0; at <= 4000; at += 10) {
      const action = detector.feed({ at, primaryLastPacketAt: last(at), spareDelivering: at >= 3100, spareConnected: true, signalingLostAt: at >= 1000 ? 1000 : null });
      if (action.kind === 'switch') switched = true;
    }
    assert.equal(switched, false);
  });

  it('takeover mode: switches as soon as the spare delivers, never arms on jitter (signaling never drops)', () => {
    const options = { requireSignalingLoss: false, switchOnSpareMedia: true };
    // Jitter with the spare idle: nothing at all (no arming: the spare stays idle).
    const quiet = run(new SwitchDetector(options), { until: 1000, packetTimes: packets(20, new Map([[10, 300]])) });
    assert.deepEqual(quiet, []);
    // Kill at 500, the promoted standby's media on the spare at 530: switch at once, signaling up.
    const actions = run(new SwitchDetector(options), { until: 1000, packetTimes: packets(20, new Map(), 500), spareDeliveringFrom: 530 });
    assert.deepEqual(
      actions.map((a) => [a.at, a.action.kind]),
      [[530, 'switch']],
    );
    const sw = actions[0]!.action;
    assert.ok(sw.kind === 'switch' && sw.trigger === 'spare-media' && sw.silentMs === 30);
  });

  it('switches when told by the new primary', () => {
    const detector = new SwitchDetector();
    run(detector, { until: 100, packetTimes: packets(20) });
    const action = detector.told(105);
    assert.deepEqual(action, { kind: 'switch', trigger: 'server', silentMs: 5 });
    assert.equal(detector.told(110).kind, 'none', 'only once');
  });

  it('switches on silence alone when configured so, and refuses nonsense thresholds', () => {
    const detector = new SwitchDetector({ confirmWithSpareMedia: false, requireSignalingLoss: false, silenceMs: 40, armSilenceMs: 20 });
    const actions = run(detector, { until: 500, packetTimes: packets(20, new Map(), 200) });
    assert.deepEqual(
      actions.map((a) => [a.at, a.action.kind]),
      [
        [220, 'arm'],
        [240, 'switch'],
      ],
    );
    assert.throws(() => new SwitchDetector({ silenceMs: 30, armSilenceMs: 40 }), RangeError);
    assert.throws(() => new SwitchDetector({ silenceMs: 0 }), RangeError);
  });

  it('ignores reports older than one already seen', () => {
    const detector = new SwitchDetector();
    detector.feed({ at: 100, primaryLastPacketAt: 100, spareDelivering: false, spareConnected: true, signalingLostAt: null });
    assert.equal(detector.feed({ at: 50, primaryLastPacketAt: 0, spareDelivering: true, spareConnected: true, signalingLostAt: 40 }).kind, 'none');
    assert.equal(detector.silentMs(100), 0);
  });
});
