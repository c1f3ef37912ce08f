import { configFile, loadConfigOrExit } from '../../../mcu/src/core/config.ts';
import { configureLogging, createLogger } from '../../../mcu/src/core/logger.ts';
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

supervisor
  .start()
  .then(() => {
    announce({ event: 'ready', port, ...supervisor.status() });
    log.info(
      `demo ready: open http://localhost:${port}/?room=demo&name=YourName&autojoin=1 ; /status and /metrics on http://localhost:${config.admin.port}/ ; kill -9 the primary (pid ${supervisor.primary?.pid}) to see a failover`,
    );
  })
  .catch((err: unknown) => {
    log.error('demo failed to start', { error: (err as Error).message });
    void supervisor.close().finally(() => process.exit(1));
  });
