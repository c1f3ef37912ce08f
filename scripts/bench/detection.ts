/**
 * Failure detection on the real path and replication lag, with a real primary process (its
 * replication server and heartbeat beacon thread) and an in-process standby side wired as the
 * standby wires it: a ReplicationClient whose end of stream makes the HeartbeatMonitor thread
 * (the FailureDetector) ask at once.
 *
 *   node --import tsx scripts/bench/detection.ts [--trials 20] [--load 2000] [--load-interval-ms 1]
 *
 * - SIGKILL (process crash): its host answers the monitor's probe with port unreachable.
 * - SIGSTOP (a frozen process, or a host gone silent whose kernel still answers): no FIN, no
 *   RST, no port unreachable; verdict by heartbeat timeout (missed beats + confirm window). Killed afterwards.
 * - Lag: paced deltas on the primary, send-to-ack round trip of each delta frame.
 * The third verdict, host-unreachable (a host crash: its kernel no longer answers), needs a host
 * that can go down: scripts/bench/takeover.ts measures it in the lab.
 * Prints a summary and writes bench-results/detection.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { preciseNow } from '../../mcu/src/core/clock.ts';
import { failureDetectorSettings } from '../../mcu/src/detection/failure-detector.ts';
import { HeartbeatMonitor } from '../../mcu/src/detection/heartbeat-monitor.ts';
import { ReplicationClient } from '../../mcu/src/replication/replication-client.ts';
import { FixtureProcess } from '../common/child-process.ts';
import { waitFor } from '../common/wait-for.ts';
import { parseBenchArgs } from './common/args.ts';
import { summarize, type Summary } from './common/stats.ts';

const SECRET = 'bench-secret-7d3e1b';
const MAX_TRIALS = 200;
const MAX_LOAD = 20_000;

const args = parseBenchArgs({
  command: 'scripts/bench/detection.ts',
  summary: 'Failure detection (SIGKILL, SIGSTOP of a real primary) and replication lag; writes bench-results/detection.json.',
  options: {
    trials: { type: 'int', default: 20, min: 1, max: MAX_TRIALS, help: 'detection trials per failure type' },
    load: { type: 'int', default: 2000, min: 10, max: MAX_LOAD, help: 'paced deltas in the lag run' },
    'load-interval-ms': { type: 'int', default: 1, min: 1, max: 100, help: 'interval between the deltas, ms' },
  },
});
const trials = args.trials;
const loadCount = args.load;
const loadIntervalMs = args['load-interval-ms'];

interface Trial {
  /** Signal -> verdict, ms (the verdict is stamped by the monitor thread, ms resolution). */
  detectionMs: number;
  /** Last beat -> verdict, ms. */
  silenceMs: number;
  /** Signal -> end of the replication stream seen by the standby side (SIGKILL only). */
  signalToStreamLostMs: number | null;
  reason: string;
}

// Every child is tracked so that a failure anywhere still kills them (their IPC channels would keep us alive).
const children = new Set<FixtureProcess>();

interface Pair {
  primary: FixtureProcess;
  client: ReplicationClient;
  monitor: HeartbeatMonitor;
}

async function startPair(seed: number): Promise<Pair> {
  const primary = new FixtureProcess('scripts/fixtures/replication-primary.ts', { REPL_SECRET: SECRET, REPL_SEED: String(seed), REPL_BEACON: '1', LOG_LEVEL: 'warn' });
  children.add(primary);
  void primary.exited.then(() => children.delete(primary));
  let client: ReplicationClient | null = null;
  let monitor: HeartbeatMonitor | null = null;
  try {
    const port = Number((await primary.next('listening', 20_000)).port);
    client = new ReplicationClient({ port, secret: SECRET, standbyId: `bench-standby-${seed}` });
    monitor = new HeartbeatMonitor({ host: '127.0.0.1', port, secret: SECRET, minEpoch: 1 });
    const watching = monitor;
    client.on('lost', (info) => watching.channelClosed(info.deliberate));
    const synced = waitFor(client, 'synced', { timeoutMs: 10_000 });
    const firstBeat = waitFor(monitor, 'first-beat', { timeoutMs: 10_000 });
    client.start();
    monitor.start();
    await Promise.all([synced, firstBeat]);
    // Steady state first: a few heartbeats after the snapshot.
    const link = client.link;
    if (!link) throw new Error('standby lost its link right after syncing');
    for (let i = 0; i < 5; i++) await waitFor(link, 'heartbeat', { timeoutMs: 2000 });
    return { primary, client, monitor };
  } catch (err) {
    client?.close();
    await monitor?.close();
    await primary.kill('SIGKILL');
    throw err;
  }
}

