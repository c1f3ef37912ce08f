/**
 * What a server host needs for failover, installed by the MCU itself at start (the primary, and
 * a standby before any promotion) and removed on a deliberate stop:
 *
 * - takeover mode: the firewall that keeps a dead MCU silent (host-firewall.ts), the capture
 *   interface checked, TCP_REPAIR checked;
 * - a VIP interface configured (MCU_VIP_INTERFACE): the service address's macvlan with the
 *   virtual MAC, its policy routing and the ARP sysctls (vip.ts).
 *
 * A pre-flight check first says what is missing, with a named error: CAP_NET_ADMIN, a tool
 * (`ip`, `nft`, `sysctl`), an interface, TCP_REPAIR. install() is idempotent (a crashed MCU's
 * table is replaced, its macvlan reused); after a crash (SIGKILL) nothing is removed: that is
 * what keeps a dead primary silent.
 */
import { readFileSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { nativeAddonAvailable, RepairMode, setRepair, socketFd } from '../../../../native/src/index.ts';
import type { McuConfig } from '../../core/config.ts';
import { ConfigError, McuError } from '../../core/errors.ts';
import { thisHost, type HostCommands } from '../../core/host-commands.ts';
import { createLogger, type Logger } from '../../core/logger.ts';
import { DEFAULT_CLOSE_MARK } from '../transport/transport-acceptor.ts';
import { interfaceOf } from './fencing.ts';
import { HostFirewall } from './host-firewall.ts';
import { DEFAULT_VIP_ROUTE_TABLE, ServiceAddress, type ServiceAddressOptions } from './vip.ts';

/** CAP_NET_ADMIN's bit in the capability sets of /proc/<pid>/status. */
const CAP_NET_ADMIN = 12;

/** This process may not change the host's network (not root, or CAP_NET_ADMIN dropped). */
export class HostPrivilegeError extends McuError {
  constructor(detail: string) {
    super('HOST_NOT_PRIVILEGED', `the host setup needs CAP_NET_ADMIN (${detail}): run the MCU as root or grant it CAP_NET_ADMIN (systemd: AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW)`);
  }
}

/** An interface the settings name does not exist on this host. */
export class HostInterfaceMissingError extends McuError {
  constructor(ifname: string, setting: string) {
    super('HOST_INTERFACE_MISSING', `interface ${ifname} (${setting}) does not exist on this host: set ${setting} to the LAN interface (see \`ip link\`)`);
  }
}

/** Connection takeover cannot rebuild connections here: no native addon, or TCP_REPAIR refused. */
export class TcpRepairUnavailableError extends McuError {
  constructor(detail: string) {
    super('HOST_TCP_REPAIR_UNAVAILABLE', `TCP_REPAIR is unavailable (${detail}): takeover mode (MCU_TAKEOVER=1) needs the native addon (bash scripts/build-native.sh) and CAP_NET_ADMIN`);
  }
}

export interface HostSetupSettings {
  /** The service address's macvlan, policy routing and sysctls; null: not this MCU's business (no MCU_VIP_INTERFACE). */
  vip: Omit<ServiceAddressOptions, 'commands'> | null;
  /** The firewall keeping a dead MCU silent (takeover mode); null: none. */
  firewall: { servicePort: number; closeMark: number } | null;
  /** The interface a standby captures the clients' segments on (takeover mode), checked at start; null: none. */
  captureInterface: string | null;
  /** Check that TCP_REPAIR works (takeover mode: whichever host runs the standby rebuilds connections). */
  tcpRepair: boolean;
}

/**
 * The host setup an MCU with this configuration needs. Environment: MCU_VIP_INTERFACE (the
 * VIP's macvlan; unset: no VIP setup), MCU_VIP_MAC, MCU_VIP_ROUTE_TABLE, MCU_LAN_INTERFACE (the
 * macvlan's parent; default the interface holding MCU_REPLICATION_HOST), MCU_CAPTURE_INTERFACE
 * (default the LAN interface).
 */
export function hostSetupSettings(config: McuConfig): HostSetupSettings {
  const { takeover, server } = config;
  const lanInterface = takeover.lanInterface ?? (config.replication ? interfaceOf(config.replication.host) : null);
  let vip: HostSetupSettings['vip'] = null;
  if (takeover.vipInterface) {
    if (!lanInterface) throw new ConfigError(`config: takeover.vipInterface (${takeover.vipInterface}) needs the LAN interface to put it on: set takeover.lanInterface (MCU_LAN_INTERFACE)`);
    vip = { address: server.host, interface: takeover.vipInterface, lanInterface, routeTable: takeover.vipRouteTable, ...(takeover.vipMac ? { mac: takeover.vipMac } : {}) };
  }
  if (takeover.enabled && server.port === 0) throw new ConfigError('config: server.port: takeover mode (MCU_TAKEOVER=1) needs a fixed port: the host firewall guards it (PORT)');
  return {
    vip,
    firewall: takeover.enabled ? { servicePort: server.port, closeMark: DEFAULT_CLOSE_MARK } : null,
    captureInterface: takeover.enabled ? takeover.captureInterface ?? lanInterface : null,
    tcpRepair: takeover.enabled,
  };
}

export type HostSetupState = 'new' | 'installing' | 'installed' | 'failed' | 'closed';

/**
 * The host's network setup of one MCU process. install() at start, close() on a deliberate stop
 * (idempotent); with nothing configured both do nothing.
 */
export class HostSetup {
  readonly settings: HostSetupSettings;
  /** The VIP on this host (raise, drop), null without MCU_VIP_INTERFACE. */
  readonly vip: ServiceAddress | null;
  readonly firewall: HostFirewall | null;
  readonly #commands: HostCommands;
  readonly #log: Logger = createLogger('host-setup');
  #state: HostSetupState = 'new';
  #installing: Promise<void> | null = null;
  #closing: Promise<void> | null = null;

  constructor(settings: HostSetupSettings, options: { commands?: HostCommands } = {}) {
    this.settings = settings;
    this.#commands = options.commands ?? thisHost;
    this.vip = settings.vip ? new ServiceAddress({ ...settings.vip, commands: this.#commands }) : null;
    this.firewall = settings.firewall ? new HostFirewall({ ...settings.firewall, commands: this.#commands }) : null;
  }

  get state(): HostSetupState {
    return this.#state;
  }

  /** Whether there is anything to install. */
  get enabled(): boolean {
    return this.vip !== null || this.firewall !== null || this.settings.captureInterface !== null || this.settings.tcpRepair;
  }

  /** Pre-flight check, then the firewall and the VIP's interface (left down when made). Throws a named McuError. */
  install(): Promise<void> {
    if (this.#state === 'closed') return Promise.reject(new McuError('INTERNAL', 'host setup already closed'));
    this.#installing ??= this.#install();
    return this.#installing;
  }

  /** Removes the firewall table and the VIP's interface, rules and sysctls; idempotent, never throws (logs). */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #install(): Promise<void> {
    if (!this.enabled) {
      this.#state = 'installed';
      return;
    }
    this.#state = 'installing';
    const started = performance.now();
    try {
      await checkHostPrerequisites(this.settings, this.#commands);
      await this.firewall?.install();
      await this.vip?.install();
    } catch (err) {
      this.#state = 'failed';
      throw err;
    }
    this.#state = 'installed';
    this.#log.info('host set up', {
      firewall: this.firewall ? `inet table, service port ${this.firewall.servicePort}` : null,
      vip: this.vip ? `${this.vip.address} on ${this.vip.interface} (${this.vip.mac}) over ${this.vip.lanInterface}` : null,
      captureInterface: this.settings.captureInterface,
      ms: Math.round(performance.now() - started),
    });
  }

  async #close(): Promise<void> {
    const installed = this.#state !== 'new';
    this.#state = 'closed';
    // An install may still run (a stop during start): remove what it made once it is done.
    await this.#installing?.catch(() => undefined);
    if (!installed || !this.enabled) return;
    for (const [what, remove] of [
      ['VIP', () => this.vip?.remove()],
      ['firewall', () => this.firewall?.remove()],
    ] as const) {
      try {
        await remove();
      } catch (err) {
        this.#log.error(`could not remove the ${what} setup: ${(err as Error).message}`);
      }
    }
    this.#log.info('host setup removed');
  }
}

/** Throws the named error of the first thing the settings need that this host lacks. */
export async function checkHostPrerequisites(settings: HostSetupSettings, commands: HostCommands = thisHost): Promise<void> {
  if (process.platform !== 'linux') throw new HostPrivilegeError(`the platform is ${process.platform}: host setup runs on Linux`);
  const caps = effectiveCapabilities();
  if (caps !== null && (caps & (1n << BigInt(CAP_NET_ADMIN))) === 0n) {
    throw new HostPrivilegeError(typeof process.getuid === 'function' && process.getuid() === 0 ? 'root, but CAP_NET_ADMIN is not in the effective set' : `uid ${process.getuid?.()}`);
  }
  // Each throws HostToolMissingError when the tool is not installed.
  await commands.run(['ip', '-V'], { timeoutMs: 10_000 });
  if (settings.firewall) await commands.run(['nft', '--version'], { timeoutMs: 10_000 });
  if (settings.vip) await commands.run(['sysctl', '-n', 'kernel.ostype'], { timeoutMs: 10_000 });
  const interfaces: Array<[string, string]> = [];
  if (settings.vip) interfaces.push([settings.vip.lanInterface, 'MCU_LAN_INTERFACE']);
  if (settings.captureInterface) interfaces.push([settings.captureInterface, 'MCU_CAPTURE_INTERFACE']);
  for (const [ifname, setting] of interfaces) {
    const r = await commands.run(['ip', '-o', 'link', 'show', 'dev', ifname], { check: false, timeoutMs: 10_000 });
    if (r.code !== 0) throw new HostInterfaceMissingError(ifname, setting);
  }
  if (settings.tcpRepair) await checkTcpRepair();
}

/** The effective capability set of this process, null when the kernel does not say. */
export function effectiveCapabilities(): bigint | null {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? BigInt(`0x${m[1]}`) : null;
  } catch {
    return null;
  }
}

/** Puts one end of a loopback connection into repair mode and out again: the addon and the privilege, proven. */
async function checkTcpRepair(): Promise<void> {
  if (!nativeAddonAvailable()) throw new TcpRepairUnavailableError('the native addon is not built');
  const accepted: Socket[] = [];
  const server = createServer((socket) => accepted.push(socket));
  let client: Socket | null = null;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = server.address() as { port: number };
    const socket = connect({ host: '127.0.0.1', port });
    client = socket;
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.once('connect', () => resolve());
    });
    const fd = socketFd(socket);
    setRepair(fd, RepairMode.ON);
    setRepair(fd, RepairMode.OFF_NO_WINDOW_PROBE);
  } catch (err) {
    throw new TcpRepairUnavailableError((err as Error).message);
  } finally {
    client?.destroy();
    for (const socket of accepted) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
