import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildTimeline, parseLogLine } from '../../scripts/failover-timeline.ts';

describe('failover timeline from logs', () => {
  it('reads the development format, with a supervisor prefix', () => {
    const e = parseLogLine(
      '[standby] 2026-11-23T17:23:13.453Z info  [standby] failover step: primary confirmed dead {"pid":32229,"failover":"confirmed-dead","reason":"port-unreachable"}',
    );
    assert.ok(e);
    assert.equal(e.step, 'confirmed-dead');
    assert.equal(e.pid, 32229);
    assert.equal(e.at, Date.parse('2026-11-23T17:23:13.453Z'));
    assert.equal(e.detail.reason, 'port-unreachable');
  });

  it('reads JSON lines (production) and role changes', () => {
    const e = parseLogLine('{"timestamp":"2026-11-23T17:23:13.487Z","level":"info","module":"mcu","message":"role change","from":"promoting","to":"primary","pid":7}');
    assert.ok(e);
    assert.equal(e.step, 'promoting -> primary');
  });

  it('ignores other lines and sorts steps from several processes by time', () => {
    const timeline = buildTimeline([
      '2026-11-23T17:23:13.500Z info  [signaling] failover step: restart offer sent {"pid":2,"failover":"restart-offer-sent"}',
      'not a log line',
      '2026-11-23T17:23:13.400Z info  [room] participant joined {"pid":1}',
      '{"timestamp":"2026-11-23T17:23:13.450Z","message":"failover step: primary confirmed dead","failover":"confirmed-dead","pid":2}',
      '{broken json',
    ]);
    assert.deepEqual(timeline.map((e) => e.step), ['confirmed-dead', 'restart-offer-sent']);
  });
});
