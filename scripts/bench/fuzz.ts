/**
 * The long fuzz run: every fuzz target (scripts/fuzz) for --runs cases (default 10,000), against
 * the same real processes as the CI run of test/fuzz (1,000 cases), one bed per area.
 *
 *   node --import tsx scripts/bench/fuzz.ts [--runs 10000] [--targets websocket-frames,...] [--seed N]
 *
 * Prints per target the cases run, the time, cases per second, how they came out and whether the
 * property held (a failure prints its seed and path, replayable with FUZZ_SEED/FUZZ_PATH and the
 * test file); writes bench-results/fuzz.json and bench-results/fuzz.html (time per case). Exits
 * 1 when a target failed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { runFuzz, type FuzzReport, type FuzzTarget } from '../fuzz/fuzz-run.ts';
import { HeartbeatFuzzBed } from '../fuzz/heartbeat-bed.ts';
import { heartbeatBeaconTarget, heartbeatMonitorTarget } from '../fuzz/heartbeat-targets.ts';
import { ReplicationFuzzBed } from '../fuzz/replication-bed.ts';
import { primaryListenerTarget, standbyStreamTarget } from '../fuzz/replication-targets.ts';
import { SignalingFuzzBed } from '../fuzz/signaling-bed.ts';
import { engineIoPacketsTarget, socketIoPacketsTarget, webSocketFramesTarget } from '../fuzz/signaling-targets.ts';
import { parseBenchArgs } from './common/args.ts';
import { renderPlotPage, type PlotMetric } from './common/plot.ts';
import { summarize, type Summary } from './common/stats.ts';

const TARGETS = ['websocket-frames', 'engine.io-packets', 'socket.io-packets', 'replication-standby', 'replication-primary', 'heartbeat-monitor', 'heartbeat-beacon'] as const;
type TargetName = (typeof TARGETS)[number];

const args = parseBenchArgs({
  command: 'scripts/bench/fuzz.ts',
  summary: 'Runs every fuzz target (real MCU, primary, standby, beacon and monitor processes) for many cases; writes bench-results/fuzz.json and fuzz.html.',
  options: {
    runs: { type: 'int', default: 10_000, min: 1, max: 1_000_000, help: 'cases per target' },
    targets: { type: 'list', default: [...TARGETS], choices: TARGETS, help: 'targets to run' },
    seed: { type: 'int', min: -(2 ** 31), max: 2 ** 31 - 1, help: 'seed of every target (default: random, printed)' },
  },
});

/** The test file that replays a target's failure. */
const TEST_FILE: Record<TargetName, string> = {
  'websocket-frames': 'test/fuzz/signaling.test.ts',
  'engine.io-packets': 'test/fuzz/signaling.test.ts',
  'socket.io-packets': 'test/fuzz/signaling.test.ts',
  'replication-standby': 'test/fuzz/replication.test.ts',
  'replication-primary': 'test/fuzz/replication.test.ts',
  'heartbeat-monitor': 'test/fuzz/heartbeat.test.ts',
  'heartbeat-beacon': 'test/fuzz/heartbeat.test.ts',
};

interface TargetResult extends Omit<FuzzReport, 'caseMs'> {
  caseMs: Summary;
  /** Processes that died and were replaced during the run (0: nothing crashed). */
  restarts: number;
}

const signaling = new SignalingFuzzBed();
const replication = new ReplicationFuzzBed();
const heartbeat = new HeartbeatFuzzBed();

