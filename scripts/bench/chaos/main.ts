/**
 * Chaos benchmark: K kills of the primary during a 3-participant call, measured by the
 * pages themselves (real Chromium, one browser, three pages with their own tone and tile).
 *
 *   node --import tsx scripts/bench/chaos/main.ts [--kills 20] [--mode reconnect,takeover,...] [--max-minutes 30]
 *                                                 [--out bench-results/chaos.json]
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
 * Lab modes get a fresh lab (and browser, and pages) per kill, as scripts/bench/takeover.ts
 * does (test/integration/takeover.test.ts shows the chained failovers): ~10 s per kill, and
 * nothing of one round leaks into the next. "Protected" there means the standby said
 * standby-ready.
 *
 * Per kill: clean baseline (everyone hears the other two, media steady), primary
 * protected (GET /status `protected: true`, standby `ready`), the pages' gap counters
 * reset, SIGKILL, the promotion awaited, then the pages must hear the right tones again
 * with the media steady for 1.5 s. Each page then reports what a person perceives, its voice
 * gap (the longest stretch one of the other two participants' tones was inaudible) and tile
 * gap (the longest stretch a tile of the grid did not move), next to its longest audio packet
 * and video frame gaps, the signaling outage, whether it fell back to a fresh peer connection and whether
 * its participant id changed; the promoted standby reports its timeline. A round whose
 * mix is wrong afterwards is recorded as failed and the run goes on; only a system that
 * is gone (no promotion, no primary, no browser) stops a mode.
 *
 * Every page also runs a numbered request/ack stream on its own signaling connection
 * (scripts/probe/signaling-probe.ts): its longest interval between acks is the signaling gap
 * in both modes, next to disconnects and whether the socket/engine.io ids stayed the same.
 *
 * Modes are small descriptors (how to start the system, how to kill it); results are
 * keyed by mode so later modes ('warm-spare') land next to the others in the same report
 * and plot, with each median's ratio to reconnect's. Writes the JSON, an HTML page of
 * inline-SVG distribution plots next to it, and a PNG screenshot of that page; the
 * children's logs go to <out>-logs/<mode>/.
 *
 * The parts: settings.ts (modes, thresholds, time limits), systems.ts (the systems under test),
 * modes.ts (the mode descriptors), page-checks.ts (what the pages hear and how steady their
 * media is, through scripts/probe), round.ts (one kill), report.ts (JSON and console table),
 * plot.ts (the HTML plots), cleanup.ts; this file runs the modes.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { basename, dirname, extname, join } from 'node:path';
import type { Browser } from 'playwright-core';
import { INAUDIBLE_BELOW_STEADY_DB, STEADY_BASELINE_MS } from '../../../client-demo/src/stats/perceived-gaps.ts';
import { VOICE_SAMPLE_MS } from '../../../client-demo/src/stats/voice-meter.ts';
import { launchChromium } from '../../common/browser.ts';
import { LabTopology } from '../../lab/topology.ts';
import { takeoverLabUnsupportedReason } from '../../lab/takeover-support.ts';
import { PARTICIPANTS } from '../../probe/mix.ts';
import { parseBenchArgs } from '../common/args.ts';
import { cleanup, killOwnChildren, registerCleanup, withTimeout } from './cleanup.ts';
import { chaosModes, type ModeDescriptor } from './modes.ts';
import { plotHtml } from './plot.ts';
import { modeReport, medianRatios, printRow, printRowHeader, printSummary, type ModeReport, type Report } from './report.ts';
import { emptyRow, openCall, runRound, type Call, type KillRow } from './round.ts';
import {
  LAB_CPUS,
  LAB_MISSED_HEARTBEATS,
  LAB_MODES,
  MAX_KILLS,
  MODE_NAMES,
  NOMINAL_FRAME_MS,
  PROBE_INTERVAL_MS,
  RECOVERY_TIMEOUT_MS,
  STEADY_AUDIO_MS,
  STEADY_MS,
  STEADY_VIDEO_MS,
  type ModeName,
} from './settings.ts';
import { SystemGoneError, type SystemUnderTest } from './systems.ts';

const args = parseBenchArgs({
  command: 'scripts/bench/chaos/main.ts',
  summary: 'Chaos benchmark: kills of the primary during a 3-participant Chromium call, measured by the pages; writes <out>, <out>.html, <out>.png and <out>-logs/.',
  options: {
    kills: { type: 'int', default: 20, min: 1, max: MAX_KILLS, help: 'kills per mode' },
    mode: { type: 'list', choices: MODE_NAMES, defaultText: 'all where the lab can run (root, nftables, native addon), else reconnect', help: 'modes, run one after the other' },
    'max-minutes': { type: 'int', default: 30, min: 1, max: 24 * 60, help: 'time cap of the whole run, shared by the modes' },
    out: { type: 'string', default: 'bench-results/chaos.json', help: 'report file' },
  },
});

const kills = args.kills;
const maxMinutes = args['max-minutes'];
// Takeover mode needs the lab: root, nftables, the native addon (capture, TCP_REPAIR).
const labUnavailable = await takeoverLabUnsupportedReason();
const modeNames: ModeName[] = args.mode ?? (labUnavailable ? ['reconnect'] : [...MODE_NAMES]);
if (args.mode === undefined && labUnavailable) console.log(`lab modes skipped: ${labUnavailable}`);
const labModeAsked = modeNames.find((m) => LAB_MODES.includes(m));
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
const MODES = chaosModes(reconnectOnLoopback);
const outJson = args.out;
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
      voiceSampleMs: VOICE_SAMPLE_MS,
      voiceInaudibleBelowSteadyDb: INAUDIBLE_BELOW_STEADY_DB,
      voiceSteadyBaselineMs: STEADY_BASELINE_MS,
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
    await runMode(MODES[name], browser, budgetEnd);
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
