/**
 * Only the heartbeat threads of an MCU are ever real-time: a real MCU process (replication on, so
 * its heartbeat thread beats), real libwebrtc peers joining and leaving in a loop (each join
 * makes libwebrtc start encoder, decoder and pacer threads that ask for SCHED_FIFO 49-98), and
 * every thread of the MCU sampled every few milliseconds throughout. Before the fix those
 * threads were demoted 100-300 ms after they started, which was long enough to starve the
 * heartbeat's helpers. Then a primary and its standby pinned to one CPU (as the lab pins its
 * server hosts) while peers join and leave from the other one: their heartbeat threads, FIFO 99
 * on the same CPU, used to spin ~950 ms in V8's C++-heap sweep when they were JS worker threads
 * (the false takeovers of issue 14; now native threads without an isolate, see README,
 * *Real-time threads* and *Heartbeat threads*).
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { nativeAddonAvailable } from '../../native/src/index.ts';
import { HEARTBEAT_RT_PRIORITY } from '../../mcu/src/core/realtime.ts';
import { freePort } from '../../scripts/common/ports.ts';
import { startMcu, startNode, type ManagedProcess } from '../../scripts/common/processes.ts';
import { isRealtime, readThreads, SCHED_FIFO, startThreadSampler } from '../../scripts/common/thread-scheduling.ts';
import { until } from '../../scripts/common/wait-for.ts';
import { cleanupsAfterEach } from '../helpers/cleanups.ts';

const skip =
  process.platform !== 'linux' || process.getuid?.() !== 0
    ? 'Linux as root only (real-time scheduling needs CAP_SYS_NICE)'
    : !nativeAddonAvailable()
      ? 'the native addon is not built (bash scripts/build-native.sh)'
      : false;

/** libwebrtc's per-connection threads, by the names it gives them: proof the joins made them. */
const MEDIA_THREADS = ['EncoderQueue', 'DecodingQueue', 'IncomingVideoSt', 'AudioEncoder', 'TaskQueuePacedS', 'rtp_send_contro'];

describe('real-time threads of an MCU while participants join and leave', { skip }, () => {
  const cleanups = cleanupsAfterEach();

  it('never shows a real-time thread other than the heartbeat thread, and media threads at nice 0', async (t) => {
    const mcu = await startMcu({ MCU_REPLICATION_SECRET: 'realtime-threads-test-secret', MCU_SPARE_PATHS: '0' });
    cleanups.push(() => mcu.stop());
    const pid = mcu.process.pid!;

    // The heartbeat thread makes itself real-time right after its socket is bound.
    await until('the heartbeat thread is real-time', () => readThreads(pid).some(isRealtime), { timeoutMs: 10_000, intervalMs: 20 });
    const heartbeat = readThreads(pid).find(isRealtime)!;
    assert.deepEqual([heartbeat.policy, heartbeat.priority], [SCHED_FIFO, HEARTBEAT_RT_PRIORITY]);
    const sampler = await startThreadSampler(pid, [heartbeat.tid], 5);
    cleanups.push(() => sampler.stop());

    const peers = startNode('scripts/clients/join-leave-peers.ts', {}, [mcu.url, '--peers', '3', '--cycles', '4', '--stay-ms', '1500', '--seconds', '60']);
    cleanups.push(() => peers.close());
    const done = await peers.waitFor((e) => e.event === 'done', { timeoutMs: 90_000 });
    const report = await sampler.stop();
    const threads = readThreads(pid);
    t.diagnostic(`${report.samples} samples of ${report.threadsSeen} threads, ${report.slowIntervals} intervals over 50 ms, longest ${report.longestIntervalMs} ms; ${JSON.stringify(done)}`);

    assert.equal(done.failures, 0, `every join connected: ${JSON.stringify(done)}`);
    assert.ok(Number(done.joins) >= 12, `joins: ${JSON.stringify(done)}`);
    const mediaSeen = MEDIA_THREADS.filter((name) => (report.names[name] ?? 0) > 0);
    assert.ok(mediaSeen.length >= 3, `the joins started libwebrtc's media threads (seen: ${JSON.stringify(report.names)})`);
    // libwebrtc's threads used to stay real-time 100-330 ms each (strace), ~40 of them per 12 joins:
    // with nearly every interval under 50 ms none could escape the sampler.
    assert.ok(
      report.samples > 500 && report.slowIntervals <= report.samples / 50,
      `sampled often enough: ${report.samples} samples, ${report.slowIntervals} intervals over 50 ms, longest ${report.longestIntervalMs} ms`,
    );
    assert.deepEqual(report.unexpectedRealtime, [], 'no thread but the heartbeat thread was ever real-time');
    // The main thread mixes at nice -20 (realtime.mainNice); the threads it created did not inherit that.
    const main = threads.find((t) => t.tid === pid);
    assert.equal(main?.nice, -20);
    assert.deepEqual(
      threads.filter((t) => t.tid !== pid && t.nice !== 0 && !isRealtime(t)),
      [],
      'every other normal thread at nice 0',
    );
    const stillHeartbeat = threads.find((t) => t.tid === heartbeat.tid);
    assert.deepEqual([stillHeartbeat?.policy, stillHeartbeat?.priority], [SCHED_FIFO, HEARTBEAT_RT_PRIORITY], 'the heartbeat thread is still real-time');
  });
});

