/**
 * The mixing benchmark: CPU per participant, and the largest room this machine mixes in real
 * time at 640x480/15 fps without audio underruns or dropped composite frames, on each media
 * plane in the same run (`--planes wrtc,mediasoup`: one peer connection per participant, each
 * encoding the grid, against the mediasoup router with the grid encoded once per room).
 *
 * A real MCU process (mcu/src/main.ts, through scripts/bench/mixing-mcu.ts which adds a stats
 * probe) mixes one room; synthetic peers (their own tone and moving coloured tile each) live in
 * separate load-generator processes (scripts/bench/mixing-peers.ts), so the MCU's CPU is read
 * apart from theirs in /proc/<pid>/stat. The room grows N = 1, 2, 3, 4, 6, 8, ...; at each size,
 * after a warm-up, one window measures the MCU (CPU, RSS, mixer counters, event-loop delay) and
 * every peer (composite fps, frame size, audio concealment, what it hears).
 *
 * A size is real time when every peer receives >= 14 composite fps at 640x480, the mixer skipped
 * no audio tick, and jitter-buffer underruns stay under a threshold per member-minute. The load
 * generators compete with the MCU for the same cores: their CPU and the machine's are reported too.
 *
 *   node --import tsx scripts/bench/mixing.ts [--planes wrtc,mediasoup] [--max 12] [--seconds 10] [--warmup 5]
 *        [--per-generator 4] [--time-cap 600] [--underruns-per-min 1] [--max-foreign 25] [--quiet-wait 60]
 *        [--out bench-results/mixing.json]
 *
 * Prints a table per plane and the comparison, writes bench-results/mixing.json and mixing.html.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { MEDIA_PLANES, type MediaPlane } from '../../mcu/src/core/config.ts';
import type { MixerStats } from '../../mcu/src/media/room-mixer.ts';
import { childPids, projectRoot, startNode, type ManagedProcess } from '../common/processes.ts';
import { parseBenchArgs } from './common/args.ts';
import { renderPlotPage, type PlotMetric } from './common/plot.ts';
import type { MixerProbeReport } from './mixing-mcu.ts';
import type { LoadReply, PeerReport, PeerSpec } from './mixing-peers.ts';

const WIDTH = 640;
const HEIGHT = 480;
const FPS = 15;
/** A peer must receive at least this many composite frames per second. */
const MIN_FPS = 14;
const ROOM = 'bench';

interface Options {
  planes: MediaPlane[];
  max: number;
  seconds: number;
  warmup: number;
  perGenerator: number;
  timeCap: number;
  underrunsPerMin: number;
  /**
   * Other processes on the host may use this much (% of one core): before each window the benchmark
   * waits up to quietWait seconds for that, and a window that saw more is measured again, up to twice.
   */
  maxForeign: number;
  quietWait: number;
  out: string;
}

function parseOptions(): Options {
  const args = parseBenchArgs({
    command: 'scripts/bench/mixing.ts',
    summary: 'CPU per participant and the largest room this machine mixes in real time (640x480/15 fps), on each media plane in the same run; writes bench-results/mixing.json and mixing.html.',
    options: {
      planes: { type: 'list', default: ['wrtc', 'mediasoup'], choices: MEDIA_PLANES, help: 'media planes to measure, one after the other in this run' },
      max: { type: 'int', default: 12, min: 1, max: 32, help: 'largest room size' },
      seconds: { type: 'number', default: 10, min: 2, max: 120, help: 'measurement window per room size, s' },
      warmup: { type: 'number', default: 5, min: 0, max: 60, help: 'warm-up before each window, s' },
      'per-generator': { type: 'int', default: 4, min: 1, max: 32, help: 'synthetic peers per load-generator process' },
      'time-cap': { type: 'number', default: 600, min: 30, max: 3600, help: 'time cap of the whole run, s' },
      'underruns-per-min': { type: 'number', default: 1, min: 0, max: 1000, help: 'jitter-buffer underruns per member-minute still real time' },
      'max-foreign': { type: 'number', default: 25, min: 0, max: 10000, help: 'CPU other processes may use during a window, % of one core' },
      'quiet-wait': { type: 'number', default: 60, min: 0, max: 3600, help: 'longest wait for the host to become that quiet, s' },
      out: { type: 'string', default: join(projectRoot, 'bench-results', 'mixing.json'), help: 'report file' },
    },
  });
  return {
    planes: [...new Set(args.planes)] as MediaPlane[],
    max: args.max,
    seconds: args.seconds,
    warmup: args.warmup,
    perGenerator: args['per-generator'],
    timeCap: args['time-cap'],
    underrunsPerMin: args['underruns-per-min'],
    maxForeign: args['max-foreign'],
    quietWait: args['quiet-wait'],
    out: args.out,
  };
}

/** 1, 2, 3, 4, then every second size, up to max (max itself included). */
function roomSizes(max: number): number[] {
  const sizes: number[] = [];
  for (let n = 1; n <= max; n = n < 4 ? n + 1 : n + 2) sizes.push(n);
  if (sizes[sizes.length - 1] !== max) sizes.push(max);
  return sizes;
}

/** Tones 250 Hz apart (Opus noise around a tone would blur closer ones), colours spread over the hue circle. */
function peerSpec(index: number): PeerSpec {
  const hue = (index * 137.5) % 360;
  return { name: `peer-${index + 1}`, toneHz: 300 + 250 * index, colour: hsvToRgb(hue, 0.75, 0.85) };
}

function hsvToRgb(h: number, s: number, v: number): [number, number, number] {
  const f = (n: number): number => {
    const k = (n + h / 60) % 6;
    return Math.round(255 * (v - v * s * Math.max(0, Math.min(k, 4 - k, 1))));
  };
  return [f(5), f(3), f(1)];
}

