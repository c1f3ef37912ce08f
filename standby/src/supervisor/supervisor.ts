import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createLogger } from '../../../mcu/src/core/logger.ts';
import { startNode, type ManagedProcess } from '../../../mcu/src/core/child-process.ts';
import { McuError } from '../../../mcu/src/core/errors.ts';
import { FENCED_EXIT_CODE } from '../../../mcu/src/takeover/fencing/fencing.ts';

export interface SupervisorOptions {
  /** Service (HTTP + signaling) port shared by the primary and, after a takeover, the standby. */
  port: number;
  /** Replication port; default port + 1. */
  replicationPort?: number;
  host?: string;
  /** Port of the primary's admin listener (/status, /metrics); default port + 2. A promoted standby binds it too. */
  adminPort?: number;
  /** Shared replication secret; default: a random one for this run (unless secretFile). */
  secret?: string;
  /** A file holding the shared secret (replication.secretFile), read by each process itself; instead of secret. */
  secretFile?: string;
  /** Extra environment for both processes (limits, heartbeat settings, ...). */
  env?: Record<string, string>;
  /** Copy the children's logs to our stderr with a prefix (the demo does; tests don't). */
  echoLogs?: boolean;
}

export interface ManagedMcu {
  process: ManagedProcess;
  pid: number;
  role: 'primary' | 'standby';
  epoch: number;
  /** A standby's own admin listener (/status, /metrics); null for a process started as the primary. */
  statusPort: number | null;
  /** The admin listener of the MCU in this process once it serves (the primary's, or a promoted standby's). */
  adminPort: number | null;
}

export type SupervisorEvents = {
  'primary-started': [ManagedMcu];
  'standby-ready': [ManagedMcu];
  /** A standby took over: it is the primary now; the timeline is its own account. */
  promoted: [ManagedMcu, Record<string, unknown>];
  'process-exited': [{ pid: number; role: string; code: number | null; signal: NodeJS.Signals | null }];
};

/** A process was to be started after close(): a promotion or a restart racing the shutdown. */
export class SupervisorClosedError extends McuError {
  constructor(entry: string) {
    super('SUPERVISOR_CLOSED', `the supervisor is closed: ${entry} not started`);
  }
}

/**
 * Keeps a primary protected: starts the primary and a hot standby, and after every
 * promotion starts a new standby that syncs from the new primary (re-protection),
 * so a second and a third crash are survived too.
 */
export class Supervisor extends EventEmitter<SupervisorEvents> {
  readonly #opts: Required<Omit<SupervisorOptions, 'env' | 'secret' | 'secretFile'>> & { env: Record<string, string>; secret: { value: string } | { file: string } };
  readonly #log = createLogger('supervisor');
  #primary: ManagedMcu | null = null;
  #standby: ManagedMcu | null = null;
  #closed = false;
  /** Every process started and not yet exited: close() stops them all, even one still starting. */
  readonly #children = new Set<ManagedProcess>();
  #failovers = 0;

