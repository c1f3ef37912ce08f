/**
 * False takeovers under load: runs the lab pair in takeover mode (primary and standby in their
 * namespaces, a socket.io client sending a numbered request every 10 ms) while both cores are
 * loaded and participants join and leave all the time, and counts what the standby and the
 * primary did although no fault was injected: death verdicts, promotions, primaries that fenced
 * themselves, the primary's own pauses (heartbeat-thread stalls verified with the standby,
 * main-thread-only stalls), and any thread of the primary other than its heartbeat thread seen
 * real-time (sampled every 10 ms).
 *
 *   node --import tsx scripts/bench/false-takeover.ts [--seconds 60] [--busy 2] [--flood 1] [--peers 3] [--stay-ms 2500]
 *     [--join-cycles 500] [--pin 1] [--heartbeat-ms 10] [--missed 3] [--mcu-tree <dir>]
 *
 * The heartbeat's own pauses: the standby's monitor thread logs the longest silence between two
 * beats every 10 s (`longestBeatGapMs`), the primary's beacon thread the longest gap between its
 * ticks (`longestTickGapMs`); both are collected, with the pauses the monitor reports of itself
 * (`heartbeat thread was not scheduled for N ms`, over 15 ms) and the near misses (silences past
 * the missed-beats window). Older MCUs log only the last two. --mcu-tree runs the MCU and standby
 * of another checkout (e.g. an older commit's worktree, with its own native addon built) under
 * this harness, so before and after are measured the same way (bench/before-after.ts does).
 *
 * Joins and leaves (issue 14: the false takeovers happened while pages joined): --peers synthetic
 * libwebrtc participants (scripts/clients/join-leave-peers.ts, in the client host) join one room
 * together, stay --stay-ms, leave and join again, at most --join-cycles rounds and never beyond
 * the run (0 peers: no joins). With --pin 1 (default, 2+ cores) the server hosts run on the first
 * half of the CPUs and the client host on the rest (as bench-chaos does): both MCUs share one
 * CPU, the case where the pauses were seen.
 *
 * Load, bounded in time (it stops with the run, and each load process ends itself after
 * --seconds plus a margin even if this script dies): --busy processes spinning at normal
 * priority, and --flood TCP loopback floods (64 KiB writes through the client host's loopback:
 * the kernel's softirq network path, which is what delays heartbeat datagrams on a loaded host).
 * A false takeover ends its pair (the old primary fences itself); a fresh pair is started for
 * the rest of the run; both processes' logs go to bench-results/false-takeover-logs/. Needs root, iproute2, nftables and the native addon. Prints the counts
 * and load averages and writes bench-results/false-takeover.json and a plot page (.html).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { LabProcessGroup, type LabProcess, type LabEvent } from '../lab/lab-process.ts';
import { labAdminEnv, labMcuEnv } from '../lab/start-mcu.ts';
import { LabTopology, splitCpus, type LabCpus } from '../lab/topology.ts';
import { takeoverLabUnsupportedReason } from '../lab/takeover-support.ts';
import { parseBenchArgs } from './common/args.ts';
import { renderPlotPage } from './common/plot.ts';
import { isRealtime, readThreads, startThreadSampler, type ThreadSamplerReport } from '../common/thread-scheduling.ts';

const CLIENT = 'scripts/clients/takeover-mcu-client.ts';
const PEERS = 'scripts/clients/join-leave-peers.ts';
const SELF = 'scripts/bench/false-takeover.ts';
const LOG_DIR = 'bench-results/false-takeover-logs';

const args = parseBenchArgs({
  command: SELF,
  summary: 'False takeovers under load: the lab pair in takeover mode while both cores are loaded, no fault injected; writes bench-results/false-takeover.json.',
  options: {
    seconds: { type: 'int', default: 60, min: 5, max: 3600, help: 'loaded run time, s' },
    busy: { type: 'int', default: 2, min: 0, max: 16, help: 'processes spinning at normal priority' },
    flood: { type: 'int', default: 1, min: 0, max: 8, help: 'TCP loopback floods in the client host' },
    peers: { type: 'int', default: 3, min: 0, max: 12, help: 'synthetic participants joining and leaving together (0: no joins)' },
    'stay-ms': { type: 'int', default: 2500, min: 100, max: 600_000, help: 'how long each round of participants stays before leaving, ms' },
    'join-cycles': { type: 'int', default: 500, min: 1, max: 100_000, help: 'most join/leave rounds per pair' },
    pin: { type: 'int', default: 1, min: 0, max: 1, help: '1: server hosts on the first half of the CPUs, the client host on the rest' },
    'heartbeat-ms': { type: 'int', default: 10, min: 1, max: 1000, help: 'heartbeat interval (MCU_HEARTBEAT_MS)' },
    missed: { type: 'int', default: 3, min: 1, max: 100, help: 'missed heartbeats before a verdict (MCU_MISSED_HEARTBEATS)' },
    'mcu-tree': { type: 'string', help: "another checkout whose mcu/ and standby/ to run (its native addon built); default: this one's" },
    'load-busy': { type: 'int', min: 1, max: 86_400_000, help: '(internal) be one busy load process for this many ms' },
    'load-flood': { type: 'int', min: 1, max: 86_400_000, help: '(internal) be one loopback flood for this many ms' },
  },
});

// ---- load worker modes (run as child processes of this script) ----

const loadMs = args['load-busy'] ?? args['load-flood'];
if (loadMs !== undefined) {
  const ms = loadMs;
  const end = Date.now() + ms;
  // Ends itself in any case: a load must never outlive the run.
  setTimeout(() => process.exit(0), ms).unref();
  if (args['load-busy'] !== undefined) {
    const spin = (): void => {
      const until = Math.min(end, Date.now() + 50);
      while (Date.now() < until) {
        // busy
      }
      if (Date.now() < end) setImmediate(spin);
      else process.exit(0);
    };
    spin();
  } else {
    const chunk = Buffer.alloc(64 * 1024, 0x5a);
    const server = createServer((s) => s.on('data', () => undefined));
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      const c = connect({ host: '127.0.0.1', port });
      const pump = (): void => {
        while (Date.now() < end && c.write(chunk)) {
          // keep the loopback busy until the socket buffer is full
        }
        if (Date.now() >= end) process.exit(0);
      };
      c.on('connect', pump);
      c.on('drain', pump);
    });
  }
} else {
  await main();
}

interface PairResult {
  startedAt: number;
  endedAt: number;
  seconds: number;
  deathVerdicts: number;
  promotions: number;
  primaryFenced: boolean;
  fencedReason: string | null;
  verdictReasons: string[];
  suspicions: number;
  /** Silences longer than the missed-beats window that a late beat ended before the verdict, ms. */
  nearMisses: number[];
  /** The standby's heartbeat thread: the longest silence between two beats, per 10 s report, ms. */
  beatGapsMs: number[];
  /** The primary's heartbeat thread: the longest gap between two of its ticks, per 10 s report, ms. */
  tickGapsMs: number[];
  /** The standby's heartbeat thread not scheduled (its own pauses over 15 ms), ms. */
  selfPausesMs: number[];
  fenceStalls: number;
  primaryFencing: unknown;
  clientReport: Record<string, unknown> | null;
  /** Why the pair could not be set up or measured (a run goes on with a fresh pair), or null. */
  error: string | null;
  /** Join/leave rounds of the synthetic participants while the pair served. */
  churn: { rounds: number; joins: number; joinFailures: number };
  /** The primary's threads sampled every 10 ms: any real-time thread but its heartbeat thread. */
  primaryThreads: Pick<ThreadSamplerReport, 'samples' | 'longestIntervalMs' | 'unexpectedRealtime'> | null;
}

