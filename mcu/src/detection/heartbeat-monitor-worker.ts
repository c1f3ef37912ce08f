/**
 * The standby's heartbeat thread (real-time): subscribes to the primary's beats over UDP and
 * feeds them, its own ticks and the answers to its probes to the FailureDetector, which judges
 * on this thread's clock whatever the main thread is doing. This file only does the I/O:
 * - port probe: a subscription on the connected UDP socket. A live beacon answers with a beat;
 *   the host of a dead one with ICMP port unreachable (ECONNREFUSED here) within a millisecond;
 * - host probe: a TCP SYN to a closed port of the primary's host (`hostProbePort`). Its kernel
 *   answers at once with a RST whatever its processes are doing: silence there is a host or
 *   link down.
 */
import dgram from 'node:dgram';
import { connect, isIPv6 } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { makeCurrentThreadRealtime } from '../core/realtime.ts';
import { decodeHeartbeat, encodeHeartbeat } from '../wire/heartbeat-wire.ts';
import { FailureDetector, HOST_PROBE_CALIBRATION_TIMEOUT_MS, type DetectorOutput, type FailureDetectorSettings } from './failure-detector.ts';

export interface MonitorWorkerData {
  host: string;
  port: number;
  secret: string;
  /** Beats of an older epoch are ignored. */
  minEpoch: number;
  rtPriority: number;
  detector: FailureDetectorSettings;
  /** A TCP port of the primary's host that nothing listens on (an answer either way means the host is up). */
  hostProbePort: number;
}

/** What the judge reports (its probes are carried out here), and this thread's own news. */
export type MonitorWorkerMessage =
  | Exclude<DetectorOutput, { type: 'probe-port' | 'probe-host' | 'first-beat' }>
  | { type: 'first-beat'; at: number; epoch: number }
  | { type: 'realtime'; ok: boolean; detail: string }
  | { type: 'summary'; lastBeatAt: number | null; beats: number; rejected: number }
  | { type: 'rejected'; reason: string };

export type MonitorControl = { type: 'channel-closed'; deliberate: boolean } | { type: 'subscribe-now' } | { type: 'stop' };

const data = workerData as MonitorWorkerData;
const port = parentPort!;
const post = (msg: MonitorWorkerMessage): void => port.postMessage(msg);
const judge = new FailureDetector({ ...data.detector, startedAt: Date.now() });
let beats = 0;
let rejected = 0;
let seq = 0;
let connected = false;
let stopped = false;

const socket = dgram.createSocket(isIPv6(data.host) ? 'udp6' : 'udp4');
const subscribe = (): void => {
  if (connected && !stopped && judge.verdict === null) socket.send(encodeHeartbeat({ kind: 'subscribe', epoch: data.minEpoch, seq: seq++, sentAt: Date.now() }, data.secret));
};

/** Carries out what the judge asks and reports the rest (`epoch`: of the beat fed, for the first-beat report). */
function act(outputs: DetectorOutput[], epoch = 0): void {
  if (stopped) return;
  for (const out of outputs) {
    if (out.type === 'probe-port') subscribe();
    else if (out.type === 'probe-host') {
      void hostAnswers(out.timeoutMs).then((answered) => act(judge.hostProbed(out.silentSince, answered, Date.now())));
    } else if (out.type === 'first-beat') post({ ...out, epoch });
    else post(out);
  }
}

socket.on('error', (err: NodeJS.ErrnoException) => {
  // On a connected UDP socket an ICMP port unreachable comes back as ECONNREFUSED: the
  // primary's host is up but nothing listens on its heartbeat port any more.
  if (err.code === 'ECONNREFUSED') act(judge.portUnreachable(Date.now()));
});
socket.on('message', (buf) => {
  const res = decodeHeartbeat(buf, data.secret);
  if (!res.ok || res.datagram.kind !== 'beat') {
    rejected++;
    post({ type: 'rejected', reason: res.ok ? 'not a beat' : res.reason });
    return;
  }
  if (res.datagram.epoch < data.minEpoch) {
    rejected++;
    post({ type: 'rejected', reason: `stale epoch ${res.datagram.epoch} < ${data.minEpoch}` });
    return;
  }
  beats++;
  act(judge.beat(Date.now()), res.datagram.epoch);
});

/**
 * Asks the primary's kernel with a TCP SYN to a closed port (a RST comes back at once). Resolves true when the host answered (RST or an accept),
 * false on no answer within `timeoutMs` or an unreachable host.
 */
function hostAnswers(timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: data.host, port: data.hostProbePort });
    const done = (answered: boolean): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(answered);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.once('connect', () => done(true));
    sock.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' || err.code === 'ECONNRESET'));
  });
}

let subscribeTimer: NodeJS.Timeout | null = null;
let judgeTimer: NodeJS.Timeout | null = null;
let summaryTimer: NodeJS.Timeout | null = null;

port.on('message', (msg: MonitorControl) => {
  if (msg.type === 'channel-closed') act(judge.channelClosed(msg.deliberate, Date.now()));
  if (msg.type === 'subscribe-now') subscribe();
  if (msg.type === 'stop') {
    stopped = true;
    for (const t of [subscribeTimer, judgeTimer, summaryTimer]) if (t) clearInterval(t);
    socket.close();
    port.close();
  }
});

socket.connect(data.port, data.host, () => {
  const rt = makeCurrentThreadRealtime(data.rtPriority);
  post({ type: 'realtime', ok: rt.ok, detail: rt.detail });
  connected = true;
  // Judging starts now: the time the connect took is no pause of this thread (no beat yet, so no output).
  act(judge.tick(Date.now()));
  subscribe();
  // Subscribe often until the first beat, then renew every second.
  subscribeTimer = setInterval(() => {
    if (judge.lastBeatAt === null || seq % 10 === 0) subscribe();
    else seq++;
  }, 100);
  judgeTimer = setInterval(() => act(judge.tick(Date.now())), judge.judgeEveryMs);
  summaryTimer = setInterval(() => post({ type: 'summary', lastBeatAt: judge.lastBeatAt, beats, rejected }), 250);
  if (judge.hostProbeEnabled) {
    const t0 = performance.now();
    void hostAnswers(HOST_PROBE_CALIBRATION_TIMEOUT_MS).then((answered) => {
      const ms = Math.round((performance.now() - t0) * 10) / 10;
      act(judge.hostProbeCalibrated(answered ? ms : null));
    });
  }
});
