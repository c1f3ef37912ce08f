/**
 * The primary's TLS tap (mcu/src/takeover/tls/record-tap.ts, tapped-connection.ts) with real
 * sockets and real TLS: a `tls.TLSSocket(isServer)` made over the tap over a real TCP connection, a real Node TLS
 * client behind the recording relay (test/helpers/tls-relay.ts, the standby's capture and output
 * log). What the tap writes to the socket is whole records only, every time; the connection's
 * secrets, complete from the key log, are there before the first record under them leaves (the
 * point where the primary replicates its `tls-secrets` blob); and the tap's ciphertext input
 * boundary is where the tracker finds the session, so the standby continues it: the client
 * talks on over the same connection with no error.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer as createNetServer, type Socket as NetSocket } from 'node:net';
import { connect as tlsConnect, createSecureContext } from 'node:tls';
import { before, describe, it } from 'node:test';
import { RecordFramer } from '../../mcu/src/takeover/tls/record.ts';
import { parseTlsSessionSecrets, type TlsSecretsResult } from '../../mcu/src/takeover/tls/secrets.ts';
import { TappedTlsConnection } from '../../mcu/src/takeover/tls/tapped-connection.ts';
import { continueTlsConnection, TlsTakeoverTally } from '../../mcu/src/takeover/tls/standby-continuation.ts';
import { cleanupsAfterEach } from '../helpers/cleanups.ts';
import { makeTestCertificate } from '../helpers/tls.ts';
import { LineReader, RecordingRelay } from '../helpers/tls-relay.ts';

const cleanups = cleanupsAfterEach();
let key: Buffer;
let certPem: Buffer;
before(async () => {
  const cert = await makeTestCertificate('tls-record-tap');
  key = readFileSync(cert.keyFile);
  certPem = readFileSync(cert.certFile);
});

interface TappedPrimary {
  port: number;
  /** Each write the tap made to the TCP socket. */
  socketWrites: Buffer[];
  /** The secrets result as the primary would replicate it, and the output offset it was reported at. */
  secrets: Promise<{ result: TlsSecretsResult; atOutput: number }>;
  connection: Promise<TappedTlsConnection>;
  drop: () => void;
}

