/**
 * What the demo page measured and went through, read from outside (Playwright): the call's
 * state and events, the media probe's tone levels, pixels, gaps and stalls
 * (client-demo/src/stats/), the warm spare's counters, and a failover's glitches. The one
 * read-out of `window.mcuDemo` the browser tests and the benchmarks share.
 *
 * Code passed to page.evaluate runs in the page: it may only use the page's globals, so it
 * calls the page's own probe (no named helper functions here: tsx's keepNames would reference
 * a helper the page does not have).
 */
import type { Page } from 'playwright-core';
import type { CallState } from '../../client-demo/src/call.ts';
import type { SpareStats } from '../../client-demo/src/spare/spare-switcher.ts';
import type { Stall, StallThresholds } from '../../client-demo/src/stats/glitch-stats.ts';
import type { GapStats, ToneLevels } from '../../client-demo/src/stats/media-probe.ts';

export type { GapStats, SpareStats, Stall, StallThresholds, ToneLevels };

/** One entry of the page's event log (main.ts): `at` on the page's performance.now() clock unless said otherwise. */
export interface PageEvent {
  event: string;
  at: number;
  detail?: unknown;
}

/** The page's peer connection, remembered by markPeerConnection() or armGlitchReadout(). */
type MarkedWindow = Window & { __markedPc?: RTCPeerConnection };

// ---- the call

/** The call's state, 'none' before the page made its call. */
export function readCallState(page: Page): Promise<CallState | 'none'> {
  return page.evaluate(() => window.mcuDemo.client?.state ?? 'none');
}

export function readParticipantId(page: Page): Promise<string> {
  return page.evaluate(() => window.mcuDemo.client!.participantId!);
}

/** Every state the call went through, in order. */
export function readStates(page: Page): Promise<CallState[]> {
  return page.evaluate(() => window.mcuDemo.states.map((s) => s.state));
}

/** How many times the page logged `event` (e.g. 'media-restarted'). */
export function countEvents(page: Page, event: string): Promise<number> {
  return page.evaluate((name) => window.mcuDemo.events.filter((e) => e.event === name).length, event);
}

/** The detail of the page's latest `event`, undefined if it never happened. */
export function lastEventDetail(page: Page, event: string): Promise<unknown> {
  return page.evaluate((name) => window.mcuDemo.events.filter((e) => e.event === name).at(-1)?.detail, event);
}

/** The names of the events the page logged from index `from` on. */
export function eventNamesSince(page: Page, from: number): Promise<string[]> {
  return page.evaluate((start) => window.mcuDemo.events.slice(start).map((e) => e.event), from);
}

/** The page's own account of its call (events, states, spare counters) as JSON, for failure messages. */
export function describeCall(page: Page): Promise<string> {
  return page.evaluate(() => JSON.stringify({ events: window.mcuDemo.events, states: window.mcuDemo.states.map((s) => s.state), spare: window.mcuDemo.client?.spareStats }));
}

/** Remembers the page's RTCPeerConnection (before a failover), for samePeerConnection(). */
export function markPeerConnection(page: Page): Promise<void> {
  return page.evaluate(() => void ((window as MarkedWindow).__markedPc = window.mcuDemo.client!.pc));
}

/** Is the page still on the RTCPeerConnection it had when marked? */
export function samePeerConnection(page: Page): Promise<boolean> {
  return page.evaluate(() => (window as MarkedWindow).__markedPc === window.mcuDemo.client!.pc);
}

// ---- what the page hears and sees

/** Level in dB (full scale) of the received audio at each frequency. */
export function readToneLevels(page: Page, frequencies: number[]): Promise<ToneLevels> {
  return page.evaluate((f) => window.mcuDemo.probe!.toneLevels(f), frequencies);
}

/** RGB of the received video at relative positions (0..1) of the frame. */
export function readPixels(page: Page, points: Array<[number, number]>): Promise<Array<[number, number, number]>> {
  return page.evaluate((p) => window.mcuDemo.probe!.samplePixels(p), points);
}

