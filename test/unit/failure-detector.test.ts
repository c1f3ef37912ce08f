import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FailureDetector, type DeathInfo, type FailureDetectorOptions, type FailureDetectorState } from '../../mcu/src/detection/failure-detector.ts';

/** A detector on a fake clock, recording every transition and verdict. */
function harness(options: FailureDetectorOptions = {}) {
  let now = 1000;
  const detector = new FailureDetector({ clock: () => now, ...options });
  const transitions: string[] = [];
  const deaths: DeathInfo[] = [];
  detector.on('state', (to, from, at) => transitions.push(`${at}:${from}->${to}`));
  detector.on('dead', (info) => deaths.push(info));
  return {
    detector,
    transitions,
    deaths,
    advance(ms: number): void {
      now += ms;
      detector.tick(now);
    },
    /** Ticks every `step` ms for `ms`, as a timer would. */
    run(ms: number, step = 1): void {
      for (let t = 0; t < ms; t += step) this.advance(step);
    },
    get now(): number {
      return now;
    },
  };
}

function expectState(d: FailureDetector, state: FailureDetectorState): void {
  assert.equal(d.state, state);
}

describe('FailureDetector', () => {
  it('starts waiting and only a heartbeat makes it alive', () => {
    const h = harness();
    expectState(h.detector, 'waiting');
    h.run(1000);
    expectState(h.detector, 'waiting');
    assert.equal(h.detector.nextCheckAt(), null);
    h.detector.heartbeat();
    expectState(h.detector, 'alive');
  });

  it('stays alive while heartbeats arrive every interval', () => {
    const h = harness();
    for (let i = 0; i < 100; i++) {
      h.detector.heartbeat();
      h.run(10);
    }
    expectState(h.detector, 'alive');
    assert.deepEqual(h.deaths, []);
  });

  it('declares death after 3 missed heartbeats (30 ms), suspecting first', () => {
    const h = harness();
    h.detector.heartbeat(); // at 1000
    h.run(19);
    expectState(h.detector, 'alive');
    h.advance(1); // 20 ms: one beat late
    expectState(h.detector, 'suspected');
    assert.equal(h.detector.suspicion, 'late');
    h.run(9);
    expectState(h.detector, 'suspected');
    h.advance(1); // 30 ms
    expectState(h.detector, 'dead');
    assert.deepEqual(h.deaths, [{ detectedAt: 1030, lastHeartbeatAt: 1000, reason: 'heartbeat-timeout', channelClosedAt: null }]);
    assert.deepEqual(h.transitions, ['1000:waiting->alive', '1020:alive->suspected', '1030:suspected->dead']);
  });

  it('honours intervalMs and missedBeats', () => {
    const h = harness({ intervalMs: 50, missedBeats: 5 });
    assert.equal(h.detector.timeoutMs, 250);
    h.detector.heartbeat();
    h.run(249);
    assert.notEqual(h.detector.state, 'dead');
    h.advance(1);
    expectState(h.detector, 'dead');
  });

  it('goes straight through suspected to dead when a tick comes late', () => {
    const h = harness();
    h.detector.heartbeat();
    h.advance(500);
    assert.deepEqual(h.transitions, ['1000:waiting->alive', '1500:alive->suspected', '1500:suspected->dead']);
    assert.equal(h.deaths.length, 1);
  });

  it('returns to alive when heartbeats resume while suspected', () => {
    const h = harness();
    h.detector.heartbeat();
    h.run(25);
    expectState(h.detector, 'suspected');
    h.detector.heartbeat();
    expectState(h.detector, 'alive');
    assert.equal(h.detector.suspicion, null);
    // The timeout restarts from the new heartbeat.
    h.run(29);
    assert.notEqual(h.detector.state, 'dead');
    h.advance(1);
    expectState(h.detector, 'dead');
    assert.equal(h.deaths[0]!.lastHeartbeatAt, 1025);
  });

  it('turns a channel closed without shutdown into death after the grace', () => {
    const h = harness({ closeGraceMs: 3 });
    h.detector.heartbeat();
    h.advance(4);
    h.detector.channelClosed(false);
    expectState(h.detector, 'suspected');
    assert.equal(h.detector.suspicion, 'channel-closed');
    assert.equal(h.detector.nextCheckAt(), 1007);
    h.run(2);
    expectState(h.detector, 'suspected');
    h.advance(1);
    expectState(h.detector, 'dead');
    assert.deepEqual(h.deaths, [{ detectedAt: 1007, lastHeartbeatAt: 1000, reason: 'channel-closed', channelClosedAt: 1004 }]);
  });

  it('with a zero grace, a closed channel is a verdict at once', () => {
    const h = harness({ closeGraceMs: 0 });
    h.detector.heartbeat();
    h.advance(2);
    h.detector.channelClosed(false);
    expectState(h.detector, 'dead');
    assert.equal(h.deaths[0]!.detectedAt, 1002);
    assert.equal(h.deaths[0]!.reason, 'channel-closed');
  });

  it('a channel closing while already suspected (late) becomes a channel-closed verdict', () => {
    const h = harness({ closeGraceMs: 2 });
    h.detector.heartbeat();
    h.run(22);
    assert.equal(h.detector.suspicion, 'late');
    h.detector.channelClosed(false);
    assert.equal(h.detector.suspicion, 'channel-closed');
    h.run(2);
    expectState(h.detector, 'dead');
    assert.equal(h.deaths[0]!.reason, 'channel-closed');
  });

  it('a deliberate shutdown stops it and it never dies afterwards', () => {
    const h = harness();
    h.detector.heartbeat();
    h.advance(5);
    h.detector.channelClosed(true);
    expectState(h.detector, 'stopped');
    h.run(10_000, 10);
    h.detector.channelClosed(false);
    h.detector.heartbeat();
    expectState(h.detector, 'stopped');
    assert.deepEqual(h.deaths, []);
    assert.equal(h.detector.nextCheckAt(), null);
  });

  it('a deliberate shutdown while suspected still stops, never dies', () => {
    const h = harness();
    h.detector.heartbeat();
    h.run(25);
    expectState(h.detector, 'suspected');
    h.detector.channelClosed(true);
    expectState(h.detector, 'stopped');
    h.run(100);
    assert.deepEqual(h.deaths, []);
  });

  it('a channel closing before the first heartbeat is no death', () => {
    const h = harness();
    h.detector.channelClosed(false);
    expectState(h.detector, 'waiting');
    h.run(100);
    assert.deepEqual(h.deaths, []);
  });

  it('emits dead once, ignores late inputs, and reset() starts over', () => {
    const h = harness();
    h.detector.heartbeat();
    h.run(40);
    h.detector.channelClosed(false);
    h.detector.heartbeat();
    h.run(40);
    assert.equal(h.deaths.length, 1);
    expectState(h.detector, 'dead');
    h.detector.reset();
    expectState(h.detector, 'waiting');
    assert.equal(h.detector.deathInfo, null);
    h.detector.heartbeat();
    expectState(h.detector, 'alive');
  });

  it('nextCheckAt points at the earliest deadline', () => {
    const h = harness();
    h.detector.heartbeat(); // 1000
    assert.equal(h.detector.nextCheckAt(), 1020); // suspicion
    h.run(20);
    assert.equal(h.detector.nextCheckAt(), 1030); // death
  });

  it('a throwing listener does not break the state machine', () => {
    const h = harness();
    h.detector.on('dead', () => {
      throw new Error('listener bug');
    });
    h.detector.heartbeat();
    h.run(30);
    expectState(h.detector, 'dead');
    assert.equal(h.deaths.length, 1);
  });
});
