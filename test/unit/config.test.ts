/**
 * The one configuration schema: the README's table lists exactly its settings, a config file is
 * overridden by the environment, and every kind of bad setting is one line naming it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { describeSettings, loadConfig, redactConfig, type LoadConfigOptions } from '../../mcu/src/core/config.ts';
import { ConfigError, TlsCredentialsError } from '../../mcu/src/core/errors.ts';
import { readTlsCredentials, type TlsFiles } from '../../mcu/src/http/tls.ts';
import { generateSelfSignedCertificate, OPENSSL } from '../../scripts/demo/self-signed-cert.ts';

const dir = mkdtempSync(join(tmpdir(), 'mcu-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
function configFile(content: unknown): string {
  const file = join(dir, `config-${++files}.json`);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

/** Loads with only the given environment and arguments, never this process's. */
function load(env: Record<string, string> = {}, argv: string[] = [], options: Omit<LoadConfigOptions, 'env' | 'argv'> = {}) {
  return loadConfig({ env, argv, ...options });
}

/** The problem lines of the ConfigError that loading throws. */
function problems(env: Record<string, string>, argv: string[] = [], options: Omit<LoadConfigOptions, 'env' | 'argv'> = {}): string[] {
  try {
    load(env, argv, options);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.equal(err.code, 'CONFIG_INVALID');
    return err.message.split('\n');
  }
  assert.fail('the configuration was accepted');
}

function readmeTable(): Array<{ path: string; env: string; default: string; meaning: string }> {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith('Configuration\n'));
  assert.ok(section, 'README has a "## Configuration" section');
  const unquote = (cell: string): string => cell.trim().replace(/^`(.*)`$/, '$1');
  return section
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .map((line) => {
      const cells = line.split('|').slice(1, -1);
      assert.equal(cells.length, 4, `README configuration row with 4 cells: ${line}`);
      const [path, env, def, meaning] = cells as [string, string, string, string];
      return { path: unquote(path), env: unquote(env), default: unquote(def), meaning: meaning.trim() };
    });
}

