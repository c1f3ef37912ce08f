/**
 * What the exposure controls cost (README, *Exposure*):
 * - the join limiter's check per join (in process, injected clock), with 1, 1,000 and 100,000
 *   client addresses live in one window, and the heap 100,000 addresses hold;
 * - the admin token check per request (sha256 of both sides, constant-time compare);
 * - against a real MCU process (admin.token set, a small join limit): GET /status on the
 *   loopback admin listener and on the public listener with the token, interleaved; the
 *   acknowledgement time of an accepted join and of a join refused with RATE_LIMITED.
 *
 *   node --import tsx scripts/bench/exposure.ts [--requests 200] [--joins 40]
 *
 * Prints a summary and writes bench-results/exposure.json and exposure.html.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { cpus, loadavg } from 'node:os';
import { adminAccess } from '../../mcu/src/http/admin.ts';
import { JoinRateLimiter } from '../../mcu/src/signaling/join-rate-limiter.ts';
import { io, type Socket } from 'socket.io-client';
import { adminAuthHeaders } from '../common/admin.ts';
import { startMcu } from '../common/processes.ts';
import { parseBenchArgs } from './common/args.ts';
import { renderPlotPage, type PlotMetric } from './common/plot.ts';
import { summarize, type Summary } from './common/stats.ts';

const args = parseBenchArgs({
  command: 'scripts/bench/exposure.ts',
  summary: 'Cost of the join limiter, the admin token check, /status on the admin and the public listener, accepted vs refused joins; writes bench-results/exposure.json.',
  options: {
    requests: { type: 'int', default: 200, min: 10, max: 5000, help: 'GET /status per listener' },
    joins: { type: 'int', default: 40, min: 2, max: 1000, help: 'joins: the first half accepted (the limit), the rest refused' },
    checks: { type: 'int', default: 200_000, min: 1000, max: 10_000_000, help: 'limiter and token checks per case (in process)' },
  },
});

const TOKEN = 'bench-admin-token-0123456789';

/** ns per call of `fn` over `n` calls, best of 3 rounds (warm). */
function nsPerCall(n: number, fn: (i: number) => void): number {
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn(i);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / n);
  }
  return Math.round(best);
}

function ipv4(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}

function limiterCosts(): { perAddresses: Array<{ addresses: number; nsPerJoin: number }>; ipv6NsPerJoin: number; heapBytesPer100kAddresses: number } {
  const perAddresses = [1, 1000, 100_000].map((addresses) => {
    const clock = { t: 0 };
    // A limit no one reaches: every check is the full path (prune, count, record).
    const limiter = new JoinRateLimiter({ maxJoins: 10_000, windowMs: 1e12, now: () => clock.t });
    const names = Array.from({ length: addresses }, (_, i) => ipv4(i));
    return { addresses, nsPerJoin: nsPerCall(Math.min(args.checks, 10_000 * addresses), (i) => limiter.take(names[i % addresses]!)) };
  });
  const clock = { t: 0 };
  const v6 = new JoinRateLimiter({ maxJoins: 10_000, windowMs: 1e12, now: () => clock.t });
  const v6names = Array.from({ length: 1000 }, (_, i) => `2001:db8:${(i % 65536).toString(16)}::${(i * 7).toString(16)}`);
  const ipv6NsPerJoin = nsPerCall(args.checks, (i) => v6.take(v6names[i % 1000]!));
  global.gc?.();
  const before = process.memoryUsage().heapUsed;
  const held = new JoinRateLimiter({ maxJoins: 100, windowMs: 10_000, now: () => 0 });
  for (let i = 0; i < 100_000; i++) held.take(ipv4(i));
  global.gc?.();
  const heapBytesPer100kAddresses = process.memoryUsage().heapUsed - before;
  if (held.trackedAddresses !== 100_000) throw new Error('the limiter lost addresses');
  return { perAddresses, ipv6NsPerJoin, heapBytesPer100kAddresses };
}

function tokenCheckNs(): { granted: number; wrong: number; none: number } {
  const request = (authorization?: string): IncomingMessage => ({ headers: authorization === undefined ? {} : { authorization } }) as IncomingMessage;
  const good = request(`Bearer ${TOKEN}`);
  const bad = request(`Bearer ${TOKEN}x`);
  const none = request();
  return {
    granted: nsPerCall(args.checks, () => adminAccess(good, TOKEN)),
    wrong: nsPerCall(args.checks, () => adminAccess(bad, TOKEN)),
    none: nsPerCall(args.checks, () => adminAccess(none, TOKEN)),
  };
}

async function timedGet(url: string): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(url, { headers: adminAuthHeaders(TOKEN) });
  await res.text();
  if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return performance.now() - t0;
}