/** The longest audio and video gaps since the last resetGaps(). */
export function readGaps(page: Page): Promise<GapStats> {
  return page.evaluate(() => window.mcuDemo.probe!.gaps());
}

export function resetGaps(page: Page): Promise<void> {
  return page.evaluate(() => window.mcuDemo.probe!.resetGaps());
}

/** How long the page's media has been steady up to now, ms (0 before the probe exists). */
export function readSteadyFor(page: Page, thresholds: StallThresholds): Promise<number> {
  return page.evaluate((t) => window.mcuDemo.probe?.steadyFor(t) ?? 0, thresholds);
}

// ---- the warm spare

export function readSpareStats(page: Page): Promise<SpareStats> {
  return page.evaluate(() => window.mcuDemo.client!.spareStats);
}

/** Bytes and packets both ways on a peer connection's transport, at `at` (page clock). */
export interface TransportBytes {
  at: number;
  sent: number;
  received: number;
  packetsSent: number;
  packetsReceived: number;
}

/** Bytes on the page's spare peer connection so far (its transport's selected pair), null without a spare. */
export function readSpareTransportBytes(page: Page): Promise<TransportBytes | null> {
  return page.evaluate(async () => {
    const pc = window.mcuDemo.client?.sparePeerConnection;
    if (!pc) return null;
    const stats = await pc.getStats();
    const out = { at: performance.now(), sent: 0, received: 0, packetsSent: 0, packetsReceived: 0 };
    stats.forEach((s: { type: string; bytesSent?: number; bytesReceived?: number; packetsSent?: number; packetsReceived?: number }) => {
      if (s.type !== 'transport') return;
      out.sent += s.bytesSent ?? 0;
      out.received += s.bytesReceived ?? 0;
      out.packetsSent += s.packetsSent ?? 0;
      out.packetsReceived += s.packetsReceived ?? 0;
    });
    return out;
  });
}

// ---- a failover's glitches

/** The page right before a fault (armGlitchReadout): where its event log and probe history stood. */
export interface ArmedPage {
  eventCount: number;
  /** performance.now() in the page when the counters were reset. */
  armedAt: number;
  /** Median interval between rendered frames just before the fault. */
  frameIntervalMs: number | null;
  /** inbound-rtp video stats id -> [freezeCount, totalFreezesDuration s]. */
  freezes: Record<string, [number, number]>;
}

/** Right before a fault: remember the peer connection and the freeze counters, reset the gap counters. */
export function armGlitchReadout(page: Page): Promise<ArmedPage> {
  return page.evaluate(async () => {
    const demo = window.mcuDemo;
    const client = demo.client!;
    const probe = demo.probe!;
    (window as MarkedWindow).__markedPc = client.pc;
    const frameIntervalMs = probe.medianFrameInterval();
    const freezes = await probe.videoFreezes(client.pc);
    probe.resetGaps();
    return { eventCount: demo.events.length, armedAt: performance.now(), frameIntervalMs, freezes };
  });
}

/** A page's account of a failover, times in epoch ms (comparable with the harness's Date.now()). */
export interface GlitchReadout extends GapStats {
  /** Events since the arming. */
  events: PageEvent[];
  participantId: string | null;
  samePeerConnection: boolean;
  freezes: Record<string, [number, number]>;
  state: string;
  /** Every stall since the arming (epoch-ms start, duration), not just the longest. */
  stalls: Stall[];
  /** Longest stretch between changes of the received audio count as the polls saw them (the earlier method). */
  pollAudioGapMs: number;
  /** When new audio arrived (each batch's first packet, epoch ms), since the arming. */
  audioArrivals: number[];
}

