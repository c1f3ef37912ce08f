/**
 * Participants joining and leaving in a loop: synthetic libwebrtc peers (tone + moving tile,
 * audio and video sendrecv) that join one room together, stay `--stay-ms`, leave, and join
 * again, for at most `--cycles` rounds and `--seconds` seconds. Joins are when libwebrtc creates
 * its encoder, decoder and pacer threads in the MCU, so this is the load the false-takeover
 * benchmark and the real-time-threads test put on it.
 *
 *   node --import tsx scripts/clients/join-leave-peers.ts <url> [--room r] [--peers 3] [--stay-ms 2500] [--cycles 20] [--seconds 60]
 *
 * JSON lines on stdout: `{"event":"joined","cycle":n,"peers":k,"ms":..}` once the round's peers
 * are connected, `{"event":"left","cycle":n}`, `{"event":"join-failed","cycle":n,"error":..}`,
 * and `{"event":"done","cycles":n,"joins":..,"failures":..}` at the end (then it exits 0). It ends
 * by itself in any case (bounded), and on SIGTERM/SIGINT after the round in progress.
 */
import { parseArgs } from 'node:util';
import { confineRealtimeScheduling, nativeAddonAvailable } from '../../native/src/index.ts';
import { SyntheticPeer, type Rgb } from '../common/synthetic-peer.ts';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    room: { type: 'string', default: 'join-leave' },
    peers: { type: 'string', default: '3' },
    'stay-ms': { type: 'string', default: '2500' },
    cycles: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '60' },
  },
});
const url = positionals[0];
const peers = Number(values.peers);
const stayMs = Number(values['stay-ms']);
const cycles = Number(values.cycles);
const seconds = Number(values.seconds);
if (!url || ![peers, stayMs, cycles, seconds].every((n) => Number.isInteger(n) && n > 0) || peers > 12) {
  process.stderr.write('usage: join-leave-peers.ts <url> [--room r] [--peers 1-12] [--stay-ms n] [--cycles n] [--seconds n]\n');
  process.exit(2);
}

// This process is load, not the system under test: its own libwebrtc threads must not make
// themselves real-time (as root they would) and starve the MCU beside it.
if (process.platform === 'linux' && nativeAddonAvailable()) confineRealtimeScheduling({ mainNice: 0, keepMediaRealtime: false });

const COLOURS: Rgb[] = [
  [220, 40, 40],
  [40, 200, 60],
  [40, 60, 220],
  [220, 200, 40],
];
const emit = (event: Record<string, unknown>): void => void process.stdout.write(JSON.stringify(event) + '\n');

const deadline = Date.now() + seconds * 1000;
let stopping = false;
const stop = (): void => {
  stopping = true;
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// Bounded whatever happens (a hung join, a parent that died): never outlive the run by much.
setTimeout(() => process.exit(1), seconds * 1000 + 30_000).unref();

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
let joins = 0;
let failures = 0;
let cycle = 0;
for (; cycle < cycles && !stopping && Date.now() < deadline; cycle++) {
  const round = Array.from(
    { length: peers },
    (_, i) =>
      new SyntheticPeer({
        url,
        room: String(values.room),
        name: `churn-${cycle}-${i}`,
        toneHz: 400 + 300 * i,
        colour: COLOURS[i % COLOURS.length]!,
        requestTimeoutMs: 10_000,
        connectTimeoutMs: 15_000,
      }),
  );
  const t0 = Date.now();
  const results = await Promise.allSettled(round.map((p) => p.join()));
  const joined = round.filter((_, i) => results[i]!.status === 'fulfilled');
  joins += joined.length;
  for (const r of results) {
    if (r.status === 'rejected') {
      failures++;
      emit({ event: 'join-failed', cycle, error: (r.reason as Error).message });
    }
  }
  emit({ event: 'joined', cycle, peers: joined.length, ms: Date.now() - t0 });
  await sleep(Math.min(stayMs, Math.max(0, deadline - Date.now())));
  await Promise.allSettled(joined.map((p) => p.leave()));
  for (const p of round) p.close();
  emit({ event: 'left', cycle });
}
emit({ event: 'done', cycles: cycle, joins, failures });
// libwebrtc crashes a process that ends by draining its event loop (design.md, section 5).
setTimeout(() => process.exit(0), 100);
