/**
 * What encrypting the replication channel costs (mcu/src/wire/frame-codec.ts, version 2):
 *
 *   codec   CPU per frame, sealed and opened, for each payload size: AES-256-GCM (version 2,
 *           what runs) beside HMAC-SHA256 over header and payload, signed and verified (what
 *           version 1 did), interleaved in blocks so both see the same machine load;
 *   link    throughput of two real ReplicationLinks over loopback TCP (handshake, sealing,
 *           opening, ordering checks), binary frames of each size, in MB/s.
 *
 *   node --import tsx scripts/bench/replication-link.ts [--frames 20000] [--blocks 20] [--linkMb 64]
 *
 * Prints a summary and writes bench-results/replication-link.json and .html.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { cpus, loadavg } from 'node:os';
import { preciseNow } from '../../mcu/src/core/clock.ts';
import { ReplicationLink } from '../../mcu/src/replication/replication-link.ts';
import { FrameDecoder, FrameSealer, FrameType, deriveFrameKey, type Frame } from '../../mcu/src/wire/frame-codec.ts';
import { parsePrimaryMessage, parseStandbyMessage, type PrimaryMessage, type StandbyMessage } from '../../mcu/src/wire/messages.ts';
import { parseBenchArgs } from './common/args.ts';
import { renderPlotPage, type PlotMetric } from './common/plot.ts';
import { summarize, type Summary } from './common/stats.ts';

const { frames, blocks, linkMb } = parseBenchArgs({
  command: 'scripts/bench/replication-link.ts',
  summary: 'What encrypting the replication channel costs: codec CPU per frame (AES-256-GCM vs HMAC-SHA256) and link throughput; writes bench-results/replication-link.json and .html.',
  options: {
    frames: { type: 'int', default: 20_000, min: 100, max: 1_000_000, help: 'frames per codec block (divided by size/200 for large frames)' },
    blocks: { type: 'int', default: 20, min: 2, max: 1000, help: 'interleaved blocks per codec and size' },
    linkMb: { type: 'int', default: 64, min: 1, max: 1024, help: 'megabytes sent through the link per frame size' },
  },
});

const SECRET = 'bench-replication-link-secret-7c1f';
const SIZES = [200, 2_000, 64_000];

/** Microseconds per frame of `n` frames sealed and opened with the version 2 codec. */
function gcmBlock(payload: Buffer, n: number): number {
  const key = deriveFrameKey(SECRET, randomBytes(32), randomBytes(32));
  const sealer = new FrameSealer(key);
  const decoder = new FrameDecoder(key);
  const start = preciseNow();
  for (let i = 0; i < n; i++) {
    const r = decoder.push(sealer.seal({ type: FrameType.Binary, epoch: 1, seq: i + 1, payload }));
    if (r.frames.length !== 1) throw new Error(`frame ${i} did not open: ${String(r.error)}`);
  }
  return ((preciseNow() - start) * 1000) / n;
}

/** Microseconds per frame of `n` frames signed and verified as version 1 did (HMAC-SHA256 over header and payload). */
function hmacBlock(payload: Buffer, n: number): number {
  const key = Buffer.from(SECRET);
  const header = Buffer.alloc(20);
  const start = preciseNow();
  for (let i = 0; i < n; i++) {
    header.writeBigUInt64BE(BigInt(i + 1), 8);
    const frame = Buffer.concat([header, payload]);
    const mac = createHmac('sha256', key).update(frame.subarray(0, 20)).update(frame.subarray(20)).digest();
    const check = createHmac('sha256', key).update(frame.subarray(0, 20)).update(frame.subarray(20)).digest();
    if (!mac.equals(check)) throw new Error('MAC mismatch');
  }
  return ((preciseNow() - start) * 1000) / n;
}

