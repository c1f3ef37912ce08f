/**
 * The witness's cost and the lease TTL it needs, against a real single-member etcd on loopback
 * (Debian's etcd-server), its data on tmpfs and on disk:
 * - the compare-and-set of a promotion (Witness.compareAndSetEpoch: one etcd transaction, a raft
 *   write), back to back on a warm connection, and after the connection sat idle for `--idle-ms`
 *   (a standby reads the epoch every second while it follows: its connection is that warm);
 * - the primary's renewals as PrimaryLease makes them (a linearizable read of the epoch every
 *   `--renew-ms`, the lease kept alive every ~0.7 s) for `--renew-seconds`: their round trips and
 *   the longest time between two confirmations, which the lease TTL (MCU_WITNESS_LEASE_TTL_MS)
 *   must exceed or the primary fences itself for nothing.
 * Prints a table; writes bench-results/witness.json and witness.html.
 *
 *   node --import tsx scripts/bench/witness.ts [--cas 300] [--idle 10] [--renew-seconds 15]
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdClient } from '../../mcu/src/witness/etcd-client.ts';
import { newNonce, nodeIdentity, Witness } from '../../mcu/src/witness/witness.ts';
import { EtcdServer } from '../common/etcd.ts';
import { parseBenchArgs } from './common/args.ts';
import { renderPlotPage, type PlotMetric } from './common/plot.ts';
import { summarize, type Summary } from './common/stats.ts';

const args = parseBenchArgs({
  command: 'scripts/bench/witness.ts',
  summary: 'The witness (etcd): compare-and-set latency of a promotion and the primary lease renewals (TTL sizing); writes bench-results/witness.json and witness.html.',
  options: {
    cas: { type: 'int', default: 300, min: 10, max: 100_000, help: 'back-to-back compare-and-sets per data placement' },
    idle: { type: 'int', default: 10, min: 0, max: 1000, help: 'compare-and-sets after an idle connection, per data placement' },
    'idle-ms': { type: 'int', default: 500, min: 10, max: 10_000, help: 'idle time before each of those, ms' },
    'renew-seconds': { type: 'int', default: 15, min: 1, max: 3600, help: 'seconds of renewals per data placement' },
    'renew-ms': { type: 'int', default: 100, min: 5, max: 10_000, help: 'renewal period, ms (PrimaryLease: min(100, TTL/4))' },
    timeout: { type: 'int', default: 250, min: 1, max: 10_000, help: 'request timeout, ms (MCU_WITNESS_TIMEOUT_MS)' },
    data: { type: 'list', default: ['tmpfs', 'disk'], choices: ['tmpfs', 'disk'], help: "where etcd keeps its data: tmpfs (/dev/shm) or disk (the system's temp directory)" },
  },
});

interface PlacementResult {
  data: 'tmpfs' | 'disk';
  dataDir: string;
  casWarmMs: number[];
  casIdleMs: number[];
  renewalMs: number[];
  /** Time between the starts of two confirmed renewals, ms. */
  confirmationGapMs: number[];
  renewalFailures: number;
  summaries: { casWarm: Summary; casIdle: Summary; renewal: Summary; confirmationGap: Summary };
}

async function placement(data: 'tmpfs' | 'disk'): Promise<PlacementResult> {
  const dataDir = mkdtempSync(join(data === 'tmpfs' ? '/dev/shm' : tmpdir(), 'mcu-etcd-bench-'));
  const etcd = await EtcdServer.start({ dataDir });
  try {
    const witness = new Witness({ client: new EtcdClient({ endpoints: [etcd.endpoint], requestTimeoutMs: args.timeout }), clusterName: `bench-${data}` });
    const lease = await witness.client.leaseGrant(2);
    let epoch = (await witness.claimFresh(nodeIdentity('primary'), lease.id)).epoch;
    const identity = nodeIdentity('standby');
    // The primary of each epoch names this standby as its sync standby (not timed: it happens long before a failover).
    const cas = async (): Promise<number> => {
      await witness.recordSyncStandby(epoch, identity.node);
      const r = await witness.compareAndSetEpoch(epoch, identity, newNonce(), identity.node);
      if (r.outcome !== 'won') throw new Error(`compare-and-set from ${epoch} lost: ${JSON.stringify(r)}`);
      epoch = r.epoch;
      return r.tookMs;
    };
    // Warm-up: the connection and etcd's first writes.
    for (let i = 0; i < 10; i++) await cas();
    const casWarmMs: number[] = [];
    for (let i = 0; i < args.cas; i++) casWarmMs.push(await cas());
    const casIdleMs: number[] = [];
    for (let i = 0; i < args.idle; i++) {
      await new Promise((resolve) => setTimeout(resolve, args['idle-ms']));
      casIdleMs.push(await cas());
    }

    // Renewals as PrimaryLease makes them.
    const renewalMs: number[] = [];
    const confirmationGapMs: number[] = [];
    let renewalFailures = 0;
    let lastConfirmed = performance.now();
    let keptAliveAt = performance.now();
    let leaseId = lease.id;
    const until = performance.now() + args['renew-seconds'] * 1000;
    while (performance.now() < until) {
      const started = performance.now();
      try {
        const keepAlive = started - keptAliveAt > 2000 / 3
          ? witness.client.leaseKeepAlive(leaseId).then(async (ttl) => {
              keptAliveAt = started;
              if (ttl === 0) leaseId = (await witness.client.leaseGrant(2)).id;
            })
          : Promise.resolve();
        const [held] = await Promise.all([witness.epoch(), keepAlive]);
        if (held !== epoch) throw new Error(`the witness holds epoch ${held}, not ${epoch}`);
        renewalMs.push(performance.now() - started);
        confirmationGapMs.push(started - lastConfirmed);
        lastConfirmed = started;
      } catch {
        renewalFailures++;
      }
      const next = started + args['renew-ms'] - performance.now();
      if (next > 0) await new Promise((resolve) => setTimeout(resolve, next));
    }
    return {
      data,
      dataDir,
      casWarmMs,
      casIdleMs,
      renewalMs,
      confirmationGapMs,
      renewalFailures,
      summaries: { casWarm: summarize(casWarmMs), casIdle: summarize(casIdleMs), renewal: summarize(renewalMs), confirmationGap: summarize(confirmationGapMs) },
    };
  } finally {
    await etcd.close();
  }
}

