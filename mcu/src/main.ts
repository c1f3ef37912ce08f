import { loadConfigOrExit } from './core/config.ts';
import { McuError } from './core/errors.ts';
import { configureLogging, createLogger } from './core/logger.ts';
import { Mcu } from './mcu.ts';
import { confineRealtimeThreads } from './core/realtime.ts';
import { PrimaryFencedError } from './takeover/errors.ts';
import { FENCED_EXIT_CODE } from './takeover/fencing/fencing.ts';

const config = loadConfigOrExit();
configureLogging(config.log);
const log = createLogger('main');
// Before anything can create a libwebrtc thread: only the heartbeat threads may be real-time.
confineRealtimeThreads(log, config.realtime);

async function main(): Promise<void> {
  const mcu = new Mcu({ config });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info('deliberate shutdown', { signal });
    const forced = setTimeout(() => process.exit(1), 5000);
    forced.unref();
    // libwebrtc threads can keep a process alive (or crash it) at exit: end it explicitly.
    void mcu.close().finally(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Reload the certificate and key: no call or connection dropped (Node's default would end the process).
  process.on('SIGHUP', () => {
    log.info('SIGHUP: reloading the TLS certificate and key');
    mcu.reloadTls();
  });
  // Another primary took over our clients: nothing of ours may reach them again, and a
  // supervisor must not start us again as a primary (distinct exit code).
  void mcu.whenFenced().then((info) => {
    const err = new PrimaryFencedError(info.reason);
    log.error(err.message, { code: err.code });
    process.stdout.write(JSON.stringify({ event: 'fenced', ...info, pid: process.pid }) + '\n');
    process.exit(FENCED_EXIT_CODE);
  });
  await mcu.start();
  // A line on stdout that scripts and tests wait for.
  process.stdout.write(
    JSON.stringify({
      event: 'listening',
      role: mcu.role,
      port: mcu.port,
      scheme: mcu.scheme,
      fingerprint256: mcu.tls?.credentials.fingerprint256 ?? null,
      adminPort: mcu.adminPort,
      replicationPort: mcu.replication?.address()?.port ?? null,
      epoch: mcu.epoch,
      pid: process.pid,
    }) + '\n',
  );
}

main().catch((err: unknown) => {
  if (err instanceof McuError) log.error(err.message, { code: err.code });
  else log.error('MCU failed to start', { error: (err as Error)?.stack ?? String(err) });
  process.exit(1);
});
