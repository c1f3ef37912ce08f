/**
 * ServiceTls in one process, on a real HTTPS server: a reload hands the new pair to new
 * connections (events, status), a pair that does not load keeps the one in use, close() is
 * idempotent and plain HTTP has none.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../mcu/src/core/logger.ts';
import { ServiceTls, type TlsCredentials } from '../../mcu/src/http/tls.ts';
import { TlsCredentialsError } from '../../mcu/src/core/errors.ts';
import { makeTestCertificate, type TestCertificate } from '../helpers/tls.ts';

const dir = mkdtempSync(join(tmpdir(), 'mcu-service-tls-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const log = createLogger('tls-test');

function fingerprintOf(server: HttpsServer): Promise<string> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.once('error', reject);
  });
}

describe('ServiceTls', () => {
  let a: TestCertificate;
  let b: TestCertificate;
  before(async () => {
    a = await makeTestCertificate('unit-a');
    b = await makeTestCertificate('unit-b');
  });

  it('reloads into new connections, keeps the pair in use when the new one does not load', async () => {
    mkdirSync(join(dir, 'live'));
    const files = { certFile: join(dir, 'live', 'cert.pem'), keyFile: join(dir, 'live', 'key.pem') };
    const put = (c: TestCertificate): void => {
      copyFileSync(c.keyFile, files.keyFile);
      copyFileSync(c.certFile, files.certFile);
    };
    put(a);
    const tls = new ServiceTls({ files, log });
    const server = tls.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      assert.equal(await fingerprintOf(server), a.credentials.fingerprint256);
      const reloaded: TlsCredentials[] = [];
      const failed: TlsCredentialsError[] = [];
      tls.on('reloaded', (c) => reloaded.push(c));
      tls.on('reload-failed', (err) => failed.push(err));

      put(b);
      const outcome = tls.reload();
      assert.equal(outcome.reloaded, true);
      assert.equal(await fingerprintOf(server), b.credentials.fingerprint256);
      assert.deepEqual(reloaded.map((c) => c.fingerprint256), [b.credentials.fingerprint256]);
      assert.equal(tls.status().reloads, 1);

      writeFileSync(files.keyFile, 'not a key\n');
      const refused = tls.reload();
      assert.equal(refused.reloaded, false);
      assert.ok(!refused.reloaded && refused.error instanceof TlsCredentialsError && refused.error.setting === 'tls.keyFile');
      assert.equal(failed.length, 1);
      assert.equal(await fingerprintOf(server), b.credentials.fingerprint256, 'the pair in use stays');
      assert.equal(tls.credentials.fingerprint256, b.credentials.fingerprint256);
      const status = tls.status();
      assert.equal(status.reloads, 1);
      assert.equal(status.lastReloadError?.code, 'TLS_CREDENTIALS_INVALID');
    } finally {
      await new Promise((resolve) => server.close(resolve));
      tls.close();
      tls.close();
      assert.equal(tls.closed, true);
    }
  });

  it('plain HTTP has none; a bad pair throws the named error', () => {
    assert.equal(ServiceTls.fromConfig(null, log), null);
    assert.throws(() => new ServiceTls({ files: { certFile: a.certFile, keyFile: b.keyFile }, log }), TlsCredentialsError);
  });
});