/** The MCU and standby entry points: this checkout's, or --mcu-tree's. */
function mcuEntries(): { primary: string; standby: string; tree: string | null } {
  const tree = args['mcu-tree'] ? resolve(args['mcu-tree']) : null;
  const primary = tree ? join(tree, 'mcu/src/main.ts') : 'mcu/src/main.ts';
  const standby = tree ? join(tree, 'standby/src/main.ts') : 'standby/src/main.ts';
  if (tree && (!existsSync(primary) || !existsSync(standby))) {
    process.stderr.write(`bench-false-takeover: --mcu-tree ${tree} has no mcu/src/main.ts and standby/src/main.ts\n`);
    process.exit(2);
  }
  return { primary, standby, tree };
}

function maxOf(values: number[]): number | null {
  return values.length > 0 ? Math.max(...values) : null;
}

async function main(): Promise<void> {
  const { seconds, busy, flood, peers, 'stay-ms': stayMs, 'join-cycles': joinCycles, pin, 'heartbeat-ms': heartbeatMs, missed } = args;
  const entries = mcuEntries();
  const cpuSplit = pin === 1 ? splitCpus() : null;
  const unsupported = await takeoverLabUnsupportedReason();
  if (unsupported) {
    process.stderr.write(`bench-false-takeover: ${unsupported}\n`);
    process.exit(2);
  }
  await LabTopology.cleanupStale();

  const loads: ChildProcess[] = [];
  const loadSamples: number[][] = [];
  const loadStart = loadavg();
  const runStart = Date.now();
  const runEnd = runStart + seconds * 1000;
  const pairs: PairResult[] = [];
  let sampler: NodeJS.Timeout | null = null;
  let stopping = false;
  const stopLoads = (): void => {
    for (const l of loads) if (l.exitCode === null && l.signalCode === null) l.kill('SIGKILL');
  };
  process.on('SIGINT', () => {
    stopping = true;
    stopLoads();
  });
  try {
    // A pair that cannot be set up (e.g. its client cannot connect to a fenced primary's host yet)
    // is recorded and replaced; three in a row end the run.
    while (!stopping && Date.now() < runEnd - 5000 && pairs.slice(-3).filter((p) => p.error !== null).length < 3) {
      pairs.push(
        await runPair({
          until: runEnd,
          heartbeatMs,
          missed,
          peers,
          stayMs,
          joinCycles,
          cpus: cpuSplit,
          entries,
          onReady: () => {
            if (loads.length > 0) return;
            const loadMs = runEnd - Date.now() + 2000;
            for (let i = 0; i < busy; i++) loads.push(spawn(process.execPath, ['--import', 'tsx', SELF, '--load-busy', String(loadMs)], { stdio: 'ignore' }));
            for (let i = 0; i < flood; i++) loads.push(spawn(process.execPath, ['--import', 'tsx', SELF, '--load-flood', String(loadMs)], { stdio: 'ignore' }));
            sampler = setInterval(() => loadSamples.push(loadavg()), 5000);
          },
        }),
      );
    }
  } finally {
    if (sampler) clearInterval(sampler);
    stopLoads();
  }
  const loadEnd = loadavg();
  const total = (k: 'deathVerdicts' | 'promotions' | 'suspicions' | 'fenceStalls'): number => pairs.reduce((n, p) => n + p[k], 0);
  const loadedSeconds = pairs.reduce((n, p) => n + p.seconds, 0);
  const result = {
    startedAt: new Date(runStart).toISOString(),
    seconds,
    cpus: cpus().length,
    load: { busyProcesses: busy, loopbackFloods: flood, joiningPeers: peers, stayMs, joinCycles, cpus: cpuSplit },
    heartbeat: { intervalMs: heartbeatMs, missedBeats: missed, detectionBudgetMs: heartbeatMs * missed * 2 },
    loadavg: { start: loadStart, end: loadEnd, max1m: Math.max(loadEnd[0]!, ...loadSamples.map((s) => s[0]!)), samples: loadSamples },
    pairSeconds: loadedSeconds,
    deathVerdicts: total('deathVerdicts'),
    promotions: total('promotions'),
    fencedPrimaries: pairs.filter((p) => p.primaryFenced).length,
    suspicions: total('suspicions'),
    nearMisses: pairs.flatMap((p) => p.nearMisses).sort((a, b) => a - b),
    mcuTree: entries.tree,
    heartbeatPauses: {
      standbyLongestBeatGapMs: maxOf(pairs.flatMap((p) => p.beatGapsMs)),
      primaryLongestTickGapMs: maxOf(pairs.flatMap((p) => p.tickGapsMs)),
      standbySelfPausesMs: pairs.flatMap((p) => p.selfPausesMs).sort((a, b) => a - b),
      beatGapReports: pairs.reduce((n, p) => n + p.beatGapsMs.length, 0),
    },
    fenceStalls: total('fenceStalls'),
    pairErrors: pairs.filter((p) => p.error !== null).length,
    joins: pairs.reduce((n, p) => n + p.churn.joins, 0),
    joinFailures: pairs.reduce((n, p) => n + p.churn.joinFailures, 0),
    unexpectedRealtimeThreads: pairs.reduce((n, p) => n + (p.primaryThreads?.unexpectedRealtime.length ?? 0), 0),
    pairs,
  };
  mkdirSync('bench-results', { recursive: true });
  writeFileSync('bench-results/false-takeover.json', JSON.stringify(result, null, 2) + '\n');
  const windowMs = heartbeatMs * missed;
  const series = (name: string, values: number[]): { name: string; points: Array<{ value: number }> } => ({ name, points: values.map((value) => ({ value })) });
  writeFileSync(
    'bench-results/false-takeover.html',
    renderPlotPage({
      title: 'False takeovers under load: the heartbeat threads\' own pauses',
      subtitle: [
        `${result.startedAt}, ${seconds} s, ${busy} busy + ${flood} flood, ${peers} joining peers, load max ${result.loadavg.max1m.toFixed(1)}; ${result.deathVerdicts} verdicts, ${result.promotions} promotions`,
        entries.tree ? `MCU from ${entries.tree}` : 'MCU from this checkout',
      ],
      metrics: [
        {
          label: 'standby: longest silence between beats',
          unit: 'ms',
          note: 'per 10 s report of the monitor thread',
          reference: { value: windowMs, label: 'missed-beats window' },
          series: [series('per 10 s', pairs.flatMap((p) => p.beatGapsMs))],
        },
        {
          label: "primary: longest gap between the beacon's ticks",
          unit: 'ms',
          note: 'per 10 s report of the beacon thread',
          reference: { value: windowMs, label: 'missed-beats window' },
          series: [series('per 10 s', pairs.flatMap((p) => p.tickGapsMs))],
        },
        { label: 'near misses and heartbeat-thread pauses', unit: 'ms', series: [series('near misses', result.nearMisses), series('monitor pauses', result.heartbeatPauses.standbySelfPausesMs)] },
      ],
    }),
  );
  const f = (x: number[]): string => x.map((v) => v.toFixed(2)).join(' ');
  process.stdout.write(
    [
      `false takeovers under load: ${seconds} s, ${busy} busy + ${flood} loopback flood process(es) on ${result.cpus} cores, heartbeats ${heartbeatMs} ms x ${missed} missed (+ confirm window)`,
      `  joins and leaves: ${peers} participant(s) per round, ${stayMs} ms each; ${result.joins} joins (${result.joinFailures} failed); CPUs ${cpuSplit ? `servers ${cpuSplit.servers}, clients ${cpuSplit.clients}` : 'not pinned'}`,
      `  real-time threads of the primary other than its heartbeat thread: ${result.unexpectedRealtimeThreads}`,
      `  pairs run: ${pairs.length} (${loadedSeconds.toFixed(0)} s with the pair serving under load; ${result.pairErrors} could not be set up or measured)`,
      `  death verdicts: ${result.deathVerdicts}   promotions: ${result.promotions}   primaries fenced: ${result.fencedPrimaries}`,
      `  standby suspicions (replication stream lost): ${result.suspicions}   primary pauses verified with the standby: ${result.fenceStalls}`,
      `  near misses (a beat after more than the missed-beats window, before the verdict): ${result.nearMisses.length}${result.nearMisses.length ? `, silences ${result.nearMisses.join(', ')} ms` : ''}`,
      `  heartbeat threads: longest silence between beats at the standby ${result.heartbeatPauses.standbyLongestBeatGapMs ?? '-'} ms (${result.heartbeatPauses.beatGapReports} reports of 10 s), ` +
        `longest gap between the primary's ticks ${result.heartbeatPauses.primaryLongestTickGapMs ?? '-'} ms, standby thread pauses over 15 ms: ${result.heartbeatPauses.standbySelfPausesMs.length}` +
        `${result.heartbeatPauses.standbySelfPausesMs.length ? ` (${result.heartbeatPauses.standbySelfPausesMs.join(', ')} ms)` : ''}${entries.tree ? `; MCU from ${entries.tree}` : ''}`,
      `  load average (1/5/15 min): start ${f(loadStart)}, end ${f(loadEnd)}, max 1-min ${result.loadavg.max1m.toFixed(2)}`,
      ...pairs.map(
        (p, i) =>
          `  pair ${i}: ${p.seconds.toFixed(0)} s, verdicts ${p.deathVerdicts} (${p.verdictReasons.join(', ') || '-'}), promotions ${p.promotions}, fenced ${p.primaryFenced ? `yes (${p.fencedReason})` : 'no'}, ` +
          `client acked ${String(p.clientReport?.acked ?? '?')}/${String(p.clientReport?.sent ?? '?')}, disconnects ${String(p.clientReport?.disconnects ?? '?')}, ` +
          (p.error ? `ERROR ${p.error.split('\n')[0]}, ` : '') +
          `joins ${p.churn.joins} in ${p.churn.rounds} rounds (${p.churn.joinFailures} failed), heartbeat gaps: standby ${maxOf(p.beatGapsMs) ?? '-'} ms, primary ${maxOf(p.tickGapsMs) ?? '-'} ms, threads sampled ${p.primaryThreads?.samples ?? 0}x (longest interval ${p.primaryThreads?.longestIntervalMs ?? '-'} ms)`,
      ),
      '  written to bench-results/false-takeover.json and .html',
    ].join('\n') + '\n',
  );
}

