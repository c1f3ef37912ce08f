/**
 * A self-signed certificate for this host (its name, localhost, 127.0.0.1 and its non-loopback
 * IPv4 addresses as subjectAltNames), made with /usr/bin/openssl: the demo's (kept in a state
 * directory and reused) and the tests'. Browsers warn once for it; the fingerprint printed with
 * the URLs lets a second machine check it is this one.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ManagedProcess } from '../../mcu/src/core/child-process.ts';
import { hostNames, type HostNames } from '../../mcu/src/core/host-names.ts';
import { readTlsCredentials, type TlsCredentials, type TlsFiles } from '../../mcu/src/http/tls.ts';

export const OPENSSL = process.env.OPENSSL ?? '/usr/bin/openssl';

/** Days a generated certificate is valid. */
const VALID_DAYS = 365;
/** A kept certificate this close to its end is made again, ms. */
const RENEW_BEFORE_MS = 7 * 24 * 3600 * 1000;

export interface SelfSignedCertificate extends TlsFiles {
  credentials: TlsCredentials;
  names: HostNames;
  /** Made now (and why), or a kept one reused. */
  generated: boolean;
  reason: string;
}

/**
 * Makes a new self-signed certificate and key (ECDSA P-256) for `names` as `cert.pem` and
 * `key.pem` in `dir` (created; the key readable by its owner only), replacing what is there.
 * The files appear together: both are written aside, then renamed in.
 */
export async function generateSelfSignedCertificate(dir: string, names: HostNames = hostNames()): Promise<TlsFiles & { credentials: TlsCredentials }> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const work = mkdtempSync(join(dir, '.new-'));
  try {
    const san = [...names.dns.map((n) => `DNS:${n}`), ...names.ips.map((ip) => `IP:${ip}`)].join(',');
    const proc = ManagedProcess.spawn(OPENSSL, [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', join(work, 'key.pem'), '-out', join(work, 'cert.pem'), '-days', String(VALID_DAYS),
      '-subj', `/CN=${names.dns[0] ?? 'localhost'}/O=hot-standby-mcu demo`,
      '-addext', `subjectAltName=${san}`,
      '-addext', 'basicConstraints=critical,CA:FALSE',
      '-addext', 'keyUsage=critical,digitalSignature',
      '-addext', 'extendedKeyUsage=serverAuth',
    ]);
    const exit = await proc.exited;
    if (exit.code !== 0) throw new Error(`${OPENSSL} req failed (code ${exit.code}, signal ${exit.signal}): ${proc.stderrTail}`);
    chmodSync(join(work, 'key.pem'), 0o600);
    const files = { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') };
    // Key first: a reader seeing the new certificate finds its key (a SIGHUP between is refused, not served wrong).
    renameSync(join(work, 'key.pem'), files.keyFile);
    renameSync(join(work, 'cert.pem'), files.certFile);
    return { ...files, credentials: readTlsCredentials(files) };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * The demo's certificate in `dir`: the one kept there when it loads, names every current name
 * and address of this host and is not about to expire; else a new one.
 */
export async function ensureSelfSignedCertificate(dir: string, names: HostNames = hostNames()): Promise<SelfSignedCertificate> {
  const files = { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') };
  let reason = 'none kept yet';
  if (existsSync(files.certFile) || existsSync(files.keyFile)) {
    try {
      const credentials = readTlsCredentials(files);
      const missing = missingNames(credentials, names);
      if (missing.length > 0) reason = `the kept one does not name ${missing.join(', ')}`;
      else if (Date.parse(credentials.validTo) - Date.now() < RENEW_BEFORE_MS) reason = `the kept one expires ${credentials.validTo}`;
      else return { ...files, credentials, names, generated: false, reason: 'reused the kept one' };
    } catch (err) {
      reason = `the kept one does not load: ${(err as Error).message}`;
    }
  }
  const made = await generateSelfSignedCertificate(dir, names);
  return { ...made, names, generated: true, reason };
}

/** The names and addresses the certificate lacks. */
function missingNames(credentials: TlsCredentials, names: HostNames): string[] {
  const san = new Set((credentials.subjectAltName ?? '').split(/,\s*/));
  return [...names.dns.filter((n) => !san.has(`DNS:${n}`)), ...names.ips.filter((ip) => !san.has(`IP Address:${ip}`))];
}