/** A primary serving TLS over the tap: each line is answered "primary:<line>" (long lines by their length). */
async function startTappedPrimary(tlsOptions: { maxVersion?: 'TLSv1.2' } = {}): Promise<TappedPrimary> {
  const secureContext = createSecureContext({ key, cert: certPem, ...(tlsOptions.maxVersion ? { maxVersion: tlsOptions.maxVersion, ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' } : {}) });
  const socketWrites: Buffer[] = [];
  const sockets = new Set<NetSocket>();
  let resolveSecrets!: (s: { result: TlsSecretsResult; atOutput: number }) => void;
  const secrets = new Promise<{ result: TlsSecretsResult; atOutput: number }>((resolve) => (resolveSecrets = resolve));
  let resolveConnection!: (c: TappedTlsConnection) => void;
  const connection = new Promise<TappedTlsConnection>((resolve) => (resolveConnection = resolve));
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    // Observes what reaches the socket (where output commit logs it).
    const write = socket.write.bind(socket) as (chunk: Buffer, cb?: (err?: Error | null) => void) => boolean;
    socket.write = ((chunk: Buffer, cb?: (err?: Error | null) => void) => {
      socketWrites.push(Buffer.from(chunk));
      return write(chunk, cb);
    }) as NetSocket['write'];
    const conn: TappedTlsConnection = new TappedTlsConnection({
      socket,
      secureContext,
      // Where the primary sends its tls-secrets blob.
      onSecrets: (result) => resolveSecrets({ result, atOutput: conn.tap.outputOffset }),
    });
    const tlsSocket = conn.tlsSocket;
    tlsSocket.on('error', () => undefined);
    let pending = '';
    tlsSocket.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) tlsSocket.write(line.length > 1000 ? `primary:long ${line.length}\n` : `primary:${line}\n`);
    });
    resolveConnection(conn);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const drop = (): void => {
    for (const s of sockets) s.destroy();
    server.close();
  };
  cleanups.push(drop);
  return { port: (server.address() as { port: number }).port, socketWrites, secrets, connection, drop };
}

describe('TLS record tap and TappedTlsConnection (primary side of the TLS takeover)', () => {
  it('writes whole records only, has the secrets before the first record under them, and its input boundary lets the standby continue the session', async () => {
    const primary = await startTappedPrimary();
    const relay = new RecordingRelay(primary.port);
    const port = await relay.listen();
    cleanups.push(() => relay.close());
    const client = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: certPem, minVersion: 'TLSv1.3' });
    cleanups.push(() => client.destroy());
    const clientErrors: Error[] = [];
    client.on('error', (err) => clientErrors.push(err));
    const lines = new LineReader(client);
    await once(client, 'secureConnect');
    for (let i = 1; i <= 3; i++) {
      client.write(`p${i}\n`);
      await lines.waitFor(new RegExp(`^primary:p${i}$`));
    }
    // Replies over several records each way (the TLS layer writes them in pieces).
    client.write('x'.repeat(50_000) + '\n');
    await lines.waitFor(/^primary:long 50000$/);
    const { tap } = await primary.connection;

    // Every socket write is whole records: the output log can never end inside one.
    assert.ok(primary.socketWrites.length > 3);
    for (const [i, chunk] of primary.socketWrites.entries()) {
      const framer = new RecordFramer();
      assert.ok(framer.push(chunk).length > 0, `write ${i} holds a record`);
      assert.equal(framer.buffered, 0, `write ${i} (${chunk.length} bytes) ends at a record boundary`);
    }
    const stats = tap.stats();
    assert.equal(stats.heldOutputBytes, 0);
    assert.equal(stats.outputBytes, relay.serverBytes);

    // The takeover: the primary goes, the standby tracks the relay's bytes from the replicated secrets.
    const { result, atOutput } = await primary.secrets;
    assert.ok(result.ok, JSON.stringify(result));
    const inputBoundary = tap.inputBoundary;
    const taken = relay.takeOver();
    primary.drop();
    // The standby's step, from what it was replicated (the secrets as the wire validates them).
    const tally = new TlsTakeoverTally();
    const continued = continueTlsConnection({
      socket: taken.client,
      secrets: { ok: true, secrets: parseTlsSessionSecrets(JSON.parse(JSON.stringify(result.secrets))) },
      capturedInput: taken.clientBytes,
      consumedInput: inputBoundary,
      outputLog: taken.serverBytes,
    });
    tally.count(continued);
    assert.ok(continued.ok, JSON.stringify(continued));
    assert.deepEqual(tally.toJSON(), { continued: 1, notContinued: {} });
    const { tracked, continuation: session } = continued;
    assert.ok(tracked.server.applicationStart !== null && atOutput <= tracked.server.applicationStart, `secrets ready at output ${atOutput}, first application record at ${tracked.server.applicationStart}`);
    assert.equal(tracked.client.boundary, inputBoundary);
    assert.equal(tracked.server.newSessionTickets, 2);

    cleanups.push(() => session.close());
    const sessionErrors: Error[] = [];
    session.on('error', (err) => sessionErrors.push(err));
    let pending = '';
    session.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const got = pending.split('\n');
      pending = got.pop() ?? '';
      for (const line of got) session.write(`standby:${line}\n`);
    });
    for (let i = 1; i <= 3; i++) {
      client.write(`s${i}\n`);
      await lines.waitFor(new RegExp(`^standby:s${i}$`));
    }
    client.end();
    await once(client, 'close');
    assert.deepEqual(clientErrors, []);
    assert.deepEqual(sessionErrors, []);
  });

  it('a TLS 1.2 connection is served over the tap and reported once as not continuable (TLS_VERSION_UNSUPPORTED)', async () => {
    const primary = await startTappedPrimary({ maxVersion: 'TLSv1.2' });
    const client = tlsConnect({ host: '127.0.0.1', port: primary.port, servername: 'localhost', ca: certPem, maxVersion: 'TLSv1.2' });
    cleanups.push(() => client.destroy());
    const lines = new LineReader(client);
    await once(client, 'secureConnect');
    client.write('hello\n');
    await lines.waitFor(/^primary:hello$/);
    const { result } = await primary.secrets;
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.code, 'TLS_VERSION_UNSUPPORTED');
    const conn = await primary.connection;
    assert.equal(conn.secrets, result);
    for (const chunk of primary.socketWrites) {
      const framer = new RecordFramer();
      framer.push(chunk);
      assert.equal(framer.buffered, 0);
    }
  });

  it('a connection that cannot be continued (output log cut inside a record, no secrets) is counted by code and closed cleanly: the client sees the end, no stall', async () => {
    const tally = new TlsTakeoverTally();
    for (const how of ['cut', 'no-secrets'] as const) {
      const primary = await startTappedPrimary();
      const relay = new RecordingRelay(primary.port);
      const port = await relay.listen();
      cleanups.push(() => relay.close());
      const client = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: certPem, minVersion: 'TLSv1.3' });
      cleanups.push(() => client.destroy());
      const lines = new LineReader(client);
      await once(client, 'secureConnect');
      client.write('p1\n');
      await lines.waitFor(/^primary:p1$/);
      const { result } = await primary.secrets;
      const { tap } = await primary.connection;
      const inputBoundary = tap.inputBoundary;
      const taken = relay.takeOver();
      primary.drop();
      const closed = once(client, 'close');
      const outcome = continueTlsConnection({
        socket: taken.client,
        secrets: how === 'no-secrets' ? null : result,
        capturedInput: taken.clientBytes,
        consumedInput: inputBoundary,
        // As if the log ended 3 bytes into the last record (what whole-record commit prevents).
        outputLog: how === 'cut' ? taken.serverBytes.subarray(0, taken.serverBytes.length - 3) : taken.serverBytes,
      });
      tally.count(outcome);
      assert.equal(outcome.ok, false);
      assert.equal(!outcome.ok && outcome.code, how === 'cut' ? 'TLS_RECORD_CUT' : 'TLS_SECRETS_MISSING');
      await closed;
    }
    assert.deepEqual(tally.toJSON(), { continued: 0, notContinued: { TLS_RECORD_CUT: 1, TLS_SECRETS_MISSING: 1 } });
  });
});
