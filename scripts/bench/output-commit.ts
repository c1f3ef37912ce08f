/**
 * What output commit costs a signaling round trip: socket.io emit-with-ack latency through
 *
 *   plain        socket.io on an ordinary HTTP listener (no acceptor, no commit)
 *   unprotected  TransportAcceptor + OutputCommitter, no standby (writes pass through)
 *   protected    TransportAcceptor + OutputCommitter with a synced standby (every reply waits for its commit)
 *   recorded     the whole takeover primary (TakeoverPrimary) with a synced standby: output commit plus
 *                the socket.io session records, each reply written only once a record covering it is acked
 *
 * in one run: three primary processes (and the standby process) side by side, the round trips
 * interleaved in blocks of `--block` so each configuration sees the same machine load (this
 * 2-core host is shared). Each configuration gets `--count` round trips after `--warmup`, one
 * at a time. Primaries and standby: scripts/fixtures/output-commit-*.ts; the client is this process.
 *
 *   node --import tsx scripts/bench/output-commit.ts [--count 2000] [--warmup 200] [--size 200] [--block 50]
 *
 * Prints a summary and writes bench-results/output-commit.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { io as ioClient, type Socket as ClientSocket } from 'socket.io-client';
import { preciseNow } from '../../mcu/src/core/clock.ts';
import { FixtureProcess } from '../common/child-process.ts';
import { parseBenchArgs } from './common/args.ts';
import { summarize, type Summary } from './common/stats.ts';

const SECRET = 'bench-output-commit-secret-5e2a';
const MAX_COUNT = 20_000;

const { count, warmup, size, block } = parseBenchArgs({
  command: 'scripts/bench/output-commit.ts',
  summary: 'What output commit costs a signaling round trip (plain, unprotected, protected, recorded); writes bench-results/output-commit.json.',
  options: {
    count: { type: 'int', default: 2000, min: 10, max: MAX_COUNT, help: 'round trips per configuration' },
    warmup: { type: 'int', default: 200, min: 0, max: MAX_COUNT, help: 'warm-up round trips per configuration' },
    size: { type: 'int', default: 200, min: 0, max: 60_000, help: 'payload bytes' },
    block: { type: 'int', default: 50, min: 1, max: MAX_COUNT, help: 'round trips per configuration in a row (interleaving)' },
  },
});


function connect(port: number): Promise<ClientSocket> {
  const socket = ioClient(`http://127.0.0.1:${port}`, { transports: ['websocket'], forceNew: true, reconnection: false });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', reject);
  });
}

/** `n` sequential echo round trips; returns each one's milliseconds. */
async function roundTrips(socket: ClientSocket, n: number, payload: string): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = preciseNow();
    const reply = (await socket.timeout(5000).emitWithAck('echo', { i, payload })) as { echo: { i: number } };
    out.push(preciseNow() - start);
    if (reply.echo.i !== i) throw new Error(`reply ${reply.echo.i} for request ${i}`);
  }
  return out;
}

function startPrimary(mode: 'plain' | 'takeover' | 'recorded', replication: boolean): FixtureProcess {
  return new FixtureProcess('scripts/fixtures/output-commit-primary.ts', {
    OC_MODE: mode,
    OC_REPLICATION: replication ? '1' : '0',
    REPL_SECRET: SECRET,
    NODE_ENV: 'test',
  });
}

const CONFIGS = ['plain', 'unprotected', 'protected', 'recorded'] as const;
type Config = (typeof CONFIGS)[number];

