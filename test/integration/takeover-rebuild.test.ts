/**
 * The standby's transport takeover end to end in the namespace lab
 * (scripts/lab/topology.ts): a client host, a primary host and a standby host on a
 * hub LAN, the VIP on a virtual MAC. Per trial a fresh "primary" process on VIP:port
 * exchanges numbered lines with a client (both ways, every 5 ms), replicating its
 * TransportRecord, its output log (output commit) and its consumed offset to the
 * standby fixture over a side channel. The standby fixture captures the LAN
 * (ConnectionTracker), from the SYN on even trials and from mid-stream on odd ones
 * (as after a re-protection). Then the primary is SIGKILLed (the MCU's nft rules keep
 * its kernel silent; the port is silenced at once for the orphans' retransmissions),
 * the VIP moves to the standby, and the standby plans and rebuilds the connection in
 * its own namespace (planRepair + repairConnection), writes writeAfterRepair, feeds
 * pendingInput to its line protocol and goes on. The client must see no loss,
 * duplicate, reorder, EOF or RST, and the standby every client line once, in order.
 * Every third trial the client's segments to the VIP are dropped in the client host
 * (its ACKs are "lost") while the primary writes a long line just before the kill: the
 * client then holds output it never acknowledged, which the rebuilt socket must count
 * as in flight (sendQueue), or the client's later ACK beyond snd_nxt is discarded and
 * the connection stalls for good (the addon's trap). The block is lifted once rebuilt.
 *
 * Needs root, iproute2, nftables and the native addon; skipped otherwise.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LabProcess, type LabEvent } from '../../scripts/lab/lab-process.ts';
import { LabTopology, type LabHost } from '../../scripts/lab/topology.ts';
import { takeoverLabUnsupportedReason } from '../../scripts/lab/takeover-support.ts';

const SERVER = 'test/fixtures/takeover-line-server.ts';
const CLIENT = 'test/fixtures/takeover-line-client.ts';
const STANDBY = 'test/fixtures/takeover-standby.ts';
const TRIALS = 10;
/** Both sides send a numbered line this often. */
const INTERVAL_MS = 5;
/** Traffic before the kill and after the takeover. */
const DWELL_BEFORE_MS = 250;
const DWELL_AFTER_MS = 250;
/** Mid-stream trials start the capture this long after the connection. */
const MID_STREAM_DELAY_MS = 100;
/** Every few trials, a line this long is committed right before the kill, with the client's ACKs blocked. */
const BURST_BYTES = 200_000;
const BURST_EVERY = 3;
/** Time the primary gets to send its first flight of the burst before the kill. */
const BURST_SEND_MS = 5;
/** nft table in the client host that drops the client's segments to the service (its ACKs get "lost"). */
const CLIENT_BLOCK_TABLE = 'takeover_test_block';
/** The replication side channel's port on the standby's own address (not the service port). */
const REPLICATION_PORT = 7100;

const skipReason = await takeoverLabUnsupportedReason();

interface ClientReport {
  sent: number;
  received: number;
  errors: string[];
  doneBeforeEof: boolean;
  firstEvent: string;
  gaps: Array<{ atMs: number; gapMs: number }>;
  partial: string;
}

interface TrialResult {
  trial: number;
  capture: 'syn' | 'mid-stream';
  burst: boolean;
  /** Longest gap between server lines at the client that spans the kill, ms (0: none over 2.5 intervals). */
  gapMs: number;
  /** From SIGKILL until the standby answered the takeover command (fencing and VIP moves included), ms. */
  killToRebuiltMs: number;
  silenceMs: number;
  dropVipMs: number;
  raiseVipMs: number;
  /** In the standby: drain + planRepair, repairConnection alone, and the whole command. */
  planMs: number;
  rebuildMs: number;
  standbyTotalMs: number;
  /** The replication channel's end seen by the standby after the kill (detection stand-in), ms. */
  detectionMs: number | null;
  pendingInputBytes: number;
  sendQueueBytes: number;
  writeAfterRepairBytes: number;
  clientLines: number;
  serverLines: number;
}

function summary(values: number[], digits = 1): string {
  const s = [...values].sort((a, b) => a - b);
  const median = s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return `min ${s[0].toFixed(digits)} / median ${median.toFixed(digits)} / max ${s[s.length - 1].toFixed(digits)}`;
}