// ---- /proc readings ------------------------------------------------------------------------

const CLK_TCK = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU seconds (user + system) a process has used so far, or NaN when it is gone. */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

function rssMb(pid: number): number {
  try {
    const kb = Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    return Math.round(kb / 102.4) / 10;
  } catch {
    return NaN;
  }
}

/** Busy and total jiffies of the whole machine. */
function machineJiffies(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/**
 * Waits until processes other than `ours` use at most `maxPct` of a core (sampled over 2 s), for
 * at most `maxWaitS`. Returns the last foreign load seen, % of one core.
 */
async function waitForQuiet(ours: number[], maxPct: number, maxWaitS: number): Promise<number> {
  const until = Date.now() + maxWaitS * 1000;
  for (;;) {
    const m0 = machineJiffies();
    const o0 = ours.reduce((s, pid) => s + cpuSeconds(pid), 0);
    const t0 = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const elapsedS = (performance.now() - t0) / 1000;
    const m1 = machineJiffies();
    const o1 = ours.reduce((s, pid) => s + cpuSeconds(pid), 0);
    const busyCores = ((m1.busy - m0.busy) / Math.max(1, m1.total - m0.total)) * cpus().length;
    const foreign = Math.max(0, busyCores * 100 - ((o1 - o0) / elapsedS) * 100);
    if (foreign <= maxPct || Date.now() >= until) return round(foreign, 1);
  }
}

// ---- the processes -----------------------------------------------------------------------

interface BenchMcu {
  process: ManagedProcess;
  url: string;
  /** The sequence number of the probe's last report (each MCU process counts from 1). */
  probeSeq: number;
  stop(): Promise<void>;
}

/** The MCU's mediasoup worker (its child process on the mediasoup plane; none on wrtc). tsx's esbuild service is a child too: not counted. */
function workerPids(mcu: BenchMcu): number[] {
  return childPids(mcu.process.pid).filter((pid) => {
    try {
      // comm is cut to 15 characters.
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim().startsWith('mediasoup-work');
    } catch {
      return false;
    }
  });
}

/** The real MCU with the stats probe, on one media plane; stopped with SIGTERM, then SIGKILL after 5 s. */
async function startBenchMcu(maxPeers: number, plane: MediaPlane): Promise<BenchMcu> {
  const proc = startNode('scripts/bench/mixing-mcu.ts', {
    MCU_MEDIA_PLANE: plane,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    MCU_VIDEO_WIDTH: String(WIDTH),
    MCU_VIDEO_HEIGHT: String(HEIGHT),
    MCU_VIDEO_FPS: String(FPS),
    MCU_MAX_PARTICIPANTS_PER_ROOM: String(Math.max(16, maxPeers)),
  });
  try {
    const listening = await proc.waitFor((e) => e.event === 'listening', { timeoutMs: 30000 });
    return {
      process: proc,
      url: `http://127.0.0.1:${Number(listening.port)}`,
      probeSeq: 0,
      async stop() {
        await proc.close();
      },
    };
  } catch (err) {
    await proc.kill();
    throw err;
  }
}

/** Asks the MCU's probe for its mixer counters (SIGUSR2) and waits for the answer. */
async function probe(mcu: BenchMcu): Promise<MixerProbeReport> {
  const after = mcu.probeSeq;
  mcu.process.child.kill('SIGUSR2');
  const event = (await mcu.process.waitFor((e) => e.event === 'mixer-stats' && Number(e.seq) > after, { timeoutMs: 5000 })) as unknown as MixerProbeReport;
  mcu.probeSeq = event.seq;
  return event;
}

/** One load-generator process, spoken to in JSON lines over stdin/stdout. */
class LoadGenerator {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly stderr: string[] = [];
  readonly exited: Promise<unknown>;
  readonly ready: Promise<void>;
  peers = 0;
  readonly #pending = new Map<number, { resolve: (r: LoadReply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  #nextId = 1;

  constructor(readonly index: number) {
    this.child = spawn(process.execPath, ['--import', 'tsx', 'scripts/bench/mixing-peers.ts'], {
      cwd: projectRoot,
      env: { ...process.env, LOG_LEVEL: 'warn' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.pid = this.child.pid!;
    this.exited = once(this.child, 'exit');
    let markReady: () => void = () => undefined;
    this.ready = new Promise((resolve) => (markReady = resolve));
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      let message: { id?: number; event?: string };
      try {
        message = JSON.parse(line) as { id?: number; event?: string };
      } catch {
        return;
      }
      if (message.event === 'ready') markReady();
      const pending = message.id === undefined ? undefined : this.#pending.get(message.id);
      if (!pending) return;
      this.#pending.delete(message.id!);
      clearTimeout(pending.timer);
      if (message.event === 'error') pending.reject(new Error(`load generator ${index}: ${(message as { message?: string }).message}`));
      else pending.resolve(message as LoadReply);
    });
    createInterface({ input: this.child.stderr! }).on('line', (line) => {
      this.stderr.push(line);
      if (this.stderr.length > 200) this.stderr.shift();
    });
    void this.exited.then(() => {
      for (const [id, p] of this.#pending) {
        clearTimeout(p.timer);
        p.reject(new Error(`load generator ${index} (pid ${this.pid}) exited; stderr tail:\n${this.stderr.slice(-10).join('\n')}`));
        this.#pending.delete(id);
      }
    });
  }

  request(command: Record<string, unknown> & { cmd: string }, timeoutMs: number): Promise<LoadReply> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`load generator ${this.index}: no answer to "${command.cmd}" within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
      this.child.stdin!.write(JSON.stringify({ ...command, id }) + '\n');
    });
  }

  /** Asks it to close its peers and exit; SIGKILL after 5 s. */
  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.stdin!.end(JSON.stringify({ cmd: 'close' }) + '\n');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

// ---- one measured room size ------------------------------------------------------------------

interface Row {
  n: number;
  windowS: number;
  /** MCU process CPU (the mixer's and libwebrtc's threads), % of one core. */
  mcuCpuPct: number;
  /** The mediasoup worker's CPU (its child process; 0 on the wrtc plane), % of one core. */
  workerCpuPct: number;
  /** Both, % of one core: what the media plane costs this host. */
  mcuTotalCpuPct: number;
  /** mcuTotalCpuPct per participant. */
  mcuCpuPerParticipantPct: number;
  mcuRssMb: number;
  /** All load generators together, % of one core. */
  loadGenCpuPct: number;
  loadGenRssMb: number;
  /** Whole machine, % of all cores busy. */
  machineBusyPct: number;
  /** CPU used by processes that are not this benchmark's (other work on the host), % of one core. */
  foreignCpuPct: number;
  /** Windows measured for this size until one had little foreign load. */
  attempts: number;
  /** Windows the row is made of: 2 when the first failed and a second was added. */
  windows: number;
  /** Why the first window failed, when a second one was added. */
  firstWindowFailures?: string[];
  mixer: {
    audioTicksPerS: number;
    audioTicksSkipped: number;
    jitterUnderruns: number;
    jitterUnderrunsPerMemberMin: number;
    /** Every missed pull, prefill included (what /metrics calls mcu_mixer_input_underruns_total). */
    missedPulls: number;
    jitterDroppedSamples: number;
    compositeFps: number;
    compositeFramesSkipped: number;
    mixMsMean: number;
    composeMsMean: number;
    loopDelayP99Ms: number;
    loopDelayMaxMs: number;
    /** Share of the window the MCU's main (JS) thread was busy, %. */
    mainThreadBusyPct: number;
    /** Main-thread ms per composite frame in RTCVideoSource.onFrame (included in composeMsMean). */
    videoOnFrameMs: number;
    /** Main-thread ms per 10 ms tick in the N RTCAudioSource.onData calls (included in mixMsMean). */
    audioOnDataMsPerTick: number;
  };
  peers: {
    reported: number;
    fpsMin: number;
    fpsMean: number;
    /** Smallest composite frame a peer saw at the end of the window. */
    frameSize: string;
    frameWidth: number;
    frameHeight: number;
    videoFramesDropped: number;
    longestVideoGapMs: number;
    /** Share of received audio samples that the peers' NetEq had to conceal, %. */
    audioConcealedPct: number;
    audioPacketsLost: number;
    longestAudioGapMs: number;
    /** Weakest level at which any peer hears any other peer's tone, dBFS. */
    heardMinDbfs: number;
    /** Loudest level at which any peer hears its own tone, dBFS (should be noise). */
    ownMaxDbfs: number;
  };
  realtime: boolean;
  failures: string[];
}

function sumMixers(report: MixerProbeReport): MixerStats & { mixMsTotal: number; composeMsTotal: number } {
  const total = {
    members: 0, audioTicks: 0, audioTicksSkipped: 0, inputUnderruns: 0, jitterUnderruns: 0, jitterDroppedSamples: 0,
    videoFrames: 0, videoFramesSkipped: 0, composeMsMean: 0, mixMsMean: 0, mixMsTotal: 0, composeMsTotal: 0,
  };
  for (const m of report.mixers) {
    total.members += m.members;
    total.audioTicks += m.audioTicks;
    total.audioTicksSkipped += m.audioTicksSkipped;
    total.inputUnderruns += m.inputUnderruns;
    total.jitterUnderruns += m.jitterUnderruns ?? 0;
    total.jitterDroppedSamples += m.jitterDroppedSamples ?? 0;
    total.videoFrames += m.videoFrames;
    total.videoFramesSkipped += m.videoFramesSkipped;
    total.mixMsTotal += m.mixMsMean * m.audioTicks;
    total.composeMsTotal += m.composeMsMean * m.videoFrames;
  }
  return total;
}

async function measure(n: number, mcu: BenchMcu, gens: LoadGenerator[], freqs: number[], opts: Options): Promise<Row> {
  const active = gens.filter((g) => g.peers > 0);
  const mcuPid = mcu.process.pid;
  const probe0 = await probe(mcu);
  await Promise.all(active.map((g) => g.request({ cmd: 'reset' }, 10000)));
  const t0 = performance.now();
  const cpu0 = cpuSeconds(mcuPid);
  const workers = workerPids(mcu);
  const worker0 = workers.reduce((t, pid) => t + cpuSeconds(pid), 0);
  const gen0 = active.map((g) => cpuSeconds(g.pid));
  const machine0 = machineJiffies();

  await new Promise((resolve) => setTimeout(resolve, opts.seconds * 1000));

  const elapsedS = (performance.now() - t0) / 1000;
  const cpu1 = cpuSeconds(mcuPid);
  const worker1 = workers.reduce((t, pid) => t + cpuSeconds(pid), 0);
  const gen1 = active.map((g) => cpuSeconds(g.pid));
  const machine1 = machineJiffies();
  const probe1 = await probe(mcu);
  const replies = await Promise.all(active.map((g) => g.request({ cmd: 'report', freqs }, 15000)));
  const peers: PeerReport[] = replies.flatMap((r) => (r.event === 'report' ? r.peers : []));

  const m0 = sumMixers(probe0);
  const m1 = sumMixers(probe1);
  const ticks = m1.audioTicks - m0.audioTicks;
  const frames = m1.videoFrames - m0.videoFrames;
  const jitterUnderruns = m1.jitterUnderruns - m0.jitterUnderruns;
  const mcuCpuPct = ((cpu1 - cpu0) / elapsedS) * 100;
  const workerCpuPct = ((worker1 - worker0) / elapsedS) * 100;
  const totalCpuPct = mcuCpuPct + workerCpuPct;
  const genCpuPct = ((gen1.reduce((a, b) => a + b, 0) - gen0.reduce((a, b) => a + b, 0)) / elapsedS) * 100;
  const machineBusyPct = ((machine1.busy - machine0.busy) / Math.max(1, machine1.total - machine0.total)) * 100;

  const fps = peers.map((p) => p.stats.framesReceived / (p.stats.elapsedMs / 1000));
  const sizes = peers.map((p) => p.stats.lastFrameSize ?? { width: 0, height: 0 });
  const smallest = sizes.reduce((a, b) => (b.width * b.height < a.width * a.height ? b : a), { width: Infinity, height: Infinity });
  let heardMin = Infinity;
  let ownMax = -Infinity;
  for (const p of peers) {
    p.levels.forEach((level, j) => {
      if (freqs[j] === p.toneHz) ownMax = Math.max(ownMax, level);
      else heardMin = Math.min(heardMin, level);
    });
  }
  const concealed = peers.reduce((s, p) => s + (p.rtp.audio?.concealedSamples ?? 0), 0);
  const received = peers.reduce((s, p) => s + (p.rtp.audio?.totalSamplesReceived ?? 0), 0);

  const row: Row = {
    n,
    windowS: round(elapsedS, 2),
    mcuCpuPct: round(mcuCpuPct, 1),
    workerCpuPct: round(workerCpuPct, 1),
    mcuTotalCpuPct: round(totalCpuPct, 1),
    mcuCpuPerParticipantPct: round(totalCpuPct / n, 1),
    mcuRssMb: rssMb(mcuPid),
    loadGenCpuPct: round(genCpuPct, 1),
    loadGenRssMb: round(active.reduce((s, g) => s + rssMb(g.pid), 0), 1),
    machineBusyPct: round(machineBusyPct, 1),
    foreignCpuPct: round(Math.max(0, (machineBusyPct * cpus().length) - totalCpuPct - genCpuPct), 1),
    attempts: 1,
    windows: 1,
    mixer: {
      audioTicksPerS: round(ticks / elapsedS, 1),
      audioTicksSkipped: m1.audioTicksSkipped - m0.audioTicksSkipped,
      jitterUnderruns,
      jitterUnderrunsPerMemberMin: round(jitterUnderruns / n / (elapsedS / 60), 2),
      missedPulls: m1.inputUnderruns - m0.inputUnderruns,
      jitterDroppedSamples: m1.jitterDroppedSamples - m0.jitterDroppedSamples,
      compositeFps: round(frames / elapsedS, 2),
      compositeFramesSkipped: m1.videoFramesSkipped - m0.videoFramesSkipped,
      mixMsMean: round(ticks > 0 ? (m1.mixMsTotal - m0.mixMsTotal) / ticks : 0, 3),
      composeMsMean: round(frames > 0 ? (m1.composeMsTotal - m0.composeMsTotal) / frames : 0, 3),
      loopDelayP99Ms: round(probe1.loopDelay.p99, 1),
      loopDelayMaxMs: round(probe1.loopDelay.max, 1),
      mainThreadBusyPct: round(probe1.loopUtilization * 100, 1),
      videoOnFrameMs: round(perCall(probe1.native.videoOnFrameMs - probe0.native.videoOnFrameMs, probe1.native.videoOnFrameCalls - probe0.native.videoOnFrameCalls), 3),
      audioOnDataMsPerTick: round(ticks > 0 ? (probe1.native.audioOnDataMs - probe0.native.audioOnDataMs) / ticks : 0, 3),
    },
    peers: {
      reported: peers.length,
      fpsMin: round(Math.min(...fps), 2),
      fpsMean: round(fps.reduce((a, b) => a + b, 0) / Math.max(1, fps.length), 2),
      frameSize: Number.isFinite(smallest.width) ? `${smallest.width}x${smallest.height}` : 'none',
      frameWidth: Number.isFinite(smallest.width) ? smallest.width : 0,
      frameHeight: Number.isFinite(smallest.height) ? smallest.height : 0,
      videoFramesDropped: peers.reduce((s, p) => s + (p.rtp.video?.framesDropped ?? 0), 0),
      longestVideoGapMs: Math.max(...peers.map((p) => p.stats.longestVideoGapMs)),
      audioConcealedPct: round(received > 0 ? (concealed / received) * 100 : 0, 3),
      audioPacketsLost: peers.reduce((s, p) => s + (p.rtp.audio?.packetsLost ?? 0), 0),
      longestAudioGapMs: Math.max(...peers.map((p) => p.stats.longestAudioGapMs)),
      heardMinDbfs: Number.isFinite(heardMin) ? heardMin : NaN,
      ownMaxDbfs: ownMax,
    },
    realtime: false,
    failures: [],
  };

  return judge(row, opts);
}

/** Applies the real-time criteria to a row (sets `failures` and `realtime`). */
function judge(row: Row, opts: Options): Row {
  const f: string[] = [];
  if (row.peers.reported !== row.n) f.push(`${row.peers.reported} of ${row.n} peers reported`);
  if (!(row.peers.fpsMin >= MIN_FPS)) f.push(`a peer received ${row.peers.fpsMin} composite fps (< ${MIN_FPS})`);
  if (row.peers.frameWidth < WIDTH || row.peers.frameHeight < HEIGHT) f.push(`a peer received ${row.peers.frameSize}, not ${WIDTH}x${HEIGHT}`);
  if (row.mixer.audioTicksSkipped > 0) f.push(`${row.mixer.audioTicksSkipped} audio ticks skipped`);
  if (row.mixer.jitterUnderrunsPerMemberMin > opts.underrunsPerMin) {
    f.push(`${row.mixer.jitterUnderrunsPerMemberMin} jitter underruns per member-minute (> ${opts.underrunsPerMin})`);
  }
  return { ...row, failures: f, realtime: f.length === 0 };
}

/**
 * Two windows of the same size as one: counts summed, rates time-weighted, worst cases kept.
 * A size that fails its first window gets a second one, and is judged on both together, so one
 * unlucky stall in 10 s neither decides alone nor is thrown away.
 */
function mergeWindows(a: Row, b: Row): Row {
  const wa = a.windowS;
  const wb = b.windowS;
  const avg = (x: number, y: number, digits: number): number => round((x * wa + y * wb) / (wa + wb), digits);
  const minutes = (wa + wb) / 60;
  const jitterUnderruns = a.mixer.jitterUnderruns + b.mixer.jitterUnderruns;
  return {
    ...b,
    windowS: round(wa + wb, 2),
    windows: a.windows + b.windows,
    mcuCpuPct: avg(a.mcuCpuPct, b.mcuCpuPct, 1),
    workerCpuPct: avg(a.workerCpuPct, b.workerCpuPct, 1),
    mcuTotalCpuPct: avg(a.mcuTotalCpuPct, b.mcuTotalCpuPct, 1),
    mcuCpuPerParticipantPct: avg(a.mcuCpuPerParticipantPct, b.mcuCpuPerParticipantPct, 1),
    loadGenCpuPct: avg(a.loadGenCpuPct, b.loadGenCpuPct, 1),
    machineBusyPct: avg(a.machineBusyPct, b.machineBusyPct, 1),
    foreignCpuPct: avg(a.foreignCpuPct, b.foreignCpuPct, 1),
    mixer: {
      ...b.mixer,
      audioTicksPerS: avg(a.mixer.audioTicksPerS, b.mixer.audioTicksPerS, 1),
      audioTicksSkipped: a.mixer.audioTicksSkipped + b.mixer.audioTicksSkipped,
      jitterUnderruns,
      jitterUnderrunsPerMemberMin: round(jitterUnderruns / b.n / minutes, 2),
      missedPulls: a.mixer.missedPulls + b.mixer.missedPulls,
      jitterDroppedSamples: a.mixer.jitterDroppedSamples + b.mixer.jitterDroppedSamples,
      compositeFps: avg(a.mixer.compositeFps, b.mixer.compositeFps, 2),
      compositeFramesSkipped: a.mixer.compositeFramesSkipped + b.mixer.compositeFramesSkipped,
      mixMsMean: avg(a.mixer.mixMsMean, b.mixer.mixMsMean, 3),
      composeMsMean: avg(a.mixer.composeMsMean, b.mixer.composeMsMean, 3),
      loopDelayP99Ms: Math.max(a.mixer.loopDelayP99Ms, b.mixer.loopDelayP99Ms),
      loopDelayMaxMs: Math.max(a.mixer.loopDelayMaxMs, b.mixer.loopDelayMaxMs),
      mainThreadBusyPct: avg(a.mixer.mainThreadBusyPct, b.mixer.mainThreadBusyPct, 1),
      videoOnFrameMs: avg(a.mixer.videoOnFrameMs, b.mixer.videoOnFrameMs, 3),
      audioOnDataMsPerTick: avg(a.mixer.audioOnDataMsPerTick, b.mixer.audioOnDataMsPerTick, 3),
    },
    peers: {
      ...b.peers,
      fpsMin: avg(a.peers.fpsMin, b.peers.fpsMin, 2),
      fpsMean: avg(a.peers.fpsMean, b.peers.fpsMean, 2),
      videoFramesDropped: a.peers.videoFramesDropped + b.peers.videoFramesDropped,
      longestVideoGapMs: Math.max(a.peers.longestVideoGapMs, b.peers.longestVideoGapMs),
      audioConcealedPct: avg(a.peers.audioConcealedPct, b.peers.audioConcealedPct, 3),
      audioPacketsLost: a.peers.audioPacketsLost + b.peers.audioPacketsLost,
      longestAudioGapMs: Math.max(a.peers.longestAudioGapMs, b.peers.longestAudioGapMs),
      heardMinDbfs: Math.min(a.peers.heardMinDbfs, b.peers.heardMinDbfs),
      ownMaxDbfs: Math.max(a.peers.ownMaxDbfs, b.peers.ownMaxDbfs),
    },
    firstWindowFailures: a.failures,
  };
}

// ---- report ------------------------------------------------------------------------------------

function perCall(totalMs: number, calls: number): number {
  return calls > 0 ? totalMs / calls : 0;
}

function round(x: number, digits: number): number {
  const k = 10 ** digits;
  return Math.round(x * k) / k;
}

/** Least-squares line through (n, cpu). */
function fit(rows: Row[]): { slopePctPerParticipant: number; interceptPct: number; over: number[] } | null {
  if (rows.length < 2) return null;
  const xs = rows.map((r) => r.n);
  const ys = rows.map((r) => r.mcuTotalCpuPct);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < xs.length; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
  }
  if (sxx === 0) return null;
  const slope = sxy / sxx;
  return { slopePctPerParticipant: round(slope, 2), interceptPct: round(my - slope * mx, 1), over: xs };
}

function printTable(rows: Row[]): void {
  const header = [
    'N', 'MCU cpu%', 'worker cpu%', 'cpu%/N', 'RSS MB', 'gen cpu%', 'other cpu%', 'host busy%', 'mix fps', 'peer fps min', 'size',
    'ticks skip', 'underruns', 'vid skip', 'conceal%', 'heard min', 'own max', 'main busy%', 'loop p99', 'real time',
  ];
  const lines = rows.map((r) => [
    r.n, r.mcuCpuPct, r.workerCpuPct, r.mcuCpuPerParticipantPct, r.mcuRssMb, r.loadGenCpuPct, r.foreignCpuPct, r.machineBusyPct, r.mixer.compositeFps,
    r.peers.fpsMin, r.peers.frameSize, r.mixer.audioTicksSkipped, r.mixer.jitterUnderruns, r.mixer.compositeFramesSkipped,
    r.peers.audioConcealedPct, r.peers.heardMinDbfs, r.peers.ownMaxDbfs, r.mixer.mainThreadBusyPct, r.mixer.loopDelayP99Ms, r.realtime ? 'yes' : 'NO',
  ].map((c) => (typeof c === 'number' && !Number.isFinite(c) ? '-' : String(c))));
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  console.log(fmt(header));
  for (const l of lines) console.log(fmt(l));
  for (const r of rows) if (!r.realtime) console.log(`  N=${r.n} not real time: ${r.failures.join('; ')}`);
  console.log('');
  console.log('MCU main thread, per window:');
  const mainHeader = ['N', 'busy%', 'compose ms/frame', 'of it onFrame', 'mix ms/tick', 'of it onData', 'loop p99 ms', 'loop max ms'];
  const mainLines = rows.map((r) => [
    r.n, r.mixer.mainThreadBusyPct, r.mixer.composeMsMean, r.mixer.videoOnFrameMs, r.mixer.mixMsMean, r.mixer.audioOnDataMsPerTick,
    r.mixer.loopDelayP99Ms, r.mixer.loopDelayMaxMs,
  ].map(String));
  const mainWidths = mainHeader.map((h, i) => Math.max(h.length, ...mainLines.map((l) => l[i]!.length)));
  for (const l of [mainHeader, ...mainLines]) console.log(l.map((c, i) => c.padStart(mainWidths[i]!)).join('  '));
}

// ---- main ------------------------------------------------------------------------------------

/** One plane's sweep of room sizes and what it found. */
interface PlaneResult {
  plane: MediaPlane;
  rows: Row[];
  notes: string[];
  error: string | null;
  cpuPerParticipant: { realtimeFit: ReturnType<typeof fit>; allSizesFit: ReturnType<typeof fit> };
  /** Largest N such that it and every smaller size measured were real time. */
  largestRealtimeN: number;
  /** Largest N that was real time, even if a smaller size was not (sporadic stalls). */
  largestPassingN: number;
  /** False when every size tried was real time: the real limit is above largestRealtimeN. */
  limitReached: boolean;
  largestTriedN: number;
  /** Main-thread ms per composite frame (compose + RTCVideoSource.onFrame) at the largest real-time size. */
  composeMsAtLargest: number | null;
  durationS: number;
}

/** Grows one room on one plane (a fresh MCU and fresh load generators) until two sizes in a row are not real time. */
async function sweep(plane: MediaPlane, opts: Options, deadline: number): Promise<PlaneResult> {
  const sizes = roomSizes(opts.max);
  const freqsOf = (n: number): number[] => Array.from({ length: n }, (_, i) => peerSpec(i).toneHz);
  const rows: Row[] = [];
  const notes: string[] = [];
  let error: string | null = null;
  const started = Date.now();

  let mcu: BenchMcu | null = null;
  const gens: LoadGenerator[] = [];
  let cleaning: Promise<void> | null = null;
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      await Promise.allSettled(gens.map((g) => g.close()));
      await mcu?.stop();
    })());
  const onSignal = (signal: NodeJS.Signals): void => {
    console.error(`${signal}: stopping every process`);
    void cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Last resort if something hangs past the cap: kill everything we started.
  const watchdog = setTimeout(() => {
    console.error('watchdog: the benchmark overran its time cap, killing every process');
    for (const g of gens) g.kill();
    mcu?.process.child.kill('SIGKILL');
    process.exit(2);
  }, Math.max(0, deadline - Date.now()) + 60_000);
  watchdog.unref();

  console.log(`\n== ${plane} plane: sizes ${sizes.join(', ')}, ${opts.warmup} s warm-up + ${opts.seconds} s window each, until ${new Date(deadline).toISOString()}`);
  try {
    mcu = await startBenchMcu(opts.max, plane);
    console.log(`MCU pid ${mcu.process.pid} at ${mcu.url} (${plane}); idle RSS ${rssMb(mcu.process.pid)} MB; worker pids ${workerPids(mcu).join(', ') || 'none'}`);
    let joined = 0;
    let failedInARow = 0;
    for (const n of sizes) {
      const perStepS = opts.warmup + opts.seconds + (n - joined) * 1.5 + 5;
      if (Date.now() + perStepS * 1000 > deadline) {
        notes.push(`stopped before N=${n}: this plane's share of the ${opts.timeCap} s time cap would be exceeded`);
        break;
      }
      // Fill generators in order, opening a new one when the last is full.
      while (joined < n) {
        let gen = gens.find((g) => g.peers < opts.perGenerator);
        if (!gen) {
          gen = new LoadGenerator(gens.length);
          gens.push(gen);
          await gen.ready;
        }
        const take = Math.min(n - joined, opts.perGenerator - gen.peers);
        const specs = Array.from({ length: take }, (_, k) => peerSpec(joined + k));
        const reply = await gen.request({ cmd: 'join', url: mcu.url, room: ROOM, peers: specs }, 30000 * take);
        if (reply.event !== 'joined') throw new Error(`load generator ${gen.index} did not join its peers`);
        gen.peers += take;
        joined += take;
      }
      await new Promise((resolve) => setTimeout(resolve, opts.warmup * 1000));
      // The mediasoup worker is ours too (a child of the MCU): its CPU is not "other processes".
      const ours = [mcu.process.pid, ...workerPids(mcu), ...gens.map((g) => g.pid)];
      // One window with little foreign load: wait for quiet, and measure again (up to twice) if it was not.
      const quietWindow = async (label: string): Promise<Row> => {
        const quietWaitS = Math.max(0, Math.min(opts.quietWait, (deadline - Date.now()) / 1000 - perStepS));
        const foreign = await waitForQuiet(ours, opts.maxForeign, quietWaitS);
        if (foreign > opts.maxForeign) console.log(`N=${n}: other processes still use ${foreign}% of a core: measuring anyway`);
        let row = await measure(n, mcu!, gens, freqsOf(n), opts);
        for (let attempt = 2; attempt <= 3 && row.foreignCpuPct > opts.maxForeign; attempt++) {
          if (Date.now() + (opts.seconds + 5) * 1000 > deadline) break;
          console.log(`N=${n}: other processes used ${row.foreignCpuPct}% of a core during the ${label} window: measuring again`);
          await waitForQuiet(ours, opts.maxForeign, Math.max(0, Math.min(opts.quietWait, (deadline - Date.now()) / 1000 - perStepS)));
          row = { ...(await measure(n, mcu!, gens, freqsOf(n), opts)), attempts: attempt };
        }
        return row;
      };
      let row = await quietWindow('first');
      if (!row.realtime && Date.now() + (opts.seconds + 5) * 1000 <= deadline) {
        console.log(`N=${n}: not real time in the first window (${row.failures.join('; ')}): adding a second window`);
        row = judge(mergeWindows(row, await quietWindow('second')), opts);
      }
      if (row.foreignCpuPct > opts.maxForeign) notes.push(`N=${n} was measured while other processes used ${row.foreignCpuPct}% of a core`);
      rows.push(row);
      console.log(
        `${plane} N=${n}: MCU ${row.mcuCpuPct}% + worker ${row.workerCpuPct}% of a core (${row.mcuCpuPerParticipantPct}%/participant), RSS ${row.mcuRssMb} MB; ` +
          `peers ${row.peers.fpsMin}-${row.peers.fpsMean} fps at ${row.peers.frameSize}; ` +
          `ticks skipped ${row.mixer.audioTicksSkipped}, underruns ${row.mixer.jitterUnderruns}; ` +
          `load generators ${row.loadGenCpuPct}%, other processes ${row.foreignCpuPct}%, host ${row.machineBusyPct}% busy -> ${row.realtime ? 'real time' : 'NOT real time: ' + row.failures.join('; ')}`,
      );
      failedInARow = row.realtime ? 0 : failedInARow + 1;
      if (failedInARow >= 2) {
        notes.push(`stopped after N=${n}: two sizes in a row were not real time`);
        break;
      }
    }
  } catch (err) {
    error = (err as Error)?.stack ?? String(err);
    console.error(`benchmark failed on the ${plane} plane: ${error}`);
    if (mcu) console.error(`MCU stderr tail:\n${mcu.process.stderr.slice(-15).join('\n')}`);
  } finally {
    await cleanup();
    clearTimeout(watchdog);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  // Largest N such that it and every smaller size measured were real time.
  let largestRealtime = 0;
  for (const r of rows) {
    if (!r.realtime) break;
    largestRealtime = r.n;
  }
  const largestPassing = Math.max(0, ...rows.filter((r) => r.realtime).map((r) => r.n));
  const realtimeRows = rows.filter((r) => r.realtime);
  const slopeRealtime = fit(realtimeRows);
  const slopeAll = fit(rows);

  console.log(`\n-- ${plane} plane`);
  printTable(rows);
  console.log('');
  if (slopeRealtime) console.log(`MCU CPU per participant (least squares over real-time sizes ${slopeRealtime.over.join(', ')}): ${slopeRealtime.slopePctPerParticipant}% of a core, base ${slopeRealtime.interceptPct}%`);
  const limitReached = rows.some((r) => !r.realtime);
  const largestTried = rows.length > 0 ? rows[rows.length - 1]!.n : 0;
  console.log(
    `${plane}: largest real-time room (it and every smaller size real time): ${largestRealtime > 0 ? `${largestRealtime} participants` : 'none'}` +
      (!limitReached && largestRealtime > 0 ? ` (the largest size tried: the limit is at least this; try --max)` : ''),
  );
  if (largestPassing > largestRealtime) console.log(`largest size that passed on its own: ${largestPassing} (a smaller one failed)`);
  for (const note of notes) console.log(`note: ${note}`);

  const largest = rows.find((r) => r.n === largestRealtime);
  return {
    plane,
    rows,
    notes,
    error,
    cpuPerParticipant: { realtimeFit: slopeRealtime, allSizesFit: slopeAll },
    largestRealtimeN: largestRealtime,
    largestPassingN: largestPassing,
    limitReached,
    largestTriedN: largestTried,
    composeMsAtLargest: largest ? largest.mixer.composeMsMean : null,
    durationS: round((Date.now() - started) / 1000, 1),
  };
}

