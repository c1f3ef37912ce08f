/**
 * The namespace lab for takeover tests (scripts/lab/topology.ts), checked with
 * real processes inside its hosts, the server hosts set up by the MCU's own host
 * setup (installMcuHostSetup: what an MCU installs at start, here without an MCU
 * so plain TCP peers can stand in for it): the VIP reaches the primary only once it is
 * raised; the LAN floods like a hub (the standby's capture sees the client's
 * bytes to the VIP); the primary's firewall swallows the FIN/RST of a killed
 * process but lets a marked close through; silencing the service port (or
 * dropping the VIP) stops the orphaned sockets' retransmissions; a crashed
 * host is unreachable; the VIP moves to the standby; and nothing of a lab is
 * left after down(), after a failed up(), or after its owner was SIGKILLed.
 * Needs root, iproute2 and nftables, and the native addon (captures, SO_MARK).
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it, type TestContext } from 'node:test';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { nativeAddonAvailable } from '../../native/src/index.ts';
import { ManagedProcess } from '../../mcu/src/core/child-process.ts';
import { HostCommandError, thisHost } from '../../mcu/src/core/host-commands.ts';
import { LabProcess, type LabEvent } from '../../scripts/lab/lab-process.ts';
import { until } from '../../scripts/common/wait-for.ts';
import { labUnsupportedReason, LabTopology, type LabTiming } from '../../scripts/lab/topology.ts';

const PEER = 'scripts/lab/fixtures/tcp-peer.ts';
const CAPTURE = 'scripts/lab/fixtures/capture.ts';
const CRASHING_OWNER = 'scripts/lab/fixtures/crashing-owner.ts';
/** How long a client must see neither EOF nor RST after the server process was killed. */
const SILENCE_WINDOW_MS = 500;
/** Covers at least two retransmission timeouts of an orphan (200 ms doubling). */
const RETRANSMISSION_WATCH_MS = 2500;

const skipReason = (await labUnsupportedReason()) ?? (nativeAddonAvailable() ? null : 'native addon not built (bash scripts/build-native.sh): captures and SO_MARK need it');

/** Names of the lab's leftovers visible from the initial namespace: namespaces and links. */
async function leftovers(prefix: string): Promise<string[]> {
  const found: string[] = [];
  const netns = await thisHost.run(['ip', 'netns', 'list']);
  for (const line of netns.stdout.split('\n')) if (line.startsWith(prefix)) found.push(`netns ${line.split(' ')[0]}`);
  if (existsSync('/run/netns')) for (const f of readdirSync('/run/netns')) if (f.startsWith(prefix)) found.push(`/run/netns/${f}`);
  const links = await thisHost.run(['ip', '-o', 'link', 'show']);
  for (const line of links.stdout.split('\n')) if (line.includes(prefix) || line.includes(prefix.slice(0, 15))) found.push(`link ${line.slice(0, 60)}`);
  return found;
}

function stats(values: number[]): string {
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return `min ${s[0].toFixed(2)} / median ${at(0.5).toFixed(2)} / max ${s[s.length - 1].toFixed(2)} ms (n=${s.length})`;
}