describe('standby transport takeover: capture, plan and TCP_REPAIR rebuild in the lab', { skip: skipReason ?? false }, () => {
  it(`takes over ${TRIALS} connections from SIGKILLed primaries with no loss, duplicate, reorder or EOF`, { timeout: 240_000 }, async (t: TestContext) => {
    await LabTopology.cleanupStale();
    const lab = new LabTopology();
    const processes: LabProcess[] = [];
    const start = (host: LabHost, entry: string, args: Array<string | number>): LabProcess => {
      const p = LabProcess.startNode(lab, host, entry, args.map(String));
      processes.push(p);
      return p;
    };
    const results: TrialResult[] = [];
    try {
      await lab.up();
      // The stand-ins run no MCU: the MCU's own host setup (VIP interface, firewall), installed from here.
      for (const host of ['primary', 'standby'] as const) await lab.installMcuHostSetup(host);
      const { vip, standby: standbyAddress } = lab.addresses;
      const port = lab.servicePort;
      const standby = start('standby', STANDBY, [vip, port, standbyAddress, REPLICATION_PORT, 'eth0', INTERVAL_MS, lab.closeMark]);
      await standby.waitForEvent('listening', { timeoutMs: 20_000 });

      for (let trial = 0; trial < TRIALS; trial++) {
        const midStream = trial % 2 === 1;
        const burst = trial % BURST_EVERY === BURST_EVERY - 1;
        // The VIP back on the primary host; the last trial's orphans there are gone before the port speaks again.
        if (trial > 0) {
          await lab.dropVip('standby');
          await lab.exec('primary', ['ss', '-K', 'state', 'all', 'sport', '=', `:${port}`], { check: false });
          await lab.unsilenceServicePort('primary');
        }
        await lab.raiseVip('primary');

        const fromStandby = standby.mark();
        const server = start('primary', SERVER, [vip, port, standbyAddress, REPLICATION_PORT, INTERVAL_MS]);
        await server.waitForEvent('listening', { timeoutMs: 20_000 });
        await standby.waitForEvent('replication-connected', { from: fromStandby, timeoutMs: 5000 });
        if (!midStream) await standby.request({ op: 'capture' });

        const client = start('client', CLIENT, [vip, port, INTERVAL_MS]);
        await client.waitForEvent('connect', { timeoutMs: 20_000 });
        await server.waitForEvent('accepted', { timeoutMs: 5000 });
        await standby.waitForEvent('record', { from: fromStandby, timeoutMs: 5000 });
        if (midStream) {
          await sleep(MID_STREAM_DELAY_MS);
          await standby.request({ op: 'capture' });
        }
        await sleep(DWELL_BEFORE_MS);
        if (burst) {
          await lab.exec('client', ['nft', '-f', '-'], {
            input: [
              `table inet ${CLIENT_BLOCK_TABLE} {`,
              '  chain out {',
              '    type filter hook output priority filter; policy accept;',
              `    ip daddr ${vip} tcp dport ${port} drop`,
              '  }',
              '}',
            ].join('\n') + '\n',
          });
          await server.request({ op: 'burst', bytes: BURST_BYTES });
          await sleep(BURST_SEND_MS);
        }

        // --- The crash and the takeover.
        const fromKill = standby.mark();
        const killAt = Date.now();
        const k0 = performance.now();
        lab.killPrimaryProcess(server.pid);
        const silence = await lab.silenceServicePort('primary');
        const drop = await lab.dropVip('primary');
        // Raised before the rebuild: with the VIP down the lab's policy routing blackholes the VIP, and connect() in repair mode fails.
        const raise = await lab.raiseVip('standby');
        const take = await standby.request({ op: 'takeover' }, 10_000);
        const k1 = performance.now();
        if (burst) await lab.exec('client', ['nft', 'delete', 'table', 'inet', CLIENT_BLOCK_TABLE]);
        assert.equal(take.ok, true, `trial ${trial}: takeover refused: ${String(take.code)}: ${String(take.reason ?? take.error)}`);

        await sleep(DWELL_AFTER_MS);
        const finished = await standby.request({ op: 'finish' }, 30_000);
        const report = (await client.waitFor((e: LabEvent) => e.event === 'report', { timeoutMs: 15_000 })) as unknown as ClientReport & LabEvent;
        const closedEvent = standby.select((e) => e.event === 'replication-closed', fromKill)[0];
        const reset = await standby.request({ op: 'reset' });
        await client.close();
        await server.close();

        const standbySide = (finished.results as Array<{ clientDone?: number; linesConsumed: number; serverLines: number; errors: string[] }>)[0];
        const label = `trial ${trial} (${midStream ? 'mid-stream' : 'syn'}${burst ? ', burst' : ''})`;
        assert.deepEqual(report.errors, [], `${label}: the client saw every server line once, in order`);
        assert.equal(report.doneBeforeEof, true, `${label}: no EOF/RST at the client before the deliberate close (first event: ${report.firstEvent})`);
        assert.equal(report.firstEvent, 'end', `${label}: the deliberate close arrived as a FIN`);
        assert.ok(standbySide, `${label}: the standby finished the connection`);
        assert.deepEqual(standbySide.errors, [], `${label}: the standby saw every client line once, in order`);
        assert.equal(report.received, standbySide.serverLines, `${label}: every server line reached the client`);
        assert.equal(standbySide.clientDone, report.sent - 1, `${label}: the client's last line number reached the standby`);
        assert.equal(standbySide.linesConsumed, report.sent, `${label}: every client line reached a server exactly once`);
        const captureStats = take.captureStats as { drops: number };
        assert.equal(captureStats.drops, 0, `${label}: the capture dropped nothing`);
        assert.equal(take.origin, midStream ? 'mid-stream' : 'syn', `${label}: the tracker saw the connection from where the capture started`);
        const trackerStats = take.trackerStats as { holesDetected: number; unsafeMarks: number };
        assert.equal(trackerStats.holesDetected, 0, `${label}: no capture hole`);
        assert.equal(trackerStats.unsafeMarks, 0, `${label}: nothing unsafe`);
        if (burst) assert.ok((take.details as { sendQueueBytes: number }).sendQueueBytes > 0, `${label}: output the client never acknowledged went in the send queue`);

        // The takeover's gap: the longest one ending within a second after the kill (lines already
        // in flight may land just after the kill, so its start can be a little later than the kill).
        const spanning = report.gaps.filter((g) => g.atMs >= killAt && g.atMs <= killAt + 1000 && g.atMs - g.gapMs <= killAt + 2 * INTERVAL_MS);
        const details = take.details as { sendQueueBytes: number };
        results.push({
          trial,
          capture: midStream ? 'mid-stream' : 'syn',
          burst,
          gapMs: spanning.reduce((m, g) => Math.max(m, g.gapMs), 0),
          killToRebuiltMs: k1 - k0,
          silenceMs: silence.ms,
          dropVipMs: drop.ms,
          raiseVipMs: raise.ms,
          planMs: take.planMs as number,
          rebuildMs: take.rebuildMs as number,
          standbyTotalMs: take.totalMs as number,
          detectionMs: closedEvent ? (closedEvent.t as number) - killAt : null,
          pendingInputBytes: take.pendingInputBytes as number,
          sendQueueBytes: details.sendQueueBytes,
          writeAfterRepairBytes: take.writeAfterRepairBytes as number,
          clientLines: report.sent,
          serverLines: report.received,
        });
        t.diagnostic(
          `${label}: gap ${results[results.length - 1].gapMs.toFixed(1)} ms, kill->rebuilt ${(k1 - k0).toFixed(1)} ms ` +
            `(silence ${silence.ms.toFixed(1)}, dropVip ${drop.ms.toFixed(1)}, raiseVip ${raise.ms.toFixed(1)}, plan ${(take.planMs as number).toFixed(2)}, ` +
            `repairConnection ${(take.rebuildMs as number).toFixed(2)} ms); pending input ${String(take.pendingInputBytes)} B, ` +
            `send queue ${details.sendQueueBytes} B, written after repair ${String(take.writeAfterRepairBytes)} B; ` +
            `lines ${report.sent} up / ${report.received} down; tracker ${JSON.stringify((reset.trackerStats as object | undefined) ?? {})}`,
        );
      }

      const gaps = results.filter((r) => !r.burst).map((r) => r.gapMs);
      t.diagnostic(`client-side gap per takeover, plain trials (ms): ${summary(gaps)}; each: ${gaps.map((g) => g.toFixed(1)).join(' ')}`);
      const burstGaps = results.filter((r) => r.burst).map((r) => r.gapMs);
      if (burstGaps.length > 0) t.diagnostic(`client-side gap, trials with blocked client ACKs + burst (ms): ${burstGaps.map((g) => g.toFixed(1)).join(' ')}`);
      t.diagnostic(`repairConnection (ms): ${summary(results.map((r) => r.rebuildMs), 3)}; drain+plan (ms): ${summary(results.map((r) => r.planMs), 3)}`);
      t.diagnostic(`standby takeover command (ms): ${summary(results.map((r) => r.standbyTotalMs), 3)}; kill -> rebuilt, from the test (ms): ${summary(results.map((r) => r.killToRebuiltMs))}`);
      t.diagnostic(
        `fencing (ms): silence ${summary(results.map((r) => r.silenceMs))}; dropVip ${summary(results.map((r) => r.dropVipMs))}; raiseVip ${summary(results.map((r) => r.raiseVipMs))}`,
      );
      const detections = results.map((r) => r.detectionMs).filter((d): d is number => d !== null);
      if (detections.length > 0) t.diagnostic(`replication channel end seen by the standby after the kill (ms): ${summary(detections)}`);
      console.log(JSON.stringify({ takeoverRebuild: results }));
      assert.equal(results.length, TRIALS);
    } finally {
      await Promise.all(processes.map((p) => p.close()));
      await lab.close();
    }
  });
});
