import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { afterEach, describe, it } from 'node:test';
import type { Worker } from 'node:worker_threads';
import { HEARTBEAT_RT_PRIORITY, parseThreadStat, RealtimeThreadLimiter, type RealtimeThread } from '../../mcu/src/core/realtime.ts';
import { startTsWorker } from '../../mcu/src/core/ts-worker.ts';

/** A /proc/<pid>/task/<tid>/stat line with the given name, nice (field 19), rt priority (40) and policy (41). */
function statLine(tid: number, name: string, nice: number, rtPriority: number, policy: number): string {
  const fields = Array.from({ length: 50 }, () => '0');
  fields[0] = String(tid);
  fields[1] = `(${name})`;
  fields[2] = 'S';
  fields[18] = String(nice);
  fields[39] = String(rtPriority);
  fields[40] = String(policy);
  return fields.join(' ') + '\n';
}

describe('parseThreadStat', () => {
  it('reads name, nice, real-time priority and policy', () => {
    assert.deepEqual(parseThreadStat(42, statLine(42, 'EncoderQueue', 0, 49, 1)), { tid: 42, name: 'EncoderQueue', policy: 1, priority: 49, nice: 0 });
  });

  it('keeps a name with spaces and parentheses whole', () => {
    assert.equal(parseThreadStat(7, statLine(7, 'a (b) c', -10, 0, 0))?.name, 'a (b) c');
    assert.equal(parseThreadStat(7, statLine(7, 'a (b) c', -10, 0, 0))?.nice, -10);
  });

  it('rejects a line it cannot read', () => {
    assert.equal(parseThreadStat(1, 'garbage'), null);
    assert.equal(parseThreadStat(1, '1 (x) S 1 2'), null);
  });
});

const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.terminate()));
});

/** A worker thread of this process made SCHED_FIFO at `priority`; fails the test if it could not be. */
async function realtimeThread(priority: number): Promise<number> {
  const worker = startTsWorker(new URL('../fixtures/realtime-thread.ts', import.meta.url), { priority });
  workers.push(worker);
  const [result] = (await once(worker, 'message')) as [{ ok: boolean; tid: string; detail: string }];
  assert.ok(result.ok, `could not make a real-time thread: ${result.detail}`);
  return Number(result.tid);
}

/** The thread's scheduling as the kernel reports it now. */
function scheduling(tid: number): RealtimeThread {
  const thread = parseThreadStat(tid, readFileSync(`/proc/self/task/${tid}/stat`, 'utf8'));
  assert.ok(thread, `unreadable stat of thread ${tid}`);
  return thread;
}

const SCHED_OTHER = 0;
const SCHED_FIFO = 1;
const mayRealtime = process.platform === 'linux' && process.getuid?.() === 0;

describe('RealtimeThreadLimiter (this process, Linux)', { skip: !mayRealtime && 'Linux as root only (making a thread real-time needs CAP_SYS_NICE)' }, () => {
  it('demotes the real-time threads below the heartbeat priority, and never a heartbeat-priority one', async () => {
    // As libwebrtc's encoders (FIFO 49) and video decoding (FIFO 98), and a heartbeat thread (99).
    const encoder = await realtimeThread(49);
    const decoder = await realtimeThread(98);
    const heartbeat = await realtimeThread(HEARTBEAT_RT_PRIORITY);
    assert.deepEqual([encoder, decoder, heartbeat].map((tid) => [scheduling(tid).policy, scheduling(tid).priority]), [
      [SCHED_FIFO, 49],
      [SCHED_FIFO, 98],
      [SCHED_FIFO, HEARTBEAT_RT_PRIORITY],
    ]);

    const reported: RealtimeThread[] = [];
    const limiter = new RealtimeThreadLimiter({ onDemoted: (threads) => reported.push(...threads) });
    const demoted = await limiter.scan();
    const ours = demoted.filter((t) => [encoder, decoder, heartbeat].includes(t.tid));
    assert.deepEqual(
      ours.map((t) => [t.tid, t.policy, t.priority]).sort((a, b) => a[0]! - b[0]!),
      [
        [encoder, SCHED_FIFO, 49],
        [decoder, SCHED_FIFO, 98],
      ].sort((a, b) => a[0]! - b[0]!),
      'both media-like threads were found and demoted, the heartbeat one left alone',
    );
    // The kernel agrees: normal scheduling for the two, FIFO 99 still for the heartbeat thread.
    assert.deepEqual([scheduling(encoder).policy, scheduling(encoder).priority], [SCHED_OTHER, 0]);
    assert.deepEqual([scheduling(decoder).policy, scheduling(decoder).priority], [SCHED_OTHER, 0]);
    assert.deepEqual([scheduling(heartbeat).policy, scheduling(heartbeat).priority], [SCHED_FIFO, HEARTBEAT_RT_PRIORITY]);
    for (const t of demoted) assert.ok(t.priority < HEARTBEAT_RT_PRIORITY);
    assert.deepEqual(reported, demoted);
    const stats = limiter.stats();
    assert.equal(stats.demoted, demoted.length);
    assert.equal(stats.failures, 0);
    assert.ok((stats.names[scheduling(encoder).name] ?? 0) >= 1, JSON.stringify(stats.names));

    // Nothing of ours is left to demote.
    const again = await limiter.scan();
    assert.deepEqual(again.filter((t) => [encoder, decoder, heartbeat].includes(t.tid)), []);
    limiter.close();
  });
});