/** Runs `make(bed)` against a bed started for it, and closes the bed after. */
async function withBed<B extends { start(): Promise<void>; close(): Promise<void>; restarts: number }>(
  bed: B,
  names: TargetName[],
  make: (name: TargetName, bed: B) => FuzzTarget<unknown>,
  results: Array<{ result: TargetResult; samples: number[] }>,
): Promise<void> {
  const wanted = names.filter((n) => args.targets.includes(n));
  if (wanted.length === 0) return;
  await bed.start();
  try {
    for (const name of wanted) {
      const before = bed.restarts;
      console.log(`${name}: ${args.runs} cases...`);
      const report = await runFuzz(make(name, bed), { runs: args.runs, seed: args.seed }, `node --import tsx --test --test-name-pattern="${name}" ${TEST_FILE[name]}`);
      const { caseMs, ...rest } = report;
      const result: TargetResult = { ...rest, caseMs: summarize(caseMs), restarts: bed.restarts - before };
      results.push({ result, samples: caseMs });
      console.log(
        `${name}: ${report.failed ? 'FAILED' : 'held'} over ${report.executions} cases in ${(report.ms / 1000).toFixed(1)} s (${report.casesPerSecond.toFixed(0)}/s, seed ${report.seed}), ${JSON.stringify(report.outcomes)}`,
      );
    }
  } finally {
    await bed.close();
  }
}

function asTarget<T>(t: FuzzTarget<T>): FuzzTarget<unknown> {
  return t as unknown as FuzzTarget<unknown>;
}

const started = Date.now();
const results: Array<{ result: TargetResult; samples: number[] }> = [];
try {
  await withBed(signaling, ['websocket-frames', 'engine.io-packets', 'socket.io-packets'], (name, bed) => {
    if (name === 'websocket-frames') return asTarget(webSocketFramesTarget(bed));
    return asTarget(name === 'engine.io-packets' ? engineIoPacketsTarget(bed) : socketIoPacketsTarget(bed));
  }, results);
  await withBed(replication, ['replication-standby', 'replication-primary'], (name, bed) => {
    if (name === 'replication-standby') return asTarget(standbyStreamTarget(bed));
    return asTarget(primaryListenerTarget(bed));
  }, results);
  await withBed(heartbeat, ['heartbeat-monitor', 'heartbeat-beacon'], (name, bed) => asTarget(name === 'heartbeat-monitor' ? heartbeatMonitorTarget(bed) : heartbeatBeaconTarget(bed)), results);
} finally {
  await Promise.all([signaling.close(), replication.close(), heartbeat.close()]);
}

const report = {
  at: new Date(started).toISOString(),
  durationS: Math.round((Date.now() - started) / 1000),
  machine: { cpus: cpus().length, loadavgAtEnd: loadavg().map((l) => Math.round(l * 100) / 100) },
  runsPerTarget: args.runs,
  targets: results.map((r) => r.result),
};
mkdirSync('bench-results', { recursive: true });
writeFileSync('bench-results/fuzz.json', JSON.stringify(report, null, 2) + '\n');

// At most 2,000 dots per row: every n-th case.
const thin = (samples: number[]): number[] => samples.filter((_, i) => i % Math.max(1, Math.ceil(samples.length / 2000)) === 0);
const metric: PlotMetric = {
  label: 'time per case',
  unit: 'ms',
  note: 'one fuzz case: connect or inject, the receiver answers, refuses or drops, and the checks after it (log, state, the honest peers)',
  series: results.map(({ result, samples }) => ({ name: result.target, points: thin(samples).map((value) => ({ value, colour: result.failed ? '#e53935' : '#1e88e5' })) })),
};
writeFileSync(
  'bench-results/fuzz.html',
  renderPlotPage({
    title: `Fuzzing: ${args.runs} cases per target`,
    subtitle: [`${report.at}, ${report.durationS} s on ${report.machine.cpus} CPUs, load ${report.machine.loadavgAtEnd.join(' ')}`],
    metrics: [metric],
  }),
);

console.log('');
console.log('target               cases  held     s   cases/s  ms/case p50  p95   restarts');
for (const { result: r } of results) {
  console.log(
    `${r.target.padEnd(20)} ${String(r.executions).padStart(6)}  ${r.failed ? 'NO ' : 'yes'} ${(r.ms / 1000).toFixed(0).padStart(5)} ${r.casesPerSecond.toFixed(0).padStart(8)}  ${r.caseMs.p50.toFixed(1).padStart(11)} ${r.caseMs.p95.toFixed(1).padStart(5)}   ${r.restarts}`,
  );
}
console.log('written: bench-results/fuzz.json, bench-results/fuzz.html');
process.exit(results.some((r) => r.result.failed) ? 1 : 0);
