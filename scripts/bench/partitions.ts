/**
 * Jepsen-style partition run (issue 14 item 2): the MCU pair in takeover mode with the witness,
 * socket.io clients sending numbered requests all the time, a rotation of cuts between primary,
 * standby, witness and client (scripts/lab/partition-run.ts), and the checker over the clients'
 * histories (scripts/lab/history-checker.ts): one primary at any moment, every acknowledged
 * request answered once and in order. Root; writes bench-results/partitions.json and .html.
 *
 *   node --import tsx scripts/bench/partitions.ts --partitions 200
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { runPartitions, PARTITION_ROTATION } from '../lab/partition-run.ts';
import { parseBenchArgs } from './common/args.ts';
import { renderPlotPage, escapeHtml, type PlotMetric } from './common/plot.ts';
import { summarize } from './common/stats.ts';

const args = parseBenchArgs({
  command: 'scripts/bench/partitions.ts',
  summary: 'Partitions between primary, standby, witness and clients, healed, repeated; a checker over the histories. Writes bench-results/partitions.json and partitions.html.',
  options: {
    partitions: { type: 'int', default: 200, min: 1, max: 10_000, help: 'partitions, in the rotation of kinds' },
    clients: { type: 'int', default: 3, min: 1, max: 50, help: 'socket.io clients sending numbered requests' },
    'interval-ms': { type: 'int', default: 50, min: 5, max: 1000, help: 'request period of each client, ms' },
    'hold-min-ms': { type: 'int', default: 300, min: 0, max: 60_000, help: 'shortest partition, ms' },
    'hold-max-ms': { type: 'int', default: 2500, min: 0, max: 60_000, help: 'longest partition, ms' },
    'settle-timeout-ms': { type: 'int', default: 45_000, min: 1000, max: 600_000, help: 'longest wait for the pair to serve again after a heal, ms' },
    seed: { type: 'int', default: 1, min: 0, max: 2 ** 31, help: 'seed of the hold times' },
    minutes: { type: 'int', default: 60, min: 1, max: 24 * 60, help: 'no new partition after this many minutes (what completed is reported)' },
  },
});

const loadBefore = loadavg();
const result = await runPartitions({
  partitions: args.partitions,
  clients: args.clients,
  intervalMs: args['interval-ms'],
  holdMinMs: args['hold-min-ms'],
  holdMaxMs: Math.max(args['hold-min-ms'], args['hold-max-ms']),
  settleTimeoutMs: args['settle-timeout-ms'],
  seed: args.seed,
  budgetMs: args.minutes * 60_000,
  log: (line) => console.log(line),
});
const loadAfter = loadavg();

const byKind = PARTITION_ROTATION.map((k) => {
  const recs = result.records.filter((r) => r.kind === k.name);
  return { kind: k.name, partitions: recs.length, failovers: recs.filter((r) => r.failover).length, settleMs: summarize(recs.map((r) => r.settleMs), 0) };
});
const report = {
  startedAt: new Date(Date.now() - result.durationMs).toISOString(),
  durationS: Math.round(result.durationMs / 1000),
  command: `node --import tsx scripts/bench/partitions.ts ${process.argv.slice(2).join(' ')}`.trim(),
  loadAverage: { before: loadBefore, after: loadAfter },
  completed: result.completed,
  failovers: result.records.filter((r) => r.failover).length,
  /** Heals after which nobody served and a fresh pair had to be started (availability, not safety). */
  pairRestarts: result.records.filter((r) => r.pairRestarted).length,
  secondFailovers: result.records.filter((r) => r.notes.some((n) => n.startsWith('a second failover'))).length,
  splitBrain: result.verdict.violations.filter((v) => v.startsWith('split brain') || v.includes('claimed by')).length,
  ok: result.verdict.ok && result.problems.length === 0,
  verdict: result.verdict,
  problems: result.problems,
  byKind,
  records: result.records,
  options: result.options,
};
mkdirSync('bench-results', { recursive: true });
writeFileSync('bench-results/partitions.json', JSON.stringify(report, null, 2) + '\n');

const metrics: PlotMetric[] = [
  {
    label: 'Back to serving, protected, after the heal',
    unit: 'ms',
    note: 'one primary behind the VIP at the witness epoch, with a synced standby (a fresh standby after a failover)',
    series: PARTITION_ROTATION.map((k) => ({
      name: k.name,
      points: result.records.filter((r) => r.kind === k.name).map((r) => ({ value: r.settleMs, colour: r.failover ? '#c0392b' : '#2c7fb8', label: `#${r.index} held ${r.holdMs} ms${r.failover ? ', failover' : ''}` })),
    })),
  },
  {
    label: 'Handover between epochs',
    unit: 'ms',
    note: "the old primary's last ack to any client until the new primary's first (negative: both answered: split brain)",
    reference: { value: 0, label: 'split brain below' },
    series: [{ name: 'handovers', points: result.verdict.handovers.map((h) => ({ value: h.gapMs, label: `${h.from} -> ${h.to}` })) }],
  },
];
writeFileSync(
  'bench-results/partitions.html',
  renderPlotPage({
    title: 'Partitions (takeover mode with the witness)',
    subtitle: [
      `${report.startedAt}, ${report.durationS} s, ${result.completed} partitions, ${report.failovers} failovers, ${result.verdict.acks} acks checked, load ${loadBefore[0]!.toFixed(1)} -> ${loadAfter[0]!.toFixed(1)}`,
      report.command,
    ],
    metrics,
    legend: [
      { colour: '#c0392b', label: 'a failover happened' },
      { colour: '#2c7fb8', label: 'the primary kept serving' },
    ],
    footerHtml: `<p>${report.ok ? 'checker: no violation' : `checker: ${escapeHtml([...result.verdict.violations, ...result.problems].join('; '))}`}</p>`,
  }),
);
console.log(
  `${result.completed}/${args.partitions} partitions, ${report.failovers} failovers, ${result.verdict.acks} acks over ${result.verdict.epochs.length} epochs; ` +
    `fresh pairs needed: ${report.pairRestarts}; split brain: ${report.splitBrain}; violations: ${result.verdict.violations.length}; problems: ${result.problems.length}; ` +
    `lost with a dropped connection: ${result.verdict.lostWithDisconnect} (${result.verdict.disconnects} disconnects)`,
);
for (const v of [...result.verdict.violations, ...result.problems]) console.log(`  ${v}`);
console.log('wrote bench-results/partitions.json and partitions.html');
process.exitCode = report.ok ? 0 : 1;
