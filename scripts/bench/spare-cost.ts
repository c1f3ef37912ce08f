/**
 * What readiness costs: the warm spare paths idle in a call of 3 Chromium participants, with
 * spare paths on and off (MCU_SPARE_PATHS). Measures, over the same window in both runs:
 * CPU of the primary and the standby (from /proc, % of one core), the standby's RSS (and per
 * participant: the difference on - off, divided by the participants), and the bytes per second
 * on each page's spare peer connection while idle (its selected candidate pair, both ways: ICE
 * consent checks and nothing else should flow).
 *
 *   node --import tsx scripts/bench/spare-cost.ts [--window 20] [--out bench-results/spare-cost.json]
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname } from 'node:path';
import type { Browser } from 'playwright-core';
import { Supervisor } from '../../standby/src/supervisor/supervisor.ts';
import { eventually, launchChromium, openParticipant, type ParticipantPage } from '../common/browser.ts';
import { PARTICIPANTS } from '../probe/mix.ts';
import { readSpareTransportBytes, type TransportBytes } from '../probe/page-readout.ts';
import { freePort } from '../common/ports.ts';
import { parseBenchArgs } from './common/args.ts';

interface ProcSample {
  cpuTicks: number;
  rssKb: number;
}

const CLOCK_TICKS = 100;

function procSample(pid: number): ProcSample | null {
  try {
    return readProc(pid);
  } catch {
    return null;
  }
}

function readProc(pid: number): ProcSample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuTicks: utime + stime, rssKb: Number(rss?.[1] ?? 0) };
}

interface ModeResult {
  sparePaths: boolean;
  windowSeconds: number;
  participants: number;
  sparesConnected: number;
  primaryCpuPercent: number;
  standbyCpuPercent: number;
  primaryRssMb: number;
  standbyRssMb: number;
  /** Per page, both directions, while idle (null without spare paths). */
  spareBytesPerSecond: Array<{ name: string; sent: number; received: number; packetsPerSecond: number }> | null;
  /** Windows measured until one had the same primary and standby throughout (1 = no standby replaced). */
  windowAttempts: number;
  loadAverage: number[];
}

async function measure(sparePaths: boolean, windowSeconds: number, browser: Browser): Promise<ModeResult> {
  const port = await freePort();
  const supervisor = new Supervisor({
    port,
    replicationPort: await freePort(),
    adminPort: await freePort(),
    host: '127.0.0.1',
    env: { MCU_SPARE_PATHS: sparePaths ? '1' : '0', MCU_ICE_ADDRESSES: '127.0.0.1', MCU_SPARE_ICE_ADDRESSES: '127.0.0.1', LOG_LEVEL: 'warn' },
  });
  const pages: ParticipantPage[] = [];
  try {
    await supervisor.start();
    const url = `http://127.0.0.1:${port}`;
    for (const spec of PARTICIPANTS) pages.push(await openParticipant(browser, url, `cost-${sparePaths ? 'on' : 'off'}`, spec));
    const status = async (): Promise<{ protected: boolean; spares: { connected: number } }> => (await (await fetch(`${supervisor.adminUrl}/status`)).json()) as never;
    // A loaded host can make a standby give up (a false death verdict it cannot act on); the
    // supervisor replaces it. Such a window is measured again, and the replacements are reported.
    let attempts = 0;
    let window: { before: { primary: ProcSample; standby: ProcSample; at: number }; after: { primary: ProcSample; standby: ProcSample; at: number }; bytesBefore: Array<TransportBytes | null>; bytesAfter: Array<TransportBytes | null> } | null = null;
    while (window === null) {
      if (++attempts > 5) throw new Error('no quiet measurement window in 5 attempts: the standby keeps being replaced');
      const ready = await eventually(status, (s) => s.protected && (!sparePaths || s.spares.connected === PARTICIPANTS.length), 60000);
      if (!ready.protected) throw new Error('the primary never got protected');
      // Let the joins and negotiations settle before the window opens.
      await new Promise((r) => setTimeout(r, 3000));
      const primary = supervisor.primary!;
      const standby = supervisor.standby;
      if (!standby) continue;
      const p0 = procSample(primary.pid);
      const s0 = procSample(standby.pid);
      const at0 = Date.now();
      const bytesBefore = await Promise.all(pages.map((p) => readSpareTransportBytes(p.page)));
      await new Promise((r) => setTimeout(r, windowSeconds * 1000));
      const p1 = procSample(primary.pid);
      const s1 = procSample(standby.pid);
      const at1 = Date.now();
      const bytesAfter = await Promise.all(pages.map((p) => readSpareTransportBytes(p.page)));
      if (!p0 || !s0 || !p1 || !s1 || supervisor.standby !== standby || supervisor.primary !== primary) {
        console.error('the standby or primary changed during the window: measuring again');
        continue;
      }
      window = { before: { primary: p0, standby: s0, at: at0 }, after: { primary: p1, standby: s1, at: at1 }, bytesBefore, bytesAfter };
    }
    const { before, after, bytesBefore, bytesAfter } = window;
    const seconds = (after.at - before.at) / 1000;
    const cpu = (a: ProcSample, b: ProcSample): number => Math.round(((b.cpuTicks - a.cpuTicks) / CLOCK_TICKS / seconds) * 1000) / 10;
    const spareRates = sparePaths
      ? pages.map((p, i) => {
          const a = bytesBefore[i];
          const b = bytesAfter[i];
          if (!a || !b) return { name: p.spec.name, sent: NaN, received: NaN, packetsPerSecond: NaN };
          const s = (b.at - a.at) / 1000;
          return {
            name: p.spec.name,
            sent: Math.round((b.sent - a.sent) / s),
            received: Math.round((b.received - a.received) / s),
            packetsPerSecond: Math.round(((b.packetsSent - a.packetsSent + b.packetsReceived - a.packetsReceived) / s) * 100) / 100,
          };
        })
      : null;
    const final = await status();
    return {
      sparePaths,
      windowSeconds: Math.round(seconds * 10) / 10,
      participants: PARTICIPANTS.length,
      sparesConnected: final.spares.connected,
      primaryCpuPercent: cpu(before.primary, after.primary),
      standbyCpuPercent: cpu(before.standby, after.standby),
      primaryRssMb: Math.round(after.primary.rssKb / 102.4) / 10,
      standbyRssMb: Math.round(after.standby.rssKb / 102.4) / 10,
      spareBytesPerSecond: spareRates,
      windowAttempts: attempts,
      loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
    };
  } finally {
    for (const p of pages) await p.close();
    await supervisor.close();
  }
}

