/**
 * Connection-level takeover (MCU_TAKEOVER=1) in the namespace lab: signaling gap and failure
 * detection per failure type, and takeover time against the number of connections.
 *
 *   node --import tsx scripts/bench/takeover.ts [--failovers 20] [--clients 3] [--interval-ms 10]
 *                                               [--faults kill,crash] [--scale 1,100,500] [--scale-interval-ms 1000]
 *
 * Each failover runs in a fresh lab (scripts/lab): the primary (mcu/src/main.ts) and the standby
 * (standby/src/main.ts) with MCU_TAKEOVER=1, socket.io clients in the client host
 * (scripts/clients/takeover-scale-clients.ts) sending numbered `mute` requests with acks.
 * - kill:  SIGKILL of the primary process, then the harness's fencing (silence the port, drop
 *          the VIP); the standby detects the end of the replication stream.
 * - crash: crashHost('primary') (link down, the process keeps running cut off); the standby
 *          detects by heartbeat timeout.
 * Per failover: detection (fault -> standby's verdict), serving (fault -> promotion complete),
 * the takeover report (VIP, rebuild, re-attach), the clients' largest ack gap (the signaling gap
 * as a client sees it: includes one request interval) and whether every connection survived.
 * Needs root, iproute2, nftables and the native addon. Prints a summary and writes
 * bench-results/takeover.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { LabProcessGroup } from '../lab/lab-process.ts';
import { LabTopology } from '../lab/topology.ts';
import { takeoverLabUnsupportedReason } from '../lab/takeover-support.ts';
import { parseBenchArgs } from './common/args.ts';
import { summarize, type Summary } from './common/stats.ts';
import { renderPlotPage, type PlotMetric } from './common/plot.ts';

const CLIENTS = 'scripts/clients/takeover-scale-clients.ts';
const MAX_FAILOVERS = 100;
const MAX_CONNECTIONS = 1000;

type Fault = 'kill' | 'crash';

const args = parseBenchArgs({
  command: 'scripts/bench/takeover.ts',
  summary: 'Connection-level takeover in the namespace lab: signaling gap and detection per failure type, takeover time against connections; writes bench-results/takeover.json.',
  options: {
    failovers: { type: 'int', default: 20, min: 1, max: MAX_FAILOVERS, help: 'failovers per failure type' },
    clients: { type: 'int', default: 3, min: 1, max: 16, help: 'socket.io clients in those failovers' },
    'interval-ms': { type: 'int', default: 10, min: 1, max: 60_000, help: "each client's request interval, ms" },
    faults: { type: 'list', default: ['kill', 'crash'], choices: ['kill', 'crash'], help: 'failure types' },
    scale: { type: 'int-list', default: [1, 100, 500], min: 1, max: MAX_CONNECTIONS, help: 'connection counts of the scale runs (one kill each; empty: none)' },
    'scale-interval-ms': { type: 'int', default: 1000, min: 10, max: 60_000, help: "each connection's request interval in the scale runs, ms" },
  },
});

const failovers = args.failovers;
const fewClients = args.clients;
const intervalMs = args['interval-ms'];
const faults: Fault[] = args.faults;
const scale = args.scale;
const scaleIntervalMs = args['scale-interval-ms'];

interface Fallback {
  connId: string;
  code: string;
  reason: string;
}

interface Sample {
  fault: Fault;
  connections: number;
  ok: boolean;
  error?: string;
  detectionMs?: number;
  detectionReason?: string;
  servingMs?: number;
  promotedSeenMs?: number;
  vipMs?: number;
  rebuildMs?: number;
  reattachMs?: number | null;
  rebuilt?: number;
  reattached?: number;
  fallbacks?: Record<string, number>;
  fallbackSamples?: Fallback[];
  maxAckGapMs?: number;
  sent?: number;
  acked?: number;
  missing?: number;
  duplicates?: number;
  outOfOrder?: number;
  disconnects?: number;
  identityChanged?: number;
  survived?: boolean;
}

async function failover(fault: Fault, n: number, interval: number, maxRequests: number, dwellBeforeMs: number, dwellAfterMs: number): Promise<Sample> {
  const perRoom = Math.min(10, n);
  const rooms = Math.ceil(n / perRoom);
  const connections = rooms * perRoom;
  const lab = new LabTopology();
  const processes = new LabProcessGroup(lab);
  const start = processes.start.bind(processes);
  try {
    await lab.up();
    const { vip } = lab.addresses;
    const secret = `bench-takeover-${process.pid}-${Math.random().toString(16).slice(2)}`;
    // The one client host stands for every connection: the per-address join limit must let them all in.
    const common = { LOG_LEVEL: 'warn', MCU_MISSED_HEARTBEATS: '3', MCU_MAX_ROOMS: String(Math.max(50, rooms + 1)), MCU_JOINS_PER_WINDOW: String(connections) };
    const { primary, standby } = await processes.startMcuPair(secret, { takeover: true, env: common });
    const clients = start('client', CLIENTS, [`http://${vip}:${lab.servicePort}`, String(rooms), String(perRoom), String(interval), String(maxRequests)]);
    const up = await clients.waitFor((e) => e.event === 'connected' || e.event === 'connect-failed', { timeoutMs: 90_000 });
    if (up.event !== 'connected') throw new Error(`clients did not connect: ${JSON.stringify(up)}`);
    const started = await clients.request({ op: 'start' }, 90_000);
    if (started.ok !== true) throw new Error(`joins failed: ${JSON.stringify(started)}`);
    await sleep(dwellBeforeMs);

    const from = standby.mark();
    const k0 = performance.now();
    const faultAt = Date.now();
    if (fault === 'kill') {
      lab.killPrimaryProcess(primary.pid);
      await lab.silenceServicePort('primary');
      await lab.dropVip('primary');
    } else {
      await lab.crashHost('primary');
    }
    const promoted = await standby.waitFor((e) => e.event === 'promoted' || e.event === 'standby-failed', { from, timeoutMs: 30_000 });
    const promotedSeenMs = performance.now() - k0;
    if (promoted.event !== 'promoted') throw new Error('standby failed to promote');
    const tl = promoted.timeline as {
      detectedAt: number;
      reason: string;
      servingAt: number;
      takeover?: { rebuilt: number; reattached: number; fallbacks: Fallback[]; vipMs: number; rebuildMs: number; reattachMs: number | null };
    };
    await sleep(dwellAfterMs);
    const r = (await clients.request({ op: 'stop' }, 30_000)) as Record<string, number>;
    const tk = tl.takeover;
    const codes: Record<string, number> = {};
    for (const f of tk?.fallbacks ?? []) codes[f.code] = (codes[f.code] ?? 0) + 1;
    const survived =
      r.disconnects === 0 && r.identityChanged === 0 && r.missing === 0 && r.duplicates === 0 && r.outOfOrder === 0 && r.acked === r.sent && r.failed === 0;
    return {
      fault,
      connections,
      ok: true,
      detectionMs: tl.detectedAt - faultAt,
      detectionReason: tl.reason,
      servingMs: tl.servingAt - faultAt,
      promotedSeenMs: round(promotedSeenMs),
      vipMs: round(tk?.vipMs ?? NaN),
      rebuildMs: round(tk?.rebuildMs ?? NaN),
      reattachMs: tk?.reattachMs == null ? null : round(tk.reattachMs),
      rebuilt: tk?.rebuilt ?? 0,
      reattached: tk?.reattached ?? 0,
      fallbacks: codes,
      fallbackSamples: (tk?.fallbacks ?? []).filter((f) => f.code !== 'not-a-session').slice(0, 3),
      maxAckGapMs: round(r.maxGapMs ?? NaN),
      sent: r.sent,
      acked: r.acked,
      missing: r.missing,
      duplicates: r.duplicates,
      outOfOrder: r.outOfOrder,
      disconnects: r.disconnects,
      identityChanged: r.identityChanged,
      survived,
    };
  } catch (err) {
    return { fault, connections, ok: false, error: (err as Error).message.split('\n')[0] };
  } finally {
    await processes.closeAll();
    await lab.down().catch(() => undefined);
  }
}

function round(v: number): number {
  return Math.round(v * 100) / 100;
}

function pick(samples: Sample[], key: keyof Sample): Summary {
  return summarize(samples.filter((s) => s.ok && typeof s[key] === 'number').map((s) => s[key] as number), 2);
}

function line(label: string, s: Summary): string {
  return `  ${label.padEnd(26)} n=${s.n} min ${s.min} median ${s.median} p95 ${s.p95} max ${s.max}`;
}

/** One page: detection, fault -> serving and the client's signaling gap per failure type; takeover time per connection count. */
function plot(perFault: Record<string, { samples: Sample[] }>, scaleSamples: Sample[], subtitle: string[]): string {
  const series = (key: keyof Sample) =>
    Object.entries(perFault).map(([fault, { samples }]) => ({
      name: fault === 'kill' ? 'process kill' : 'host crash',
      points: samples.filter((x) => x.ok && typeof x[key] === 'number').map((x) => ({ value: x[key] as number })),
    }));
  const metrics: PlotMetric[] = [
    { label: 'Detection', unit: 'ms', note: 'fault -> the standby\'s death verdict', series: series('detectionMs') },
    { label: 'Fault -> serving', unit: 'ms', note: 'fault -> promotion complete (connections rebuilt and re-attached)', series: series('servingMs') },
    { label: 'Signaling gap', unit: 'ms', note: 'largest interval between acks at a client (includes one request interval)', series: series('maxAckGapMs') },
  ];
  if (scaleSamples.some((x) => x.ok)) {
    metrics.push({
      label: 'Takeover time by connections',
      unit: 'ms',
      note: 'takeover start -> every session re-attached, one row per connection count',
      series: scaleSamples.filter((x) => x.ok).map((x) => ({ name: `${x.connections} connections`, points: [{ value: x.reattachMs as number }] })),
    });
  }
  return renderPlotPage({ title: 'Connection-level takeover (MCU_TAKEOVER=1, lab)', subtitle, metrics });
}

