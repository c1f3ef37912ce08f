/**
 * Connection-level takeover of the real MCU in the namespace lab (scripts/lab): the primary
 * (mcu/src/main.ts) and the standby (standby/src/main.ts) run in their hosts with
 * MCU_TAKEOVER=1; a stock socket.io-client in the client host joins a room and sends a
 * numbered `mute` request with an ack every 10 ms. The primary is SIGKILLed (the lab's
 * FIN/RST rule keeps its kernel quiet, the port is silenced for the orphans' retransmissions
 * and its VIP dropped: the fencing a harness does); the standby detects the death, raises the
 * VIP itself, rebuilds the TCP connection (capture + TCP_REPAIR), replays the output log and
 * re-attaches the socket.io session. The client must see no `disconnect`, the same local TCP
 * port, socket id and engine id, and every ack exactly once and in order.
 *
 * Needs root, iproute2, nftables and the native addon; skipped otherwise.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { nativeAddonAvailable } from '../../native/src/index.ts';
import { LabProcess, type LabEvent } from '../../scripts/lab/lab-process.ts';
import { labMcuEnv } from '../../scripts/lab/start-mcu.ts';
import { labUnsupportedReason, LabTopology } from '../../scripts/lab/topology.ts';

const CLIENT = 'test/fixtures/takeover-mcu-client.ts';
const TRIALS = Number(process.env.TAKEOVER_TRIALS ?? 3);
const INTERVAL_MS = 10;
const DWELL_BEFORE_MS = 600;
const DWELL_AFTER_MS = 1000;
const ROOM = 'takeover-room';

const skipReason =
  (await labUnsupportedReason()) ?? (nativeAddonAvailable() ? null : 'native addon not built (bash scripts/build-native.sh): capture and TCP_REPAIR need it');

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface ClientReport {
  socketId: string | null;
  engineId: string | null;
  localPort: number | null;
  sent: number;
  acked: number;
  missing: number[];
  duplicates: number;
  outOfOrder: number;
  failedAcks: Array<{ n: number; error: unknown }>;
  maxGapMs: number;
  connects: number;
  disconnects: number;
  disconnectReasons: string[];
  rosters: number;
  signalingErrors: unknown[];
}

describe('connection-level takeover of the MCU in the lab (MCU_TAKEOVER=1)', { skip: skipReason ?? false }, () => {
  it(`masks ${TRIALS} SIGKILLed primaries: same connection, no disconnect, every ack once and in order`, { timeout: 60_000 + TRIALS * 60_000 }, async (t: TestContext) => {
    await LabTopology.cleanupStale();
    const outcomes: string[] = [];
    for (let trial = 0; trial < TRIALS; trial++) {
      const lab = new LabTopology();
      const processes: LabProcess[] = [];
      const start = (host: 'client' | 'primary' | 'standby', entry: string, args: string[], env: Record<string, string> = {}): LabProcess => {
        const p = LabProcess.startNode(lab, host, entry, args, env);
        processes.push(p);
        return p;
      };
      let failed = true;
      try {
        await lab.up();
        await lab.raiseVip('primary');
        const { vip } = lab.addresses;
        const port = lab.servicePort;
        const secret = `takeover-test-secret-${trial}-${process.pid}`;
        const common = { LOG_LEVEL: 'info', MCU_MISSED_HEARTBEATS: '3' };
        const primary = start('primary', 'mcu/src/main.ts', [], { ...labMcuEnv(lab, 'primary', secret, { takeover: true }), ...common });
        await primary.waitForEvent('listening', { timeoutMs: 30_000 });
        const standby = start('standby', 'standby/src/main.ts', [], { ...labMcuEnv(lab, 'standby', secret, { takeover: true }), ...common });
        await standby.waitForEvent('standby-ready', { timeoutMs: 30_000 });

        const client = start('client', CLIENT, [`http://${vip}:${port}`, ROOM, String(INTERVAL_MS)]);
        const connected = await client.waitForEvent('connect', { timeoutMs: 20_000 });
        const status = await client.request({ op: 'status' }, 10_000);
        assert.equal((status.status as { mode?: string } | undefined)?.mode, 'takeover', `primary /status: ${JSON.stringify(status)}`);
        const started = await client.request({ op: 'start' }, 10_000);
        assert.equal(started.ok, true, `join failed: ${JSON.stringify(started)}`);
        await sleep(DWELL_BEFORE_MS);

        // --- The crash, and the fencing the harness does on the dead primary's host.
        const fromKill = standby.mark();
        const k0 = performance.now();
        const killAt = new Date().toISOString();
        lab.killPrimaryProcess(primary.pid);
        await lab.silenceServicePort('primary');
        await lab.dropVip('primary');
        const promoted = await standby.waitFor((e: LabEvent) => e.event === 'promoted' || e.event === 'standby-failed', { from: fromKill, timeoutMs: 20_000 });
        const promotedMs = performance.now() - k0;
        assert.equal(promoted.event, 'promoted', `standby did not promote: ${standby.stderr.slice(-20).join('\n')}`);
        const takeover = (promoted.timeline as { takeover?: Record<string, unknown> } | undefined)?.takeover;
        await sleep(DWELL_AFTER_MS);

        const report = (await client.request({ op: 'stop' }, 15_000)) as unknown as ClientReport & LabEvent;
        const line =
          `trial ${trial}: killed at ${killAt}, promoted after ${promotedMs.toFixed(0)} ms; takeover ${JSON.stringify(takeover)}; ` +
          `client sent ${report.sent}, acked ${report.acked}, missing ${report.missing.length}, dup ${report.duplicates}, ` +
          `out of order ${report.outOfOrder}, failed ${report.failedAcks.length}, max ack gap ${report.maxGapMs.toFixed(1)} ms, ` +
          `disconnects ${report.disconnects} (${report.disconnectReasons.join(',')}), rosters ${report.rosters}`;
        outcomes.push(line);
        t.diagnostic(line);

        assert.equal(report.disconnects, 0, `client saw disconnect(s): ${report.disconnectReasons.join(', ')}`);
        assert.equal(report.connects, 1, 'client connected more than once');
        assert.equal(report.localPort, connected.localPort, 'local TCP port changed');
        assert.equal(report.socketId, connected.socketId, 'socket.io id changed');
        assert.equal(report.engineId, connected.engineId, 'engine.io id changed');
        assert.deepEqual(report.missing, [], 'acks never received');
        assert.equal(report.duplicates, 0, 'acks received twice');
        assert.equal(report.outOfOrder, 0, 'acks out of order');
        assert.equal(report.acked, report.sent, 'not every request was acknowledged');
        assert.deepEqual(report.failedAcks, [], 'requests refused');
        assert.equal((takeover as { reattached?: number } | undefined)?.reattached, 1, `takeover report: ${JSON.stringify(takeover)}`);
        failed = false;
      } catch (err) {
        outcomes.push(`trial ${trial}: FAILED ${(err as Error).message.split('\n')[0]}`);
        throw err;
      } finally {
        // Post-mortem: each process's stderr (the MCUs' logs) of a failed trial.
        for (const p of failed ? processes : []) {
          try {
            writeFileSync(join(tmpdir(), `takeover-test-${process.pid}-${trial}-${p.host}.log`), p.stderr.join('\n') + '\n');
          } catch {
            // post-mortem only
          }
        }
        for (const p of processes) await p.close(500).catch(() => undefined);
        await lab.down();
        t.diagnostic(outcomes.join('\n'));
      }
    }
  });
});