async function detectionTrial(signal: 'SIGKILL' | 'SIGSTOP', seed: number): Promise<Trial> {
  const { primary, client, monitor } = await startPair(seed);
  try {
    const dead = waitFor(monitor, 'dead', { timeoutMs: 5000 });
    let streamLostAt: number | null = null;
    client.once('lost', () => (streamLostAt = preciseNow()));
    const signalledAt = preciseNow();
    const signalledAtMs = Date.now();
    process.kill(primary.pid, signal);
    const [verdict] = await dead;
    return {
      detectionMs: verdict.detectedAt - signalledAtMs,
      silenceMs: verdict.detectedAt - (verdict.lastHeartbeatAt ?? signalledAtMs),
      signalToStreamLostMs: streamLostAt === null ? null : streamLostAt - signalledAt,
      reason: verdict.reason,
    };
  } finally {
    client.close('trial over');
    await monitor.close();
    await primary.kill('SIGKILL');
  }
}

async function lagRun(): Promise<{ rtts: Summary; frames: number; durationMs: number; stats: unknown }> {
  const pair = await startPair(999);
  const { primary, client } = pair;
  try {
    const started = preciseNow();
    primary.send({ cmd: 'load', count: loadCount, intervalMs: loadIntervalMs });
    const done = await primary.next('load-done', 120_000);
    const rtts = done.rtts as number[];
    return { rtts: summarize(rtts), frames: rtts.length, durationMs: preciseNow() - started, stats: done.stats };
  } finally {
    client.close('lag run over');
    await pair.monitor.close();
    await primary.kill('SIGKILL');
  }
}

async function main(): Promise<void> {
  console.log(`detection benchmark: ${trials} trials per failure type, lag under ${loadCount} deltas every ${loadIntervalMs} ms`);
  const results: Record<'SIGKILL' | 'SIGSTOP', Trial[]> = { SIGKILL: [], SIGSTOP: [] };
  for (const signal of ['SIGKILL', 'SIGSTOP'] as const) {
    for (let i = 0; i < trials; i++) {
      const t = await detectionTrial(signal, i + 1);
      results[signal].push(t);
      const lost = t.signalToStreamLostMs === null ? '' : `, stream lost after ${t.signalToStreamLostMs.toFixed(2)} ms`;
      console.log(`  ${signal} #${i + 1}: detected in ${t.detectionMs} ms (${t.reason}, ${t.silenceMs} ms after the last beat${lost})`);
    }
  }
  const lag = await lagRun();
  // The standby runs with the detector defaults: report them.
  const defaults = failureDetectorSettings();

  const report = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version, loadavg: loadavg() },
    config: {
      trials,
      heartbeatIntervalMs: defaults.intervalMs,
      missedBeats: defaults.missedBeats,
      confirmMs: defaults.confirmMs,
      hostProbeTimeoutMs: defaults.hostProbeTimeoutMs,
      loadDeltas: loadCount,
      loadIntervalMs,
    },
    detection: {
      sigkill: {
        detectionMs: summarize(results.SIGKILL.map((t) => t.detectionMs)),
        signalToStreamLostMs: summarize(results.SIGKILL.flatMap((t) => (t.signalToStreamLostMs === null ? [] : [t.signalToStreamLostMs]))),
        reasons: countBy(results.SIGKILL.map((t) => t.reason)),
      },
      sigstop: {
        detectionMs: summarize(results.SIGSTOP.map((t) => t.detectionMs)),
        sinceLastHeartbeatMs: summarize(results.SIGSTOP.map((t) => t.silenceMs)),
        reasons: countBy(results.SIGSTOP.map((t) => t.reason)),
      },
      samples: results,
    },
    replicationLag: {
      description: 'delta frame send -> standby applied and acked -> ack received on the primary',
      frames: lag.frames,
      durationMs: Math.round(lag.durationMs),
      rttMs: lag.rtts,
      finalStats: lag.stats,
    },
  };

  mkdirSync('bench-results', { recursive: true });
  writeFileSync('bench-results/detection.json', JSON.stringify(report, null, 2) + '\n');

  const d = report.detection;
  const line = (name: string, s: Summary): string =>
    `${name.padEnd(34)} min ${s.min.toFixed(2)}  median ${s.median.toFixed(2)}  p95 ${s.p95.toFixed(2)}  max ${s.max.toFixed(2)} ms`;
  console.log('');
  console.log(line('SIGKILL detection', d.sigkill.detectionMs));
  console.log(line('  signal -> stream lost', d.sigkill.signalToStreamLostMs));
  console.log(line('SIGSTOP detection', d.sigstop.detectionMs));
  console.log(line('  last heartbeat -> verdict', d.sigstop.sinceLastHeartbeatMs));
  console.log(`replication lag (${lag.frames} delta frames): p50 ${lag.rtts.median.toFixed(3)} ms  p99 ${lag.rtts.p99.toFixed(3)} ms  max ${lag.rtts.max.toFixed(3)} ms`);
  console.log('written: bench-results/detection.json');
}

function countBy(items: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const i of items) out[i] = (out[i] ?? 0) + 1;
  return out;
}

try {
  await main();
} catch (err) {
  console.error('benchmark failed:', err);
  process.exitCode = 1;
} finally {
  await Promise.all([...children].map((c) => c.kill('SIGKILL')));
}
