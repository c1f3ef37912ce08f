/**
 * One round of a mode: a clean baseline (everyone hears the other two, media steady), the
 * primary protected, the pages armed (gap counters reset, a signaling probe running), the kill,
 * the recovery awaited, then what each page measured and whether the mix is right again.
 */
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Browser } from 'playwright-core';
import { openParticipant, type ParticipantPage } from '../../common/browser.ts';
import { othersOf, PARTICIPANTS, seeing, SILENT_DB } from '../../probe/mix.ts';
import { armGlitchReadout, eventNamesSince, readGlitches, readPerceivedGaps } from '../../probe/page-readout.ts';
import { startSignalingProbe, stopSignalingProbe, waitForProbeAcks, type SignalingProbeReport } from '../../probe/signaling-probe.ts';
import type { ModeDescriptor } from './modes.ts';
import { checkClean, fmtLevels, hearing, ownToneDb, waitClean, type CleanCheck } from './page-checks.ts';
import {
  BASELINE_TIMEOUT_MS,
  NOMINAL_FRAME_MS,
  POLL_MS,
  PROBE_INTERVAL_MS,
  PROTECTION_TIMEOUT_MS,
  RECOVERY_TIMEOUT_MS,
  STALL_THRESHOLDS,
  TAKEOVER_MODES,
  type ModeName,
} from './settings.ts';
import { SystemGoneError, type FailoverStep, type SystemUnderTest } from './systems.ts';

/** One page's account of one kill. */
export interface PageSample {
  name: string;
  /** Heard the right tones with steady media before the deadline. */
  recovered: boolean;
  /** Kill -> start of the steady media that ended the round (the first frame/packet after the last stall). */
  mediaBackMs: number | null;
  hears: boolean;
  sees: boolean;
  levels: Record<string, number>;
  /** Loudest own-tone level over 4 analyser reads right before the kill / after the recovery, dB. */
  ownToneBeforeDb: number;
  ownToneAfterDb: number | null;
  /**
   * The page's voice gap: the longest stretch one of the other participants' tones was inaudible
   * (more than 20 dB under its level before the kill, sampled every 10 ms in what the page plays),
   * worst voice; null when the page could not be read.
   */
  voiceGapMs: number | null;
  /** The page's tile gap: the longest stretch a tile of the received grid did not move (its marker, on every rendered frame), worst tile. */
  tileGapMs: number | null;
  /** Per other participant: its voice gap, where it started (ms after the kill), its level before the kill. */
  voices: Array<{ name: string; hz: number; gapMs: number | null; fromMs: number | null; steadyDb: number | null; open: boolean }>;
  /** Per tile (grid order, the participants' join order): its gap and where it started (ms after the kill). */
  tiles: Array<{ tile: number; gapMs: number | null; fromMs: number | null; open: boolean }>;
  /** The voice meter's samples in the window and its longest interval between them (a busy page samples late; such a pause counts in the voice gap). */
  voiceSampling: { samples: number; longestIntervalMs: number; tileFrames: number; method: string | null } | null;
  /** The page probe's longest audio gap: from the latest packet before it to the first after it, by the packets' arrival stamps (20 ms polls). */
  audioGapMs: number | null;
  /** The earlier method: the longest interval between poll times at which the received count changed. */
  audioGapPollMs: number | null;
  videoGapMs: number | null;
  frameIntervalMs: number | null;
  videoGlitchMs: number | null;
  signalingOutageMs: number | null;
  /** The signaling probe's longest interval between two answered requests (both modes; includes up to one request interval). */
  signalingGapMs: number | null;
  /** The probe's longest request -> answer time. */
  signalingAckLatencyMs: number | null;
  /** The probe's stream: requests sent, answered ok, refused, never answered, out of order. */
  signalingRequests: { sent: number; acked: number; failed: number; missing: number; outOfOrder: number } | null;
  /** socket.io `disconnect` events the page saw. */
  disconnects: number | null;
  /** Same socket.io id, engine.io id and transport after the failover as before. */
  sameSignalingConnection: boolean | null;
  resumed: boolean | null;
  /** Kill -> 'reconnected' / 'media-restarted' in the page (its clock). */
  reconnectedAtMs: number | null;
  mediaRestartedAtMs: number | null;
  mediaRestartReason: string | null;
  mediaRestartTookMs: number | null;
  /** Audio arrivals around the kill (ms after it, -200..+800): when some inbound audio stream grew (first new packet). */
  audioArrivalsMs: number[];
  /** Warm spare: kill -> the page's switch, the old path's last packet and the spare's first audio packet (page clocks, ms). */
  spareSwitch: { trigger: string; atMs: number; oldLastPacketMs: number | null; spareFirstAudioMs: number | null } | null;
  fallback: boolean;
  newPeerConnection: boolean;
  idChanged: boolean;
  /**
   * Chromium's own inbound-rtp video freezes during the round, summed over the stats
   * entries alive at the end. Blind to the failover itself: the new primary sends a new
   * SSRC, so the stream whose gap it was is gone and the new one starts with no freeze
   * (newInboundVideo). Kept only to show freezes after the restart.
   */
  freezeCount: number | null;
  freezeMs: number | null;
  /** The inbound video stats id changed (a new SSRC from the new primary). */
  newInboundVideo: boolean;
  /** Every stall (video interval > 200 ms, audio stall > 150 ms) since the kill: start relative to the kill, duration. */
  stalls: Array<{ kind: 'audio' | 'video' | 'audio-poll'; fromMs: number; ms: number }>;
  state: string | null;
}

