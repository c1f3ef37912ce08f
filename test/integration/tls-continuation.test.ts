/**
 * Continuing a real TLS 1.3 session with our record layer (issue 11 item 2, the foundation):
 * a real Node `tls.Server` (self-signed certificate made with /usr/bin/openssl) and a real
 * client (Node's `tls.connect`, `openssl s_client`, a `ws` client over wss) talk through a
 * recording relay; the server's secrets come from its keylog events; then the server is dropped
 * and the same client connection goes on with TlsContinuation from the state the tracker found
 * in the recorded bytes. The client must read our records (no bad_record_mac) at the exact
 * sequence numbers, across NewSessionTickets, KeyUpdates both ways, a message in flight and a
 * second takeover of a continued session; a corrupted record is a named error, not a crash.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type Socket as NetSocket } from 'node:net';
import { Duplex } from 'node:stream';
import { connect as tlsConnect, createSecureContext, createServer as createTlsServer, TLSSocket, type Server as TlsServer } from 'node:tls';
import { before, describe, it } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { TlsRecordInvalidError } from '../../mcu/src/takeover/tls/errors.ts';
import type { TlsSuiteName } from '../../mcu/src/takeover/tls/key-schedule.ts';
import { TlsContinuation } from '../../mcu/src/takeover/tls/continuation.ts';
import { TlsSecretsCollector, parseTlsSessionSecrets, type TlsSecretsResult, type TlsSessionSecrets } from '../../mcu/src/takeover/tls/secrets.ts';
import { trackTlsSession } from '../../mcu/src/takeover/tls/sequence-tracker.ts';
import { OPENSSL } from '../../scripts/demo/self-signed-cert.ts';
import { cleanupsAfterEach } from '../helpers/cleanups.ts';
import { makeTestCertificate, type TestCertificate } from '../helpers/tls.ts';
import { LineReader, RecordingRelay, type TakenOver } from '../helpers/tls-relay.ts';

const cleanups = cleanupsAfterEach();
let cert: TestCertificate;
let key: Buffer;
let certPem: Buffer;
before(async () => {
  cert = await makeTestCertificate('tls-continuation');
  key = readFileSync(cert.keyFile);
  certPem = readFileSync(cert.certFile);
});

const SUITES: TlsSuiteName[] = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];

/** The primary: a real TLS server answering each line with "primary:<line>", its secrets collected. */
async function startPrimary(
  suite: TlsSuiteName | null,
  extra: { maxVersion?: 'TLSv1.2' } = {},
): Promise<{ server: TlsServer; port: number; secrets: Promise<TlsSecretsResult>; drop: () => Promise<void> }> {
  const server = createTlsServer({ key, cert: certPem, ...(suite ? { ciphers: suite } : {}), ...(extra.maxVersion ? { maxVersion: extra.maxVersion, ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' } : {}) });
  const collector = new TlsSecretsCollector().attach(server);
  const secrets = new Promise<TlsSecretsResult>((resolve) => collector.once('secrets', (_socket, result) => resolve(result)));
  const sockets = new Set<TLSSocket>();
  server.on('secureConnection', (socket: TLSSocket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    new LineReader(socket);
    let pending = '';
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) socket.write(`primary:${line}\n`);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => {
    collector.close();
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
  });
  // Drops the primary as a killed process would: its connections and listener go.
  const drop = (): Promise<void> => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { server, port: (server.address() as { port: number }).port, secrets, drop };
}

async function startRelay(targetPort: number): Promise<{ relay: RecordingRelay; port: number }> {
  const relay = new RecordingRelay(targetPort);
  const port = await relay.listen();
  cleanups.push(() => relay.close());
  return { relay, port };
}

/** The standby's application on the continued session: "<name>:<line>" for each line (and the length of long ones). */
function serveStandby(session: TlsContinuation, name = 'standby'): LineReader {
  const reader = new LineReader(session);
  let pending = '';
  session.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) session.write(line.length > 1000 ? `${name}:long ${line.length}\n` : `${name}:${line}\n`);
  });
  return reader;
}

/** Tracks the recorded streams and starts the continuation on the client's socket. */
function continueSession(taken: TakenOver, secrets: TlsSessionSecrets): { session: TlsContinuation; tracked: ReturnType<typeof trackTlsSession> & { ok: true } } {
  const tracked = trackTlsSession({
    // Replicated: what the standby gets is the validated wire record.
    secrets: parseTlsSessionSecrets(JSON.parse(JSON.stringify(secrets))),
    client: { bytes: taken.clientBytes, until: taken.forwardedToServer },
    server: { bytes: taken.serverBytes },
  });
  assert.ok(tracked.ok, `tracked: ${JSON.stringify(tracked)}`);
  const session = new TlsContinuation(taken.client, tracked.state, {
    head: taken.clientBytes.subarray(tracked.client.boundary),
    inputOffset: tracked.client.boundary,
  });
  cleanups.push(() => session.close());
  return { session, tracked };
}

async function secretsOf(result: Promise<TlsSecretsResult>): Promise<TlsSessionSecrets> {
  const r = await result;
  assert.ok(r.ok, `secrets: ${JSON.stringify(r)}`);
  return r.secrets;
}

describe('TLS 1.3 continuation with Node tls clients', () => {
  for (const suite of SUITES) {
    it(`${suite}: continues at the exact sequence numbers after two NewSessionTickets, with a message in flight, KeyUpdates both ways and 100 KB each way`, async () => {
      const primary = await startPrimary(suite);
      const { relay, port } = await startRelay(primary.port);
      const client = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: certPem, minVersion: 'TLSv1.3' });
      cleanups.push(() => client.destroy());
      const clientErrors: Error[] = [];
      client.on('error', (err) => clientErrors.push(err));
      let tickets = 0;
      client.on('session', () => tickets++);
      const lines = new LineReader(client);
      await once(client, 'secureConnect');
      assert.equal(client.getCipher().standardName, suite);

      for (let i = 1; i <= 3; i++) {
        client.write(`p${i}\n`);
        await lines.waitFor(new RegExp(`^primary:p${i}$`));
      }
      assert.equal(tickets, 2, 'OpenSSL sent two NewSessionTickets');
      const secrets = await secretsOf(primary.secrets);
      assert.equal(secrets.suite, suite);

      // A message the client sent that the primary never got: in flight at the crash.
      relay.holdClientInput = true;
      const before = relay.clientBytes;
      client.write('inflight\n');
      await relay.clientBytesAbove(before);
      const taken = relay.takeOver();
      await primary.drop();

      const { session, tracked } = continueSession(taken, secrets);
      assert.equal(tracked.server.newSessionTickets, 2);
      assert.equal(tracked.server.state.seq, 2 + 3, 'server: two tickets and three replies');
      assert.equal(tracked.client.state.seq, 3, 'client: three messages the primary read');
      assert.ok(taken.clientBytes.length > tracked.client.boundary, 'the in-flight record is left to the continuation');
      const sessionErrors: Error[] = [];
      session.on('error', (err) => sessionErrors.push(err));
      const keyUpdates: Array<{ generation: number; requested: boolean }> = [];
      session.observer.on('keyupdate', (k) => keyUpdates.push(k));
      serveStandby(session);

      await lines.waitFor(/^standby:inflight$/);
      for (let i = 1; i <= 3; i++) {
        client.write(`s${i}\n`);
        await lines.waitFor(new RegExp(`^standby:s${i}$`));
      }
      // A KeyUpdate of ours asking for the client's: the client answers before its first record
      // after reading it (the first message below may cross it; the second cannot).
      session.keyUpdate(true);
      client.write('after-our-update\n');
      await lines.waitFor(/^standby:after-our-update$/);
      client.write('after-our-update-2\n');
      await lines.waitFor(/^standby:after-our-update-2$/);
      assert.deepEqual(keyUpdates, [{ generation: 1, requested: false }]);
      assert.equal(session.tlsState.write.generation, 1);
      assert.equal(session.tlsState.read.generation, 1);

      // Records split across TCP chunks both ways: 100 KB in, 100 KB out (7 records).
      client.write('x'.repeat(100_000) + '\n');
      await lines.waitFor(/^standby:long 100000$/);
      session.write('y'.repeat(100_000) + '\n');
      await lines.waitFor(/^y{100000}$/);

      // close_notify both ways.
      client.end();
      await once(session, 'end');
      await once(client, 'close');
      assert.deepEqual(clientErrors, []);
      assert.deepEqual(sessionErrors, []);
    });
  }

  it('a continued session is continued again (chained takeovers): tracked from the first standby\'s boundary with its KeyUpdate', async () => {
    const primary = await startPrimary('TLS_AES_256_GCM_SHA384');
    const { relay, port } = await startRelay(primary.port);
    const client = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: certPem });
    cleanups.push(() => client.destroy());
    const clientErrors: Error[] = [];
    client.on('error', (err) => clientErrors.push(err));
    const lines = new LineReader(client);
    await once(client, 'secureConnect');
    client.write('p1\n');
    await lines.waitFor(/^primary:p1$/);
    const secrets = await secretsOf(primary.secrets);
    const taken = relay.takeOver();
    await primary.drop();

    // A cut in the recorded output is refused, not guessed around.
    const cut = trackTlsSession({ secrets, client: { bytes: taken.clientBytes }, server: { bytes: taken.serverBytes.subarray(0, taken.serverBytes.length - 3) } });
    assert.ok(!cut.ok && cut.code === 'TLS_RECORD_CUT' && cut.direction === 'server');

    // Standby 1 over a tap that records what it reads and writes (its capture and output log).
    const tap = new TapTransport(taken.client);
    const { session: first, tracked } = continueSession({ ...taken, client: tap as unknown as typeof taken.client }, secrets);
    serveStandby(first);
    client.write('s1\n');
    await lines.waitFor(/^standby:s1$/);
    first.keyUpdate(true);
    for (const m of ['s2', 's3']) {
      client.write(`${m}\n`);
      await lines.waitFor(new RegExp(`^standby:${m}$`));
    }
    // Standby 1 dies: nothing more reaches the client from it.
    const socket = tap.detach();
    first.destroy();

    const head = taken.clientBytes.subarray(tracked.client.boundary);
    const again = trackTlsSession({
      secrets,
      client: { bytes: Buffer.concat([head, ...tap.input]), from: tracked.state.read },
      server: { bytes: Buffer.concat(tap.output), from: tracked.state.write },
    });
    assert.ok(again.ok, JSON.stringify(again));
    assert.equal(again.state.write.generation, 1);
    assert.equal(again.state.read.generation, 1, 'the client answered our KeyUpdate');
    const second = new TlsContinuation(socket, again.state);
    cleanups.push(() => second.close());
    serveStandby(second, 'standby2');
    for (const m of ['t1', 't2']) {
      client.write(`${m}\n`);
      await lines.waitFor(new RegExp(`^standby2:${m}$`));
    }
    assert.deepEqual(clientErrors, []);
  });

  it('a message in flight cut by the crash: the captured part is the head, the rest arrives on the socket', async () => {
    const primary = await startPrimary('TLS_AES_128_GCM_SHA256');
    const { relay, port } = await startRelay(primary.port);
    const client = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: certPem });
    cleanups.push(() => client.destroy());
    const clientErrors: Error[] = [];
    client.on('error', (err) => clientErrors.push(err));
    const lines = new LineReader(client);
    await once(client, 'secureConnect');
    client.write('p1\n');
    await lines.waitFor(/^primary:p1$/);
    const secrets = await secretsOf(primary.secrets);
    relay.holdClientInput = true;
    const before = relay.clientBytes;
    // 30,001 bytes: two records of 16,384 + 13,617 bytes, each with 22 bytes of overhead.
    client.write('z'.repeat(30_000) + '\n');
    const sealed = 30_001 + 2 * (5 + 1 + 16);
    await relay.clientBytesAbove(before + sealed - 1);
    const taken = relay.takeOver();
    await primary.drop();
    const inflight = taken.clientBytes.subarray(taken.forwardedToServer);
    assert.equal(inflight.length, sealed);
    // The capture ends 10,000 bytes into the first record; the kernel holds the rest for the rebuilt socket.
    const cutAt = 10_000;
    taken.client.unshift(inflight.subarray(cutAt));
    const { session } = continueSession({ ...taken, clientBytes: taken.clientBytes.subarray(0, taken.forwardedToServer + cutAt) }, secrets);
    serveStandby(session);
    await lines.waitFor(/^standby:long 30000$/);
    client.write('then\n');
    await lines.waitFor(/^standby:then$/);
    assert.equal(session.tlsState.read.seq, 1 + 2 + 1);
    assert.deepEqual(clientErrors, []);
  });

  it('the secrets of a TLSSocket made over a tap (new TLSSocket(socket, { isServer: true })) are collected with watch()', async () => {
    const collector = new TlsSecretsCollector();
    const results: TlsSecretsResult[] = [];
    collector.on('secrets', (_s, r) => results.push(r));
    const sockets: TLSSocket[] = [];
    const server = createNetServer((raw) => {
      const tlsSocket = new TLSSocket(raw, { isServer: true, secureContext: createSecureContext({ key, cert: certPem }) });
      sockets.push(tlsSocket);
      tlsSocket.on('error', () => undefined);
      collector.watch(tlsSocket);
      tlsSocket.on('data', (chunk: Buffer) => tlsSocket.write(chunk));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(() => {
      collector.close();
      collector.close();
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const client = tlsConnect({ host: '127.0.0.1', port: (server.address() as { port: number }).port, servername: 'localhost', ca: certPem, ciphers: 'TLS_CHACHA20_POLY1305_SHA256' });
    cleanups.push(() => client.destroy());
    await once(client, 'secureConnect');
    client.write('x');
    await once(client, 'data');
    assert.equal(results.length, 1);
    const r = results[0]!;
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.secrets.suite, 'TLS_CHACHA20_POLY1305_SHA256');
    assert.equal(collector.resultFor(sockets[0]!), r);
  });

  it('a corrupted record is TLS_RECORD_INVALID: the client gets a bad_record_mac alert, nothing crashes', async () => {
    const primary = await startPrimary('TLS_AES_128_GCM_SHA256');
    const { relay, port } = await startRelay(primary.port);
    const client = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: certPem });
    cleanups.push(() => client.destroy());
    const clientError = new Promise<Error>((resolve) => client.once('error', resolve));
    const lines = new LineReader(client);
    await once(client, 'secureConnect');
    client.write('p1\n');
    await lines.waitFor(/^primary:p1$/);
    const secrets = await secretsOf(primary.secrets);
    relay.holdClientInput = true;
    const before = relay.clientBytes;
    client.write('tampered\n');
    await relay.clientBytesAbove(before);
    const taken = relay.takeOver();
    await primary.drop();
    // Flip one ciphertext bit of the in-flight record, as a broken capture would.
    const tampered = Buffer.from(taken.clientBytes);
    tampered[taken.forwardedToServer + 8]! ^= 0x01;
    const { session } = continueSession({ ...taken, clientBytes: tampered }, secrets);
    const [err] = (await once(session, 'error')) as [Error];
    assert.ok(err instanceof TlsRecordInvalidError);
    assert.equal(err.code, 'TLS_RECORD_INVALID');
    assert.equal(err.alert, 'bad_record_mac');
    assert.equal(err.offset, taken.forwardedToServer);
    const seen = await clientError;
    assert.match(String((seen as NodeJS.ErrnoException).code ?? seen.message), /BAD_RECORD_MAC/i);
    session.close();
    session.close();
  });

  it('a TLS 1.2 connection cannot be continued: TLS_VERSION_UNSUPPORTED', async () => {
    const primary = await startPrimary(null, { maxVersion: 'TLSv1.2' });
    const client = tlsConnect({ host: '127.0.0.1', port: primary.port, servername: 'localhost', ca: certPem });
    cleanups.push(() => client.destroy());
    client.on('error', () => undefined);
    await once(client, 'secureConnect');
    const result = await primary.secrets;
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.code, 'TLS_VERSION_UNSUPPORTED');
  });
});

