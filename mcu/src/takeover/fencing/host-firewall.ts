/**
 * The firewall that keeps a dead MCU silent (takeover mode), in an nftables table of its own on
 * the server host. A killed process's kernel would close its connections (FIN, RST to later
 * client data) and its orphaned sockets would go on retransmitting: either reaches the client
 * beside the standby that rebuilt the same connection under the same VIP and MAC, and breaks
 * it. The rules, on the output hook:
 *
 * 1. `silence`: everything from a port in `silenced_ports` is dropped (an operator's or a
 *    harness's switch; empty unless someone adds a port);
 * 2. `fin-rst`: a FIN or RST from the service port is dropped unless the socket carries the
 *    deliberate-close mark (SO_MARK, set by the MCU right before every deliberate close);
 * 3. `lease`: a socket of a living process on a guarded port sends nothing while the port is
 *    missing from the `lease` set. The set's element is permanent after install(); a primary with
 *    a standby renews it with a timeout from its heartbeat thread (KernelLease), so a primary
 *    frozen or starved long enough to be taken over has a kernel that no longer acknowledges
 *    client bytes: the new primary, which never saw them, gets them retransmitted instead of a
 *    stream stalled at a hole the client believes filled;
 * 4. the orphan guard, for the ports in `guarded_ports` (the service port): a marked socket
 *    passes (a deliberate close finishes), a socket with an owner passes (`meta skuid` matches
 *    nothing once the owning process is gone), SYN-ACKs pass (request sockets have no owner),
 *    anything else is dropped: the moment the MCU dies, its orphans fall silent by themselves.
 *
 * Every rule counts (counters()). install() replaces the table in one transaction, so running
 * it again never duplicates a rule and never leaves a moment without them.
 */
import { thisHost, type HostCommands } from '../../core/host-commands.ts';

/** The table's name (family inet): nothing else of the host's ruleset is touched. */
export const FIREWALL_TABLE = 'mcu_takeover';
/** Ports whose every packet is dropped (silence switch). */
export const SILENCED_PORTS_SET = 'silenced_ports';
/** Ports whose orphaned sockets (their process is gone) are kept silent. */
export const GUARDED_PORTS_SET = 'guarded_ports';
/** Ports whose living sockets may send (renewed with a timeout by KernelLease). */
export const LEASE_SET = 'lease';

export interface HostFirewallOptions {
  /** The service (signaling) port whose FIN/RST and orphans are silenced. */
  servicePort: number;
  /** SO_MARK of a deliberate close: its FIN/RST pass. */
  closeMark: number;
  /** Where the nft commands run (default: this process's network namespace). */
  commands?: HostCommands;
}

/** Packets the firewall dropped so far, per rule. */
export interface FirewallCounters {
  finRstDropped: number;
  silencedDropped: number;
  orphanDropped: number;
  /** Segments of a living process dropped because its lease had lapsed. */
  leaseDropped: number;
}

export class HostFirewall {
  readonly servicePort: number;
  readonly closeMark: number;
  readonly #commands: HostCommands;

  constructor(options: HostFirewallOptions) {
    this.servicePort = options.servicePort;
    this.closeMark = options.closeMark;
    this.#commands = options.commands ?? thisHost;
  }

