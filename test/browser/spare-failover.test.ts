/**
 * Warm spare paths (reconnect mode): three Chromium participants; the standby keeps a connected,
 * idle spare peer connection with every page. kill -9 of the primary, twice in a row: each time
 * the promoted standby mixes onto the spare paths, every page switches to its spare (on its own
 * or when told), hears the other two tones and not its own, sees all three tiles, keeps its
 * participant id, and the next standby prepares new spare paths (re-protection). The gaps each
 * page measured are printed, not asserted. SPARE_TEST_DEBUG=1 also prints each page's events and
 * the promoted standby's failover log.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import type { Supervisor } from '../../standby/src/supervisor/supervisor.ts';
import { eventually, type ParticipantPage } from '../../scripts/common/browser.ts';
import { pageEvents, startSupervisedCall } from '../helpers/call-checks.ts';
import { hearing, othersOf, PARTICIPANTS, seeing } from '../../scripts/probe/mix.ts';
import { countEvents, readSpareStats, resetGaps } from '../../scripts/probe/page-readout.ts';

interface SpareStatusBody {
  role: string;
  pid: number;
  epoch: number;
  participants: number;
  protected: boolean;
  spares: { enabled: boolean; connected: number; participants: Array<{ id: string; spare: string; connected: boolean }> };
}

/** The spare path and failover lines of a process's log, for failure messages. */
function spareLog(lines: readonly string[]): string {
  return lines.filter((l) => /spare|failover|standby state|role change/.test(l)).slice(-60).join('\n');
}

