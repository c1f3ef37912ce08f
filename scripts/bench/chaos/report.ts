/**
 * The chaos report: per mode, the rounds' rows, counts and min/median/p95/max of each metric
 * with each median's ratio to reconnect's (the JSON), and the console table printed as the run
 * goes and at its end.
 */
import { INAUDIBLE_BELOW_STEADY_DB } from '../../../client-demo/src/stats/perceived-gaps.ts';
import { SILENT_DB } from '../../probe/mix.ts';
import { summarize as summarizeSample, type Summary } from '../common/stats.ts';
import type { ModeDescriptor } from './modes.ts';
import type { KillRow, PageSample } from './round.ts';
import { LATE_STALL_MS, NOMINAL_FRAME_MS, PROBE_INTERVAL_MS, type ModeName } from './settings.ts';
import type { Incident } from './systems.ts';

export type Stats = Summary;

/** min/median/p95/max/... of the finite values (scripts/bench/common/stats.ts), null when there are none. */
export function summarize(values: number[]): Stats | null {
  const finite = values.filter(Number.isFinite);
  return finite.length === 0 ? null : summarizeSample(finite, 1);
}

export type PageMetric = 'voiceGapMs' | 'tileGapMs' | 'audioGapMs' | 'audioGapPollMs' | 'videoGapMs' | 'videoGlitchMs' | 'signalingGapMs' | 'signalingOutageMs' | 'mediaRestartedAtMs' | 'mediaBackMs';
export type KillMetric = 'worstVoiceGapMs' | 'worstTileGapMs' | 'detectionMs' | 'promotionMs' | 'acceptingMs' | 'completeMs';

/** What each metric is, in report order; `per` says what one sample is. */
export const METRICS: Array<{ key: PageMetric | KillMetric; per: 'page' | 'kill'; label: string; note: string }> = [
  { key: 'voiceGapMs', per: 'page', label: 'Voice gap', note: `what a person hears: per page per kill, the longest stretch one of the other participants' tones was inaudible (more than ${INAUDIBLE_BELOW_STEADY_DB} dB under its own level before the kill; FFT energy at the tone in what the page plays, call and spare path summed, every 10 ms), worst voice; ~10 ms when nothing is lost` },
  { key: 'tileGapMs', per: 'page', label: 'Tile gap', note: `what a person sees: per page per kill, the longest stretch a tile of the received grid did not move (each participant's tile carries a moving marker, read on every rendered frame), worst tile; one or two frame intervals (${NOMINAL_FRAME_MS.toFixed(0)}-${(2 * NOMINAL_FRAME_MS).toFixed(0)} ms) when nothing is lost` },
  { key: 'worstVoiceGapMs', per: 'kill', label: 'Voice gap, worst page', note: 'the call\'s voice gap per kill: the worst recovered page\'s' },
  { key: 'worstTileGapMs', per: 'kill', label: 'Tile gap, worst page', note: 'the call\'s tile gap per kill: the worst recovered page\'s' },
  { key: 'audioGapMs', per: 'page', label: 'Audio gap', note: 'longest stretch without a received audio packet, per page per kill: from the latest packet before it to the first after it, by the packets\' arrival stamps (inbound-rtp lastPacketReceivedTimestamp, 20 ms per packet; polled every 20 ms); only a growing count of some stream ends a gap, and a played spare path counts' },
  { key: 'audioGapPollMs', per: 'page', label: 'Audio gap (poll times)', note: 'the earlier sessions\' method: the longest interval between the poll times at which the received count changed (Chromium\'s ~50 ms stats cache and a busy page put both ends late)' },
  { key: 'videoGapMs', per: 'page', label: 'Video gap (raw)', note: 'longest interval between rendered frames (requestVideoFrameCallback), per page per kill' },
  { key: 'videoGlitchMs', per: 'page', label: 'Video glitch', note: `raw video gap minus the nominal ${NOMINAL_FRAME_MS.toFixed(1)} ms frame interval (15 fps)` },
  { key: 'signalingGapMs', per: 'page', label: 'Signaling gap', note: `longest interval between answered requests of a numbered request/ack stream (one request per ${PROBE_INTERVAL_MS} ms on the page's own connection), per page per kill` },
  { key: 'signalingOutageMs', per: 'page', label: 'Signaling outage', note: "socket.io disconnect -> resumed join ('reconnected' outageMs), per page per kill" },
  { key: 'detectionMs', per: 'kill', label: 'Detection', note: "the promoted standby's 'confirmed-dead' log step - kill time (failover-timeline.ts), per kill" },
  { key: 'promotionMs', per: 'kill', label: 'Promotion', note: 'timeline.servingAt - timeline.promotionStartedAt: restore, serve, then replication and the heartbeat beacon (a worker thread) started; per kill' },
  { key: 'acceptingMs', per: 'kill', label: 'Kill -> serving (log)', note: "the promoted process's 'serving as primary' log step - kill time (signaling port open), per kill" },
  { key: 'completeMs', per: 'kill', label: 'Kill -> promotion complete', note: 'timeline.servingAt - kill time (mcu.start() resolved: replication and heartbeats ready too), per kill' },
  { key: 'mediaRestartedAtMs', per: 'page', label: "Kill -> 'media-restarted' in the page", note: 'when the page had answered the new primary\'s offer (page clock), per page per kill' },
  { key: 'mediaBackMs', per: 'page', label: 'Kill -> media steady again', note: 'start of the steady stretch (no frame interval > 200 ms, no audio stall > 150 ms) that ended the round, per page per kill' },
];

