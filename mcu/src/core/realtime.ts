import type { RealtimeConfig } from './config.ts';
import { McuError } from './errors.ts';
import type { Logger } from './logger.ts';
import { confineRealtimeScheduling, type NativeRealtimeReport, type RealtimeConfinement } from '../../../native/src/index.ts';

/**
 * SCHED_FIFO priority of the heartbeat threads (beacon and monitor): the highest. They are the
 * only real-time threads of the process (see confineRealtimeThreads); they work microseconds
 * per beat. They are native threads of the addon (native/addon/heartbeat_*.cc) that make
 * themselves real-time as they start: the allow path, CAP_SYS_NICE raised from the permitted
 * set for that thread alone (the process gave it up for every other thread at start). Without
 * the capability (not root) a heartbeat thread stays at normal priority and says why.
 */
export const HEARTBEAT_RT_PRIORITY = 99;

/**
 * How often the heartbeat threads' owners log the longest gap of the last period (the beacon's
 * between its ticks, the monitor's between the beats it received): a record of the heartbeat's
 * own scheduling that bench/false-takeover.ts reads.
 */
export const HEARTBEAT_GAP_REPORT_MS = 10_000;

/** How a heartbeat thread's attempt to become real-time reads in the logs. */
export function realtimeDetail(report: NativeRealtimeReport): string {
  if (report.ok) return `SCHED_FIFO priority ${report.priority} (thread ${report.tid})`;
  return `${report.step ?? 'sched_setscheduler'}: ${report.errnoName ?? 'UNKNOWN'} (${report.message ?? 'no detail'}): heartbeats run at normal priority`;
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
 * the addon's own call (heartbeat_thread.h). The main thread (mixing, signaling) gets `realtime.mainNice`,
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