describe('kill -9 of the primary with warm spare paths (reconnect mode, real Chromium)', () => {
  let supervisor: Supervisor;
  let browser: Browser;
  let url: string;
  const pages: ParticipantPage[] = [];
  let ids: string[] = [];
  const status = async (): Promise<SpareStatusBody> => (await (await fetch(`${supervisor.adminUrl}/status`)).json()) as SpareStatusBody;

  before(async () => {
    ({ supervisor, browser, url, ids } = await startSupervisedCall(pages, 'spare', { MCU_ICE_ADDRESSES: '127.0.0.1', MCU_SPARE_ICE_ADDRESSES: '127.0.0.1' }));
  });

  after(async () => {
    for (const p of pages) await p.close();
    await browser?.close();
    await supervisor?.close();
  });

  for (const round of [1, 2]) {
    it(`kill #${round}: every page switches to its spare path and the call is whole`, async () => {
      // Protected with spare paths: the standby synced and every page's spare is connected.
      const ready = await eventually(status, (s) => s.protected && s.spares.connected === 3, 30000);
      assert.ok(ready.protected, `protected by a synced standby before kill #${round}`);
      assert.equal(ready.spares.connected, 3, `spare paths connected before kill #${round}: ${JSON.stringify(ready.spares)}`);
      for (const page of pages) {
        const spare = await eventually(async () => (await readSpareStats(page.page)).state, (s) => s === 'connected', 20000);
        assert.equal(spare, 'connected', `${page.spec.name} has a connected spare: ${await pageEvents(page)}`);
      }
      // An idle spare carries no media: its tracks stay muted until a failover.
      for (const page of pages) {
        const withMedia = (await readSpareStats(page.page)).spareTracksWithMedia;
        assert.equal(withMedia, 0, `${page.spec.name}'s idle spare received media before the kill`);
      }
      const victim = supervisor.primary!;
      const standby = supervisor.standby!;
      for (const page of pages) {
        const others = othersOf(page.spec);
        assert.ok((await eventually(() => hearing(page, others), (v) => v.ok)).ok, `${page.spec.name} baseline`);
      }
      await Promise.all(pages.map((p) => resetGaps(p.page)));
      const promoted = new Promise<Record<string, unknown>>((resolve) => supervisor.once('promoted', (_m, timeline) => resolve(timeline)));
      const killedAt = Date.now();
      await victim.process.kill('SIGKILL');
      const timeline = await promoted;
      assert.equal(timeline.participantsOnSpares, 3, `the promoted standby mixes onto 3 spare paths: ${JSON.stringify(timeline)}`);

      for (const page of pages) {
        const switched = await eventually(
          async () => (await readSpareStats(page.page)).switches.length,
          (n) => n >= round,
          20000,
        );
        assert.ok(
          switched >= round,
          `${page.spec.name} switched to its spare after kill #${round}: ${await pageEvents(page)}\npromoted standby's spare/failover log:\n${spareLog(standby.process.stderr)}`,
        );
        const restarts = await countEvents(page.page, 'media-restarted');
        assert.equal(restarts, 0, `${page.spec.name} needed no media restart: ${await pageEvents(page)}`);
      }
      for (const page of pages) {
        const others = othersOf(page.spec);
        const heard = await eventually(() => hearing(page, others), (v) => v.ok, 20000);
        assert.ok(heard.ok, `${page.spec.name} after kill #${round} should hear ${others.join(', ')} and not ${page.spec.toneHz}: ${JSON.stringify(heard.levels)}`);
        const seen = await eventually(() => seeing(page, PARTICIPANTS.map((p) => p.tile)), (v) => v.ok, 20000);
        assert.ok(seen.ok, `${page.spec.name} after kill #${round} should see all tiles: ${JSON.stringify(seen.pixels)}`);
      }
      const idsNow = await Promise.all(pages.map((p) => p.participantId()));
      assert.deepEqual(idsNow, ids, `participant ids unchanged after kill #${round}\nstandby stderr tail:\n${standby.process.stderr.slice(-40).join('\n')}`);
      for (const page of pages) {
        const names = await eventually(() => page.page.locator('#roster li:not(.away)').allTextContents(), (t) => t.length === 3);
        assert.equal(names.length, 3, `${page.spec.name} roster: ${names.join(', ')}`);
      }
      const now = await status();
      assert.equal(now.role, 'primary');
      assert.equal(now.pid, standby.pid);
      assert.equal(now.epoch, round + 1);
      assert.equal(now.participants, 3);

      // Every switch is confirmed by a resume on the new epoch (a real failover, not a false switch).
      for (const page of pages) {
        const real = await eventually(
          async () => (await readSpareStats(page.page)).switches.filter((s) => s.real).length,
          (n) => n >= round,
          15000,
        );
        assert.ok(real >= round, `${page.spec.name}'s switch followed a resume on epoch ${round + 1}: ${await pageEvents(page)}`);
      }

      const glitches = await Promise.all(
        pages.map(async (p) => {
          const spare = await readSpareStats(p.page);
          const last = spare.switches.at(-1);
          return {
            name: p.spec.name,
            ...(await p.gaps()),
            trigger: last?.trigger,
            primarySilentMs: last ? Math.round(last.primarySilentMs) : null,
            spareAudioPackets: last?.spareAudioPackets,
            falseAlarms: spare.falseAlarms,
            falseSilences: spare.falseSilences,
            falseSwitches: spare.falseSwitches,
          };
        }),
      );
      if (process.env.SPARE_TEST_DEBUG) {
        for (const p of pages) console.log(p.spec.name, await pageEvents(p));
        console.log(`promoted standby, kill at ${new Date(killedAt).toISOString()}:\n${spareLog(standby.process.stderr)}`);
      }
      console.log(`kill #${round}: detection ${Math.round(Number(timeline.detectedAt) - killedAt)} ms after the kill`, JSON.stringify(glitches));
    });
  }

  it('re-protects after the second kill: a new standby with connected spare paths', async () => {
    const ready = await eventually(status, (s) => s.protected && s.spares.connected === 3, 30000);
    assert.ok(ready.protected, 'a new standby synced');
    assert.equal(ready.spares.connected, 3, `spare paths re-established: ${JSON.stringify(ready.spares)}`);
  });
});
