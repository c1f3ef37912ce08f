import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FAILOVER_STEP_DESCRIPTIONS, FailoverStep, isFailoverStep } from '../../mcu/src/wire/failover-steps.ts';
import { describeStep, parseLogLine } from '../../scripts/failover-timeline.ts';

const steps = Object.values(FailoverStep);

describe('failover steps', () => {
  it('names every step once', () => {
    assert.equal(new Set(steps).size, steps.length, 'two keys of FailoverStep share a name');
    for (const step of steps) assert.match(step, /^[a-z]+(-[a-z]+)*$/, `"${step}" is not a kebab-case name`);
    assert.ok(steps.includes('mixing-on-spare') && steps.includes('spare-switched'), 'the spare path steps are listed');
  });

  it('describes every step, and nothing else', () => {
    for (const step of steps) assert.ok(FAILOVER_STEP_DESCRIPTIONS[step]?.trim(), `no description for "${step}"`);
    assert.deepEqual(Object.keys(FAILOVER_STEP_DESCRIPTIONS).sort(), [...steps].sort());
    assert.equal(isFailoverStep('primary -> fenced'), false);
  });

  it('the timeline parser reads and explains every step', () => {
    for (const step of steps) {
      const line = JSON.stringify({ timestamp: '2026-11-23T17:23:13.453Z', level: 'info', module: 'standby', message: 'a step', failover: step, pid: 7 });
      assert.equal(parseLogLine(line)?.step, step);
      assert.equal(describeStep(step), FAILOVER_STEP_DESCRIPTIONS[step]);
    }
    assert.equal(describeStep('promoting -> primary'), null);
  });
});
