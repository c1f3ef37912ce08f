/**
 * Typed wrapper of the tcp_takeover addon (Linux only): TCP_REPAIR helpers to
 * read a live connection's state and rebuild it in a fresh socket, SO_MARK,
 * and a passive packet capture. Sequence numbers are unsigned 32-bit numbers.
 * Everything here except the pure helpers needs CAP_NET_ADMIN (the capture:
 * CAP_NET_RAW). Build the addon with `bash scripts/build-native.sh`.
 */
import net from 'node:net';
import { callAddon, type RealtimeConfinement } from './addon.ts';
import { NativeNoFdError, NativeSequenceUnstableError } from './errors.ts';

export { ADDON_PATH, nativeAddonAvailable, type RealtimeConfinement } from './addon.ts';
export * from './errors.ts';
export * from './tcp-segment.ts';
export * from './heartbeat.ts';
export { PacketCapture, type PacketCaptureEvents, type PacketCaptureOptions, type PacketCaptureStats } from './packet-capture.ts';

/** The two queues' sequence numbers of a connection, read in repair mode. */
export interface SequenceNumbers {
  /** write_seq: the sequence number after the last byte the application wrote (sent or not). */
  sendSeq: number;
  /** rcv_nxt: the next byte expected from the peer. */
  recvSeq: number;
  /** Bytes received but not yet read by the application (SIOCINQ). */
  inq: number;
  /** Bytes written but not yet acknowledged by the peer (SIOCOUTQ). */
  outq: number;
}

/** The window state of TCP_REPAIR_WINDOW; all values in bytes (scaled) or sequence numbers. */
export interface RepairWindow {
  /** Sequence number of the peer's segment that last updated our send window. */
  sndWl1: number;
  /** The peer's receive window, bytes. */
  sndWnd: number;
  /** Largest window the peer ever advertised, bytes (>= sndWnd). */
  maxWindow: number;
  /** Our receive window as last advertised, bytes. */
  rcvWnd: number;
  /** rcv_nxt when we last advertised a window (our last ACK); must not be after recvSeq. */
  rcvWup: number;
}

/** TCP_INFO plus TCP_MAXSEG and TCP_TIMESTAMP of a socket. */
export interface TcpInfo {
  /** Kernel TCP state number (1 = ESTABLISHED). */
  state: number;
  stateName: string;
  caState: number;
  retransmits: number;
  probes: number;
  backoff: number;
  /** Raw tcpi_options bit set. */
  options: number;
  timestamps: boolean;
  sack: boolean;
  /** Window scaling negotiated. */
  wscale: boolean;
  ecn: boolean;
  /** Microsecond TSval clock negotiated (kernel >= 6.7, per route). */
  usecTimestamps: boolean;
  /** Shift the peer applies to the windows it advertises (from its SYN). */
  sndWscale: number;
  /** Shift this socket applies to the windows it advertises. */
  rcvWscale: number;
  /** Microseconds. */
  rto: number;
  ato: number;
  sndMss: number;
  rcvMss: number;
  unacked: number;
  lost: number;
  retrans: number;
  /** Milliseconds since. */
  lastDataSent: number;
  lastDataRecv: number;
  lastAckRecv: number;
  pmtu: number;
  rcvSsthresh: number;
  /** Smoothed RTT, microseconds. */
  rtt: number;
  rttvar: number;
  sndSsthresh: number;
  sndCwnd: number;
  advmss: number;
  rcvSpace: number;
  totalRetrans: number;
  bytesAcked?: number;
  bytesReceived?: number;
  notsentBytes?: number;
  minRtt?: number;
  /** The peer's advertised receive window after scaling, bytes (kernel >= 5.4). */
  sndWnd?: number;
  /** TCP_MAXSEG: the current send MSS. */
  maxSeg: number;
  /** TCP_TIMESTAMP: the TSval this socket would send now. */
  tsVal: number;
  /** tsVal minus the kernel's TCP clock (CLOCK_MONOTONIC ms, or us): the connection's random offset, +-1. */
  tsOffset: number;
  /** Bit 0 of TCP_TIMESTAMP: the socket's TSval clock is in microseconds. */
  tsClockUsec: boolean;
}

/** TCP_REPAIR modes. OFF_NO_WINDOW_PROBE leaves repair without sending a window probe (OFF sends one). */
export const RepairMode = { ON: 1, OFF: 0, OFF_NO_WINDOW_PROBE: -1 } as const;
export type RepairMode = (typeof RepairMode)[keyof typeof RepairMode];

