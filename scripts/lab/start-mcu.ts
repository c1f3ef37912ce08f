/**
 * The `--start-mcu` hook: the real MCU in the primary host and the real standby
 * in the standby host, configured for the lab (service on the VIP, replication
 * between the hosts' own addresses). Each sets its host up itself at start
 * (VIP interface, sysctls, and in takeover mode the firewall), as on a real host.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LabHost, LabTopology, ServerHost } from './topology.ts';

export interface LabMcuOptions {
  /** Where the processes' stdout+stderr go (`<dir>/primary.log`, `<dir>/standby.log`). */
  logDir: string;
  /** Shared replication secret (default: 32 random hex characters). */
  secret?: string;
  /** Extra environment for both processes (e.g. LOG_LEVEL). */
  env?: Record<string, string>;
  /** Connection-level takeover mode (see labMcuEnv). Default off: reconnect mode. */
  takeover?: boolean;
  /** Start etcd in the witness host first and give both processes its endpoint (see labMcuEnv). Default off: two-node mode. */
  witness?: boolean;
  /** Longest wait for each process's first milestone, ms (default 60000). */
  startTimeoutMs?: number;
}

export interface LabMcuProcesses {
  primaryPid: number;
  standbyPid: number;
  secret: string;
  primaryLog: string;
  standbyLog: string;
  /** The /status document fetched from the client host through the VIP (labStatus()). */
  status: unknown;
  /** With `witness`: etcd's pid in the witness host and its log. */
  witnessPid?: number;
  witnessLog?: string;
}

/**
 * The admin token of the lab's MCUs (MCU_ADMIN_TOKEN), derived from their replication secret so
 * that whoever started them can read /status through the VIP: the client host cannot reach a
 * server host's loopback admin listener, so the lab asks the public listener, with the token.
 */
export function labAdminToken(secret: string): string {
  return createHash('sha256').update(`lab admin token\0${secret}`).digest('base64url');
}

/** The environment of a lab client process that reads /status (scripts/clients: the `status` op). */
export function labAdminEnv(secret: string): Record<string, string> {
  return { MCU_ADMIN_TOKEN: labAdminToken(secret) };
}

/**
 * GETs `path` (/status by default) of whoever serves the VIP now, from `host` (the client host by
 * default) on a fresh connection, with the lab's admin token; parses the JSON. Throws when the
 * request fails or times out.
 */
export async function labStatus(lab: LabTopology, secret: string, options: { path?: string; host?: LabHost; timeoutMs?: number } = {}): Promise<unknown> {
  const url = `http://${lab.addresses.vip}:${lab.servicePort}${options.path ?? '/status'}`;
  const timeoutMs = options.timeoutMs ?? 5000;
  const init = `{ headers: ${JSON.stringify({ authorization: `Bearer ${labAdminToken(secret)}` })}, signal: AbortSignal.timeout(${timeoutMs}) }`;
  const script = `fetch(${JSON.stringify(url)}, ${init}).then(async (r) => { if (!r.ok) throw new Error('HTTP ' + r.status); process.stdout.write(await r.text()); })`;
  const { stdout } = await lab.exec(options.host ?? 'client', [process.execPath, '-e', script], { timeoutMs: timeoutMs + 15_000 });
  return JSON.parse(stdout) as unknown;
}

/** The epoch the lab's witness holds for cluster `lab` (null: none yet), read from `host` (etcd lives on the lab's LAN only). */
export async function labWitnessEpoch(lab: LabTopology, host: LabHost = 'client'): Promise<number | null> {
  const key = Buffer.from('/mcu/lab/epoch').toString('base64');
  const script = `fetch(${JSON.stringify(`${lab.witnessEndpoint}/v3/kv/range`)}, { method: 'POST', body: JSON.stringify({ key: ${JSON.stringify(key)} }), signal: AbortSignal.timeout(5000) }).then(async (r) => process.stdout.write(await r.text()))`;
  const { stdout } = await lab.exec(host, [process.execPath, '-e', script], { timeoutMs: 20_000 });
  const kv = (JSON.parse(stdout) as { kvs?: Array<{ value?: string }> }).kvs?.[0];
  return kv?.value ? Number(Buffer.from(kv.value, 'base64').toString('utf8')) : null;
}

/**
 * The environment of the lab's MCU processes:
 * - both: HOST=<vip> PORT=<service port> MCU_ICE_ADDRESSES=<vip> MCU_REPLICATION_SECRET,
 *   MCU_ADMIN_TOKEN=labAdminToken(secret) (/status and /metrics through the VIP: labStatus());
 * - primary: MCU_REPLICATION_HOST=<its host's address> (it accepts its standby there);
 * - standby: MCU_PRIMARY_REPLICATION_HOST=<the other host's address> (where it connects;
 *   standby/src/main.ts reads it) and MCU_REPLICATION_HOST=<its host's address>
 *   (where it accepts a new standby once promoted).
 * `role` defaults to the host's name; after a failover a standby runs in the primary host.
 * Both get MCU_VIP_INTERFACE=vip and MCU_VIP_MAC (the lab's virtual MAC): each makes the `vip`
 * macvlan on its LAN interface (eth0, the one holding its replication address) at start; the
 * primary raises it, the standby when it promotes. With `takeover`, both get MCU_TAKEOVER=1:
 * they install the firewall, and the standby captures on its LAN interface.
 * Warm spare paths are off unless `spares` (MCU_SPARE_PATHS): the lab's tests measure the media
 * restart on the same peer connection; with spares the standby offers them on its own address
 * (MCU_SPARE_ICE_ADDRESSES), the VIP not being on its host yet.
 * With `witness`, both get MCU_WITNESS_ENDPOINTS=<the witness host's etcd> and
 * MCU_WITNESS_CLUSTER=lab (lab.startWitness() first); without, they run in two-node mode.
 */
