import { loadConfigOrExit } from '../../mcu/src/core/config.ts';
import { McuError } from '../../mcu/src/core/errors.ts';
import { configureLogging, createLogger } from '../../mcu/src/core/logger.ts';
import { confineRealtimeThreads } from '../../mcu/src/core/realtime.ts';
import { FENCED_EXIT_CODE } from '../../mcu/src/takeover/fencing/fencing.ts';
import { Standby } from './standby.ts';

// A standby cannot follow a primary without its secret.
const config = loadConfigOrExit({ requireReplication: true });
configureLogging(config.log);
const log = createLogger('standby-main');
// Before anything can create a libwebrtc thread (spare paths): only the heartbeat threads may be real-time.
confineRealtimeThreads(log, config.realtime);

/** One JSON line on stdout per milestone: what the supervisor and the tests wait for. */
function announce(event: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify({ ...event, pid: process.pid }) + '\n');
}

async function main(): Promise<void> {
  const standby = new Standby({
    config,
    // On one host the primary's replication address is the one this standby takes over (standby.primaryHost's default).
    primary: { host: config.standby.primaryHost, port: config.standby.primaryPort },
    statusPort: config.standby.statusPort,
  });
  standby.on('state', (state) => {
    if (state === 'ready') announce({ event: 'standby-ready', epoch: standby.store.epoch });
    // Judged the primary dead, but the witness does not answer: no promotion while it does not.
    if (state === 'waiting') announce({ event: 'standby-waiting', epoch: standby.store.epoch });
    if (state === 'failed') {
      // A standby that could not take over is of no further use: exit so the supervisor starts a fresh one.
      announce({ event: 'standby-failed' });
      setTimeout(() => process.exit(3), 50);
    }
  });
  standby.on('promoted', (timeline, mcu) => {
    const ports = { port: mcu.port, scheme: mcu.scheme, fingerprint256: mcu.tls?.credentials.fingerprint256 ?? null, adminPort: mcu.adminPort, replicationPort: mcu.replication?.address()?.port ?? null };
    announce({ event: 'promoted', timeline, ...ports, epoch: mcu.epoch });
    announce({ event: 'listening', role: mcu.role, ...ports, epoch: mcu.epoch });
    // Once promoted we are a primary that can be superseded in turn (takeover mode): see mcu/src/main.ts.
    void mcu.whenFenced().then((info) => {
      announce({ event: 'fenced', ...info });
      process.exit(FENCED_EXIT_CODE);
    });
  });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info('deliberate shutdown', { signal });
    setTimeout(() => process.exit(1), 5000).unref();
    void standby.close().finally(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Reload the certificate and key (the promoted MCU's, or the one a promotion will serve); Node's default would end the process.
  process.on('SIGHUP', () => {
    log.info('SIGHUP: reloading the TLS certificate and key');
    standby.reloadTls();
  });
  await standby.start();
  announce({ event: 'standby-started', statusPort: standby.statusPort });
}

main().catch((err: unknown) => {
  if (err instanceof McuError) log.error(err.message, { code: err.code });
  else log.error('standby failed', { error: (err as Error)?.stack ?? String(err) });
  process.exit(1);
});
