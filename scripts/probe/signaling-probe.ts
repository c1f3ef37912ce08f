/**
 * The page's signaling as the page sees it across a failover (design notes 6): a numbered
 * request/ack stream on the page's own socket.io connection, the `disconnect` events, and
 * the connection's identity (socket id, engine.io id and transport) before and after.
 * Shared by the browser tests and the chaos benchmark.
 *
 * The request is `mute {kind: 'video', muted: false}`: it re-asserts the state the test
 * pages are in (their video is never muted), so it changes nothing but goes the full way
 * (validation, session state, replication, output commit, ack). Requests are only sent
 * while the socket is connected (socket.io would buffer them and replay them before the
 * page's resume); a refused one (e.g. NOT_JOINED before the resume) counts as failed.
 */
import { eventually, type ParticipantPage } from '../common/browser.ts';

export interface SignalingIdentity {
  socketId: string | null;
  engineId: string | null;
  transport: string | null;
  connected: boolean;
}

export interface SignalingProbeReport {
  sent: number;
  /** Acks with `ok: true`. */
  acked: number;
  /** Acks with an error. */
  failed: number;
  /** Requests never answered. */
  missing: number;
  /** Acks that arrived before an earlier request's ack. */
  outOfOrder: number;
  /** Longest interval between two successful acks, ms: the signaling gap as the page lived it (includes up to one request interval). */
  maxAckGapMs: number;
  /** Longest request -> ack time of a successful request, ms. */
  maxAckLatencyMs: number;
  disconnects: string[];
  before: SignalingIdentity;
  after: SignalingIdentity;
}

/** One row per answered request: [sequence number, sent at, acked at (performance.now), ok]. */
type AckRow = [number, number, number, boolean];

interface PageProbeState {
  timer: number;
  sent: number;
  acks: AckRow[];
  disconnects: string[];
  listener: unknown;
  before: SignalingIdentity;
}

type ProbeWindow = Window & { __signalingProbe?: PageProbeState };

/** Starts the stream (every `intervalMs`) and the disconnect watch; returns the identity now. Replaces a running probe. */
export function startSignalingProbe(page: ParticipantPage, intervalMs = 50): Promise<SignalingIdentity> {
  return page.page.evaluate((interval) => {
    const w = window as ProbeWindow;
    const socket = window.mcuDemo.client!.socket;
    const old = w.__signalingProbe;
    if (old) {
      clearInterval(old.timer);
      socket.off('disconnect', old.listener as () => void);
    }
    const engine = socket.io.engine;
    const before = { socketId: socket.id ?? null, engineId: engine?.id ?? null, transport: engine?.transport?.name ?? null, connected: socket.connected };
    const state: PageProbeState = { timer: 0, sent: 0, acks: [], disconnects: [], listener: null, before };
    socket.on('disconnect', (reason) => void state.disconnects.push(String(reason)));
    state.listener = socket.listeners('disconnect').at(-1);
    state.timer = window.setInterval(() => {
      if (!socket.connected) return;
      const n = ++state.sent;
      const sentAt = performance.now();
      socket.emit('mute', { kind: 'video', muted: false }, (reply) => void state.acks.push([n, sentAt, performance.now(), reply.ok === true]));
    }, interval);
    w.__signalingProbe = state;
    return before;
  }, intervalMs);
}

/** Stops the stream, waits up to `settleMs` for outstanding acks, and reports. */
export async function stopSignalingProbe(page: ParticipantPage, settleMs = 3000): Promise<SignalingProbeReport> {
  await page.page.evaluate(() => clearInterval((window as ProbeWindow).__signalingProbe?.timer));
  const read = (): Promise<{ sent: number; acks: AckRow[]; disconnects: string[]; before: SignalingIdentity; after: SignalingIdentity } | null> =>
    page.page.evaluate(() => {
      const state = (window as ProbeWindow).__signalingProbe;
      if (!state) return null;
      const socket = window.mcuDemo.client!.socket;
      const engine = socket.io.engine;
      const after = { socketId: socket.id ?? null, engineId: engine?.id ?? null, transport: engine?.transport?.name ?? null, connected: socket.connected };
      return { sent: state.sent, acks: state.acks, disconnects: state.disconnects, before: state.before, after };
    });
  const raw = await eventually(read, (r) => r === null || r.acks.length >= r.sent, settleMs, 100);
  if (raw === null) throw new Error(`${page.spec.name}: no signaling probe running (startSignalingProbe first)`);
  await page.page.evaluate(() => {
    const w = window as ProbeWindow;
    if (w.__signalingProbe) window.mcuDemo.client!.socket.off('disconnect', w.__signalingProbe.listener as () => void);
    w.__signalingProbe = undefined;
  });
  return summarizeAcks(raw.sent, raw.acks, raw.disconnects, raw.before, raw.after);
}

function summarizeAcks(sent: number, acks: AckRow[], disconnects: string[], before: SignalingIdentity, after: SignalingIdentity): SignalingProbeReport {
  let outOfOrder = 0;
  let highest = 0;
  let lastOkAt: number | null = null;
  let maxAckGapMs = 0;
  let maxAckLatencyMs = 0;
  for (const [n, sentAt, ackAt, ok] of acks) {
    if (n < highest) outOfOrder++;
    highest = Math.max(highest, n);
    if (!ok) continue;
    if (lastOkAt !== null) maxAckGapMs = Math.max(maxAckGapMs, ackAt - lastOkAt);
    lastOkAt = ackAt;
    maxAckLatencyMs = Math.max(maxAckLatencyMs, ackAt - sentAt);
  }
  const acked = acks.filter((a) => a[3]).length;
  return { sent, acked, failed: acks.length - acked, missing: sent - acks.length, outOfOrder, maxAckGapMs, maxAckLatencyMs, disconnects, before, after };
}

/** Resolves once the running probe has `count` answered requests (a stream in motion), or after timeoutMs. */
export async function waitForProbeAcks(page: ParticipantPage, count: number, timeoutMs = 5000): Promise<number> {
  return eventually(() => page.page.evaluate(() => (window as ProbeWindow).__signalingProbe?.acks.length ?? 0), (n) => n >= count, timeoutMs, 20);
}