describe('configuration', () => {
  it('the README table lists exactly the schema settings, with their environment variables and defaults', () => {
    const table = readmeTable();
    const schema = describeSettings();
    assert.deepEqual(
      table.map(({ path, env, default: def }) => ({ path, env, default: def })),
      schema.map(({ path, env, default: def }) => ({ path, env, default: def })),
    );
    for (const row of table) assert.notEqual(row.meaning, '', `${row.path} has a meaning in the README`);
    assert.equal(new Set(schema.map((s) => s.env)).size, schema.length, 'one environment variable per setting');
  });

  it('defaults, then the config file, then the environment', () => {
    const file = configFile({
      server: { port: 5000, host: '127.0.0.2' },
      limits: { maxRooms: 7, resumeGraceMs: 1000 },
      replication: { secret: 'file-secret-0123456789' },
      takeover: { vipInterface: 'vip-file' },
    });
    const config = load({ MCU_CONFIG: file, PORT: '4000', MCU_MAX_ROOMS: '', MCU_RESUME_GRACE_MS: '2000', MCU_VIP_INTERFACE: 'vip-env' });
    assert.equal(config.server.port, 4000, 'the environment wins over the file');
    assert.equal(config.server.host, '127.0.0.2', 'the file wins over the default');
    assert.equal(config.limits.maxRooms, 7, 'an empty variable is unset');
    assert.equal(config.limits.resumeGraceMs, 2000);
    assert.equal(config.takeover.vipInterface, 'vip-env');
    assert.equal(config.limits.maxParticipantsPerRoom, 16, 'a default');
    assert.equal(config.replication?.secret, 'file-secret-0123456789');
    assert.equal(config.replication?.port, 4001, 'replication.port defaults to the effective server.port + 1');
    assert.deepEqual([config.standby.primaryHost, config.standby.primaryPort], ['127.0.0.1', 4001]);

    // --config names the file before MCU_CONFIG does.
    const other = configFile({ limits: { maxRooms: 9 } });
    assert.equal(load({ MCU_CONFIG: file }, ['--config', other]).limits.maxRooms, 9);
    assert.equal(load({}, [`--config=${other}`]).limits.maxRooms, 9);
  });

  it('reads every existing environment variable in its own format', () => {
    const config = load({
      MCU_TAKEOVER: '1',
      MCU_SPARE_PATHS: '0',
      MCU_MEDIA_REALTIME: 'true',
      MCU_ICE_ADDRESSES: '10.0.0.1, 10.0.0.2,',
      MCU_MAIN_NICE: '-5',
      PORT: '0',
      MCU_REPLICATION_SECRET: 'env-secret-0123456789',
      MCU_PRIMARY_REPLICATION_HOST: '10.0.0.9',
      MCU_CAPTURE_INTERFACE: 'eth0',
      MCU_ROLE: 'standby',
    });
    assert.equal(config.takeover.enabled, true);
    assert.equal(config.spare.enabled, false);
    assert.deepEqual(config.realtime, { mediaRealtime: true, mainNice: -5 });
    assert.deepEqual(config.ice.addresses, ['10.0.0.1', '10.0.0.2']);
    assert.equal(config.replication?.port, 0, 'port 0 (any) gives a replication port 0 (any)');
    assert.deepEqual(config.standby, { primaryHost: '10.0.0.9', primaryPort: 0, statusPort: 0 });
    assert.equal(config.takeover.captureInterface, 'eth0');
    assert.equal(config.log.role, 'standby');
    assert.equal(load({}).replication, null, 'no secret, no replication');
  });

  it('an unknown key in the file is one line naming it', () => {
    const file = configFile({ server: { prot: 3000 }, replicaton: {} });
    assert.deepEqual(problems({ MCU_CONFIG: file }), [
      'config: server.prot: unknown setting (expected one of port, host)',
      'config: replicaton: unknown setting (expected one of server, admin, tls, limits, video, media, ice, replication, detection, takeover, spare, realtime, log, standby, witness)',
    ]);
  });

  it('a wrong type is one line naming the setting, what it expects and its environment variable', () => {
    const file = configFile({ limits: { maxRooms: 'many' }, spare: { iceAddresses: '10.0.0.1' } });
    assert.deepEqual(problems({ MCU_CONFIG: file, MCU_TAKEOVER: 'yes', PORT: '70000' }), [
      'config: server.port: expected an integer from 0 to 65535, got 70000 (PORT)',
      'config: limits.maxRooms: expected an integer from 1 to 10000, got "many" (MCU_MAX_ROOMS)',
      'config: takeover.enabled: expected true or false (1 or 0 in the environment), got "yes" (MCU_TAKEOVER)',
      'config: spare.iceAddresses: expected a list of non-empty strings (comma separated in the environment), got "10.0.0.1" (MCU_SPARE_ICE_ADDRESSES)',
    ]);
    assert.deepEqual(problems({ MCU_VIDEO_WIDTH: '641' }), ['config: video.width: expected an even number (I420 frames), got 641 (MCU_VIDEO_WIDTH)']);
  });

  it('a short or missing secret is one line, without the secret', () => {
    const lines = problems({ MCU_REPLICATION_SECRET: 'too-short' });
    assert.deepEqual(lines, ['config: replication.secret: expected at least 16 characters (MCU_REPLICATION_SECRET)']);
    assert.deepEqual(problems({}, [], { requireReplication: true }), [
      "config: replication.secret: required for a standby: the primary's secret, at least 16 characters (MCU_REPLICATION_SECRET)",
    ]);
  });

  it('a config file that cannot be used, or an unknown argument, is one line', () => {
    assert.match(problems({ MCU_CONFIG: join(dir, 'missing.json') })[0]!, /^config: cannot read the config file .*missing\.json/);
    assert.match(problems({ MCU_CONFIG: configFile('{ "server": ') })[0]!, /^config: .* is not valid JSON/);
    assert.match(problems({ MCU_CONFIG: configFile([]) })[0]!, /^config: .*: expected a JSON object of setting groups/);
    assert.deepEqual(problems({}, ['--port', '3']), ['config: unknown argument "--port": expected --config <file>']);
  });

  it('the mediasoup media plane: its listen address, and refused with a standby or takeover mode (it has no failover yet)', () => {
    assert.deepEqual(load({}).media, { plane: 'wrtc', listenIp: '127.0.0.1' }, 'wrtc by default; 0.0.0.0 listens on loopback');
    assert.deepEqual(load({ MCU_MEDIA_PLANE: 'mediasoup', HOST: '192.0.2.7' }).media, { plane: 'mediasoup', listenIp: '192.0.2.7' });
    assert.equal(load({ MCU_MEDIA_PLANE: 'mediasoup', MCU_MEDIA_LISTEN_IP: '192.0.2.8' }).media.listenIp, '192.0.2.8');
    assert.deepEqual(problems({ MCU_MEDIA_PLANE: 'sfu' }), ['config: media.plane: expected one of wrtc, mediasoup, got "sfu" (MCU_MEDIA_PLANE)']);
    const lines = problems({ MCU_MEDIA_PLANE: 'mediasoup', MCU_REPLICATION_SECRET: 'a-secret-of-sixteen', MCU_TAKEOVER: '1' });
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.match(lines[0]!, /^config: replication\.secret: the mediasoup media plane .* has no failover yet: .*unset the replication secret\) or use media\.plane wrtc \(MCU_REPLICATION_SECRET\)$/);
    assert.match(lines[1]!, /^config: takeover\.enabled: the mediasoup media plane .* use media\.plane wrtc for takeover mode \(MCU_TAKEOVER\)$/);
    // A standby of the mediasoup plane is refused the same way (it loads the primary's secret).
    assert.match(problems({ MCU_MEDIA_PLANE: 'mediasoup', MCU_REPLICATION_SECRET: 'a-secret-of-sixteen' }, [], { requireReplication: true })[0]!, /has no failover yet/);
  });

  it('redacts secrets for /status and leaves the configuration untouched', () => {
    const config = load({ MCU_REPLICATION_SECRET: 'redact-me-0123456789' });
    const shown = redactConfig(config);
    assert.equal(shown.replication?.secret, '***');
    assert.ok(!JSON.stringify(shown).includes('redact-me'));
    assert.equal(config.replication?.secret, 'redact-me-0123456789');
    assert.deepEqual({ ...shown, replication: null }, { ...config, replication: null });
  });
});

