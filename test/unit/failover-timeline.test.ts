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

  it('keeps the fencing steps of a wrongly suspected primary beside the standby\'s promotion', () => {
    const timeline = buildTimeline([
      '2026-11-23T19:58:19.365Z error [fencing] failover step: fenced, this primary stops serving: superseded {"pid":2385,"role":"fenced","failover":"fenced","reason":"superseded"}',
      '2026-11-23T19:58:17.634Z info  [replication-client] told the primary it is superseded by epoch 2 {"pid":2450,"failover":"superseded-sent","epoch":2}',
      '2026-11-23T19:58:19.348Z error [replication-server] standby is promoting itself with epoch 2 {"pid":2385,"failover":"superseded-received","newEpoch":2}',
      '2026-11-23T19:58:19.353Z info  [mcu] role change {"pid":2385,"from":"primary","to":"fenced","epoch":1}',
      '2026-11-23T19:58:19.390Z warn  [fencing] failover step: VIP dropped on the fenced primary {"pid":2385,"failover":"fence-vip-dropped","ms":24.5}',
    ]);
    assert.deepEqual(
      timeline.map((e) => e.step),
      ['superseded-sent', 'superseded-received', 'primary -> fenced', 'fenced', 'fence-vip-dropped'],
    );
    assert.equal(timeline[4]!.detail.ms, 24.5);
  });
});
