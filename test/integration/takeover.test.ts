/**
 * Connection-level takeover of the real MCU in the namespace lab (scripts/lab), many failovers
 * in a row on the same client connection: the primary (mcu/src/main.ts) and the standby
 * (standby/src/main.ts) run in their hosts with MCU_TAKEOVER=1; a stock socket.io-client in the
 * client host joins a room and sends a numbered `mute` request with an ack every 10 ms, and the
 * server pushes a roster after each (alone in its room, they alternate muted/unmuted).
 *
 * Each failover alternates the fault: a SIGKILL of the primary process (nothing else: the
 * host's firewall drops its unmarked FIN/RST and the orphan guard everything its orphaned
 * sockets would still send) or a crash of its host (link down; the dead host's processes go
 * with it before it comes back). The standby detects the death, raises the VIP,
 * rebuilds the TCP connection (capture + TCP_REPAIR), replays the output log and re-attaches
 * the socket.io session; the connection is protected again on the new primary, and a new
 * standby starts on the dead host (re-protection), so the next failover is possible.
 *
 * The client must see no `disconnect`, the same local TCP port, socket id and engine id
 * throughout, every ack exactly once and in order, and an unbroken roster stream. A second
 * client connects and then sends nothing at all: its connection must be taken over too, at
 * every failover, including by the standbys started after it connected (each learns the idle
 * connection's TCP state only from its capture: the primary pings every client when a standby
 * syncs).
 * TAKEOVER_FAILOVERS sets the count (default 20).
 *
 * Needs root, iproute2, nftables and the native addon; skipped otherwise.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LabProcessGroup, type LabEvent } from '../../scripts/lab/lab-process.ts';
import { labAdminEnv, labMcuEnv } from '../../scripts/lab/start-mcu.ts';
import { LabTopology, type ServerHost } from '../../scripts/lab/topology.ts';
import { takeoverLabUnsupportedReason } from '../../scripts/lab/takeover-support.ts';
import type { McuClientReport } from '../../scripts/clients/takeover-mcu-client.ts';
import { assertClientSurvivedTakeover, describeClientReport } from '../helpers/takeover-client-checks.ts';

const CLIENT = 'scripts/clients/takeover-mcu-client.ts';
const FAILOVERS = Math.max(1, Math.min(100, Number(process.env.TAKEOVER_FAILOVERS ?? 20)));
const INTERVAL_MS = 10;
/** How long the pair runs protected before the next fault (session records and output flowing). */
const DWELL_BEFORE_MS = 500;
const ROOM = 'takeover-room';

const skipReason = await takeoverLabUnsupportedReason();

interface TakeoverSummary {
  connections?: number;
  reattached?: number;
  fallbacks?: Array<{ code: string; reason: string }>;
}

const other = (host: ServerHost): ServerHost => (host === 'primary' ? 'standby' : 'primary');

