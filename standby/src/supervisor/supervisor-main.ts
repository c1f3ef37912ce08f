import { configFile, loadConfigOrExit } from '../../../mcu/src/core/config.ts';
import { configureLogging, createLogger } from '../../../mcu/src/core/logger.ts';
import { hostNames } from '../../../mcu/src/core/host-names.ts';
import { readTlsCredentials } from '../../../mcu/src/http/tls.ts';
import { Supervisor } from './supervisor.ts';

/** The demo: a primary MCU and a hot standby on this host, re-protected after every failover. */
const config = loadConfigOrExit();
configureLogging(config.log);
const log = createLogger('supervisor-main');
const port = config.server.port;
// The children read the same config file (their environment carries the rest).
const file = configFile();
const supervisor = new Supervisor({
  port,
  host: config.server.host,
  // Without a secret of ours the supervisor makes one, and the replication port is port + 1.
  // A secret file is read by each child itself (and checked by each).
  ...(config.replication?.secretFile ? { secretFile: config.replication.secretFile } : { secret: config.replication?.secret }),
  replicationPort: config.replication?.port,
  adminPort: config.admin.port,
  env: file === null ? {} : { MCU_CONFIG: file },
  echoLogs: true,
});

const announce = (event: Record<string, unknown>): void => void process.stdout.write(JSON.stringify(event) + '\n');
supervisor.on('primary-started', (m) => announce({ event: 'primary-started', pid: m.pid }));
supervisor.on('standby-ready', (m) => announce({ event: 'standby-ready', pid: m.pid }));
supervisor.on('promoted', (m, timeline) => announce({ event: 'promoted', pid: m.pid, epoch: m.epoch, timeline }));

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  void supervisor.close().finally(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
// The primary and the standby reload their certificate and key (renewed files): no call dropped.
process.on('SIGHUP', () => void supervisor.reloadTls());

/** Where a browser opens the demo: this host's names and addresses when it listens on all of them. */
function demoUrls(): string[] {
  const scheme = config.tls ? 'https' : 'http';
  const host = config.server.host;
  const all = host === '0.0.0.0' || host === '::';
  const names = all ? (({ dns, ips }) => [...dns, ...ips])(hostNames()) : [host];
  return names.map((name) => `${scheme}://${name}:${port}/?room=demo&name=YourName&autojoin=1`);
}

/** The certificate's fingerprint a second machine compares with what its browser shows; null without TLS. */
function fingerprint(): string | null {
  if (!config.tls) return null;
  try {
    return readTlsCredentials(config.tls).fingerprint256;
  } catch (err) {
    return `(unreadable now: ${(err as Error).message})`;
  }
}

supervisor
  .start()
  .then(() => {
    const urls = demoUrls();
    const sha256 = fingerprint();
    announce({ event: 'ready', port, urls, fingerprint256: sha256, ...supervisor.status() });
    log.info(
      [
        'demo ready: open one of',
        ...urls.map((u) => `  ${u}`),
        ...(sha256 === null
          ? ['(plain HTTP: off localhost a browser gives no camera or microphone; see the README, "HTTPS")']
          : [`certificate SHA-256 fingerprint ${sha256}`, '(if it is self-signed, as the demo\'s is, the browser warns once: compare this fingerprint with the one it shows, then proceed)']),
        `/status and /metrics on http://localhost:${config.admin.port}/ (plain HTTP, loopback only); kill -9 the primary (pid ${supervisor.primary?.pid}) to see a failover; kill -HUP ${process.pid} reloads the certificate`,
      ].join('\n'),
    );
  })
  .catch((err: unknown) => {
    log.error('demo failed to start', { error: (err as Error).message });
    void supervisor.close().finally(() => process.exit(1));
  });