/** Everything repairConnection() needs to rebuild one ESTABLISHED connection. */
export interface RepairState {
  /** Our address (the VIP); may be absent from every interface yet (IP_FREEBIND). IPv4 or IPv6 literal. */
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  /** Our next sequence number to send: the peer's last ACK (then rewrite the output log from there). */
  sendSeq: number;
  /** Next byte expected from the peer: after the contiguous captured client stream. */
  recvSeq: number;
  /** The peer's SYN MSS. TCP_MAXSEG gets min(mss, 32767), the kernel's bound; the MSS option gets mss. */
  mss: number;
  /** Peer's window scale (its SYN); give both scales or neither (not negotiated). */
  sndWscale?: number;
  /** Our window scale (our SYN-ACK). */
  rcvWscale?: number;
  /** SACK negotiated (default false). */
  sackPermitted?: boolean;
  /** Timestamps negotiated (default false); then tsVal is required. */
  timestamps?: boolean;
  /** TSval to continue from: beyond every TSval the peer saw (PAWS). Rounded up to even by the addon. */
  tsVal?: number;
  window: RepairWindow;
  /**
   * Output the old socket had already transmitted beyond sendSeq (the peer's
   * last known ACK), queued in repair mode as in flight: nothing is sent now,
   * snd_nxt moves past it, and whatever the peer lacks is retransmitted on the
   * timer. Needed because the kernel discards ACKs beyond snd_nxt (RFC 793):
   * if the peer got more than the rebuilt socket can send in its first flight
   * (cwnd, window rounded down to whole MSS), the connection stalls for good.
   * Write the rest of the output log normally after adoption.
   */
  sendQueue?: Uint8Array;
  /**
   * Bytes received from the peer that the application has not consumed, put in
   * the receive queue: the adopted socket reads them first. recvSeq is then
   * the sequence number of their first byte (rcv_nxt ends at recvSeq + length).
   */
  recvQueue?: Uint8Array;
  /** SO_MARK for the rebuilt socket (default: none). */
  mark?: number;
  /** TCP_NODELAY on the rebuilt socket (default true). */
  noDelay?: boolean;
}

/** Reads both queues' sequence numbers (TCP_REPAIR on, TCP_QUEUE_SEQ x2, SIOCINQ/SIOCOUTQ, TCP_REPAIR=-1). */
export function readSequenceNumbers(fd: number): SequenceNumbers {
  return callAddon((a) => a.readSequenceNumbers(fd));
}

/** The peer's ISN: recvSeq - inq - 1. Valid only before the application read anything. */
/**
 * Queues on a live connection the part of `bytes` (the client's stream from `startSeq`, e.g. from
 * a capture) at and beyond its next expected byte, in repair mode; returns the bytes queued. For a
 * hole that no retransmission will fill: another host's kernel acknowledged those bytes.
 */
export function fillReceiveQueue(fd: number, bytes: Buffer, startSeq: number): number {
  return callAddon((a) => a.fillReceiveQueue(fd, bytes, startSeq >>> 0));
}

export function computeClientIsn(s: SequenceNumbers): number {
  return (s.recvSeq - s.inq - 1) >>> 0;
}

/** Our ISN: sendSeq - outq - 1 (= snd_una - 1). Valid only until the peer acknowledged data. */
export function computeServerIsn(s: SequenceNumbers): number {
  return (s.sendSeq - s.outq - 1) >>> 0;
}

export interface InitialSequenceNumbers {
  /** The peer's (client's) initial sequence number, from its SYN. */
  clientIsn: number;
  /** Our initial sequence number, from our SYN-ACK. */
  serverIsn: number;
  /** The reads the value needed to be stable (>= 2). */
  attempts: number;
}

/**
 * Reads the connection's initial sequence numbers at accept time (before the
 * application reads or writes), re-reading until two consecutive reads agree:
 * a segment can land between reading rcv_nxt and SIOCINQ.
 */
export function readInitialSequenceNumbers(fd: number, maxAttempts = 10): InitialSequenceNumbers {
  let previous = readSequenceNumbers(fd);
  for (let attempts = 2; attempts <= maxAttempts; attempts++) {
    const current = readSequenceNumbers(fd);
    const clientIsn = computeClientIsn(current);
    const serverIsn = computeServerIsn(current);
    if (clientIsn === computeClientIsn(previous) && serverIsn === computeServerIsn(previous)) {
      return { clientIsn, serverIsn, attempts };
    }
    previous = current;
  }
  throw new NativeSequenceUnstableError(maxAttempts);
}

