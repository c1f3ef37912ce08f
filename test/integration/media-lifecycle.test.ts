/**
 * Media through a real MCU process, with synthetic libwebrtc peers in this process: every
 * peer hears the others' tones but not its own and sees every tile in the grid, and many
 * joins and leaves leak no participants, peer connections (their UDP sockets) or memory.
 * On each media plane (media.plane): wrtc, and mediasoup (the peers are then mediasoup-client
 * devices on wrtc, and the mediasoup worker's sockets are counted with the MCU's).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { MEDIA_PLANES } from '../../mcu/src/core/config.ts';
import { gridLayout } from '../../mcu/src/media/video-layout.ts';
import { childPids, startMcu, type RunningMcu } from '../../scripts/common/processes.ts';
import { SyntheticPeer, type Rgb, type SyntheticPeerOptions } from '../../scripts/common/synthetic-peer.ts';
import { until } from '../../scripts/common/wait-for.ts';

/** A tone is "heard" above this level and "absent" below the other (dBFS); tones are sent at -30. */
const HEARD_DBFS = -45;
const ABSENT_DBFS = -70;
/** Per-channel tolerance when comparing a sampled tile colour with the one sent (VP8 twice, 4:2:0). */
const COLOUR_TOLERANCE = 40;
/** Tones of the two peers who stay in the join/leave test, and of every visitor. */
const STAY_FREQS = [350, 800, 1500];

const TRIO: Array<{ name: string; toneHz: number; colour: Rgb }> = [
  { name: 'Red', toneHz: 400, colour: [220, 40, 40] },
  { name: 'Green', toneHz: 1000, colour: [40, 200, 60] },
  { name: 'Blue', toneHz: 1700, colour: [40, 60, 220] },
];

interface ProcessSample {
  rssKb: number;
  threads: number;
  /** Open socket fds: every peer connection holds a few UDP sockets, so a leaked one shows here. */
  sockets: number;
}

/** The process and its children (the mediasoup plane's worker holds the transports' sockets), summed. */
function sampleProcessTree(pid: number): ProcessSample {
  const total = sampleProcess(pid);
  for (const child of childPids(pid)) {
    const s = sampleProcess(child);
    total.rssKb += s.rssKb;
    total.threads += s.threads;
    total.sockets += s.sockets;
  }
  return total;
}

function sampleProcess(pid: number): ProcessSample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  let sockets = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) sockets++;
    } catch {
      // Closed between readdir and readlink.
    }
  }
  return { rssKb: field('VmRSS'), threads: field('Threads'), sockets };
}

/** Media has no event for "the tone is audible now": the checks poll, this often. */
const POLL = { intervalMs: 50 };

function closeTo(actual: readonly number[], expected: Rgb, tolerance: number): boolean {
  return actual.every((c, i) => Math.abs(c - expected[i]!) <= tolerance);
}

// libwebrtc crashes this process when it ends by draining its event loop (design.md, section 5);
// process.exit() after the runner has reported ends it cleanly, keeping the runner's exit code.
after(() => void setTimeout(() => process.exit(), 200));

