/**
 * What a real MCU exposes, and to whom (README, *Exposure*): /status and /metrics on the
 * loopback admin listener, on the public one only with the admin token; joins beyond the
 * per-address limit refused with RATE_LIMITED while resumes and the other participants carry on;
 * the replication secret from an owner-only file, a file others may read refused at start.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { CONFIG_EXIT_CODE } from '../../mcu/src/core/config.ts';
import { Supervisor } from '../../standby/src/supervisor/supervisor.ts';
import { adminAuthHeaders } from '../../scripts/common/admin.ts';
import { eventually } from '../../scripts/common/browser.ts';
import { freePort } from '../../scripts/common/ports.ts';
import { startMcu, startNode } from '../../scripts/common/processes.ts';
import { TestSignalingClient } from '../helpers/signaling-client.ts';

const dir = mkdtempSync(join(tmpdir(), 'mcu-exposure-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function get(url: string, token?: string): Promise<{ status: number; text: string; headers: Headers }> {
  const res = await fetch(url, { headers: adminAuthHeaders(token ?? null) });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

async function mcu(env: Record<string, string> = {}): Promise<Awaited<ReturnType<typeof startMcu>>> {
  const m = await startMcu(env);
  cleanups.push(() => m.stop());
  return m;
}

async function client(url: string): Promise<TestSignalingClient> {
  const c = new TestSignalingClient(url);
  cleanups.push(() => c.close());
  await c.connected();
  return c;
}

/** Runs an entry point that must refuse its configuration; returns its stderr lines. */
async function refused(entry: string, env: Record<string, string>): Promise<string[]> {
  const proc = startNode(entry, { LOG_LEVEL: 'debug', ...env });
  cleanups.push(() => proc.kill());
  const { code } = await proc.exited;
  assert.equal(code, CONFIG_EXIT_CODE, `${entry} exits with ${CONFIG_EXIT_CODE}; stderr:\n${proc.stderr.join('\n')}`);
  assert.deepEqual(proc.events, [], `${entry} printed nothing on stdout (it never listened)`);
  return proc.stderr;
}

function secretFile(name: string, content: string, mode: number): string {
  const file = join(dir, name);
  writeFileSync(file, content);
  chmodSync(file, mode);
  return file;
}