async function main(): Promise<void> {
  const payload = 'x'.repeat(size);
  console.log(`output-commit benchmark: ${count} emit-with-ack round trips per configuration (${warmup} warm-up), payload ${size} bytes, interleaved in blocks of ${block}`);
  const processes: FixtureProcess[] = [];
  const sockets: ClientSocket[] = [];
  try {
    const primaries: Record<Config, FixtureProcess> = {
      plain: startPrimary('plain', false),
      unprotected: startPrimary('takeover', true),
      protected: startPrimary('takeover', true),
      recorded: startPrimary('recorded', true),
    };
    processes.push(...Object.values(primaries));
    const ready = {} as Record<Config, Record<string, unknown>>;
    await Promise.all(CONFIGS.map(async (c) => (ready[c] = await primaries[c].next('ready', 20_000))));
    const standby = new FixtureProcess('scripts/fixtures/output-commit-standby.ts', {
      REPL_PORT: String(ready.protected.replicationPort),
      REPL_SECRET: SECRET,
      OC_ACK_DELAY_MS: '0',
      NODE_ENV: 'test',
    });
    processes.push(standby);
    const recordedStandby = new FixtureProcess('scripts/fixtures/output-commit-standby.ts', {
      REPL_PORT: String(ready.recorded.replicationPort),
      REPL_SECRET: SECRET,
      OC_ACK_DELAY_MS: '0',
      NODE_ENV: 'test',
    });
    processes.push(recordedStandby);
    await Promise.all([
      primaries.protected.next('standby-synced', 20_000),
      standby.next('synced', 20_000),
      primaries.recorded.next('standby-synced', 20_000),
      recordedStandby.next('synced', 20_000),
    ]);

    const socketOf = {} as Record<Config, ClientSocket>;
    for (const c of CONFIGS) {
      socketOf[c] = await connect(Number(ready[c].servicePort));
      sockets.push(socketOf[c]);
      await roundTrips(socketOf[c], warmup, payload);
    }
    const samples: Record<Config, number[]> = { plain: [], unprotected: [], protected: [], recorded: [] };
    for (let done = 0; done < count; done += block) {
      const n = Math.min(block, count - done);
      for (const c of CONFIGS) samples[c].push(...(await roundTrips(socketOf[c], n, payload)));
    }
    const phases = Object.fromEntries(CONFIGS.map((c) => [c, summarize(samples[c])])) as Record<Config, Summary>;
    for (const c of CONFIGS) {
      const s = phases[c];
      console.log(`  ${c.padEnd(12)} p50 ${s.p50.toFixed(3)} ms  p90 ${s.p90.toFixed(3)} ms  p99 ${s.p99.toFixed(3)} ms  max ${s.max.toFixed(3)} ms`);
    }

    const stats: Partial<Record<Config, Record<string, unknown>>> = {};
    for (const c of ['unprotected', 'protected', 'recorded'] as const) {
      primaries[c].send({ type: 'stats' });
      stats[c] = await primaries[c].next('stats');
    }
    const committer = stats.protected!.committer as { commits: number; committedBytes: number; unprotectedWrites: number; latency: Record<string, number | null> };
    const unprotectedCommitter = stats.unprotected!.committer as { commits: number; unprotectedWrites: number };
    if (committer.unprotectedWrites !== 0 || unprotectedCommitter.commits !== 0) {
      console.error(`protected primary:\n${primaries.protected.stderrTail}\nstandby:\n${standby.stderrTail}`);
      throw new Error(`configurations mixed up: protected wrote ${committer.unprotectedWrites} unprotected, unprotected made ${unprotectedCommitter.commits} commits`);
    }
    const overhead = {
      p50: round3(phases.protected.p50 - phases.unprotected.p50),
      p99: round3(phases.protected.p99 - phases.unprotected.p99),
      mean: round3(phases.protected.mean - phases.unprotected.mean),
    };
    const wrapper = { p50: round3(phases.unprotected.p50 - phases.plain.p50), p99: round3(phases.unprotected.p99 - phases.plain.p99) };
    // Replication bytes per round trip (the stream to the standby: output log, and for `recorded` the session records).
    const replicatedBytes = (c: 'protected' | 'recorded'): number => (stats[c]!.replication as { totalBytesSent?: number } | null)?.totalBytesSent ?? 0;
    const roundTripsDone = count + warmup;
    const replicationBytesPerRoundTrip = {
      protected: Math.round(replicatedBytes('protected') / roundTripsDone),
      recorded: Math.round(replicatedBytes('recorded') / roundTripsDone),
    };
    // The whole takeover mode against no standby at all: what a protected signaling round trip costs.
    const takeoverOverhead = { p50: round3(phases.recorded.p50 - phases.unprotected.p50), p99: round3(phases.recorded.p99 - phases.unprotected.p99) };
    const report = {
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version, kernel: release(), loadavg: loadavg() },
      config: { count, warmup, block, payloadBytes: size, transport: 'websocket', perMessageDeflate: false, replication: '127.0.0.1 loopback' },
      roundTripMs: phases,
      outputCommitOverheadMs: overhead,
      takeoverModeOverheadMs: takeoverOverhead,
      replicationBytesPerRoundTrip,
      acceptorWithoutStandbyOverheadMs: wrapper,
      commitLatencyMs: committer.latency,
      commits: committer.commits,
      committedBytes: committer.committedBytes,
      acceptor: stats.protected!.acceptor,
    };
    mkdirSync('bench-results', { recursive: true });
    writeFileSync('bench-results/output-commit.json', JSON.stringify(report, null, 2) + '\n');
    console.log('');
    console.log(`output commit adds p50 ${overhead.p50.toFixed(3)} ms, p99 ${overhead.p99.toFixed(3)} ms per round trip (acceptor without standby: p50 ${wrapper.p50.toFixed(3)} ms)`);
    console.log(`replication stream per round trip: ${replicationBytesPerRoundTrip.protected} bytes (output commit), ${replicationBytesPerRoundTrip.recorded} bytes (with session records)`);
    console.log(`takeover mode with session records adds p50 ${takeoverOverhead.p50.toFixed(3)} ms, p99 ${takeoverOverhead.p99.toFixed(3)} ms per round trip`);
    const lat = committer.latency;
    console.log(`commit send-to-ack (primary side): mean ${fmt(lat.meanMs)} ms  p50 ${fmt(lat.p50Ms)} ms  p99 ${fmt(lat.p99Ms)} ms over ${committer.commits} commits`);
    console.log('written: bench-results/output-commit.json');
  } finally {
    for (const s of sockets) s.disconnect();
    await Promise.all(processes.map((p) => p.kill('SIGKILL')));
  }
}

function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}

function fmt(v: number | null | undefined): string {
  return typeof v === 'number' ? v.toFixed(3) : 'n/a';
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
