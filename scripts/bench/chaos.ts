/**
 * Chaos benchmark: K kills of the primary during a 3-participant call, measured by the
 * pages themselves (real Chromium, one browser, three pages with their own tone and tile).
 *
 *   node --import tsx scripts/bench-chaos.ts [--kills 20] [--mode reconnect,takeover,...] [--max-minutes 30]
 *                                             [--out bench-results/chaos.json]
 *
 * Modes (--mode, comma-separated, run one after the other in the same run; default all when
 * the lab can run here, i.e. root, nftables and the native addon, otherwise reconnect only):
 * - reconnect: MCU_TAKEOVER=0 in the namespace lab, kill -9 of the primary process; the standby
 *   raises the VIP, the pages' socket.io reconnects and resumes, the media restarts with a server
 *   offer. Spare paths off. Where the lab cannot run (not root), primary and standby run under
 *   the Supervisor on 127.0.0.1 instead (one system for all kills, a new standby after each).
 * - takeover / takeover-crash: MCU_TAKEOVER=1 in the namespace lab (scripts/lab), Chromium in
 *   its client host, the pages on the VIP; kill -9 of the primary process (its host's orphan
 *   guard silences it, nothing else is done) or a crash of its host (its processes stopped and
 *   its link down: the standby detects it by missed heartbeats and an unanswered host probe). The standby rebuilds
 *   the connections and re-attaches the sessions, the pages see no disconnect, the media
 *   restarts with a server offer on the same RTCPeerConnection. Spare paths off.
 * - warm-spare / warm-spare-crash: the same with MCU_SPARE_PATHS=1: the new primary mixes onto
 *   the spare peer connections the standby kept connected; each page already plays the spare's
 *   audio and switches on its first media (or when told).
 * Lab modes get a fresh lab (and browser, and pages) per kill, as scripts/bench-takeover.ts
 * does (test/integration/takeover.test.ts shows the chained failovers): ~10 s per kill, and
 * nothing of one round leaks into the next. "Protected" there means the standby said
 * standby-ready.
 *
 * Per kill: clean baseline (everyone hears the other two, media steady), primary
 * protected (GET /status `protected: true`, standby `ready`), the pages' gap counters
 * reset, SIGKILL, the promotion awaited, then the pages must hear the right tones again
 * with the media steady for 1.5 s. Each page then reports its longest audio and video
 * gaps, the signaling outage, whether it fell back to a fresh peer connection and whether
 * its participant id changed; the promoted standby reports its timeline. A round whose
 * mix is wrong afterwards is recorded as failed and the run goes on; only a system that
 * is gone (no promotion, no primary, no browser) stops a mode.
 *
 * Every page also runs a numbered request/ack stream on its own signaling connection
 * (test/helpers/signaling-probe.ts): its longest interval between acks is the signaling gap
 * in both modes, next to disconnects and whether the socket/engine.io ids stayed the same.
 *
 * Modes are small descriptors (how to start the system, how to kill it); results are
 * keyed by mode so later modes ('warm-spare') land next to the others in the same report
 * and plot, with each median's ratio to reconnect's. Writes the JSON, an HTML page of
 * inline-SVG distribution plots next to it, and a PNG screenshot of that page; the
 * children's logs go to <out>-logs/<mode>/.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { basename, dirname, extname, join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Browser } from 'playwright-core';
import { Supervisor, type ManagedMcu } from '../../standby/src/supervisor/supervisor.ts';
import { launchChromium, openParticipant, type ParticipantPage } from '../common/browser.ts';
import { freePort } from '../common/ports.ts';
import { startSignalingProbe, stopSignalingProbe, waitForProbeAcks, type SignalingProbeReport } from '../probe/signaling-probe.ts';
import { escapeHtml, renderPlotPage, type PlotMetric } from './common/plot.ts';
import { summarize as summarizeSample, type Summary } from './common/stats.ts';
import { buildTimeline } from '../failover-timeline.ts';
import { LabProcess } from '../lab/lab-process.ts';
import { labMcuEnv } from '../lab/start-mcu.ts';
import { LabTopology, splitCpus, type ServerHost } from '../lab/topology.ts';
import { takeoverLabUnsupportedReason } from '../lab/takeover-support.ts';
// The same participants, tones, tiles and thresholds as the browser tests.
import { HEARD_DB, PARTICIPANTS, seeing, SILENT_DB, TONES } from '../probe/mix.ts';

// ---------------------------------------------------------------------------------------
// Settings

const MAX_KILLS = 200;
const MODE_NAMES = ['reconnect', 'takeover', 'takeover-crash', 'warm-spare', 'warm-spare-crash'] as const;
/** Modes that run in the namespace lab. */
const LAB_MODES: readonly ModeName[] = ['takeover', 'takeover-crash', 'warm-spare', 'warm-spare-crash'];
/** Modes whose signaling connections must survive the failover (no disconnect). */
const TAKEOVER_MODES: readonly ModeName[] = LAB_MODES;
type ModeName = (typeof MODE_NAMES)[number];

/** The MCU composes at 15 fps: the interval between frames when nothing is wrong. */
const NOMINAL_FRAME_MS = 1000 / 15;
/** "Steady media": no frame interval above this and no audio stall above that, for STEADY_MS. */
const STEADY_VIDEO_MS = 200;
const STEADY_AUDIO_MS = 150;
const STEADY_MS = 1500;
/** A stall starting this long after the kill is not the failover's own gap (that one starts at the kill). */
const LATE_STALL_MS = 700;
const BASELINE_TIMEOUT_MS = 20_000;
const PROTECTION_TIMEOUT_MS = 30_000;
const PROMOTION_TIMEOUT_MS = 15_000;
const RECOVERY_TIMEOUT_MS = 25_000;
const POLL_MS = 200;
/** The pages' signaling probe: one request per page this often (test/helpers/signaling-probe.ts). */
const PROBE_INTERVAL_MS = 50;
/**
 * The lab modes' heartbeat window (MCU_MISSED_HEARTBEATS): the product's default unless
 * BENCH_MISSED_HEARTBEATS says otherwise (a host crash is detected after missed x 10 ms and a
 * host probe left unanswered for 20 ms; a kill by the replication stream's end and a
 * port-unreachable probe). Death verdicts while the primary lived are counted as incidents, and fenced.
 */
const LAB_MISSED_HEARTBEATS = process.env.BENCH_MISSED_HEARTBEATS ?? '3';
/** CPUs of the lab's server hosts and client host (BENCH_PIN_CPUS=0 turns the split off). */
const LAB_CPUS = process.env.BENCH_PIN_CPUS === '0' ? null : splitCpus();

// ---------------------------------------------------------------------------------------
// Modes: how to start the system, how to kill its primary

interface Promotion {
  /** Date.now() right before the signal was sent. */
  killedAt: number;
  victimPid: number;
  promotedPid: number;
  /** The promoted standby's own account (epoch-ms timestamps). */
  timeline: Record<string, unknown>;
}

/** The system a mode runs: an address for the pages, a way to know it is protected, a primary to kill. */
interface SystemUnderTest {
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

interface ModeDescriptor {
  name: ModeName;
  description: string;
  /** Page events that must have fired after the kill before a page counts as recovered. */
  recoveryEvents: readonly string[];
  /** Each kill gets a new system (and pages): its standby cannot be replaced in place. */
  freshSystemPerKill: boolean;
  /** `browser`: the run's shared browser, for systems that do not bring their own. */
  start(browser: Browser): Promise<SystemUnderTest>;
  kill(system: SystemUnderTest): Promise<Promotion>;
}

/** A lab mode: takeover with a server-initiated media restart, or with warm spare paths; a process kill or a host crash. */
function labMode(name: ModeName, spares: boolean, fault: 'kill' | 'crash'): ModeDescriptor {
  const media = spares
    ? 'the pages switch to the warm spare paths the standby kept connected (MCU_SPARE_PATHS=1)'
    : 'then the media restarts on the same RTCPeerConnection (server offer; MCU_SPARE_PATHS=0)';
  const how = fault === 'kill' ? 'kill -9 of the primary process' : "crash of the primary's host (its processes stopped, link down; missed heartbeats and a host probe)";
  return {
    name,
    description: `MCU_TAKEOVER=1 in the namespace lab, ${how}: the standby rebuilds the signaling connections (no disconnect), ${media}; a fresh lab per kill`,
    recoveryEvents: spares ? ['spare-switched'] : ['media-restarted'],
    freshSystemPerKill: true,
    start: () => LabSystem.start({ spares, takeover: true }),
    kill: (system) => (fault === 'kill' ? system.killPrimary('SIGKILL') : (system as LabSystem).crashPrimaryHost()),
  };
}

const MODES: Partial<Record<ModeName, ModeDescriptor>> = {
  reconnect: {
    name: 'reconnect',
    description:
      'kill -9 of the primary process in the namespace lab (a fresh lab per kill); the standby raises the VIP, signaling reconnects and resumes, server-initiated media restart on the same RTCPeerConnection (MCU_SPARE_PATHS=0). Without the lab (not root): primary and standby under the Supervisor on 127.0.0.1',
    recoveryEvents: ['reconnected', 'media-restarted'],
    freshSystemPerKill: true,
    start: (browser) => (reconnectOnLoopback ? SupervisedSystem.start(browser) : LabSystem.start({ spares: false, takeover: false })),
    kill: (system) => system.killPrimary('SIGKILL'),
  },
  takeover: labMode('takeover', false, 'kill'),
  'takeover-crash': labMode('takeover-crash', false, 'crash'),
  'warm-spare': labMode('warm-spare', true, 'kill'),
  'warm-spare-crash': labMode('warm-spare-crash', true, 'crash'),
};

class SystemGoneError extends Error {
  readonly code = 'SYSTEM_GONE';
  constructor(message: string) {
    super(message);
    this.name = 'SystemGoneError';
  }
}

interface Incident {
  at: string;
  pid: number | null;
  what: string;
}

interface FailoverStep {
  ms: number;
  pid: number | null;
  step: string;
  message: string;
}

/** Primary + hot standby under the project's Supervisor, on 127.0.0.1, re-protected after every promotion. */
class SupervisedSystem implements SystemUnderTest {
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
    const supervisor = new Supervisor({ port, replicationPort: await freePort(), host: '127.0.0.1', env: { MCU_SPARE_PATHS: '0' } });
    const system = new SupervisedSystem(supervisor, `http://127.0.0.1:${port}`, browser);
    registerCleanup(() => system.close());
    await supervisor.start();
    return system;
  }