export function labMcuEnv(
  lab: LabTopology,
  host: ServerHost,
  secret: string,
  options: { takeover?: boolean; role?: 'primary' | 'standby'; spares?: boolean; witness?: boolean } = {},
): Record<string, string> {
  const role = options.role ?? host;
  const replicationPort = String(lab.servicePort + 1);
  const common = {
    HOST: lab.addresses.vip,
    PORT: String(lab.servicePort),
    MCU_ICE_ADDRESSES: lab.addresses.vip,
    MCU_REPLICATION_SECRET: secret,
    MCU_REPLICATION_PORT: replicationPort,
    // /status and /metrics through the VIP with the token (labStatus()); the admin listener stays on the host's loopback.
    MCU_ADMIN_TOKEN: labAdminToken(secret),
    MCU_ROLE: role,
    MCU_VIP_INTERFACE: 'vip',
    MCU_VIP_MAC: lab.virtualMac,
    ...(options.takeover ? { MCU_TAKEOVER: '1' } : {}),
    MCU_SPARE_PATHS: options.spares ? '1' : '0',
    ...(options.spares ? { MCU_SPARE_ICE_ADDRESSES: lab.addresses[host] } : {}),
    ...(options.witness ? { MCU_WITNESS_ENDPOINTS: lab.witnessEndpoint, MCU_WITNESS_CLUSTER: 'lab' } : {}),
  };
  if (role === 'primary') return { ...common, MCU_REPLICATION_HOST: lab.addresses[host] };
  // A standby follows the primary on the other host (after a failover the roles alternate).
  const peer: ServerHost = host === 'primary' ? 'standby' : 'primary';
  return {
    ...common,
    MCU_REPLICATION_HOST: lab.addresses[host],
    MCU_PRIMARY_REPLICATION_HOST: lab.addresses[peer],
    MCU_PRIMARY_REPLICATION_PORT: replicationPort,
    STANDBY_STATUS_PORT: '0',
  };
}

/** Polls a log file for a JSON line that passes the predicate. */
async function waitForLogLine(path: string, predicate: (e: Record<string, unknown>) => boolean, pid: number, timeoutMs: number): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = readFileSync(path, 'utf8');
    for (const line of text.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const event = JSON.parse(line) as Record<string, unknown>;
        if (predicate(event)) return event;
      } catch {
        // a log line that merely starts with a brace
      }
    }
    let running = true;
    try {
      process.kill(pid, 0);
    } catch {
      running = false;
    }
    if (!running) throw new Error(`pid ${pid} exited before its milestone; see ${path}:\n${text.split('\n').slice(-15).join('\n')}`);
    if (Date.now() > deadline) throw new Error(`no milestone within ${timeoutMs} ms; see ${path}:\n${text.split('\n').slice(-15).join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Starts `mcu/src/main.ts` in the primary host and `standby/src/main.ts` in the
 * standby host, detached (they outlive the CLI; down() kills them with the
 * namespaces), waits for the primary's `listening` and the standby's
 * `standby-started` lines, then fetches http://<vip>:<port>/status from the
 * client host (the primary raised the VIP at its start).
 */
export async function startLabMcu(lab: LabTopology, options: LabMcuOptions): Promise<LabMcuProcesses> {
  const secret = options.secret ?? randomBytes(16).toString('hex');
  const timeoutMs = options.startTimeoutMs ?? 60_000;
  const witness = options.witness ? await lab.startWitness({ detached: true, logFile: join(options.logDir, 'witness.log') }) : null;
  const start = (host: ServerHost, entry: string): { pid: number; log: string } => {
    const log = join(options.logDir, `${host}.log`);
    const fd = openSync(log, 'w');
    try {
      const child = lab.spawn(host, [process.execPath, '--import', 'tsx', entry], { ...options.env, ...labMcuEnv(lab, host, secret, { takeover: options.takeover, witness: options.witness }) }, {
        detached: true,
        stdio: ['ignore', fd, fd],
      });
      if (child.pid === undefined) throw new Error(`${entry} did not start in the ${host} host`);
      child.unref();
      return { pid: child.pid, log };
    } finally {
      closeSync(fd);
    }
  };
  const primary = start('primary', 'mcu/src/main.ts');
  await waitForLogLine(primary.log, (e) => e.event === 'listening', primary.pid, timeoutMs);
  const standby = start('standby', 'standby/src/main.ts');
  await waitForLogLine(standby.log, (e) => e.event === 'standby-started' || e.event === 'standby-ready', standby.pid, timeoutMs);
  const status = await labStatus(lab, secret);
  return {
    primaryPid: primary.pid,
    standbyPid: standby.pid,
    secret,
    primaryLog: primary.log,
    standbyLog: standby.log,
    status,
    ...(witness ? { witnessPid: witness.process.pid, witnessLog: join(options.logDir, 'witness.log') } : {}),
  };
}