describe('exposure (real processes)', () => {
  it('without a token: /status and /metrics on the loopback admin listener only; the public listener serves the page and refuses them', async () => {
    const m = await mcu();
    for (const path of ['/status', '/metrics']) {
      const pub = await get(`${m.url}${path}`);
      assert.equal(pub.status, 404, `public ${path}`);
      assert.match(pub.text, /served on the admin listener/);
    }
    assert.equal((await get(`${m.url}/`)).status, 200, 'the page stays public');
    assert.notEqual(m.adminUrl, m.url);
    const status = await get(`${m.adminUrl}/status`);
    assert.equal(status.status, 200);
    const doc = JSON.parse(status.text) as { role: string; config: { admin: { host: string; token: string | null } } };
    assert.equal(doc.role, 'primary');
    assert.deepEqual(doc.config.admin.host, '127.0.0.1', 'loopback by default');
    assert.equal(doc.config.admin.token, null);
    const metrics = await get(`${m.adminUrl}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get('content-type') ?? '', /^text\/plain/);
    assert.match(metrics.text, /^mcu_rooms 0$/m);
    assert.equal((await get(`${m.adminUrl}/`)).status, 404, 'the admin listener serves nothing else');
  });

  it('with admin.token: both listeners ask for it (401 without or with a wrong one); the public one serves them with it', async () => {
    const token = `admin-token-${process.pid}-0123456789`;
    const m = await mcu({ MCU_ADMIN_TOKEN: token });
    for (const base of [m.url, m.adminUrl]) {
      for (const path of ['/status', '/metrics']) {
        const none = await get(`${base}${path}`);
        assert.equal(none.status, 401, `${base}${path} without a token`);
        assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
        assert.match(none.text, /Authorization: Bearer <admin.token>/);
        assert.equal((await get(`${base}${path}`, `${token}x`)).status, 401, `${base}${path} with a wrong token`);
        const ok = await get(`${base}${path}`, token);
        assert.equal(ok.status, 200, `${base}${path} with the token`);
        assert.ok(!ok.text.includes(token), 'the token is never shown');
      }
    }
    const doc = JSON.parse((await get(`${m.url}/status`, token)).text) as { config: { admin: { token: string } } };
    assert.equal(doc.config.admin.token, '***');
  });

  it('an admin listener on an address other than loopback without a token stops the MCU before it binds anything', async () => {
    assert.deepEqual(await refused('mcu/src/main.ts', { PORT: '0', MCU_ADMIN_HOST: '0.0.0.0' }), [
      'config: admin.host: 0.0.0.0 is not a loopback address: set admin.token (MCU_ADMIN_TOKEN) too, or /status and /metrics are open to whoever reaches it (MCU_ADMIN_HOST)',
    ]);
  });

  it('joins beyond the per-address limit get RATE_LIMITED, counted in /metrics; a resume passes and the others carry on', async () => {
    const m = await mcu({ MCU_JOINS_PER_WINDOW: '3', MCU_JOIN_WINDOW_MS: '60000' });
    const [ada, bob, cy] = [await client(m.url), await client(m.url), await client(m.url)];
    const joined = [];
    for (const [c, name] of [[ada, 'Ada'], [bob, 'Bob'], [cy, 'Cy']] as const) {
      const reply = await c.request('join', { room: 'limited', name });
      assert.equal(reply.ok, true, JSON.stringify(reply));
      joined.push(reply);
    }
    const dan = await client(m.url);
    const refusedJoin = await dan.request('join', { room: 'limited', name: 'Dan' });
    assert.equal(refusedJoin.ok, false);
    assert.equal(refusedJoin.error?.code, 'RATE_LIMITED');
    assert.match(refusedJoin.error?.message ?? '', /^too many joins from your address: at most 3 per 60000 ms \(MCU_JOINS_PER_WINDOW, MCU_JOIN_WINDOW_MS\); try again in \d+ ms$/);
    assert.equal((await dan.request('join', { room: 'elsewhere', name: 'Dan' })).error?.code, 'RATE_LIMITED', 'per address, whatever the room');

    // Leaving and joining again is a fresh join: still refused.
    assert.equal((await cy.request('leave')).ok, true);
    assert.equal((await cy.request('join', { room: 'limited', name: 'Cy' })).error?.code, 'RATE_LIMITED');

    // Bob's connection drops; a new connection resumes him: a resume is never refused.
    (bob.socket.io.engine as unknown as { close(): void }).close();
    await ada.nextRoster((r) => r.participants.some((p) => p.name === 'Bob' && !p.connected));
    const bob2 = await client(m.url);
    const bobJoined = joined[1]!;
    const resumed = await bob2.request('join', { room: 'limited', name: 'Bob', resume: { participantId: bobJoined.participantId, resumeToken: bobJoined.resumeToken } });
    assert.equal(resumed.ok, true, JSON.stringify(resumed));
    assert.equal(resumed.resumed, true);

    assert.equal((await ada.request('mute', { kind: 'audio', muted: true })).ok, true, 'the joined participants carry on');
    const roster = await ada.nextRoster((r) => r.participants.length === 2 && r.participants.every((p) => p.connected));
    assert.deepEqual(roster.participants.map((p) => p.name), ['Ada', 'Bob']);
    const metrics = await eventually(
      () => get(`${m.adminUrl}/metrics`),
      (r) => /^mcu_signaling_errors_total\{code="RATE_LIMITED"\} 3$/m.test(r.text),
      5000,
    );
    assert.match(metrics.text, /^mcu_signaling_errors_total\{code="RATE_LIMITED"\} 3$/m);
    assert.match(metrics.text, /^mcu_participants 2$/m);
  });

  it('a replication secret file others may read stops the MCU (exit 78) with one line naming it and the fix', async () => {
    const file = secretFile('world-readable', 'a-replication-secret-0123456789\n', 0o644);
    assert.deepEqual(await refused('mcu/src/main.ts', { PORT: '0', MCU_REPLICATION_SECRET_FILE: file }), [
      `config: replication.secretFile: ${file} is accessible by group or others (mode 0644): make it readable by its owner only (chmod 600 ${file}) (MCU_REPLICATION_SECRET_FILE)`,
    ]);
    assert.deepEqual(await refused('standby/src/main.ts', { PORT: '0', MCU_REPLICATION_SECRET_FILE: join(dir, 'nowhere') }), [
      `config: replication.secretFile: ${join(dir, 'nowhere')} does not exist (MCU_REPLICATION_SECRET_FILE)`,
    ]);
  });

  it('an owner-only secret file: primary and standby each read it and replicate; both admin listeners ask for the token; the standby serves /metrics', async () => {
    const secret = `file-secret-${process.pid}-0123456789`;
    const file = secretFile('owner-only', `${secret}\n`, 0o600);
    const token = `admin-token-${process.pid}-abcdefghij`;
    const supervisor = new Supervisor({ port: await freePort(), replicationPort: await freePort(), adminPort: await freePort(), host: '127.0.0.1', secretFile: file, env: { MCU_ADMIN_TOKEN: token } });
    cleanups.push(() => supervisor.close());
    await supervisor.start();
    const status = await eventually(
      async () => JSON.parse((await get(`${supervisor.adminUrl}/status`, token)).text) as { protected: boolean; config: { replication: { secret: string; secretFile: string } } },
      (s) => s.protected,
      10000,
    );
    assert.equal(status.protected, true, 'the standby synced with the secret from the file');
    assert.deepEqual(status.config.replication, { ...status.config.replication, secret: '***', secretFile: file });
    const standbyAdmin = `http://127.0.0.1:${supervisor.standby!.statusPort}`;
    assert.equal((await get(`${standbyAdmin}/status`)).status, 401, "the standby's admin listener asks for the token too");
    const standbyStatus = await get(`${standbyAdmin}/status`, token);
    assert.ok(!standbyStatus.text.includes(secret), 'the secret is not in /status');
    const standbyMetrics = await get(`${standbyAdmin}/metrics`, token);
    assert.equal(standbyMetrics.status, 200);
    assert.match(standbyMetrics.text, /^mcu_standby_ready 1$/m);
    assert.match(standbyMetrics.text, /^mcu_epoch 1$/m);
    assert.match(standbyMetrics.text, /^# TYPE mcu_standby_heartbeat_age_ms gauge$/m);
  });
});
