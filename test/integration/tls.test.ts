/**
 * HTTPS and WSS with real processes: an MCU serving a self-signed certificate (the page, and a
 * socket.io client over WSS trusting that certificate); SIGHUP with a new certificate keeps
 * every open connection (same socket id, acks in order, an HTTPS keep-alive connection still on
 * the old certificate) while new connections get the new one; a broken or mismatched pair on
 * SIGHUP keeps the one in use; a bad TLS configuration stops each entry point with exit 78; a
 * promoted standby serves the certificate it last reloaded.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { CONFIG_EXIT_CODE } from '../../mcu/src/core/config.ts';
import type { TlsStatus } from '../../mcu/src/http/tls.ts';
import { Supervisor } from '../../standby/src/supervisor/supervisor.ts';
import { eventually } from '../../scripts/common/browser.ts';
import { freePort } from '../../scripts/common/ports.ts';
import { startMcu, startNode, type ManagedProcess } from '../../scripts/common/processes.ts';
import { cleanupsAfterEach } from '../helpers/cleanups.ts';
import { TestSignalingClient } from '../helpers/signaling-client.ts';
import { makeTestCertificate, type TestCertificate } from '../helpers/tls.ts';

const dir = mkdtempSync(join(tmpdir(), 'mcu-tls-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const cleanups = cleanupsAfterEach();

let a: TestCertificate;
let b: TestCertificate;
before(async () => {
  a = await makeTestCertificate('a');
  b = await makeTestCertificate('b');
});

/** The files an MCU is configured with, in a directory of their own: the test swaps their content, as an operator renewing a certificate does. */
function livePair(name: string, from: TestCertificate): { certFile: string; keyFile: string; env: Record<string, string>; put(c: TestCertificate): void } {
  const liveDir = join(dir, name);
  mkdirSync(liveDir, { recursive: true });
  const certFile = join(liveDir, 'cert.pem');
  const keyFile = join(liveDir, 'key.pem');
  const put = (c: TestCertificate): void => {
    copyFileSync(c.keyFile, keyFile);
    copyFileSync(c.certFile, certFile);
  };
  put(from);
  return { certFile, keyFile, env: { MCU_TLS_CERT: certFile, MCU_TLS_KEY: keyFile }, put };
}

/** The fingerprint a new TLS connection to 127.0.0.1:`port` is shown. */
function peerFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fingerprint);
    });
    socket.once('error', reject);
  });
}

/** A TLS 1.3 session ticket from a new connection to 127.0.0.1:`port` (the first of the server's tickets). */
function sessionTicket(port: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false, minVersion: 'TLSv1.3' });
    socket.once('session', (session: Buffer) => {
      socket.end();
      resolve(session);
    });
    socket.once('error', reject);
  });
}

/** Whether a new connection to 127.0.0.1:`port` offering `session` resumed it (no full handshake). */
function resumes(port: number, session: Buffer): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false, session }, () => {
      const reused = socket.isSessionReused();
      socket.end();
      resolve(reused);
    });
    socket.once('error', reject);
  });
}

/** GET over HTTPS through `agent`: the status, whether the agent reused an open connection, and that connection's certificate. */
function get(url: string, agent: Agent): Promise<{ status: number; reused: boolean; fingerprint: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { agent }, (res) => {
      // Read now: a keep-alive agent takes the socket back at the end of the response.
      const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket, fingerprint, body }));
    });
    req.once('error', reject);
    req.end();
  });
}

async function tlsStatus(adminUrl: string): Promise<{ scheme: string; tls: TlsStatus | null }> {
  return (await (await fetch(`${adminUrl}/status`)).json()) as { scheme: string; tls: TlsStatus | null };
}

/** Waits for a stderr line of `proc` matching `pattern` printed after `from` lines. */
async function stderrLine(proc: ManagedProcess, pattern: RegExp, from: number): Promise<string> {
  const line = await eventually(
    async () => proc.stderr.slice(from).find((l) => pattern.test(l)) ?? null,
    (l) => l !== null,
    10000,
    20,
  );
  assert.ok(line, `a line matching ${pattern} on stderr; tail:\n${proc.stderr.slice(-20).join('\n')}`);
  return line;
}

