/** A supervised call of test pages, and assertions on it after a failover: shared by the browser failover tests. */
import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import { Supervisor } from '../../standby/src/supervisor/supervisor.ts';
import { eventually, launchChromium, openParticipant, type ParticipantPage } from '../../scripts/common/browser.ts';
import { hearing, othersOf, PARTICIPANTS, seeing } from '../../scripts/probe/mix.ts';
import { countEvents, describeCall, markPeerConnection, samePeerConnection as onMarkedPeerConnection } from '../../scripts/probe/page-readout.ts';
import { freePort } from '../../scripts/common/ports.ts';
import { makeTestCertificate } from './tls.ts';

/** The page's own account of its call (events, states, spare counters), for failure messages. */
export function pageEvents(page: ParticipantPage): Promise<string> {
  return describeCall(page.page);
}

/** Every page hears the other two tones (a clean baseline before a kill). */
export async function assertEveryoneHearsTheOthers(pages: ParticipantPage[], label: string, timeoutMs = 15000): Promise<void> {
  for (const page of pages) {
    const heard = await eventually(() => hearing(page, othersOf(page.spec)), (v) => v.ok, timeoutMs);
    assert.ok(heard.ok, `${page.spec.name} ${label}: should hear ${othersOf(page.spec).join(', ')} and not ${page.spec.toneHz}: ${JSON.stringify(heard.levels)}`);
  }
}

/**
 * After the n-th failover: every page's media really restarted (right after a kill the page
 * still plays concealed audio and the last frame, which would pass the mix checks too early),
 * then it hears the other two and not itself, sees all three tiles, and the roster shows
 * three present participants.
 */
export async function assertCallWholeAfterFailover(pages: ParticipantPage[], failovers: number, label: string, timeoutMs = 20000): Promise<void> {
  for (const page of pages) {
    const restarts = await eventually(
      () => countEvents(page.page, 'media-restarted'),
      (n) => n >= failovers,
      timeoutMs,
    );
    assert.ok(restarts >= failovers, `${page.spec.name} media restarted ${label}: ${await pageEvents(page)}`);
  }
  await assertEveryoneHearsTheOthers(pages, label, timeoutMs);
  for (const page of pages) {
    const seen = await eventually(() => seeing(page, PARTICIPANTS.map((p) => p.tile)), (v) => v.ok, timeoutMs);
    assert.ok(seen.ok, `${page.spec.name} ${label} should see all tiles: ${JSON.stringify(seen.pixels)}`);
  }
  for (const page of pages) {
    const names = await eventually(() => page.page.locator('#roster li:not(.away)').allTextContents(), (t) => t.length === PARTICIPANTS.length);
    assert.equal(names.length, PARTICIPANTS.length, `${page.spec.name} roster ${label}: ${names.join(', ')}`);
  }
}

/** Remembers each page's RTCPeerConnection (before a kill), for samePeerConnection(). */
export async function markPeerConnections(pages: ParticipantPage[]): Promise<void> {
  await Promise.all(pages.map((p) => markPeerConnection(p.page)));
}

/** Is the page still using the RTCPeerConnection markPeerConnections() saw (after a failover)? */
export function samePeerConnection(page: ParticipantPage): Promise<boolean> {
  return onMarkedPeerConnection(page.page);
}

/**
 * A primary + hot standby under the Supervisor on 127.0.0.1 over HTTPS (a self-signed
 * certificate of the test's; `env` on top) and the three test
 * participants joined from one Chromium into `room`; their pages go into `pages`. Whatever it
 * started is closed again when a step fails.
 */
export async function startSupervisedCall(
  pages: ParticipantPage[],
  room: string,
  env: Record<string, string>,
): Promise<{ supervisor: Supervisor; browser: Browser; url: string; ids: string[] }> {
  const port = await freePort();
  // Over HTTPS/WSS, as a real deployment: both MCUs serve the same self-signed certificate.
  const certificate = await makeTestCertificate();
  const supervisor = new Supervisor({ port, replicationPort: await freePort(), adminPort: await freePort(), host: '127.0.0.1', env: { ...certificate.env, ...env } });
  let browser: Browser | null = null;
  try {
    await supervisor.start();
    const url = `https://127.0.0.1:${port}`;
    browser = await launchChromium();
    for (const spec of PARTICIPANTS) pages.push(await openParticipant(browser, url, room, spec));
    const ids = await Promise.all(pages.map((p) => p.participantId()));
    return { supervisor, browser, url, ids };
  } catch (err) {
    for (const p of pages.splice(0)) await p.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await supervisor.close().catch(() => undefined);
    throw err;
  }
}
