/** Loads the compiled addon once, lazily, with a named error when it is missing. */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { NativeAddonUnavailableError, translateNativeError } from './errors.ts';
import type {
  NativeBeaconEvent,
  NativeBeaconHandle,
  NativeBeaconOptions,
  NativeDetectorSettings,
  NativeFailureDetectorHandle,
  NativeHeartbeatDatagram,
  NativeHeartbeatDecodeResult,
  NativeMonitorEvent,
  NativeMonitorHandle,
  NativeMonitorOptions,
} from './heartbeat.ts';

/** A raw frame as read from the AF_PACKET socket. */
export interface RawFrame {
  /** Kernel receive time, nanoseconds since the Unix epoch (SO_TIMESTAMPNS). */
  tsNs: bigint;
  /** sll_pkttype: 0 host, 1 broadcast, 2 multicast, 3 other host, 4 outgoing. */
  pktType: number;
  frame: Buffer;
  /** Length on the wire; larger than frame.length when the frame was truncated. */
  length: number;
}

export interface NativeCaptureOptions {
  promiscuous: boolean;
  includeOutgoing: boolean;
  receiveBufferBytes: number;
}

export interface NativeCaptureHandle {
  close(): void;
  drain(): RawFrame[];
  stats(): { packets: number; drops: number; truncated: number };
  ref(): void;
  unref(): void;
}

/** What confineRealtimeScheduling() did to this process (see native/addon/thread_sched.cc). */
export interface RealtimeConfinement {
  /** The thread that called it (the main thread). */
  tid: number;
  mainNice: number;
  /** Whether the process holds CAP_SYS_NICE (permitted): without it no thread can be made real-time. */
  hadCapability: boolean;
  /** Whether threads created from now on are refused real-time scheduling. */
  capabilityDropped: boolean;
  /** RLIMIT_RTPRIO's soft limit now. */
  rtprioLimit: number;
}

/** The addon's raw exports; native/src/index.ts wraps them with types and named errors. */
export interface NativeAddon {
  readSequenceNumbers(fd: number): { sendSeq: number; recvSeq: number; inq: number; outq: number };
  fillReceiveQueue(fd: number, bytes: Buffer, startSeq: number): number;
  readRepairWindow(fd: number): { sndWl1: number; sndWnd: number; maxWindow: number; rcvWnd: number; rcvWup: number };
  tcpInfo(fd: number): Record<string, number | boolean | string>;
  setMark(fd: number, mark: number): void;
  getMark(fd: number): number;
  setRepair(fd: number, mode: number): void;
  repairConnection(state: object): number;
  closeFd(fd: number): void;
  confineRealtimeScheduling(options: { mainNice: number; keepMediaRealtime: boolean }): RealtimeConfinement;
  NativeHeartbeatBeacon: new (options: NativeBeaconOptions, onEvents: (events: NativeBeaconEvent[]) => void) => NativeBeaconHandle;
  NativeHeartbeatMonitor: new (options: NativeMonitorOptions, onEvents: (events: NativeMonitorEvent[]) => void) => NativeMonitorHandle;
  NativeFailureDetector: new (settings: NativeDetectorSettings, startedAt: number) => NativeFailureDetectorHandle;
  encodeHeartbeat(datagram: NativeHeartbeatDatagram, secret: string | Buffer): Buffer;
  decodeHeartbeat(bytes: Buffer, secret: string | Buffer): NativeHeartbeatDecodeResult;
  createLeasePipe(): { readFd: number; writeFd: number };
  NativePacketCapture: new (
    ifname: string,
    port: number,
    options: NativeCaptureOptions,
    onBatch: (err: Error | null, frames: RawFrame[] | null) => void,
  ) => NativeCaptureHandle;
}

/** Where node-gyp puts the addon. */
export const ADDON_PATH = fileURLToPath(new URL('../build/Release/tcp_takeover.node', import.meta.url));

let cached: NativeAddon | undefined;
let loadError: NativeAddonUnavailableError | undefined;

/** Returns the addon, or throws NativeAddonUnavailableError (not Linux, not built, load failure). */
export function loadAddon(): NativeAddon {
  if (cached) return cached;
  if (loadError) throw loadError;
  if (process.platform !== 'linux') {
    loadError = new NativeAddonUnavailableError(`platform is ${process.platform}, not linux`);
    throw loadError;
  }
  if (!existsSync(ADDON_PATH)) {
    loadError = new NativeAddonUnavailableError(`${ADDON_PATH} is not built`);
    throw loadError;
  }
  try {
    const require = createRequire(import.meta.url);
    cached = require(ADDON_PATH) as NativeAddon;
    return cached;
  } catch (err) {
    loadError = new NativeAddonUnavailableError(
      `loading ${ADDON_PATH} failed (${(err as Error).message}); rebuild it for this Node version`,
      { cause: err },
    );
    throw loadError;
  }
}

/** Whether the addon can be loaded here; never throws. */
export function nativeAddonAvailable(): boolean {
  try {
    loadAddon();
    return true;
  } catch {
    return false;
  }
}

/** Runs fn against the addon, turning its errors into the named classes of errors.ts. */
export function callAddon<T>(fn: (addon: NativeAddon) => T): T {
  const addon = loadAddon();
  try {
    return fn(addon);
  } catch (err) {
    throw translateNativeError(err);
  }
}
