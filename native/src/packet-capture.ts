/**
 * Passive capture of one TCP port on one interface (AF_PACKET, promiscuous,
 * kernel BPF filter "ip and tcp and port P"). Frames arrive from a libuv poll
 * handle in batches, so nothing busy-waits; they are parsed here.
 */
import { EventEmitter } from 'node:events';
import { callAddon, type NativeCaptureHandle, type RawFrame } from './addon.ts';
import { translateNativeError } from './errors.ts';
import { parseEthernetFrame, type TcpSegment } from './tcp-segment.ts';

export interface PacketCaptureOptions {
  /** Interface name, e.g. "lo", "eth0", a veth or bridge port. Ethernet or loopback framing only. */
  interface: string;
  /** TCP port to keep (source or destination). */
  port: number;
  /** Put the interface in promiscuous mode while capturing (default true; undone when the capture closes). */
  promiscuous?: boolean;
  /** Also deliver frames this host sends (default false; on loopback they would appear twice). */
  includeOutgoing?: boolean;
  /** Kernel receive buffer for the capture socket, bytes (default 8 MiB). */
  receiveBufferBytes?: number;
}

export interface PacketCaptureStats {
  /** Frames the kernel passed through the filter (including drops). */
  packets: number;
  /** Frames the kernel dropped because the capture socket's buffer was full. */
  drops: number;
  /** Frames longer than the read buffer (payload incomplete). */
  truncated: number;
  /** Frames that passed the filter but did not parse as IPv4/TCP. */
  unparsed: number;
}

export type PacketCaptureEvents = {
  /** A batch of segments, in capture order. */
  segments: [segments: TcpSegment[]];
  /**
   * The capture socket reported an error (a NativeSyscallError). ENETDOWN when
   * the interface goes down is transient: capturing resumes when it is up
   * again. An error that persists stops the capture, which then closes (the
   * message says which). Listen for it: without a listener it is thrown.
   */
  error: [error: Error];
  close: [];
  /** A 'segments' or 'error' listener threw; the capture itself is unaffected. */
  listenererror: [event: string, error: unknown];
};

export class PacketCapture extends EventEmitter<PacketCaptureEvents> {
  readonly interface: string;
  readonly port: number;
  #handle: NativeCaptureHandle | undefined;
  #unparsed = 0;
  #lastStats: PacketCaptureStats = { packets: 0, drops: 0, truncated: 0, unparsed: 0 };

  /** Opens the capture at once; throws NativeSyscallError (EPERM without CAP_NET_RAW) or NativeAddonUnavailableError. */
  constructor(options: PacketCaptureOptions) {
    super();
    this.interface = options.interface;
    this.port = options.port;
    this.#handle = callAddon(
      (addon) =>
        new addon.NativePacketCapture(
          options.interface,
          options.port,
          {
            promiscuous: options.promiscuous ?? true,
            includeOutgoing: options.includeOutgoing ?? false,
            receiveBufferBytes: options.receiveBufferBytes ?? 8 * 1024 * 1024,
          },
          (err, frames) => this.#onBatch(err, frames),
        ),
    );
  }

  get closed(): boolean {
    return this.#handle === undefined;
  }

  /**
   * Delivers every frame already queued in the kernel to the 'segments'
   * listeners synchronously, before returning. Use it at takeover time so the
   * captured stream is complete up to now. Returns the number of segments.
   */
  drain(): number {
    const handle = this.#handle;
    if (!handle) return 0;
    let total = 0;
    for (;;) {
      const frames = callAddon(() => handle.drain());
      if (frames.length === 0) return total;
      total += this.#deliver(frames);
    }
  }

  /** Cumulative counters (the kernel's PACKET_STATISTICS reset on each read; they are summed here). */
  stats(): PacketCaptureStats {
    if (this.#handle) {
      const s = this.#handle.stats();
      this.#lastStats = { ...s, unparsed: this.#unparsed };
    }
    return { ...this.#lastStats };
  }

  /** Keeps the event loop alive while the capture is open (the default). */
  ref(): void {
    this.#handle?.ref();
  }

  /** Lets the process exit even though the capture is open. */
  unref(): void {
    this.#handle?.unref();
  }

  /** Stops capturing and closes the socket; idempotent. */
  close(): void {
    const handle = this.#handle;
    if (!handle) return;
    this.#lastStats = { ...handle.stats(), unparsed: this.#unparsed };
    handle.close();
    this.#handle = undefined;
    this.#safeEmit('close');
  }

  #onBatch(err: Error | null, frames: RawFrame[] | null): void {
    if (frames && frames.length > 0) this.#deliver(frames);
    if (err) {
      const stopped = (err as Error & { stopped?: unknown }).stopped === true;
      this.#safeEmit('error', translateNativeError(err) as Error);
      if (stopped) this.close();
    }
  }

  #deliver(frames: RawFrame[]): number {
    const segments: TcpSegment[] = [];
    for (const f of frames) {
      const seg = parseEthernetFrame(f.frame, f.tsNs, f.pktType);
      if (seg) segments.push(seg);
      else this.#unparsed++;
    }
    if (segments.length > 0) this.#safeEmit('segments', segments);
    return segments.length;
  }

  #safeEmit<K extends keyof PacketCaptureEvents>(event: K, ...args: PacketCaptureEvents[K]): void {
    try {
      (this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args);
    } catch (error) {
      if (event === 'listenererror' || this.listenerCount('listenererror') === 0) {
        // Nobody to tell: surface it like any uncaught error, outside our state changes.
        queueMicrotask(() => {
          throw error;
        });
        return;
      }
      this.#safeEmit('listenererror', event, error);
    }
  }
}
