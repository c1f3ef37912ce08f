/**
 * The MCU as the mixing benchmark runs it: the real mcu/src/main.ts (same config, same signaling,
 * same mixer), plus a probe that prints every room mixer's counters and this process's
 * event-loop delay and utilisation, and the main-thread time spent in the wrtc media sources, as one
 * JSON line on stdout each time the process receives SIGUSR2.
 *
 * Why a probe: /metrics does not expose skipped audio ticks, skipped composite frames or
 * jitter-buffer underruns (yet); once it does, those can come from there. The main-thread
 * figures (event-loop utilisation, time in the sources) are diagnostics for the benchmark only:
 * they explain where a room stops being real time.
 */
import wrtc from '@roamhq/wrtc';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { MixerStats, RoomMixer as RoomMixerClass } from '../../mcu/src/media/room-mixer.ts';

/** One probe report, as the benchmark parses it. */
export interface MixerProbeReport {
  event: 'mixer-stats';
  seq: number;
  /** Mixers that have members now (a closed room's counters stop mattering). */
  mixers: MixerStats[];
  /** Event-loop delay since the previous report, ms. */
  loopDelay: { p50: number; p99: number; max: number };
  /** Share of the time the main thread was busy since the previous report (0..1). */
  loopUtilization: number;
  /**
   * Main-thread time spent handing media to libwebrtc, cumulative: RTCVideoSource.onFrame (the
   * composite, delivered to every peer connection's encoder) and RTCAudioSource.onData (each N-1 mix).
   */
  native: { videoOnFrameMs: number; videoOnFrameCalls: number; audioOnDataMs: number; audioOnDataCalls: number };
}

// The sources' methods are read-only on the native prototypes: time them in subclasses, installed
// before mcu/src/media/wrtc.ts reads the classes (hence the dynamic imports below).
const native = { videoOnFrameMs: 0, videoOnFrameCalls: 0, audioOnDataMs: 0, audioOnDataCalls: 0 };
const { RTCVideoSource, RTCAudioSource } = wrtc.nonstandard;
class TimedVideoSource extends RTCVideoSource {
  override onFrame(frame: Parameters<InstanceType<typeof RTCVideoSource>['onFrame']>[0]): void {
    const t0 = performance.now();
    try {
      super.onFrame(frame);
    } finally {
      native.videoOnFrameMs += performance.now() - t0;
      native.videoOnFrameCalls++;
    }
  }
}
class TimedAudioSource extends RTCAudioSource {
  override onData(data: Parameters<InstanceType<typeof RTCAudioSource>['onData']>[0]): void {
    const t0 = performance.now();
    try {
      super.onData(data);
    } finally {
      native.audioOnDataMs += performance.now() - t0;
      native.audioOnDataCalls++;
    }
  }
}
Object.assign(wrtc.nonstandard, { RTCVideoSource: TimedVideoSource, RTCAudioSource: TimedAudioSource });

const { RoomMixer } = await import('../../mcu/src/media/room-mixer.ts');
const seen = new WeakSet<RoomMixerClass>();
const mixers: Array<WeakRef<RoomMixerClass>> = [];
const addMember = RoomMixer.prototype.addMember;
RoomMixer.prototype.addMember = function (this: RoomMixerClass, id: string) {
  if (!seen.has(this)) {
    seen.add(this);
    mixers.push(new WeakRef(this));
  }
  return addMember.call(this, id);
};

const loop = monitorEventLoopDelay({ resolution: 5 });
loop.enable();
let utilization = performance.eventLoopUtilization();
let seq = 0;

process.on('SIGUSR2', () => {
  const live = mixers.map((ref) => ref.deref()).filter((m): m is RoomMixerClass => m !== undefined && m.members.length > 0);
  const report: MixerProbeReport = {
    event: 'mixer-stats',
    seq: ++seq,
    mixers: live.map((m) => m.stats()),
    loopDelay: { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
    loopUtilization: performance.eventLoopUtilization(utilization).utilization,
    native: { ...native },
  };
  loop.reset();
  utilization = performance.eventLoopUtilization();
  process.stdout.write(JSON.stringify(report) + '\n');
});

// The benchmark stops this process on every path it controls; if the benchmark itself is killed,
// this process is re-parented: then end too, instead of mixing for nobody.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.kill(process.pid, 'SIGTERM');
}, 1000).unref();

await import('../../mcu/src/main.ts');
