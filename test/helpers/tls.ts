/** A self-signed certificate for the tests' MCUs over HTTPS/WSS (the demo's generator, scripts/demo/self-signed-cert.ts). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TlsCredentials, TlsFiles } from '../../mcu/src/http/tls.ts';
import { generateSelfSignedCertificate } from '../../scripts/demo/self-signed-cert.ts';

export interface TestCertificate extends TlsFiles {
  credentials: TlsCredentials;
  /** MCU_TLS_CERT and MCU_TLS_KEY for an MCU, standby or supervisor. */
  env: { MCU_TLS_CERT: string; MCU_TLS_KEY: string };
}

let dir: string | null = null;

/** A new certificate and key for this host in a directory of the test process's own, removed when it exits. */
export async function makeTestCertificate(name = 'cert'): Promise<TestCertificate> {
  if (dir === null) {
    const made = mkdtempSync(join(tmpdir(), 'mcu-test-tls-'));
    dir = made;
    process.once('exit', () => rmSync(made, { recursive: true, force: true }));
  }
  const files = await generateSelfSignedCertificate(join(dir, name));
  return { ...files, env: { MCU_TLS_CERT: files.certFile, MCU_TLS_KEY: files.keyFile } };
}
