/**
 * Forged heartbeat datagrams are ignored, counted and logged sparingly: a flood of them at a
 * primary's beacon (a real primary process) costs a log line per second, not one per datagram
 * (found by the heartbeat fuzzer: 10,000 datagrams were 10,000 warnings), and the standby's
 * monitor (a real process) hears the beats throughout and judges nothing.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { describe, it } from 'node:test';
import { FixtureProcess } from '../../scripts/common/child-process.ts';
import { cleanupsAfterEach } from '../helpers/cleanups.ts';

const SECRET = 'heartbeat-flood-secret-71c0e4';
const cleanups = cleanupsAfterEach();

/** The first IPC message of `fixture` passing `predicate` from now on. */
function nextMessage(fixture: FixtureProcess, predicate: (m: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      fixture.child.off('message', on);
      reject(new Error(`no such message from ${fixture.label} within ${timeoutMs} ms\n${fixture.stderrTail}`));
    }, timeoutMs);
    const on = (m: unknown): void => {
      if (typeof m !== 'object' || m === null || !predicate(m as Record<string, unknown>)) return;
      clearTimeout(timer);
      fixture.child.off('message', on);
      resolve(m as Record<string, unknown>);
    };
    fixture.child.on('message', on);
  });
}

describe('a flood of forged heartbeat datagrams', () => {
  it('is counted and logged about once a second by the beacon, and the monitor judges nothing', async () => {
    const primary = new FixtureProcess('scripts/fixtures/replication-primary.ts', { REPL_SECRET: SECRET, REPL_BEACON: '1', LOG_LEVEL: 'warn' });
    cleanups.push(() => primary.close());
    const port = Number((await primary.next('listening', 20_000)).port);
    const monitor = new FixtureProcess('scripts/fixtures/heartbeat-monitor.ts', { HB_PORT: String(port), HB_SECRET: SECRET, LOG_LEVEL: 'warn' });
    cleanups.push(() => monitor.close());
    await monitor.next('first-beat', 20_000);

    const socket = dgram.createSocket('udp4');
    cleanups.push(() => socket.close());
    // In bursts the socket's receive buffer holds (a datagram dropped by the kernel is never counted).
    const BURSTS = 20;
    const BURST = 100;
    const started = Date.now();
    for (let b = 1; b <= BURSTS; b++) {
      const counted = nextMessage(primary, (m) => m.type === 'beacon-rejected' && m.total === b * BURST);
      for (let i = 0; i < BURST; i++) socket.send(Buffer.from(`forged ${b}.${i}`), port, '127.0.0.1');
      await counted;
    }
    const floodSeconds = Math.ceil((Date.now() - started) / 1000);
    // The summary of the flood comes once its second is over.
    const summaryAt = primary.stderr.length;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no summary line\n${primary.stderrTail}`)), 5000);
      const on = (line: string): void => {
        if (!/heartbeat datagram rejected: \d+ more/.test(line)) return;
        clearTimeout(timer);
        primary.off('stderr', on);
        resolve();
      };
      if (primary.stderr.slice(0, summaryAt).some((l) => /heartbeat datagram rejected: \d+ more/.test(l))) resolve();
      else primary.on('stderr', on);
    });
    const lines = primary.stderr.filter((l) => l.includes('heartbeat datagram rejected'));
    // The first datagram's line, then one summary per second of flood (and the last one's).
    assert.ok(lines.length >= 2 && lines.length <= floodSeconds + 2, `${lines.length} log lines for ${BURSTS * BURST} datagrams in ${floodSeconds} s:\n${lines.join('\n')}`);

    monitor.send({ cmd: 'stats' });
    const stats = await monitor.next('stats');
    assert.equal(stats.verdict, null);
    assert.ok(typeof stats.lastHeartbeatAt === 'number' && Number(stats.now) - stats.lastHeartbeatAt < 1000, JSON.stringify(stats));
  });
});
