/**
 * What a person hears and sees: three Chromium participants with their own tone and
 * tile. Each must hear the other two tones and not its own, and see all three tiles in
 * the composed grid; when one leaves, the others stop hearing and seeing it. On each media
 * plane (media.plane): wrtc (a peer connection per page), mediasoup (the pages' mediasoup-client
 * devices on the room's router, the grid encoded once for the room).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MEDIA_PLANES } from '../../mcu/src/core/config.ts';
import type { Browser } from 'playwright-core';
import { eventually, launchChromium, openParticipant, type ParticipantPage } from '../../scripts/common/browser.ts';
import { hearing, othersOf, PARTICIPANTS, seeing } from '../../scripts/probe/mix.ts';
import { startMcu, type RunningMcu } from '../../scripts/common/processes.ts';
import { makeTestCertificate } from '../helpers/tls.ts';

for (const plane of MEDIA_PLANES) describe(`three participants in one room on the ${plane} plane (real Chromium, real MCU)`, () => {
  let mcu: RunningMcu;
  let browser: Browser;
  const pages: ParticipantPage[] = [];

  before(async () => {
    // Over HTTPS/WSS with a self-signed certificate (the page's context ignores its warning).
    mcu = await startMcu({ ...(await makeTestCertificate()).env, MCU_MEDIA_PLANE: plane });
    assert.ok(mcu.url.startsWith('https://'), mcu.url);
    browser = await launchChromium();
    for (const spec of PARTICIPANTS) pages.push(await openParticipant(browser, mcu.url, 'mixtest', spec));
    for (const page of pages) assert.equal(await page.page.evaluate(() => window.mcuDemo.client?.mediaPlane), plane, `${page.spec.name} is on the ${plane} plane`);
  });

  after(async () => {
    for (const p of pages.splice(0)) await p.close();
    await browser?.close();
    await mcu?.stop();
  });

  it('each hears the other two tones and not its own', async () => {
    for (const page of pages) {
      const others = othersOf(page.spec);
      const verdict = await eventually(() => hearing(page, others), (v) => v.ok);
      console.log(`${page.spec.name} hears`, verdict.levels);
      assert.ok(verdict.ok, `${page.spec.name} should hear ${others.join(' and ')} Hz but not ${page.spec.toneHz} Hz: ${JSON.stringify(verdict.levels)}`);
    }
  });

  it('each sees all three tiles in the composed grid, in join order', async () => {
    const tiles = PARTICIPANTS.map((p) => p.tile);
    for (const page of pages) {
      const verdict = await eventually(() => seeing(page, tiles), (v) => v.ok);
      assert.ok(verdict.ok, `${page.spec.name} should see ${tiles.join(', ')}; sampled ${JSON.stringify(verdict.pixels)}`);
    }
  });

  it('the roster shows all three names on every page', async () => {
    for (const page of pages) {
      const names = await eventually(
        () => page.page.locator('#roster li').allTextContents(),
        (t) => t.length === 3,
      );
      assert.equal(names.length, 3);
      for (const spec of PARTICIPANTS) assert.ok(names.some((n) => n.startsWith(spec.name)), `${spec.name} missing from ${names.join(', ')}`);
    }
  });

  it('a muted microphone drops out of the others\' mix', async () => {
    const [red, green, blue] = pages as [ParticipantPage, ParticipantPage, ParticipantPage];
    await green.page.click('#mute-audio');
    const redHears = await eventually(() => hearing(red, [PARTICIPANTS[2]!.toneHz]), (v) => v.ok);
    assert.ok(redHears.ok, `with Green muted Red should hear only Blue: ${JSON.stringify(redHears.levels)}`);
    await green.page.click('#mute-audio');
    const back = await eventually(() => hearing(blue, [PARTICIPANTS[0]!.toneHz, PARTICIPANTS[1]!.toneHz]), (v) => v.ok);
    assert.ok(back.ok, `after unmuting Blue should hear Red and Green again: ${JSON.stringify(back.levels)}`);
  });

  it('when one leaves, the others stop hearing and seeing it', async () => {
    const blue = pages.pop()!;
    await blue.page.click('#leave');
    await blue.close();
    for (const page of pages) {
      const other = PARTICIPANTS.find((p) => p !== page.spec && p.name !== 'Blue')!;
      const heard = await eventually(() => hearing(page, [other.toneHz]), (v) => v.ok);
      assert.ok(heard.ok, `${page.spec.name} should hear only ${other.name} after Blue left: ${JSON.stringify(heard.levels)}`);
      const seen = await eventually(() => seeing(page, ['#e53935', '#43a047']), (v) => v.ok);
      assert.ok(seen.ok, `${page.spec.name} should see two tiles after Blue left: ${JSON.stringify(seen.pixels)}`);
    }
    const status = (await (await fetch(`${mcu.adminUrl}/status`)).json()) as { participants: number };
    assert.equal(status.participants, 2);
  });
});