/** One primary/standby pair under load until `until` or a promotion. */
async function runPair(opts: {
  until: number;
  heartbeatMs: number;
  missed: number;
  peers: number;
  stayMs: number;
  joinCycles: number;
  cpus: LabCpus | null;
  entries: { primary: string; standby: string };
  onReady: () => void;
}): Promise<PairResult> {
  const lab = new LabTopology({ cpus: opts.cpus ?? undefined });
  const processes = new LabProcessGroup(lab);
  const start = processes.start.bind(processes);
  const startedAt = Date.now();
  /** Off for the teardown: stopping the primary first would look like its death. */
  let counting = true;
  const result: PairResult = {
    startedAt,
    endedAt: startedAt,
    seconds: 0,
    deathVerdicts: 0,
    promotions: 0,
    primaryFenced: false,
    fencedReason: null,
    verdictReasons: [],
    suspicions: 0,
    nearMisses: [],
    beatGapsMs: [],
    tickGapsMs: [],
    selfPausesMs: [],
    fenceStalls: 0,
    primaryFencing: null,
    clientReport: null,
    error: null,
    churn: { rounds: 0, joins: 0, joinFailures: 0 },
    primaryThreads: null,
  };
  let sampler: Awaited<ReturnType<typeof startThreadSampler>> | null = null;
  try {
    await lab.up();
    const secret = `false-takeover-${process.pid}-${startedAt}`;
    const common = { LOG_LEVEL: 'info', MCU_HEARTBEAT_MS: String(opts.heartbeatMs), MCU_MISSED_HEARTBEATS: String(opts.missed) };
    const primary = start('primary', opts.entries.primary, [], { ...labMcuEnv(lab, 'primary', secret, { takeover: true }), ...common });
    const listening = await primary.waitForEvent('listening', { timeoutMs: 60_000 });
    const standby = start('standby', opts.entries.standby, [], { ...labMcuEnv(lab, 'standby', secret, { takeover: true }), ...common });
    standby.on('stderr', (line) => {
      if (!counting) return;
      if (line.includes('failover step: primary confirmed dead')) {
        result.deathVerdicts++;
        const m = /"reason":"([^"]+)"/.exec(line);
        const silent = /"sinceLastHeartbeatMs":(\d+)/.exec(line);
        result.verdictReasons.push(`${m?.[1] ?? '?'}${silent ? ` after ${silent[1]} ms of silence` : ''}`);
      }
      if (line.includes('"failover":"suspected"')) result.suspicions++;
      const near = /"nearMissMs":(\d+)/.exec(line);
      if (near) result.nearMisses.push(Number(near[1]));
      const gap = /"longestBeatGapMs":([\d.]+)/.exec(line);
      if (gap) result.beatGapsMs.push(Number(gap[1]));
      const paused = /"pausedMs":(\d+)/.exec(line);
      if (paused && line.includes('heartbeat thread was not scheduled')) result.selfPausesMs.push(Number(paused[1]));
    });
    primary.on('stderr', (line) => {
      if (!counting) return;
      const gap = /"longestTickGapMs":([\d.]+)/.exec(line);
      if (gap) result.tickGapsMs.push(Number(gap[1]));
      if (line.includes('"failover":"fence-stall"')) result.fenceStalls++;
    });
    await standby.waitForEvent('standby-ready', { timeoutMs: 60_000 });
    const client = start('client', CLIENT, [`http://${lab.addresses.vip}:${lab.servicePort}`, 'false-takeover-room', '10'], labAdminEnv(secret));
    await client.waitForEvent('connect', { timeoutMs: 30_000 });
    const joined = await client.request({ op: 'start' }, 30_000);
    if (joined.ok !== true) throw new Error(`join failed: ${JSON.stringify(joined)}`);
    if (opts.peers > 0) {
      const seconds = Math.max(1, Math.floor((opts.until - Date.now()) / 1000));
      const args = ['--room', 'false-takeover-joins', '--peers', String(opts.peers), '--stay-ms', String(opts.stayMs), '--cycles', String(opts.joinCycles), '--seconds', String(seconds)];
      const churn = start('client', PEERS, [`http://${lab.addresses.vip}:${lab.servicePort}`, ...args], {});
      churn.on('event', (e: LabEvent) => {
        if (e.event === 'joined') {
          result.churn.rounds++;
          result.churn.joins += Number(e.peers);
        }
        if (e.event === 'join-failed') result.churn.joinFailures++;
      });
    }
    // The heartbeat thread is the primary's only real-time thread by now (it beats); anything else real-time is a media thread.
    const primaryPid = Number(listening.pid);
    const heartbeatTids = readThreads(primaryPid).filter(isRealtime).map((t) => t.tid);
    sampler = await startThreadSampler(primaryPid, heartbeatTids, 10);
    opts.onReady();
    const loadedFrom = Date.now();
    const remaining = Math.max(0, opts.until - Date.now());
    // Until the end of the run, or a promotion (a false takeover ends this pair).
    const promoted = await standby
      .waitFor((e: LabEvent) => e.event === 'promoted', { timeoutMs: remaining })
      .then(() => true)
      .catch(() => false);
    if (promoted) {
      result.promotions++;
      const fenced = await primary.waitFor((e: LabEvent) => e.event === 'fenced', { timeoutMs: 10_000 }).catch(() => null);
      result.primaryFenced = fenced !== null;
      result.fencedReason = fenced ? String(fenced.reason) : null;
    } else {
      const status = await client.request({ op: 'status' }, 10_000).catch(() => null);
      result.primaryFencing = (status?.status as { fencing?: unknown } | undefined)?.fencing ?? null;
    }
    result.clientReport = (await client.request({ op: 'stop' }, 15_000).catch(() => null)) as Record<string, unknown> | null;
    result.endedAt = Date.now();
    result.seconds = (result.endedAt - loadedFrom) / 1000;
  } catch (err) {
    result.error = (err as Error).message;
    result.endedAt = Date.now();
  } finally {
    counting = false;
    if (sampler) {
      const report = await sampler.stop();
      result.primaryThreads = { samples: report.samples, longestIntervalMs: report.longestIntervalMs, unexpectedRealtime: report.unexpectedRealtime };
    }
    // A false takeover's post-mortem: both processes' logs (their last lines).
    if (result.deathVerdicts > 0) {
      mkdirSync(LOG_DIR, { recursive: true });
      processes.writeLogs(String(startedAt), LOG_DIR);
    }
    // Client and standby first, so the standby never judges the primary's stop.
    await processes.closeAll();
    await lab.down();
  }
  return result;
}
