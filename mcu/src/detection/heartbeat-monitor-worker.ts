/**
 * The standby's heartbeat thread (real-time): subscribes to the primary's beats over UDP
 * and judges them on its own clock, whatever the main thread is doing. Death verdicts:
 * - `heartbeat-timeout`: no beat for interval x missed beats (host crash, frozen process);
 * - `port-unreachable`: the primary's host answered a probe with ICMP port unreachable
 *   (its process is gone), which arrives within a millisecond of asking;
 * - `host-unreachable`: beats missed and the primary's host does not answer a TCP SYN to a
 *   closed port (`hostProbePort`) within `hostProbeTimeoutMs` (its kernel answers one at once,
 *   with a RST, whatever its processes are doing: silence there is a host or link down). A host
 *   that answers keeps the full confirm window: its beats may only be late.
 */
import dgram from 'node:dgram';
import { connect, isIPv6 } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { makeCurrentThreadRealtime } from '../core/realtime.ts';
import { decodeHeartbeat, encodeHeartbeat } from '../wire/heartbeat-wire.ts';

export interface MonitorWorkerData {
  host: string;
  port: number;
  secret: string;
  intervalMs: number;
  missedBeats: number;
  minEpoch: number;
  rtPriority: number;
  /** Extra wait after the missed beats before the verdict (a late beat clears the suspicion). */
  confirmMs: number;
  /**
   * How long the primary's host may take to answer a TCP SYN (to the heartbeat port number)
   * once beats are missed; no answer in time is a verdict. 0 turns the probe off. It is only
   * used once the host answered one at start (a firewall that drops SYNs would make every late
   * beat a verdict).
   */
  hostProbeTimeoutMs: number;
  /** A TCP port of the primary's host that nothing listens on (an answer either way means the host is up). */
  hostProbePort: number;
}

export type MonitorVerdictReason = 'heartbeat-timeout' | 'port-unreachable' | 'host-unreachable';

export type MonitorWorkerMessage =
  | { type: 'realtime'; ok: boolean; detail: string }
  | { type: 'first-beat'; at: number; epoch: number }
  | { type: 'summary'; lastBeatAt: number | null; beats: number; rejected: number }
  | { type: 'dead'; reason: MonitorVerdictReason; lastBeatAt: number | null; detectedAt: number }
  | { type: 'rejected'; reason: string }
  /** A beat after a silence longer than the missed-beats window (a suspicion the confirm window cleared): a near miss. */
  | { type: 'late-beat'; silenceMs: number; at: number }
  /** This thread was not scheduled for `ms` (its judge ran late): no verdict from that silence. */
  | { type: 'self-pause'; ms: number; at: number }
  /** The start-up check of the host probe: whether the primary's host answers a SYN, and how fast. */
  | { type: 'host-probe'; usable: boolean; ms: number | null; detail: string };

export type MonitorControl = { type: 'probe' } | { type: 'stop' };

const data = workerData as MonitorWorkerData;
const port = parentPort!;
const post = (msg: MonitorWorkerMessage): void => port.postMessage(msg);
const timeoutMs = data.intervalMs * data.missedBeats;
let lastBeatAt: number | null = null;
let beats = 0;
let rejected = 0;
let verdict = false;
let seq = 0;
/** Set once the main thread asked (the replication stream died): a refusal now is a verdict even before any beat. */
let probing = false;

const socket = dgram.createSocket(isIPv6(data.host) ? 'udp6' : 'udp4');
const subscribe = (): void => {
  if (!verdict) socket.send(encodeHeartbeat({ kind: 'subscribe', epoch: data.minEpoch, seq: seq++, sentAt: Date.now() }, data.secret));
};
const die = (reason: MonitorVerdictReason): void => {
  if (verdict) return;
  verdict = true;
  post({ type: 'dead', reason, lastBeatAt, detectedAt: Date.now() });
};