const startedAt = new Date();
const loadBefore = loadavg();
const results: PlacementResult[] = [];
for (const data of args.data) results.push(await placement(data));
const loadAfter = loadavg();

const row = (name: string, s: Summary): string =>
  `${name.padEnd(34)} ${String(s.n).padStart(5)}  ${[s.min, s.median, s.p95, s.p99, s.max].map((v) => v.toFixed(2).padStart(8)).join(' ')}`;
console.log(`load average ${loadBefore.map((l) => l.toFixed(1)).join(' ')} -> ${loadAfter.map((l) => l.toFixed(1)).join(' ')}`);
console.log(`${'ms'.padEnd(34)} ${'n'.padStart(5)}  ${['min', 'median', 'p95', 'p99', 'max'].map((h) => h.padStart(8)).join(' ')}`);
for (const r of results) {
  console.log(row(`CAS warm (${r.data})`, r.summaries.casWarm));
  if (r.casIdleMs.length > 0) console.log(row(`CAS after ${args['idle-ms']} ms idle (${r.data})`, r.summaries.casIdle));
  console.log(row(`renewal (${r.data})`, r.summaries.renewal));
  console.log(row(`between confirmations (${r.data})`, r.summaries.confirmationGap));
  console.log(`  renewals failed (timeout ${args.timeout} ms): ${r.renewalFailures}; longest time unconfirmed: ${r.summaries.confirmationGap.max.toFixed(0)} ms`);
}

const report = {
  command: `node --import tsx scripts/bench/witness.ts ${process.argv.slice(2).join(' ')}`.trim(),
  startedAt: startedAt.toISOString(),
  durationS: Math.round((Date.now() - startedAt.getTime()) / 100) / 10,
  loadAverage: { before: loadBefore, after: loadAfter },
  options: args,
  results: results.map(({ casWarmMs, casIdleMs, renewalMs, confirmationGapMs, ...rest }) => ({ ...rest, samples: { casWarmMs, casIdleMs, renewalMs, confirmationGapMs } })),
};
mkdirSync('bench-results', { recursive: true });
writeFileSync('bench-results/witness.json', JSON.stringify(report, null, 2) + '\n');

const points = (values: number[]) => values.map((value) => ({ value }));
const metrics: PlotMetric[] = [
  {
    label: 'Compare-and-set of a promotion',
    unit: 'ms',
    note: `Witness.compareAndSetEpoch on loopback etcd: warm connection, and after ${args['idle-ms']} ms idle`,
    reference: { value: 5, label: 'budget 5 ms' },
    series: results.flatMap((r) => [
      { name: `warm, ${r.data}`, points: points(r.casWarmMs) },
      ...(r.casIdleMs.length > 0 ? [{ name: `idle, ${r.data}`, points: points(r.casIdleMs) }] : []),
    ]),
  },
  {
    label: 'Primary lease renewal',
    unit: 'ms',
    note: `linearizable read of the epoch (+ lease keep-alive every ~0.7 s), every ${args['renew-ms']} ms`,
    series: results.map((r) => ({ name: r.data, points: points(r.renewalMs) })),
  },
  {
    label: 'Time between two confirmations of the epoch',
    unit: 'ms',
    note: 'the lease TTL must exceed the longest, or the primary fences itself for nothing',
    series: results.map((r) => ({ name: r.data, points: points(r.confirmationGapMs) })),
  },
];
writeFileSync(
  'bench-results/witness.html',
  renderPlotPage({
    title: 'The witness (etcd 3.4, one member on loopback)',
    subtitle: [`${report.startedAt}, ${report.durationS} s, load average ${loadBefore[0]!.toFixed(1)} -> ${loadAfter[0]!.toFixed(1)}`, report.command],
    metrics,
  }),
);
console.log(`wrote bench-results/witness.json and witness.html (${report.durationS} s)`);