export interface ModeReport {
  description: string;
  startedAt: string;
  durationS: number;
  killsRequested: number;
  rounds: number;
  aborted: string | null;
  stoppedByTimeCap: boolean;
  counts: { failedRounds: number; pagesDisconnected: number; incidents: number; lateStalls: number; ownToneAudibleBeforeKill: number; failureKinds: Record<string, number>; pageSamples: number; fallbacks: number; newPeerConnections: number; changedIds: number; notResumed: number };
  metrics: Record<string, Stats | null>;
  /** 1-minute load average at the kills (2 cores: the call alone keeps it near 2). */
  load1: Stats | null;
  /** Things no kill explains (spurious death verdicts, processes exiting on their own). */
  incidents: Incident[];
  /** Each page's own tone in its mix (dB), right before the kills and after the recoveries: the "hears itself" margin. */
  ownToneDb: { before: Stats | null; after: Stats | null; thresholdDb: number };
  rows: KillRow[];
}

function pageValues(rows: KillRow[], key: PageMetric): number[] {
  // Page metrics only where the page recovered: an unrecovered page's "gap" is just the timeout.
  return rows.flatMap((r) => r.pages.filter((p) => p.recovered).map((p) => p[key])).filter((v): v is number => typeof v === 'number');
}

function killValues(rows: KillRow[], key: KillMetric): number[] {
  return rows.map((r) => r[key]).filter((v): v is number => typeof v === 'number');
}

export function modeReport(mode: ModeDescriptor, startedAt: number, killsRequested: number, rows: KillRow[], aborted: string | null, stoppedByTimeCap: boolean, incidents: Incident[]): ModeReport {
  const pages = rows.flatMap((r) => r.pages);
  const metrics: Record<string, Stats | null> = {};
  for (const m of METRICS) metrics[m.key] = m.per === 'page' ? summarize(pageValues(rows, m.key as PageMetric)) : summarize(killValues(rows, m.key as KillMetric));
  return {
    description: mode.description,
    startedAt: new Date(startedAt).toISOString(),
    durationS: Math.round((Date.now() - startedAt) / 1000),
    killsRequested,
    rounds: rows.length,
    aborted,
    stoppedByTimeCap,
    counts: {
      failedRounds: rows.filter((r) => !r.ok).length,
      pagesDisconnected: pages.filter((p) => (p.disconnects ?? 0) > 0).length,
      incidents: incidents.length,
      lateStalls: pages.reduce((n, p) => n + p.stalls.filter((st) => st.fromMs > LATE_STALL_MS && st.kind !== 'audio-poll').length, 0),
      ownToneAudibleBeforeKill: rows.reduce((n, r) => n + r.warnings.length, 0),
      failureKinds: rows.flatMap((r) => r.failureKinds).reduce<Record<string, number>>((acc, k) => ({ ...acc, [k]: (acc[k] ?? 0) + 1 }), {}),
      pageSamples: pages.length,
      fallbacks: pages.filter((p) => p.fallback).length,
      newPeerConnections: pages.filter((p) => p.newPeerConnection).length,
      changedIds: pages.filter((p) => p.idChanged).length,
      notResumed: pages.filter((p) => p.resumed === false).length,
    },
    metrics,
    load1: summarize(rows.map((r) => r.load1)),
    incidents,
    ownToneDb: {
      before: summarize(rows.flatMap((r) => r.pages.map((p) => p.ownToneBeforeDb))),
      after: summarize(rows.flatMap((r) => r.pages.map((p) => p.ownToneAfterDb ?? NaN))),
      thresholdDb: SILENT_DB,
    },
    rows,
  };
}

const n0 = (v: number | null | undefined, w = 5): string => (typeof v === 'number' ? String(Math.round(v)) : '-').padStart(w);