describe('connection-level takeover of the MCU in the lab (MCU_TAKEOVER=1)', { skip: skipReason ?? false }, () => {
  it(`masks ${FAILOVERS} failovers in a row (kill -9 and host crash alternating): same connection, no disconnect, every ack and push once and in order`, { timeout: 60_000 + FAILOVERS * 30_000 }, async (t: TestContext) => {
    await LabTopology.cleanupStale();
    const lab = new LabTopology();
    const processes = new LabProcessGroup(lab);
    const start = processes.start.bind(processes);
    const outcomes: string[] = [];
    let failed = true;
    try {
      await lab.up();
      const { vip } = lab.addresses;
      const port = lab.servicePort;
      const secret = `takeover-test-secret-${process.pid}`;
      const common = { LOG_LEVEL: 'info', MCU_MISSED_HEARTBEATS: '3' };
      let primaryHost: ServerHost = 'primary';
      let { primary, standby } = await processes.startMcuPair(secret, { takeover: true, env: common });

      const client = start('client', CLIENT, [`http://${vip}:${port}`, ROOM, String(INTERVAL_MS)], labAdminEnv(secret));
      const connected = await client.waitForEvent('connect', { timeoutMs: 20_000 });
      const status = await client.request({ op: 'status' }, 10_000);
      assert.equal((status.status as { mode?: string } | undefined)?.mode, 'takeover', `primary /status: ${JSON.stringify(status)}`);
      const started = await client.request({ op: 'start' }, 10_000);
      assert.equal(started.ok, true, `join failed: ${JSON.stringify(started)}`);
      // Connected, never joins, never sends: only engine.io's pings (every 25 s) cross its connection.
      const idle = start('client', CLIENT, [`http://${vip}:${port}`, `${ROOM}-idle`, String(INTERVAL_MS)], labAdminEnv(secret));
      const idleConnected = await idle.waitForEvent('connect', { timeoutMs: 20_000 });

      for (let n = 1; n <= FAILOVERS; n++) {
        await sleep(DWELL_BEFORE_MS);
        const fault = n % 2 === 1 ? 'kill' : 'crash';
        const dead = primaryHost;
        const fromFault = standby.mark();
        const t0 = performance.now();
        // A kill needs nothing more: the host's orphan guard silences the dead process's sockets.
        if (fault === 'kill') lab.killProcess(primary.pid, dead);
        else await lab.crashHost(dead);
        const promoted = await standby.waitFor((e: LabEvent) => e.event === 'promoted' || e.event === 'standby-failed', { from: fromFault, timeoutMs: 20_000 });
        const promotedMs = performance.now() - t0;
        assert.equal(promoted.event, 'promoted', `failover ${n}: standby did not promote`);
        const takeover = (promoted.timeline as { takeover?: TakeoverSummary } | undefined)?.takeover;
        if (fault === 'crash') {
          // The crashed host's processes die with it (the cut-off primary may have fenced itself
          // and exited already); it comes back with its VIP down.
          await primary.kill('SIGKILL');
          await lab.dropVip(dead);
          await lab.restoreHost(dead);
        }
        await primary.close({ graceMs: 500 }).catch(() => undefined);
        primary = standby;
        primaryHost = other(dead);
        const where = await client.request({ op: 'where' }, 10_000);
        const line =
          `failover ${n} (${fault}): promoted after ${promotedMs.toFixed(0)} ms; takeover connections ${takeover?.connections}, ` +
          `re-attached ${takeover?.reattached}, fallbacks ${(takeover?.fallbacks ?? []).map((f) => f.code).join(',') || 'none'}; ` +
          `client socket ${String(where.socketId)} port ${String(where.localPort)}`;
        outcomes.push(line);
        t.diagnostic(line);
        assert.equal(where.socketId, connected.socketId, `failover ${n}: socket.io id changed`);
        assert.equal(where.localPort, connected.localPort, `failover ${n}: local TCP port changed`);
        const idleWhere = await idle.request({ op: 'where' }, 10_000);
        assert.equal(idleWhere.socketId, idleConnected.socketId, `failover ${n}: the idle client's socket.io id changed (takeover report ${JSON.stringify(takeover)})`);
        assert.equal(idleWhere.localPort, idleConnected.localPort, `failover ${n}: the idle client's local TCP port changed`);
        assert.equal(takeover?.reattached, 2, `failover ${n}: takeover report ${JSON.stringify(takeover)}`);
        standby = start(dead, 'standby/src/main.ts', [], { ...labMcuEnv(lab, dead, secret, { takeover: true, role: 'standby' }), ...common });
        await standby.waitForEvent('standby-ready', { timeoutMs: 30_000 });
      }

      const report = (await client.request({ op: 'stop' }, 15_000)) as unknown as McuClientReport & LabEvent;
      const line = `${describeClientReport(report)}, rosters ${report.rosters} (breaks ${report.rosterBreaks})`;
      outcomes.push(line);
      t.diagnostic(line);
      assertClientSurvivedTakeover(report, connected);
      const idleReport = (await idle.request({ op: 'stop' }, 15_000)) as unknown as McuClientReport & LabEvent;
      assert.equal(idleReport.disconnects, 0, `the idle client was disconnected: ${JSON.stringify(idleReport.disconnectReasons)}`);
      assert.equal(idleReport.connects, 1, 'the idle client connected more than once');
      assert.equal(report.rosterBreaks, 0, 'a roster push was lost, repeated or reordered (the latest roster at an ack did not show that mute)');
      assert.ok(report.rosters >= report.acked, `rosters ${report.rosters} < acks ${report.acked}`);
      failed = false;
    } finally {
      // Post-mortem: each process's stderr (the MCUs' logs) of a failed run.
      if (failed) processes.writeLogs(`takeover-test-${process.pid}`);
      await processes.closeAll();
      await lab.down();
      t.diagnostic(outcomes.join('\n'));
    }
  });
});