describe('configuration: the service TLS (tls.certFile, tls.keyFile)', () => {
  let a: TlsFiles;
  let b: TlsFiles;
  before(async () => {
    a = await generateSelfSignedCertificate(join(dir, 'tls-a'));
    b = await generateSelfSignedCertificate(join(dir, 'tls-b'));
  });

  it('unset: plain HTTP; both set: the absolute paths of a pair that loads', () => {
    assert.equal(load({}).tls, null, 'no certificate: plain HTTP');
    const config = load({ MCU_TLS_CERT: a.certFile, MCU_TLS_KEY: a.keyFile });
    assert.deepEqual(config.tls, { certFile: a.certFile, keyFile: a.keyFile });
    // A relative name is taken from the working directory, like every file setting.
    const relative = load({ MCU_CONFIG: configFile({ tls: { certFile: relativePath(a.certFile), keyFile: relativePath(a.keyFile) } }) });
    assert.deepEqual(relative.tls, { certFile: a.certFile, keyFile: a.keyFile });
    assert.deepEqual(redactConfig(config).tls, config.tls, 'file names are not secrets: /status shows them');
  });

  it('one without the other is one line naming the missing one', () => {
    assert.deepEqual(problems({ MCU_TLS_CERT: a.certFile }), [
      'config: tls.keyFile: set both tls.certFile (MCU_TLS_CERT) and tls.keyFile (MCU_TLS_KEY) to serve HTTPS, or neither to serve plain HTTP (MCU_TLS_KEY)',
    ]);
    assert.deepEqual(problems({ MCU_TLS_KEY: a.keyFile }), [
      'config: tls.certFile: set both tls.certFile (MCU_TLS_CERT) and tls.keyFile (MCU_TLS_KEY) to serve HTTPS, or neither to serve plain HTTP (MCU_TLS_CERT)',
    ]);
  });

  it('a missing, unreadable or wrong file is one line naming the file and what to do', () => {
    const missing = join(dir, 'no-such-cert.pem');
    assert.deepEqual(problems({ MCU_TLS_CERT: missing, MCU_TLS_KEY: a.keyFile }), [
      `config: tls.certFile: ${missing} does not exist: create it, or name an existing file (MCU_TLS_CERT)`,
    ]);
    assert.deepEqual(problems({ MCU_TLS_CERT: dir, MCU_TLS_KEY: a.keyFile }), [`config: tls.certFile: ${dir} is not a regular file: name the PEM file itself (MCU_TLS_CERT)`]);
    const notPem = join(dir, 'not-a-cert.pem');
    writeFileSync(notPem, 'hello\n');
    assert.match(problems({ MCU_TLS_CERT: notPem, MCU_TLS_KEY: a.keyFile })[0]!, /^config: tls\.certFile: .*not-a-cert\.pem holds no PEM certificate .* \(MCU_TLS_CERT\)$/);
    // The certificate where the key should be.
    assert.match(problems({ MCU_TLS_CERT: a.certFile, MCU_TLS_KEY: a.certFile })[0]!, /^config: tls\.keyFile: .*cert\.pem holds no usable private key .* \(MCU_TLS_KEY\)$/);
    const broken = join(dir, 'broken-cert.pem');
    writeFileSync(broken, '-----BEGIN CERTIFICATE-----\nMIIBroken\n-----END CERTIFICATE-----\n');
    assert.match(problems({ MCU_TLS_CERT: broken, MCU_TLS_KEY: a.keyFile })[0]!, /^config: tls\.certFile: .*broken-cert\.pem is not a valid PEM certificate/);
  });

  it('a key that is not the certificate\'s is refused, naming both files', () => {
    const lines = problems({ MCU_TLS_CERT: a.certFile, MCU_TLS_KEY: b.keyFile });
    assert.equal(lines.length, 1);
    assert.ok(lines[0]!.startsWith(`config: tls.keyFile: the key in ${b.keyFile} does not belong to the certificate in ${a.certFile}`), lines[0]);
    assert.ok(lines[0]!.endsWith('(MCU_TLS_KEY)'), lines[0]);
  });

  it('an encrypted key is refused with the command that decrypts it', () => {
    const encrypted = join(dir, 'encrypted-key.pem');
    execFileSync(OPENSSL, ['pkey', '-in', a.keyFile, '-aes256', '-passout', 'pass:secret-pass', '-out', encrypted]);
    const [line] = problems({ MCU_TLS_CERT: a.certFile, MCU_TLS_KEY: encrypted });
    assert.match(line!, /^config: tls\.keyFile: .*encrypted-key\.pem holds no usable private key .*the key is encrypted: store it without a passphrase \(openssl pkey -in /);
  });

  it('TLS with takeover mode is refused: a standby cannot continue a TLS session yet', () => {
    const [line, ...rest] = problems({ MCU_TLS_CERT: a.certFile, MCU_TLS_KEY: a.keyFile, MCU_TAKEOVER: '1' });
    assert.deepEqual(rest, []);
    assert.match(line!, /^config: tls\.certFile: TLS cannot be served in takeover mode \(takeover\.enabled, MCU_TAKEOVER=1\) yet: a standby cannot continue the TLS session/);
    assert.match(line!, /use reconnect mode \(MCU_TAKEOVER=0\) over TLS, or terminate TLS in a proxy in front/);
    // Takeover mode alone, or behind a TLS-terminating proxy (no certificate here), is fine.
    assert.equal(load({ MCU_TAKEOVER: '1' }).tls, null);
  });

  it('the credentials: the fingerprint openssl computes, the names of the host', () => {
    const credentials = readTlsCredentials(a);
    const fromOpenssl = execFileSync(OPENSSL, ['x509', '-in', a.certFile, '-noout', '-fingerprint', '-sha256'], { encoding: 'utf8' });
    assert.equal(`sha256 Fingerprint=${credentials.fingerprint256}`, fromOpenssl.trim());
    assert.notEqual(credentials.fingerprint256, readTlsCredentials(b).fingerprint256, 'each generation is a new key and certificate');
    assert.match(credentials.subjectAltName ?? '', /DNS:localhost/);
    assert.match(credentials.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
    assert.throws(() => readTlsCredentials({ certFile: a.certFile, keyFile: b.keyFile }), (err: unknown) => err instanceof TlsCredentialsError && err.code === 'TLS_CREDENTIALS_INVALID' && err.setting === 'tls.keyFile');
  });
});

function relativePath(path: string): string {
  return relative(process.cwd(), path);
}
