/**
 * Fencing of a wrongly suspected primary in the namespace lab (MCU_TAKEOVER=1; issue 4 item 5,
 * mcu/src/takeover/fencing/fencing.ts). A stock socket.io-client in the client host sends a numbered
 * `mute` request with an ack every 10 ms throughout.
 *
 * 1. The primary is frozen (SIGSTOP) until the standby took over (epoch 2, same VIP and MAC,
 *    the connection rebuilt), then thawed (SIGCONT): it must fence itself (its standby told it
 *    `superseded`; it writes nothing more, drops its VIP) and exit with FENCED_EXIT_CODE. Its
 *    kernel, alive throughout, must have stopped acknowledging client segments once the
 *    heartbeat thread's lease lapsed (kernel-lease.ts): a segment it took while the standby's
 *    rebuilt socket was not yet live would otherwise stall the connection for good.
 * 2. The same with the primary's host cut off (crashHost) and then restored: at once (it hears
 *    `superseded` then), or only once it fenced itself while cut off (standby silent, probe
 *    unanswered, its NIC without carrier).
 * 3. The standby is SIGKILLed (not promoted): the primary judges the loss harmless (the standby's
 *    host refuses the probe) and keeps serving, unprotected: no false fencing.
 *
 * In each case the client must see no disconnect (a corrupted frame would make socket.io close
 * the connection), the same local TCP port, socket id and engine id, and every ack exactly once
 * and in order; afterwards exactly one host holds the VIP.
 *
 * Needs root, iproute2, nftables and the native addon; skipped otherwise.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FENCED_EXIT_CODE } from '../../mcu/src/takeover/fencing/fencing.ts';
import { LabProcessGroup, type LabEvent } from '../../scripts/lab/lab-process.ts';
import { labAdminEnv } from '../../scripts/lab/start-mcu.ts';
import { LabTopology } from '../../scripts/lab/topology.ts';
import { takeoverLabUnsupportedReason } from '../../scripts/lab/takeover-support.ts';
import type { McuClientReport } from '../../scripts/clients/takeover-mcu-client.ts';
import { assertClientSurvivedTakeover, describeClientReport } from '../helpers/takeover-client-checks.ts';

const CLIENT = 'scripts/clients/takeover-mcu-client.ts';
const INTERVAL_MS = 10;
/** Traffic before the fault and after the outcome (not synchronisation: the client's load). */
const DWELL_BEFORE_MS = 600;
const DWELL_AFTER_MS = 1000;
const ROOM = 'fencing-room';

const skipReason = await takeoverLabUnsupportedReason();

interface StatusDoc {
  role?: string;
  pid?: number;
  epoch?: number;
  mode?: string;
  protected?: boolean;
  fencing?: { state?: string; lastDecision?: { outcome?: string; reason?: string; probe?: { kind?: string } } | null } | null;
}

/** crash-host: restored as soon as the standby promoted; crash-host-long: restored only once the cut-off primary fenced itself. */
type Fault = 'freeze' | 'crash-host' | 'crash-host-long' | 'kill-standby';