/** openssl s_client on `port`, its stdout as lines; commands ("K") work as it runs interactively (no -quiet). */
/** A transport that records what a continuation reads and writes, and can be cut off from the socket without closing it (a standby dying). */
class TapTransport extends Duplex {
  readonly input: Buffer[] = [];
  readonly output: Buffer[] = [];
  readonly #inner: NetSocket;
  #detached = false;
  constructor(inner: NetSocket) {
    super();
    this.#inner = inner;
    inner.on('data', (chunk: Buffer) => {
      if (this.#detached) return;
      this.input.push(chunk);
      if (!this.push(chunk)) inner.pause();
    });
    inner.on('end', () => {
      if (!this.#detached) this.push(null);
    });
  }
  override _read(): void {
    if (!this.#detached) this.#inner.resume();
  }
  override _write(chunk: Buffer, _e: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.#detached) return cb();
    this.output.push(chunk);
    this.#inner.write(chunk, cb);
  }
  override _final(cb: () => void): void {
    if (!this.#detached) this.#inner.end();
    cb();
  }
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.#detached) this.#inner.destroy();
    cb(err);
  }
  detach(): NetSocket {
    this.#detached = true;
    this.#inner.removeAllListeners('data');
    this.#inner.removeAllListeners('end');
    this.#inner.pause();
    return this.#inner;
  }
}

function startSClient(port: number, suite: TlsSuiteName): { proc: ChildProcessWithoutNullStreams; lines: LineReader } {
  const proc = spawn(OPENSSL, ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-tls1_3', '-ciphersuites', suite, '-CAfile', cert.certFile], { stdio: 'pipe' });
  cleanups.push(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await once(proc, 'exit');
    }
  });
  proc.stderr.resume();
  return { proc, lines: new LineReader(proc.stdout) };
}

describe('TLS 1.3 continuation with openssl s_client', () => {
  it('follows client KeyUpdates before the takeover (one answered by the primary, one still owed) and after it', async () => {
    const suite: TlsSuiteName = 'TLS_AES_256_GCM_SHA384';
    const primary = await startPrimary(suite);
    const { relay, port } = await startRelay(primary.port);
    const { proc, lines } = startSClient(port, suite);
    const secrets = await secretsOf(primary.secrets);
    proc.stdin.write('hello1\n');
    await lines.waitFor(/^primary:hello1$/);

    // "K": a KeyUpdate asking for the server's; the primary answers just before its next write.
    let before = relay.clientBytes;
    proc.stdin.write('K\n');
    await relay.clientBytesAbove(before);
    proc.stdin.write('hello2\n');
    await lines.waitFor(/^primary:hello2$/);
    // A second one the primary never answers: it writes nothing more before the crash.
    before = relay.clientBytes;
    proc.stdin.write('K\n');
    await relay.clientBytesAbove(before);

    const taken = relay.takeOver();
    await primary.drop();
    const { session, tracked } = continueSession(taken, secrets);
    assert.equal(tracked.client.keyUpdates, 2);
    assert.equal(tracked.client.keyUpdatesRequested, 2);
    assert.equal(tracked.server.keyUpdates, 1);
    assert.equal(tracked.server.newSessionTickets, 2);
    assert.equal(tracked.state.read.generation, 2);
    assert.equal(tracked.state.write.generation, 1);
    assert.equal(tracked.state.keyUpdateOwed, true);
    const keyUpdates: Array<{ generation: number; requested: boolean }> = [];
    session.observer.on('keyupdate', (k) => keyUpdates.push(k));
    const sessionErrors: Error[] = [];
    session.on('error', (err) => sessionErrors.push(err));
    serveStandby(session);
    // The owed KeyUpdate went first: our write key is at generation 2.
    assert.equal(session.tlsState.write.generation, 2);

    proc.stdin.write('hello3\n');
    await lines.waitFor(/^standby:hello3$/);
    // A client KeyUpdate after the takeover: we move our read key and answer with ours.
    // s_client drops whatever shares a read with a command line: one line at a time.
    const theirs = once(session.observer, 'keyupdate');
    proc.stdin.write('K\n');
    await theirs;
    proc.stdin.write('hello4\n');
    await lines.waitFor(/^standby:hello4$/);
    assert.deepEqual(keyUpdates, [{ generation: 3, requested: true }]);
    assert.equal(session.tlsState.write.generation, 3);
    // And one of ours, which s_client answers (hello5 may cross it; hello6 cannot).
    session.keyUpdate(true);
    proc.stdin.write('hello5\n');
    await lines.waitFor(/^standby:hello5$/);
    proc.stdin.write('hello6\n');
    await lines.waitFor(/^standby:hello6$/);
    assert.deepEqual(keyUpdates.at(-1), { generation: 4, requested: false });
    assert.deepEqual(sessionErrors, []);

    proc.stdin.end();
    await once(proc, 'exit');
  });
});

describe('TLS 1.3 continuation under a WebSocket (ws over wss)', () => {
  it('a ws client keeps its WebSocket: the standby re-attaches ws over the continuation with setSocket', async () => {
    const https = createHttpsServer({ key, cert: certPem });
    const collector = new TlsSecretsCollector().attach(https);
    const secretsResult = new Promise<TlsSecretsResult>((resolve) => collector.once('secrets', (_s, r) => resolve(r)));
    const wss = new WebSocketServer({ server: https, perMessageDeflate: false });
    wss.on('connection', (ws) => ws.on('message', (m) => ws.send(`primary:${m.toString()}`)));
    https.listen(0, '127.0.0.1');
    await once(https, 'listening');
    cleanups.push(() => {
      collector.close();
      for (const c of wss.clients) c.terminate();
      wss.close();
      https.closeAllConnections();
      return new Promise<void>((resolve) => https.close(() => resolve()));
    });
    const { relay, port } = await startRelay((https.address() as { port: number }).port);
    const client = new WebSocket(`wss://localhost:${port}/`, { ca: certPem, perMessageDeflate: false });
    cleanups.push(() => client.terminate());
    const received: string[] = [];
    const waitMessage = (text: string): Promise<void> =>
      received.includes(text)
        ? Promise.resolve()
        : new Promise((resolve) => {
            const on = (): void => {
              if (received.includes(text)) {
                client.off('message', on);
                resolve();
              }
            };
            client.on('message', on);
          });
    client.on('message', (m) => received.push(m.toString()));
    let closed: number | null = null;
    client.on('close', (code) => (closed = code));
    await once(client, 'open');
    client.send('a');
    await waitMessage('primary:a');
    const secrets = await secretsOf(secretsResult);

    const taken = relay.takeOver();
    https.closeAllConnections();
    const { session } = continueSession(taken, secrets);
    // The standby's side of the WebSocket, as the re-attacher builds it (design.md 10).
    type ServerSideWebSocket = WebSocket & { setSocket(socket: unknown, head: Buffer, options: { maxPayload: number; skipUTF8Validation: boolean }): void };
    const ServerWebSocket = WebSocket as unknown as new (address: null, protocols: undefined, options: { autoPong: boolean }) => ServerSideWebSocket;
    const ws = new ServerWebSocket(null, undefined, { autoPong: true });
    ws.setSocket(session, Buffer.alloc(0), { maxPayload: 100 * 1024 * 1024, skipUTF8Validation: false });
    ws.on('message', (m) => ws.send(`standby:${m.toString()}`));
    for (const text of ['b', 'c', 'd'.repeat(50_000)]) {
      client.send(text);
      await waitMessage(`standby:${text}`);
    }
    client.close(1000);
    await once(client, 'close');
    assert.equal(closed, 1000);
  });
});