for (const plane of MEDIA_PLANES) describe(`media lifecycle on the ${plane} plane (real MCU process, synthetic wrtc peers)`, () => {
  let mcu: RunningMcu;
  const peers = new Set<SyntheticPeer>();

  const peer = (opts: Omit<SyntheticPeerOptions, 'url'>): SyntheticPeer => {
    const p = new SyntheticPeer({ url: mcu.url, ...opts });
    peers.add(p);
    return p;
  };
  const status = async (): Promise<{ participants: number; rooms: Array<{ name: string; participants: number; connected: number }> }> => {
    const res = await fetch(`${mcu.adminUrl}/status`);
    assert.equal(res.status, 200);
    return (await res.json()) as { participants: number; rooms: Array<{ name: string; participants: number; connected: number }> };
  };

  before(async () => {
    mcu = await startMcu({ MCU_MEDIA_PLANE: plane });
  });

  after(async () => {
    for (const p of peers) p.close();
    await mcu?.stop();
  });

  it('three peers: each hears the other two tones but not its own, and sees all three tiles', { timeout: 60_000 }, async () => {
    const trio = TRIO.map((spec) => peer({ room: 'trio', ...spec }));
    for (const p of trio) await p.join();
    const freqs = TRIO.map((s) => s.toneHz);

    const separated = (p: SyntheticPeer, self: number): boolean =>
      p.toneLevels(freqs).every((level, j) => (j === self ? level < ABSENT_DBFS : level > HEARD_DBFS));
    await until('every peer to hear exactly the two others', () => trio.every((p, i) => separated(p, i)), { ...POLL, timeoutMs: 15_000 }).catch(() => undefined);
    for (const [i, p] of trio.entries()) {
      const levels = p.toneLevels(freqs);
      const shown = levels.map((l, j) => `${freqs[j]} Hz ${l.toFixed(1)}`).join(', ');
      console.log(`${TRIO[i]!.name} hears: ${shown} dBFS`);
      for (const [j, level] of levels.entries()) {
        if (j === i) assert.ok(level < ABSENT_DBFS, `${TRIO[i]!.name} hears its own tone at ${level.toFixed(1)} dBFS (${shown})`);
        else assert.ok(level > HEARD_DBFS, `${TRIO[i]!.name} hears ${TRIO[j]!.name} only at ${level.toFixed(1)} dBFS (${shown})`);
      }
    }

    // Tiles in join order; positions are relative, so an encoder that scaled the grid down still passes.
    const W = 640;
    const H = 480;
    const centres = gridLayout(3, W, H).map((r) => ({ x: (r.x + r.width / 2) / W, y: (r.y + r.height / 2) / H }));
    const tilesRight = (p: SyntheticPeer): boolean =>
      centres.every((c, k) => {
        const s = p.sampleColour(c.x, c.y);
        return s !== null && closeTo([s.r, s.g, s.b], TRIO[k]!.colour, COLOUR_TOLERANCE);
      });
    await until('every peer to see the three tiles', () => trio.every(tilesRight), { ...POLL, timeoutMs: 15_000 }).catch(() => undefined);
    for (const [i, p] of trio.entries()) {
      const stats = p.stats();
      assert.ok(stats.framesReceived > 0, `${TRIO[i]!.name} received no composite frame`);
      for (const [k, c] of centres.entries()) {
        const s = p.sampleColour(c.x, c.y);
        assert.ok(s, `${TRIO[i]!.name} has no frame to sample`);
        assert.ok(
          closeTo([s.r, s.g, s.b], TRIO[k]!.colour, COLOUR_TOLERANCE),
          `${TRIO[i]!.name} sees (${s.r},${s.g},${s.b}) in cell ${k}, expected ${TRIO[k]!.name} ${TRIO[k]!.colour.join(',')}`,
        );
      }
    }

    for (const p of trio) {
      await p.leave();
      p.close();
    }
    await until('the trio room to close', async () => !(await status()).rooms.some((r) => r.name === 'trio'), { ...POLL, timeoutMs: 5000 });
  });

  it('40 join/leave cycles while two stay: counts right, the two still hear each other, no leak', { timeout: 180_000 }, async () => {
    const CYCLES = 40;
    const WARM_UP = 10;
    /** RSS may grow this much after warm-up (allocator noise); a leaked peer connection costs MBs each. */
    const RSS_GROWTH_LIMIT_KB = 48 * 1024;
    const BUDGET_MS = 120_000;
    const pid = mcu.process.pid;

    const stay = [peer({ room: 'stay', name: 'Stay A', toneHz: STAY_FREQS[0]!, colour: [230, 200, 30] }), peer({ room: 'stay', name: 'Stay B', toneHz: STAY_FREQS[1]!, colour: [30, 200, 230] })];
    for (const p of stay) await p.join();
    const baseline = sampleProcessTree(pid);
    let warm: ProcessSample | null = null;

    const started = Date.now();
    for (let i = 1; i <= CYCLES; i++) {
      assert.ok(Date.now() - started < BUDGET_MS, `only ${i - 1} of ${CYCLES} cycles within ${BUDGET_MS} ms`);
      const visitor = peer({ room: 'stay', name: `Visitor ${i}`, toneHz: STAY_FREQS[2]!, colour: [200, 40, 200] });
      await visitor.join();
      // Wait until the visitor is really in the mix: its peer connection carries the grid.
      await until(`visitor ${i} to receive a composite frame`, () => visitor.stats().framesReceived > 0, { ...POLL, timeoutMs: 10_000 });
      await visitor.leave();
      visitor.close();
      peers.delete(visitor);
      if (i === WARM_UP) warm = sampleProcessTree(pid);
    }
    const elapsed = Date.now() - started;

    await until(
      'the MCU to count only the two who stayed',
      async () => {
        const s = await status();
        return s.participants === 2 && s.rooms.length === 1;
      },
      { ...POLL, timeoutMs: 5000 },
    );
    const s = await status();
    assert.deepEqual(s.rooms, [{ name: 'stay', participants: 2, connected: 2 }]);
    const end = sampleProcessTree(pid);

    // The last visitor's tone leaves the analysis window; then each of the two hears only the other.
    const hearsOnlyTheOther = ([a, b]: number[][]): boolean =>
      a![1]! > HEARD_DBFS && a![0]! < ABSENT_DBFS && a![2]! < ABSENT_DBFS && b![0]! > HEARD_DBFS && b![1]! < ABSENT_DBFS && b![2]! < ABSENT_DBFS;
    await until('each of the two to hear only the other', () => hearsOnlyTheOther(stay.map((p) => p.toneLevels(STAY_FREQS))), { ...POLL, timeoutMs: 10_000 }).catch(() => undefined);
    const levels = stay.map((p) => p.toneLevels(STAY_FREQS));

    const mb = (kb: number): string => (kb / 1024).toFixed(1);
    console.log(
      `${CYCLES} cycles in ${elapsed} ms (${Math.round(elapsed / CYCLES)} ms each); MCU pid ${pid}: ` +
        `RSS ${mb(baseline.rssKb)} MB with 2 peers, ${mb(warm!.rssKb)} MB after ${WARM_UP} warm-up cycles, ${mb(end.rssKb)} MB after ${CYCLES}; ` +
        `sockets ${baseline.sockets} -> ${end.sockets}; threads ${baseline.threads} -> ${end.threads}`,
    );
    const shown = levels.map((l) => l.map((x, j) => `${STAY_FREQS[j]} Hz ${x.toFixed(1)}`).join(', '));
    console.log(`Stay A hears: ${shown[0]} dBFS; Stay B hears: ${shown[1]} dBFS`);

    assert.ok(hearsOnlyTheOther(levels), `each of the two who stayed hears the other, neither itself nor the last visitor: A ${shown[0]}; B ${shown[1]}`);
    // Every peer connection holds several UDP sockets: one leaked connection would show up here.
    assert.ok(end.sockets <= baseline.sockets + 2, `MCU sockets grew from ${baseline.sockets} to ${end.sockets}: peer connections left open`);
    assert.ok(end.threads <= baseline.threads + 2, `MCU threads grew from ${baseline.threads} to ${end.threads}`);
    assert.ok(
      end.rssKb - warm!.rssKb < RSS_GROWTH_LIMIT_KB,
      `MCU RSS grew ${mb(end.rssKb - warm!.rssKb)} MB over ${CYCLES - WARM_UP} cycles after warm-up (limit ${mb(RSS_GROWTH_LIMIT_KB)} MB)`,
    );
  });
});