/** The probe's report as sample fields (all null when the probe could not be read). */
function signalingFields(r: SignalingProbeReport | null): Pick<PageSample, 'signalingGapMs' | 'signalingAckLatencyMs' | 'signalingRequests' | 'disconnects' | 'sameSignalingConnection'> {
  if (!r) return { signalingGapMs: null, signalingAckLatencyMs: null, signalingRequests: null, disconnects: null, sameSignalingConnection: null };
  return {
    signalingGapMs: r.maxAckGapMs,
    signalingAckLatencyMs: r.maxAckLatencyMs,
    signalingRequests: { sent: r.sent, acked: r.acked, failed: r.failed, missing: r.missing, outOfOrder: r.outOfOrder },
    disconnects: r.disconnects.length,
    sameSignalingConnection: r.after.socketId === r.before.socketId && r.after.engineId === r.before.engineId && r.after.transport === r.before.transport,
  };
}

/** Why a round failed, counted per kind in the report. */
export type FailureKind = 'disconnected' | 'not-recovered' | 'other-tone-missing' | 'own-tone-audible' | 'tiles-wrong' | 'status' | 'readout' | 'round-error';

/** One kill: what the system and every page did. */
export interface KillRow {
  mode: ModeName;
  kill: number;
  ok: boolean;
  failure: string | null;
  failureKinds: FailureKind[];
  /** Mix findings not caused by the kill (already there before it). */
  warnings: string[];
  notes: string[];
  killedAt: number | null;
  victimPid: number | null;
  promotedPid: number | null;
  epoch: number | null;
  reason: string | null;
  detectionMs: number | null;
  /** The worst recovered page's voice gap and tile gap: the call's, for this kill. */
  worstVoiceGapMs: number | null;
  worstTileGapMs: number | null;
  promotionMs: number | null;
  /** Kill -> the promoted process logs 'serving as primary' (signaling port open). */
  acceptingMs: number | null;
  /** Kill -> timeline.servingAt (set when mcu.start() resolves: replication and heartbeats ready too). */
  completeMs: number | null;
  /** Kill -> last heartbeat the standby heard (negative: before the kill). */
  lastHeartbeatMs: number | null;
  /** 1-minute load average at the kill: on a shared 2-core machine, anything far above ~2.5 means others competed for the CPU. */
  load1: number;
  /**
   * Kill -> the replacement standby is ready (it is spawned at promotion complete; its
   * boot competes with the call for the CPU). Known by the next round's start.
   */
  reprotectedMs: number | null;
  pages: PageSample[];
  status: { role: unknown; epoch: unknown; participants: unknown } | null;
  steps: FailoverStep[];
}

