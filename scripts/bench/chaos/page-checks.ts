/**
 * What the chaos pages hear and how steady their media is, judged through the shared page
 * read-out (scripts/probe): the mix verdict split into its two halves, the page's own tone,
 * and the "clean" gate a round waits for before the kill and after the recovery.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { ParticipantPage } from '../../common/browser.ts';
import { HEARD_DB, othersOf, SILENT_DB, TONES } from '../../probe/mix.ts';
import { readSteadyFor } from '../../probe/page-readout.ts';
import { POLL_MS, STALL_THRESHOLDS, STEADY_MS } from './settings.ts';

export interface Hearing {
  /** The mix test's verdict: the other two heard, its own tone silent. */
  ok: boolean;
  othersHeard: boolean;
  ownSilent: boolean;
  ownDb: number;
  levels: Record<string, number>;
}

/** What the page hears (the mix test's check through the same page API), split into its two halves. */
export async function hearing(page: ParticipantPage): Promise<Hearing> {
  const levels = await page.toneLevels(TONES);
  const others = othersOf(page.spec);
  const othersHeard = others.every((f) => levels[String(f)]! > HEARD_DB);
  const ownDb = levels[String(page.spec.toneHz)]!;
  const ownSilent = ownDb < SILENT_DB;
  return { ok: othersHeard && ownSilent, othersHeard, ownSilent, ownDb, levels };
}

/** Loudest level of the page's own tone over a few analyser windows (it fluctuates by several dB). */
export async function ownToneDb(page: ParticipantPage, reads = 4): Promise<number> {
  let max = -Infinity;
  for (let i = 0; i < reads; i++) {
    if (i > 0) await sleep(150);
    max = Math.max(max, (await hearing(page)).ownDb);
  }
  return Math.round(max * 10) / 10;
}

/**
 * How long the page's media has been steady up to now, ms: no rendered-frame interval
 * above STEADY_VIDEO_MS and no stretch without new audio packets above STEADY_AUDIO_MS.
 */
function steadyFor(page: ParticipantPage): Promise<number> {
  return readSteadyFor(page.page, STALL_THRESHOLDS);
}

export interface CleanCheck {
  ok: boolean;
  /** Date.now() since when the media has been steady (set when ok). */
  steadySince: number | null;
  levels: Record<string, number>;
  why: string;
}

/**
 * One look: does the page hear the other two, with media steady for STEADY_MS? Its own
 * tone is not part of this gate: it is recorded before the kill and judged after it, so a
 * page that heard itself already before a kill is told apart from one the failover broke.
 */
export async function checkClean(page: ParticipantPage): Promise<CleanCheck> {
  try {
    const heard = await hearing(page);
    if (!heard.othersHeard) return { ok: false, steadySince: null, levels: heard.levels, why: `hears ${fmtLevels(heard.levels)}` };
    const steady = await steadyFor(page);
    if (steady < STEADY_MS) return { ok: false, steadySince: null, levels: heard.levels, why: `media steady for only ${Math.round(steady)} ms` };
    return { ok: true, steadySince: Date.now() - steady, levels: heard.levels, why: 'clean' };
  } catch (err) {
    return { ok: false, steadySince: null, levels: {}, why: `page error: ${(err as Error).message.split('\n')[0]}` };
  }
}

/** Polls every page until it is clean or the deadline passes; the last look per page. */
export async function waitClean(pages: ParticipantPage[], deadline: number): Promise<Map<string, CleanCheck>> {
  const results = new Map<string, CleanCheck>();
  await Promise.all(
    pages.map(async (page) => {
      let last = await checkClean(page);
      while (!last.ok && Date.now() < deadline) {
        await sleep(POLL_MS);
        last = await checkClean(page);
      }
      results.set(page.spec.name, last);
    }),
  );
  return results;
}

/** Tone levels for a message: `560Hz -26dB, ...`. */
export function fmtLevels(levels: Record<string, number>): string {
  return Object.entries(levels)
    .map(([hz, db]) => `${hz}Hz ${Number.isFinite(db) ? db.toFixed(0) : '-inf '}dB`)
    .join(', ');
}

