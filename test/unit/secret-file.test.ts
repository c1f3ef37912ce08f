/**
 * The replication secret read from a file, and the exposure settings beside it: the loader
 * refuses a file anyone but its owner may access (as ssh does a private key), a missing, empty,
 * oversized or non-regular one, each with one line naming the path and the fix; the configuration
 * takes the secret from it, never beside replication.secret; the admin listener's settings.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, describe, it } from 'node:test';
import { isLoopbackHost, loadConfig, redactConfig } from '../../mcu/src/core/config.ts';
import { ConfigError } from '../../mcu/src/core/errors.ts';
import { MAX_SECRET_FILE_BYTES, readSecretFile } from '../../mcu/src/core/secret-file.ts';

const dir = mkdtempSync(join(tmpdir(), 'mcu-secret-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
function secretFile(content: string, mode = 0o600): string {
  const file = join(dir, `secret-${++files}`);
  writeFileSync(file, content);
  // chmod, not writeFileSync's mode: the umask must not decide the test.
  chmodSync(file, mode);
  return file;
}

const SECRET = 'file-secret-0123456789abcdef';

function problems(env: Record<string, string>, options: { requireReplication?: boolean } = {}): string[] {
  try {
    loadConfig({ env, argv: [], ...options });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message.split('\n');
  }
  assert.fail('the configuration was accepted');
}

describe('replication secret file', () => {
  it('reads an owner-only file, a trailing line ending dropped', () => {
    assert.deepEqual(readSecretFile(secretFile(`${SECRET}\n`), 16), { secret: SECRET });
    assert.deepEqual(readSecretFile(secretFile(`${SECRET}\r\n`, 0o400), 16), { secret: SECRET });
    assert.deepEqual(readSecretFile(secretFile(SECRET, 0o700), 16), { secret: SECRET }, 'the owner may have any bits');
    assert.deepEqual(readSecretFile(secretFile(' spaces inside count  '), 16), { secret: ' spaces inside count  ' });
  });

  it('refuses a file group or others may access (mode & 0o077), naming the mode and the fix', () => {
    for (const mode of [0o644, 0o640, 0o604, 0o620, 0o602, 0o610, 0o601, 0o666]) {
      const file = secretFile(SECRET, mode);
      assert.deepEqual(readSecretFile(file, 16), {
        problem: `${file} is accessible by group or others (mode 0${mode.toString(8)}): make it readable by its owner only (chmod 600 ${file})`,
      });
    }
  });

  it('refuses a missing file, a directory, a FIFO, an oversized file and a short secret', () => {
    const missing = join(dir, 'missing');
    assert.deepEqual(readSecretFile(missing, 16), { problem: `${missing} does not exist` });
    const sub = join(dir, 'a-directory');
    mkdirSync(sub, { mode: 0o700 });
    assert.deepEqual(readSecretFile(sub, 16), { problem: `${sub} is not a regular file` });
    const big = secretFile('x'.repeat(MAX_SECRET_FILE_BYTES + 1));
    assert.match((readSecretFile(big, 16) as { problem: string }).problem, /larger than a secret/);
    const short = secretFile('short\n\n');
    assert.deepEqual(readSecretFile(short, 16), { problem: `${short} holds 5 characters: expected at least 16` });
    const empty = secretFile('');
    assert.deepEqual(readSecretFile(empty, 16), { problem: `${empty} holds 0 characters: expected at least 16` });
    // Opened without blocking: a FIFO with no writer is refused at once instead of hanging the start.
    const fifo = join(dir, 'a-fifo');
    execFileSync('mkfifo', ['-m', '600', fifo]);
    assert.deepEqual(readSecretFile(fifo, 16), { problem: `${fifo} is not a regular file` });
  });

  it('the configuration takes the secret from the file (relative to the working directory), and shows the path, not the secret', () => {
    const file = secretFile(`${SECRET}\n`);
    const config = loadConfig({ env: { MCU_REPLICATION_SECRET_FILE: relative(process.cwd(), file) }, argv: [] });
    assert.equal(config.replication?.secret, SECRET);
    assert.equal(config.replication?.secretFile, file);
    const shown = redactConfig(config);
    assert.equal(shown.replication?.secret, '***');
    assert.equal(shown.replication?.secretFile, file);
    // A standby needs a secret: the file is one.
    assert.equal(loadConfig({ env: { MCU_REPLICATION_SECRET_FILE: file }, argv: [], requireReplication: true }).replication?.secret, SECRET);
  });

  it('a bad file is one config line naming the setting and its variable; the file beside replication.secret is refused', () => {
    const open = secretFile(SECRET, 0o644);
    assert.deepEqual(problems({ MCU_REPLICATION_SECRET_FILE: open }), [
      `config: replication.secretFile: ${open} is accessible by group or others (mode 0644): make it readable by its owner only (chmod 600 ${open}) (MCU_REPLICATION_SECRET_FILE)`,
    ]);
    const good = secretFile(SECRET);
    assert.deepEqual(problems({ MCU_REPLICATION_SECRET_FILE: good, MCU_REPLICATION_SECRET: 'env-secret-0123456789' }), [
      'config: replication.secretFile: set either replication.secret (MCU_REPLICATION_SECRET) or replication.secretFile, not both (MCU_REPLICATION_SECRET_FILE)',
    ]);
    // An empty variable is unset: the supervisor clears the other one that way.
    assert.equal(loadConfig({ env: { MCU_REPLICATION_SECRET_FILE: good, MCU_REPLICATION_SECRET: '' }, argv: [] }).replication?.secret, SECRET);
  });
});

describe('admin listener settings', () => {
  it('loopback by default, on server.port + 2 (0 with port 0), no token', () => {
    assert.deepEqual(loadConfig({ env: {}, argv: [] }).admin, { host: '127.0.0.1', port: 3002, token: null });
    assert.deepEqual(loadConfig({ env: { PORT: '0' }, argv: [] }).admin, { host: '127.0.0.1', port: 0, token: null });
    assert.equal(loadConfig({ env: { PORT: '8000', MCU_ADMIN_PORT: '9100' }, argv: [] }).admin.port, 9100);
  });

  it('an address other than loopback needs a token; the token is redacted', () => {
    assert.deepEqual(problems({ MCU_ADMIN_HOST: '0.0.0.0' }), [
      'config: admin.host: 0.0.0.0 is not a loopback address: set admin.token (MCU_ADMIN_TOKEN) too, or /status and /metrics are open to whoever reaches it (MCU_ADMIN_HOST)',
    ]);
    const token = 'admin-token-0123456789';
    const config = loadConfig({ env: { MCU_ADMIN_HOST: '0.0.0.0', MCU_ADMIN_TOKEN: token }, argv: [] });
    assert.deepEqual(config.admin, { host: '0.0.0.0', port: 3002, token });
    assert.equal(redactConfig(config).admin.token, '***');
    assert.deepEqual(problems({ MCU_ADMIN_TOKEN: 'short' }), ['config: admin.token: expected at least 16 characters (MCU_ADMIN_TOKEN)']);
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1']) assert.equal(isLoopbackHost(host), true, host);
    for (const host of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', 'example.org']) assert.equal(isLoopbackHost(host), false, host);
  });
});
