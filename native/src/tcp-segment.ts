/**
 * Parsing of captured Ethernet/IPv4/TCP frames, in TypeScript so it can be
 * tested without root. Checksums are not verified: frames captured on the
 * sending host carry unfinished checksums (offload).
 */

/** TCP header flag bits. */
export const TcpFlag = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
} as const;

/** sll_pkttype of a captured frame. */
export const PacketType = {
  HOST: 0,
  BROADCAST: 1,
  MULTICAST: 2,
  OTHERHOST: 3,
  OUTGOING: 4,
} as const;

/** TCP options present in a segment (only those present are set). */
export interface TcpOptions {
  /** Maximum segment size (SYN only). */
  mss?: number;
  /** Window scale shift (SYN only). */
  wscale?: number;
  /** SACK permitted (SYN only). */
  sackPerm?: boolean;
  tsval?: number;
  tsecr?: number;
  /** SACK blocks, [left, right) sequence numbers. */
  sack?: Array<{ left: number; right: number }>;
  /** Kinds of the options this parser does not know (MD5, TCP-AO, MPTCP, Fast Open...), in order. */
  unknownKinds?: number[];
}

/** One captured TCP segment. Sequence numbers are unsigned 32-bit. */
export interface TcpSegment {
  /** Kernel receive time, nanoseconds since the Unix epoch. */
  tsNs: bigint;
  /** sll_pkttype (see PacketType). */
  pktType: number;
  srcIp: string;
  srcPort: number;
  dstIp: string;
  dstPort: number;
  seq: number;
  ack: number;
  /** Bit set of TcpFlag. */
  flags: number;
  /** Raw (unscaled) window field. */
  window: number;
  options: TcpOptions;
  payload: Buffer;
  /** True when the frame was cut short and the payload is incomplete. */
  truncated: boolean;
}

const ETHERTYPE_IPV4 = 0x0800;
const ETH_HEADER = 14;
const IPPROTO_TCP = 6;

function ipv4ToString(buf: Buffer, offset: number): string {
  return `${buf[offset]}.${buf[offset + 1]}.${buf[offset + 2]}.${buf[offset + 3]}`;
}

/** Parses the options area of a TCP header; malformed options end the parse. */
export function parseTcpOptions(buf: Buffer, start: number, end: number): TcpOptions {
  const options: TcpOptions = {};
  let i = start;
  while (i < end) {
    const kind = buf[i];
    if (kind === 0) break; // end of option list
    if (kind === 1) {
      i += 1; // NOP
      continue;
    }
    if (i + 1 >= end) break;
    const len = buf[i + 1];
    if (len < 2 || i + len > end) break;
    switch (kind) {
      case 2:
        if (len === 4) options.mss = buf.readUInt16BE(i + 2);
        break;
      case 3:
        if (len === 3) options.wscale = buf[i + 2];
        break;
      case 4:
        if (len === 2) options.sackPerm = true;
        break;
      case 5: {
        const blocks: Array<{ left: number; right: number }> = [];
        for (let j = i + 2; j + 8 <= i + len; j += 8) {
          blocks.push({ left: buf.readUInt32BE(j), right: buf.readUInt32BE(j + 4) });
        }
        options.sack = blocks;
        break;
      }
      case 8:
        if (len === 10) {
          options.tsval = buf.readUInt32BE(i + 2);
          options.tsecr = buf.readUInt32BE(i + 6);
        }
        break;
      default:
        (options.unknownKinds ??= []).push(kind);
        break;
    }
    i += len;
  }
  return options;
}

/**
 * Parses an IPv4 packet starting at `offset` of `buf`. Returns null for
 * anything that is not a complete-header IPv4 TCP first fragment.
 */
export function parseIpv4Tcp(buf: Buffer, offset = 0, tsNs = 0n, pktType = 0): TcpSegment | null {
  if (buf.length < offset + 20) return null;
  const versionIhl = buf[offset];
  if (versionIhl >> 4 !== 4) return null;
  const ihl = (versionIhl & 0x0f) * 4;
  if (ihl < 20 || buf.length < offset + ihl) return null;
  if (buf[offset + 9] !== IPPROTO_TCP) return null;
  if ((buf.readUInt16BE(offset + 6) & 0x1fff) !== 0) return null; // not a first fragment
  // Total length 0 is used by GSO/BIG TCP super-packets: take the frame's end.
  // Otherwise trust it over the frame length (Ethernet pads short frames).
  const totalLength = buf.readUInt16BE(offset + 2);
  const declaredEnd = totalLength === 0 ? buf.length : offset + totalLength;
  if (declaredEnd < offset + ihl) return null;
  const end = Math.min(declaredEnd, buf.length);
  const tcp = offset + ihl;
  if (end < tcp + 20) return null;
  const dataOffset = (buf[tcp + 12] >> 4) * 4;
  if (dataOffset < 20 || end < tcp + dataOffset) return null;
  return {
    tsNs,
    pktType,
    srcIp: ipv4ToString(buf, offset + 12),
    dstIp: ipv4ToString(buf, offset + 16),
    srcPort: buf.readUInt16BE(tcp),
    dstPort: buf.readUInt16BE(tcp + 2),
    seq: buf.readUInt32BE(tcp + 4),
    ack: buf.readUInt32BE(tcp + 8),
    flags: buf[tcp + 13],
    window: buf.readUInt16BE(tcp + 14),
    options: parseTcpOptions(buf, tcp + 20, tcp + dataOffset),
    payload: buf.subarray(tcp + dataOffset, end),
    truncated: declaredEnd > buf.length,
  };
}

/** Parses an Ethernet frame (no VLAN tag) carrying IPv4/TCP; null otherwise. */
export function parseEthernetFrame(frame: Buffer, tsNs = 0n, pktType = 0): TcpSegment | null {
  if (frame.length < ETH_HEADER) return null;
  if (frame.readUInt16BE(12) !== ETHERTYPE_IPV4) return null;
  return parseIpv4Tcp(frame, ETH_HEADER, tsNs, pktType);
}

/** a - b as a signed 32-bit distance in sequence space (positive: a is after b). */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

/** a + n modulo 2^32. */
export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** True when a comes strictly after b in sequence space. */
export function seqAfter(a: number, b: number): boolean {
  return seqDiff(a, b) > 0;
}

/** "SYN|ACK"-style rendering of a flag set, for logs. */
export function formatTcpFlags(flags: number): string {
  const names = (Object.keys(TcpFlag) as Array<keyof typeof TcpFlag>).filter((name) => (flags & TcpFlag[name]) !== 0);
  return names.length > 0 ? names.join('|') : 'none';
}
