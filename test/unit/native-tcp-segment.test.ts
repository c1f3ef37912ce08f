// Pure tests of the frame parser and the sequence/timestamp helpers: no root, no addon.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  computeClientIsn,
  computeServerIsn,
  formatTcpFlags,
  parseEthernetFrame,
  parseIpv4Tcp,
  PacketType,
  seqAdd,
  seqAfter,
  seqDiff,
  takeoverTimestamp,
  TcpFlag,
} from '../../native/src/index.ts';

interface FrameSpec {
  src?: string;
  dst?: string;
  srcPort?: number;
  dstPort?: number;
  seq?: number;
  ack?: number;
  flags?: number;
  window?: number;
  options?: number[];
  payload?: Buffer;
  protocol?: number;
  fragmentOffset?: number;
  ethertype?: number;
  padTo?: number;
}

function ip(text: string): number[] {
  return text.split('.').map(Number);
}

/** Builds an Ethernet/IPv4/TCP frame by hand (checksums left zero, as offloaded captures have them). */
function buildFrame(spec: FrameSpec): Buffer {
  const options = Buffer.from(spec.options ?? []);
  assert.equal(options.length % 4, 0, 'options must be padded to 32 bits');
  const payload = spec.payload ?? Buffer.alloc(0);
  const tcp = Buffer.alloc(20 + options.length);
  tcp.writeUInt16BE(spec.srcPort ?? 40000, 0);
  tcp.writeUInt16BE(spec.dstPort ?? 8443, 2);
  tcp.writeUInt32BE(spec.seq ?? 1000, 4);
  tcp.writeUInt32BE(spec.ack ?? 0, 8);
  tcp[12] = ((20 + options.length) / 4) << 4;
  tcp[13] = spec.flags ?? TcpFlag.ACK;
  tcp.writeUInt16BE(spec.window ?? 512, 14);
  options.copy(tcp, 20);
  const ipHeader = Buffer.alloc(20);
  ipHeader[0] = 0x45;
  ipHeader.writeUInt16BE(20 + tcp.length + payload.length, 2);
  ipHeader.writeUInt16BE(spec.fragmentOffset ?? 0x4000, 6); // DF
  ipHeader[8] = 64;
  ipHeader[9] = spec.protocol ?? 6;
  Buffer.from(ip(spec.src ?? '10.0.0.2')).copy(ipHeader, 12);
  Buffer.from(ip(spec.dst ?? '10.0.0.1')).copy(ipHeader, 16);
  const eth = Buffer.alloc(14);
  eth.writeUInt16BE(spec.ethertype ?? 0x0800, 12);
  let frame = Buffer.concat([eth, ipHeader, tcp, payload]);
  if (spec.padTo && frame.length < spec.padTo) frame = Buffer.concat([frame, Buffer.alloc(spec.padTo - frame.length, 0xee)]);
  return frame;
}

// MSS 1460, SACK_PERM, TS (val 0x01020304, ecr 0), NOP, WS 7: Linux's SYN layout.
const SYN_OPTIONS = [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 0, 0, 0, 0, 1, 3, 3, 7];

