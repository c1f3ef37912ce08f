/**
 * The systems under test: how a mode's MCU pair runs and how its primary dies. Primary and
 * standby under the Supervisor on 127.0.0.1 (reconnect mode where the lab cannot run), or a
 * fresh namespace lab per kill (reconnect, takeover and warm-spare modes), with Chromium in the
 * lab's client host.
 */
import type { Browser } from 'playwright-core';
import { Supervisor, type ManagedMcu } from '../../../standby/src/supervisor/supervisor.ts';
import { launchChromium } from '../../common/browser.ts';
import { freePort } from '../../common/ports.ts';
import { buildTimeline } from '../../failover-timeline.ts';
import { LabProcess } from '../../lab/lab-process.ts';
import { labMcuEnv, labStatus } from '../../lab/start-mcu.ts';
import { LabTopology, type ServerHost } from '../../lab/topology.ts';
import { registerCleanup } from './cleanup.ts';
import { LAB_CPUS, LAB_MISSED_HEARTBEATS, PROMOTION_TIMEOUT_MS, RECOVERY_TIMEOUT_MS } from './settings.ts';

export interface Promotion {
  /** Date.now() right before the signal was sent. */
  killedAt: number;
  victimPid: number;
  promotedPid: number;
  /** The promoted standby's own account (epoch-ms timestamps). */
  timeline: Record<string, unknown>;
}

/** The system a mode runs: an address for the pages, a way to know it is protected, a primary to kill. */
export interface SystemUnderTest {
  readonly url: string;
  /** The browser the pages run in (the shared one, or one in the lab's client host). */
  readonly browser: Browser;
  /** GET /status of whoever serves now, or null. */
  status(): Promise<Record<string, unknown> | null>;
  /** null when a kill of the primary can be survived right now; otherwise why not. */
  protection(): Promise<string | null>;
  /** Tries to get protection back (e.g. start a new standby); says what it did, or null. */
  repairProtection(): Promise<string | null>;
  /** Sends `signal` to the primary and resolves with the promotion; rejects with SystemGoneError. */
  killPrimary(signal: NodeJS.Signals): Promise<Promotion>;
  /** Failover steps of these processes from their logs, in ms relative to `t0`. */
  failoverSteps(pids: number[], t0: number): FailoverStep[];
  /** Every process's log lines, for the log directory. */
  logs(): Array<{ pid: number; role: string; lines: string[] }>;
  /** When a new standby was next ready (Date.now()) after `t`, or null. */
  standbyReadyAfter(t: number): number | null;
  /** What happened that no kill explains: death verdicts while the primary lived, processes that exited on their own. */
  incidents(kills: Array<{ killedAt: number; victimPid: number }>): Incident[];
  close(): Promise<void>;
}

/** The system cannot go on (no primary, no promotion, no protection): the round fails, or the mode stops. */
export class SystemGoneError extends Error {
  readonly code = 'SYSTEM_GONE';
  constructor(message: string) {
    super(message);
    this.name = 'SystemGoneError';
  }
}

/** Something no kill explains. */
export interface Incident {
  at: string;
  pid: number | null;
  what: string;
}

/** One failover step from the logs (scripts/failover-timeline.ts), relative to the kill. */
export interface FailoverStep {
  ms: number;
  pid: number | null;
  step: string;
  message: string;
}

/** Primary + hot standby under the project's Supervisor, on 127.0.0.1, re-protected after every promotion. */
export class SupervisedSystem implements SystemUnderTest {
  readonly #supervisor: Supervisor;
  readonly url: string;
  readonly browser: Browser;
  /** Every MCU process seen, kept after it died: its logs explain the failover. */
  readonly #seen = new Map<number, ManagedMcu>();
  readonly #readyAt: number[] = [];
  readonly #exits: Array<{ at: number; pid: number; role: string; code: number | null; signal: string | null }> = [];
  #closed = false;

