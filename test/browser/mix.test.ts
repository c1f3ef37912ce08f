/**
 * What a person hears and sees: three Chromium participants with their own tone and
 * tile. Each must hear the other two tones and not its own, and see all three tiles in
 * the composed grid; when one leaves, the others stop hearing and seeing it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { gridLayout } from '../../mcu/src/media/video-layout.ts';
import { colourDistance, eventually, hexToRgb, launchChromium, openParticipant, type ParticipantPage, type ParticipantSpec } from '../helpers/browser.ts';
import { startMcu, type RunningMcu } from '../helpers/processes.ts';

// Tones chosen so that no harmonic or intermodulation product (a±b, 2a-b, 3a-2b, 2a-2b,
// 2a..6a) of them comes within 110 Hz of another, and no two are closer than 350 Hz
// (400/700/1100 failed: 1100 - 700 = 400;
// 440/620/1030 leaked: 1030 - 620 = 410), or codec artifacts of the others' mix would
// read as hearing oneself.
export const PARTICIPANTS: ParticipantSpec[] = [
  { name: 'Red', toneHz: 560, tile: '#e53935' },
  { name: 'Green', toneHz: 1340, tile: '#43a047' },
  { name: 'Blue', toneHz: 1790, tile: '#1e88e5' },
];
const TONES = PARTICIPANTS.map((p) => p.toneHz);
/**
 * Each tone arrives near -26 dBFS when it is in the mix. Own tone mixed in by mistake would
 * arrive just as loud; codec noise around the others' tones stays below about -62 dBFS.
 */
const HEARD_DB = -45;
const SILENT_DB = -55;
const COLOUR_TOLERANCE = 70;

/** Centre of each cell of the composed grid, relative to the frame. */
export function cellCentres(count: number): Array<[number, number]> {
  return gridLayout(count, 640, 480).map((c) => [(c.x + c.width / 2) / 640, (c.y + c.height / 2) / 480]);
}

/** Does the page hear exactly the expected tones? Returns a readable verdict for assertions. */
export async function hearing(page: ParticipantPage, expected: number[]): Promise<{ ok: boolean; levels: Record<string, number> }> {
  const levels = await page.toneLevels(TONES);
  const ok = TONES.every((f) => (expected.includes(f) ? levels[String(f)]! > HEARD_DB : levels[String(f)]! < SILENT_DB));
  return { ok, levels };
}

/** Does the grid show exactly these tiles, in this order? */
export async function seeing(page: ParticipantPage, tiles: string[]): Promise<{ ok: boolean; pixels: Array<[number, number, number]> }> {
  const pixels = await page.samplePixels(cellCentres(tiles.length));
  const ok = tiles.every((hex, i) => colourDistance(pixels[i]!, hexToRgb(hex)) < COLOUR_TOLERANCE);
  return { ok, pixels };
}

describe('three participants in one room (real Chromium, real MCU)', () => {
  let mcu: RunningMcu;
  let browser: Browser;
  const pages: ParticipantPage[] = [];

  before(async () => {
    mcu = await startMcu();
    browser = await launchChromium();
    for (const spec of PARTICIPANTS) pages.push(await openParticipant(browser, mcu.url, 'mixtest', spec));
  });

  after(async () => {
    for (const p of pages) await p.close();
    await browser?.close();
    await mcu?.stop();
  });

  it('each hears the other two tones and not its own', async () => {
    for (const page of pages) {
      const others = PARTICIPANTS.filter((p) => p !== page.spec).map((p) => p.toneHz);
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
    const status = (await (await fetch(`${mcu.url}/status`)).json()) as { participants: number };
    assert.equal(status.participants, 2);
  });
});