async function main(): Promise<number> {
  const opts = parseOptions();
  const started = Date.now();
  console.log(`mixing benchmark: ${cpus().length} cores, planes ${opts.planes.join(', ')}, cap ${opts.timeCap} s for the run`);
  const results: PlaneResult[] = [];
  for (const [i, plane] of opts.planes.entries()) {
    // Each plane gets an equal share of what is left of the cap.
    const left = started + opts.timeCap * 1000 - Date.now();
    results.push(await sweep(plane, opts, Date.now() + left / (opts.planes.length - i)));
  }

  console.log('\nplanes side by side (same run):');
  const header = ['plane', 'largest real-time N', 'largest passing N', 'limit reached', 'cpu%/participant', 'compose ms/frame at largest', 'main busy% at largest', 'worker cpu% at largest'];
  const lines = results.map((r) => {
    const largest = r.rows.find((row) => row.n === r.largestRealtimeN);
    return [
      r.plane,
      String(r.largestRealtimeN),
      String(r.largestPassingN),
      r.limitReached ? 'yes' : 'no (try --max)',
      String(r.cpuPerParticipant.realtimeFit?.slopePctPerParticipant ?? '-'),
      String(r.composeMsAtLargest ?? '-'),
      String(largest?.mixer.mainThreadBusyPct ?? '-'),
      String(largest?.workerCpuPct ?? '-'),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  for (const l of [header, ...lines]) console.log(l.map((c, i) => c.padStart(widths[i]!)).join('  '));

  const result = {
    benchmark: 'mixing',
    date: new Date().toISOString(),
    machine: {
      cores: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      memoryGb: round(totalmem() / 2 ** 30, 1),
      node: process.version,
      loadavgAtEnd: loadavg().map((x) => round(x, 2)),
    },
    config: {
      command: ['node --import tsx scripts/bench/mixing.ts', ...process.argv.slice(2)].join(' '),
      planes: opts.planes,
      composite: `${WIDTH}x${HEIGHT}@${FPS}`,
      peerTile: '320x240@15 VP8, a moving box over a solid colour',
      peerTone: '-30 dBFS sine, 250 Hz apart from 300 Hz',
      windowS: opts.seconds,
      warmupS: opts.warmup,
      peersPerLoadGenerator: opts.perGenerator,
      realtimeCriteria: {
        minPeerFps: MIN_FPS,
        resolution: `${WIDTH}x${HEIGHT}`,
        audioTicksSkipped: 0,
        maxJitterUnderrunsPerMemberMinute: opts.underrunsPerMin,
      },
    },
    planes: results,
    caveats: [
      `The ${cpus().length} cores are shared: the load generators (synthetic peers: VP8 encode of their tile, VP8 decode of the ` +
        '640x480 composite, Opus both ways, JS drawing and sinks) ran on the same machine as the MCU. Their CPU is in ' +
        'loadGenCpuPct and the whole machine in machineBusyPct; with the peers elsewhere the MCU would have the cores to itself. ' +
        'foreignCpuPct is what other processes on the host used during the window: each window waited up to ' +
        `${opts.quietWait} s for it to fall under ${opts.maxForeign}% of a core, and one with more was measured again, up to twice.`,
      'MCU CPU is user+system time of the MCU process from /proc/<pid>/stat, % of one core; workerCpuPct is its mediasoup worker ' +
        '(a child process) on the mediasoup plane. On the wrtc plane libwebrtc encodes the composite once per peer connection ' +
        '(one VP8 encoder per participant); on the mediasoup plane once per room (the mixer produces one grid to the router).',
      'On the mediasoup plane the synthetic peers are mediasoup-client devices on wrtc (a send and a receive peer connection each).',
      'Mixer counters come from a probe loaded with the real mcu/src/main.ts (scripts/bench/mixing-mcu.ts), because /metrics does not expose them yet.',
    ],
    durationS: round((Date.now() - started) / 1000, 1),
  };
  mkdirSync(dirname(opts.out), { recursive: true });
  writeFileSync(opts.out, JSON.stringify(result, null, 2) + '\n');
  const html = opts.out.replace(/\.json$/, '') + '.html';
  writeFileSync(html, renderPlotPage({
    title: 'mixing: the media planes side by side, same run',
    subtitle: [
      `${result.date}, ${result.durationS} s, ${cpus().length} cores, load average at the end ${result.machine.loadavgAtEnd.join(' ')}`,
      results.map((r) => `${r.plane}: largest real-time room ${r.largestRealtimeN}${r.limitReached ? '' : ' (every size tried passed)'}`).join('; '),
    ],
    metrics: planeMetrics(results),
  }));
  console.log(`wrote ${opts.out} and ${html}`);
  return results.some((r) => r.error) ? 1 : 0;
}

/** One panel per figure, one row per plane, one dot per room size measured. */
function planeMetrics(results: PlaneResult[]): PlotMetric[] {
  const metric = (label: string, unit: string, note: string, value: (r: Row) => number, reference?: PlotMetric['reference']): PlotMetric => ({
    label,
    unit,
    note,
    ...(reference ? { reference } : {}),
    series: results.map((p) => ({
      name: p.plane,
      points: p.rows.map((r) => ({ value: value(r), colour: r.realtime ? '#2e7d32' : '#c62828', label: `N=${r.n}${r.realtime ? '' : ' (not real time)'}` })),
    })),
  });
  return [
    metric('main thread per composite frame', 'ms', 'compose + RTCVideoSource.onFrame, per room size (green: real time)', (r) => r.mixer.composeMsMean),
    metric('MCU + worker CPU', '% of a core', 'the MCU process and its mediasoup worker, per room size', (r) => r.mcuTotalCpuPct),
    metric('slowest peer', 'fps', 'composite frames per second at the slowest peer', (r) => r.peers.fpsMin, { value: MIN_FPS, label: `${MIN_FPS} fps` }),
    metric('MCU main thread busy', '%', 'event-loop utilisation over the window', (r) => r.mixer.mainThreadBusyPct),
  ];
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