async function main(): Promise<void> {
  const values = parseBenchArgs({
    command: 'scripts/bench/spare-cost.ts',
    summary: 'What readiness costs: CPU, memory and idle bytes of the warm spare paths in a 3-participant Chromium call, spare paths off and on.',
    options: {
      window: { type: 'number', default: 20, min: 1, max: 3600, help: 'measurement window, s' },
      out: { type: 'string', default: 'bench-results/spare-cost.json', help: 'report file' },
    },
  });
  const windowSeconds = values.window;
  const browser = await launchChromium();
  const results: ModeResult[] = [];
  try {
    // Off first, then on: the same pages, processes started afresh for each.
    for (const sparePaths of [false, true]) {
      console.error(`measuring with spare paths ${sparePaths ? 'on' : 'off'} (${windowSeconds} s window)...`);
      results.push(await measure(sparePaths, windowSeconds, browser));
    }
  } finally {
    await browser.close();
  }
  const [off, on] = results as [ModeResult, ModeResult];
  const standbyRssPerParticipantMb = Math.round(((on.standbyRssMb - off.standbyRssMb) / on.participants) * 10) / 10;
  const idle = on.spareBytesPerSecond ?? [];
  const report = {
    at: new Date().toISOString(),
    participants: on.participants,
    off,
    on,
    summary: {
      primaryCpuPercent: { off: off.primaryCpuPercent, on: on.primaryCpuPercent },
      standbyCpuPercent: { off: off.standbyCpuPercent, on: on.standbyCpuPercent },
      standbyRssMb: { off: off.standbyRssMb, on: on.standbyRssMb },
      standbyRssPerParticipantMb,
      spareIdleBytesPerSecondPerPath: {
        sent: idle.length ? Math.round(idle.reduce((a, b) => a + b.sent, 0) / idle.length) : null,
        received: idle.length ? Math.round(idle.reduce((a, b) => a + b.received, 0) / idle.length) : null,
      },
    },
  };
  const pad = (s: string | number, n: number): string => String(s).padStart(n);
  console.log(`spare path cost, ${on.participants} participants, ${on.windowSeconds} s window (load ${on.loadAverage.join(' ')})`);
  console.log(`${'metric'.padEnd(40)} ${pad('off', 10)} ${pad('on', 10)}`);
  console.log(`${'primary CPU (% of one core)'.padEnd(40)} ${pad(off.primaryCpuPercent, 10)} ${pad(on.primaryCpuPercent, 10)}`);
  console.log(`${'standby CPU (% of one core)'.padEnd(40)} ${pad(off.standbyCpuPercent, 10)} ${pad(on.standbyCpuPercent, 10)}`);
  console.log(`${'primary RSS (MB)'.padEnd(40)} ${pad(off.primaryRssMb, 10)} ${pad(on.primaryRssMb, 10)}`);
  console.log(`${'standby RSS (MB)'.padEnd(40)} ${pad(off.standbyRssMb, 10)} ${pad(on.standbyRssMb, 10)}`);
  console.log(`${'standby RSS per participant (MB)'.padEnd(40)} ${pad('', 10)} ${pad(standbyRssPerParticipantMb, 10)}`);
  console.log(`${'spares connected'.padEnd(40)} ${pad(off.sparesConnected, 10)} ${pad(on.sparesConnected, 10)}`);
  for (const r of idle) {
    console.log(`${`idle spare of ${r.name}: B/s sent/received`.padEnd(40)} ${pad('', 10)} ${pad(`${r.sent}/${r.received}`, 10)}  (${r.packetsPerSecond} packets/s)`);
  }
  mkdirSync(dirname(values.out), { recursive: true });
  writeFileSync(values.out, JSON.stringify(report, null, 2) + '\n');
  console.log(`written to ${values.out}`);
}

await main();
// wrtc is not loaded here, but Playwright and socket.io may hold handles: end explicitly.
process.exit(0);