/** The pages in their room on the current system. */
export interface Call {
  /** Called when a round found the system protected (the previous round's re-protection is known then). */
  onProtected?: () => void;
  browser: Browser;
  system: SystemUnderTest;
  room: string;
  pages: ParticipantPage[];
  ids: Array<string | null>;
}

/** Opens the three pages; pages already open leave the call first (or they would linger as 'away' participants). */
export async function openCall(call: Call): Promise<void> {
  for (const p of call.pages) {
    await p.page.click('#leave', { timeout: 2000 }).catch(() => undefined);
    await p.close();
  }
  call.pages = [];
  for (const spec of PARTICIPANTS) call.pages.push(await openParticipant(call.browser, call.system.url, call.room, spec));
  call.ids = await Promise.all(call.pages.map((p) => p.participantId()));
}

/** Waits until a kill can be survived; asks the system to repair its protection once. */
async function waitProtected(system: SystemUnderTest, notes: string[]): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    const deadline = Date.now() + PROTECTION_TIMEOUT_MS;
    let why = await system.protection();
    while (why !== null && Date.now() < deadline) {
      await sleep(250);
      why = await system.protection();
    }
    if (why === null) return;
    const repaired = await system.repairProtection().catch((err: unknown) => `repair failed: ${(err as Error).message.split('\n')[0]}`);
    if (repaired === null) throw new SystemGoneError(`not protected after ${PROTECTION_TIMEOUT_MS} ms: ${why}`);
    notes.push(repaired);
  }
  throw new SystemGoneError('still not protected after a repair');
}

