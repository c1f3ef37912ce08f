/**
 * The MCU sets its host up itself (mcu/src/takeover/fencing/host-setup.ts), checked with the real
 * processes (mcu/src/main.ts, standby/src/main.ts) inside a lab host, never on this machine's own
 * network: at start the takeover firewall (its own nftables table), the VIP's macvlan with the
 * virtual MAC, its policy routing and the ARP sysctls; a restart after a crash (SIGKILL leaves
 * everything in place: that keeps a dead primary silent) replaces them without duplicating
 * anything; a deliberate stop (SIGTERM) removes them and restores the sysctls; a standby sets up
 * the same with the VIP down. A host without `nft`, or a process without CAP_NET_ADMIN, gets a
 * named error before anything is changed.
 *
 * Needs root, iproute2, nftables and the native addon (TCP_REPAIR check); skipped otherwise.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { thisHost } from '../../mcu/src/core/host-commands.ts';
import { FIREWALL_TABLE } from '../../mcu/src/takeover/fencing/host-firewall.ts';
import { LabProcess, LabProcessGroup } from '../../scripts/lab/lab-process.ts';
import { labMcuEnv, labStatus } from '../../scripts/lab/start-mcu.ts';
import { takeoverLabUnsupportedReason } from '../../scripts/lab/takeover-support.ts';
import { LabTopology, type ServerHost } from '../../scripts/lab/topology.ts';

const skipReason = await takeoverLabUnsupportedReason();

/** The sysctls the VIP setup changes (the macvlan's own go with it). */
const SYSCTLS = ['net.ipv4.conf.all.arp_ignore', 'net.ipv4.conf.all.arp_announce', 'net.ipv4.conf.all.rp_filter', 'net.ipv4.conf.eth0.rp_filter', 'net.ipv4.ip_nonlocal_bind'];

/** What the kernel of a lab host holds of the MCU's host setup. */
interface HostView {
  /** Every nftables table of the host, `family name`. */
  tables: string[];
  /** The MCU table's rules (their comments, in order) and sets (name: elements). */
  rules: string[];
  sets: Record<string, number[]>;
  vip: { up: boolean; mac: string; kind: string; parent: string; addresses: string[]; arpNotify: string } | null;
  /** Policy rules from the VIP: `priority table-or-action`. */
  policyRules: string[];
  sysctls: Record<string, string>;
}

