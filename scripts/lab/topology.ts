/**
 * The network-namespace lab for connection-takeover tests: a client, a primary
 * host, a standby host and a witness host on one LAN that floods like a hub, and
 * the faults (process kill, freeze, host crash, a cut between two hosts, VIP
 * moves, silencing). The witness host runs etcd when asked (startWitness()). It stands in for
 * hardware only: what a server host needs (the service address on a macvlan
 * with the virtual MAC, its routing and sysctls, the firewall that keeps a
 * crashed MCU silent) is installed by the MCU itself at start, inside its host
 * (mcu/src/takeover/fencing/host-setup.ts), as on a real host; tests that run
 * stand-ins instead of an MCU install the same product code with
 * installMcuHostSetup(). See scripts/lab/README.md for the layout and the
 * measured timings.
 *
 * Every name starts with a prefix unique to the instance (`mculab-<6 hex>-`), so
 * parallel labs and leftovers of crashed runs never collide; every link lives
 * inside the lab's namespaces (veth pairs are created with both ends already
 * in place), so deleting the namespaces, after killing whatever runs in them,
 * removes everything.
 */
import { spawn as spawnChild, type ChildProcess, type StdioOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { HostCommandError, HostCommands, thisHost, type HostCommandOptions, type HostCommandResult, type ResidentCommand } from '../../mcu/src/core/host-commands.ts';
import { createLogger, type Logger } from '../../mcu/src/core/logger.ts';
import { HostSetup } from '../../mcu/src/takeover/fencing/host-setup.ts';
import { FIREWALL_TABLE, GUARDED_PORTS_SET, HostFirewall, parseSetElements, SILENCED_PORTS_SET, type FirewallCounters } from '../../mcu/src/takeover/fencing/host-firewall.ts';
import { DEFAULT_VIP_ROUTE_TABLE, DEFAULT_VIRTUAL_MAC, ServiceAddress } from '../../mcu/src/takeover/fencing/vip.ts';
import { DEFAULT_CLOSE_MARK } from '../../mcu/src/takeover/transport/transport-acceptor.ts';
import { EtcdServer } from '../common/etcd.ts';
import { LabFirewallError, LabNotInLabError, LabStateError, LabUnsupportedError, LabVipError } from './errors.ts';

/** The machines of the lab. The witness host runs etcd (startWitness()), the witness that settles promotions. */
export type LabHost = 'client' | 'primary' | 'standby' | 'witness';
/** The hosts that run an MCU and may hold the VIP. */
export type ServerHost = 'primary' | 'standby';
/** Every namespace of the lab: the hosts and the LAN (the bridge's own namespace). */
export type LabNamespace = LabHost | 'lan';

export const LAB_HOSTS: readonly LabHost[] = ['client', 'primary', 'standby', 'witness'];
export const SERVER_HOSTS: readonly ServerHost[] = ['primary', 'standby'];
export const LAB_NAMESPACES: readonly LabNamespace[] = ['lan', 'client', 'primary', 'standby', 'witness'];

/** etcd's client port in the witness host. */
export const WITNESS_CLIENT_PORT = 2379;

function isServerHost(host: LabNamespace): host is ServerHost {
  return host === 'primary' || host === 'standby';
}

/** Prefix of every lab this module makes; cleanupStale() without an argument sweeps it. */
export const LAB_PREFIX_ROOT = 'mculab-';
/** The repository root (cwd of processes started with spawn()). */
export const projectRoot = fileURLToPath(new URL('../..', import.meta.url));
/** Owner records of live labs (tmpfs: gone after a reboot, like the namespaces). */
const OWNER_DIR = '/run/mculab';
const NETNS_DIR = '/run/netns';
/** nftables table (bridge family, in the lan namespace) of the cuts between two hosts. */
const CUTS_TABLE = 'mculab_faults';
const CUTS_SET = 'cuts';

/**
 * The witness host's etcd data directory: on tmpfs (an fsync there is a memory copy, as on a
 * witness with a fast disk), named after the lab so an attached instance and cleanupStale()
 * find it; removed at teardown.
 */
function witnessDataDir(prefix: string): string {
  return `/dev/shm/${prefix}etcd`;
}

/** Interface names inside the namespaces (the namespaces make them unique). */
export const LabInterface = {
  /** Each host's NIC (veth end in the host namespace). */
  nic: 'eth0',
  /** The service address's macvlan on a server host (MCU_VIP_INTERFACE: the MCU makes it). */
  vip: 'vip',
  /** The LAN bridge (in the lan namespace). */
  bridge: 'br0',
} as const;

export interface LabOptions {
  /** Prefix of every namespace name, ending in '-' (default `mculab-<6 random hex>-`). */
  prefix?: string;
  /** First three octets of the lab's private /24, used only inside the namespaces (default '10.213.0'). */
  subnet?: string;
  /** The service (signaling) port the firewall guards (default 3000). */
  servicePort?: number;
  /** SO_MARK of a deliberate close: FIN/RST of sockets carrying it pass the firewall (default: the MCU's, 0x4d43). */
  closeMark?: number;
  /** MAC of the VIP's macvlan on both server hosts, VRRP style (MCU_VIP_MAC; default 00:00:5e:00:01:01). */
  virtualMac?: string;
  /**
   * Keep an `ip -batch` and an `nft -i` process per server host so VIP and
   * silence changes cost ~1 ms instead of a process start (default true; the CLI turns it off).
   */
  residentHelpers?: boolean;
  /**
   * Nobody owns the lab after up() (the CLI's case): cleanupStale() leaves it
   * alone unless asked with includeDetached (default false: this process owns it,
   * and the lab counts as stale once this process is gone).
   */
  detached?: boolean;
  /**
   * Give the server hosts and the client host their own CPUs, as separate machines would have
   * (benchmarks): processes started with spawn() run on `servers` or `clients` (taskset lists,
   * e.g. '0' and '1'). Default: no pinning. See splitCpus().
   */
  cpus?: LabCpus;
}

/** CPU lists (taskset syntax) for the lab's server hosts and its client host. */
export interface LabCpus {
  servers: string;
  clients: string;
}

/**
 * The machine's CPUs split between server hosts (the first half) and the client host (the rest),
 * or null with fewer than 2. On the 2-core machine: the MCU processes on CPU 0, the browsers on
 * CPU 1, so three Chromium pages decoding video do not starve the promoting standby (and the
 * reverse), which one machine per side would never see.
 */
export function splitCpus(count: number = availableParallelism()): LabCpus | null {
  if (count < 2) return null;
  const half = Math.floor(count / 2);
  const list = (from: number, to: number): string => (to - from === 1 ? String(from) : `${from}-${to - 1}`);
  return { servers: list(0, half), clients: list(half, count) };
}

/** What it takes to find a running lab again (the CLI's state file). */
export interface LabDescriptor {
  prefix: string;
  subnet: string;
  servicePort: number;
  closeMark: number;
  virtualMac: string;
  createdAt: string;
}

export interface LabAddresses {
  client: string;
  primary: string;
  standby: string;
  /** The witness host (etcd on WITNESS_CLIENT_PORT once startWitness() ran). */
  witness: string;
  /** The service address, on the macvlan of whichever server host holds it. */
  vip: string;
  /** The lab's /24 in CIDR form. */
  network: string;
  prefixLength: 24;
}

export type LabState = 'new' | 'starting' | 'up' | 'stopping' | 'down' | 'closed';

export type LabTopologyEvents = {
  /** Every lifecycle transition, for traces. */
  state: [state: LabState, previous: LabState];
  /** A fault was injected (kill, crash, freeze, ...). */
  fault: [fault: LabFault];
  /** A 'state' or 'fault' listener threw; the lab itself is unaffected. */
  listenererror: [event: string, error: unknown];
};

/** How a VIP or firewall change was carried out and how long it took. */
export interface LabTiming {
  op: 'raiseVip' | 'dropVip' | 'announceVip' | 'silenceServicePort' | 'unsilenceServicePort' | 'crashHost' | 'restoreHost' | 'up' | 'down';
  host: LabNamespace | 'all';
  /** 'resident': written to a resident ip/nft process; 'spawn': a command started for it. */
  method: 'resident' | 'spawn';
  /** From the call until the kernel state was confirmed, ms. */
  ms: number;
  /** Wall-clock time the change was confirmed, epoch ms. */
  at: number;
}

export interface LabFault {
  fault: 'kill' | 'crashHost' | 'restoreHost' | 'freeze' | 'thaw' | 'cut' | 'heal';
  host: LabNamespace;
  /** cut/heal: the other end of the link cut or healed. */
  peer?: LabHost;
  pid?: number;
  /** Epoch ms at which the signal was sent or the link changed. */
  at: number;
}

export interface LabExecOptions extends Omit<HostCommandOptions, 'cwd'> {
  /** Working directory (default: the repository root). */
  cwd?: string;
}

export interface LabSpawnOptions {
  /** Default ['ignore', 'pipe', 'pipe']. */
  stdio?: StdioOptions;
  /** Default: the repository root. */
  cwd?: string;
  /** Detach (new process group; survives the caller, e.g. the CLI's MCU processes). Default false. */
  detached?: boolean;
}

/** What status() reports: the kernel's view, read fresh. */
export interface LabStatus {
  prefix: string;
  state: LabState;
  namespaces: Record<LabNamespace, { name: string; exists: boolean; pids: number[] }>;
  /** Per host: NIC up (false after crashHost), VIP interface up, silenced ports. */
  hosts: Record<LabHost, { nicUp: boolean; vipUp?: boolean; silencedPorts?: number[] }>;
  /** Which server host has its VIP interface up (both: split brain). */
  vipHolders: ServerHost[];
  /** Packets dropped by the MCU's firewall so far, per server host (null: no firewall there). */
  firewall: Record<ServerHost, FirewallCounters | null>;
  addresses: LabAddresses;
}

interface OwnerRecord {
  prefix: string;
  /** 0 when detached. */
  ownerPid: number;
  /** /proc/<pid>/stat start time of the owner, to tell a reused pid apart. */
  ownerStart: string;
  detached: boolean;
  createdAt: string;
}

export interface CleanupOptions {
  /** Also remove labs whose owner is alive (default false). */
  includeLive?: boolean;
  /** Also remove detached labs, i.e. made by the CLI (default false). */
  includeDetached?: boolean;
}

function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22, counted after the command name, which may contain spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

function ownerRecordPath(prefix: string): string {
  return `${OWNER_DIR}/${prefix.replace(/-+$/, '')}.json`;
}

function readOwnerRecord(prefix: string): OwnerRecord | null {
  try {
    return JSON.parse(readFileSync(ownerRecordPath(prefix), 'utf8')) as OwnerRecord;
  } catch {
    return null;
  }
}

function listNetns(): string[] {
  try {
    return readdirSync(NETNS_DIR);
  } catch {
    return [];
  }
}

/** Pids of the processes whose network namespace is `name` (`ip netns pids`). */
async function netnsPids(name: string): Promise<number[]> {
  const r = await thisHost.run(['ip', 'netns', 'pids', name], { check: false, timeoutMs: 10_000 });
  return r.stdout
    .split(/\s+/)
    .filter((s) => s !== '')
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function waitGone(pids: number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  // A zombie has already left its namespaces: it no longer holds one alive.
  const running = (pid: number): boolean => alive(pid) && !isZombie(pid);
  let left = pids.filter(running);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
    left = left.filter(running);
  }
  return left;
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Kills every process inside the named namespaces and deletes them; returns the errors, never throws. */
async function removeNamespaces(names: string[]): Promise<Error[]> {
  const errors: Error[] = [];
  const present = names.filter((n) => existsSync(`${NETNS_DIR}/${n}`));
  // A namespace outlives `ip netns delete` while a process is inside it (and its links with it).
  const pids = (await Promise.all(present.map(netnsPids))).flat();
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
  const stuck = await waitGone(pids, 3000);
  if (stuck.length > 0) errors.push(new LabStateError(`processes ${stuck.join(', ')} did not exit after SIGKILL`));
  for (const name of present) {
    const r = await thisHost.run(['ip', 'netns', 'delete', name], { check: false, timeoutMs: 10_000 });
    if (r.code !== 0 && existsSync(`${NETNS_DIR}/${name}`)) errors.push(new HostCommandError(['ip', 'netns', 'delete', name], r.code, r.stderr));
  }
  return errors;
}

let supportChecked: Promise<string | null> | undefined;

/** Why this machine cannot host a lab, or null when it can (root, `ip netns`, `nft`). Cached. */
export function labUnsupportedReason(): Promise<string | null> {
  supportChecked ??= (async () => {
    if (process.platform !== 'linux') return `platform is ${process.platform}, not linux`;
    if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'not root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)';
    try {
      const r = await thisHost.run(['ip', 'netns', 'list'], { check: false, timeoutMs: 5000 });
      if (r.code !== 0) return `\`ip netns list\` failed: ${r.stderr.trim()}`;
      // The MCU's firewall in the server hosts.
      await thisHost.run(['nft', '--version'], { timeoutMs: 5000 });
    } catch (err) {
      // HostToolMissingError names the package to install.
      return (err as Error).message;
    }
    return null;
  })();
  return supportChecked;
}

export class LabTopology extends EventEmitter<LabTopologyEvents> {
  /** Every name of this lab starts with it, e.g. `mculab-3fa9c2-`. */
  readonly prefix: string;
  readonly subnet: string;
  readonly servicePort: number;
  readonly closeMark: number;
  readonly virtualMac: string;
  readonly addresses: LabAddresses;
  readonly createdAt: string;
  /** CPU pinning of the hosts' processes (LabOptions.cpus), null when none. */
  readonly cpus: LabCpus | null;
  /** Every timed change, oldest first (bounded). */
  readonly timings: LabTiming[] = [];
  /** Every injected fault, oldest first (bounded). */
  readonly faults: LabFault[] = [];

  readonly #residentHelpers: boolean;
  readonly #detached: boolean;
  readonly #log: Logger;
  #state: LabState = 'new';
  readonly #children = new Set<ChildProcess>();
  readonly #ipHelpers = new Map<ServerHost, ResidentCommand>();
  readonly #nftHelpers = new Map<ServerHost, ResidentCommand>();
  /** The host tools of each namespace (one driver: mcu/src/core/host-commands.ts). */
  readonly #commands = new Map<LabNamespace, HostCommands>();
  #downPromise: Promise<void> | undefined;
  /** etcd in the witness host, once startWitness() ran. */
  #witness: EtcdServer | null = null;

  constructor(options: LabOptions = {}) {
    super();
    this.prefix = options.prefix ?? `${LAB_PREFIX_ROOT}${randomBytes(3).toString('hex')}-`;
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*-$/.test(this.prefix) || this.prefix.length > 40) {
      throw new RangeError(`lab prefix "${this.prefix}" must be a short file-name-safe string ending in "-"`);
    }
    this.subnet = options.subnet ?? '10.213.0';
    if (!/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(this.subnet)) throw new RangeError(`subnet "${this.subnet}" must be three octets, e.g. "10.213.0"`);
    this.servicePort = options.servicePort ?? 3000;
    this.closeMark = options.closeMark ?? DEFAULT_CLOSE_MARK;
    this.virtualMac = (options.virtualMac ?? DEFAULT_VIRTUAL_MAC).toLowerCase();
    this.#residentHelpers = options.residentHelpers ?? true;
    this.#detached = options.detached ?? false;
    this.cpus = options.cpus ?? null;
    if (this.cpus && ![this.cpus.servers, this.cpus.clients].every((c) => /^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(c))) {
      throw new RangeError(`cpu lists must be in taskset syntax (e.g. "0" or "0-1,3"): ${JSON.stringify(this.cpus)}`);
    }
    this.createdAt = new Date().toISOString();
    this.addresses = {
      client: `${this.subnet}.1`,
      primary: `${this.subnet}.2`,
      standby: `${this.subnet}.3`,
      witness: `${this.subnet}.4`,
      vip: `${this.subnet}.100`,
      network: `${this.subnet}.0/24`,
      prefixLength: 24,
    };
    this.#log = createLogger('lab', { lab: this.prefix });
  }

  /**
   * Re-opens a lab made by another process (the CLI's state file). The lab must
   * still exist; it is not owned by this process, and no resident helpers run.
   */
  static attach(descriptor: LabDescriptor): LabTopology {
    const lab = new LabTopology({ ...descriptor, residentHelpers: false, detached: true });
    (lab as { createdAt: string }).createdAt = descriptor.createdAt;
    const missing = LAB_NAMESPACES.filter((ns) => !existsSync(`${NETNS_DIR}/${lab.namespace(ns)}`));
    if (missing.length > 0) throw new LabStateError(`lab ${descriptor.prefix} is gone (no namespace ${missing.map((m) => lab.namespace(m)).join(', ')}): run up again`);
    // Not a transition of this lab's life, only of this handle: no state event.
    lab.#state = 'up';
    lab.#log.debug('attached');
    return lab;
  }

  /**
   * Removes leftovers of crashed runs: every lab whose name starts with `prefix`
   * and whose owner process is gone (or that has no owner record). It kills what
   * still runs inside their namespaces, then deletes the namespaces (which
   * deletes their links). Live labs of other processes (tests running in
   * parallel) and detached ones (the CLI's) stay unless asked. Returns the
   * removed labs' prefixes.
   */
  static async cleanupStale(prefix: string = LAB_PREFIX_ROOT, options: CleanupOptions = {}): Promise<string[]> {
    const byLab = new Map<string, string[]>();
    for (const name of listNetns()) {
      if (!name.startsWith(prefix)) continue;
      const m = /^(.*-)(lan|client|primary|standby|witness)$/.exec(name);
      const labPrefix = m ? m[1] : name;
      byLab.set(labPrefix, [...(byLab.get(labPrefix) ?? []), name]);
    }
    // Owner records whose namespaces are already gone are litter too.
    try {
      for (const file of readdirSync(OWNER_DIR)) {
        const labPrefix = file.replace(/\.json$/, '') + '-';
        if (labPrefix.startsWith(prefix) && !byLab.has(labPrefix)) byLab.set(labPrefix, []);
      }
    } catch {
      // no owner directory yet
    }
    const removed: string[] = [];
    const errors: Error[] = [];
    for (const [labPrefix, names] of byLab) {
      const owner = readOwnerRecord(labPrefix);
      if (owner && !options.includeLive) {
        if (owner.detached && !options.includeDetached) continue;
        if (!owner.detached && processStartTime(owner.ownerPid) === owner.ownerStart) continue;
      }
      errors.push(...(await removeNamespaces(names)));
      rmSync(ownerRecordPath(labPrefix), { force: true });
      rmSync(witnessDataDir(labPrefix), { recursive: true, force: true });
      removed.push(labPrefix);
    }
    // up() creates no link in the initial namespace; sweep any that carries the
    // prefix anyway (a manual experiment, an older version), in IFNAMSIZ form.
    const linkPrefix = prefix.slice(0, 15);
    const links = await thisHost.run(['ip', '-o', 'link', 'show'], { check: false });
    for (const line of links.stdout.split('\n')) {
      const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1];
      if (name && name.startsWith(linkPrefix)) {
        const r = await thisHost.run(['ip', 'link', 'delete', name], { check: false });
        if (r.code !== 0) errors.push(new HostCommandError(['ip', 'link', 'delete', name], r.code, r.stderr));
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, `cleanupStale(${prefix}) left something behind: ${errors.map((e) => e.message).join('; ')}`);
    return removed;
  }

  get state(): LabState {
    return this.#state;
  }

  get closed(): boolean {
    return this.#state === 'closed';
  }

  /** Full name of one of the lab's namespaces, e.g. `mculab-3fa9c2-primary`. */
  namespace(ns: LabNamespace): string {
    return `${this.prefix}${ns}`;
  }

  /** The state file's content. */
  descriptor(): LabDescriptor {
    return {
      prefix: this.prefix,
      subnet: this.subnet,
      servicePort: this.servicePort,
      closeMark: this.closeMark,
      virtualMac: this.virtualMac,
      createdAt: this.createdAt,
    };
  }

  /**
   * Creates the namespaces, the LAN and the hosts' addresses: the hardware. The
   * server hosts' VIP interface and firewall come from the MCU started in them
   * (or installMcuHostSetup()). On any failure it tears down what it made and
   * rethrows. Only from state 'new' (or 'down': a lab can be brought up again).
   */
  async up(): Promise<void> {
    if (this.#state !== 'new' && this.#state !== 'down') throw new LabStateError(`up() needs a new or down lab, this one is ${this.#state}`);
    const reason = await labUnsupportedReason();
    if (reason) throw new LabUnsupportedError(reason);
    const started = performance.now();
    this.#setState('starting');
    this.#downPromise = undefined;
    try {
      this.#writeOwnerRecord();
      for (const ns of LAB_NAMESPACES) await thisHost.run(['ip', 'netns', 'add', this.namespace(ns)]);
      await this.#configureSysctls();
      await this.#buildLan();
      await Promise.all(LAB_HOSTS.map((host) => this.#configureHost(host)));
      if (this.#residentHelpers) await this.#startHelpers();
    } catch (err) {
      this.#log.warn('up() failed, tearing down', { error: (err as Error).message });
      try {
        await this.down();
      } catch (downErr) {
        throw new AggregateError([err, downErr], `lab up failed (${(err as Error).message}) and so did the teardown (${(downErr as Error).message})`);
      }
      throw err;
    }
    this.#setState('up');
    this.#record({ op: 'up', host: 'all', method: 'spawn', ms: performance.now() - started, at: Date.now() });
  }

  /**
   * Removes everything the lab made: processes started with spawn() and any
   * other process inside its namespaces (SIGKILL, by pid), the resident
   * helpers, the namespaces (and with them every link), the owner record.
   * Idempotent, safe after a failed up() or a crash of anything; never throws
   * before having tried every step (then an AggregateError lists what is left).
   */
  async down(): Promise<void> {
    if (this.#state === 'closed' || this.#state === 'new') return;
    this.#downPromise ??= this.#teardown();
    return this.#downPromise;
  }

  /** down(), then the lab cannot be brought up again; idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    if (this.#state === 'new') {
      this.#setState('closed');
      return;
    }
    await this.down();
    this.#setState('closed');
  }

  async #teardown(): Promise<void> {
    const started = performance.now();
    this.#setState('stopping');
    for (const helper of [...this.#ipHelpers.values(), ...this.#nftHelpers.values()]) helper.close();
    this.#ipHelpers.clear();
    this.#nftHelpers.clear();
    const pids = [...this.#children].map((c) => c.pid).filter((p): p is number => p !== undefined && alive(p));
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // exited meanwhile
      }
    }
    this.#children.clear();
    const witness = this.#witness;
    this.#witness = null;
    await witness?.close();
    const errors = await removeNamespaces(LAB_NAMESPACES.map((ns) => this.namespace(ns)));
    rmSync(ownerRecordPath(this.prefix), { force: true });
    rmSync(witnessDataDir(this.prefix), { recursive: true, force: true });
    this.#setState('down');
    this.#record({ op: 'down', host: 'all', method: 'spawn', ms: performance.now() - started, at: Date.now() });
    if (errors.length > 0) {
      this.#downPromise = undefined; // let a later down() try again
      throw new AggregateError(errors, `lab ${this.prefix} teardown left something behind: ${errors.map((e) => e.message).join('; ')}`);
    }
  }

  /** The witness's client URL (etcd in the witness host; MCU_WITNESS_ENDPOINTS of labMcuEnv(..., { witness: true })). */
  get witnessEndpoint(): string {
    return `http://${this.addresses.witness}:${WITNESS_CLIENT_PORT}`;
  }

  /**
   * Starts etcd in the witness host on WITNESS_CLIENT_PORT, its data in a fresh directory
   * (tmpfs, removed at teardown), and resolves once it serves. `detached` with a `logFile`: it
   * outlives this process (the CLI); down() ends it with the namespace. Idempotent while it runs.
   */
  async startWitness(options: { detached?: boolean; logFile?: string } = {}): Promise<EtcdServer> {
    this.#assertUp('startWitness');
    if (this.#witness?.running) return this.#witness;
    const dataDir = witnessDataDir(this.prefix);
    rmSync(dataDir, { recursive: true, force: true });
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const server = await EtcdServer.start({
      host: this.addresses.witness,
      clientPort: WITNESS_CLIENT_PORT,
      peerPort: WITNESS_CLIENT_PORT + 1,
      dataDir,
      ...(options.logFile ? { logFile: options.logFile } : {}),
      spawn: (argv, stdio) => {
        // The witness stands for a machine of its own: on the lab's shared cores it must not queue
        // behind the MCUs (their main threads run at nice -20) or answer a lease read too late.
        const child = this.spawn('witness', ['nice', '-n', '-20', ...argv], {}, { stdio, detached: options.detached ?? false });
        if (options.detached) child.unref();
        return child;
      },
    });
    this.#witness = server;
    return server;
  }

  /** etcd in the witness host, null before startWitness() (or in an attached instance). */
  get witness(): EtcdServer | null {
    return this.#witness;
  }

  /** Runs a command inside a namespace (`ip netns exec`) to completion; throws HostCommandError on a non-zero exit unless check is false. */
  exec(host: LabNamespace, cmd: string[], opts: LabExecOptions = {}): Promise<HostCommandResult> {
    this.#assertUp('exec');
    return this.commands(host).run(cmd, { cwd: projectRoot, ...opts });
  }

  /** The host tools inside one of the lab's namespaces. */
  commands(host: LabNamespace): HostCommands {
    let commands = this.#commands.get(host);
    if (!commands) this.#commands.set(host, (commands = new HostCommands({ netns: this.namespace(host) })));
    return commands;
  }

  /**
   * What an MCU installs in its host at start (the VIP's macvlan, down, with its routing and
   * sysctls, and the takeover firewall), for tests that run stand-ins instead of an MCU: the
   * same product code (HostSetup), run inside the host's namespace. Idempotent.
   */
  async installMcuHostSetup(host: ServerHost): Promise<HostSetup> {
    this.#assertUp('installMcuHostSetup');
    const setup = new HostSetup(
      {
        vip: this.#vipSettings(),
        firewall: { servicePort: this.servicePort, closeMark: this.closeMark },
        captureInterface: null,
        tcpRepair: false,
      },
      { commands: this.commands(host) },
    );
    await setup.install();
    return setup;
  }

  /**
   * Starts a long-running process inside a namespace, e.g.
   * `lab.spawn('primary', [process.execPath, '--import', 'tsx', 'mcu/src/main.ts'], { HOST: lab.addresses.vip })`.
   * `ip netns exec` execs the command, so the child's pid is the process itself
   * (signals reach it directly). down() kills it.
   */
  spawn(host: LabNamespace, cmd: string[], env: Record<string, string> = {}, options: LabSpawnOptions = {}): ChildProcess {
    this.#assertUp('spawn');
    const [command, ...args] = this.commands(host).argv(this.pinned(host, cmd));
    const child = spawnChild(command!, args, {
      cwd: options.cwd ?? projectRoot,
      env: { ...process.env, ...env },
      stdio: options.stdio ?? ['ignore', 'pipe', 'pipe'],
      detached: options.detached ?? false,
    });
    if (!options.detached) {
      this.#children.add(child);
      child.once('exit', () => this.#children.delete(child));
    }
    return child;
  }

  /** `cmd` run on the host's CPUs (taskset) when the lab pins them, else unchanged. The witness shares the client host's: it is another machine than the servers. */
  pinned(host: LabNamespace, cmd: string[]): string[] {
    if (!this.cpus) return cmd;
    return ['taskset', '-c', host === 'client' || host === 'witness' ? this.cpus.clients : this.cpus.servers, ...cmd];
  }

  /** Which lab namespace a process runs in, or null when it is not one of the lab's. */
  hostOf(pid: number): LabNamespace | null {
    let target: { dev: number; ino: number };
    try {
      target = statSync(`/proc/${pid}/ns/net`);
    } catch {
      return null;
    }
    for (const ns of LAB_NAMESPACES) {
      try {
        const s = statSync(`${NETNS_DIR}/${this.namespace(ns)}`);
        if (s.ino === target.ino && s.dev === target.dev) return ns;
      } catch {
        // namespace gone
      }
    }
    return null;
  }

  // ---------------------------------------------------------------------------
  // The service address (its interface is the MCU's: these act on it, as a VRRP agent would)

  /**
   * Brings the host's VIP interface up: it answers ARP for the VIP with the
   * virtual MAC and sends a gratuitous ARP from it (arp_notify), and traffic
   * from the VIP leaves through it (policy route). The MCU's own raise lines
   * (ServiceAddress.raiseCommands), through the resident helper. Does not take
   * the VIP from the other server host: dropVip() that one first.
   */
  async raiseVip(host: ServerHost): Promise<LabTiming> {
    this.#assertUp('raiseVip');
    const vip = this.#vipOf(host);
    const { timing, shown } = await this.#ipChange('raiseVip', host, vip.raiseCommands(), [`link show dev ${vip.interface}`, `route show table ${vip.routeTable}`]);
    if (interfaceFlagUp(shown, vip.interface) !== true || !shown.includes(`dev ${vip.interface}`)) {
      throw new LabVipError(`raiseVip(${host}): the VIP interface is not up with its route afterwards (is an MCU or installMcuHostSetup() there?):\n${shown}`);
    }
    return timing;
  }

  /** Takes the host's VIP interface down: it stops answering for the VIP, and traffic from the VIP is blackholed. */
  async dropVip(host: ServerHost): Promise<LabTiming> {
    this.#assertUp('dropVip');
    const vip = this.#vipOf(host);
    const { timing, shown } = await this.#ipChange('dropVip', host, vip.dropCommands(), [`link show dev ${vip.interface}`]);
    if (interfaceFlagUp(shown, vip.interface) !== false) throw new LabVipError(`dropVip(${host}): the VIP interface is still up:\n${shown}`);
    return timing;
  }

  /** Sends another gratuitous ARP for the VIP from the virtual MAC (re-setting the MAC triggers arp_notify). No effect while the VIP is down. */
  async announceVip(host: ServerHost): Promise<LabTiming> {
    this.#assertUp('announceVip');
    const { timing } = await this.#ipChange('announceVip', host, this.#vipOf(host).announceCommands(), []);
    return timing;
  }

  /** Server hosts whose VIP interface is up right now (kernel state). */
  async vipHolders(): Promise<ServerHost[]> {
    const holders: ServerHost[] = [];
    for (const host of SERVER_HOSTS) {
      if (await this.#linkUp(host, LabInterface.vip)) holders.push(host);
    }
    return holders;
  }

  /** The VIP settings the lab gives its MCUs (labMcuEnv) and installMcuHostSetup(). */
  #vipSettings(): { address: string; interface: string; lanInterface: string; mac: string; routeTable: number; network: string } {
    return { address: this.addresses.vip, interface: LabInterface.vip, lanInterface: LabInterface.nic, mac: this.virtualMac, routeTable: DEFAULT_VIP_ROUTE_TABLE, network: this.addresses.network };
  }

  #vipOf(host: ServerHost): ServiceAddress {
    return new ServiceAddress({ ...this.#vipSettings(), commands: this.commands(host) });
  }

  // ---------------------------------------------------------------------------
  // The MCU's firewall (mcu/src/takeover/fencing/host-firewall.ts): its silence switch and counters

  /**
   * Drops every packet from the service port (or `port`) on the host at once,
   * for the retransmissions of a crashed process's orphaned sockets, which the
   * FIN/RST rule lets through. An nft set update through the resident `nft -i`
   * (~1 ms; falls back to an `nft` process, ~5 ms); resolves once the kernel
   * has the element (read back). Returns how long it took.
   */
  async silenceServicePort(host: ServerHost, port: number = this.servicePort): Promise<LabTiming> {
    this.#assertUp('silenceServicePort');
    const { timing, elements } = await this.#nftChange('silenceServicePort', host, [`add element inet ${FIREWALL_TABLE} ${SILENCED_PORTS_SET} { ${port} }`]);
    if (!elements.includes(port)) throw new LabFirewallError(`silenceServicePort(${host}): port ${port} is not in the set afterwards (${elements.join(', ')})`);
    return timing;
  }

  /** Lets traffic from the port out again. */
  async unsilenceServicePort(host: ServerHost, port: number = this.servicePort): Promise<LabTiming> {
    this.#assertUp('unsilenceServicePort');
    // add + delete: deleting an absent element is an error, this pair never is.
    const { timing, elements } = await this.#nftChange('unsilenceServicePort', host, [
      `add element inet ${FIREWALL_TABLE} ${SILENCED_PORTS_SET} { ${port} }`,
      `delete element inet ${FIREWALL_TABLE} ${SILENCED_PORTS_SET} { ${port} }`,
    ]);
    if (elements.includes(port)) throw new LabFirewallError(`unsilenceServicePort(${host}): port ${port} is still in the set afterwards`);
    return timing;
  }

  /**
   * Turns the host's orphan guard on the service port on or off (on from the MCU's install):
   * with it, the sockets of a process that died send nothing more (see the firewall rules).
   */
  async guardOrphans(host: ServerHost, on: boolean): Promise<void> {
    this.#assertUp('guardOrphans');
    const element = `{ ${this.servicePort} }`;
    // add first: deleting an absent element is an error, add + delete never is.
    await this.exec(host, ['nft', 'add', 'element', 'inet', FIREWALL_TABLE, GUARDED_PORTS_SET, element]);
    if (!on) await this.exec(host, ['nft', 'delete', 'element', 'inet', FIREWALL_TABLE, GUARDED_PORTS_SET, element]);
  }

  /** Ports currently silenced on the host. */
  async silencedPorts(host: ServerHost): Promise<number[]> {
    this.#assertUp('silencedPorts');
    return this.#firewallOf(host).silencedPorts();
  }

  /** Packets the firewall dropped so far on the host (rule counters). */
  async firewallCounters(host: ServerHost): Promise<FirewallCounters> {
    this.#assertUp('firewallCounters');
    return this.#firewallOf(host).counters();
  }

  #firewallOf(host: ServerHost): HostFirewall {
    return new HostFirewall({ servicePort: this.servicePort, closeMark: this.closeMark, commands: this.commands(host) });
  }

  // ---------------------------------------------------------------------------
  // Faults

  /** SIGKILL to a process of the primary host (refused for a pid outside it): its kernel is left with orphaned sockets. */
  killPrimaryProcess(pid: number): LabFault {
    return this.killProcess(pid, 'primary');
  }

  /** SIGKILL to a process of the lab (optionally: of that host only; refused otherwise). */
  killProcess(pid: number, expectedHost?: LabNamespace): LabFault {
    const host = this.#labPid(pid, expectedHost);
    process.kill(pid, 'SIGKILL');
    return this.#fault({ fault: 'kill', host, pid, at: Date.now() });
  }

  /** SIGSTOP: the process stops answering while its kernel still ACKs (a CPU-starved or hung primary). */
  freeze(pid: number): LabFault {
    const host = this.#labPid(pid);
    process.kill(pid, 'SIGSTOP');
    return this.#fault({ fault: 'freeze', host, pid, at: Date.now() });
  }

  /** SIGCONT after freeze(). */
  thaw(pid: number): LabFault {
    const host = this.#labPid(pid);
    process.kill(pid, 'SIGCONT');
    return this.#fault({ fault: 'thaw', host, pid, at: Date.now() });
  }

  /**
   * The host's NIC goes down (veth, host side): the whole host falls silent at
   * once, no FIN, no RST, no ARP; its processes keep running, cut off.
   */
  async crashHost(host: LabHost): Promise<LabFault> {
    this.#assertUp('crashHost');
    await this.#nicChange('crashHost', host, 'down');
    return this.#fault({ fault: 'crashHost', host, at: Date.now() });
  }

  /**
   * Cuts the link between two hosts only: the hub drops every frame between their ports (ARP
   * too), both ways, while each still reaches every other host (a partition of two, e.g. the
   * primary from its standby while both reach the clients and the witness).
   */
  async cut(host: LabHost, peer: LabHost): Promise<LabFault> {
    this.#assertUp('cut');
    await this.#cutsChange('add', host, peer);
    return this.#fault({ fault: 'cut', host, peer, at: Date.now() });
  }

  /** Undoes cut(host, peer). */
  async heal(host: LabHost, peer: LabHost): Promise<LabFault> {
    this.#assertUp('heal');
    await this.#cutsChange('heal', host, peer);
    return this.#fault({ fault: 'heal', host, peer, at: Date.now() });
  }

  async #cutsChange(op: 'add' | 'heal', host: LabHost, peer: LabHost): Promise<void> {
    if (host === peer) throw new RangeError(`cut(${host}, ${peer}): a host cannot be cut from itself`);
    const lan = this.commands('lan');
    const exists = await lan.run(['nft', 'list', 'table', 'bridge', CUTS_TABLE], { check: false });
    if (exists.code !== 0) {
      await lan.run(['nft', '-f', '-'], {
        input: `table bridge ${CUTS_TABLE} {\n  set ${CUTS_SET} { type ifname . ifname; }\n  chain forward { type filter hook forward priority 0; policy accept; iifname . oifname @${CUTS_SET} drop; }\n}\n`,
      });
    }
    const elements = `{ "p-${host}" . "p-${peer}", "p-${peer}" . "p-${host}" }`;
    // add + delete: deleting an absent element is an error, this pair never is.
    const lines = [`add element bridge ${CUTS_TABLE} ${CUTS_SET} ${elements}`];
    if (op === 'heal') lines.push(`delete element bridge ${CUTS_TABLE} ${CUTS_SET} ${elements}`);
    await lan.run(['nft', '-f', '-'], { input: lines.join('\n') + '\n' });
  }

  /** Undoes crashHost() (NIC up) and silenceServicePort() (set emptied). The VIP state is left as it was. */
  async restoreHost(host: LabHost): Promise<LabFault> {
    this.#assertUp('restoreHost');
    await this.#nicChange('restoreHost', host, 'up');
    if (isServerHost(host)) {
      // No table: no MCU firewall there (reconnect mode), nothing silenced.
      const flush = ['nft', 'flush', 'set', 'inet', FIREWALL_TABLE, SILENCED_PORTS_SET];
      const r = await this.exec(host, flush, { check: false });
      if (r.code !== 0 && !/No such file or directory/.test(r.stderr)) throw new HostCommandError(this.commands(host).argv(flush), r.code, r.stderr);
    }
    return this.#fault({ fault: 'restoreHost', host, at: Date.now() });
  }

  /**
   * GETs `url` from inside a host on a fresh connection (a short Node process: fetch with a
   * deadline) and parses the JSON, e.g. the MCU's /status through the VIP from the client
   * host. Throws HostCommandError when the request fails or times out.
   */
  async fetchJson(host: LabHost, url: string, timeoutMs = 5000): Promise<unknown> {
    const script = `fetch(${JSON.stringify(url)}, { signal: AbortSignal.timeout(${timeoutMs}) }).then(async (r) => { if (!r.ok) throw new Error('HTTP ' + r.status); process.stdout.write(await r.text()); })`;
    const { stdout } = await this.exec(host, [process.execPath, '-e', script], { timeoutMs: timeoutMs + 15_000 });
    return JSON.parse(stdout) as unknown;
  }

  /** The kernel's view of the lab, read fresh. */
  async status(): Promise<LabStatus> {
    const namespaces = {} as LabStatus['namespaces'];
    for (const ns of LAB_NAMESPACES) {
      const name = this.namespace(ns);
      const exists = existsSync(`${NETNS_DIR}/${name}`);
      namespaces[ns] = { name, exists, pids: exists ? await netnsPids(name) : [] };
    }
    const hosts = {} as LabStatus['hosts'];
    const firewall = { primary: null, standby: null } as LabStatus['firewall'];
    const vipHolders: ServerHost[] = [];
    for (const host of LAB_HOSTS) {
      if (!namespaces[host].exists) {
        hosts[host] = { nicUp: false };
        continue;
      }
      hosts[host] = { nicUp: await this.#linkUp(host, LabInterface.nic) };
      if (isServerHost(host)) {
        const vipUp = await this.#linkUp(host, LabInterface.vip);
        if (vipUp) vipHolders.push(host);
        hosts[host].vipUp = vipUp;
        hosts[host].silencedPorts = await this.silencedPorts(host).catch(() => []);
        firewall[host] = await this.firewallCounters(host).catch(() => null);
      }
    }
    return { prefix: this.prefix, state: this.#state, namespaces, hosts, vipHolders, firewall, addresses: this.addresses };
  }

  // ---------------------------------------------------------------------------
  // Building

  async #configureSysctls(): Promise<void> {
    // Before any link exists, so every new interface inherits the default (the MCU's macvlan too).
    // No IPv6 on the lab's links: no router solicitations or DAD in captures and counters (lo keeps ::1).
    await Promise.all(LAB_NAMESPACES.map((ns) => this.commands(ns).run(['sysctl', '-q', '-w', 'net.ipv6.conf.default.disable_ipv6=1'])));
  }

  async #buildLan(): Promise<void> {
    const lan = this.commands('lan');
    // ageing_time 0: no MAC is remembered, so every unicast frame is flooded to
    // every port (a hub): the standby sees the client's frames to the VIP.
    const lines = ['link set dev lo up', `link add name ${LabInterface.bridge} type bridge ageing_time 0 stp_state 0 forward_delay 0 mcast_snooping 0`];
    for (const host of LAB_HOSTS) {
      // Both ends are created in place: nothing ever appears in the initial namespace.
      lines.push(`link add name p-${host} type veth peer name ${LabInterface.nic} netns ${this.namespace(host)}`);
      lines.push(`link set dev p-${host} master ${LabInterface.bridge}`);
      lines.push(`link set dev p-${host} up`);
    }
    lines.push(`link set dev ${LabInterface.bridge} up`);
    await lan.run(['ip', '-batch', '-'], { input: lines.join('\n') + '\n' });
    // Belt and braces for the hub: no learning, flooding of unknown unicast on every port.
    const bridgeLines = LAB_HOSTS.map((host) => `link set dev p-${host} learning off flood on mcast_flood on`);
    await lan.run(['bridge', '-batch', '-'], { input: bridgeLines.join('\n') + '\n' });
  }

  async #configureHost(host: LabHost): Promise<void> {
    const { nic } = LabInterface;
    const lines = ['link set dev lo up', `address add ${this.addresses[host]}/24 dev ${nic}`, `link set dev ${nic} up`];
    await this.commands(host).run(['ip', '-batch', '-'], { input: lines.join('\n') + '\n' });
  }

  async #startHelpers(): Promise<void> {
    for (const host of SERVER_HOSTS) {
      const ip = this.commands(host).resident(['ip', '-o', '-force', '-batch', '-']);
      const nft = this.commands(host).resident(['nft', '-n', '-i']);
      ip.start();
      nft.start();
      this.#ipHelpers.set(host, ip);
      this.#nftHelpers.set(host, nft);
    }
    // One round trip each now, so the first real change does not pay for start-up and nft's cache.
    // (`describe` always answers, with or without the MCU's table.)
    await Promise.all(
      SERVER_HOSTS.flatMap((host) => [
        this.#ipHelpers.get(host)!.run({ input: 'link show dev lo\n', isComplete: (out) => /^\d+: lo: /m.test(out), timeoutMs: 10_000 }),
        this.#nftHelpers.get(host)!.run({ input: 'describe tcp dport\n', isComplete: (out) => /^payload expression/m.test(out), timeoutMs: 10_000 }),
      ]),
    );
  }

  #writeOwnerRecord(): void {
    mkdirSync(OWNER_DIR, { recursive: true });
    const record: OwnerRecord = {
      prefix: this.prefix,
      ownerPid: this.#detached ? 0 : process.pid,
      ownerStart: this.#detached ? '' : (processStartTime(process.pid) ?? ''),
      detached: this.#detached,
      createdAt: this.createdAt,
    };
    writeFileSync(ownerRecordPath(this.prefix), JSON.stringify(record) + '\n');
  }

  // ---------------------------------------------------------------------------
  // Changes, through a resident helper when there is one

  async #ipChange(op: LabTiming['op'], host: ServerHost, changes: string[], queries: string[]): Promise<{ timing: LabTiming; shown: string }> {
    const helper = this.#ipHelpers.get(host);
    if (helper && !helper.closed) {
      // `link show dev lo` always prints one line: its answer closes the operation.
      const input = [...changes, ...queries, 'link show dev lo'].join('\n') + '\n';
      const r = await helper.run({ input, isComplete: (out) => /^\d+: lo: /m.test(out) });
      if (r.stderr.trim() !== '') throw new HostCommandError(helper.argv, null, `${r.stderr.trim()} (while: ${changes.join('; ')})`);
      return { timing: this.#record({ op, host, method: 'resident', ms: r.ms, at: Date.now() }), shown: r.stdout };
    }
    const commands = this.commands(host);
    const r = await commands.run(['ip', '-batch', '-'], { input: changes.join('\n') + '\n' });
    const timing = this.#record({ op, host, method: 'spawn', ms: r.ms, at: Date.now() });
    let shown = '';
    for (const q of queries) shown += (await commands.run(['ip', '-o', ...q.split(' ')])).stdout;
    return { timing, shown };
  }

  async #nftChange(op: LabTiming['op'], host: ServerHost, changes: string[]): Promise<{ timing: LabTiming; elements: number[] }> {
    const list = `list set inet ${FIREWALL_TABLE} ${SILENCED_PORTS_SET}`;
    const helper = this.#nftHelpers.get(host);
    if (helper && !helper.closed) {
      // nft prints nothing for most changes: the set's listing closes the operation and proves the result.
      const r = await helper.run({ input: [...changes, list].join('\n') + '\n', isComplete: (out) => /^}\s*$/m.test(out) });
      if (r.stderr.trim() !== '') throw new HostCommandError(helper.argv, null, `${r.stderr.trim()} (while: ${changes.join('; ')})`);
      return { timing: this.#record({ op, host, method: 'resident', ms: r.ms, at: Date.now() }), elements: parseSetElements(r.stdout) };
    }
    const r = await this.commands(host).run(['nft', '-f', '-'], { input: changes.join('\n') + '\n' });
    const timing = this.#record({ op, host, method: 'spawn', ms: r.ms, at: Date.now() });
    return { timing, elements: await this.silencedPorts(host) };
  }

  async #nicChange(op: 'crashHost' | 'restoreHost', host: LabHost, updown: 'up' | 'down'): Promise<void> {
    const change = `link set dev ${LabInterface.nic} ${updown}`;
    const helper = isServerHost(host) ? this.#ipHelpers.get(host) : undefined;
    if (helper && !helper.closed) {
      const r = await helper.run({ input: `${change}\nlink show dev lo\n`, isComplete: (out) => /^\d+: lo: /m.test(out) });
      if (r.stderr.trim() !== '') throw new HostCommandError(helper.argv, null, r.stderr.trim());
      this.#record({ op, host, method: 'resident', ms: r.ms, at: Date.now() });
      return;
    }
    const r = await this.commands(host).run(['ip', ...change.split(' ')]);
    this.#record({ op, host, method: 'spawn', ms: r.ms, at: Date.now() });
  }

  async #linkUp(host: LabHost, ifname: string): Promise<boolean> {
    const r = await this.commands(host).run(['ip', '-o', 'link', 'show', 'dev', ifname], { check: false });
    return r.code === 0 && interfaceFlagUp(r.stdout, ifname) === true;
  }

  // ---------------------------------------------------------------------------

  #labPid(pid: number, expected?: LabNamespace): LabNamespace {
    this.#assertUp('a fault');
    const host = this.hostOf(pid);
    if (host === null || (expected !== undefined && host !== expected)) throw new LabNotInLabError(pid);
    return host;
  }

  #assertUp(what: string): void {
    if (this.#state !== 'up') throw new LabStateError(`${what} needs a lab that is up; ${this.prefix} is ${this.#state}`);
  }

  #record(timing: LabTiming): LabTiming {
    this.timings.push(timing);
    if (this.timings.length > 1000) this.timings.splice(0, this.timings.length - 500);
    this.#log.debug('timed change', { ...timing });
    return timing;
  }

  #fault(fault: LabFault): LabFault {
    this.faults.push(fault);
    if (this.faults.length > 1000) this.faults.splice(0, this.faults.length - 500);
    this.#log.info('fault injected', { ...fault });
    this.#safeEmit('fault', fault);
    return fault;
  }

  #setState(state: LabState): void {
    const previous = this.#state;
    if (previous === state) return;
    this.#state = state;
    this.#log.info(`lab ${previous} -> ${state}`);
    this.#safeEmit('state', state, previous);
  }

  #safeEmit<K extends keyof LabTopologyEvents>(event: K, ...args: LabTopologyEvents[K]): void {
    try {
      (this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args);
    } catch (error) {
      if (event === 'listenererror') return;
      (this.emit as (e: string, ...a: unknown[]) => boolean)('listenererror', event, error);
    }
  }
}

/** Whether `ip -o link show` output lists the interface with the UP flag; null when it is not listed. */
function interfaceFlagUp(output: string, ifname: string): boolean | null {
  for (const line of output.split('\n')) {
    const m = /^\d+:\s+([^:@\s]+)[^<]*<([^>]*)>/.exec(line);
    if (m && m[1] === ifname) return m[2].split(',').includes('UP');
  }
  return null;
}