/** MB/s of `totalBytes` in binary frames of `size` from one ReplicationLink to another over loopback. */
async function linkThroughput(size: number, totalBytes: number): Promise<number> {
  let receiver: ReplicationLink<PrimaryMessage, StandbyMessage> | null = null;
  let received = 0;
  const count = Math.max(1, Math.floor(totalBytes / size));
  const done = new Promise<void>((resolve) => {
    const server = createServer({ noDelay: true }, (socket) => {
      receiver = new ReplicationLink<PrimaryMessage, StandbyMessage>({ socket, secret: SECRET, epoch: 1, parse: parsePrimaryMessage });
      receiver.on('binary', (data) => {
        received++;
        if (received === count) {
          server.close();
          resolve();
        }
      });
    });
    server.listen(0, '127.0.0.1', () => void send((server.address() as AddressInfo).port));
  });
  let senderSocket: Socket | null = null;
  let sender: ReplicationLink<StandbyMessage, PrimaryMessage> | null = null;
  const payload = randomBytes(size);
  let start = 0;
  const send = async (port: number): Promise<void> => {
    senderSocket = connect({ port, host: '127.0.0.1', noDelay: true });
    sender = new ReplicationLink<StandbyMessage, PrimaryMessage>({ socket: senderSocket, secret: SECRET, epoch: 1, parse: parseStandbyMessage });
    start = preciseNow();
    for (let i = 0; i < count; i++) {
      sender.sendBinary(payload);
      // Stay under the link's limit for a peer that stopped reading (64 MiB queued).
      if (senderSocket.writableLength > 8 * 1024 * 1024) await new Promise((resolve) => senderSocket!.once('drain', resolve));
    }
  };
  await done;
  const seconds = (preciseNow() - start) / 1000;
  (sender as ReplicationLink<StandbyMessage, PrimaryMessage> | null)?.close('bench over');
  (receiver as ReplicationLink<PrimaryMessage, StandbyMessage> | null)?.close('bench over');
  return (count * size) / 1e6 / seconds;
}

const startedAt = new Date().toISOString();
const codec: Record<string, { gcm: number[]; hmac: number[] }> = {};
for (const size of SIZES) {
  const payload = randomBytes(size);
  const n = Math.max(50, Math.floor(frames / Math.max(1, size / 200)));
  const samples = { gcm: [] as number[], hmac: [] as number[] };
  gcmBlock(payload, n);
  hmacBlock(payload, n);
  for (let b = 0; b < blocks; b++) {
    // Alternating order: neither always runs first in a block pair.
    if (b % 2 === 0) {
      samples.gcm.push(gcmBlock(payload, n));
      samples.hmac.push(hmacBlock(payload, n));
    } else {
      samples.hmac.push(hmacBlock(payload, n));
      samples.gcm.push(gcmBlock(payload, n));
    }
  }
  codec[size] = samples;
}

const link: Record<string, number[]> = {};
for (const size of [2_000, 64_000]) {
  link[size] = [];
  for (let r = 0; r < 3; r++) link[size]!.push(await linkThroughput(size, linkMb * 1e6));
}

const summaries: Record<string, { gcmUs: Summary; hmacUs: Summary; extraUsPerFrame: number }> = {};
console.log(`replication-link benchmark (${startedAt}, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}, ${cpus().length} cores)`);
for (const size of SIZES) {
  const gcmUs = summarize(codec[size]!.gcm);
  const hmacUs = summarize(codec[size]!.hmac);
  summaries[size] = { gcmUs, hmacUs, extraUsPerFrame: Number((gcmUs.p50 - hmacUs.p50).toFixed(3)) };
  console.log(`  codec ${String(size).padStart(6)} B  aes-256-gcm p50 ${gcmUs.p50.toFixed(2)} µs/frame   hmac-sha256 (v1) p50 ${hmacUs.p50.toFixed(2)} µs/frame`);
}
for (const [size, mbps] of Object.entries(link)) {
  const s = summarize(mbps);
  console.log(`  link  ${String(size).padStart(6)} B frames through two ReplicationLinks: p50 ${s.p50.toFixed(1)} MB/s (min ${s.min.toFixed(1)}, max ${s.max.toFixed(1)})`);
}

mkdirSync('bench-results', { recursive: true });
const report = { startedAt, machine: { cores: cpus().length, loadavg: loadavg() }, options: { frames, blocks, linkMb }, codec: summaries, codecSamples: codec, linkMBps: link };
writeFileSync('bench-results/replication-link.json', JSON.stringify(report, null, 2));
const metrics: PlotMetric[] = SIZES.map((size) => ({
  label: `codec, ${size}-byte payload`,
  unit: 'µs/frame',
  note: 'sealed and opened (v2) or signed and verified (v1), one block = one dot',
  series: [
    { name: 'aes-256-gcm (v2)', points: codec[size]!.gcm.map((value) => ({ value, colour: '#1e88e5' })) },
    { name: 'hmac-sha256 (v1)', points: codec[size]!.hmac.map((value) => ({ value, colour: '#757575' })) },
  ],
}));
metrics.push({
  label: 'link throughput',
  unit: 'MB/s',
  note: 'binary frames through two real ReplicationLinks over loopback TCP, one run = one dot',
  series: Object.entries(link).map(([size, mbps]) => ({ name: `${size}-byte frames`, points: mbps.map((value) => ({ value })) })),
});
writeFileSync('bench-results/replication-link.html', renderPlotPage({ title: 'Replication channel: the cost of encryption', subtitle: [`${startedAt}, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`], metrics }));
console.log('written: bench-results/replication-link.json, bench-results/replication-link.html');