async function scenario(t: TestContext, fault: Fault): Promise<void> {
  await LabTopology.cleanupStale();
  const lab = new LabTopology();
  const processes = new LabProcessGroup(lab);
  const start = processes.start.bind(processes);
  let failed = true;
  let frozenPid: number | null = null;
  let hostDown = false;
  try {
    await lab.up();
    const { vip } = lab.addresses;
    const port = lab.servicePort;
    const secret = `fencing-test-secret-${fault}-${process.pid}`;
    // 5 missed beats (+ the confirm window): a false takeover under this shared machine's load
    // (seen at 3, scripts/bench/false-takeover.ts) is not what these scenarios test.
    const common = { LOG_LEVEL: 'info', MCU_MISSED_HEARTBEATS: '5' };
    const { primary, standby } = await processes.startMcuPair(secret, { takeover: true, env: common });

    const client = start('client', CLIENT, [`http://${vip}:${port}`, ROOM, String(INTERVAL_MS)], labAdminEnv(secret));
    const connected = await client.waitForEvent('connect', { timeoutMs: 20_000 });
    const status = async (): Promise<StatusDoc> => (await client.request({ op: 'status' }, 10_000)).status as StatusDoc;
    const before = await status();
    assert.equal(before.mode, 'takeover', `primary /status: ${JSON.stringify(before)}`);
    assert.equal(before.fencing?.state, 'serving', `primary /status: ${JSON.stringify(before.fencing)}`);
    const started = await client.request({ op: 'start' }, 10_000);
    assert.equal(started.ok, true, `join failed: ${JSON.stringify(started)}`);
    await sleep(DWELL_BEFORE_MS);

    const fromFault = standby.mark();
    const faultAt = Date.now();
    let outcome = '';
    if (fault === 'kill-standby') {
      standby.kill('SIGKILL');
      await standby.exited;
      // The primary judges the loss (bounded by its decision window) and says so in /status.
      let doc = await status();
      for (let i = 0; i < 100 && !doc.fencing?.lastDecision; i++) doc = await status();
      outcome = `primary after the standby's death: role ${doc.role}, fencing ${JSON.stringify(doc.fencing)}`;
      assert.equal(doc.role, 'primary', outcome);
      assert.equal(doc.pid, before.pid, 'another process answers for the VIP');
      assert.equal(doc.fencing?.state, 'serving', outcome);
      assert.equal(doc.fencing?.lastDecision?.outcome, 'released', outcome);
      assert.equal(doc.fencing?.lastDecision?.probe?.kind, 'refused', outcome);
      assert.equal(doc.protected, false, outcome);
    } else {
      if (fault === 'freeze') {
        lab.freeze(primary.pid);
        frozenPid = primary.pid;
      } else {
        await lab.crashHost('primary');
        hostDown = true;
      }
      const promoted = await standby.waitFor((e: LabEvent) => e.event === 'promoted' || e.event === 'standby-failed', { from: fromFault, timeoutMs: 20_000 });
      assert.equal(promoted.event, 'promoted', `standby did not promote: ${standby.stderr.slice(-20).join('\n')}`);
      const promotedAt = Date.now();
      // Cut off, it cannot hear `superseded`: it must judge by itself (standby silent, probe
      // unanswered, its own NIC without carrier) and fence before the host comes back.
      const fencedWhileDown = fault === 'crash-host-long' ? await primary.waitFor((e: LabEvent) => e.event === 'fenced', { timeoutMs: 20_000 }) : null;
      // The wrongly suspected primary comes back while the new one serves its clients.
      if (fault === 'freeze') {
        lab.thaw(primary.pid);
        frozenPid = null;
      } else {
        await lab.restoreHost('primary');
        hostDown = false;
      }
      const backAt = Date.now();
      const fenced = fencedWhileDown ?? (await primary.waitFor((e: LabEvent) => e.event === 'fenced', { timeoutMs: 20_000 }));
      const exit = await primary.exited;
      assert.equal(exit.code, FENCED_EXIT_CODE, `old primary exit: ${JSON.stringify(exit)}; stderr:\n${primary.stderr.slice(-20).join('\n')}`);
      const takeover = (promoted.timeline as { takeover?: { reattached?: number } } | undefined)?.takeover;
      assert.equal(takeover?.reattached, 1, `takeover report: ${JSON.stringify(takeover)}`);
      const fencedAt = Number(fenced.fencedAt);
      const vipDroppedAt = fenced.vipDroppedAt === null ? null : Number(fenced.vipDroppedAt);
      outcome =
        `promoted ${promotedAt - faultAt} ms after the fault; old primary back ${backAt - promotedAt} ms later, ` +
        `fenced ${fencedAt - backAt} ms after that (VIP down ${vipDroppedAt === null ? 'never' : `${vipDroppedAt - fencedAt} ms later`}): ${String(fenced.reason)}`;
      assert.notEqual(vipDroppedAt, null, 'the fenced primary did not drop its VIP');
      // Exactly one primary: one VIP holder (the kernel's view) and one MCU answering, epoch 2.
      assert.deepEqual(await lab.vipHolders(), ['standby']);
      const after = await status();
      assert.equal(after.role, 'primary', JSON.stringify(after));
      assert.equal(after.epoch, 2, JSON.stringify(after));
      assert.notEqual(after.pid, before.pid, 'the old primary still answers');
      if (fault === 'freeze') {
        // The frozen primary's kernel stopped acknowledging the client once its lease lapsed
        // (kernel-lease.ts): otherwise a segment it took could be lost to the new primary.
        const counters = await lab.firewallCounters('primary');
        outcome += `; segments held back by the lapsed kernel lease: ${counters.leaseDropped}`;
        assert.ok(counters.leaseDropped > 0, `the frozen primary's kernel lease never lapsed: ${JSON.stringify(counters)}`);
      }
    }
    await sleep(DWELL_AFTER_MS);

    const report = (await client.request({ op: 'stop' }, 15_000)) as unknown as McuClientReport & LabEvent;
    t.diagnostic(`${fault}: ${outcome}; ${describeClientReport(report)}`);
    assertClientSurvivedTakeover(report, connected);
    failed = false;
  } finally {
    // Undo a fault left by a failed assertion, so the processes can be ended.
    if (frozenPid !== null) {
      try {
        lab.thaw(frozenPid);
      } catch {
        // gone already
      }
    }
    if (hostDown) await lab.restoreHost('primary').catch(() => undefined);
    if (failed) processes.writeLogs(`takeover-fencing-${process.pid}-${fault}`);
    await processes.closeAll();
    await lab.down();
  }
}

describe('fencing of a wrongly suspected primary in the lab (MCU_TAKEOVER=1)', { skip: skipReason ?? false }, () => {
  it('a primary frozen until the standby took over fences itself after SIGCONT: one primary, the client sees no disconnect and every ack once and in order', { timeout: 120_000 }, async (t) => {
    await scenario(t, 'freeze');
  });

  it('a primary whose host was cut off until the standby took over fences itself when the host comes back', { timeout: 120_000 }, async (t) => {
    await scenario(t, 'crash-host');
  });

  it('a primary cut off until it fenced itself (no `superseded` can reach it) comes back without its VIP', { timeout: 120_000 }, async (t) => {
    await scenario(t, 'crash-host-long');
  });

  it('a standby that dies (not promoted) leaves the primary serving, unprotected: no false fencing', { timeout: 120_000 }, async (t) => {
    await scenario(t, 'kill-standby');
  });
});
