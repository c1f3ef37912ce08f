/** ThrottledLog (mcu/src/core/log-throttle.ts): a flood of occurrences costs one line per interval, and none goes unmentioned. */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import winston from 'winston';
import { ThrottledLog } from '../../mcu/src/core/log-throttle.ts';

function capture(): { log: winston.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { log: winston.createLogger({ level: 'info', format: winston.format.json(), transports: [new winston.transports.Stream({ stream })] }), lines };
}

const flushed = (lines: unknown[], n: number): Promise<void> =>
  new Promise((resolve) => {
    const poll = (): void => (lines.length >= n ? resolve() : void setImmediate(poll));
    poll();
  });

describe('ThrottledLog', () => {
  it('logs the first occurrence at once and sums up the rest once per interval', async () => {
    const { log, lines } = capture();
    const throttled = new ThrottledLog(log, 'warn', 'datagram rejected', 50);
    for (let i = 0; i < 1000; i++) throttled.note({ reason: `r${i}` });
    await flushed(lines, 1);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.message, 'datagram rejected');
    assert.equal(lines[0]!.reason, 'r0');
    await new Promise((r) => setTimeout(r, 80));
    await flushed(lines, 2);
    assert.equal(lines.length, 2);
    assert.match(String(lines[1]!.message), /^datagram rejected: 999 more in the last 50 ms/);
    assert.equal(lines[1]!.more, 999);
    assert.equal(lines[1]!.reason, 'r999');
    assert.equal(lines[1]!.level, 'warn');
    throttled.close();
  });

  it('logs a lone occurrence after a quiet interval at once, and what is counted at close', async () => {
    const { log, lines } = capture();
    const throttled = new ThrottledLog(log, 'info', 'dropped', 20);
    throttled.note({ n: 1 });
    await new Promise((r) => setTimeout(r, 60));
    throttled.note({ n: 2 });
    throttled.note({ n: 3 });
    throttled.close();
    throttled.close();
    throttled.note({ n: 4 });
    await flushed(lines, 3);
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(
      lines.map((l) => [l.message, l.n]),
      [
        ['dropped', 1],
        ['dropped', 2],
        ['dropped: 1 more in the last 20 ms, the latest:', 3],
      ],
    );
  });
});
