/**
 * The service address (VIP) on a server host, VRRP style: a macvlan on the LAN interface with
 * the service's virtual MAC (the same on every server host, so a takeover changes no client's
 * ARP entry), carrying the VIP as a /32 and created down; only the holder brings it up.
 *
 * - Policy routing: `from VIP lookup <table>` (the table holds the LAN via the macvlan, added on
 *   every raise: the kernel flushes it when the macvlan goes down) then `from VIP blackhole`.
 *   Without it traffic from the VIP leaves through the LAN interface with the NIC's MAC, and
 *   taking the macvlan down would not stop a dead process's orphans (an address on a down
 *   interface stays local). With it, the ARP replies and the gratuitous ARP leave from the
 *   virtual MAC, and once the VIP is down its traffic is blackholed.
 * - Sysctls: `arp_ignore=1`, `arp_announce=2` (the NIC never answers or announces the VIP with
 *   its own MAC), `rp_filter=0` (client traffic arrives on the macvlan, the route back is
 *   elsewhere), `arp_notify=1` on the macvlan (the kernel sends the gratuitous ARP itself when it
 *   comes up or its MAC is re-set), `ip_nonlocal_bind=1` (a standby's listener and a repaired
 *   socket bind the VIP while it is down). remove() restores the host-wide ones as they were
 *   before the first install: they are saved in the macvlan's alias, so a restart after a crash
 *   (which leaves everything in place) does not take the MCU's values for the host's.
 */
