/**
 * The soak (issue 14 item 4): N consecutive failovers in one call of the lab, in takeover mode
 * with the witness, faults in rotation (kill -9 of the primary, crash of its host, freeze and
 * thaw of it, kill -9 of the standby), the pair re-formed and protected after each, under load
 * the whole time (Chromium pages in one call, socket.io clients in one process). Checks: no
 * participant lost, no ack lost, repeated or out of order, the mix right at the end, resources of
 * the MCU processes flat (first quarter against last). scripts/bench/soak/run.ts does the run.
 * Root; writes bench-results/soak.json and soak.html.
 *
 *   node --import tsx scripts/bench/soak.ts --failovers 100
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { basename, dirname, extname, join } from 'node:path';
import { takeoverLabUnsupportedReason } from '../lab/takeover-support.ts';
import { cleanup } from './chaos/cleanup.ts';
import { parseBenchArgs } from './common/args.ts';
import { escapeHtml, renderPlotPage, type PlotMetric } from './common/plot.ts';
import { summarize } from './common/stats.ts';
import { RESOURCE_METRICS, type ResourceMetric } from './soak/resources.ts';
import { runSoak, SOAK_FAULTS, type SoakResult } from './soak/run.ts';

const args = parseBenchArgs({
  command: 'scripts/bench/soak.ts',
  summary: 'N consecutive failovers (kill -9, host crash, freeze/thaw, standby kill) under load in the lab; writes <out> and <out>.html.',
  options: {
    failovers: { type: 'int', default: 100, min: 1, max: 1000, help: 'faults, in the rotation kill, crash, freeze, standby-kill' },
    pages: { type: 'int', default: 3, min: 1, max: 3, help: 'Chromium pages in the call' },
    clients: { type: 'int', default: 50, min: 1, max: 500, help: 'socket.io clients (one process)' },
    'clients-per-room': { type: 'int', default: 5, min: 1, max: 500, help: "clients per room (rooms of their own, not the pages')" },
    'client-interval-ms': { type: 'int', default: 1000, min: 50, max: 60_000, help: 'request period of each client, ms' },
    'dwell-ms': { type: 'int', default: 2000, min: 0, max: 600_000, help: 'protected pair before each fault, ms' },
    'promotion-timeout-ms': { type: 'int', default: 20_000, min: 1000, max: 600_000, help: 'longest wait for a promotion, ms' },
    'settle-timeout-ms': { type: 'int', default: 60_000, min: 1000, max: 600_000, help: 'longest wait for the pair to serve again, protected, ms' },
    'recovery-timeout-ms': { type: 'int', default: 25_000, min: 1000, max: 600_000, help: "longest wait for the pages' mix to be clean again, ms" },
    'missed-heartbeats': { type: 'int', default: 10, min: 2, max: 1000, help: 'MCU_MISSED_HEARTBEATS of both processes' },
    'max-minutes': { type: 'int', default: 240, min: 1, max: 24 * 60, help: 'time cap of the whole run' },
    out: { type: 'string', default: 'bench-results/soak.json', help: 'report file (the plot goes next to it, .html)' },
  },
});

const unsupported = await takeoverLabUnsupportedReason();
if (unsupported) {
  console.error(`the soak needs the lab in takeover mode: ${unsupported}`);
  process.exit(2);
}

let interrupted = false;
const shutdown = async (signal: NodeJS.Signals): Promise<void> => {
  if (interrupted) process.exit(130);
  interrupted = true;
  console.error(`\n${signal}: cleaning up (again to force)`);
  await cleanup();
  process.exit(130);
};
process.on('SIGINT', (s) => void shutdown(s));
process.on('SIGTERM', (s) => void shutdown(s));

const outJson = args.out;
const outHtml = join(dirname(outJson), `${basename(outJson, extname(outJson))}.html`);
const loadBefore = loadavg();
let result: SoakResult;
try {
  result = await runSoak({
    failovers: args.failovers,
    pages: args.pages,
    clients: args.clients,
    clientsPerRoom: args['clients-per-room'],
    clientIntervalMs: args['client-interval-ms'],
    dwellMs: args['dwell-ms'],
    promotionTimeoutMs: args['promotion-timeout-ms'],
    settleTimeoutMs: args['settle-timeout-ms'],
    recoveryTimeoutMs: args['recovery-timeout-ms'],
    missedHeartbeats: args['missed-heartbeats'],
    timeCapMs: args['max-minutes'] * 60_000,
    log: (line) => console.log(line),
  });
} finally {
  await cleanup();
}
const loadAfter = loadavg();

const v = result.verdict;
const c = result.clients;
const lostParticipants = result.roster ? result.roster.missing.length : null;
const flat = result.resources.trends.every((t) => t.flat);
const ok = result.problems.length === 0 && result.recovered === args.failovers && flat && result.unplannedFailovers.length === 0;
const mb = (kb: number): number => Math.round(kb / 1024);
const trendText = (['primary', 'standby'] as const)
  .map((role) => {
    const of = (m: ResourceMetric): string => {
      const t = result.resources.trends.find((x) => x.role === role && x.metric === m);
      if (!t) return `${m} ?`;
      const f = m === 'rssKb' ? mb : (x: number): number => x;
      return `${m === 'rssKb' ? 'RSS MB' : m} ${f(t.firstQuarter)} -> ${f(t.lastQuarter)}${t.flat ? '' : ' (GROWING)'}`;
    };
    return `${role} ${RESOURCE_METRICS.map(of).join(', ')}`;
  })
  .join('; ');
const summary =
  `soak: ${result.recovered}/${args.failovers} failovers recovered (${SOAK_FAULTS.map((f) => `${f} ${result.records.filter((r) => r.fault === f && r.recovered).length}/${result.records.filter((r) => r.fault === f).length}`).join(', ')}), ` +
  `participants lost ${lostParticipants ?? '?'}, acks lost ${c?.missing ?? '?'} repeated ${c?.duplicates ?? '?'} out of order ${c?.outOfOrder ?? '?'} of ${c?.acked ?? '?'}, ` +
  `page requests lost ${result.pageSignaling.reduce((n, x) => n + x.missing + x.failed, 0)} of ${result.pageSignaling.reduce((n, x) => n + x.sent, 0)}, ` +
  `history violations ${v.violations.length}, failovers nobody caused ${result.unplannedFailovers.length}, mix right on ${result.mix.filter((m) => m.hears && m.sees).length}/${args.pages} pages, ` +
  `resources ${flat ? 'flat' : 'NOT flat'} (${trendText}); ${ok ? 'PASS' : 'FAIL'}`;

const gapsBy = (pick: (p: SoakResult['records'][number]['pages'][number]) => number | null): Record<string, ReturnType<typeof summarize>> =>
  Object.fromEntries(SOAK_FAULTS.map((f) => [f, summarize(result.records.filter((r) => r.fault === f).flatMap((r) => r.pages.map(pick).filter((x): x is number => x !== null)), 0)]));
const report = {
  startedAt: new Date(Date.now() - result.durationMs).toISOString(),
  durationS: Math.round(result.durationMs / 1000),
  command: `node --import tsx scripts/bench/soak.ts ${process.argv.slice(2).join(' ')}`.trim(),
  loadAverage: { before: loadBefore, after: loadAfter },
  summary,
  ok,
  mode: result.mode,
  requested: args.failovers,
  completed: result.completed,
  recovered: result.recovered,
  stoppedBy: result.stoppedBy,
  participantsLost: lostParticipants,
  roster: result.roster,
  unplannedFailovers: result.unplannedFailovers,
  clients: c,
  pageSignaling: result.pageSignaling,
  history: { ok: v.ok, acks: v.acks, epochs: v.epochs, violations: v.violations, handovers: v.handovers },
  mix: result.mix,
  gaps: { audioMs: gapsBy((p) => p.audioGapMs), videoMs: gapsBy((p) => p.videoGapMs) },
  resources: result.resources,
  problems: result.problems,
  records: result.records,
  options: result.options,
};
mkdirSync(dirname(outJson), { recursive: true });
writeFileSync(outJson, JSON.stringify(report, null, 2) + '\n');

const FAULT_COLOUR: Record<(typeof SOAK_FAULTS)[number], string> = { kill: '#c0392b', crash: '#8e44ad', freeze: '#2c7fb8', 'standby-kill': '#27ae60' };
const perFault = (value: (r: SoakResult['records'][number]) => Array<{ value: number; label: string }>): PlotMetric['series'] =>
  SOAK_FAULTS.map((f) => ({
    name: f,
    points: result.records.filter((r) => r.fault === f).flatMap((r) => value(r).map((p) => ({ ...p, colour: r.recovered ? FAULT_COLOUR[f] : '#000000' }))),
  }));
const pagePoints = (pick: (p: SoakResult['records'][number]['pages'][number]) => number | null) => (r: SoakResult['records'][number]) =>
  r.pages.flatMap((p) => (pick(p) === null ? [] : [{ value: pick(p)!, label: `#${r.index} ${p.name}` }]));
// Resources over the run: each role's samples by quarter of the failovers (the trend is first against last).
const quarters = (role: 'primary' | 'standby', metric: ResourceMetric, scale: (x: number) => number): PlotMetric['series'] => {
  const mine = result.resources.samples.filter((s) => s.role === role);
  const last = Math.max(1, ...mine.map((s) => s.failover));
  return [1, 2, 3, 4].map((q) => ({
    name: `${role} Q${q}`,
    points: mine.filter((s) => Math.min(4, Math.floor((s.failover / last) * 4) + 1) === q || (q === 1 && s.failover === 0)).map((s) => ({ value: scale(s[metric]), label: `after #${s.failover}, pid ${s.pid}` })),
  }));
};
const resourcePanel = (metric: ResourceMetric, label: string, unit: string, scale: (x: number) => number): PlotMetric => ({
  label,
  unit,
  note: 'every MCU process after each failover, by quarter of the run (flat: the last quarter within the allowance of the first)',
  series: [...quarters('primary', metric, scale), ...quarters('standby', metric, scale)],
});
const metrics: PlotMetric[] = [
  { label: 'Audio gap per failover (each page)', unit: 'ms', note: "the page's longest audio gap from the fault until its mix was clean again", series: perFault(pagePoints((p) => p.audioGapMs)) },
  { label: 'Video gap per failover (each page)', unit: 'ms', note: "the page's longest interval between rendered frames", series: perFault(pagePoints((p) => p.videoGapMs)) },
  {
    label: "Clients' handover per failover",
    unit: 'ms',
    note: "the old primary's last ack to any client until the new primary's first (negative: split brain)",
    reference: { value: 0, label: 'split brain below' },
    series: perFault((r) => (r.clientHandoverMs === null ? [] : [{ value: r.clientHandoverMs, label: `#${r.index} epoch ${r.toEpoch}` }])),
  },
  { label: 'Fault to the mix right again', unit: 'ms', note: 'until every page heard the others and not itself', series: perFault((r) => (r.mixBackMs === null ? [] : [{ value: r.mixBackMs, label: `#${r.index}` }])) },
  { label: 'Fault to promotion', unit: 'ms', series: perFault((r) => (r.promotedMs === null ? [] : [{ value: r.promotedMs, label: `#${r.index}` }])) },
  { label: 'Pair re-formed and protected', unit: 'ms', note: 'from the fault undone until a fresh standby protected the primary', series: perFault((r) => [{ value: r.settleMs, label: `#${r.index}` }]) },
  resourcePanel('rssKb', 'Resident memory', 'MB', mb),
  resourcePanel('fds', 'Open file descriptors', 'count', (x) => x),
  resourcePanel('threads', 'Threads', 'count', (x) => x),
];
writeFileSync(
  outHtml,
  renderPlotPage({
    title: `Soak: ${result.recovered}/${args.failovers} failovers (${result.mode})`,
    subtitle: [`${report.startedAt}, ${report.durationS} s, load ${loadBefore[0]!.toFixed(1)} -> ${loadAfter[0]!.toFixed(1)}`, report.command],
    metrics,
    legend: [...SOAK_FAULTS.map((f) => ({ colour: FAULT_COLOUR[f], label: f })), { colour: '#000000', label: 'not recovered' }],
    footerHtml: `<p>${escapeHtml(summary)}</p>${result.problems.length ? `<ul>${result.problems.map((p) => `<li>${escapeHtml(p)}</li>`).join('')}</ul>` : ''}`,
  }),
);
console.log(summary);
for (const p of result.problems) console.log(`  ${p}`);
console.log(`wrote ${outJson} and ${outHtml}`);
process.exit(ok ? 0 : 1);
