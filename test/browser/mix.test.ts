/**
 * What a person hears and sees: three Chromium participants with their own tone and
 * tile. Each must hear the other two tones and not its own, and see all three tiles in
 * the composed grid; when one leaves, the others stop hearing and seeing it. The pages' own
 * voice and tile meters (client-demo/src/stats) measure real dropouts: a participant whose
 * microphone or camera is off for a known time is a voice gap or tile gap of that length at the
 * others, and an undisturbed call has none.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { eventually, launchChromium, openParticipant, type ParticipantPage } from '../../scripts/common/browser.ts';
import { hearing, othersOf, PARTICIPANTS, seeing } from '../../scripts/probe/mix.ts';
import { readPageClock, readPerceivedGaps, type PerceivedGaps } from '../../scripts/probe/page-readout.ts';
import { startMcu, type RunningMcu } from '../../scripts/common/processes.ts';
import { makeTestCertificate } from '../helpers/tls.ts';

describe('three participants in one room (real Chromium, real MCU)', () => {
  let mcu: RunningMcu;
  let browser: Browser;
  const pages: ParticipantPage[] = [];

  before(async () => {
    // Over HTTPS/WSS with a self-signed certificate (the page's context ignores its warning).
    mcu = await startMcu((await makeTestCertificate()).env);
    assert.ok(mcu.url.startsWith('https://'), mcu.url);
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

  it('measures voice and tile gaps: none in an undisturbed call, a participant\'s dropout at the others', async () => {
    const [red, green, blue] = pages as [ParticipantPage, ParticipantPage, ParticipantPage];
    const observers = [green, blue];
    // Every tone heard first (the meters' steady levels are taken from before each window).
    for (const page of pages) assert.ok((await eventually(() => hearing(page, othersOf(page.spec)), (v) => v.ok)).ok);
    const measure = async (during: () => Promise<number>): Promise<{ heldMs: number; gaps: PerceivedGaps[] }> => {
      const since = await Promise.all(observers.map((p) => readPageClock(p.page)));
      await new Promise((r) => setTimeout(r, 300));
      const heldMs = await during();
      // Long enough for the dropout to pass the MCU and the receivers' jitter buffers.
      await new Promise((r) => setTimeout(r, 1500));
      const gaps = await Promise.all(observers.map((p, i) => readPerceivedGaps(p.page, { armedAt: since[i]! }, othersOf(p.spec))));
      return { heldMs, gaps };
    };
    const describeGaps = (g: PerceivedGaps): string =>
      `voices ${g.voices.map((v) => `${v.hz} Hz ${v.gapMs === null ? '-' : Math.round(v.gapMs)} ms (steady ${v.steadyDb?.toFixed(0)} dB)`).join(', ')}; tiles ${g.tiles.map((t) => (t.gapMs === null ? '-' : Math.round(t.gapMs))).join('/')} ms; ${g.voiceSamples} voice samples (longest interval ${Math.round(g.longestVoiceSampleIntervalMs)} ms), ${g.tileFrames} frames`;
    /** Turns `page`'s sent track of `kind` off for `ms`; how long it really was off (the page's clock). */
    const switchOff = (page: ParticipantPage, kind: 'audio' | 'video', ms: number): Promise<number> =>
      page.page.evaluate(
        async ({ kind, ms }) => {
          const track = window.mcuDemo.client!.pc.getSenders().find((s) => s.track?.kind === kind)!.track!;
          const from = performance.now();
          track.enabled = false;
          await new Promise((r) => setTimeout(r, ms));
          track.enabled = true;
          return performance.now() - from;
        },
        { kind, ms },
      );
    const voiceOf = (g: PerceivedGaps, hz: number) => g.voices.find((v) => v.hz === hz)!;
    const redHz = red.spec.toneHz;
    const blueHz = blue.spec.toneHz;

    // Undisturbed: every voice audible at every sample (its gap is the sampler's own longest
    // interval), every tile moving on nearly every frame.
    const calm = await measure(async () => 0);
    for (const [i, g] of calm.gaps.entries()) {
      console.log(`${observers[i]!.spec.name}, undisturbed: ${describeGaps(g)}`);
      assert.ok(g.voiceSamples > 100, `${observers[i]!.spec.name} sampled its voices: ${describeGaps(g)}`);
      for (const v of g.voices) assert.ok(v.gapMs !== null && v.gapMs <= g.longestVoiceSampleIntervalMs + 2 * 10, `${observers[i]!.spec.name}: ${v.hz} Hz has a gap in an undisturbed call: ${describeGaps(g)}`);
      assert.ok(g.tileFrames > 10, `${observers[i]!.spec.name} read its tiles: ${describeGaps(g)}`);
      assert.equal(g.tiles.length, 3, `${observers[i]!.spec.name} measures three tiles`);
    }
    const calmTileMs = Math.max(...calm.gaps.map((g) => g.tileGapMs!));

    // Red's microphone off for ~500 ms: Red's voice is gone that long at Green and Blue, Blue's
    // (at Green) is not.
    const mic = await measure(() => switchOff(red, 'audio', 500));
    for (const [i, g] of mic.gaps.entries()) {
      console.log(`${observers[i]!.spec.name}, Red's microphone off ${Math.round(mic.heldMs)} ms: ${describeGaps(g)}`);
      const redGap = voiceOf(g, redHz).gapMs!;
      // The dropout's two ends pass the same path (Opus, the MCU's jitter buffer and mix, the
      // page's jitter buffer, the analyser's 21 ms window): its length is kept, give or take
      // jitter-buffer adaptation and the 10 ms sampling.
      assert.ok(Math.abs(redGap - mic.heldMs) <= 120, `${observers[i]!.spec.name}: Red's voice gap ${Math.round(redGap)} ms for a microphone off ${Math.round(mic.heldMs)} ms`);
      assert.equal(g.voiceGapMs, redGap, 'Red\'s is the worst voice');
    }
    const blueAtGreen = voiceOf(mic.gaps[0]!, blueHz);
    assert.ok(blueAtGreen.gapMs! <= mic.gaps[0]!.longestVoiceSampleIntervalMs + 2 * 10, `Blue's voice at Green is undisturbed: ${describeGaps(mic.gaps[0]!)}`);

    // Red's camera off for ~500 ms: Red's tile (the first: join order) stops moving that long.
    const camera = await measure(() => switchOff(red, 'video', 500));
    for (const [i, g] of camera.gaps.entries()) {
      console.log(`${observers[i]!.spec.name}, Red's camera off ${Math.round(camera.heldMs)} ms: ${describeGaps(g)}`);
      assert.equal(g.worstTile, 0, `${observers[i]!.spec.name}: Red's tile is the one that stopped: ${describeGaps(g)}`);
      const redTile = g.tiles[0]!.gapMs!;
      // At least the time the camera was off; at most that plus an undisturbed tile's longest
      // stretch on each side (the last frame before and the first after are whole frames apart).
      assert.ok(redTile >= camera.heldMs - 100 && redTile <= camera.heldMs + 2 * calmTileMs + 100, `${observers[i]!.spec.name}: Red's tile gap ${Math.round(redTile)} ms for a camera off ${Math.round(camera.heldMs)} ms (undisturbed ${Math.round(calmTileMs)} ms)`);
      for (const t of [1, 2]) assert.ok(g.tiles[t]!.gapMs! < redTile, `${observers[i]!.spec.name}: tile ${t} kept moving: ${describeGaps(g)}`);
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