/** Reads TCP_REPAIR_WINDOW (briefly entering repair mode). */
export function readRepairWindow(fd: number): RepairWindow {
  return callAddon((a) => a.readRepairWindow(fd));
}

/** TCP_INFO, TCP_MAXSEG and TCP_TIMESTAMP of a socket. */
export function tcpInfo(fd: number): TcpInfo {
  return callAddon((a) => a.tcpInfo(fd) as unknown as TcpInfo);
}

/** SO_MARK (needs CAP_NET_ADMIN): e.g. the deliberate-close mark that lets a FIN through the primary's firewall. */
export function setMark(fd: number, mark: number): void {
  callAddon((a) => a.setMark(fd, mark));
}

export function getMark(fd: number): number {
  return callAddon((a) => a.getMark(fd));
}

/** Sets TCP_REPAIR. A socket closed while ON sends nothing (no FIN, no RST) and frees its 4-tuple at once. */
export function setRepair(fd: number, mode: RepairMode): void {
  callAddon((a) => a.setRepair(fd, mode));
}

/**
 * Rebuilds an ESTABLISHED connection in a new non-blocking socket, in the
 * order of design notes section 9; returns its fd (wrap it with adoptFd, or
 * closeFd it). Throws NativeSyscallError naming the failed step ("TCP_REPAIR_WINDOW: EINVAL ...").
 * Until it returns, the peer's segments for this 4-tuple must be dropped, not answered.
 */
export function repairConnection(state: RepairState): number {
  return callAddon((a) => a.repairConnection(state));
}

/**
 * Called once by the main thread, before libwebrtc creates a thread: sets its nice to
 * `mainNice`, lets the threads it creates start at nice 0, and (unless `keepMediaRealtime`)
 * drops CAP_SYS_NICE from its effective set and RLIMIT_RTPRIO to 0, so no thread created from
 * then on can make itself real-time except the addon's heartbeat threads (heartbeat.ts).
 */
export function confineRealtimeScheduling(options: { mainNice: number; keepMediaRealtime: boolean }): RealtimeConfinement {
  return callAddon((a) => a.confineRealtimeScheduling(options));
}

/** Closes a file descriptor that was never adopted. */
export function closeFd(fd: number): void {
  callAddon((a) => a.closeFd(fd));
}

/** The file descriptor under a connected net.Socket (Linux/Unix; none before connect or after destroy). */
export function socketFd(socket: net.Socket): number {
  const handle = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle;
  if (!handle) throw new NativeNoFdError(socket.destroyed ? 'socket is destroyed' : 'socket has no handle yet (not connected?)');
  const fd = handle.fd;
  if (typeof fd !== 'number' || fd < 0) throw new NativeNoFdError(`handle.fd is ${String(fd)}`);
  return fd;
}

/** Wraps a connected fd (e.g. from repairConnection) as a net.Socket; the socket owns the fd from then on. */
export function adoptFd(fd: number, options: { allowHalfOpen?: boolean } = {}): net.Socket {
  return new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: options.allowHalfOpen ?? false });
}

/**
 * Destroys a socket without a FIN or RST reaching the peer: repair mode first,
 * then close. Unsent data in Node's buffers is discarded. For tests and for
 * handing a connection over; a crashed process needs the firewall instead.
 */
export function destroySilently(socket: net.Socket): void {
  setRepair(socketFd(socket), RepairMode.ON);
  socket.destroy();
}

/**
 * The TSval to give a rebuilt socket: beyond the largest TSval the peer may
 * have seen (our last TSval, or the peer's last TSecr), plus the time elapsed
 * since it was seen and a margin, rounded up to even (bit 0 would select the
 * microsecond clock on kernels >= 6.7). Millisecond clock assumed.
 */
export function takeoverTimestamp(input: {
  lastServerTsval?: number;
  lastClientTsecr?: number;
  elapsedMs: number;
  marginMs?: number;
}): number {
  const candidates = [input.lastServerTsval, input.lastClientTsecr].filter((v): v is number => v !== undefined);
  if (candidates.length === 0) throw new RangeError('takeoverTimestamp needs lastServerTsval or lastClientTsecr');
  // Largest in sequence-space order (TSvals wrap like sequence numbers).
  const base = candidates.reduce((a, b) => (((b - a) | 0) > 0 ? b : a));
  const value = (base + Math.ceil(input.elapsedMs) + (input.marginMs ?? 10)) >>> 0;
  return ((value + 1) & ~1) >>> 0;
}