describe('HTTPS and WSS (real processes)', () => {
  it('serves the page and signaling over TLS; SIGHUP swaps the certificate for new connections and drops nothing; a bad pair keeps the old one', async () => {
    const live = livePair('reload', a);
    const mcu = await startMcu(live.env);
    cleanups.push(() => mcu.stop());
    assert.equal(mcu.url, `https://127.0.0.1:${mcu.port}`);
    assert.equal(mcu.fingerprint256, a.credentials.fingerprint256, 'the listening line names the certificate');
    const shown = await tlsStatus(mcu.adminUrl);
    assert.equal(shown.scheme, 'https');
    assert.equal(shown.tls?.fingerprint256, a.credentials.fingerprint256);
    assert.equal(shown.tls?.certFile, live.certFile);

    // The page, on a keep-alive connection that stays open across the reloads; the client trusts the certificate.
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: [a.credentials.cert.toString(), b.credentials.cert.toString()] });
    cleanups.push(() => agent.destroy());
    const page = await get(`${mcu.url}/`, agent);
    assert.equal(page.status, 200);
    assert.match(page.body, /<html/i);
    assert.equal(page.fingerprint, a.credentials.fingerprint256);

    // A participant over WSS, trusting the self-signed certificate (no rejectUnauthorized: false).
    const client = new TestSignalingClient(mcu.url, { ca: [a.credentials.cert.toString()] });
    cleanups.push(() => client.close());
    await client.connected();
    const joined = await client.request('join', { room: 'tls', name: 'Ada' });
    assert.equal(joined.ok, true, JSON.stringify(joined));
    const socketId = client.socket.id;
    const engine = client.socket.io.engine;

    // A request stream, acknowledged in order, running across both reloads.
    const acks: number[] = [];
    let sent = 0;
    let streaming = true;
    const stream = (async () => {
      while (streaming) {
        const n = ++sent;
        const reply = await client.request('mute', { kind: 'audio', muted: n % 2 === 0 });
        assert.equal(reply.ok, true, `request ${n}: ${JSON.stringify(reply)}`);
        acks.push(n);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();

    // SIGHUP with a new certificate.
    live.put(b);
    let mark = mcu.process.stderr.length;
    process.kill(mcu.process.pid, 'SIGHUP');
    const reloaded = await stderrLine(mcu.process, /TLS certificate reloaded/, mark);
    assert.ok(reloaded.includes(b.credentials.fingerprint256), reloaded);
    assert.equal(await peerFingerprint(mcu.port), b.credentials.fingerprint256, 'a new connection gets the new certificate');
    const afterReload = await tlsStatus(mcu.adminUrl);
    assert.equal(afterReload.tls?.fingerprint256, b.credentials.fingerprint256);
    assert.equal(afterReload.tls?.reloads, 1);
    const again = await get(`${mcu.url}/`, agent);
    assert.equal(again.status, 200);
    assert.equal(again.reused, true, 'the keep-alive connection opened before the reload is still open');
    assert.equal(again.fingerprint, a.credentials.fingerprint256, 'and keeps the certificate it was opened with');
    const acksAtReload = acks.length;
    await eventually(async () => acks.length, (n) => n >= acksAtReload + 5, 5000, 10);

    // A broken certificate file, then a key of another certificate: refused, the new certificate stays.
    for (const [what, breakIt] of [
      ['a broken certificate file', () => writeFileSync(live.certFile, '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n')],
      ['a key that is not the certificate\'s', () => (live.put(b), copyFileSync(a.keyFile, live.keyFile))],
    ] as const) {
      breakIt();
      mark = mcu.process.stderr.length;
      process.kill(mcu.process.pid, 'SIGHUP');
      const refused = await stderrLine(mcu.process, /TLS reload refused/, mark);
      assert.match(refused, /TLS_CREDENTIALS_INVALID/, `${what}: logged with its code: ${refused}`);
      assert.equal(await peerFingerprint(mcu.port), b.credentials.fingerprint256, `${what}: new connections still get the certificate in use`);
      const st = await tlsStatus(mcu.adminUrl);
      assert.equal(st.tls?.fingerprint256, b.credentials.fingerprint256);
      assert.equal(st.tls?.reloads, 1);
      assert.equal(st.tls?.lastReloadError?.code, 'TLS_CREDENTIALS_INVALID');
    }

    const acksBefore = acks.length;
    await eventually(async () => acks.length, (n) => n >= acksBefore + 5, 5000, 10);
    streaming = false;
    await stream;
    assert.deepEqual(acks, Array.from({ length: acks.length }, (_, i) => i + 1), 'every request acknowledged once and in order');
    assert.equal(client.socket.id, socketId, 'same socket.io session');
    assert.equal(client.socket.io.engine, engine, 'same engine.io connection');
    assert.equal(client.socket.connected, true);
    assert.equal(client.disconnects, 0, 'the WSS connection never dropped');
    assert.equal(mcu.process.running, true, 'SIGHUP did not end the process');
  });

  it('a bad TLS configuration stops the MCU, the standby and the supervisor with exit 78 and one line naming the file', async () => {
    const refused = async (entry: string, env: Record<string, string>): Promise<string[]> => {
      const proc = startNode(entry, { PORT: String(await freePort()), HOST: '127.0.0.1', LOG_LEVEL: 'debug', ...env });
      cleanups.push(() => proc.kill());
      const { code } = await proc.exited;
      assert.equal(code, CONFIG_EXIT_CODE, `${entry} exits with ${CONFIG_EXIT_CODE}; stderr:\n${proc.stderr.join('\n')}`);
      assert.deepEqual(proc.events, [], `${entry} printed nothing on stdout (it bound nothing)`);
      return proc.stderr;
    };
    const missing = join(dir, 'missing-cert.pem');
    assert.deepEqual(await refused('mcu/src/main.ts', { MCU_TLS_CERT: missing, MCU_TLS_KEY: a.keyFile }), [
      `config: tls.certFile: ${missing} does not exist: create it, or name an existing file (MCU_TLS_CERT)`,
    ]);
    const [mismatch, ...more] = await refused('mcu/src/main.ts', { MCU_TLS_CERT: a.certFile, MCU_TLS_KEY: b.keyFile });
    assert.deepEqual(more, []);
    assert.ok(mismatch!.startsWith(`config: tls.keyFile: the key in ${b.keyFile} does not belong to the certificate in ${a.certFile}`), mismatch);
    const [takeover] = await refused('mcu/src/main.ts', { ...a.env, MCU_TAKEOVER: '1' });
    assert.match(takeover!, /^config: tls\.certFile: TLS cannot be served in takeover mode \(takeover\.enabled, MCU_TAKEOVER=1\) yet/);
    assert.deepEqual(await refused('standby/src/main.ts', { MCU_REPLICATION_SECRET: 'standby-secret-0123456789', MCU_TLS_CERT: missing, MCU_TLS_KEY: a.keyFile }), [
      `config: tls.certFile: ${missing} does not exist: create it, or name an existing file (MCU_TLS_CERT)`,
    ]);
    assert.deepEqual(await refused('standby/src/supervisor/supervisor-main.ts', { MCU_TLS_CERT: a.certFile }), [
      'config: tls.keyFile: set both tls.certFile (MCU_TLS_CERT) and tls.keyFile (MCU_TLS_KEY) to serve HTTPS, or neither to serve plain HTTP (MCU_TLS_KEY)',
    ]);
  });

  it('the standby reloads on SIGHUP too, and once promoted serves that certificate over WSS to the clients that resume', async () => {
    const live = livePair('failover', a);
    const port = await freePort();
    const supervisor = new Supervisor({ port, replicationPort: await freePort(), adminPort: await freePort(), host: '127.0.0.1', env: live.env });
    cleanups.push(() => supervisor.close());
    await supervisor.start();
    const url = `https://127.0.0.1:${port}`;
    const client = new TestSignalingClient(url, { reconnection: true, ca: [a.credentials.cert.toString(), b.credentials.cert.toString()] });
    cleanups.push(() => client.close());
    await client.connected();
    const joined = await client.request('join', { room: 'tls-failover', name: 'Ada' });
    assert.equal(joined.ok, true, JSON.stringify(joined));
    await eventually(async () => (await (await fetch(`${supervisor.adminUrl}/status`)).json()) as { protected: boolean }, (s) => s.protected, 15000);

    // Renewed files, SIGHUP to both processes (as `kill -HUP <supervisor>` does).
    live.put(b);
    const standby = supervisor.standby!;
    const primary = supervisor.primary!;
    const marks = [primary.process.stderr.length, standby.process.stderr.length] as const;
    assert.deepEqual(supervisor.reloadTls().sort(), [primary.pid, standby.pid].sort());
    await stderrLine(primary.process, /TLS certificate reloaded/, marks[0]);
    await stderrLine(standby.process, /TLS certificate reloaded/, marks[1]);
    const standbyStatus = (await (await fetch(`http://127.0.0.1:${standby.statusPort}/status`)).json()) as { tls: TlsStatus | null };
    assert.equal(standbyStatus.tls?.fingerprint256, b.credentials.fingerprint256, 'the standby holds the reloaded certificate for its promotion');
    assert.equal(await peerFingerprint(port), b.credentials.fingerprint256);
    assert.equal(client.disconnects, 0);
    // A ticket the primary issues: the standby has its ticket keys (snapshot extra), so it resumes there too.
    const ticket = await sessionTicket(port);
    assert.equal(await resumes(port, ticket), true, 'the primary resumes its own ticket');

    const promoted = new Promise<void>((resolve) => supervisor.once('promoted', () => resolve()));
    await primary.process.kill('SIGKILL');
    await promoted;
    await client.connected();
    const resumed = await eventually(
      () => client.request('join', { room: 'tls-failover', name: 'x', resume: { participantId: joined.participantId, resumeToken: joined.resumeToken } }).catch(() => ({ ok: false }) as { ok: boolean; [k: string]: unknown }),
      (r) => r.ok === true,
      10000,
    );
    assert.equal(resumed.ok, true, JSON.stringify(resumed));
    assert.equal(resumed.participantId, joined.participantId);
    assert.equal(resumed.epoch, 2);
    assert.equal(await peerFingerprint(port), b.credentials.fingerprint256, 'the promoted standby serves the certificate it reloaded');
    assert.equal(await resumes(port, ticket), true, "the promoted standby resumes the dead primary's ticket: no full handshake");
    const st = (await (await fetch(`${supervisor.adminUrl}/status`)).json()) as { pid: number; scheme: string; tls: TlsStatus | null };
    assert.equal(st.pid, standby.pid);
    assert.equal(st.scheme, 'https');
    assert.equal(st.tls?.fingerprint256, b.credentials.fingerprint256);
  });
});