  constructor(opts: SupervisorOptions) {
    super();
    this.#opts = {
      port: opts.port,
      replicationPort: opts.replicationPort ?? opts.port + 1,
      adminPort: opts.adminPort ?? opts.port + 2,
      host: opts.host ?? '0.0.0.0',
      secret: opts.secretFile !== undefined ? { file: opts.secretFile } : { value: opts.secret ?? randomBytes(24).toString('base64url') },
      env: opts.env ?? {},
      echoLogs: opts.echoLogs ?? false,
    };
  }

  get primary(): ManagedMcu | null {
    return this.#primary;
  }

  get standby(): ManagedMcu | null {
    return this.#standby;
  }

  get failovers(): number {
    return this.#failovers;
  }

  #env(): Record<string, string> {
    return {
      PORT: String(this.#opts.port),
      HOST: this.#opts.host,
      MCU_REPLICATION_PORT: String(this.#opts.replicationPort),
      MCU_ADMIN_PORT: String(this.#opts.adminPort),
      // One of the two, the other emptied (= unset): the children must not see both.
      ...('file' in this.#opts.secret
        ? { MCU_REPLICATION_SECRET_FILE: this.#opts.secret.file, MCU_REPLICATION_SECRET: '' }
        : { MCU_REPLICATION_SECRET: this.#opts.secret.value, MCU_REPLICATION_SECRET_FILE: '' }),
      ...this.#opts.env,
    };
  }

  #spawn(entry: string, env: Record<string, string>, prefix: string): ManagedProcess {
    if (this.#closed) throw new SupervisorClosedError(entry);
    const proc = startNode(entry, env, [], { echoStderr: this.#opts.echoLogs ? prefix : undefined });
    this.#children.add(proc);
    void proc.exited.then(() => this.#children.delete(proc));
    return proc;
  }

  /** Starts the primary, then a standby; resolves when the primary is protected. */
  async start(): Promise<void> {
    await this.#startPrimary();
    await this.startStandby();
  }

  async #startPrimary(): Promise<void> {
    const proc = this.#spawn('mcu/src/main.ts', this.#env(), '[primary] ');
    const listening = await proc.waitFor((e) => e.event === 'listening');
    this.#primary = { process: proc, pid: proc.pid, role: 'primary', epoch: Number(listening.epoch ?? 1), statusPort: null, adminPort: portOf(listening.adminPort) };
    this.#watchExit(this.#primary);
    this.#log.info('primary started', { pid: proc.pid, port: listening.port });
    this.emit('primary-started', this.#primary);
  }

  /** Starts a standby syncing from the current primary; resolves when it holds a checkpoint. */
  async startStandby(): Promise<ManagedMcu> {
    const proc = this.#spawn('standby/src/main.ts', { ...this.#env(), STANDBY_STATUS_PORT: '0' }, '[standby] ');
    const started = await proc.waitFor((e) => e.event === 'standby-started');
    const standby: ManagedMcu = { process: proc, pid: proc.pid, role: 'standby', epoch: 0, statusPort: Number(started.statusPort), adminPort: null };
    this.#standby = standby;
    this.#watchExit(standby);
    void proc
      .waitFor((e) => e.event === 'promoted', { timeoutMs: 2 ** 31 - 1 })
      .then((event) => this.#onPromoted(standby, event))
      .catch(() => undefined);
    const ready = await proc.waitFor((e) => e.event === 'standby-ready', { timeoutMs: 30000 });
    standby.epoch = Number(ready.epoch ?? 0);
    this.#log.info('standby ready: primary protected', { pid: proc.pid });
    this.emit('standby-ready', standby);
    return standby;
  }

  #onPromoted(standby: ManagedMcu, event: Record<string, unknown>): void {
    if (this.#closed) return;
    this.#failovers++;
    standby.role = 'primary';
    standby.epoch = Number(event.epoch);
    standby.adminPort = portOf(event.adminPort);
    this.#primary = standby;
    if (this.#standby === standby) this.#standby = null;
    this.#log.info('standby promoted: starting a new standby', { pid: standby.pid, epoch: standby.epoch, failovers: this.#failovers });
    this.emit('promoted', standby, (event.timeline ?? {}) as Record<string, unknown>);
    void this.startStandby().catch((err: unknown) => this.#log.error('new standby failed to start', { error: (err as Error).message }));
  }

  #watchExit(mcu: ManagedMcu): void {
    void mcu.process.exited.then(({ code, signal }) => {
      this.#log.info('MCU process exited', { pid: mcu.pid, role: mcu.role, code, signal });
      this.emit('process-exited', { pid: mcu.pid, role: mcu.role, code, signal });
      if (this.#closed) return;
      if (code === FENCED_EXIT_CODE) {
        // A primary that fenced itself: another one serves its clients. Never start it again as a primary.
        this.#log.warn('MCU fenced itself (another primary took over): not restarted', { pid: mcu.pid, role: mcu.role });
        if (this.#primary === mcu) this.#primary = null;
        return;
      }
      if (mcu.role === 'primary' && this.#primary === mcu) {
        // The standby normally takes over within tens of milliseconds. If none does (no standby
        // was ready), start a fresh primary: the calls are lost, the service is not.
        setTimeout(() => {
          if (this.#closed || this.#primary !== mcu) return;
          this.#log.error('primary died and no standby took over: starting a fresh primary');
          void this.#startPrimary()
            .then(() => (this.#standby === null ? this.startStandby() : undefined))
            .catch((err: unknown) => this.#log.error('fresh primary failed to start', { error: (err as Error).message }));
        }, 10000).unref();
      }
      if (mcu.role === 'standby' && this.#standby === mcu) {
        // A standby that died (not promoted): the primary is unprotected until a new one syncs.
        this.#standby = null;
        setTimeout(() => {
          if (!this.#closed && this.#standby === null) void this.startStandby().catch(() => undefined);
        }, 200).unref();
      }
    });
  }

  /**
   * SIGHUP to the primary and the standby: each reloads the certificate and key (tls.certFile,
   * tls.keyFile) without dropping a connection, and keeps its pair when the new one does not load.
   * Returns the pids signalled.
   */
  reloadTls(): number[] {
    const signalled: number[] = [];
    for (const proc of this.#children) {
      if (proc.running && proc.child.kill('SIGHUP')) signalled.push(proc.pid);
    }
    this.#log.info('SIGHUP sent: the MCU processes reload their TLS certificate and key', { pids: signalled });
    return signalled;
  }

  status(): Record<string, unknown> {
    return {
      primary: this.#primary && { pid: this.#primary.pid, epoch: this.#primary.epoch },
      standby: this.#standby && { pid: this.#standby.pid, statusPort: this.#standby.statusPort },
      failovers: this.#failovers,
      port: this.#opts.port,
      adminPort: this.#opts.adminPort,
    };
  }

  /** Where the primary's /status and /metrics are with admin.host on loopback (the default): its admin listener, which a promoted standby takes over. */
  get adminUrl(): string {
    return `http://127.0.0.1:${this.#opts.adminPort}`;
  }

  /** Stops everything deliberately (standby first, so it never mistakes this for a crash). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // SIGTERM, then SIGKILL after 5 s.
    const stop = (proc: ManagedProcess): Promise<unknown> => proc.close();
    // Standbys first (also one still starting), so none mistakes the primary's stop for a crash.
    const primary = this.#primary?.process;
    await Promise.all([...this.#children].filter((p) => p !== primary).map(stop));
    if (primary) await stop(primary);
    await Promise.all([...this.#children].map(stop));
  }
}

function portOf(value: unknown): number | null {
  return typeof value === 'number' && value > 0 ? value : null;
}
