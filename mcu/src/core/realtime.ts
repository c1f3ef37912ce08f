import { setFlagsFromString } from 'node:v8';
import type { RealtimeConfig } from './config.ts';
import { McuError } from './errors.ts';
import type { Logger } from './logger.ts';
import { confineRealtimeScheduling, makeCurrentThreadRealtime as nativeMakeCurrentThreadRealtime, type RealtimeConfinement } from '../../../native/src/index.ts';

/**
 * SCHED_FIFO priority of the heartbeat threads (beacon and monitor): the highest. They are the
 * only real-time threads of the process (see confineRealtimeThreads); they work microseconds
 * per beat.
 */
export const HEARTBEAT_RT_PRIORITY = 99;

/**
 * The allow path: gives the calling thread (a heartbeat thread) SCHED_FIFO `priority`, so a
 * loaded machine cannot delay it (a late heartbeat is a false takeover). Through the native
 * addon, which raises CAP_SYS_NICE for this thread alone (the process gave it up for every other
 * thread at start). Without the capability (not root) or the addon, the thread stays at normal
 * priority and says why.
 */
export function makeCurrentThreadRealtime(priority: number): { ok: boolean; detail: string } {
  try {
    const tid = nativeMakeCurrentThreadRealtime(priority);
    return { ok: true, detail: `SCHED_FIFO priority ${priority} (thread ${tid})` };
  } catch (err) {
    return { ok: false, detail: `${(err as Error).message}: heartbeats run at normal priority` };
  }
}

let idleGcOff = false;

/**
 * Call before starting a heartbeat thread (a worker thread at SCHED_FIFO 99). V8's memory
 * reducer runs major GCs in an isolate that looks idle, which a heartbeat thread always does;
 * each ends with an incremental sweep of the C++ heap (cppgc) that reposts itself at once while
 * its concurrent part, on one of V8's worker threads at normal priority, is unfinished. At FIFO
 * 99 that repost loop never blocks, so the worker thread it waits for gets no CPU on that core
 * until the kernel's real-time throttling gives normal threads their 50 ms, 950 ms later: the
 * ~1 s pauses of issue 14 (perf: README, *Real-time threads*). The flag is process-wide: the
 * main isolate then shrinks its heap after idle spells only when it allocates again.
 */
export function disableIdleGarbageCollection(): void {
  if (idleGcOff) return;
  setFlagsFromString('--no-memory-reducer');
  idleGcOff = true;
}

let confined: RealtimeConfinement | null = null;

/**
 * Call first thing in a process that runs libwebrtc (MCU, standby), on the main thread, before
 * any peer connection exists. libwebrtc makes each of its threads SCHED_FIFO 49-98 itself, right
 * after creating it (rtc::PlatformThread, at every join); on a small machine they then keep every
 * normal thread off the CPU, including whichever would demote them. So they are never allowed
 * to: the main thread gives up CAP_SYS_NICE for the threads it creates from now on and
 * RLIMIT_RTPRIO goes to 0 (the kernel refuses them real-time scheduling; libwebrtc carries on at
 * normal priority), and only the heartbeat threads become real-time, through
 * makeCurrentThreadRealtime(). The main thread (mixing, signaling) gets `realtime.mainNice`,
 * and the threads it creates start at nice 0. `realtime.mediaRealtime` lets libwebrtc's threads
 * be real-time again. Idempotent. See native/addon/thread_sched.cc and README, *Real-time threads*.
 */
export function confineRealtimeThreads(log: Logger, config: RealtimeConfig): RealtimeConfinement | null {
  if (confined) return confined;
  if (process.platform !== 'linux') return null;
  try {
    confined = confineRealtimeScheduling({ mainNice: config.mainNice, keepMediaRealtime: config.mediaRealtime });
  } catch (err) {
    const detail = err instanceof McuError ? `${err.code}: ${err.message}` : String(err);
    log.warn('could not confine real-time scheduling: libwebrtc threads may run at SCHED_FIFO and starve the heartbeats and the mixing under load', {
      detail,
      fix: 'run as root (or with CAP_SYS_NICE) and build the native addon: bash scripts/build-native.sh',
    });
    return null;
  }
  if (config.mediaRealtime) log.warn('libwebrtc threads may make themselves real-time (realtime.mediaRealtime): heartbeats may be starved under load');
  else if (!confined.hadCapability) log.info('no CAP_SYS_NICE: no thread of this process can be real-time (the heartbeat threads neither)', { ...confined });
  else log.info('real-time scheduling confined to the heartbeat threads', { ...confined });
  return confined;
}