  status(): Promise<Record<string, unknown> | null> {
    return getJson(`${this.url}/status`);
  }

  async protection(): Promise<string | null> {
    const status = await getJson(`${this.url}/status`);
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
class LabSystem implements SystemUnderTest {
  readonly url: string;
  readonly browser: Browser;
  readonly #lab: LabTopology;
  readonly #primary: LabProcess;
  readonly #standby: LabProcess;
  #killed = false;
  #closing: Promise<void> | null = null;

  readonly #takeover: boolean;

  private constructor(lab: LabTopology, primary: LabProcess, standby: LabProcess, browser: Browser, takeover: boolean) {
    this.#takeover = takeover;
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
      for (const p of processes) await p.close(500).catch(() => undefined);
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
      browser = await launchChromium([], { netns: lab.namespace('client'), ...(lab.cpus ? { cpus: lab.cpus.clients } : {}) });
      const b = browser;
      registerCleanup(() => b.close());
      return new LabSystem(lab, primary, standby, browser, options.takeover);
    } catch (err) {
      await browser?.close().catch(() => undefined);
      for (const p of processes) await p.close(500).catch(() => undefined);
      await lab.down().catch(() => undefined);
      throw err;
    }
  }

  async status(): Promise<Record<string, unknown> | null> {
    // From the client host on a fresh connection: the test process cannot reach the VIP.
    return (this.#lab.fetchJson('client', `${this.url}/status`) as Promise<Record<string, unknown>>).catch(() => null);
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
      for (const p of [this.#standby, this.#primary]) await p.close(500).catch(() => undefined);
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

// ---------------------------------------------------------------------------------------
// What the pages hear, see and measured

interface Hearing {
  /** The mix test's verdict: the other two heard, its own tone silent. */
  ok: boolean;
  othersHeard: boolean;
  ownSilent: boolean;
  ownDb: number;
  levels: Record<string, number>;
}

/** What the page hears (the mix test's check through the same page API), split into its two halves. */
async function hearing(page: ParticipantPage): Promise<Hearing> {
  const levels = await page.toneLevels(TONES);
  const others = othersOf(page);
  const othersHeard = others.every((f) => levels[String(f)]! > HEARD_DB);
  const ownDb = levels[String(page.spec.toneHz)]!;
  const ownSilent = ownDb < SILENT_DB;
  return { ok: othersHeard && ownSilent, othersHeard, ownSilent, ownDb, levels };
}

/** Loudest level of the page's own tone over a few analyser windows (it fluctuates by several dB). */
async function ownToneDb(page: ParticipantPage, reads = 4): Promise<number> {
  let max = -Infinity;
  for (let i = 0; i < reads; i++) {
    if (i > 0) await sleep(150);
    max = Math.max(max, (await hearing(page)).ownDb);
  }
  return Math.round(max * 10) / 10;
}

function othersOf(page: ParticipantPage): number[] {
  return PARTICIPANTS.filter((p) => p.name !== page.spec.name).map((p) => p.toneHz);
}

/**
 * How long the page's media has been steady up to now, ms: no rendered-frame interval
 * above STEADY_VIDEO_MS and no stretch without new audio packets above STEADY_AUDIO_MS.
 * Computed in the page from the probe's own 30-s history (no named inner functions:
 * tsx's keepNames would reference a helper the page does not have).
 */
function steadyFor(page: ParticipantPage): Promise<number> {
  return page.page.evaluate(
    ({ videoMs, audioMs }) => {
      const probe = window.mcuDemo.probe;
      if (!probe) return 0;
      const now = performance.now();
      let lastBad = -Infinity;
      const frames = probe.frameTimes;
      for (let i = 1; i < frames.length; i++) if (frames[i]! - frames[i - 1]! > videoMs) lastBad = Math.max(lastBad, frames[i]!);
      if (frames.length === 0 || now - frames[frames.length - 1]! > videoMs) lastBad = now;
      let lastCount = -1;
      let lastChangeAt: number | null = null;
      for (const [t, count] of probe.audioSamples) {
        if (count === lastCount) continue;
        if (lastChangeAt !== null && t - lastChangeAt > audioMs) lastBad = Math.max(lastBad, t);
        lastChangeAt = t;
        lastCount = count;
      }
      if (lastChangeAt === null || now - lastChangeAt > audioMs) lastBad = now;
      const oldest = Math.min(frames[0] ?? now, probe.audioSamples[0]?.[0] ?? now);
      return Number.isFinite(lastBad) ? now - lastBad : now - oldest;
    },
    { videoMs: STEADY_VIDEO_MS, audioMs: STEADY_AUDIO_MS },
  );
}

interface ArmedPage {
  eventCount: number;
  /** performance.now() in the page when the counters were reset. */
  armedAt: number;
  /** Median interval between rendered frames just before the kill. */
  frameIntervalMs: number | null;
  /** inbound-rtp video stats id -> [freezeCount, totalFreezesDuration s]. */
  freezes: Record<string, [number, number]>;
}

/** Right before the kill: remember the peer connection and the freeze counters, reset the gap counters. */
function armPage(page: ParticipantPage): Promise<ArmedPage> {
  return page.page.evaluate(async () => {
    const demo = window.mcuDemo;
    const client = demo.client!;
    (window as unknown as { __benchPc?: RTCPeerConnection }).__benchPc = client.pc;
    const frames = demo.probe!.frameTimes.slice(-31);
    const intervals: number[] = [];
    for (let i = 1; i < frames.length; i++) intervals.push(frames[i]! - frames[i - 1]!);
    intervals.sort((a, b) => a - b);
    const freezes: Record<string, [number, number]> = {};
    (await client.pc.getStats()).forEach((s: { id: string; type: string; kind?: string; freezeCount?: number; totalFreezesDuration?: number }) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') freezes[s.id] = [s.freezeCount ?? 0, s.totalFreezesDuration ?? 0];
    });
    demo.probe!.resetGaps();
    return { eventCount: demo.events.length, armedAt: performance.now(), frameIntervalMs: intervals.length > 0 ? intervals[intervals.length >> 1]! : null, freezes };
  });
}

interface PageReadout {
  events: Array<{ event: string; at: number; detail?: unknown }>;
  longestAudioGapMs: number;
  longestVideoGapMs: number;
  videoFrames: number;
  audioPolls: number;
  participantId: string | null;
  samePeerConnection: boolean;
  freezes: Record<string, [number, number]>;
  state: string;
  /** Every stall since the arming (epoch-ms start, duration), not just the longest. */
  stalls: Array<{ kind: 'audio' | 'video' | 'audio-poll'; at: number; ms: number }>;
  /** Longest stretch between changes of the received audio count as the polls saw them (the earlier method). */
  pollAudioGapMs: number;
  /** When new audio arrived (each batch's first packet, epoch ms), since the arming. */
  audioArrivals: number[];
}

/** After the recovery: the page's own measurements and the events since the kill (epoch-ms times). */
function readPage(page: ParticipantPage, armed: ArmedPage): Promise<PageReadout> {
  const args = { from: armed.eventCount, since: armed.armedAt, videoMs: STEADY_VIDEO_MS, audioMs: STEADY_AUDIO_MS };
  return page.page.evaluate(async ({ from, since, videoMs, audioMs }) => {
    const demo = window.mcuDemo;
    const client = demo.client!;
    const probe = demo.probe!;
    const gaps = probe.gaps();
    const stalls: Array<{ kind: 'audio' | 'video' | 'audio-poll'; at: number; ms: number }> = [];
    // Audio stalls by the packets' own arrival stamps (the probe's arrivals: a gap runs from the
    // latest packet before it to the first packet after it).
    let lastPacket: number | null = null;
    for (const [first, latest] of probe.audioArrivals) {
      if (lastPacket !== null && first >= since && first - lastPacket > audioMs) stalls.push({ kind: 'audio', at: performance.timeOrigin + lastPacket, ms: first - lastPacket });
      lastPacket = latest;
    }
    const frames = probe.frameTimes;
    for (let i = 1; i < frames.length; i++) {
      if (frames[i]! >= since && frames[i]! - frames[i - 1]! > videoMs) stalls.push({ kind: 'video', at: performance.timeOrigin + frames[i - 1]!, ms: frames[i]! - frames[i - 1]! });
    }
    // The previous sessions' method, for comparison: poll times at which the received count changed.
    let pollGapMs = 0;
    let lastCount = -1;
    let lastChangeAt: number | null = null;
    for (const [t, count] of probe.audioSamples) {
      if (count === lastCount) continue;
      if (lastChangeAt !== null && t >= since) {
        pollGapMs = Math.max(pollGapMs, t - lastChangeAt);
        if (t - lastChangeAt > audioMs) stalls.push({ kind: 'audio-poll', at: performance.timeOrigin + lastChangeAt, ms: t - lastChangeAt });
      }
      lastChangeAt = t;
      lastCount = count;
    }
    const freezes: Record<string, [number, number]> = {};
    (await client.pc.getStats()).forEach((s: { id: string; type: string; kind?: string; freezeCount?: number; totalFreezesDuration?: number }) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') freezes[s.id] = [s.freezeCount ?? 0, s.totalFreezesDuration ?? 0];
    });
    return {
      events: demo.events.slice(from).map((e) => ({ event: e.event, at: performance.timeOrigin + e.at, detail: e.detail })),
      ...gaps,
      participantId: client.participantId,
      samePeerConnection: (window as unknown as { __benchPc?: RTCPeerConnection }).__benchPc === client.pc,
      freezes,
      state: client.state,
      stalls,
      pollAudioGapMs: pollGapMs,
      audioArrivals: probe.audioArrivals.filter(([first]) => first >= since).map(([first]) => performance.timeOrigin + first),
    };
  }, args);
}

// ---------------------------------------------------------------------------------------
// One round: baseline, kill, recovery, readout

interface PageSample {
  name: string;
  /** Heard the right tones with steady media before the deadline. */
  recovered: boolean;
  /** Kill -> start of the steady media that ended the round (the first frame/packet after the last stall). */
  mediaBackMs: number | null;
  hears: boolean;
  sees: boolean;
  levels: Record<string, number>;
  /** Loudest own-tone level over 4 analyser reads right before the kill / after the recovery, dB. */
  ownToneBeforeDb: number;
  ownToneAfterDb: number | null;
  /** The page probe's longest audio gap: from the latest packet before it to the first after it, by the packets' arrival stamps (20 ms polls). */
  audioGapMs: number | null;
  /** The earlier method: the longest interval between poll times at which the received count changed. */
  audioGapPollMs: number | null;
  videoGapMs: number | null;
  frameIntervalMs: number | null;
  videoGlitchMs: number | null;
  signalingOutageMs: number | null;
  /** The signaling probe's longest interval between two answered requests (both modes; includes up to one request interval). */
  signalingGapMs: number | null;
  /** The probe's longest request -> answer time. */
  signalingAckLatencyMs: number | null;
  /** The probe's stream: requests sent, answered ok, refused, never answered, out of order. */
  signalingRequests: { sent: number; acked: number; failed: number; missing: number; outOfOrder: number } | null;
  /** socket.io `disconnect` events the page saw. */
  disconnects: number | null;
  /** Same socket.io id, engine.io id and transport after the failover as before. */
  sameSignalingConnection: boolean | null;
  resumed: boolean | null;
  /** Kill -> 'reconnected' / 'media-restarted' in the page (its clock). */
  reconnectedAtMs: number | null;
  mediaRestartedAtMs: number | null;
  mediaRestartReason: string | null;
  mediaRestartTookMs: number | null;
  /** Audio arrivals around the kill (ms after it, -200..+800): when some inbound audio stream grew (first new packet). */
  audioArrivalsMs: number[];
  /** Warm spare: kill -> the page's switch, the old path's last packet and the spare's first audio packet (page clocks, ms). */
  spareSwitch: { trigger: string; atMs: number; oldLastPacketMs: number | null; spareFirstAudioMs: number | null } | null;
  fallback: boolean;
  newPeerConnection: boolean;
  idChanged: boolean;
  /**
   * Chromium's own inbound-rtp video freezes during the round, summed over the stats
   * entries alive at the end. Blind to the failover itself: the new primary sends a new
   * SSRC, so the stream whose gap it was is gone and the new one starts with no freeze
   * (newInboundVideo). Kept only to show freezes after the restart.
   */
  freezeCount: number | null;
  freezeMs: number | null;
  /** The inbound video stats id changed (a new SSRC from the new primary). */
  newInboundVideo: boolean;
  /** Every stall (video interval > 200 ms, audio stall > 150 ms) since the kill: start relative to the kill, duration. */
  stalls: Array<{ kind: 'audio' | 'video' | 'audio-poll'; fromMs: number; ms: number }>;
  state: string | null;
}

/** The probe's report as sample fields (all null when the probe could not be read). */
function signalingFields(r: SignalingProbeReport | null): Pick<PageSample, 'signalingGapMs' | 'signalingAckLatencyMs' | 'signalingRequests' | 'disconnects' | 'sameSignalingConnection'> {
  if (!r) return { signalingGapMs: null, signalingAckLatencyMs: null, signalingRequests: null, disconnects: null, sameSignalingConnection: null };
  return {
    signalingGapMs: r.maxAckGapMs,
    signalingAckLatencyMs: r.maxAckLatencyMs,
    signalingRequests: { sent: r.sent, acked: r.acked, failed: r.failed, missing: r.missing, outOfOrder: r.outOfOrder },
    disconnects: r.disconnects.length,
    sameSignalingConnection: r.after.socketId === r.before.socketId && r.after.engineId === r.before.engineId && r.after.transport === r.before.transport,
  };
}

type FailureKind = 'disconnected' | 'not-recovered' | 'other-tone-missing' | 'own-tone-audible' | 'tiles-wrong' | 'status' | 'readout' | 'round-error';

interface KillRow {
  mode: ModeName;
  kill: number;
  ok: boolean;
  failure: string | null;
  failureKinds: FailureKind[];
  /** Mix findings not caused by the kill (already there before it). */
  warnings: string[];
  notes: string[];
  killedAt: number | null;
  victimPid: number | null;
  promotedPid: number | null;
  epoch: number | null;
  reason: string | null;
  detectionMs: number | null;
  promotionMs: number | null;
  /** Kill -> the promoted process logs 'serving as primary' (signaling port open). */
  acceptingMs: number | null;
  /** Kill -> timeline.servingAt (set when mcu.start() resolves: replication and heartbeats ready too). */
  completeMs: number | null;
  /** Kill -> last heartbeat the standby heard (negative: before the kill). */
  lastHeartbeatMs: number | null;
  /** 1-minute load average at the kill: on a shared 2-core machine, anything far above ~2.5 means others competed for the CPU. */
  load1: number;
  /**
   * Kill -> the replacement standby is ready (it is spawned at promotion complete; its
   * boot competes with the call for the CPU). Known by the next round's start.
   */
  reprotectedMs: number | null;
  pages: PageSample[];
  status: { role: unknown; epoch: unknown; participants: unknown } | null;
  steps: FailoverStep[];
}

interface Call {
  /** Called when a round found the system protected (the previous round's re-protection is known then). */
  onProtected?: () => void;
  browser: Browser;
  system: SystemUnderTest;
  room: string;
  pages: ParticipantPage[];
  ids: Array<string | null>;
}

/** Opens the three pages; pages already open leave the call first (or they would linger as 'away' participants). */
async function openCall(call: Call): Promise<void> {
  for (const p of call.pages) {
    await p.page.click('#leave', { timeout: 2000 }).catch(() => undefined);
    await p.close();
  }
  call.pages = [];
  for (const spec of PARTICIPANTS) call.pages.push(await openParticipant(call.browser, call.system.url, call.room, spec));
  call.ids = await Promise.all(call.pages.map((p) => p.participantId()));
}

interface CleanCheck {
  ok: boolean;
  /** Date.now() since when the media has been steady (set when ok). */
  steadySince: number | null;
  levels: Record<string, number>;
  why: string;
}

/**
 * One look: does the page hear the other two, with media steady for STEADY_MS? Its own
 * tone is not part of this gate: it is recorded before the kill and judged after it, so a
 * page that heard itself already before a kill is told apart from one the failover broke.
 */
async function checkClean(page: ParticipantPage): Promise<CleanCheck> {
  try {
    const heard = await hearing(page);
    if (!heard.othersHeard) return { ok: false, steadySince: null, levels: heard.levels, why: `hears ${fmtLevels(heard.levels)}` };
    const steady = await steadyFor(page);
    if (steady < STEADY_MS) return { ok: false, steadySince: null, levels: heard.levels, why: `media steady for only ${Math.round(steady)} ms` };
    return { ok: true, steadySince: Date.now() - steady, levels: heard.levels, why: 'clean' };
  } catch (err) {
    return { ok: false, steadySince: null, levels: {}, why: `page error: ${(err as Error).message.split('\n')[0]}` };
  }
}

/** Polls every page until it is clean or the deadline passes; the last look per page. */
async function waitClean(pages: ParticipantPage[], deadline: number): Promise<Map<string, CleanCheck>> {
  const results = new Map<string, CleanCheck>();
  await Promise.all(
    pages.map(async (page) => {
      let last = await checkClean(page);
      while (!last.ok && Date.now() < deadline) {
        await sleep(POLL_MS);
        last = await checkClean(page);
      }
      results.set(page.spec.name, last);
    }),
  );
  return results;
}

async function waitProtected(system: SystemUnderTest, notes: string[]): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    const deadline = Date.now() + PROTECTION_TIMEOUT_MS;
    let why = await system.protection();
    while (why !== null && Date.now() < deadline) {
      await sleep(250);
      why = await system.protection();
    }
    if (why === null) return;
    const repaired = await system.repairProtection().catch((err: unknown) => `repair failed: ${(err as Error).message.split('\n')[0]}`);
    if (repaired === null) throw new SystemGoneError(`not protected after ${PROTECTION_TIMEOUT_MS} ms: ${why}`);
    notes.push(repaired);
  }
  throw new SystemGoneError('still not protected after a repair');
}

async function runRound(mode: ModeDescriptor, call: Call, kill: number): Promise<KillRow> {
  const row = emptyRow(mode.name, kill);

  // Clean baseline: if the call is not clean (a previous round left it broken), rejoin once.
  let baseline = await waitClean(call.pages, Date.now() + BASELINE_TIMEOUT_MS);
  let dirty = [...baseline.entries()].filter(([, v]) => !v.ok);
  if (dirty.length > 0) {
    row.notes.push(`baseline not clean (${dirty.map(([n, v]) => `${n}: ${v.why}`).join('; ')}): pages reopened`);
    await openCall(call);
    baseline = await waitClean(call.pages, Date.now() + BASELINE_TIMEOUT_MS);
    dirty = [...baseline.entries()].filter(([, v]) => !v.ok);
    if (dirty.length > 0) throw new SystemGoneError(`the call cannot be made clean again: ${dirty.map(([n, v]) => `${n}: ${v.why}`).join('; ')}`);
  }
  await waitProtected(call.system, row.notes);
  call.onProtected?.();

  const ownBefore = await Promise.all(call.pages.map((p) => ownToneDb(p)));
  const armed = await Promise.all(call.pages.map((p) => armPage(p)));
  // The signaling probe, in motion before the kill so its gap is measured from a running stream.
  await Promise.all(call.pages.map((p) => startSignalingProbe(p, PROBE_INTERVAL_MS)));
  await Promise.all(call.pages.map((p) => waitForProbeAcks(p, 3)));
  row.load1 = loadavg()[0]!;
  const promotion = await mode.kill(call.system);
  const { killedAt, timeline } = promotion;
  row.killedAt = killedAt;
  row.victimPid = promotion.victimPid;
  row.promotedPid = promotion.promotedPid;
  const at = (key: string): number | null => (typeof timeline[key] === 'number' ? (timeline[key] as number) : null);
  row.epoch = at('epoch');
  row.reason = typeof timeline.reason === 'string' ? timeline.reason : null;
  const detectedAt = at('detectedAt');
  const promotionStartedAt = at('promotionStartedAt');
  const servingAt = at('servingAt');
  const lastHeartbeatAt = at('lastHeartbeatAt');
  row.detectionMs = detectedAt === null ? null : detectedAt - killedAt;
  row.promotionMs = servingAt === null || promotionStartedAt === null ? null : servingAt - promotionStartedAt;
  row.completeMs = servingAt === null ? null : servingAt - killedAt;
  row.lastHeartbeatMs = lastHeartbeatAt === null ? null : lastHeartbeatAt - killedAt;

  // Recovery: every page hears the right tones again, with steady media and the mode's events seen.
  const deadline = killedAt + RECOVERY_TIMEOUT_MS;
  const recovered = new Map<string, CleanCheck>();
  await Promise.all(
    call.pages.map(async (page, i) => {
      let state: CleanCheck;
      while (true) {
        const seen = await page.page
          .evaluate((from) => window.mcuDemo.events.slice(from).map((e) => e.event), armed[i]!.eventCount)
          .catch(() => [] as string[]);
        const missing = mode.recoveryEvents.filter((e) => !seen.includes(e));
        const clean = await checkClean(page);
        state = missing.length === 0 ? clean : { ...clean, ok: false, why: `no ${missing.join('/')} event yet; ${clean.why}` };
        if (state.ok || Date.now() >= deadline) break;
        await sleep(POLL_MS);
      }
      recovered.set(page.spec.name, state);
    }),
  );
  const probes = await Promise.all(call.pages.map((p) => stopSignalingProbe(p).catch(() => null)));

  const failures: string[] = [];
  const fail = (kind: FailureKind, text: string): void => {
    failures.push(text);
    if (!row.failureKinds.includes(kind)) row.failureKinds.push(kind);
  };
  const tiles = PARTICIPANTS.map((p) => p.tile);
  for (const [i, page] of call.pages.entries()) {
    const rec = recovered.get(page.spec.name)!;
    const sample: PageSample = {
      name: page.spec.name,
      recovered: rec.ok,
      mediaBackMs: rec.steadySince === null ? null : rec.steadySince - killedAt,
      hears: false,
      sees: false,
      levels: rec.levels,
      ownToneBeforeDb: ownBefore[i]!,
      ownToneAfterDb: null,
      audioGapMs: null,
      audioGapPollMs: null,
      videoGapMs: null,
      frameIntervalMs: armed[i]!.frameIntervalMs,
      videoGlitchMs: null,
      signalingOutageMs: null,
      ...signalingFields(probes[i] ?? null),
      resumed: null,
      reconnectedAtMs: null,
      mediaRestartedAtMs: null,
      mediaRestartReason: null,
      mediaRestartTookMs: null,
      spareSwitch: null,
      audioArrivalsMs: [],
      fallback: false,
      newPeerConnection: false,
      idChanged: false,
      freezeCount: null,
      freezeMs: null,
      newInboundVideo: false,
      stalls: [],
      state: null,
    };
    row.pages.push(sample);
    if (TAKEOVER_MODES.includes(mode.name) && (sample.disconnects !== 0 || sample.sameSignalingConnection !== true)) {
      fail('disconnected', `${page.spec.name}: signaling not kept (${sample.disconnects ?? '?'} disconnects, same connection ${String(sample.sameSignalingConnection)})`);
    }
    if (!rec.ok) fail('not-recovered', `${page.spec.name} not recovered within ${RECOVERY_TIMEOUT_MS} ms (${rec.why})`);
    try {
      const out = await readPage(page, armed[i]!);
      sample.stalls = out.stalls.map((st) => ({ kind: st.kind, fromMs: Math.round(st.at - killedAt), ms: Math.round(st.ms) }));
      sample.audioArrivalsMs = out.audioArrivals.map((t) => Math.round(t - killedAt)).filter((ms) => ms >= -200 && ms <= 800);
      const reconnected = out.events.filter((e) => e.event === 'reconnected').at(-1);
      const restarts = out.events.filter((e) => e.event === 'media-restarted');
      const restart = restarts.at(-1);
      const detail = (e: { detail?: unknown } | undefined): Record<string, unknown> => (e?.detail ?? {}) as Record<string, unknown>;
      sample.audioGapMs = out.longestAudioGapMs;
      sample.audioGapPollMs = out.pollAudioGapMs;
      sample.videoGapMs = out.longestVideoGapMs;
      sample.videoGlitchMs = Math.max(0, out.longestVideoGapMs - NOMINAL_FRAME_MS);
      sample.signalingOutageMs = typeof detail(reconnected).outageMs === 'number' ? (detail(reconnected).outageMs as number) : null;
      sample.resumed = typeof detail(reconnected).resumed === 'boolean' ? (detail(reconnected).resumed as boolean) : null;
      sample.reconnectedAtMs = reconnected ? reconnected.at - killedAt : null;
      sample.mediaRestartedAtMs = restart ? restart.at - killedAt : null;
      sample.mediaRestartReason = typeof detail(restart).reason === 'string' ? (detail(restart).reason as string) : null;
      sample.mediaRestartTookMs = typeof detail(restart).tookMs === 'number' ? (detail(restart).tookMs as number) : null;
      const switched = out.events.find((e) => e.event === 'spare-switched');
      if (switched) {
        const d = detail(switched);
        const rel = (v: unknown): number | null => (typeof v === 'number' ? Math.round(v - killedAt) : null);
        sample.spareSwitch = { trigger: String(d.trigger), atMs: Math.round(switched.at - killedAt), oldLastPacketMs: rel(d.oldPathLastPacketAt), spareFirstAudioMs: rel(d.spareFirstAudioAt) };
      }
      sample.fallback = restarts.some((e) => String(detail(e).reason ?? '').startsWith('fallback'));
      sample.newPeerConnection = !out.samePeerConnection;
      sample.idChanged = out.participantId !== call.ids[i];
      const before = out.samePeerConnection ? armed[i]!.freezes : {};
      sample.freezeCount = Object.entries(out.freezes).reduce((sum, [id, [c]]) => sum + c - (before[id]?.[0] ?? 0), 0);
      sample.freezeMs = 1000 * Object.entries(out.freezes).reduce((sum, [id, [, d]]) => sum + d - (before[id]?.[1] ?? 0), 0);
      sample.newInboundVideo = Object.keys(out.freezes).some((id) => !(id in armed[i]!.freezes));
      sample.state = out.state;
      if (sample.idChanged) call.ids[i] = out.participantId;
      // The mix must be right: the other two and not itself, and all three tiles.
      // A click in the audio (a splice) lifts every analyser bin for one 170-ms window:
      // a wrong mix stays wrong, so look again for a few seconds before calling it a failure.
      sample.ownToneAfterDb = await ownToneDb(page);
      let heard = await hearing(page);
      if (!heard.ok) {
        const first = heard;
        for (let t = 0; !heard.ok && t < 12; t++) {
          await sleep(250);
          heard = await hearing(page);
        }
        const news = !first.othersHeard || sample.ownToneBeforeDb < SILENT_DB;
        if (heard.ok && news) row.notes.push(`${page.spec.name} mix blip (${fmtLevels(first.levels)}), right again within 3 s`);
      }
      sample.hears = heard.ok;
      sample.levels = heard.levels;
      if (!heard.othersHeard) fail('other-tone-missing', `${page.spec.name} hears ${fmtLevels(heard.levels)}`);
      else if (!heard.ownSilent && sample.ownToneBeforeDb >= SILENT_DB) {
        // Not the failover's doing: the page heard its tone as loud before the kill
        // (with 400/700/1100 Hz it was 1100 - 700 = 400, an intermodulation product). Recorded, not failed.
        row.warnings.push(`${page.spec.name} own tone ${heard.ownDb.toFixed(0)} dB after, ${sample.ownToneBeforeDb.toFixed(0)} dB already before the kill`);
      } else if (!heard.ownSilent) fail('own-tone-audible', `${page.spec.name} hears its own tone (silent before the kill): ${fmtLevels(heard.levels)}`);
      let seen = await seeing(page, tiles);
      for (let t = 0; !seen.ok && t < 20; t++) {
        await sleep(250);
        seen = await seeing(page, tiles);
      }
      sample.sees = seen.ok;
      if (!seen.ok) fail('tiles-wrong', `${page.spec.name} sees ${JSON.stringify(seen.pixels)} instead of ${tiles.join(' ')}`);
    } catch (err) {
      if (!call.browser.isConnected()) throw new SystemGoneError('the browser is gone');
      fail('readout', `${page.spec.name}: page readout failed: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  const status = await call.system.status();
  row.status = status && { role: status.role, epoch: status.epoch, participants: status.participants };
  if (!status) fail('status', 'the new primary does not answer /status');
  else if (status.role !== 'primary' || status.participants !== PARTICIPANTS.length) fail('status', `/status: role ${String(status.role)}, ${String(status.participants)} participants`);
  row.steps = call.system.failoverSteps([promotion.victimPid, promotion.promotedPid], killedAt);
  row.acceptingMs = row.steps.find((st) => st.step === 'serving' && st.pid === promotion.promotedPid)?.ms ?? null;
  // Detection from the logs (scripts/failover-timeline.ts): the promoted standby's verdict line; the timeline's value otherwise.
  row.detectionMs = row.steps.find((st) => st.step === 'confirmed-dead' && st.pid === promotion.promotedPid)?.ms ?? row.detectionMs;
  row.ok = failures.length === 0;
  row.failure = failures.length > 0 ? failures.join('; ') : null;
  return row;
}

// ---------------------------------------------------------------------------------------
// Statistics and report

type Stats = Summary;

/** min/median/p95/max/... of the finite values (scripts/bench-stats.ts), null when there are none. */
function summarize(values: number[]): Stats | null {
  const finite = values.filter(Number.isFinite);
  return finite.length === 0 ? null : summarizeSample(finite, 1);
}

type PageMetric = 'audioGapMs' | 'audioGapPollMs' | 'videoGapMs' | 'videoGlitchMs' | 'signalingGapMs' | 'signalingOutageMs' | 'mediaRestartedAtMs' | 'mediaBackMs';
type KillMetric = 'detectionMs' | 'promotionMs' | 'acceptingMs' | 'completeMs';

/** What each metric is, in report order; `per` says what one sample is. */
const METRICS: Array<{ key: PageMetric | KillMetric; per: 'page' | 'kill'; label: string; note: string }> = [
  { key: 'audioGapMs', per: 'page', label: 'Audio gap', note: 'longest stretch without a received audio packet, per page per kill: from the latest packet before it to the first after it, by the packets\' arrival stamps (inbound-rtp lastPacketReceivedTimestamp, 20 ms per packet; polled every 20 ms); only a growing count of some stream ends a gap, and a played spare path counts' },
  { key: 'audioGapPollMs', per: 'page', label: 'Audio gap (poll times)', note: 'the earlier sessions\' method: the longest interval between the poll times at which the received count changed (Chromium\'s ~50 ms stats cache and a busy page put both ends late)' },
  { key: 'videoGapMs', per: 'page', label: 'Video gap (raw)', note: 'longest interval between rendered frames (requestVideoFrameCallback), per page per kill' },
  { key: 'videoGlitchMs', per: 'page', label: 'Video glitch', note: `raw video gap minus the nominal ${NOMINAL_FRAME_MS.toFixed(1)} ms frame interval (15 fps)` },
  { key: 'signalingGapMs', per: 'page', label: 'Signaling gap', note: `longest interval between answered requests of a numbered request/ack stream (one request per ${PROBE_INTERVAL_MS} ms on the page's own connection), per page per kill` },
  { key: 'signalingOutageMs', per: 'page', label: 'Signaling outage', note: "socket.io disconnect -> resumed join ('reconnected' outageMs), per page per kill" },
  { key: 'detectionMs', per: 'kill', label: 'Detection', note: "the promoted standby's 'confirmed-dead' log step - kill time (failover-timeline.ts), per kill" },
  { key: 'promotionMs', per: 'kill', label: 'Promotion', note: 'timeline.servingAt - timeline.promotionStartedAt: restore, serve, then replication and the heartbeat beacon (a worker thread) started; per kill' },
  { key: 'acceptingMs', per: 'kill', label: 'Kill -> serving (log)', note: "the promoted process's 'serving as primary' log step - kill time (signaling port open), per kill" },
  { key: 'completeMs', per: 'kill', label: 'Kill -> promotion complete', note: 'timeline.servingAt - kill time (mcu.start() resolved: replication and heartbeats ready too), per kill' },
  { key: 'mediaRestartedAtMs', per: 'page', label: "Kill -> 'media-restarted' in the page", note: 'when the page had answered the new primary\'s offer (page clock), per page per kill' },
  { key: 'mediaBackMs', per: 'page', label: 'Kill -> media steady again', note: 'start of the steady stretch (no frame interval > 200 ms, no audio stall > 150 ms) that ended the round, per page per kill' },
];

interface ModeReport {
  description: string;
  startedAt: string;
  durationS: number;
  killsRequested: number;
  rounds: number;
  aborted: string | null;
  stoppedByTimeCap: boolean;
  counts: { failedRounds: number; pagesDisconnected: number; incidents: number; lateStalls: number; ownToneAudibleBeforeKill: number; failureKinds: Record<string, number>; pageSamples: number; fallbacks: number; newPeerConnections: number; changedIds: number; notResumed: number };
  metrics: Record<string, Stats | null>;
  /** 1-minute load average at the kills (2 cores: the call alone keeps it near 2). */
  load1: Stats | null;
  /** Things no kill explains (spurious death verdicts, processes exiting on their own). */
  incidents: Incident[];
  /** Each page's own tone in its mix (dB), right before the kills and after the recoveries: the "hears itself" margin. */
  ownToneDb: { before: Stats | null; after: Stats | null; thresholdDb: number };
  rows: KillRow[];
}

function pageValues(rows: KillRow[], key: PageMetric): number[] {
  // Page metrics only where the page recovered: an unrecovered page's "gap" is just the timeout.
  return rows.flatMap((r) => r.pages.filter((p) => p.recovered).map((p) => p[key])).filter((v): v is number => typeof v === 'number');
}

function killValues(rows: KillRow[], key: KillMetric): number[] {
  return rows.map((r) => r[key]).filter((v): v is number => typeof v === 'number');
}

function modeReport(mode: ModeDescriptor, startedAt: number, killsRequested: number, rows: KillRow[], aborted: string | null, stoppedByTimeCap: boolean, incidents: Incident[]): ModeReport {
  const pages = rows.flatMap((r) => r.pages);
  const metrics: Record<string, Stats | null> = {};
  for (const m of METRICS) metrics[m.key] = m.per === 'page' ? summarize(pageValues(rows, m.key as PageMetric)) : summarize(killValues(rows, m.key as KillMetric));
  return {
    description: mode.description,
    startedAt: new Date(startedAt).toISOString(),
    durationS: Math.round((Date.now() - startedAt) / 1000),
    killsRequested,
    rounds: rows.length,
    aborted,
    stoppedByTimeCap,
    counts: {
      failedRounds: rows.filter((r) => !r.ok).length,
      pagesDisconnected: pages.filter((p) => (p.disconnects ?? 0) > 0).length,
      incidents: incidents.length,
      lateStalls: pages.reduce((n, p) => n + p.stalls.filter((st) => st.fromMs > LATE_STALL_MS && st.kind !== 'audio-poll').length, 0),
      ownToneAudibleBeforeKill: rows.reduce((n, r) => n + r.warnings.length, 0),
      failureKinds: rows.flatMap((r) => r.failureKinds).reduce<Record<string, number>>((acc, k) => ({ ...acc, [k]: (acc[k] ?? 0) + 1 }), {}),
      pageSamples: pages.length,
      fallbacks: pages.filter((p) => p.fallback).length,
      newPeerConnections: pages.filter((p) => p.newPeerConnection).length,
      changedIds: pages.filter((p) => p.idChanged).length,
      notResumed: pages.filter((p) => p.resumed === false).length,
    },
    metrics,
    load1: summarize(rows.map((r) => r.load1)),
    incidents,
    ownToneDb: {
      before: summarize(rows.flatMap((r) => r.pages.map((p) => p.ownToneBeforeDb))),
      after: summarize(rows.flatMap((r) => r.pages.map((p) => p.ownToneAfterDb ?? NaN))),
      thresholdDb: SILENT_DB,
    },
    rows,
  };
}

function fmtLevels(levels: Record<string, number>): string {
  return Object.entries(levels)
    .map(([hz, db]) => `${hz}Hz ${Number.isFinite(db) ? db.toFixed(0) : '-inf '}dB`)
    .join(', ');
}

const n0 = (v: number | null | undefined, w = 5): string => (typeof v === 'number' ? String(Math.round(v)) : '-').padStart(w);

function printRow(row: KillRow): void {
  const per = (f: (p: PageSample) => number | null): string => row.pages.map((p) => n0(f(p), 5)).join('');
  // Stalls that started well after the failover's own gap: something else froze the media.
  const late = row.pages.flatMap((p) => p.stalls.filter((st) => st.fromMs > LATE_STALL_MS && st.kind !== 'audio-poll').map((st) => ({ ...st, name: p.name })));
  const worst = late.reduce<(typeof late)[number] | null>((w, st) => (w === null || st.ms > w.ms ? st : w), null);
  const flags = [
    `load ${row.load1.toFixed(1)}`,
    ...(worst ? [`${late.length} late stall${late.length > 1 ? 's' : ''} (first +${Math.min(...late.map((st) => st.fromMs))}, worst ${worst.name} ${worst.kind} ${worst.ms} ms at +${worst.fromMs})`] : []),
    ...row.pages.filter((p) => p.fallback).map((p) => `${p.name} fell back`),
    ...row.pages.filter((p) => (p.disconnects ?? 0) > 0).map((p) => `${p.name} disconnected`),
    ...row.pages.filter((p) => p.idChanged).map((p) => `${p.name} new id`),
    ...row.notes,
    ...row.warnings.map((w) => `warning: ${w}`),
    ...(row.failure ? [`FAILED: ${row.failure}`] : []),
  ];
  console.log(
    `${String(row.kill).padStart(4)}  ${row.ok ? 'ok  ' : 'FAIL'} ${n0(row.detectionMs, 5)} ${n0(row.promotionMs, 5)} ${n0(row.acceptingMs, 5)} |${per((p) => p.audioGapMs)} |${per((p) => p.audioGapPollMs)} |${per((p) => p.videoGapMs)} |${per((p) => p.videoGlitchMs)} |${per((p) => p.signalingGapMs)} |${per((p) => p.signalingOutageMs)} |${per((p) => p.mediaRestartedAtMs)} |${per((p) => p.mediaBackMs)}  ${flags.join('; ')}`,
  );
}

function printRowHeader(mode: ModeName): void {
  console.log(`\nmode ${mode}: per kill (ms; page columns are Red Green Blue)`);
  console.log('det: kill -> detection; promo: promotion (timeline); serve: kill -> serving (log); restart: kill -> media-restarted; back: kill -> media steady again');
  console.log(`kill  res    det promo serve |  audio gap R G B | audio/poll R G B |  video gap R G B | vid glitch R G B |    sig gap R G B | sig outage R G B |    restart R G B |       back R G B`);
}

function printSummary(reports: Record<string, ModeReport>): void {
  for (const [mode, rep] of Object.entries(reports)) {
    const c = rep.counts;
    const kinds = Object.entries(c.failureKinds).map(([k, n]) => `${k} ${n}`).join(', ');
    console.log(`\nmode ${mode}: ${rep.rounds} kills in ${rep.durationS} s, ${c.failedRounds} failed rounds${kinds ? ` (${kinds})` : ''}, ${c.fallbacks} fallbacks, ${c.newPeerConnections} new peer connections, ${c.changedIds} changed ids, ${c.notResumed} not resumed, ${c.pagesDisconnected} page samples with a disconnect, ${c.ownToneAudibleBeforeKill} pages hearing their own tone (already before the kill)${rep.aborted ? `; ABORTED: ${rep.aborted}` : ''}${rep.stoppedByTimeCap ? '; stopped by the time cap' : ''}`);
    console.log(`load average (1 min) at the kills: min ${rep.load1?.min ?? '-'}, median ${rep.load1?.median ?? '-'}, max ${rep.load1?.max ?? '-'}`);
    console.log(`late stalls (starting > ${LATE_STALL_MS} ms after the kill): ${c.lateStalls}; incidents no kill explains: ${c.incidents}`);
    for (const inc of rep.incidents) console.log(`  ${inc.at} pid ${inc.pid ?? '?'}: ${inc.what}`);
    for (const r of rep.rows) {
      const late = r.pages.flatMap((p) => p.stalls.filter((st) => st.fromMs > LATE_STALL_MS && st.kind !== 'audio-poll').map((st) => `${p.name} ${st.kind} ${st.ms} ms at +${st.fromMs}`));
      const shown = late.length > 6 ? [...late.slice(0, 6), `... ${late.length - 6} more`] : late;
      if (late.length > 0) console.log(`  kill ${r.kill}: ${shown.join(', ')} | promotion complete +${n0(r.completeMs, 0)}, new standby ready +${n0(r.reprotectedMs, 0)}`);
    }
    console.log(`${'metric'.padEnd(44)} ${'per'.padEnd(5)} ${'n'.padStart(4)} ${'min'.padStart(7)} ${'median'.padStart(7)} ${'p95'.padStart(7)} ${'max'.padStart(7)}`);
    for (const m of METRICS) {
      const s = rep.metrics[m.key];
      const v = (x: number | undefined): string => (x === undefined ? '-' : String(Math.round(x))).padStart(7);
      console.log(`${(m.label + ' (ms)').padEnd(44)} ${m.per.padEnd(5)} ${String(s?.n ?? 0).padStart(4)} ${v(s?.min)} ${v(s?.median)} ${v(s?.p95)} ${v(s?.max)}`);
    }
    for (const [when, s] of Object.entries(rep.ownToneDb).filter(([k]) => k !== 'thresholdDb') as Array<[string, Stats | null]>) {
      const v = (x: number | undefined): string => (x === undefined ? '-' : String(Math.round(x))).padStart(7);
      console.log(`${`Own tone in own mix, ${when} kill (dB)`.padEnd(44)} ${'page'.padEnd(5)} ${String(s?.n ?? 0).padStart(4)} ${v(s?.min)} ${v(s?.median)} ${v(s?.p95)} ${v(s?.max)}`);
    }
  }
  const ratios = medianRatios(reports);
  const others = Object.keys(ratios).filter((m) => m !== 'reconnect');
  if (others.length === 0) return;
  console.log(`\nmedians side by side (ratio: the mode's median / reconnect's)`);
  console.log(`${'metric'.padEnd(44)} ${'reconnect'.padStart(9)} ${others.map((m) => `${m.padStart(9)} ${'ratio'.padStart(6)}`).join(' ')}`);
  for (const m of METRICS) {
    const med = (mode: string): string => String(reports[mode]?.metrics[m.key]?.median === undefined ? '-' : Math.round(reports[mode]!.metrics[m.key]!.median)).padStart(9);
    console.log(`${(m.label + ' (ms)').padEnd(44)} ${med('reconnect')} ${others.map((o) => `${med(o)} ${String(ratios[o]![m.key] ?? '-').padStart(6)}`).join(' ')}`);
  }
}

function plotHtml(report: Report): string {
  const colours = new Map(PARTICIPANTS.map((p) => [p.name, p.tile]));
  const modes = Object.entries(report.modes);
  const metrics: PlotMetric[] = METRICS.map((m) => ({
    label: m.label,
    unit: 'ms',
    note: m.note,
    series: modes.map(([name, rep]) => ({
      name,
      points:
        m.per === 'page'
          ? rep.rows.flatMap((r) =>
              r.pages
                .filter((p) => p.recovered && typeof p[m.key as PageMetric] === 'number')
                .map((p) => ({ value: p[m.key as PageMetric] as number, colour: colours.get(p.name), label: `kill ${r.kill} ${p.name}${p.fallback ? ' (fallback)' : ''}` })),
            )
          : rep.rows.filter((r) => typeof r[m.key as KillMetric] === 'number').map((r) => ({ value: r[m.key as KillMetric] as number, colour: '#555555', label: `kill ${r.kill}` })),
    })),
  }));
  metrics.push({
    label: 'Own tone in own mix',
    unit: 'dB',
    note: `loudest of 4 analyser reads; "silent" means below ${SILENT_DB} dB; before the kill vs after the recovery, per page per kill`,
    reference: { value: SILENT_DB, label: `silent below ${SILENT_DB} dB` },
    series: modes.flatMap(([name, rep]) =>
      (['before', 'after'] as const).map((when) => ({
        name: `${name} ${when}`,
        points: rep.rows.flatMap((r) =>
          r.pages
            .map((p) => ({ value: when === 'before' ? p.ownToneBeforeDb : (p.ownToneAfterDb ?? NaN), colour: colours.get(p.name), label: `kill ${r.kill} ${p.name}` }))
            .filter((p) => Number.isFinite(p.value)),
        ),
      })),
    ),
  });
  const counts = modes
    .map(([name, r]) => `<tr><td>${escapeHtml(name)}</td><td>${r.rounds}</td><td>${r.counts.failedRounds}</td><td>${r.counts.fallbacks}</td><td>${r.counts.newPeerConnections}</td><td>${r.counts.changedIds}</td><td>${r.counts.pagesDisconnected}</td><td>${r.counts.ownToneAudibleBeforeKill}</td><td>${r.counts.lateStalls}</td><td>${r.counts.incidents}</td><td>${r.durationS}</td><td>${escapeHtml(r.aborted ?? (r.stoppedByTimeCap ? 'time cap' : ''))}</td></tr>`)
    .join('');
  return renderPlotPage({
    title: 'Chaos benchmark: kill -9 of the primary during a 3-participant call',
    subtitle: [
      `${report.date} · ${report.machine.cpus} cores (${report.machine.model}) · Node ${report.machine.node} · Chromium ${report.machine.chromium}`,
      `${modes.map(([n, r]) => `${n}: ${r.rounds} kills`).join(' · ')} · page samples: one per page per kill (pages that recovered); detection/promotion: one per kill`,
    ],
    legend: [...PARTICIPANTS.map((p) => ({ colour: p.tile, label: `${p.name} page` })), { colour: '#555555', label: 'per kill' }],
    metrics,
    footerHtml: `${modes
      .filter(([, r]) => r.incidents.length > 0)
      .map(([n, r]) => `<h2>Incidents no kill explains (${escapeHtml(n)})</h2><ul>${r.incidents.map((i) => `<li>${escapeHtml(`${i.at} pid ${i.pid ?? '?'}: ${i.what}`)}</li>`).join('')}</ul>`)
      .join('')}<table><tr><th>mode</th><th>kills</th><th>failed rounds</th><th>fallbacks</th><th>new peer connections</th><th>changed ids</th><th>page samples with a disconnect</th><th>own tone audible (before the kill too)</th><th>late stalls</th><th>incidents</th><th>duration s</th><th>stopped</th></tr>${counts}</table>`,
  });
}

interface Report {
  date: string;
  machine: { cpus: number; model: string; node: string; chromium: string; loadavg: number[]; memoryGb: number };
  config: Record<string, unknown>;
  modes: Record<string, ModeReport>;
  /** Per mode, per metric: the mode's median divided by reconnect's (null without both). */
  medianRatioToReconnect: Record<string, Record<string, number | null>>;
}

function medianRatios(modes: Record<string, ModeReport>): Record<string, Record<string, number | null>> {
  const base = modes.reconnect;
  const out: Record<string, Record<string, number | null>> = {};
  if (!base) return out;
  for (const [name, rep] of Object.entries(modes)) {
    out[name] = {};
    for (const m of METRICS) {
      const v = rep.metrics[m.key]?.median;
      const b = base.metrics[m.key]?.median;
      out[name]![m.key] = v === undefined || b === undefined || b === 0 ? null : Math.round((v / b) * 100) / 100;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Cleanup: everything we started goes, on success, failure or Ctrl-C

const cleanups: Array<() => Promise<void>> = [];
let cleaning: Promise<void> | null = null;

function registerCleanup(fn: () => Promise<void>): void {
  cleanups.push(fn);
}

function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    void p.catch(() => undefined).finally(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Our own child processes (by /proc parent pid) that are MCUs, standbys or the browser: killed by pid. */
function killOwnChildren(): number[] {
  const killed: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== process.pid) continue;
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (!/(mcu|standby)\/src\/main\.ts|chrom/.test(cmd)) continue;
      process.kill(Number(entry), 'SIGKILL');
      killed.push(Number(entry));
    } catch {
      // Gone already.
    }
  }
  return killed;
}

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const fn of cleanups.reverse()) await withTimeout(fn(), 10_000);
    const stragglers = killOwnChildren();
    if (stragglers.length > 0) console.error(`killed leftover child processes: ${stragglers.join(', ')}`);
  })();
  return cleaning;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------
// Main

const { values: args } = parseArgs({
  options: {
    kills: { type: 'string', default: '20' },
    mode: { type: 'string' },
    'max-minutes': { type: 'string', default: '30' },
    out: { type: 'string', default: 'bench-results/chaos.json' },
  },
});

function intArg(raw: string | undefined, min: number, max: number, name: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(`--${name} must be an integer in [${min}, ${max}] (got ${raw})`);
    process.exit(2);
  }
  return n;
}

const kills = intArg(args.kills, 1, MAX_KILLS, 'kills');
const maxMinutes = intArg(args['max-minutes'], 1, 24 * 60, 'max-minutes');
// Takeover mode needs the lab: root, nftables, the native addon (capture, TCP_REPAIR).
const labUnavailable = await takeoverLabUnsupportedReason();
const modeNames = (args.mode ?? (labUnavailable ? 'reconnect' : MODE_NAMES.join(','))).split(',').map((m) => m.trim()).filter(Boolean);
if (args.mode === undefined && labUnavailable) console.log(`lab modes skipped: ${labUnavailable}`);
const labModeAsked = modeNames.find((m) => (LAB_MODES as readonly string[]).includes(m));
if (labModeAsked && labUnavailable) {
  console.error(`mode "${labModeAsked}" cannot run here: ${labUnavailable}`);
  process.exit(2);
}
/** Reconnect mode runs in the lab like the others when it can, on loopback otherwise. */
const reconnectOnLoopback = labUnavailable !== null;
if (!reconnectOnLoopback) {
  await LabTopology.cleanupStale();
  // The harness (Playwright driving the pages) belongs with the clients: off the servers' CPUs.
  if (LAB_CPUS) execFileSync('taskset', ['-a', '-p', '-c', LAB_CPUS.clients, String(process.pid)], { stdio: 'ignore' });
}
for (const m of modeNames) {
  if (!(MODE_NAMES as readonly string[]).includes(m)) {
    console.error(`unknown mode "${m}": one of ${MODE_NAMES.join(', ')}`);
    process.exit(2);
  }
  if (!MODES[m as ModeName]) {
    console.error(`mode "${m}" is not implemented yet (implemented: ${Object.keys(MODES).join(', ')})`);
    process.exit(2);
  }
}
const outJson = args.out!;
const outBase = join(dirname(outJson), basename(outJson, extname(outJson)));
const outHtml = `${outBase}.html`;
const outPng = `${outBase}.png`;
const logDir = `${outBase}-logs`;

const startedAt = Date.now();
const deadline = startedAt + maxMinutes * 60_000;
const reports: Record<string, ModeReport> = {};
let chromiumVersion = 'unknown';
let current: { mode: ModeDescriptor; started: number; rows: KillRow[] } | null = null;

function buildReport(): Report {
  const modes = { ...reports };
  if (current && !modes[current.mode.name]) modes[current.mode.name] = modeReport(current.mode, current.started, kills, current.rows, 'interrupted', false, []);
  return {
    date: new Date(startedAt).toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version, chromium: chromiumVersion, loadavg: loadavg(), memoryGb: Math.round(totalmem() / 2 ** 30) },
    config: {
      kills,
      modes: modeNames,
      maxMinutes,
      steadyMs: STEADY_MS,
      steadyVideoMs: STEADY_VIDEO_MS,
      steadyAudioMs: STEADY_AUDIO_MS,
      nominalFrameMs: NOMINAL_FRAME_MS,
      recoveryTimeoutMs: RECOVERY_TIMEOUT_MS,
      participants: PARTICIPANTS,
      probeIntervalMs: PROBE_INTERVAL_MS,
      labMissedHeartbeats: LAB_MISSED_HEARTBEATS,
    },
    modes,
    medianRatioToReconnect: medianRatios(modes),
  };
}

function writeLogs(mode: ModeName, systems: SystemUnderTest[]): void {
  const dir = join(logDir, mode);
  // This run's processes only: pids of an earlier run would mix two runs' timelines.
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const system of systems) for (const l of system.logs()) writeFileSync(join(dir, `${l.pid}-${l.role}.log`), l.lines.join('\n') + '\n');
}

async function writeOutputs(browser: Browser | null): Promise<void> {
  const report = buildReport();
  mkdirSync(dirname(outJson), { recursive: true });
  writeFileSync(outJson, JSON.stringify(report, null, 2) + '\n');
  const html = plotHtml(report);
  writeFileSync(outHtml, html);
  if (!browser?.isConnected()) return;
  const page = await browser.newPage({ viewport: { width: 1060, height: 900 } });
  try {
    await page.setContent(html);
    await page.screenshot({ path: outPng, fullPage: true });
  } finally {
    await page.close();
  }
}

async function runMode(mode: ModeDescriptor, browser: Browser, budgetEnd: number): Promise<void> {
  const started = Date.now();
  const rows: KillRow[] = [];
  current = { mode, started, rows };
  let aborted: string | null = null;
  let stoppedByTimeCap = false;
  /** Every system of this mode (one, or one per kill), for the logs and the incidents. */
  const systems: SystemUnderTest[] = [];
  let system: SystemUnderTest | null = null;
  const call: Call = { browser, system: null as unknown as SystemUnderTest, room: `chaos-${mode.name}`, pages: [], ids: [] };
  const retire = async (): Promise<void> => {
    for (const p of call.pages) await p.close();
    call.pages = [];
    await system?.close();
    system = null;
  };
  try {
    console.log(`\n== mode ${mode.name}: ${mode.description}`);
    console.log(`3 pages in room ${call.room}; ${kills} kills (time budget until ${new Date(budgetEnd).toISOString()})`);
    printRowHeader(mode.name);
    for (let k = 1; k <= kills; k++) {
      if (interrupted) break;
      if (Date.now() > budgetEnd) {
        stoppedByTimeCap = true;
        console.log(`time cap reached after ${k - 1} kills`);
        break;
      }
      let row: KillRow;
      try {
        if (system === null || mode.freshSystemPerKill) {
          await retire();
          const sys = await mode.start(browser);
          system = sys;
          systems.push(sys);
          call.system = sys;
          call.browser = sys.browser;
          call.onProtected = () => {
            const prev = rows.at(-1);
            if (prev?.killedAt != null && prev.reprotectedMs === null) {
              const at = sys.standbyReadyAfter(prev.killedAt);
              prev.reprotectedMs = at === null ? null : at - prev.killedAt;
            }
          };
          await openCall(call);
        }
        row = await runRound(mode, call, k);
      } catch (err) {
        const gone = err instanceof SystemGoneError || !call.browser.isConnected();
        if (gone && !mode.freshSystemPerKill) {
          aborted = err instanceof SystemGoneError ? err.message : `the browser is gone: ${(err as Error).message}`;
          console.log(`kill ${k}: system gone, mode aborted: ${aborted}`);
          break;
        }
        // Something unexpected in this round only (or in this round's own system): record it and go on.
        row = { ...emptyRow(mode.name, k), failure: `round error: ${(err as Error).message.split('\n')[0]}`, failureKinds: ['round-error'] };
      }
      rows.push(row);
      printRow(row);
    }
  } catch (err) {
    aborted = `could not run: ${(err as Error).message.split('\n')[0]}`;
    console.log(`mode ${mode.name} aborted: ${(err as Error).stack ?? String(err)}`);
  } finally {
    call.onProtected?.();
    await retire();
    const killsSeen = rows.flatMap((r) => (r.killedAt !== null && r.victimPid !== null ? [{ killedAt: r.killedAt, victimPid: r.victimPid }] : []));
    const incidents = systems.flatMap((sys) => sys.incidents(killsSeen));
    writeLogs(mode.name, systems);
    reports[mode.name] = modeReport(mode, started, kills, rows, aborted, stoppedByTimeCap, incidents);
    current = null;
  }
}

function emptyRow(mode: ModeName, kill: number): KillRow {
  return {
    mode,
    kill,
    ok: false,
    failure: null,
    failureKinds: [],
    warnings: [],
    notes: [],
    killedAt: null,
    victimPid: null,
    promotedPid: null,
    epoch: null,
    reason: null,
    detectionMs: null,
    promotionMs: null,
    acceptingMs: null,
    completeMs: null,
    lastHeartbeatMs: null,
    load1: loadavg()[0]!,
    reprotectedMs: null,
    pages: [],
    status: null,
    steps: [],
  };
}

let browser: Browser | null = null;
let interrupted = false;

async function shutdown(signal: NodeJS.Signals): Promise<void> {
  if (interrupted) {
    killOwnChildren();
    process.exit(130);
  }
  interrupted = true;
  console.error(`\n${signal}: stopping; writing what was measured and cleaning up (again to force)`);
  try {
    await withTimeout(writeOutputs(null), 5000);
  } finally {
    await cleanup();
    process.exit(130);
  }
}
process.on('SIGINT', (s) => void shutdown(s));
process.on('SIGTERM', (s) => void shutdown(s));

try {
  browser = await launchChromium();
  const b = browser;
  registerCleanup(() => b.close());
  chromiumVersion = browser.version();
  console.log(`chaos benchmark: ${kills} kills per mode (${modeNames.join(', ')}), time cap ${maxMinutes} min, Chromium ${chromiumVersion}, ${cpus().length} cores`);
  for (const [i, name] of modeNames.entries()) {
    // Share what is left of the time cap between the modes still to run.
    const budgetEnd = Date.now() + (deadline - Date.now()) / (modeNames.length - i);
    await runMode(MODES[name as ModeName]!, browser, budgetEnd);
  }
  printSummary(reports);
  await writeOutputs(browser);
  console.log(`\nwritten: ${outJson}, ${outHtml}, ${outPng}, logs in ${logDir}/`);
  if (Object.values(reports).some((r) => r.aborted)) process.exitCode = 1;
} catch (err) {
  console.error('benchmark failed:', err);
  process.exitCode = 1;
} finally {
  await cleanup();
}
// Playwright's and socket.io's handles may linger a moment; nothing is left to wait for.
process.exit(process.exitCode ?? 0);