/** After the recovery: the page's own measurements and its events since the arming. */
export function readGlitches(page: Page, armed: ArmedPage, thresholds: StallThresholds): Promise<GlitchReadout> {
  return page.evaluate(
    async ({ from, since, thresholds }) => {
      const demo = window.mcuDemo;
      const client = demo.client!;
      const probe = demo.probe!;
      const origin = performance.timeOrigin;
      const gaps = probe.gaps();
      const { stalls, pollAudioGapMs } = probe.stallsSince(since, thresholds);
      const freezes = await probe.videoFreezes(client.pc);
      return {
        events: demo.events.slice(from).map((e) => ({ event: e.event, at: origin + e.at, detail: e.detail })),
        ...gaps,
        participantId: client.participantId,
        samePeerConnection: (window as MarkedWindow).__markedPc === client.pc,
        freezes,
        state: client.state,
        stalls: stalls.map((s) => ({ ...s, at: origin + s.at })),
        pollAudioGapMs,
        audioArrivals: probe.audioArrivals.filter(([first]) => first >= since).map(([first]) => origin + first),
      };
    },
    { from: armed.eventCount, since: armed.armedAt, thresholds },
  );
}

// ---- what a person perceives: voices and tiles

/** One voice around an event, times in epoch ms. */
export interface VoiceReadout {
  hz: number;
  /** Its level before the event (median), dBFS in the voice meter; null without samples. */
  steadyDb: number | null;
  /** Its longest inaudible stretch ending after the arming, ms; null when the voice was not in the call before. */
  gapMs: number | null;
  /** When that stretch started (the last audible sample before it), epoch ms. */
  gapAt: number | null;
  /** Still inaudible at the read-out. */
  open: boolean;
}

/** A page's perceived gaps around an event (client-demo/src/stats/perceived-gaps.ts), since the arming. */
export interface PerceivedGaps {
  /** The page's voice gap: its worst other participant's, ms (null when none was heard before). */
  voiceGapMs: number | null;
  voices: VoiceReadout[];
  /** The page's tile gap: its worst tile's longest stretch without moving, ms (null without tiles). */
  tileGapMs: number | null;
  /** Per tile (grid order): its longest stretch without moving, ms, and when it started (epoch ms). */
  tiles: Array<{ gapMs: number | null; gapAt: number | null; open: boolean }>;
  worstTile: number | null;
  /** Voice samples since the arming and the longest interval between them (a busy page samples late). */
  voiceSamples: number;
  longestVoiceSampleIntervalMs: number;
  /** Rendered frames the tile meter read since the arming. */
  tileFrames: number;
  /** How the voice meter read: 'worklet' (audio thread, sample clock) or 'analyser' (page timer: no AudioWorklet outside a secure context). */
  voiceMeter: string | null;
}

/** Since the arming (or since `since`, page clock) up to now: each of `tones`' voice gap and each tile's. */
export function readPerceivedGaps(page: Page, armed: Pick<ArmedPage, 'armedAt'>, tones: readonly number[]): Promise<PerceivedGaps> {
  return page.evaluate(
    ({ since, tones }) => {
      const probe = window.mcuDemo.probe!;
      const origin = performance.timeOrigin;
      const until = performance.now();
      const voices = probe.voiceGaps(tones, since, until);
      const tiles = probe.tileGaps(since, until);
      return {
        voiceGapMs: voices.worstMs,
        voices: voices.voices.map((v) => ({ hz: v.hz, steadyDb: v.steadyDb, gapMs: v.gap?.ms ?? null, gapAt: v.gap ? origin + v.gap.at : null, open: v.gap?.open ?? false })),
        tileGapMs: tiles.worstMs,
        tiles: tiles.tiles.map((g) => ({ gapMs: g?.ms ?? null, gapAt: g ? origin + g.at : null, open: g?.open ?? false })),
        worstTile: tiles.worstTile,
        voiceSamples: voices.samples,
        longestVoiceSampleIntervalMs: voices.longestSampleIntervalMs,
        tileFrames: tiles.frames,
        voiceMeter: probe.voiceMeterMethod,
      };
    },
    { since: armed.armedAt, tones: [...tones] },
  );
}

/** The page's clock now (performance.now()): to arm a perceived-gaps read-out without resetting anything. */
export function readPageClock(page: Page): Promise<number> {
  return page.evaluate(() => performance.now());
}
