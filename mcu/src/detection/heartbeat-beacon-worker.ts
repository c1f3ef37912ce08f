/**
 * The primary's heartbeat thread: answers standby subscriptions and sends each
 * subscriber a beat every interval, from a real-time thread, so that load on the
 * main thread or the machine cannot delay it. It stops beating when the main
 * thread has made no progress for `mainStallMs`: a hung process is a dead one.
 */
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { makeCurrentThreadRealtime } from '../core/realtime.ts';
import { decodeHeartbeat, encodeHeartbeat } from '../wire/heartbeat-wire.ts';
import { KernelLease, type KernelLeaseSpec } from '../takeover/fencing/kernel-lease.ts';

export interface BeaconWorkerData {
  host: string;
  port: number;
  secret: string;
  epoch: number;
  intervalMs: number;
  mainStallMs: number;
  /** Int32Array[1] over a SharedArrayBuffer, bumped by the main thread. */
  liveness: SharedArrayBuffer;
  /**
   * Int32Array[2] over a SharedArrayBuffer written by this thread: [0] its last tick (ms since
   * `pauseBase`), [1] the longest gap between two ticks since the main thread last took it. A
   * gap here is silence the standby saw (fencing: was this process paused long enough to be taken over?).
   */
  pauses: SharedArrayBuffer;
  /** Epoch ms that pauses[0] counts from. */
  pauseBase: number;
  rtPriority: number;
  /** Renew the host firewall's lease on every tick (takeover mode; see kernel-lease.ts), or null. */
  kernelLease: KernelLeaseSpec | null;
}

export type BeaconWorkerMessage =
  | { type: 'ready'; port: number }
  | { type: 'bind-failed'; code: string; message: string }
  | { type: 'realtime'; ok: boolean; detail: string }
  | { type: 'subscriber'; address: string; port: number }
  | { type: 'subscribers'; count: number }
  | { type: 'main-stalled'; stalledMs: number }
  | { type: 'main-recovered' }
  | { type: 'rejected'; reason: string }
  | { type: 'lease-failed'; detail: string };

export type BeaconControl = { type: 'epoch'; epoch: number } | { type: 'stop' };

const data = workerData as BeaconWorkerData;
const port = parentPort!;
const post = (msg: BeaconWorkerMessage): void => port.postMessage(msg);
const liveness = new Int32Array(data.liveness);
const pauses = new Int32Array(data.pauses);
let lastTickAt = Date.now();
const subscribers = new Map<string, { address: string; port: number; lastSeen: number }>();
let epoch = data.epoch;
let seq = 0;
let lastLiveness = Atomics.load(liveness, 0);
let lastProgressAt = Date.now();
let stalled = false;

const socket = dgram.createSocket(isIPv6(data.host) ? 'udp6' : 'udp4');
socket.on('error', (err: NodeJS.ErrnoException) => {
  post({ type: 'bind-failed', code: err.code ?? 'UNKNOWN', message: err.message });
});
socket.on('message', (buf, remote) => {
  const res = decodeHeartbeat(buf, data.secret);
  if (!res.ok) {
    post({ type: 'rejected', reason: `${remote.address}:${remote.port}: ${res.reason}` });
    return;
  }
  if (res.datagram.kind !== 'subscribe') return;
  const key = `${remote.address}:${remote.port}`;
  const isNew = !subscribers.has(key);
  subscribers.set(key, { address: remote.address, port: remote.port, lastSeen: Date.now() });
  if (isNew) {
    post({ type: 'subscriber', address: remote.address, port: remote.port });
    post({ type: 'subscribers', count: subscribers.size });
  }
  beat(remote.address, remote.port);
});

function beat(address: string, toPort: number): void {
  socket.send(encodeHeartbeat({ kind: 'beat', epoch, seq: seq++, sentAt: Date.now() }, data.secret), toPort, address);
}

function tick(): void {
  const now = Date.now();
  Atomics.store(pauses, 0, now - data.pauseBase);
  const gap = now - lastTickAt;
  lastTickAt = now;
  if (gap > Atomics.load(pauses, 1)) Atomics.store(pauses, 1, gap);
  const current = Atomics.load(liveness, 0);
  if (current !== lastLiveness) {
    lastLiveness = current;
    lastProgressAt = now;
    if (stalled) {
      stalled = false;
      post({ type: 'main-recovered' });
    }
  } else if (!stalled && now - lastProgressAt > data.mainStallMs) {
    stalled = true;
    post({ type: 'main-stalled', stalledMs: now - lastProgressAt });
  }
  if (stalled) return;
  lease?.renew();
  for (const [key, sub] of subscribers) {
    // A subscriber renews every second; one silent for 5 s is gone.
    if (now - sub.lastSeen > 3000) {
      subscribers.delete(key);
      post({ type: 'subscribers', count: subscribers.size });
    } else beat(sub.address, sub.port);
  }
}

let timer: NodeJS.Timeout | null = null;
let lease: KernelLease | null = null;
port.on('message', (msg: BeaconControl) => {
  if (msg.type === 'epoch') epoch = msg.epoch;
  if (msg.type === 'stop') {
    if (timer) clearInterval(timer);
    // Beats end here (fenced, or stopping): so does this host's promise to the standby.
    lease?.revoke();
    socket.close();
    port.close();
  }
});

socket.bind(data.port, data.host, () => {
  post({ type: 'ready', port: socket.address().port });
  const rt = makeCurrentThreadRealtime(data.rtPriority);
  post({ type: 'realtime', ok: rt.ok, detail: rt.detail });
  if (data.kernelLease) lease = new KernelLease(data.kernelLease, (detail) => post({ type: 'lease-failed', detail }));
  timer = setInterval(tick, data.intervalMs);
});
