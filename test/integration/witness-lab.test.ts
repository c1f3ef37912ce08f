/**
 * Fencing in reconnect mode and the witness, in the namespace lab (real MCU and standby
 * processes in the primary and standby hosts, the VIP on their macvlans, etcd in the witness
 * host; issue 14):
 * 1. Two-node mode (no witness), the issue's split brain: the standby promoted over a live
 *    primary (frozen until it took over) and raised the VIP; the old primary, thawed, reads
 *    `superseded` and must fence: VIP down, exit 4. Only the standby holds the VIP.
 * 2. With the witness: the primary cut off from its standby only (both still reach the clients
 *    and the witness, a partition two nodes cannot judge): the standby wins epoch 2 at the witness
 *    and raises the VIP, the old primary finds the higher epoch there and fences. One VIP holder.
 * 3. The same cut in takeover mode (MCU_TAKEOVER=1): the fencing guard alone would judge the lost
 *    standby's host gone and keep serving; the witness's higher epoch fences it.
 * 4. With the witness: kill -9 of the primary: the standby promotes, the epoch in etcd is 2, and
 *    the new primary serves on the VIP.
 * Needs root, iproute2, nftables and etcd; skipped otherwise.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { thisHost } from '../../mcu/src/core/host-commands.ts';
import { FENCED_EXIT_CODE } from '../../mcu/src/takeover/fencing/fencing.ts';
import { LabProcessGroup, type LabEvent } from '../../scripts/lab/lab-process.ts';
import { labMcuEnv, labStatus, labWitnessEpoch } from '../../scripts/lab/start-mcu.ts';
import { labUnsupportedReason, LabTopology } from '../../scripts/lab/topology.ts';
import { takeoverLabUnsupportedReason } from '../../scripts/lab/takeover-support.ts';

const etcdMissing = (await thisHost.run(['etcd', '--version'], { check: false, timeoutMs: 10_000 }).catch(() => null))?.code === 0 ? null : 'etcd is not installed (apt-get install etcd-server)';
const skipReason = (await labUnsupportedReason()) ?? etcdMissing;
const takeoverSkipReason = await takeoverLabUnsupportedReason();

interface StatusDoc {
  role?: string;
  pid?: number;
  epoch?: number;
  witness?: { state?: string; epoch?: number } | null;
}

type Scenario = 'freeze-two-node' | 'cut-with-witness' | 'cut-takeover-with-witness' | 'kill-with-witness';

async function scenario(t: TestContext, kind: Scenario): Promise<void> {
  await LabTopology.cleanupStale();
  const lab = new LabTopology();
  const processes = new LabProcessGroup(lab);
  let failed = true;
  let frozenPid: number | null = null;
  let cut = false;
  try {
    await lab.up();
    const witness = kind !== 'freeze-two-node';
    const takeover = kind === 'cut-takeover-with-witness';
    if (witness) await lab.startWitness();
    const secret = `witness-lab-secret-${kind}-${process.pid}`;
    // 5 missed beats: a false takeover under this shared machine's load is not what these test.
    const common = { LOG_LEVEL: 'info', MCU_MISSED_HEARTBEATS: '5' };
    const primary = processes.start('primary', 'mcu/src/main.ts', [], { ...labMcuEnv(lab, 'primary', secret, { witness, takeover }), ...common });
    const listening = await primary.waitForEvent('listening', { timeoutMs: 30_000 });
    const standby = processes.start('standby', 'standby/src/main.ts', [], { ...labMcuEnv(lab, 'standby', secret, { witness, takeover }), ...common });
    await standby.waitForEvent('standby-ready', { timeoutMs: 30_000 });
    const before = (await labStatus(lab, secret)) as StatusDoc;
    assert.equal(before.pid, primary.pid, `the VIP leads to the primary: ${JSON.stringify(before)}`);
    assert.deepEqual(await lab.vipHolders(), ['primary']);
    if (witness) {
      assert.equal(before.witness?.state, 'holding', JSON.stringify(before.witness));
      assert.equal(await labWitnessEpoch(lab), 1);
    }

    const fromFault = standby.mark();
    const faultAt = Date.now();
    if (kind === 'freeze-two-node') {
      lab.freeze(primary.pid);
      frozenPid = primary.pid;
    } else if (kind === 'cut-with-witness' || kind === 'cut-takeover-with-witness') {
      await lab.cut('primary', 'standby');
      cut = true;
    } else {
      lab.killPrimaryProcess(primary.pid);
    }
    const promoted = await standby.waitFor((e: LabEvent) => e.event === 'promoted' || e.event === 'standby-failed', { from: fromFault, timeoutMs: 20_000 });
    assert.equal(promoted.event, 'promoted', `the standby did not promote: ${standby.stderr.slice(-20).join('\n')}`);
    assert.equal(promoted.epoch, 2);
    const promotedAt = Date.now();
    let outcome = `promoted ${promotedAt - faultAt} ms after the ${kind.split('-')[0]}`;

    if (kind !== 'kill-with-witness') {
      if (kind === 'freeze-two-node') {
        // Split brain for now: the frozen primary still holds the VIP beside the new one.
        assert.deepEqual((await lab.vipHolders()).sort(), ['primary', 'standby']);
        lab.thaw(primary.pid);
        frozenPid = null;
      }
      // Back (thawed), or still cut off from its standby: it must let go of the VIP and stop.
      const fenced = await primary.waitForEvent('fenced', { timeoutMs: 20_000 });
      const exit = await primary.exited;
      assert.equal(exit.code, FENCED_EXIT_CODE, `old primary exit: ${JSON.stringify(exit)}; stderr:\n${primary.stderr.slice(-20).join('\n')}`);
      assert.notEqual(fenced.vipDroppedAt, null, `the fenced primary did not drop its VIP: ${JSON.stringify(fenced)}`);
      outcome += `; the old primary fenced ${Number(fenced.fencedAt) - faultAt} ms after the fault, VIP down ${Number(fenced.vipDroppedAt) - Number(fenced.fencedAt)} ms after that: ${String(fenced.reason)}`;
      // Exactly one VIP holder.
      assert.deepEqual(await lab.vipHolders(), ['standby']);
    } else {
      // A killed process removes nothing: its host's VIP interface stays up (with no listener
      // behind it any more); the new primary's is up too.
      assert.ok((await lab.vipHolders()).includes('standby'));
    }
    if (cut) {
      await lab.heal('primary', 'standby');
      cut = false;
    }
    // From the client host through the VIP; after a kill -9 from the standby host itself: the dead
    // primary's host still answers for the VIP (its kernel refuses the connection), see README.
    const after = (await labStatus(lab, secret, { host: kind === 'kill-with-witness' ? 'standby' : 'client' })) as StatusDoc;
    assert.equal(after.pid, standby.pid, `the VIP leads to the promoted standby: ${JSON.stringify(after)}`);
    assert.equal(after.epoch, 2);
    if (witness) {
      assert.equal(await labWitnessEpoch(lab), 2, 'the epoch advanced in etcd');
      assert.equal(after.witness?.state, 'holding', JSON.stringify(after.witness));
    }
    t.diagnostic(`${kind}: ${outcome}; first primary epoch ${String(listening.epoch)}`);
    failed = false;
  } finally {
    if (frozenPid !== null) {
      try {
        lab.thaw(frozenPid);
      } catch {
        // gone already
      }
    }
    if (cut) await lab.heal('primary', 'standby').catch(() => undefined);
    if (failed) t.diagnostic(`logs: ${processes.writeLogs(`witness-lab-${process.pid}-${kind}`).join(', ')}`);
    await processes.closeAll();
    await lab.down();
  }
}

describe('fencing in reconnect mode, and the witness, in the lab', { skip: skipReason ?? false }, () => {
  it('two-node mode: a primary frozen until its standby promoted (VIP raised on both) fences itself after SIGCONT: one VIP holder', { timeout: 120_000 }, async (t) => {
    await scenario(t, 'freeze-two-node');
  });

  it('with the witness: the primary cut off from its standby only: the standby wins epoch 2, the old primary finds it at the witness and fences: one VIP holder', { timeout: 120_000 }, async (t) => {
    await scenario(t, 'cut-with-witness');
  });

  it('with the witness, takeover mode: the primary cut off from its standby only fences itself through the witness: one VIP holder', { timeout: 120_000, skip: takeoverSkipReason ?? false }, async (t) => {
    await scenario(t, 'cut-takeover-with-witness');
  });

  it('with the witness: kill -9 of the primary: the standby promotes, the epoch in etcd is 2, it serves on the VIP', { timeout: 120_000 }, async (t) => {
    await scenario(t, 'kill-with-witness');
  });
});