async function againstMcu(): Promise<{ statusAdminMs: number[]; statusPublicMs: number[]; joinAcceptedMs: number[]; joinRefusedMs: number[] }> {
  const limit = Math.floor(args.joins / 2);
  const mcu = await startMcu({ MCU_ADMIN_TOKEN: TOKEN, MCU_JOINS_PER_WINDOW: String(limit), MCU_JOIN_WINDOW_MS: '3600000', LOG_LEVEL: 'warn', MCU_MAX_PARTICIPANTS_PER_ROOM: '64' });
  const sockets: Socket[] = [];
  try {
    const statusAdminMs: number[] = [];
    const statusPublicMs: number[] = [];
    // Interleaved, after a warm-up of each: the two listeners see the same moments of the machine.
    await timedGet(`${mcu.adminUrl}/status`);
    await timedGet(`${mcu.url}/status`);
    for (let i = 0; i < args.requests; i++) {
      statusAdminMs.push(await timedGet(`${mcu.adminUrl}/status`));
      statusPublicMs.push(await timedGet(`${mcu.url}/status`));
    }
    const joinAcceptedMs: number[] = [];
    const joinRefusedMs: number[] = [];
    for (let i = 0; i < args.joins; i++) {
      const socket = io(mcu.url, { transports: ['websocket'], reconnection: false, forceNew: true });
      sockets.push(socket);
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', () => resolve());
        socket.once('connect_error', reject);
      });
      const t0 = performance.now();
      const reply = (await socket.timeout(10_000).emitWithAck('join', { room: `bench-${i % 4}`, name: `p${i}`, audioMuted: true, videoMuted: true })) as { ok: boolean; error?: { code: string } };
      const ms = performance.now() - t0;
      if (reply.ok) joinAcceptedMs.push(ms);
      else if (reply.error?.code === 'RATE_LIMITED') joinRefusedMs.push(ms);
      else throw new Error(`join ${i}: ${JSON.stringify(reply)}`);
    }
    if (joinAcceptedMs.length !== limit) throw new Error(`${joinAcceptedMs.length} joins accepted, expected the limit ${limit}`);
    return { statusAdminMs, statusPublicMs, joinAcceptedMs, joinRefusedMs };
  } finally {
    for (const s of sockets) s.disconnect();
    await mcu.stop();
  }
}

const startedAt = new Date().toISOString();
const limiter = limiterCosts();
const token = tokenCheckNs();
const live = await againstMcu();
const summary: Record<string, Summary> = {
  statusAdminMs: summarize(live.statusAdminMs),
  statusPublicWithTokenMs: summarize(live.statusPublicMs),
  joinAcceptedMs: summarize(live.joinAcceptedMs),
  joinRefusedMs: summarize(live.joinRefusedMs),
};
const report = { startedAt, machine: { cpus: cpus().length, loadavg: loadavg().map((l) => Math.round(l * 100) / 100) }, args, limiter, tokenCheckNs: token, summary, samples: live };

console.log(`join limiter, ns per join: ${limiter.perAddresses.map((p) => `${p.addresses} address(es) ${p.nsPerJoin}`).join(', ')}; IPv6 (/64 key) ${limiter.ipv6NsPerJoin}`);
console.log(`join limiter heap for 100,000 addresses in one window: ${(limiter.heapBytesPer100kAddresses / 1e6).toFixed(1)} MB${global.gc ? '' : ' (run with --expose-gc for a steadier figure)'}`);
console.log(`admin token check, ns: granted ${token.granted}, wrong ${token.wrong}, none ${token.none}`);
for (const [name, s] of Object.entries(summary)) console.log(`${name.padEnd(24)} n ${String(s.n).padStart(4)}  min ${s.min}  median ${s.median}  p95 ${s.p95}  max ${s.max} ms`);
console.log(`load average ${report.machine.loadavg.join(' ')} on ${report.machine.cpus} CPUs`);

mkdirSync('bench-results', { recursive: true });
writeFileSync('bench-results/exposure.json', JSON.stringify(report, null, 2) + '\n');
const metrics: PlotMetric[] = [
  {
    label: 'GET /status',
    unit: 'ms',
    note: 'a real MCU on 127.0.0.1, keep-alive, interleaved',
    series: [
      { name: 'admin listener', points: live.statusAdminMs.map((value) => ({ value })) },
      { name: 'public + token', points: live.statusPublicMs.map((value) => ({ value })) },
    ],
  },
  {
    label: 'join acknowledgement',
    unit: 'ms',
    note: `the first ${Math.floor(args.joins / 2)} joins accepted, the rest refused with RATE_LIMITED`,
    series: [
      { name: 'accepted', points: live.joinAcceptedMs.map((value) => ({ value })) },
      { name: 'RATE_LIMITED', points: live.joinRefusedMs.map((value) => ({ value })) },
    ],
  },
];
writeFileSync('bench-results/exposure.html', renderPlotPage({ title: 'Exposure: what the controls cost', subtitle: [`${startedAt}, load ${report.machine.loadavg.join(' ')}`], metrics }));
console.log('written: bench-results/exposure.json, bench-results/exposure.html');