import { thisHost, type HostCommands, type HostCommandResult } from '../../core/host-commands.ts';
import { ConfigError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { FailoverStep } from '../../wire/failover-steps.ts';

/** The VRRP virtual MAC of router id 1. */
export const DEFAULT_VIRTUAL_MAC = '00:00:5e:00:01:01';
/** Policy-routing table of the VIP's route. */
export const DEFAULT_VIP_ROUTE_TABLE = 100;
/** Priorities of the two policy rules (the blackhole one right after). */
const RULE_PRIORITY = 100;
/** Start of the macvlan's alias that holds the host's sysctl values from before the first install. */
const SAVED_SYSCTLS_ALIAS = 'mcu-saved-sysctls';

export interface ServiceAddressOptions {
  /** The VIP (IPv4). */
  address: string;
  /** Name of the macvlan carrying it (MCU_VIP_INTERFACE). */
  interface: string;
  /** The LAN interface the macvlan sits on (MCU_LAN_INTERFACE). */
  lanInterface: string;
  /** The virtual MAC (MCU_VIP_MAC, default 00:00:5e:00:01:01). */
  mac?: string;
  /** Policy-routing table of the VIP (MCU_VIP_ROUTE_TABLE, default 100). */
  routeTable?: number;
  /** The LAN's prefix (e.g. 10.0.0.0/24), default: read from the LAN interface's connected route at install. */
  network?: string;
  /** Where the commands run (default: this process's network namespace). */
  commands?: HostCommands;
}

export class ServiceAddress {
  readonly address: string;
  readonly interface: string;
  readonly lanInterface: string;
  readonly mac: string;
  readonly routeTable: number;
  readonly #commands: HostCommands;
  #network: string | null;

  constructor(options: ServiceAddressOptions) {
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(options.address) || options.address === '0.0.0.0') throw new ConfigError(`the service address (HOST) must be one IPv4 address to carry it on ${options.interface}, not "${options.address}"`);
    this.address = options.address;
    this.interface = options.interface;
    this.lanInterface = options.lanInterface;
    this.mac = (options.mac ?? DEFAULT_VIRTUAL_MAC).toLowerCase();
    if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(this.mac)) throw new ConfigError(`MCU_VIP_MAC=${options.mac} is not a MAC address (e.g. ${DEFAULT_VIRTUAL_MAC})`);
    this.routeTable = options.routeTable ?? DEFAULT_VIP_ROUTE_TABLE;
    this.#network = options.network ?? null;
    this.#commands = options.commands ?? thisHost;
  }

  /** `ip` lines that bring the VIP up: link up (gratuitous ARP by the kernel), then its route. */
  raiseCommands(): string[] {
    if (this.#network === null) throw new ConfigError(`the LAN prefix of ${this.lanInterface} is not known before install()`);
    return [`link set dev ${this.interface} up`, `route replace ${this.#network} dev ${this.interface} src ${this.address} table ${this.routeTable}`];
  }

  /** `ip` lines that take the VIP down: no ARP answer, no frame accepted for the virtual MAC, its traffic blackholed. */
  dropCommands(): string[] {
    return [`link set dev ${this.interface} down`];
  }

  /** `ip` lines that send one more gratuitous ARP (re-setting the MAC triggers arp_notify); no effect while down. */
  announceCommands(): string[] {
    return [`link set dev ${this.interface} address ${this.mac}`];
  }

  /**
   * Makes the macvlan (down) unless it exists, its address, the policy rules and the sysctls.
   * Idempotent: an interface left by a crashed MCU is kept as it is (up or down).
   */
  async install(): Promise<void> {
    if (this.#network === null) this.#network = await this.#lanNetwork();
    const link = await this.#link();
    if (link) {
      if (link.linkinfo?.info_kind !== 'macvlan' || link.link !== this.lanInterface) {
        throw new ConfigError(`interface ${this.interface} exists and is not a macvlan on ${this.lanInterface}: remove it or choose another MCU_VIP_INTERFACE`);
      }
      if (link.address !== this.mac) await this.#ip([`link set dev ${this.interface} address ${this.mac}`]);
    } else {
      await this.#ip([`link add link ${this.lanInterface} name ${this.interface} address ${this.mac} type macvlan mode bridge`]);
    }
    await this.#setSysctls(parseSavedSysctls(link?.ifalias));
    // A /32: no second connected route to the LAN. Rules deleted first so they never double.
    await this.#ip(this.#ruleLines('del'), { force: true, check: false });
    await this.#ip([`address replace ${this.address}/32 dev ${this.interface}`, ...this.#ruleLines('add')]);
  }

  /** Brings the VIP up on this host; resolves with the time it took, ms. */
  async raise(): Promise<number> {
    return (await this.#ip(this.raiseCommands(), { timeoutMs: 2000 })).ms;
  }

  /** Takes the VIP down on this host; resolves with the time it took, ms. */
  async drop(): Promise<number> {
    return (await this.#ip(this.dropCommands(), { timeoutMs: 2000 })).ms;
  }

  /** Whether the macvlan is up (false when it does not exist). */
  async isUp(): Promise<boolean> {
    const r = await this.#commands.run(['ip', '-j', 'link', 'show', 'dev', this.interface], { check: false, timeoutMs: 10_000 });
    if (r.code !== 0) return false;
    const [info] = JSON.parse(r.stdout) as Array<{ flags?: string[] }>;
    return info?.flags?.includes('UP') === true;
  }

  /** Deletes the macvlan (its address and route go with it) and the policy rules, restores the sysctls. */
  async remove(): Promise<void> {
    const saved = parseSavedSysctls((await this.#link())?.ifalias);
    await this.#ip([`link delete dev ${this.interface}`, ...this.#ruleLines('del')], { force: true, check: false });
    if (saved && saved.size > 0) await this.#commands.run(['sysctl', '-q', '-w', ...[...saved].map(([key, value]) => `${key}=${value}`)], { timeoutMs: 10_000 });
  }

  /** The macvlan as the kernel shows it, null when it does not exist. */
  async #link(): Promise<{ address?: string; link?: string; ifalias?: string; linkinfo?: { info_kind?: string } } | null> {
    const r = await this.#commands.run(['ip', '-j', '-d', 'link', 'show', 'dev', this.interface], { check: false, timeoutMs: 10_000 });
    if (r.code !== 0) return null;
    const [info] = JSON.parse(r.stdout) as Array<{ address?: string; link?: string; ifalias?: string; linkinfo?: { info_kind?: string } }>;
    return info ?? null;
  }

  #ruleLines(op: 'add' | 'del'): string[] {
    return [
      `rule ${op} from ${this.address}/32 lookup ${this.routeTable} priority ${RULE_PRIORITY}`,
      `rule ${op} from ${this.address}/32 blackhole priority ${RULE_PRIORITY + 1}`,
    ];
  }

  /**
   * The host-wide ones are saved (once: `saved` holds them after a crash) in the macvlan's alias
   * for remove(); the macvlan's own go with it.
   */
  async #setSysctls(saved: Map<string, string> | null): Promise<void> {
    const conf = (ifname: string, key: string): string => `net/ipv4/conf/${ifname}/${key}`;
    const hostWide: Array<[string, string]> = [
      [conf('all', 'arp_ignore'), '1'],
      [conf('all', 'arp_announce'), '2'],
      [conf('all', 'rp_filter'), '0'],
      [conf(this.lanInterface, 'rp_filter'), '0'],
      ['net/ipv4/ip_nonlocal_bind', '1'],
    ];
    const own: Array<[string, string]> = [
      [conf(this.interface, 'rp_filter'), '0'],
      [conf(this.interface, 'arp_notify'), '1'],
    ];
    if (!saved) {
      const current = await this.#commands.run(['sysctl', '-n', ...hostWide.map(([key]) => key)], { timeoutMs: 10_000 });
      const values = current.stdout.split('\n').map((v) => v.trim());
      const alias = [SAVED_SYSCTLS_ALIAS, ...hostWide.map(([key], i) => `${key}=${values[i]}`)].join(' ');
      await this.#commands.run(['ip', 'link', 'set', 'dev', this.interface, 'alias', alias], { timeoutMs: 10_000 });
    }
    await this.#commands.run(['sysctl', '-q', '-w', ...[...hostWide, ...own].map(([key, value]) => `${key}=${value}`)], { timeoutMs: 10_000 });
  }

  /** The LAN interface's connected prefix (its kernel route), e.g. 10.213.0.0/24. */
  async #lanNetwork(): Promise<string> {
    const r = await this.#commands.run(['ip', '-j', '-4', 'route', 'show', 'dev', this.lanInterface, 'proto', 'kernel', 'scope', 'link'], { timeoutMs: 10_000 });
    const routes = JSON.parse(r.stdout || '[]') as Array<{ dst?: string }>;
    const dst = routes.find((route) => route.dst && route.dst.includes('/'))?.dst;
    if (!dst) throw new ConfigError(`no IPv4 prefix on ${this.lanInterface} (MCU_LAN_INTERFACE): the VIP's route needs the LAN's address`);
    return dst;
  }

  #ip(lines: string[], options: { force?: boolean; check?: boolean; timeoutMs?: number } = {}): Promise<HostCommandResult> {
    return this.#commands.run(['ip', ...(options.force ? ['-force'] : []), '-batch', '-'], {
      input: lines.join('\n') + '\n',
      check: options.check ?? true,
      timeoutMs: options.timeoutMs ?? 10_000,
    });
  }
}

/** The sysctl values an alias written by install() holds, null when it holds none. */
function parseSavedSysctls(alias: string | undefined): Map<string, string> | null {
  const [head, ...entries] = (alias ?? '').split(' ');
  if (head !== SAVED_SYSCTLS_ALIAS) return null;
  const saved = new Map<string, string>();
  for (const entry of entries) {
    const m = /^([\w./-]+)=(-?\d+)$/.exec(entry);
    if (m) saved.set(m[1]!, m[2]!);
  }
  return saved;
}

/**
 * Brings the VIP up at a promotion (both modes: in takeover mode before the connections are
 * rebuilt on it, in reconnect mode before the MCU binds it), logged as a failover step. Never
 * throws: a failure is logged (the bind that follows then says what is missing).
 */
export async function raiseVipAtPromotion(vip: ServiceAddress | null, log: Logger): Promise<void> {
  if (!vip) return;
  try {
    await vip.raise();
    log.info('failover step: VIP raised', { failover: FailoverStep.VipRaised, interface: vip.interface });
  } catch (err) {
    log.error(`raising the VIP on ${vip.interface} failed: ${(err as Error).message}`);
  }
}
