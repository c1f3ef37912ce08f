import { execFile } from 'node:child_process';
import { readlinkSync } from 'node:fs';

/**
 * SCHED_FIFO priority of the heartbeat threads (beacon and monitor): the highest. libwebrtc
 * (@roamhq/wrtc) runs its own threads at FIFO 49 (encoders, pacer) and 98 (video decoding) when
 * the process may: at FIFO 10 a heartbeat thread waited behind a video decode on this 2-core
 * machine, and the standby took over a live primary. The heartbeat threads work microseconds
 * per beat, so at 99 they cost the media nothing.
 */
export const HEARTBEAT_RT_PRIORITY = 99;

/**
 * Gives the calling thread a real-time (SCHED_FIFO) priority, so a loaded machine cannot
 * delay it: the heartbeat threads use it (a late heartbeat is a false takeover). Needs
 * root or CAP_SYS_NICE; without it the thread stays at normal priority and says why.
 */
export function makeCurrentThreadRealtime(priority: number): Promise<{ ok: boolean; tid: string; detail: string }> {
  let tid = '';
  try {
    // "/proc/thread-self" -> "<pid>/task/<tid>"
    tid = readlinkSync('/proc/thread-self').split('/').pop() ?? '';
  } catch (err) {
    return Promise.resolve({ ok: false, tid, detail: `cannot find the thread id: ${(err as Error).message}` });
  }
  return new Promise((resolve) => {
    execFile('chrt', ['-f', '-p', String(priority), tid], { timeout: 2000 }, (err, _out, stderr) => {
      if (err) resolve({ ok: false, tid, detail: `chrt failed (${stderr.trim() || err.message}): heartbeats run at normal priority` });
      else resolve({ ok: true, tid, detail: `SCHED_FIFO priority ${priority}` });
    });
  });
}
