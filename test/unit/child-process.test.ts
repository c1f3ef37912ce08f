import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ManagedProcess, type SpawnOptions } from '../../mcu/src/core/child-process.ts';
import { McuError } from '../../mcu/src/core/errors.ts';

const started: ManagedProcess[] = [];

/** A plain Node child running `script` (no tsx: fast). */
function node(script: string, options: SpawnOptions = {}): ManagedProcess {
  const p = ManagedProcess.spawn(process.execPath, ['-e', script], { label: 'test child', ...options });
  started.push(p);
  return p;
}

after(async () => {
  await Promise.all(started.map((p) => p.kill()));
});

describe('ManagedProcess', () => {
  it('parses stdout lines into events, keeps stderr, and resolves the exit', async () => {
    const p = node(`console.log(JSON.stringify({ event: 'ready', n: 1 })); console.log('plain text'); console.error('oops'); process.exitCode = 3;`);
    assert.deepEqual(await p.waitFor((e) => e.event === 'ready'), { event: 'ready', n: 1 });
    assert.deepEqual(await p.exited, { code: 3, signal: null });
    assert.deepEqual(p.events, [{ event: 'ready', n: 1 }, { line: 'plain text' }]);
    assert.deepEqual(p.stderr, ['oops']);
    assert.equal(p.running, false);
  });

  it('waitFor from a mark only sees later events', async () => {
    const p = node(`const rl = require('node:readline').createInterface({ input: process.stdin }); rl.on('line', (l) => console.log(JSON.stringify({ event: 'echo', l })));`, { stdin: 'pipe' });
    p.writeLine('a');
    await p.waitFor((e) => e.event === 'echo');
    const mark = p.mark();
    p.writeLine('b');
    assert.equal((await p.waitFor((e) => e.event === 'echo', { timeoutMs: 5000, from: mark })).l, 'b');
    // Ends on end of input: close() without a signal.
    assert.deepEqual(await p.close({ signal: null }), { code: 0, signal: null });
  });

  it('keeps the newest events (every one with eventLines: Infinity); marks and select() count the trimmed ones too', async () => {
    const script = `for (let i = 0; i < 10; i++) console.log(JSON.stringify({ event: 'n', i }));`;
    const trimmed = node(script, { eventLines: 2 });
    const all = node(script, { eventLines: Infinity });
    for (const p of [trimmed, all]) await p.waitFor((e) => e.i === 9);
    assert.ok(trimmed.events.length <= 4, `${trimmed.events.length} events kept`);
    assert.equal(trimmed.mark(), 10);
    assert.deepEqual(trimmed.select(() => true, 8), [{ event: 'n', i: 8 }, { event: 'n', i: 9 }]);
    assert.equal(all.events.length, 10);
    assert.deepEqual(all.select((e) => Number(e.i) % 4 === 0, 1), [{ event: 'n', i: 4 }, { event: 'n', i: 8 }]);
    assert.deepEqual(await all.waitForEvent('n', { from: 3 }), { event: 'n', i: 3 });
  });

  it('rejects a wait with PROCESS_EXITED when the process ends first, and PROCESS_TIMEOUT when nothing comes', async () => {
    const gone = node(`console.error('last words'); process.exit(2);`);
    await assert.rejects(gone.waitFor((e) => e.event === 'never'), (err: unknown) => err instanceof McuError && err.code === 'PROCESS_EXITED' && /code 2/.test(err.message) && /last words/.test(err.message));
    const silent = node(`setInterval(() => {}, 1000);`);
    await assert.rejects(silent.waitFor((e) => e.event === 'never', { timeoutMs: 50 }), (err: unknown) => err instanceof McuError && err.code === 'PROCESS_TIMEOUT');
    assert.deepEqual(await silent.kill('SIGTERM'), { code: null, signal: 'SIGTERM' });
  });

  it('close() escalates to SIGKILL after the grace period, and is idempotent', async () => {
    const stubborn = node(`process.on('SIGTERM', () => {}); console.log(JSON.stringify({ event: 'armed' })); setInterval(() => {}, 1000);`);
    await stubborn.waitFor((e) => e.event === 'armed');
    const first = stubborn.close({ graceMs: 100 });
    assert.equal(stubborn.close(), first);
    assert.deepEqual(await first, { code: null, signal: 'SIGKILL' });
    assert.deepEqual(await stubborn.kill(), { code: null, signal: 'SIGKILL' });
  });

  it('refuses a command that cannot start with PROCESS_START_FAILED', () => {
    assert.throws(() => ManagedProcess.spawn('/nonexistent/command', []), (err: unknown) => err instanceof McuError && err.code === 'PROCESS_START_FAILED');
  });
});
