/**
 * Failure detection and replication lag, with a real primary process and an in-process standby.
 *
 *   node --import tsx scripts/bench/detection.ts [--trials 20] [--load 2000] [--load-interval-ms 1]
 *
 * - SIGKILL (process crash): the kernel closes the replication socket; detection by end of stream.
 * - SIGSTOP (a host gone silent): no FIN, no RST; detection by heartbeat timeout. Killed afterwards.
 * - Lag: paced deltas on the primary, send-to-ack round trip of each delta frame.
 * Prints a summary and writes bench-results/detection.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { preciseNow } from '../../mcu/src/replication/replication-link.ts';
import { FailureDetector } from '../../mcu/src/detection/failure-detector.ts';
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
  detectionMs: number;
  /** Verdict time after the last heartbeat seen. */
  silenceMs: number;
  /** Signal to channel close seen by the standby (SIGKILL only). */
  signalToCloseMs: number | null;
  reason: string;
}

// Every child is tracked so that a failure anywhere still kills them (their IPC channels would keep us alive).
const children = new Set<FixtureProcess>();

async function startPair(seed: number): Promise<{ primary: FixtureProcess; client: ReplicationClient }> {
  const primary = new FixtureProcess('scripts/fixtures/replication-primary.ts', { REPL_SECRET: SECRET, REPL_SEED: String(seed), LOG_LEVEL: 'warn' });
  children.add(primary);
  void primary.exited.then(() => children.delete(primary));
  let client: ReplicationClient | null = null;
  try {
    const { port } = await primary.next('listening', 20_000);
    client = new ReplicationClient({ port: Number(port), secret: SECRET, standbyId: `bench-standby-${seed}` }).start();
    await waitFor(client, 'synced', { timeoutMs: 10_000 });
    // Steady state first: a few heartbeats after the snapshot.
    const link = client.link;
    if (!link) throw new Error('standby lost its link right after syncing');
    for (let i = 0; i < 5; i++) await waitFor(link, 'heartbeat', { timeoutMs: 2000 });
    return { primary, client };
  } catch (err) {
    client?.close();
    await primary.kill('SIGKILL');
    throw err;
  }
}

async function detectionTrial(signal: 'SIGKILL' | 'SIGSTOP', seed: number): Promise<Trial> {
  const { primary, client } = await startPair(seed);
  try {
    const dead = waitFor(client, 'dead', { timeoutMs: 5000 });
    const signalledAt = preciseNow();
    process.kill(primary.pid, signal);
    const [info] = await dead;
    return {
      detectionMs: info.detectedAt - signalledAt,
      silenceMs: info.detectedAt - (info.lastHeartbeatAt ?? signalledAt),
      signalToCloseMs: info.channelClosedAt === null ? null : info.channelClosedAt - signalledAt,
      reason: info.reason,
    };
  } finally {
    client.close('trial over');
    await primary.kill('SIGKILL');
  }
}

async function lagRun(): Promise<{ rtts: Summary; frames: number; durationMs: number; stats: unknown }> {
  const { primary, client } = await startPair(999);
  try {
    const started = preciseNow();
    primary.send({ cmd: 'load', count: loadCount, intervalMs: loadIntervalMs });
    const done = await primary.next('load-done', 120_000);
    const rtts = done.rtts as number[];
    return { rtts: summarize(rtts), frames: rtts.length, durationMs: preciseNow() - started, stats: done.stats };
  } finally {
    client.close('lag run over');
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
      const close = t.signalToCloseMs === null ? '' : `, channel closed after ${t.signalToCloseMs.toFixed(2)} ms`;
      console.log(`  ${signal} #${i + 1}: detected in ${t.detectionMs.toFixed(2)} ms (${t.reason}${close})`);
    }
  }
  const lag = await lagRun();
  // The standby runs with the detector defaults: report them.
  const defaults = new FailureDetector();

  const report = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version, loadavg: loadavg() },
    config: {
      trials,
      heartbeatIntervalMs: defaults.intervalMs,
      missedBeats: defaults.missedBeats,
      closeGraceMs: defaults.closeGraceMs,
      loadDeltas: loadCount,
      loadIntervalMs,
    },
    detection: {
      sigkill: {
        detectionMs: summarize(results.SIGKILL.map((t) => t.detectionMs)),
        signalToChannelCloseMs: summarize(results.SIGKILL.flatMap((t) => (t.signalToCloseMs === null ? [] : [t.signalToCloseMs]))),
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
  console.log(line('  signal -> channel closed', d.sigkill.signalToChannelCloseMs));
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