const pin = promisify(execFile);
/** Pins every thread of `pid`, and so those it creates later, to `cpu`. */
async function pinTo(pid: number, cpu: string): Promise<void> {
  await pin('taskset', ['-a', '-p', '-c', cpu, String(pid)]);
}

describe('heartbeats of a pair sharing one CPU while participants join and leave', { skip: skip || (availableParallelism() < 2 && 'needs 2 CPUs') }, () => {
  const cleanups = cleanupsAfterEach();

  it('never go silent for a second: no death verdict, no heartbeat-thread pause of 500 ms', async () => {
    const secret = 'realtime-pair-test-secret';
    const port = await freePort();
    const replicationPort = await freePort();
    const common = { MCU_REPLICATION_SECRET: secret, MCU_SPARE_PATHS: '0', HOST: '127.0.0.1', PORT: String(port), MCU_REPLICATION_PORT: String(replicationPort), LOG_LEVEL: 'info' };
    const primary = startNode('mcu/src/main.ts', common);
    cleanups.push(() => primary.close());
    await pinTo(primary.pid, '0');
    await primary.waitFor((e) => e.event === 'listening', { timeoutMs: 60_000 });
    const standby = startNode('standby/src/main.ts', { ...common, STANDBY_STATUS_PORT: '0' });
    cleanups.push(() => standby.close());
    await pinTo(standby.pid, '0');
    const pauses: string[] = [];
    const watch = (proc: ManagedProcess, who: string): void => {
      proc.on('stderr', (line) => {
        const ms = /not scheduled for (\d+) ms|late heartbeat after (\d+) ms|heartbeats paused (\d+) ms/.exec(line);
        if (ms && Number(ms[1] ?? ms[2] ?? ms[3]) >= 500) pauses.push(`${who}: ${line.slice(0, 200)}`);
        if (line.includes('primary confirmed dead')) pauses.push(`${who}: ${line.slice(0, 200)}`);
      });
    };
    watch(primary, 'primary');
    watch(standby, 'standby');
    await standby.waitFor((e) => e.event === 'standby-ready', { timeoutMs: 60_000 });

    // Normal-priority work on that CPU, as other processes of a loaded host (what made a worker
    // heartbeat thread spin: the V8 helper thread it waited for was preempted mid-task). Bounded.
    for (let i = 0; i < 2; i++) {
      // Its own process group: SIGKILL to `timeout` alone would leave its `sh` spinning forever.
      const busy = spawn('taskset', ['-c', '0', 'timeout', '60', 'sh', '-c', 'while :; do :; done'], { stdio: 'ignore', detached: true });
      cleanups.push(() => {
        try {
          if (busy.pid !== undefined) process.kill(-busy.pid, 'SIGKILL');
        } catch {
          // gone already
        }
      });
    }
    const peers = startNode('scripts/clients/join-leave-peers.ts', {}, [`http://127.0.0.1:${port}`, '--peers', '6', '--cycles', '8', '--stay-ms', '2500', '--seconds', '30']);
    cleanups.push(() => peers.close());
    await pinTo(peers.pid, '1');
    // On a very loaded machine the peers may not finish their rounds: the silences are checked anyway.
    const done = await peers.waitFor((e) => e.event === 'done', { timeoutMs: 120_000 }).catch((err: Error) => ({ event: 'done', joins: 0, error: err.message }));
    // The silences first: a false takeover is also why joins then fail.
    assert.deepEqual(pauses, [], 'no heartbeat silence of 500 ms or more, no verdict');
    assert.ok(Number(done.joins) >= 6, `participants joined: ${JSON.stringify(done)}`);
  });
});
