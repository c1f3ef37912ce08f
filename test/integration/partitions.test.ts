/**
 * Partitions in the namespace lab, Jepsen style (issue 14 item 2; scripts/lab/partition-run.ts):
 * the MCU pair in takeover mode with the witness, three socket.io clients sending numbered
 * requests all the time, one round of the rotation of cuts (primary|standby, primary|witness,
 * standby|witness, client|primary, and the combinations that isolate one node), each healed, the
 * pair back to serving, protected, after each. The checker (scripts/lab/history-checker.ts) must
 * find one primary at any moment and every acknowledged request answered once and in order.
 * The long run (200+ partitions) is scripts/bench/partitions.ts.
 *
 * Needs root, iproute2, nftables, etcd and the native addon; skipped otherwise.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { thisHost } from '../../mcu/src/core/host-commands.ts';
import { PARTITION_ROTATION, runPartitions } from '../../scripts/lab/partition-run.ts';
import { takeoverLabUnsupportedReason } from '../../scripts/lab/takeover-support.ts';

const etcdMissing = (await thisHost.run(['etcd', '--version'], { check: false, timeoutMs: 10_000 }).catch(() => null))?.code === 0 ? null : 'etcd is not installed (apt-get install etcd-server)';
const skipReason = (await takeoverLabUnsupportedReason()) ?? etcdMissing;

describe('partitions between primary, standby, witness and clients (takeover mode with the witness)', { skip: skipReason ?? false }, () => {
  it('one round of the rotation: no split brain, every acknowledged request answered once and in order, the pair back after each heal', { timeout: 600_000 }, async (t) => {
    const result = await runPartitions({
      partitions: PARTITION_ROTATION.length,
      clients: 3,
      intervalMs: 50,
      holdMinMs: 300,
      holdMaxMs: 1500,
      settleTimeoutMs: 45_000,
      seed: 7,
      log: (line) => t.diagnostic(line),
    });
    const v = result.verdict;
    t.diagnostic(
      `${result.completed} partitions, ${result.records.filter((r) => r.failover).length} failovers, ${v.acks} acks over epochs ${v.epochs.join(',')}, ` +
        `handovers ${v.handovers.map((h) => `${h.from}->${h.to} ${h.gapMs.toFixed(0)} ms`).join(', ')}, lost with a dropped connection ${v.lostWithDisconnect} (${v.disconnects} disconnects), ` +
        `fresh pairs ${result.records.filter((r) => r.pairRestarted).length}`,
    );
    assert.deepEqual(v.violations, [], 'the checker found violations');
    assert.deepEqual(result.problems, [], 'the pair did not come back as it should');
    assert.equal(result.completed, PARTITION_ROTATION.length);
    assert.ok(v.acks > 0, 'no request was acknowledged at all');
  });
});