socket.on('error', (err: NodeJS.ErrnoException) => {
  // On a connected UDP socket an ICMP port unreachable comes back as ECONNREFUSED: the
  // primary's host is up but nothing listens on its heartbeat port any more.
  if (err.code === 'ECONNREFUSED' && (lastBeatAt !== null || probing)) die('port-unreachable');
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
  const now = Date.now();
  if (lastBeatAt === null) post({ type: 'first-beat', at: now, epoch: res.datagram.epoch });
  else if (!verdict && now - lastBeatAt > timeoutMs) post({ type: 'late-beat', silenceMs: now - lastBeatAt, at: now });
  lastBeatAt = now;
  beats++;
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

/** Set once the host answered the start-up probe: only then does silence there count. */
let hostProbeUsable = false;
let hostProbeFor: number | null = null;

let subscribeTimer: NodeJS.Timeout | null = null;
let judgeTimer: NodeJS.Timeout | null = null;
let summaryTimer: NodeJS.Timeout | null = null;

port.on('message', (msg: MonitorControl) => {
  if (msg.type === 'probe') {
    probing = true;
    subscribe();
  }
  if (msg.type === 'stop') {
    verdict = true;
    for (const t of [subscribeTimer, judgeTimer, summaryTimer]) if (t) clearInterval(t);
    socket.close();
    port.close();
  }
});

socket.connect(data.port, data.host, () => {
  void makeCurrentThreadRealtime(data.rtPriority).then((r) => post({ type: 'realtime', ok: r.ok, detail: r.detail }));
  subscribe();
  // Subscribe often until the first beat, then renew every second.
  subscribeTimer = setInterval(() => {
    if (lastBeatAt === null || seq % 10 === 0) subscribe();
    else seq++;
  }, 100);
  let probedFor: number | null = null;
  const judgeEveryMs = Math.max(1, Math.floor(data.intervalMs / 2));
  let lastJudgedAt = Date.now();
  judgeTimer = setInterval(() => {
    const now = Date.now();
    const selfPausedMs = now - lastJudgedAt;
    lastJudgedAt = now;
    if (lastBeatAt === null) return;
    // This thread itself did not run for a while: the beats sent meanwhile wait unread in the
    // socket (timers run before the poll for I/O), so the silence says nothing yet. Judge at
    // the next tick, once they are read. At a standby's start such pauses of 100-250 ms made
    // verdicts against a live primary.
    if (selfPausedMs > Math.max(3 * judgeEveryMs, 15)) {
      post({ type: 'self-pause', ms: selfPausedMs, at: now });
      return;
    }
    const silentMs = now - lastBeatAt;
    // Missed beats are a suspicion; the verdict waits one more window for a beat that was
    // sent but delayed on a loaded host (packet delivery runs at normal priority), while a
    // probe answered by "port unreachable" ends it at once.
    if (silentMs > timeoutMs + data.confirmMs) die('heartbeat-timeout');
    else if (silentMs > timeoutMs && probedFor !== -lastBeatAt) {
      probedFor = -lastBeatAt;
      subscribe();
    }
    // Beats missed: is the host itself still there? Its kernel answers within a millisecond.
    if (silentMs > timeoutMs && hostProbeUsable && hostProbeFor !== lastBeatAt) {
      const silentSince = lastBeatAt;
      hostProbeFor = silentSince;
      void hostAnswers(data.hostProbeTimeoutMs).then((answered) => {
        if (!answered && lastBeatAt === silentSince) die('host-unreachable');
      });
    }
    // A beat is late: ask at once. A dead process's host answers with port unreachable
    // within a millisecond, long before the heartbeat timeout.
    else if (silentMs > data.intervalMs * 1.5 && probedFor !== lastBeatAt) {
      probedFor = lastBeatAt;
      subscribe();
    }
  }, judgeEveryMs);
  summaryTimer = setInterval(() => post({ type: 'summary', lastBeatAt, beats, rejected }), 250);
  if (data.hostProbeTimeoutMs > 0) {
    const t0 = performance.now();
    void hostAnswers(1000).then((answered) => {
      const ms = Math.round((performance.now() - t0) * 10) / 10;
      // An answer slower than the probe's own timeout would turn late beats into verdicts.
      hostProbeUsable = answered && ms < data.hostProbeTimeoutMs / 2;
      post({
        type: 'host-probe',
        usable: hostProbeUsable,
        ms: answered ? ms : null,
        detail: answered ? `the primary's host answered a SYN in ${ms} ms` : "the primary's host did not answer a SYN within 1 s (filtered?): host crashes wait for the confirm window",
      });
    });
  }
});
