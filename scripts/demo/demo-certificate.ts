/**
 * The demo's certificate (scripts/demo.sh): made on the first run for this host's names and
 * addresses, kept in `<dir>` and reused while it still names them all. Prints where it is and its
 * SHA-256 fingerprint (the supervisor prints it again with the URLs once the demo serves).
 *
 *   node --import tsx scripts/demo/demo-certificate.ts <dir>    # writes <dir>/cert.pem, <dir>/key.pem
 */
import { ensureSelfSignedCertificate } from './self-signed-cert.ts';

const dir = process.argv[2];
if (!dir || process.argv.length > 3) {
  process.stderr.write('usage: node --import tsx scripts/demo/demo-certificate.ts <state dir>\n');
  process.exit(2);
}
const cert = await ensureSelfSignedCertificate(dir);
const names = [...cert.names.dns, ...cert.names.ips].join(', ');
process.stderr.write(
  `== demo certificate (self-signed) ${cert.generated ? `made: ${cert.reason}` : 'reused'}: ${cert.certFile}\n` +
    `   names ${names}; valid until ${cert.credentials.validTo}\n` +
    `   SHA-256 fingerprint ${cert.credentials.fingerprint256}\n`,
);
