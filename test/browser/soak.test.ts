/**
 * The soak in CI (issue 14 item 4; the long run is scripts/bench/soak.ts): five consecutive
 * failovers in one lab, takeover mode with the witness, one of each fault of the rotation (kill -9
 * of the primary, crash of its host, freeze and thaw of it, kill -9 of the standby) and one more
 * kill, the pair re-formed and protected after each (scripts/bench/soak/run.ts), under load the
 * whole time: three Chromium pages in one call and socket.io clients in one process.
 *
 * Asserted: every fault recovered (the pages back to a clean mix, the pair protected again), no
 * participant lost (every page and client in the MCU's participant list at the end, none extra),
 * no ack lost, repeated or out of order and one primary at any moment (the history checker), the
 * mix right at the end on every page. Gaps and resources are printed, not asserted.
 *
 * Needs root, iproute2, nftables, etcd, the native addon and Chromium; skipped otherwise.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { thisHost } from '../../mcu/src/core/host-commands.ts';
import { runSoak, SOAK_FAULTS } from '../../scripts/bench/soak/run.ts';
import { chromiumUnavailableReason } from '../../scripts/common/browser.ts';
import { takeoverLabUnsupportedReason } from '../../scripts/lab/takeover-support.ts';

const FAILOVERS = SOAK_FAULTS.length + 1;
const etcdMissing = (await thisHost.run(['etcd', '--version'], { check: false, timeoutMs: 10_000 }).catch(() => null))?.code === 0 ? null : 'etcd is not installed (apt-get install etcd-server)';
const skipReason = (await takeoverLabUnsupportedReason()) ?? etcdMissing ?? chromiumUnavailableReason();

describe('soak: consecutive failovers of every kind under load (takeover mode with the witness, real Chromium)', { skip: skipReason ?? false }, () => {
  it(`${FAILOVERS} failovers (kill, crash, freeze, standby-kill, kill): all recovered, nobody lost, every ack once and in order, the mix right at the end`, { timeout: 1_800_000 }, async (t) => {
    const result = await runSoak({
      failovers: FAILOVERS,
      pages: 3,
      clients: 10,
      clientsPerRoom: 5,
      clientIntervalMs: 500,
      dwellMs: 1000,
      // Generous bounds: on this shared 2-core machine (load average 30-60 from other runs) a
      // promotion took 15 s and a re-formed pair a minute; the soak judges survival, not speed.
      promotionTimeoutMs: 60_000,
      settleTimeoutMs: 180_000,
      recoveryTimeoutMs: 90_000,
      // Three Chromium pages load both cores and real-time threads get throttled for ~1 s at a
      // time (issue 14 item 3): a 3 s window keeps false takeovers out of what this tests.
      missedHeartbeats: 300,
      timeCapMs: 1_700_000,
      log: (line) => t.diagnostic(line),
    });
    const c = result.clients;
    t.diagnostic(
      `${result.recovered}/${FAILOVERS} failovers recovered in ${Math.round(result.durationMs / 1000)} s; clients ${c ? `${c.acked} acks, ${c.missing} missing, ${c.duplicates} repeated, ${c.outOfOrder} out of order, ${c.disconnects} disconnects` : 'no report'}; ` +
        `history: ${result.verdict.acks} acks over epochs ${result.verdict.epochs.join(',')}; roster ${JSON.stringify(result.roster)}; ` +
        `resources: ${result.resources.trends.map((x) => `${x.role} ${x.metric} ${x.firstQuarter} -> ${x.lastQuarter}`).join(', ')}`,
    );
    assert.deepEqual(result.problems, [], 'the soak found problems');
    assert.deepEqual(result.unplannedFailovers, [], 'failovers no fault caused');
    assert.equal(result.completed, FAILOVERS, `stopped by ${result.stoppedBy}`);
    assert.equal(result.recovered, FAILOVERS, 'not every failover recovered');
    assert.deepEqual(
      result.records.map((r) => r.failover),
      result.records.map((r) => r.fault !== 'standby-kill'),
      'a failover for every fault of the primary, none for the standby kill',
    );
    assert.ok(result.roster, 'no roster at the end');
    assert.deepEqual(result.roster.missing, [], 'participants lost');
    assert.deepEqual(result.roster.extra, [], 'participants nobody of the run is');
    assert.equal(result.roster.present, 3 + 10);
    assert.ok(c, 'no client report');
    assert.equal(c.missing + c.duplicates + c.outOfOrder + c.failed, 0, 'acks lost, repeated, out of order or refused');
    assert.equal(c.disconnects, 0, 'a client was disconnected');
    assert.ok(result.verdict.ok, result.verdict.violations.join('; '));
    assert.ok(result.verdict.acks > 0, 'no request was acknowledged at all');
    assert.equal(result.mix.length, 3);
    for (const m of result.mix) assert.ok(m.hears && m.sees, `${m.page}: mix ${JSON.stringify(m)}`);
  });
});
