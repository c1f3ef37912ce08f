/**
 * The real detection path: a primary process beating from its HeartbeatBeacon thread, and in
 * this process a HeartbeatMonitor thread (the FailureDetector's I/O) wired to a
 * ReplicationClient as the standby wires them: the end of the stream is a suspicion the
 * monitor checks at once. The verdict's reason tells how the death was seen.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HeartbeatMonitor, type HeartbeatVerdict } from '../../mcu/src/detection/heartbeat-monitor.ts';
import { ReplicationClient } from '../../mcu/src/replication/replication-client.ts';
import { FixtureProcess } from '../../scripts/common/child-process.ts';
import { waitFor } from '../../scripts/common/wait-for.ts';
import { cleanupsAfterEach } from '../helpers/cleanups.ts';

const SECRET = 'detection-test-secret-9b2e71';
/** Default settings: 10 ms beats, 3 missed, a 90 ms confirm window. */
const TIMEOUT_MS = 30;
const CONFIRM_MS = 90;

const cleanups = cleanupsAfterEach();

/** A primary with a beacon, and a client and monitor following it, both hearing it. */
async function watchedPrimary(): Promise<{ primary: FixtureProcess; client: ReplicationClient; monitor: HeartbeatMonitor; verdicts: HeartbeatVerdict[] }> {
  const primary = new FixtureProcess('scripts/fixtures/replication-primary.ts', { REPL_SECRET: SECRET, REPL_BEACON: '1', LOG_LEVEL: 'warn' });
  cleanups.push(() => primary.kill());
  const port = Number((await primary.next('listening', 20_000)).port);
  const client = new ReplicationClient({ port, secret: SECRET, standbyId: 'detection-test' });
  cleanups.push(() => client.close('test over'));
  const monitor = new HeartbeatMonitor({ host: '127.0.0.1', port, secret: SECRET, minEpoch: 1 });
  cleanups.push(() => monitor.close());
  const verdicts: HeartbeatVerdict[] = [];
  monitor.on('dead', (v) => verdicts.push(v));
  client.on('lost', (info) => monitor.channelClosed(info.deliberate));
  const synced = waitFor(client, 'synced', { timeoutMs: 10_000 });
  const firstBeat = waitFor(monitor, 'first-beat', { timeoutMs: 10_000 });
  client.start();
  monitor.start();
  await Promise.all([synced, firstBeat]);
  return { primary, client, monitor, verdicts };
}

describe('detection of a dead primary (heartbeat beacon and monitor threads, real processes)', () => {
  it('kill -9: port unreachable, long before the heartbeat timeout', async () => {
    const { primary, monitor, verdicts } = await watchedPrimary();
    const dead = waitFor(monitor, 'dead', { timeoutMs: 2000 });
    const killedAt = Date.now();
    process.kill(primary.pid, 'SIGKILL');
    const [verdict] = await dead;
    console.log(`kill -9 detected in ${verdict.detectedAt - killedAt} ms (${verdict.reason})`);
    assert.equal(verdict.reason, 'port-unreachable');
    assert.ok(verdict.lastHeartbeatAt !== null && verdict.lastHeartbeatAt <= verdict.detectedAt);
    assert.deepEqual(monitor.verdict, verdict);
    assert.equal(verdicts.length, 1);
  });

  it('a frozen primary (SIGSTOP): suspected after the missed beats, dead by heartbeat timeout after the confirm window, not before', async () => {
    const { primary, monitor } = await watchedPrimary();
    const suspected = waitFor(monitor, 'suspected', { timeoutMs: 2000 });
    const dead = waitFor(monitor, 'dead', { timeoutMs: 2000 });
    const stoppedAt = Date.now();
    process.kill(primary.pid, 'SIGSTOP');
    cleanups.push(() => process.kill(primary.pid, 'SIGCONT'));
    const [cause] = await suspected;
    assert.equal(cause, 'missed-beats');
    const [verdict] = await dead;
    const silenceMs = verdict.detectedAt - (verdict.lastHeartbeatAt ?? 0);
    console.log(`SIGSTOP detected in ${verdict.detectedAt - stoppedAt} ms (${verdict.reason}, ${silenceMs} ms after the last beat)`);
    // Its host still answers (a RST from 127.0.0.1): no host-unreachable shortcut.
    assert.equal(verdict.reason, 'heartbeat-timeout');
    assert.ok(silenceMs > TIMEOUT_MS + CONFIRM_MS, `${silenceMs} ms of silence`);
  });

  it('a deliberate stop (SIGTERM, a goodbye on the stream) is never a verdict, though its port then refuses', async () => {
    const { primary, client, monitor, verdicts } = await watchedPrimary();
    const lost = waitFor(client, 'lost');
    primary.child.kill('SIGTERM');
    const [info] = await lost;
    assert.equal(info.deliberate, true);
    assert.equal((await primary.exited).code, 0);
    // Five times the silence a verdict needs.
    await new Promise((r) => setTimeout(r, 5 * (TIMEOUT_MS + CONFIRM_MS)));
    assert.deepEqual(verdicts, []);
    assert.equal(monitor.verdict, null);
  });
});