describe('parseEthernetFrame', () => {
  it('parses a SYN with MSS, SACK permitted, timestamps and window scale', () => {
    const frame = buildFrame({ flags: TcpFlag.SYN, seq: 0xfffffff0, window: 64240, options: SYN_OPTIONS });
    const seg = parseEthernetFrame(frame, 123n, PacketType.OTHERHOST);
    assert.ok(seg);
    assert.equal(seg.srcIp, '10.0.0.2');
    assert.equal(seg.dstIp, '10.0.0.1');
    assert.equal(seg.srcPort, 40000);
    assert.equal(seg.dstPort, 8443);
    assert.equal(seg.seq, 0xfffffff0);
    assert.equal(seg.flags, TcpFlag.SYN);
    assert.equal(seg.window, 64240);
    assert.equal(seg.tsNs, 123n);
    assert.equal(seg.pktType, PacketType.OTHERHOST);
    assert.deepEqual(seg.options, { mss: 1460, sackPerm: true, tsval: 0x01020304, tsecr: 0, wscale: 7 });
    assert.equal(seg.payload.length, 0);
    assert.equal(seg.truncated, false);
  });

  it('returns the payload and ignores Ethernet padding after the IP total length', () => {
    const frame = buildFrame({ payload: Buffer.from('hi'), padTo: 60 });
    assert.equal(frame.length, 60);
    const seg = parseEthernetFrame(frame);
    assert.ok(seg);
    assert.equal(seg.payload.toString(), 'hi');
  });

  it('parses the timestamp option of a data segment', () => {
    const seg = parseEthernetFrame(buildFrame({ payload: Buffer.from('x'), options: [1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 8] }));
    assert.ok(seg);
    assert.equal(seg.options.tsval, 9);
    assert.equal(seg.options.tsecr, 8);
    assert.equal(seg.options.mss, undefined);
    assert.equal(seg.payload.toString(), 'x');
  });

  it('reports the kinds of options it does not know (MPTCP, MD5...)', () => {
    // MSS, MPTCP (kind 30, length 4), NOP, NOP, MD5 signature (kind 19, length 18).
    const options = [2, 4, 0x05, 0xb4, 30, 4, 0, 0, 1, 1, 19, 18, ...new Array<number>(16).fill(0)];
    const seg = parseEthernetFrame(buildFrame({ options }));
    assert.equal(seg?.options.mss, 1460);
    assert.deepEqual(seg?.options.unknownKinds, [30, 19]);
    assert.equal(parseEthernetFrame(buildFrame({ options: SYN_OPTIONS }))?.options.unknownKinds, undefined);
  });

  it('parses SACK blocks', () => {
    const sack = [1, 1, 5, 18, 0, 0, 0, 10, 0, 0, 0, 20, 0, 0, 0, 30, 0, 0, 0, 40];
    const seg = parseEthernetFrame(buildFrame({ options: sack }));
    assert.deepEqual(seg?.options.sack, [
      { left: 10, right: 20 },
      { left: 30, right: 40 },
    ]);
  });

  it('flags a frame cut short by the capture', () => {
    const frame = buildFrame({ payload: Buffer.alloc(100, 0x61) });
    const seg = parseEthernetFrame(frame.subarray(0, frame.length - 40));
    assert.ok(seg);
    assert.equal(seg.truncated, true);
    assert.equal(seg.payload.length, 60);
  });

  it('takes the frame end when the IP total length is 0 (GSO super-packet)', () => {
    const frame = buildFrame({ payload: Buffer.alloc(10, 0x62) });
    frame.writeUInt16BE(0, 16);
    assert.equal(parseEthernetFrame(frame)?.payload.length, 10);
  });

  it('rejects what is not a first-fragment IPv4 TCP segment', () => {
    assert.equal(parseEthernetFrame(buildFrame({ ethertype: 0x86dd })), null);
    assert.equal(parseEthernetFrame(buildFrame({ protocol: 17 })), null);
    assert.equal(parseEthernetFrame(buildFrame({ fragmentOffset: 0x2001 })), null);
    assert.equal(parseEthernetFrame(Buffer.alloc(10)), null);
    const badOffset = buildFrame({});
    badOffset[14 + 20 + 12] = 0x30; // data offset 12 < 20
    assert.equal(parseEthernetFrame(badOffset), null);
  });

  it('survives malformed options', () => {
    const seg = parseEthernetFrame(buildFrame({ options: [2, 0, 1, 1] }));
    assert.ok(seg);
    assert.deepEqual(seg.options, {});
  });

  it('parses a bare IPv4 packet at an offset', () => {
    const frame = buildFrame({ seq: 5 });
    assert.equal(parseIpv4Tcp(frame, 14)?.seq, 5);
  });
});

describe('sequence helpers', () => {
  it('compare and add modulo 2^32', () => {
    assert.equal(seqAdd(0xffffffff, 2), 1);
    assert.equal(seqDiff(1, 0xffffffff), 2);
    assert.equal(seqDiff(0xffffffff, 1), -2);
    assert.equal(seqAfter(1, 0xffffffff), true);
    assert.equal(seqAfter(0xffffffff, 1), false);
  });

  it('compute initial sequence numbers with wrap-around', () => {
    assert.equal(computeClientIsn({ sendSeq: 0, recvSeq: 3, inq: 5, outq: 0 }), 0xfffffffd);
    assert.equal(computeServerIsn({ sendSeq: 0, recvSeq: 0, inq: 0, outq: 0 }), 0xffffffff);
  });

  it('formats flags', () => {
    assert.equal(formatTcpFlags(TcpFlag.SYN | TcpFlag.ACK), 'SYN|ACK');
    assert.equal(formatTcpFlags(0), 'none');
  });
});

describe('takeoverTimestamp', () => {
  it('is even, beyond both candidates, and wraps', () => {
    assert.equal(takeoverTimestamp({ lastServerTsval: 1000, lastClientTsecr: 990, elapsedMs: 3, marginMs: 0 }), 1004);
    assert.equal(takeoverTimestamp({ lastServerTsval: 1000, elapsedMs: 2.2, marginMs: 0 }), 1004);
    assert.equal(takeoverTimestamp({ lastClientTsecr: 0xfffffffe, lastServerTsval: 5, elapsedMs: 0, marginMs: 1 }), 6);
    assert.equal(takeoverTimestamp({ lastServerTsval: 0xfffffffe, elapsedMs: 1, marginMs: 0 }), 0);
    assert.throws(() => takeoverTimestamp({ elapsedMs: 1 }), RangeError);
  });
});