export function printRow(row: KillRow): void {
  const per = (f: (p: PageSample) => number | null): string => row.pages.map((p) => n0(f(p), 5)).join('');
  // Stalls that started well after the failover's own gap: something else froze the media.
  const late = row.pages.flatMap((p) => p.stalls.filter((st) => st.fromMs > LATE_STALL_MS && st.kind !== 'audio-poll').map((st) => ({ ...st, name: p.name })));
  const worst = late.reduce<(typeof late)[number] | null>((w, st) => (w === null || st.ms > w.ms ? st : w), null);
  const flags = [
    `load ${row.load1.toFixed(1)}`,
    ...(worst ? [`${late.length} late stall${late.length > 1 ? 's' : ''} (first +${Math.min(...late.map((st) => st.fromMs))}, worst ${worst.name} ${worst.kind} ${worst.ms} ms at +${worst.fromMs})`] : []),
    ...row.pages.filter((p) => p.fallback).map((p) => `${p.name} fell back`),
    ...row.pages.filter((p) => (p.disconnects ?? 0) > 0).map((p) => `${p.name} disconnected`),
    ...row.pages.filter((p) => p.idChanged).map((p) => `${p.name} new id`),
    ...row.notes,
    ...row.warnings.map((w) => `warning: ${w}`),
    ...(row.failure ? [`FAILED: ${row.failure}`] : []),
  ];
  console.log(
    `${String(row.kill).padStart(4)}  ${row.ok ? 'ok  ' : 'FAIL'} ${n0(row.detectionMs, 5)} ${n0(row.promotionMs, 5)} ${n0(row.acceptingMs, 5)} |${per((p) => p.voiceGapMs)} |${per((p) => p.tileGapMs)} |${per((p) => p.audioGapMs)} |${per((p) => p.audioGapPollMs)} |${per((p) => p.videoGapMs)} |${per((p) => p.videoGlitchMs)} |${per((p) => p.signalingGapMs)} |${per((p) => p.signalingOutageMs)} |${per((p) => p.mediaRestartedAtMs)} |${per((p) => p.mediaBackMs)}  ${flags.join('; ')}`,
  );
}

export function printRowHeader(mode: ModeName): void {
  console.log(`\nmode ${mode}: per kill (ms; page columns are Red Green Blue)`);
  console.log('det: kill -> detection; promo: promotion (timeline); serve: kill -> serving (log); voice: longest stretch an other participant was inaudible; tile: longest stretch a tile did not move; audio/video: packet and frame gaps; restart: kill -> media-restarted; back: kill -> media steady again');
  console.log(`kill  res    det promo serve |  voice gap R G B |   tile gap R G B |  audio gap R G B | audio/poll R G B |  video gap R G B | vid glitch R G B |    sig gap R G B | sig outage R G B |    restart R G B |       back R G B`);
}

