/**
 * Continues engine.io's server-side heartbeat (protocol v4: the server pings, the client
 * pongs) from where a record left it, on a fresh engine.io socket. Without this a move
 * late in the ping cycle delays the next ping by up to a whole interval and the client
 * gives up with "ping timeout" (it allows pingInterval + pingTimeout between pings).
 *
 * engine.io keeps two timers: `pingIntervalTimer` (sends the next ping; refreshed on each
 * pong) and `pingTimeoutTimer` (closes unless a pong comes; refreshed once per ping when
 * other packets arrive). Both are re-created here with the remaining time; their
 * `refresh()` is overridden so that the next refresh falls back to engine.io's own
 * full-length timers, i.e. exactly the stock behaviour from the next cycle on.
 */
import type { HeartbeatTimeline } from './connection-tap.ts';
import type { EngineSocketInternals } from './internals.ts';
import type { RecordedEngine } from './session-record.ts';

function clamp(ms: number, max: number): number {
  return Math.min(max, Math.max(0, ms));
}

function overrideRefresh(timer: NodeJS.Timeout, refresh: () => void): void {
  (timer as unknown as { refresh: () => unknown }).refresh = () => {
    refresh();
    return timer;
  };
}

/**
 * Re-arms `es`'s heartbeat from the recorded state, `recordedAt` being when the record was
 * taken (epoch ms) so the time the move took counts. Returns the timeline on this process's
 * monotonic clock, for the recorder.
 */
export function rearmHeartbeat(es: EngineSocketInternals, engine: RecordedEngine, recordedAt: number, now = Date.now()): HeartbeatTimeline {
  const hb = engine.heartbeat;
  const interval = engine.pingIntervalMs;
  const timeout = engine.pingTimeoutMs;
  const drift = Math.max(0, now - recordedAt);
  const perfNow = performance.now();
  clearTimeout(es.pingIntervalTimer ?? undefined);
  clearTimeout(es.pingTimeoutTimer ?? undefined);
  es.pingTimeoutTimer = null;
  const lastPingAt = hb.sinceLastPingMs === null ? null : perfNow - (hb.sinceLastPingMs + drift);

  if (!hb.awaitingPong) {
    const elapsed = hb.sincePingTimerArmedMs + drift;
    // What engine.io's schedulePing() timer does when it fires.
    const ping = setTimeout(() => {
      es.hasRefreshedPingTimeout = false;
      es.sendPacket('ping');
      es.resetPingTimeout();
    }, clamp(interval - elapsed, interval));
    overrideRefresh(ping, () => {
      clearTimeout(ping);
      es.schedulePing();
    });
    es.pingIntervalTimer = ping;
    return { pingTimerArmedAt: perfNow - clamp(elapsed, interval), lastPingAt, pongDeadlineArmedAt: null };
  }

  // A ping is out: the interval timer has fired already and only a pong re-arms it.
  const fired = setTimeout(() => {}, 0);
  clearTimeout(fired);
  overrideRefresh(fired, () => es.schedulePing());
  es.pingIntervalTimer = fired;
  const deadlineElapsed = (hb.sincePongDeadlineArmedMs ?? 0) + drift;
  // What engine.io's resetPingTimeout() timer does when it fires.
  const deadline = setTimeout(() => {
    if (es.readyState === 'closed') return;
    es.onClose('ping timeout');
  }, clamp(timeout - deadlineElapsed, timeout));
  overrideRefresh(deadline, () => es.resetPingTimeout());
  es.pingTimeoutTimer = deadline;
  es.hasRefreshedPingTimeout = hb.pongDeadlineRefreshed;
  return { pingTimerArmedAt: perfNow - interval, lastPingAt: lastPingAt ?? perfNow - deadlineElapsed, pongDeadlineArmedAt: perfNow - deadlineElapsed };
}