/** Baseline, kill, recovery, read-out; a SystemGoneError when the system cannot go on. */
export async function runRound(mode: ModeDescriptor, call: Call, kill: number): Promise<KillRow> {
  const row = emptyRow(mode.name, kill);

  // Clean baseline: if the call is not clean (a previous round left it broken), rejoin once.
  let baseline = await waitClean(call.pages, Date.now() + BASELINE_TIMEOUT_MS);
  let dirty = [...baseline.entries()].filter(([, v]) => !v.ok);
  if (dirty.length > 0) {
    row.notes.push(`baseline not clean (${dirty.map(([n, v]) => `${n}: ${v.why}`).join('; ')}): pages reopened`);
    await openCall(call);
    baseline = await waitClean(call.pages, Date.now() + BASELINE_TIMEOUT_MS);
    dirty = [...baseline.entries()].filter(([, v]) => !v.ok);
    if (dirty.length > 0) throw new SystemGoneError(`the call cannot be made clean again: ${dirty.map(([n, v]) => `${n}: ${v.why}`).join('; ')}`);
  }
  await waitProtected(call.system, row.notes);
  call.onProtected?.();

  const ownBefore = await Promise.all(call.pages.map((p) => ownToneDb(p)));
  const armed = await Promise.all(call.pages.map((p) => armGlitchReadout(p.page)));
  // The signaling probe, in motion before the kill so its gap is measured from a running stream.
  await Promise.all(call.pages.map((p) => startSignalingProbe(p, PROBE_INTERVAL_MS)));
  await Promise.all(call.pages.map((p) => waitForProbeAcks(p, 3)));
  row.load1 = loadavg()[0]!;
  const promotion = await mode.kill(call.system);
  const { killedAt, timeline } = promotion;
  row.killedAt = killedAt;
  row.victimPid = promotion.victimPid;
  row.promotedPid = promotion.promotedPid;
  const at = (key: string): number | null => (typeof timeline[key] === 'number' ? (timeline[key] as number) : null);
  row.epoch = at('epoch');
  row.reason = typeof timeline.reason === 'string' ? timeline.reason : null;
  const detectedAt = at('detectedAt');
  const promotionStartedAt = at('promotionStartedAt');
  const servingAt = at('servingAt');
  const lastHeartbeatAt = at('lastHeartbeatAt');
  row.detectionMs = detectedAt === null ? null : detectedAt - killedAt;
  row.promotionMs = servingAt === null || promotionStartedAt === null ? null : servingAt - promotionStartedAt;
  row.completeMs = servingAt === null ? null : servingAt - killedAt;
  row.lastHeartbeatMs = lastHeartbeatAt === null ? null : lastHeartbeatAt - killedAt;

  // Recovery: every page hears the right tones again, with steady media and the mode's events seen.
  const deadline = killedAt + RECOVERY_TIMEOUT_MS;
  const recovered = new Map<string, CleanCheck>();
  await Promise.all(
    call.pages.map(async (page, i) => {
      let state: CleanCheck;
      while (true) {
        const seen = await eventNamesSince(page.page, armed[i]!.eventCount).catch(() => [] as string[]);
        const missing = mode.recoveryEvents.filter((e) => !seen.includes(e));
        const clean = await checkClean(page);
        state = missing.length === 0 ? clean : { ...clean, ok: false, why: `no ${missing.join('/')} event yet; ${clean.why}` };
        if (state.ok || Date.now() >= deadline) break;
        await sleep(POLL_MS);
      }
      recovered.set(page.spec.name, state);
    }),
  );
  const probes = await Promise.all(call.pages.map((p) => stopSignalingProbe(p).catch(() => null)));

  const failures: string[] = [];
  const fail = (kind: FailureKind, text: string): void => {
    failures.push(text);
    if (!row.failureKinds.includes(kind)) row.failureKinds.push(kind);
  };
  const tiles = PARTICIPANTS.map((p) => p.tile);
  for (const [i, page] of call.pages.entries()) {
    const rec = recovered.get(page.spec.name)!;
    const sample: PageSample = {
      name: page.spec.name,
      recovered: rec.ok,
      mediaBackMs: rec.steadySince === null ? null : rec.steadySince - killedAt,
      hears: false,
      sees: false,
      levels: rec.levels,
      ownToneBeforeDb: ownBefore[i]!,
      ownToneAfterDb: null,
      voiceGapMs: null,
      tileGapMs: null,
      voices: [],
      tiles: [],
      voiceSampling: null,
      audioGapMs: null,
      audioGapPollMs: null,
      videoGapMs: null,
      frameIntervalMs: armed[i]!.frameIntervalMs,
      videoGlitchMs: null,
      signalingOutageMs: null,
      ...signalingFields(probes[i] ?? null),
      resumed: null,
      reconnectedAtMs: null,
      mediaRestartedAtMs: null,
      mediaRestartReason: null,
      mediaRestartTookMs: null,
      spareSwitch: null,
      audioArrivalsMs: [],
      fallback: false,
      newPeerConnection: false,
      idChanged: false,
      freezeCount: null,
      freezeMs: null,
      newInboundVideo: false,
      stalls: [],
      state: null,
    };
    row.pages.push(sample);
    if (TAKEOVER_MODES.includes(mode.name) && (sample.disconnects !== 0 || sample.sameSignalingConnection !== true)) {
      fail('disconnected', `${page.spec.name}: signaling not kept (${sample.disconnects ?? '?'} disconnects, same connection ${String(sample.sameSignalingConnection)})`);
    }
    if (!rec.ok) fail('not-recovered', `${page.spec.name} not recovered within ${RECOVERY_TIMEOUT_MS} ms (${rec.why})`);
    try {
      const out = await readGlitches(page.page, armed[i]!, STALL_THRESHOLDS);
      // What a person perceives, over the same window (the arming, before the kill, to now).
      const perceived = await readPerceivedGaps(page.page, armed[i]!, othersOf(page.spec));
      const fromKill = (t: number | null): number | null => (t === null ? null : Math.round(t - killedAt));
      sample.voiceGapMs = perceived.voiceGapMs === null ? null : Math.round(perceived.voiceGapMs);
      sample.tileGapMs = perceived.tileGapMs === null ? null : Math.round(perceived.tileGapMs);
      sample.voices = perceived.voices.map((v) => ({
        name: PARTICIPANTS.find((p) => p.toneHz === v.hz)?.name ?? String(v.hz),
        hz: v.hz,
        gapMs: v.gapMs === null ? null : Math.round(v.gapMs),
        fromMs: fromKill(v.gapAt),
        steadyDb: v.steadyDb === null ? null : Math.round(v.steadyDb * 10) / 10,
        open: v.open,
      }));
      sample.tiles = perceived.tiles.map((g, tile) => ({ tile, gapMs: g.gapMs === null ? null : Math.round(g.gapMs), fromMs: fromKill(g.gapAt), open: g.open }));
      sample.voiceSampling = { samples: perceived.voiceSamples, longestIntervalMs: Math.round(perceived.longestVoiceSampleIntervalMs), tileFrames: perceived.tileFrames, method: perceived.voiceMeter };
      sample.stalls = out.stalls.map((st) => ({ kind: st.kind, fromMs: Math.round(st.at - killedAt), ms: Math.round(st.ms) }));
      sample.audioArrivalsMs = out.audioArrivals.map((t) => Math.round(t - killedAt)).filter((ms) => ms >= -200 && ms <= 800);
      const reconnected = out.events.filter((e) => e.event === 'reconnected').at(-1);
      const restarts = out.events.filter((e) => e.event === 'media-restarted');
      const restart = restarts.at(-1);
      const detail = (e: { detail?: unknown } | undefined): Record<string, unknown> => (e?.detail ?? {}) as Record<string, unknown>;
      sample.audioGapMs = out.longestAudioGapMs;
      sample.audioGapPollMs = out.pollAudioGapMs;
      sample.videoGapMs = out.longestVideoGapMs;
      sample.videoGlitchMs = Math.max(0, out.longestVideoGapMs - NOMINAL_FRAME_MS);
      sample.signalingOutageMs = typeof detail(reconnected).outageMs === 'number' ? (detail(reconnected).outageMs as number) : null;
      sample.resumed = typeof detail(reconnected).resumed === 'boolean' ? (detail(reconnected).resumed as boolean) : null;
      sample.reconnectedAtMs = reconnected ? reconnected.at - killedAt : null;
      sample.mediaRestartedAtMs = restart ? restart.at - killedAt : null;
      sample.mediaRestartReason = typeof detail(restart).reason === 'string' ? (detail(restart).reason as string) : null;
      sample.mediaRestartTookMs = typeof detail(restart).tookMs === 'number' ? (detail(restart).tookMs as number) : null;
      const switched = out.events.find((e) => e.event === 'spare-switched');
      if (switched) {
        const d = detail(switched);
        const rel = (v: unknown): number | null => (typeof v === 'number' ? Math.round(v - killedAt) : null);
        sample.spareSwitch = { trigger: String(d.trigger), atMs: Math.round(switched.at - killedAt), oldLastPacketMs: rel(d.oldPathLastPacketAt), spareFirstAudioMs: rel(d.spareFirstAudioAt) };
      }
      sample.fallback = restarts.some((e) => String(detail(e).reason ?? '').startsWith('fallback'));
      sample.newPeerConnection = !out.samePeerConnection;
      sample.idChanged = out.participantId !== call.ids[i];
      const before = out.samePeerConnection ? armed[i]!.freezes : {};
      sample.freezeCount = Object.entries(out.freezes).reduce((sum, [id, [c]]) => sum + c - (before[id]?.[0] ?? 0), 0);
      sample.freezeMs = 1000 * Object.entries(out.freezes).reduce((sum, [id, [, d]]) => sum + d - (before[id]?.[1] ?? 0), 0);
      sample.newInboundVideo = Object.keys(out.freezes).some((id) => !(id in armed[i]!.freezes));
      sample.state = out.state;
      if (sample.idChanged) call.ids[i] = out.participantId;
      // The mix must be right: the other two and not itself, and all three tiles.
      // A click in the audio (a splice) lifts every analyser bin for one 170-ms window:
      // a wrong mix stays wrong, so look again for a few seconds before calling it a failure.
      sample.ownToneAfterDb = await ownToneDb(page);
      let heard = await hearing(page);
      if (!heard.ok) {
        const first = heard;
        for (let t = 0; !heard.ok && t < 12; t++) {
          await sleep(250);
          heard = await hearing(page);
        }
        const news = !first.othersHeard || sample.ownToneBeforeDb < SILENT_DB;
        if (heard.ok && news) row.notes.push(`${page.spec.name} mix blip (${fmtLevels(first.levels)}), right again within 3 s`);
      }
      sample.hears = heard.ok;
      sample.levels = heard.levels;
      if (!heard.othersHeard) fail('other-tone-missing', `${page.spec.name} hears ${fmtLevels(heard.levels)}`);
      else if (!heard.ownSilent && sample.ownToneBeforeDb >= SILENT_DB) {
        // Not the failover's doing: the page heard its tone as loud before the kill
        // (with 400/700/1100 Hz it was 1100 - 700 = 400, an intermodulation product). Recorded, not failed.
        row.warnings.push(`${page.spec.name} own tone ${heard.ownDb.toFixed(0)} dB after, ${sample.ownToneBeforeDb.toFixed(0)} dB already before the kill`);
      } else if (!heard.ownSilent) fail('own-tone-audible', `${page.spec.name} hears its own tone (silent before the kill): ${fmtLevels(heard.levels)}`);
      let seen = await seeing(page, tiles);
      for (let t = 0; !seen.ok && t < 20; t++) {
        await sleep(250);
        seen = await seeing(page, tiles);
      }
      sample.sees = seen.ok;
      if (!seen.ok) fail('tiles-wrong', `${page.spec.name} sees ${JSON.stringify(seen.pixels)} instead of ${tiles.join(' ')}`);
    } catch (err) {
      if (!call.browser.isConnected()) throw new SystemGoneError('the browser is gone');
      fail('readout', `${page.spec.name}: page readout failed: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  const status = await call.system.status();
  row.status = status && { role: status.role, epoch: status.epoch, participants: status.participants };
  if (!status) fail('status', 'the new primary does not answer /status');
  else if (status.role !== 'primary' || status.participants !== PARTICIPANTS.length) fail('status', `/status: role ${String(status.role)}, ${String(status.participants)} participants`);
  row.steps = call.system.failoverSteps([promotion.victimPid, promotion.promotedPid], killedAt);
  row.acceptingMs = row.steps.find((st) => st.step === 'serving' && st.pid === promotion.promotedPid)?.ms ?? null;
  // Detection from the logs (scripts/failover-timeline.ts): the promoted standby's verdict line; the timeline's value otherwise.
  row.detectionMs = row.steps.find((st) => st.step === 'confirmed-dead' && st.pid === promotion.promotedPid)?.ms ?? row.detectionMs;
  const worst = (f: (p: PageSample) => number | null): number | null => {
    const values = row.pages.filter((p) => p.recovered).map(f).filter((v): v is number => v !== null);
    return values.length > 0 ? Math.max(...values) : null;
  };
  row.worstVoiceGapMs = worst((p) => p.voiceGapMs);
  row.worstTileGapMs = worst((p) => p.tileGapMs);
  row.ok = failures.length === 0;
  row.failure = failures.length > 0 ? failures.join('; ') : null;
  return row;
}

/** A row before anything was measured (a round that failed early keeps it). */
export function emptyRow(mode: ModeName, kill: number): KillRow {
  return {
    mode,
    kill,
    ok: false,
    failure: null,
    failureKinds: [],
    warnings: [],
    notes: [],
    killedAt: null,
    victimPid: null,
    promotedPid: null,
    epoch: null,
    reason: null,
    detectionMs: null,
    worstVoiceGapMs: null,
    worstTileGapMs: null,
    promotionMs: null,
    acceptingMs: null,
    completeMs: null,
    lastHeartbeatMs: null,
    load1: loadavg()[0]!,
    reprotectedMs: null,
    pages: [],
    status: null,
    steps: [],
  };
}