export function printSummary(reports: Record<string, ModeReport>): void {
  for (const [mode, rep] of Object.entries(reports)) {
    const c = rep.counts;
    const kinds = Object.entries(c.failureKinds).map(([k, n]) => `${k} ${n}`).join(', ');
    console.log(`\nmode ${mode}: ${rep.rounds} kills in ${rep.durationS} s, ${c.failedRounds} failed rounds${kinds ? ` (${kinds})` : ''}, ${c.fallbacks} fallbacks, ${c.newPeerConnections} new peer connections, ${c.changedIds} changed ids, ${c.notResumed} not resumed, ${c.pagesDisconnected} page samples with a disconnect, ${c.ownToneAudibleBeforeKill} pages hearing their own tone (already before the kill)${rep.aborted ? `; ABORTED: ${rep.aborted}` : ''}${rep.stoppedByTimeCap ? '; stopped by the time cap' : ''}`);
    console.log(`load average (1 min) at the kills: min ${rep.load1?.min ?? '-'}, median ${rep.load1?.median ?? '-'}, max ${rep.load1?.max ?? '-'}`);
    console.log(`late stalls (starting > ${LATE_STALL_MS} ms after the kill): ${c.lateStalls}; incidents no kill explains: ${c.incidents}`);
    for (const inc of rep.incidents) console.log(`  ${inc.at} pid ${inc.pid ?? '?'}: ${inc.what}`);
    for (const r of rep.rows) {
      const late = r.pages.flatMap((p) => p.stalls.filter((st) => st.fromMs > LATE_STALL_MS && st.kind !== 'audio-poll').map((st) => `${p.name} ${st.kind} ${st.ms} ms at +${st.fromMs}`));
      const shown = late.length > 6 ? [...late.slice(0, 6), `... ${late.length - 6} more`] : late;
      if (late.length > 0) console.log(`  kill ${r.kill}: ${shown.join(', ')} | promotion complete +${n0(r.completeMs, 0)}, new standby ready +${n0(r.reprotectedMs, 0)}`);
    }
    console.log(`${'metric'.padEnd(44)} ${'per'.padEnd(5)} ${'n'.padStart(4)} ${'min'.padStart(7)} ${'median'.padStart(7)} ${'p95'.padStart(7)} ${'max'.padStart(7)}`);
    for (const m of METRICS) {
      const s = rep.metrics[m.key];
      const v = (x: number | undefined): string => (x === undefined ? '-' : String(Math.round(x))).padStart(7);
      console.log(`${(m.label + ' (ms)').padEnd(44)} ${m.per.padEnd(5)} ${String(s?.n ?? 0).padStart(4)} ${v(s?.min)} ${v(s?.median)} ${v(s?.p95)} ${v(s?.max)}`);
    }
    for (const [when, s] of Object.entries(rep.ownToneDb).filter(([k]) => k !== 'thresholdDb') as Array<[string, Stats | null]>) {
      const v = (x: number | undefined): string => (x === undefined ? '-' : String(Math.round(x))).padStart(7);
      console.log(`${`Own tone in own mix, ${when} kill (dB)`.padEnd(44)} ${'page'.padEnd(5)} ${String(s?.n ?? 0).padStart(4)} ${v(s?.min)} ${v(s?.median)} ${v(s?.p95)} ${v(s?.max)}`);
    }
  }
  printHeadline(reports);
  const ratios = medianRatios(reports);
  const others = Object.keys(ratios).filter((m) => m !== 'reconnect');
  if (others.length === 0) return;
  console.log(`\nmedians side by side (ratio: the mode's median / reconnect's)`);
  console.log(`${'metric'.padEnd(44)} ${'reconnect'.padStart(9)} ${others.map((m) => `${m.padStart(9)} ${'ratio'.padStart(6)}`).join(' ')}`);
  for (const m of METRICS) {
    const med = (mode: string): string => String(reports[mode]?.metrics[m.key]?.median === undefined ? '-' : Math.round(reports[mode]!.metrics[m.key]!.median)).padStart(9);
    console.log(`${(m.label + ' (ms)').padEnd(44)} ${med('reconnect')} ${others.map((o) => `${med(o)} ${String(ratios[o]![m.key] ?? '-').padStart(6)}`).join(' ')}`);
  }
}

/**
 * The headline: what a person perceives per mode, the voice gap and the tile gap (per page per
 * kill), with the packet and frame gaps beside them for comparison.
 */
export function printHeadline(reports: Record<string, ModeReport>): void {
  const cell = (s: Stats | null | undefined): string => (s ? `${Math.round(s.min)} / ${Math.round(s.median)} / ${Math.round(s.p95)} / ${Math.round(s.max)}` : '-').padStart(22);
  console.log(`\nheadline: what a person perceives, min / median / p95 / max ms per page per kill (packet and frame gaps beside)`);
  console.log(`${'mode'.padEnd(18)} ${'voice gap'.padStart(22)} ${'tile gap'.padStart(22)} ${'audio gap (packets)'.padStart(22)} ${'video gap (frames)'.padStart(22)}`);
  for (const [mode, rep] of Object.entries(reports)) {
    const m = rep.metrics;
    console.log(`${mode.padEnd(18)} ${cell(m.voiceGapMs)} ${cell(m.tileGapMs)} ${cell(m.audioGapMs)} ${cell(m.videoGapMs)}`);
  }
}

/** The whole run, as written to the JSON. */
export interface Report {
  date: string;
  machine: { cpus: number; model: string; node: string; chromium: string; loadavg: number[]; memoryGb: number };
  config: Record<string, unknown>;
  modes: Record<string, ModeReport>;
  /** Per mode, per metric: the mode's median divided by reconnect's (null without both). */
  medianRatioToReconnect: Record<string, Record<string, number | null>>;
}

export function medianRatios(modes: Record<string, ModeReport>): Record<string, Record<string, number | null>> {
  const base = modes.reconnect;
  const out: Record<string, Record<string, number | null>> = {};
  if (!base) return out;
  for (const [name, rep] of Object.entries(modes)) {
    out[name] = {};
    for (const m of METRICS) {
      const v = rep.metrics[m.key]?.median;
      const b = base.metrics[m.key]?.median;
      out[name]![m.key] = v === undefined || b === undefined || b === 0 ? null : Math.round((v / b) * 100) / 100;
    }
  }
  return out;
}