describe('the MCU sets up its host at start, idempotently, and removes it on a deliberate stop (in a lab host)', { skip: skipReason ?? false }, () => {
  let lab: LabTopology;
  let group: LabProcessGroup;
  const secret = `host-setup-test-secret-${process.pid}`;

  async function view(host: ServerHost): Promise<HostView> {
    const run = async (cmd: string[]): Promise<string> => (await lab.exec(host, cmd)).stdout;
    const tables = (JSON.parse(await run(['nft', '-j', 'list', 'tables'])) as { nftables: Array<{ table?: { family: string; name: string } }> }).nftables
      .flatMap((i) => (i.table ? [`${i.table.family} ${i.table.name}`] : []))
      .sort();
    const rules: string[] = [];
    const sets: Record<string, number[]> = {};
    if (tables.includes(`inet ${FIREWALL_TABLE}`)) {
      const doc = JSON.parse(await run(['nft', '-j', 'list', 'table', 'inet', FIREWALL_TABLE])) as {
        nftables: Array<{ rule?: { comment?: string }; set?: { name: string; elem?: Array<number | { elem: { val: number } }> } }>;
      };
      for (const item of doc.nftables) {
        if (item.rule) rules.push(item.rule.comment ?? '(no comment)');
        // An element with a timeout (the kernel lease, once renewed) is an object.
        if (item.set) sets[item.set.name] = (item.set.elem ?? []).map((e) => (typeof e === 'number' ? e : e.elem.val));
      }
    }
    let vip: HostView['vip'] = null;
    const link = await lab.exec(host, ['ip', '-j', '-d', 'link', 'show', 'dev', 'vip'], { check: false });
    if (link.code === 0) {
      const [l] = JSON.parse(link.stdout) as Array<{ flags: string[]; address: string; link?: string; linkinfo?: { info_kind?: string } }>;
      const [a] = JSON.parse(await run(['ip', '-j', '-4', 'address', 'show', 'dev', 'vip'])) as Array<{ addr_info: Array<{ local: string; prefixlen: number }> }>;
      vip = {
        up: l!.flags.includes('UP'),
        mac: l!.address,
        kind: l!.linkinfo?.info_kind ?? '?',
        parent: l!.link ?? '?',
        addresses: (a?.addr_info ?? []).map((i) => `${i.local}/${i.prefixlen}`),
        arpNotify: (await run(['sysctl', '-n', 'net.ipv4.conf.vip.arp_notify'])).trim(),
      };
    }
    const policyRules = (JSON.parse(await run(['ip', '-j', 'rule', 'show'])) as Array<{ priority: number; src?: string; table?: string; action?: string }>)
      .filter((r) => r.src === lab.addresses.vip)
      .map((r) => `${r.priority} ${r.action ?? `lookup ${r.table}`}`);
    const values = (await run(['sysctl', '-n', ...SYSCTLS])).trim().split('\n');
    return { tables, rules, sets, vip, policyRules, sysctls: Object.fromEntries(SYSCTLS.map((k, i) => [k, values[i]!])) };
  }

  /** The route the VIP's policy rule looks up (added by each raise). */
  async function vipRoute(host: ServerHost): Promise<string> {
    return (await lab.exec(host, ['ip', 'route', 'show', 'table', '100'])).stdout.trim();
  }

  before(async () => {
    await LabTopology.cleanupStale();
    lab = new LabTopology({ residentHelpers: false });
    await lab.up();
  });

  afterEach(async () => {
    await group?.closeAll();
  });

  after(async () => {
    if (!lab) return;
    const prefix = lab.prefix;
    await lab.close();
    assert.ok(!(await thisHost.run(['ip', 'netns', 'list'])).stdout.includes(prefix), 'the lab is gone');
  });

  it('primary: installs the firewall, the VIP (raised), its routing and sysctls; a restart after SIGKILL duplicates nothing; SIGTERM removes it all', { timeout: 120_000 }, async (t) => {
    group = new LabProcessGroup(lab);
    const env = { ...labMcuEnv(lab, 'primary', secret, { takeover: true }), LOG_LEVEL: 'info' };
    const bare = await view('primary');
    assert.deepEqual(bare.tables, [], 'a fresh lab host has no firewall');
    assert.equal(bare.vip, null, 'a fresh lab host has no VIP interface');
    assert.deepEqual(bare.policyRules, []);

    let mcu = group.start('primary', 'mcu/src/main.ts', [], env);
    await mcu.waitForEvent('listening', { timeoutMs: 30_000 });
    const first = await view('primary');
    t.diagnostic(`after start: ${JSON.stringify(first)}`);
    assert.deepEqual(first.tables, [`inet ${FIREWALL_TABLE}`], 'the MCU installs its own table, and only that');
    assert.deepEqual(
      first.rules.map((c) => c.split(':')[0]),
      ['silence', 'fin-rst', 'guard-marked', 'lease', 'guard-owned', 'guard-handshake', 'orphan'],
      'FIN/RST silencing with the close mark, the kernel lease, the orphan guard, the silence set',
    );
    assert.deepEqual(first.sets, { silenced_ports: [], guarded_ports: [lab.servicePort], lease: [lab.servicePort] });
    assert.deepEqual(first.vip, { up: true, mac: lab.virtualMac, kind: 'macvlan', parent: 'eth0', addresses: [`${lab.addresses.vip}/32`], arpNotify: '1' });
    assert.deepEqual(first.policyRules, ['100 lookup 100', '101 blackhole']);
    assert.match(await vipRoute('primary'), new RegExp(`^${lab.addresses.network.replace(/\./g, '\\.')} dev vip .*src ${lab.addresses.vip.replace(/\./g, '\\.')}`));
    assert.deepEqual(first.sysctls, {
      'net.ipv4.conf.all.arp_ignore': '1',
      'net.ipv4.conf.all.arp_announce': '2',
      'net.ipv4.conf.all.rp_filter': '0',
      'net.ipv4.conf.eth0.rp_filter': '0',
      'net.ipv4.ip_nonlocal_bind': '1',
    });
    assert.deepEqual(await lab.vipHolders(), ['primary'], 'the primary raised its VIP');
    const status = (await labStatus(lab, secret)) as { role?: string; mode?: string };
    assert.equal(status.role, 'primary');
    assert.equal(status.mode, 'takeover');

    // A crash removes nothing: the firewall keeps the dead primary silent.
    mcu.kill('SIGKILL');
    await mcu.exited;
    assert.deepEqual(await view('primary'), first, 'a killed MCU leaves its host setup in place');

    mcu = group.start('primary', 'mcu/src/main.ts', [], env);
    await mcu.waitForEvent('listening', { timeoutMs: 30_000 });
    assert.deepEqual(await view('primary'), first, 'a restart replaces the setup: one table, the same rules, one pair of policy rules');

    mcu.kill('SIGTERM');
    const exit = await mcu.exited;
    assert.equal(exit.code, 0, `deliberate stop: ${JSON.stringify(exit)}; ${mcu.stderr.slice(-10).join('\n')}`);
    const stopped = await view('primary');
    assert.deepEqual(stopped, bare, 'a deliberate stop removes the table, the VIP interface and its rules, and restores the sysctls');
  });

  it('standby: installs the same with the VIP down, and removes it on a deliberate stop', { timeout: 120_000 }, async () => {
    group = new LabProcessGroup(lab);
    const bare = await view('standby');
    // No primary to follow: the standby sets its host up and starts anyway (it keeps trying to connect).
    const standby = group.start('standby', 'standby/src/main.ts', [], { ...labMcuEnv(lab, 'standby', secret, { takeover: true }), LOG_LEVEL: 'info' });
    await standby.waitForEvent('standby-started', { timeoutMs: 30_000 });
    const set = await view('standby');
    assert.deepEqual(set.tables, [`inet ${FIREWALL_TABLE}`]);
    assert.equal(set.rules.length, 7);
    assert.equal(set.vip?.up, false, 'a standby never holds the VIP');
    assert.deepEqual(set.policyRules, ['100 lookup 100', '101 blackhole']);
    assert.deepEqual(await lab.vipHolders(), []);
    standby.kill('SIGTERM');
    assert.equal((await standby.exited).code, 0);
    assert.deepEqual(await view('standby'), bare);
  });

  it('without `nft` (PATH without it) the MCU refuses to start with HOST_TOOL_MISSING naming nftables, having changed nothing', { timeout: 60_000 }, async () => {
    group = new LabProcessGroup(lab);
    const bare = await view('primary');
    // A PATH with iproute2 and sysctl only (node runs by its absolute path).
    const bin = mkdtempSync(join(tmpdir(), 'host-setup-path-'));
    try {
      for (const tool of ['ip', 'sysctl']) symlinkSync((await thisHost.run(['sh', '-c', `command -v ${tool}`])).stdout.trim(), join(bin, tool));
      const mcu = group.start('primary', 'mcu/src/main.ts', [], { ...labMcuEnv(lab, 'primary', secret, { takeover: true }), PATH: bin });
      const exit = await mcu.exited;
      const log = mcu.stderr.join('\n');
      assert.equal(exit.code, 1, log);
      assert.match(log, /HOST_TOOL_MISSING/, log);
      assert.match(log, /`nft` is not installed .*nftables/, log);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
    assert.deepEqual(await view('primary'), bare);
  });

  it('without CAP_NET_ADMIN the MCU refuses to start with HOST_NOT_PRIVILEGED, having changed nothing', { timeout: 60_000 }, async () => {
    const bare = await view('primary');
    const cmd = ['setpriv', '--bounding-set=-net_admin', '--', process.execPath, '--import', 'tsx', 'mcu/src/main.ts'];
    const child = lab.spawn('primary', cmd, labMcuEnv(lab, 'primary', secret, { takeover: true }), { stdio: ['pipe', 'pipe', 'pipe'] });
    const mcu = new LabProcess('primary', 'primary:setpriv mcu', child);
    const exit = await mcu.exited;
    const log = mcu.stderr.join('\n');
    assert.equal(exit.code, 1, log);
    assert.match(log, /HOST_NOT_PRIVILEGED/, log);
    assert.match(log, /CAP_NET_ADMIN/, log);
    assert.deepEqual(await view('primary'), bare);
  });
});