async function main(): Promise<void> {
  const unsupported = await takeoverLabUnsupportedReason();
  if (unsupported) {
    console.error(`bench-takeover: cannot run: ${unsupported}`);
    process.exit(2);
  }
  await LabTopology.cleanupStale();
  const t0 = Date.now();
  const perFault: Record<string, { samples: Sample[]; summary: Record<string, unknown> }> = {};
  for (const fault of faults) {
    const samples: Sample[] = [];
    for (let i = 0; i < failovers; i++) {
      const s = await failover(fault, fewClients, intervalMs, 1000, 500, 800);
      samples.push(s);
      console.log(
        `${fault} #${i + 1}: ` +
          (s.ok
            ? `detection ${s.detectionMs} ms (${s.detectionReason}), serving ${s.servingMs} ms, max ack gap ${s.maxAckGapMs} ms, reattached ${s.reattached}/${s.connections}, fallbacks ${JSON.stringify(s.fallbacks)}, survived ${s.survived}`
            : `ERROR ${s.error}`),
      );
    }
    const okSamples = samples.filter((s) => s.ok);
    const summary = {
      failovers: samples.length,
      errors: samples.length - okSamples.length,
      survivedAll: okSamples.filter((s) => s.survived).length,
      detectionMs: pick(samples, 'detectionMs'),
      servingMs: pick(samples, 'servingMs'),
      maxAckGapMs: pick(samples, 'maxAckGapMs'),
      reattachMs: pick(samples, 'reattachMs'),
    };
    perFault[fault] = { samples, summary };
    console.log(`${fault}: ${summary.survivedAll}/${summary.failovers} failovers with every client surviving, ${summary.errors} errors`);
    console.log(line('detection (ms)', summary.detectionMs));
    console.log(line('fault -> serving (ms)', summary.servingMs));
    console.log(line('client max ack gap (ms)', summary.maxAckGapMs));
    console.log(line('takeover prepare->reattached', summary.reattachMs));
  }
  const scaleSamples: Sample[] = [];
  for (const n of scale) {
    const s = await failover('kill', n, scaleIntervalMs, 100, Math.max(1500, scaleIntervalMs + 500), Math.max(2000, scaleIntervalMs * 2));
    scaleSamples.push(s);
    console.log(
      `scale ${s.connections} (kill): ` +
        (s.ok
          ? `vip ${s.vipMs} ms, rebuilt ${s.rebuilt} in ${s.rebuildMs} ms, reattached ${s.reattached} at ${s.reattachMs} ms, fallbacks ${JSON.stringify(s.fallbacks)}, ` +
            `detection ${s.detectionMs} ms, fault -> serving ${s.servingMs} ms, max ack gap ${s.maxAckGapMs} ms (interval ${scaleIntervalMs}), survived ${s.survived}`
          : `ERROR ${s.error}`),
    );
  }
  const result = {
    at: new Date(t0).toISOString(),
    durationS: Math.round((Date.now() - t0) / 1000),
    host: { cpus: cpus().length, loadavg: loadavg() },
    params: { failovers, clients: fewClients, intervalMs, faults, scale, scaleIntervalMs },
    faults: perFault,
    scale: scaleSamples,
  };
  mkdirSync('bench-results', { recursive: true });
  writeFileSync('bench-results/takeover.json', JSON.stringify(result, null, 2) + '\n');
  const subtitle = [`${result.at}, ${result.durationS} s, ${failovers} failovers per failure type, ${fewClients} clients every ${intervalMs} ms`, `load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`];
  writeFileSync('bench-results/takeover.html', plot(perFault, scaleSamples, subtitle));
  console.log(`wrote bench-results/takeover.json and takeover.html (${result.durationS} s)`);
}

await main();
