import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseThreadStat } from '../../scripts/common/thread-scheduling.ts';

/** A /proc/<pid>/task/<tid>/stat line with the given name, nice (field 19), rt priority (40) and policy (41). */
function statLine(tid: number, name: string, nice: number, rtPriority: number, policy: number): string {
  const fields = Array.from({ length: 50 }, () => '0');
  fields[0] = String(tid);
  fields[1] = `(${name})`;
  fields[2] = 'S';
  fields[18] = String(nice);
  fields[39] = String(rtPriority);
  fields[40] = String(policy);
  return fields.join(' ') + '\n';
}

describe('parseThreadStat', () => {
  it('reads name, nice, real-time priority and policy', () => {
    assert.deepEqual(parseThreadStat(42, statLine(42, 'EncoderQueue', 0, 49, 1)), { tid: 42, name: 'EncoderQueue', policy: 1, priority: 49, nice: 0 });
  });

  it('keeps a name with spaces and parentheses whole', () => {
    assert.equal(parseThreadStat(7, statLine(7, 'a (b) c', -10, 0, 0))?.name, 'a (b) c');
    assert.equal(parseThreadStat(7, statLine(7, 'a (b) c', -10, 0, 0))?.nice, -10);
  });

  it('rejects a line it cannot read', () => {
    assert.equal(parseThreadStat(1, 'garbage'), null);
    assert.equal(parseThreadStat(1, '1 (x) S 1 2'), null);
  });
});