  /** The whole table, as `nft -f` reads it. */
  ruleset(): string {
    const mark = hex(this.closeMark);
    const port = this.servicePort;
    // One statement per line: one-line rulesets with `drop; }` are a syntax error in nft 1.0.6.
    return [
      `table inet ${FIREWALL_TABLE} {`,
      `  set ${SILENCED_PORTS_SET} { type inet_service; }`,
      `  set ${GUARDED_PORTS_SET} { type inet_service; elements = { ${port} }; }`,
      `  set ${LEASE_SET} { type inet_service; flags timeout; elements = { ${port} }; }`,
      '  chain output {',
      '    type filter hook output priority filter; policy accept;',
      `    tcp sport @${SILENCED_PORTS_SET} counter drop comment "silence: everything from a silenced port (orphans' retransmissions)"`,
      `    tcp sport ${port} tcp flags & (fin | rst) != 0 meta mark != ${mark} counter drop comment "fin-rst: a crash looks like silence unless the close was deliberate (marked)"`,
      `    tcp sport @${GUARDED_PORTS_SET} meta mark == ${mark} accept comment "guard-marked: a deliberate close finishes"`,
      `    tcp sport @${GUARDED_PORTS_SET} meta skuid >= 0 tcp sport != @${LEASE_SET} counter drop comment "lease: a process whose heartbeat thread stopped may have been taken over"`,
      `    tcp sport @${GUARDED_PORTS_SET} meta skuid >= 0 accept comment "guard-owned: the socket of a living process"`,
      `    tcp sport @${GUARDED_PORTS_SET} tcp flags & (syn | ack) == syn | ack accept comment "guard-handshake: SYN-ACK of a connection being accepted"`,
      `    tcp sport @${GUARDED_PORTS_SET} counter drop comment "orphan: a socket whose process is gone stays silent"`,
      '  }',
      '}',
    ].join('\n');
  }

  /** Installs the table, replacing an earlier one (a crashed MCU's) in the same transaction. */
  async install(): Promise<void> {
    // `table` creates it when absent, so the delete never fails; then the fresh table.
    const script = `table inet ${FIREWALL_TABLE} {}\ndelete table inet ${FIREWALL_TABLE}\n${this.ruleset()}\n`;
    await this.#commands.run(['nft', '-f', '-'], { input: script, timeoutMs: 10_000 });
  }

  /** Removes the table (nothing happens when it is absent). */
  async remove(): Promise<void> {
    await this.#commands.run(['nft', '-f', '-'], { input: `table inet ${FIREWALL_TABLE} {}\ndelete table inet ${FIREWALL_TABLE}\n`, timeoutMs: 10_000 });
  }

  /** Whether the table is installed. */
  async installed(): Promise<boolean> {
    const r = await this.#commands.run(['nft', 'list', 'table', 'inet', FIREWALL_TABLE], { check: false, timeoutMs: 10_000 });
    return r.code === 0;
  }

  /** Packets each rule dropped so far. */
  async counters(): Promise<FirewallCounters> {
    const r = await this.#commands.run(['nft', '-j', 'list', 'chain', 'inet', FIREWALL_TABLE, 'output'], { timeoutMs: 10_000 });
    const out: FirewallCounters = { finRstDropped: 0, silencedDropped: 0, orphanDropped: 0, leaseDropped: 0 };
    const doc = JSON.parse(r.stdout) as { nftables: Array<{ rule?: { comment?: string; expr: Array<{ counter?: { packets: number } }> } }> };
    for (const item of doc.nftables) {
      const packets = item.rule?.expr.find((e) => e.counter)?.counter?.packets ?? 0;
      const comment = item.rule?.comment ?? '';
      if (comment.startsWith('silence')) out.silencedDropped = packets;
      else if (comment.startsWith('fin-rst')) out.finRstDropped = packets;
      else if (comment.startsWith('orphan')) out.orphanDropped = packets;
      else if (comment.startsWith('lease')) out.leaseDropped = packets;
    }
    return out;
  }

  /** Ports in the silence set now. */
  async silencedPorts(): Promise<number[]> {
    const r = await this.#commands.run(['nft', '-n', 'list', 'set', 'inet', FIREWALL_TABLE, SILENCED_PORTS_SET], { timeoutMs: 10_000 });
    return parseSetElements(r.stdout);
  }
}

/** The elements of an `nft -n list set` output. */
export function parseSetElements(listing: string): number[] {
  const m = /elements = \{([^}]*)\}/.exec(listing);
  if (!m) return [];
  return m[1]!
    .split(',')
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n));
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
