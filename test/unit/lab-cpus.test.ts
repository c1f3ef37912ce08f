import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { splitCpus } from '../../scripts/lab/topology.ts';

describe('splitCpus', () => {
  it('gives the servers the first half and the clients the rest', () => {
    assert.deepEqual(splitCpus(2), { servers: '0', clients: '1' });
    assert.deepEqual(splitCpus(4), { servers: '0-1', clients: '2-3' });
    assert.deepEqual(splitCpus(3), { servers: '0', clients: '1-2' });
  });

  it('does not split a single CPU', () => {
    assert.equal(splitCpus(1), null);
  });
});
