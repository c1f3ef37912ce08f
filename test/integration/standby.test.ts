/**
 * Primary, standby and supervisor as real processes on real sockets: deliberate
 * shutdowns never fail over, a dead standby leaves the primary running but
 * unprotected until a new one syncs, forged heartbeats are ignored, and a killed
 * primary's participants resume on the promoted standby with the same ids.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { describe, it } from 'node:test';
import { encodeHeartbeat } from '../../mcu/src/wire/heartbeat-wire.ts';
import { Supervisor } from '../../standby/src/supervisor/supervisor.ts';
import { eventually } from '../../scripts/common/browser.ts';
import { freePort } from '../../scripts/common/ports.ts';
import { TestSignalingClient } from '../helpers/signaling-client.ts';
import { cleanupsAfterEach } from '../helpers/cleanups.ts';

interface Status {
  role: string;
  pid: number;
  epoch: number;
  protected: boolean;
  participants: number;
  lastFailover: { reason: string; detectedAt: number } | null;
}

const cleanups = cleanupsAfterEach();

async function startPair(env: Record<string, string> = {}): Promise<{ supervisor: Supervisor; url: string; adminUrl: string; replicationPort: number }> {
  const port = await freePort();
  const replicationPort = await freePort();
  const supervisor = new Supervisor({ port, replicationPort, adminPort: await freePort(), host: '127.0.0.1', env });
  cleanups.push(() => supervisor.close());
  await supervisor.start();
  return { supervisor, url: `http://127.0.0.1:${port}`, adminUrl: supervisor.adminUrl, replicationPort };
}

async function status(url: string): Promise<Status> {
  return (await (await fetch(`${url}/status`)).json()) as Status;
}

async function joined(url: string, room: string, name: string): Promise<{ client: TestSignalingClient; id: string; token: string }> {
  const client = new TestSignalingClient(url, { reconnection: true });
  cleanups.push(() => client.close());
  await client.connected();
  const reply = await client.request('join', { room, name });
  assert.equal(reply.ok, true, JSON.stringify(reply));
  return { client, id: String(reply.participantId), token: String(reply.resumeToken) };
}

describe('hot standby (real processes)', () => {
  it('protects the primary once the standby has synced and hears heartbeats', async () => {
    const { adminUrl } = await startPair();
    const s = await eventually(() => status(adminUrl), (st) => st.protected, 10000);
    assert.equal(s.role, 'primary');
    assert.equal(s.epoch, 1);
    assert.equal(s.protected, true);
    const metrics = await (await fetch(`${adminUrl}/metrics`)).text();
    assert.match(metrics, /^mcu_protected 1$/m);
    assert.match(metrics, /^mcu_epoch 1$/m);
  });

  it('a deliberate shutdown of the primary never triggers a failover', async () => {
    const { supervisor } = await startPair();
    const standby = supervisor.standby!;
    let promoted = false;
    supervisor.once('promoted', () => (promoted = true));
    await supervisor.primary!.process.kill('SIGTERM');
    // Give a would-be failover ample time (detection is tens of milliseconds).
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(promoted, false, 'the standby must not take over after a deliberate stop');
    const st = (await (await fetch(`http://127.0.0.1:${standby.statusPort}/status`)).json()) as { standbyState: string; role: string };
    assert.equal(st.role, 'standby');
    assert.notEqual(st.standbyState, 'promoting');
    assert.notEqual(st.standbyState, 'active');
  });

  it('standby death leaves the primary serving, unprotected until a new standby syncs', async () => {
    const { supervisor, url, adminUrl } = await startPair();
    const { client } = await joined(url, 'room1', 'Ada');
    await eventually(() => status(adminUrl), (st) => st.protected, 10000);
    const oldStandby = supervisor.standby!;
    await oldStandby.process.kill('SIGKILL');
    const unprotected = await eventually(() => status(adminUrl), (st) => !st.protected, 10000);
    assert.equal(unprotected.protected, false);
    assert.equal(unprotected.participants, 1, 'the call goes on');
    assert.equal(client.disconnects, 0);
    // The supervisor starts a new standby; it syncs from the running primary (state transfer mid-call).
    const again = await eventually(() => status(adminUrl), (st) => st.protected, 20000);
    assert.equal(again.protected, true);
    assert.notEqual(supervisor.standby!.pid, oldStandby.pid);
    const standbyStatus = (await (await fetch(`http://127.0.0.1:${supervisor.standby!.statusPort}/status`)).json()) as {
      checkpoint: { participants: number; rooms: number };
    };
    assert.deepEqual(standbyStatus.checkpoint, { rooms: 1, participants: 1 });
  });

  it('forged heartbeat datagrams are ignored and change nothing', async () => {
    const { supervisor, adminUrl, replicationPort } = await startPair();
    await eventually(() => status(adminUrl), (st) => st.protected, 10000);
    const socket = dgram.createSocket('udp4');
    cleanups.push(() => socket.close());
    const forged = [
      encodeHeartbeat({ kind: 'subscribe', epoch: 1, seq: 1, sentAt: Date.now() }, 'not-the-secret-at-all'),
      Buffer.from('garbage'),
      Buffer.alloc(37, 0xff),
    ];
    for (const datagram of forged) socket.send(datagram, replicationPort, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 300));
    const st = await status(adminUrl);
    assert.equal(st.role, 'primary');
    assert.equal(st.protected, true);
    assert.equal(supervisor.failovers, 0);
  });

  it('kill -9: the standby takes over with a higher epoch, and clients resume as the same participants', async () => {
    const { supervisor, url, adminUrl } = await startPair();
    const ada = await joined(url, 'room2', 'Ada');
    const bob = await joined(url, 'room2', 'Bob');
    await eventually(() => status(adminUrl), (st) => st.protected, 10000);
    const standbyPid = supervisor.standby!.pid;
    const promoted = new Promise<void>((resolve) => supervisor.once('promoted', () => resolve()));
    await supervisor.primary!.process.kill('SIGKILL');
    await promoted;
    for (const p of [ada, bob]) {
      await p.client.connected();
      const resumed = await eventually(
        () => p.client.request('join', { room: 'room2', name: 'x', resume: { participantId: p.id, resumeToken: p.token } }).catch(() => ({ ok: false }) as { ok: boolean; [k: string]: unknown }),
        (r) => r.ok === true,
        10000,
      );
      assert.equal(resumed.ok, true, JSON.stringify(resumed));
      assert.equal(resumed.participantId, p.id);
      assert.equal(resumed.resumed, true);
      assert.equal(resumed.epoch, 2);
    }
    const st = await status(adminUrl);
    assert.equal(st.pid, standbyPid);
    assert.equal(st.epoch, 2);
    assert.equal(st.participants, 2);
    assert.ok(st.lastFailover, 'the new primary records how it took over');
    const roster = await ada.client.nextRoster((r) => r.participants.length === 2 && r.participants.every((p) => p.connected), 10000);
    assert.deepEqual(roster.participants.map((p) => p.name).sort(), ['Ada', 'Bob']);
  });

  it('a frozen primary (SIGSTOP, SIGCONT) stays the only primary; the standby that could not take over is replaced', async () => {
    const { supervisor, url, adminUrl } = await startPair({ MCU_BIND_RETRY_MS: '1000' });
    const ada = await joined(url, 'frozen', 'Ada');
    await eventually(() => status(adminUrl), (st) => st.protected, 10000);
    const primaryPid = supervisor.primary!.pid;
    const firstStandby = supervisor.standby!.pid;
    process.kill(primaryPid, 'SIGSTOP');
    await new Promise((r) => setTimeout(r, 300));
    process.kill(primaryPid, 'SIGCONT');
    // The standby judged the primary dead (3 missed beats) but cannot bind the port the live
    // primary holds: it gives up, exits, and the supervisor starts a fresh standby.
    const st = await eventually(
      () => status(adminUrl),
      (s) => s.protected && supervisor.standby !== null && supervisor.standby.pid !== firstStandby,
      20000,
    );
    assert.equal(st.pid, primaryPid, 'the original primary still serves');
    assert.equal(st.epoch, 1);
    assert.equal(st.participants, 1);
    assert.equal(supervisor.failovers, 0);
    assert.equal(ada.client.disconnects, 0);
    const mute = await ada.client.request('mute', { kind: 'audio', muted: true });
    assert.equal(mute.ok, true, 'signaling works after the thaw');
  });
});