  private constructor(supervisor: Supervisor, url: string, browser: Browser) {
    this.#supervisor = supervisor;
    this.url = url;
    this.browser = browser;
    const note = (m: ManagedMcu): void => void this.#seen.set(m.pid, m);
    supervisor.on('primary-started', note);
    supervisor.on('standby-ready', (m) => {
      note(m);
      this.#readyAt.push(Date.now());
    });
    supervisor.on('promoted', note);
    supervisor.on('process-exited', (e) => {
      if (!this.#closed) this.#exits.push({ at: Date.now(), ...e });
    });
  }

  static async start(browser: Browser): Promise<SupervisedSystem> {
    const port = await freePort();
    // The restart path (issue 3) as it is measured: no warm spare paths.
    const supervisor = new Supervisor({ port, replicationPort: await freePort(), adminPort: await freePort(), host: '127.0.0.1', env: { MCU_SPARE_PATHS: '0' } });
    const system = new SupervisedSystem(supervisor, `http://127.0.0.1:${port}`, browser);
    registerCleanup(() => system.close());
    await supervisor.start();
    return system;
  }

  status(): Promise<Record<string, unknown> | null> {
    return getJson(`${this.#supervisor.adminUrl}/status`);
  }

  async protection(): Promise<string | null> {
    const status = await getJson(`${this.#supervisor.adminUrl}/status`);
    if (!status) return 'the primary does not answer /status';
    if (status.role !== 'primary') return `/status says role ${String(status.role)}`;
    if (status.protected !== true) return 'the primary is not protected';
    const standby = this.#supervisor.standby;
    if (!standby?.statusPort) return 'no standby process';
    const s = await getJson(`http://127.0.0.1:${standby.statusPort}/status`);
    if (!s) return `standby ${standby.pid} does not answer /status`;
    if (s.standbyState !== 'ready') return `standby ${standby.pid} is ${String(s.standbyState)}`;
    return null;
  }

  async repairProtection(): Promise<string | null> {
    if (this.#supervisor.standby !== null || this.#closed) return null;
    // The supervisor gives up when a new standby fails to sync: ask for another one.
    await this.#supervisor.startStandby();
    return 'no standby after the promotion: started one';
  }

  async killPrimary(signal: NodeJS.Signals): Promise<Promotion> {
    const victim = this.#supervisor.primary;
    if (!victim) throw new SystemGoneError('no primary to kill');
    let onPromoted: ((m: ManagedMcu, t: Record<string, unknown>) => void) | null = null;
    let timer: NodeJS.Timeout | null = null;
    const promoted = new Promise<[ManagedMcu, Record<string, unknown>]>((resolve, reject) => {
      onPromoted = (m, t) => resolve([m, t]);
      this.#supervisor.once('promoted', onPromoted);
      timer = setTimeout(() => reject(new SystemGoneError(`no standby promoted itself within ${PROMOTION_TIMEOUT_MS} ms of the kill`)), PROMOTION_TIMEOUT_MS);
    });
    try {
      const killedAt = Date.now();
      await victim.process.kill(signal);
      const [mcu, timeline] = await promoted;
      return { killedAt, victimPid: victim.pid, promotedPid: mcu.pid, timeline };
    } finally {
      if (timer) clearTimeout(timer);
      if (onPromoted) this.#supervisor.off('promoted', onPromoted);
    }
  }

  failoverSteps(pids: number[], t0: number): FailoverStep[] {
    return stepsAround(pids.flatMap((pid) => this.#seen.get(pid)?.process.stderr ?? []), t0);
  }

  logs(): Array<{ pid: number; role: string; lines: string[] }> {
    const all = new Map(this.#seen);
    for (const m of [this.#supervisor.primary, this.#supervisor.standby]) if (m) all.set(m.pid, m);
    return [...all.values()].map((m) => ({ pid: m.pid, role: m.role, lines: [...m.process.stderr] }));
  }

  standbyReadyAfter(t: number): number | null {
    return this.#readyAt.find((r) => r > t) ?? null;
  }

  incidents(kills: Array<{ killedAt: number; victimPid: number }>): Incident[] {
    const incidents = logIncidents(this.logs(), kills);
    const victims = new Set(kills.map((k) => k.victimPid));
    for (const x of this.#exits) {
      if (victims.has(x.pid)) continue;
      incidents.push({ t: x.at, at: new Date(x.at).toISOString(), pid: x.pid, what: `${x.role} exited on its own (code ${x.code}, signal ${x.signal})` });
    }
    return incidents.sort((a, b) => a.t - b.t).map(({ t: _t, ...rest }) => rest);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#supervisor.close();
  }
}

/**
 * A fresh namespace lab (scripts/lab) with the primary and the standby in their hosts (labMcuEnv;
 * MCU_TAKEOVER=1 or reconnect mode) and Chromium in its client host, for one kill. The server
 * hosts and the client host run on their own CPUs (LabTopology cpus). In takeover mode the
 * standby starts before the pages connect (it learns each connection from the capture).
 */
export class LabSystem implements SystemUnderTest {
  readonly url: string;
  readonly browser: Browser;
  readonly #lab: LabTopology;
  readonly #primary: LabProcess;
  readonly #standby: LabProcess;
  #killed = false;
  #closing: Promise<void> | null = null;

  readonly #takeover: boolean;
  /** The MCUs' replication secret, from which the lab derives their admin token (labStatus()). */
  readonly #secret: string;

  private constructor(lab: LabTopology, primary: LabProcess, standby: LabProcess, browser: Browser, takeover: boolean, secret: string) {
    this.#takeover = takeover;
    this.#secret = secret;
    this.#lab = lab;
    this.#primary = primary;
    this.#standby = standby;
    this.browser = browser;
    this.url = `http://${lab.addresses.vip}:${lab.servicePort}`;
  }

  static async start(options: { spares: boolean; takeover: boolean }): Promise<LabSystem> {
    // The server hosts and the client host on their own CPUs, as on separate machines.
    const lab = new LabTopology({ cpus: LAB_CPUS ?? undefined });
    const processes: LabProcess[] = [];
    let browser: Browser | null = null;
    // Until the system exists, a Ctrl-C must still take the lab down.
    registerCleanup(async () => {
      for (const p of processes) await p.close({ graceMs: 500 }).catch(() => undefined);
      await lab.down();
    });
    try {
      await lab.up();
      const secret = `bench-chaos-${process.pid}-${Math.random().toString(16).slice(2)}`;
      const start = (host: ServerHost, entry: string): LabProcess => {
        const env = {
          ...labMcuEnv(lab, host, secret, { takeover: options.takeover }),
          LOG_LEVEL: 'info',
          MCU_MISSED_HEARTBEATS: LAB_MISSED_HEARTBEATS,
          MCU_SPARE_PATHS: options.spares ? '1' : '0',
        };
        const p = LabProcess.startNode(lab, host, entry, [], env);
        processes.push(p);
        return p;
      };
      const primary = start('primary', 'mcu/src/main.ts');
      await primary.waitForEvent('listening', { timeoutMs: 30_000 });
      const standby = start('standby', 'standby/src/main.ts');
      await standby.waitForEvent('standby-ready', { timeoutMs: 30_000 });
      // The pages are on plain HTTP from the VIP (takeover mode serves no TLS): treat that origin as
      // secure, as the demo's HTTPS is, so the pages' voice meter runs on the audio thread
      // (AudioWorklet exists only in a secure context; without it a busy page's stalls read as voice gaps).
      const origin = `http://${lab.addresses.vip}:${lab.servicePort}`;
      browser = await launchChromium([`--unsafely-treat-insecure-origin-as-secure=${origin}`], { netns: lab.namespace('client'), ...(lab.cpus ? { cpus: lab.cpus.clients } : {}) });
      const b = browser;
      registerCleanup(() => b.close());
      return new LabSystem(lab, primary, standby, browser, options.takeover, secret);
    } catch (err) {
      await browser?.close().catch(() => undefined);
      for (const p of processes) await p.close({ graceMs: 500 }).catch(() => undefined);
      await lab.down().catch(() => undefined);
      throw err;
    }
  }

  async status(): Promise<Record<string, unknown> | null> {
    // From the client host on a fresh connection: the test process cannot reach the VIP.
    return (labStatus(this.#lab, this.#secret) as Promise<Record<string, unknown>>).catch(() => null);
  }

  async protection(): Promise<string | null> {
    if (this.#killed) return 'this lab had its kill (one per lab)';
    if (!this.#primary.running) return 'the primary exited';
    if (!this.#standby.running) return 'the standby exited';
    if (this.#standby.select((e) => e.event === 'promoted').length > 0) return 'the standby promoted itself while the primary lived';
    return this.#standby.select((e) => e.event === 'standby-ready').length > 0 ? null : 'the standby is not ready';
  }

  async repairProtection(): Promise<string | null> {
    return null;
  }

  async killPrimary(signal: NodeJS.Signals): Promise<Promotion> {
    if (this.#killed || !this.#primary.running) throw new SystemGoneError('no primary to kill in this lab');
    const from = this.#standby.mark();
    const killedAt = Date.now();
    if (signal === 'SIGKILL') this.#lab.killPrimaryProcess(this.#primary.pid);
    else this.#primary.kill(signal);
    this.#killed = true;
    // Takeover mode: nothing more, the host's orphan guard silences the dead process's sockets.
    // Reconnect mode: its kernel closes them (the pages reconnect), and the host gives up the
    // VIP as a VRRP agent watching the MCU would, or its kernel would refuse the pages'
    // reconnections (the LAN delivers their SYNs to both hosts).
    if (!this.#takeover) await this.#lab.dropVip('primary');
    return this.#promotion(from, killedAt);
  }

  /**
   * The primary's host crashes: its processes stop (SIGSTOP, as a host losing power runs
   * nothing more) and its link goes down. The lab's hosts share this machine's CPUs: a host
   * only cut off would go on encoding video beside the new primary until it fenced itself
   * (test/integration/takeover-fencing.test.ts covers that partition).
   */
  async crashPrimaryHost(): Promise<Promotion> {
    if (this.#killed || !this.#primary.running) throw new SystemGoneError('no primary to crash in this lab');
    const from = this.#standby.mark();
    const killedAt = Date.now();
    this.#primary.kill('SIGSTOP');
    await this.#lab.crashHost('primary');
    this.#killed = true;
    return this.#promotion(from, killedAt);
  }

  async #promotion(from: number, killedAt: number): Promise<Promotion> {
    const promoted = await this.#standby
      .waitFor((e) => e.event === 'promoted' || e.event === 'standby-failed', { from, timeoutMs: PROMOTION_TIMEOUT_MS })
      .catch((err: unknown) => {
        throw new SystemGoneError(`no promotion: ${(err as Error).message.split('\n')[0]}`);
      });
    if (promoted.event !== 'promoted') throw new SystemGoneError(`the standby failed to take over: ${this.#standby.stderr.slice(-5).join(' | ')}`);
    return { killedAt, victimPid: this.#primary.pid, promotedPid: this.#standby.pid, timeline: (promoted.timeline ?? {}) as Record<string, unknown> };
  }

  failoverSteps(_pids: number[], t0: number): FailoverStep[] {
    return stepsAround([...this.#primary.stderr, ...this.#standby.stderr], t0);
  }

  logs(): Array<{ pid: number; role: string; lines: string[] }> {
    return [
      { pid: this.#primary.pid, role: 'primary', lines: [...this.#primary.stderr] },
      { pid: this.#standby.pid, role: 'standby', lines: [...this.#standby.stderr] },
    ];
  }

  standbyReadyAfter(): number | null {
    return null;
  }

  incidents(kills: Array<{ killedAt: number; victimPid: number }>): Incident[] {
    return logIncidents(this.logs(), kills).map(({ t: _t, ...rest }) => rest);
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.browser.close().catch(() => undefined);
      for (const p of [this.#standby, this.#primary]) await p.close({ graceMs: 500 }).catch(() => undefined);
      await this.#lab.down();
    })();
    return this.#closing;
  }
}

/** The failover steps in these log lines around a kill at `t0` (ms relative to it). */
function stepsAround(lines: string[], t0: number): FailoverStep[] {
  return buildTimeline(lines)
    .filter((e) => e.at >= t0 - 2000 && e.at <= t0 + RECOVERY_TIMEOUT_MS + 5000)
    .map((e) => ({ ms: e.at - t0, pid: e.pid, step: e.step, message: e.message }));
}

/** Death verdicts and failed promotions in the logs that no kill explains (a verdict within 5 s after a kill is that kill's). */
function logIncidents(logs: Array<{ pid: number; lines: string[] }>, kills: Array<{ killedAt: number }>): Array<Incident & { t: number }> {
  const incidents: Array<Incident & { t: number }> = [];
  const explained = (t: number): boolean => kills.some((k) => t >= k.killedAt && t <= k.killedAt + 5000);
  for (const l of logs) {
    for (const e of buildTimeline(l.lines)) {
      if (e.step !== 'confirmed-dead' || explained(e.at)) continue;
      const d = e.detail;
      incidents.push({ t: e.at, at: e.iso, pid: e.pid, what: `death verdict with no kill (${String(d.reason)}, ${String(d.sinceLastHeartbeatMs)} ms after the last heartbeat) while the primary lived` });
    }
    for (const line of l.lines) {
      if (!line.includes('promotion failed')) continue;
      const t = Date.parse(line.slice(0, 24));
      if (!explained(t)) incidents.push({ t, at: line.slice(0, 24), pid: l.pid, what: line.slice(25, 400) });
    }
  }
  return incidents;
}

async function getJson(url: string): Promise<Record<string, unknown> | null> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return res.ok ? ((await res.json()) as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