describe('lab topology (network namespaces)', { skip: skipReason ?? false }, () => {
  let lab: LabTopology;
  const running: LabProcess[] = [];

  function start(host: 'client' | 'primary' | 'standby', entry: string, args: string[]): LabProcess {
    const p = LabProcess.startNode(lab, host, entry, args);
    running.push(p);
    return p;
  }

  async function server(host: 'primary' | 'standby', greeting: string): Promise<LabProcess> {
    const p = start(host, PEER, ['server', lab.addresses.vip, String(lab.servicePort), greeting]);
    await p.waitForEvent('listening', { timeoutMs: 15_000 });
    return p;
  }

  /** A client in the client host; resolves with it and its first event: connect, timeout or error. */
  async function client(timeoutMs: number): Promise<{ peer: LabProcess; outcome: LabEvent }> {
    const peer = start('client', PEER, ['client', lab.addresses.vip, String(lab.servicePort), String(timeoutMs)]);
    const outcome = await peer.waitFor((e) => e.event === 'connect' || e.event === 'timeout' || e.event === 'error', { timeoutMs: timeoutMs + 15_000 });
    return { peer, outcome };
  }

  async function capture(host: 'client' | 'standby'): Promise<LabProcess> {
    const p = start(host, CAPTURE, ['eth0', String(lab.servicePort)]);
    await p.waitForEvent('ready', { timeoutMs: 15_000 });
    return p;
  }

  /** Everything the kernel already holds for the capture is delivered before this resolves. */
  async function drained(cap: LabProcess): Promise<void> {
    const from = cap.mark();
    cap.writeLine('drain');
    await cap.waitForEvent('drained', { from });
  }

  async function vipTxPackets(host: 'primary' | 'standby'): Promise<number> {
    const r = await lab.exec(host, ['ip', '-s', '-j', 'link', 'show', 'dev', 'vip']);
    return (JSON.parse(r.stdout) as Array<{ stats64: { tx: { packets: number } } }>)[0].stats64.tx.packets;
  }

  before(async () => {
    // Leftovers of crashed runs (owner gone); live labs of parallel runs stay.
    await LabTopology.cleanupStale();
    lab = new LabTopology();
    await lab.up();
    for (const host of ['primary', 'standby'] as const) await lab.installMcuHostSetup(host);
  });

  afterEach(async () => {
    await Promise.all(running.splice(0).map((p) => p.close()));
  });

  after(async () => {
    if (!lab) return;
    await Promise.all(running.splice(0).map((p) => p.close()));
    const prefix = lab.prefix;
    await lab.close();
    await lab.close(); // idempotent
    assert.deepEqual(await leftovers(prefix), [], 'down() must remove every namespace and link of the lab');
  });

  it('reaches a server on VIP:port in the primary only once the primary raised the VIP (gratuitous ARP from the VIP interface)', async (t: TestContext) => {
    const primary = await server('primary', 'hello-from-primary\n');
    // Nobody holds the VIP yet: the client's SYN finds no one (no ARP answer).
    const before = await client(400);
    assert.notEqual(before.outcome.event, 'connect', 'the VIP must be unreachable while no host raised it');

    const txBefore = await vipTxPackets('primary');
    const raised = await lab.raiseVip('primary');
    t.diagnostic(`raiseVip(primary): ${raised.ms.toFixed(2)} ms (${raised.method})`);
    assert.deepEqual(await lab.vipHolders(), ['primary']);
    assert.ok((await vipTxPackets('primary')) > txBefore, 'raising the VIP sends a gratuitous ARP from the virtual MAC (arp_notify)');

    const { peer, outcome } = await client(3000);
    assert.equal(outcome.event, 'connect', JSON.stringify(outcome));
    await peer.waitFor((e) => e.event === 'data' && String(e.text).includes('hello-from-primary'));
    const accepted = await primary.waitForEvent('connection');
    assert.equal(accepted.remoteAddress, lab.addresses.client);
    assert.equal(accepted.localAddress, lab.addresses.vip);
  });

  it('floods like a hub: the standby captures the client->VIP payload bytes', async () => {
    const primary = await server('primary', 'hi\n');
    const standbyCapture = await capture('standby');
    const { peer, outcome } = await client(3000);
    assert.equal(outcome.event, 'connect');
    const token = `hub-check-${Math.random().toString(36).slice(2)}`;
    peer.send({ op: 'write', text: token });
    await primary.waitFor((e) => e.event === 'data' && String(e.text).includes(token));
    await drained(standbyCapture);
    const seen = standbyCapture.select(
      (e) =>
        e.event === 'segment' &&
        e.src === lab.addresses.client &&
        e.dst === lab.addresses.vip &&
        e.dport === lab.servicePort &&
        Buffer.from(String(e.payload), 'base64').toString('latin1').includes(token),
    );
    assert.ok(seen.length >= 1, 'the standby must see the client->VIP segment carrying the payload');
    // PACKET_OTHERHOST: a unicast frame for another MAC (the virtual MAC), delivered by flooding.
    assert.equal(seen[0].pktType, 3, JSON.stringify(seen[0]));
  });

  it('drops the FIN/RST of a killed (unmarked) server, lets the FIN of a marked close through', async (t: TestContext) => {
    const countersBefore = await lab.firewallCounters('primary');
    const clientCapture = await capture('client');

    // Unmarked: the process is SIGKILLed; its kernel's FIN, and the RST it answers to data afterwards, are dropped.
    const killed = await server('primary', 'greeting\n');
    const a = await client(3000);
    assert.equal(a.outcome.event, 'connect');
    await a.peer.waitFor((e) => e.event === 'data');
    const kill = lab.killPrimaryProcess(killed.pid);
    await killed.exited;
    const from = a.peer.mark();
    a.peer.send({ op: 'write', text: 'after-the-kill' }); // the orphan answers this with a RST
    await new Promise((r) => setTimeout(r, SILENCE_WINDOW_MS));
    const seenByClient = a.peer.select((e) => e.event === 'end' || e.event === 'error' || e.event === 'close', from);
    assert.deepEqual(seenByClient, [], `no EOF and no RST at the client within ${SILENCE_WINDOW_MS} ms of the kill`);
    await drained(clientCapture);
    const finOrRst = clientCapture.select((e) => e.event === 'segment' && e.src === lab.addresses.vip && /FIN|RST/.test(String(e.flags)) && Number(e.tsNs) / 1e6 >= kill.at);
    assert.deepEqual(finOrRst, [], 'no FIN or RST from the VIP on the wire');
    const countersAfter = await lab.firewallCounters('primary');
    t.diagnostic(`FIN/RST dropped by the firewall during the kill: ${countersAfter.finRstDropped - countersBefore.finRstDropped}`);
    assert.ok(countersAfter.finRstDropped - countersBefore.finRstDropped >= 2, 'the FIN and the RST were dropped by the rule');
    a.peer.send({ op: 'destroy' });

    // Marked: a deliberate close sets SO_MARK first; its FIN passes.
    const marked = await server('primary', 'greeting\n');
    const b = await client(3000);
    assert.equal(b.outcome.event, 'connect');
    await marked.waitForEvent('connection');
    await marked.request({ op: 'mark', mark: lab.closeMark });
    const closedAt = Date.now();
    marked.send({ op: 'end' });
    await b.peer.waitForEvent('end', { timeoutMs: 2000 });
    t.diagnostic(`marked close: EOF at the client after ${Date.now() - closedAt} ms`);
  });

  /**
   * A server in the primary host that greeted a client, the client's capture, and the client's
   * stack deaf to the server from now on (its capture still sees everything): nothing the server
   * sends is acknowledged, so a killed server's orphan retransmits. `hear()` undoes the deafness.
   */
  async function deafClient() {
    const srv = await server('primary', 'greeting\n');
    const { peer, outcome } = await client(3000);
    assert.equal(outcome.event, 'connect');
    await peer.waitFor((e) => e.event === 'data');
    const clientCapture = await capture('client');
    await lab.exec('client', ['nft', '-f', '-'], {
      input: `table inet labtest {\n chain input {\n  type filter hook input priority filter;\n  ip saddr ${lab.addresses.vip} tcp sport ${lab.servicePort} drop\n }\n}\n`,
    });
    const hear = async (): Promise<void> => {
      await lab.exec('client', ['nft', 'delete', 'table', 'inet', 'labtest'], { check: false });
    };
    return { srv, clientCapture, hear };
  }

  /**
   * A server with unacknowledged output is killed; with the orphan guard off its orphan
   * retransmits until `silence` runs.
   */
  async function orphanRetransmissions(t: TestContext, silence: () => Promise<LabTiming>): Promise<void> {
    await lab.guardOrphans('primary', false);
    try {
      await unguardedOrphan(t, silence);
    } finally {
      await lab.guardOrphans('primary', true);
    }
  }

  async function unguardedOrphan(t: TestContext, silence: () => Promise<LabTiming>): Promise<void> {
    const { srv, clientCapture, hear } = await deafClient();
    try {
      await srv.request({ op: 'write', bytes: 1000 });
      const kill = lab.killPrimaryProcess(srv.pid);
      await srv.exited;
      // The control: the orphan does retransmit its data (the FIN/RST rule lets that through):
      // a data segment from the VIP, after the kill, with a sequence number already seen.
      const dataSeqs = new Set<number>();
      const retransmission = await clientCapture.waitFor(
        (e) => {
          if (e.event !== 'segment' || e.src !== lab.addresses.vip || Number(e.len) === 0) return false;
          const again = dataSeqs.has(Number(e.seq));
          dataSeqs.add(Number(e.seq));
          return again && Number(e.tsNs) / 1e6 > kill.at;
        },
        { timeoutMs: 3000 },
      );
      const timing = await silence();
      t.diagnostic(
        `orphan retransmitted ${Math.round(Number(retransmission.tsNs) / 1e6 - kill.at)} ms after the kill; ` +
          `${timing.op}(primary) took ${timing.ms.toFixed(2)} ms (${timing.method})`,
      );
      await new Promise((r) => setTimeout(r, RETRANSMISSION_WATCH_MS));
      await drained(clientCapture);
      const afterSilence = clientCapture.select((e) => e.event === 'segment' && e.src === lab.addresses.vip && Number(e.tsNs) / 1e6 > timing.at);
      assert.deepEqual(afterSilence, [], `nothing from the VIP may reach the client after ${timing.op}`);
    } finally {
      await hear();
    }
  }

  it('silenceServicePort stops the orphaned sockets\' retransmissions of a killed server', async (t: TestContext) => {
    const before = await lab.firewallCounters('primary');
    await orphanRetransmissions(t, () => lab.silenceServicePort('primary'));
    const dropped = (await lab.firewallCounters('primary')).silencedDropped - before.silencedDropped;
    t.diagnostic(`orphan segments dropped by the silence rule while watching: ${dropped}`);
    assert.ok(dropped >= 1, 'the orphan kept retransmitting and the silence rule dropped it');
    await lab.unsilenceServicePort('primary');
    assert.deepEqual(await lab.silencedPorts('primary'), []);
  });

  it('the orphan guard silences a killed server by itself, at once: nothing of its orphan reaches the client', async (t: TestContext) => {
    const { srv, clientCapture, hear } = await deafClient();
    try {
      const before = await lab.firewallCounters('primary');
      await srv.request({ op: 'write', bytes: 1000 });
      // Written while the process lives (owned): it goes out; then the process dies.
      await clientCapture.waitFor((e) => e.event === 'segment' && e.src === lab.addresses.vip && Number(e.len) >= 1000, { timeoutMs: 3000 });
      const kill = lab.killPrimaryProcess(srv.pid);
      await srv.exited;
      await new Promise((r) => setTimeout(r, RETRANSMISSION_WATCH_MS));
      await drained(clientCapture);
      const after = clientCapture.select((e) => e.event === 'segment' && e.src === lab.addresses.vip && Number(e.tsNs) / 1e6 > kill.at);
      const counters = await lab.firewallCounters('primary');
      const orphanDropped = counters.orphanDropped - before.orphanDropped;
      t.diagnostic(`orphan segments dropped by the guard in ${RETRANSMISSION_WATCH_MS} ms: ${orphanDropped}; FIN/RST dropped: ${counters.finRstDropped - before.finRstDropped}`);
      assert.deepEqual(after, [], 'nothing from the VIP may reach the client after the kill');
      assert.ok(orphanDropped >= 1, 'the orphan retransmitted and the guard dropped it');
    } finally {
      await hear();
    }
  });

  it('dropVip alone also stops them: traffic from the VIP is blackholed once its interface is down', async (t: TestContext) => {
    await orphanRetransmissions(t, () => lab.dropVip('primary'));
    await lab.raiseVip('primary');
  });

  it('crashHost makes the primary unreachable, restoreHost brings it back', async (t: TestContext) => {
    await server('primary', 'hello-from-primary\n');
    const ok = await client(3000);
    assert.equal(ok.outcome.event, 'connect');
    const crash = await lab.crashHost('primary');
    t.diagnostic(`crashHost(primary): ${lab.timings.at(-1)?.ms.toFixed(2)} ms`);
    assert.equal(crash.fault, 'crashHost');
    const down = await client(1000);
    assert.equal(down.outcome.event, 'timeout', `a crashed host answers nothing (no RST, no SYN-ACK): ${JSON.stringify(down.outcome)}`);
    assert.equal((await lab.status()).hosts.primary.nicUp, false);
    await lab.restoreHost('primary');
    const back = await client(3000);
    assert.equal(back.outcome.event, 'connect', JSON.stringify(back.outcome));
    await back.peer.waitFor((e) => e.event === 'data' && String(e.text).includes('hello-from-primary'));
  });

  it('freeze/thaw stop and resume a lab process; faults refuse pids outside the lab', async () => {
    const srv = await server('primary', 'x\n');
    lab.freeze(srv.pid);
    const state = (): string => processState(srv.pid);
    await until('the frozen process to stop', () => state() === 'T', { timeoutMs: 2000, intervalMs: 10 });
    lab.thaw(srv.pid);
    await until('the thawed process to run', () => state() !== 'T', { timeoutMs: 2000, intervalMs: 10 });
    assert.throws(() => lab.killPrimaryProcess(process.pid), { code: 'LAB_NOT_IN_LAB' });
    assert.throws(() => lab.killProcess(srv.pid, 'standby'), { code: 'LAB_NOT_IN_LAB' });
  });

  it('dropVip on the primary and raiseVip on the standby move the service', async (t: TestContext) => {
    await server('primary', 'hello-from-primary\n');
    // The standby listens on the VIP before holding it (ip_nonlocal_bind), as a promoted standby would.
    await server('standby', 'hello-from-standby\n');
    const first = await client(3000);
    await first.peer.waitFor((e) => e.event === 'data' && String(e.text).includes('hello-from-primary'));

    const dropped = await lab.dropVip('primary');
    const raised = await lab.raiseVip('standby');
    t.diagnostic(`dropVip(primary) ${dropped.ms.toFixed(2)} ms + raiseVip(standby) ${raised.ms.toFixed(2)} ms (${raised.method})`);
    assert.deepEqual(await lab.vipHolders(), ['standby']);

    const moved = await client(3000);
    assert.equal(moved.outcome.event, 'connect', JSON.stringify(moved.outcome));
    await moved.peer.waitFor((e) => e.event === 'data' && String(e.text).includes('hello-from-standby'));

    // And back, so the measurements below start from the usual layout.
    await lab.dropVip('standby');
    await lab.raiseVip('primary');
  });

  it('measures VIP and silence changes (resident helpers vs one command each)', async (t: TestContext) => {
    const rounds = 10;
    const resident = { raise: [] as number[], drop: [] as number[], silence: [] as number[] };
    for (let i = 0; i < rounds; i++) {
      resident.drop.push((await lab.dropVip('primary')).ms);
      resident.raise.push((await lab.raiseVip('primary')).ms);
      resident.silence.push((await lab.silenceServicePort('primary')).ms);
      await lab.unsilenceServicePort('primary');
    }
    // The same namespaces through an attached instance: no resident helpers, a command per change.
    const spawned = { raise: [] as number[], drop: [] as number[], silence: [] as number[] };
    const viaCommands = LabTopology.attach(lab.descriptor());
    for (let i = 0; i < rounds; i++) {
      spawned.drop.push((await viaCommands.dropVip('primary')).ms);
      spawned.raise.push((await viaCommands.raiseVip('primary')).ms);
      spawned.silence.push((await viaCommands.silenceServicePort('primary')).ms);
      await viaCommands.unsilenceServicePort('primary');
    }
    // (viaCommands is not closed: closing it would tear down the shared lab.)
    for (const [name, values] of Object.entries(resident)) t.diagnostic(`resident ${name}: ${stats(values)}`);
    for (const [name, values] of Object.entries(spawned)) t.diagnostic(`command ${name}: ${stats(values)}`);
    assert.ok(resident.silence.every((ms) => ms < 1000));
    assert.ok(lab.timings.every((timing) => timing.method === 'resident' || timing.op === 'up' || timing.op === 'down'));
  });

  it('up() then down() of a second lab, in parallel with the first, leaves nothing behind; so does a failed up()', async (t: TestContext) => {
    const second = new LabTopology();
    assert.notEqual(second.prefix, lab.prefix);
    try {
      await second.up();
      const status = await second.status();
      assert.ok(Object.values(status.namespaces).every((ns) => ns.exists));
      assert.ok(status.namespaces.primary.pids.length > 0, 'the resident helpers run inside the server hosts');
    } finally {
      await second.down();
      await second.down(); // idempotent
    }
    const [upTiming, downTiming] = [second.timings.find((x) => x.op === 'up'), second.timings.find((x) => x.op === 'down')];
    t.diagnostic(`up(): ${upTiming?.ms.toFixed(0)} ms, down(): ${downTiming?.ms.toFixed(0)} ms`);
    assert.deepEqual(await leftovers(second.prefix), []);
    assert.equal(existsSync(`/run/netns/${lab.namespace('lan')}`), true, 'the first lab is untouched');

    const broken = new LabTopology({ subnet: '10.213.300' }); // not an address: the hosts' addresses cannot be set
    await assert.rejects(() => broken.up(), HostCommandError);
    assert.equal(broken.state, 'down');
    assert.deepEqual(await leftovers(broken.prefix), []);
    await broken.close();
  });

  it('cleanupStale removes the lab of a SIGKILLed owner (and what still runs in it), not live labs', async () => {
    // The owner runs in the initial namespace (it makes namespaces), like a test process would.
    const crashed = ManagedProcess.spawn(process.execPath, ['--import', 'tsx', CRASHING_OWNER], { label: 'crashing-owner' });
    let prefix: string | undefined;
    try {
      const up = await crashed.waitForEvent('up', { timeoutMs: 20_000 });
      prefix = String(up.prefix);
      const sleeperPid = Number(up.sleeperPid);
      crashed.kill('SIGKILL');
      await crashed.exited;
      assert.ok((await leftovers(prefix)).length > 0, 'the crashed owner left its lab behind');
      const removed = await LabTopology.cleanupStale(prefix);
      assert.deepEqual(removed, [prefix]);
      // A sweep of every lab leaves the live ones alone (this test's, and those of parallel runs).
      const swept = await LabTopology.cleanupStale();
      assert.ok(!swept.includes(lab.prefix), 'the live lab of this test is not stale');
      assert.deepEqual(await leftovers(prefix), []);
      // Gone, or a zombie waiting for init to reap it (it has left the namespace either way).
      assert.ok(['', 'Z'].includes(processState(sleeperPid)), 'the process left inside the crashed lab was killed');
      assert.equal(existsSync(`/run/netns/${lab.namespace('primary')}`), true);
    } finally {
      crashed.kill('SIGKILL');
      if (prefix) await LabTopology.cleanupStale(prefix, { includeLive: true });
    }
  });
});

/** The one-letter state of a process (R, S, T, Z, ...), '' when it does not exist. */
function processState(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return '';
  }
}
