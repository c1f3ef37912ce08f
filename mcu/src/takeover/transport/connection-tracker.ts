/**
 * The standby's passive view of every signaling connection (design notes 4 and 9),
 * built from the segments a PacketCapture sees on the shared LAN: per 4-tuple the
 * SYN and SYN-ACK options and ISNs, the client's byte stream reassembled (out of
 * order, retransmitted, across the 2^32 wrap-around; only bytes beyond the prune
 * point the primary's application consumed are kept), the client's latest ACK,
 * window and timestamps, and the primary's highest sequence sent, TSval, window and
 * ACK. From this and the primary's TransportRecord, planRepair() rebuilds a socket.
 *
 * A connection first seen after its SYN (the standby started later: after every
 * re-protection) is tracked all the same; its ISNs and options come from the record
 * (bindRecord). What would make a rebuild unsafe is detected and reported (a reason
 * on the connection, a counter, an 'unsafe' event), never hidden: above all client
 * bytes the primary acknowledged that the capture never saw (design notes 9).
 */
import { EventEmitter } from 'node:events';
import type { PacketCapture, TcpOptions, TcpSegment } from '../../../../native/src/index.ts';
import { seqAdd, seqDiff, TcpFlag } from '../../../../native/src/index.ts';
import type { TransportRecord } from './transport-record.ts';
import { TrackerInvalidArgumentError } from '../errors.ts';
import { SequenceSpace } from './sequence-space.ts';

export interface Endpoint {
  address: string;
  port: number;
}

/** Key of a connection: client address:port > service address:port. */
export function connectionKey(client: Endpoint, server: Endpoint): string {
  return `${client.address}:${client.port}>${server.address}:${server.port}`;
}

/** The key of the connection a TransportRecord describes (remote = client, local = service). */
export function recordConnectionKey(record: TransportRecord): string {
  return connectionKey(record.remote, record.local);
}

/** Options of a SYN or SYN-ACK as captured. */
export interface SynInfo {
  /** Initial sequence number (the SYN's own sequence number). */
  isn: number;
  /** MSS option; absent means the RFC default 536. */
  mss?: number;
  /** Window scale shift option; absent means no scaling offered. */
  wscale?: number;
  sackPermitted: boolean;
  /** A timestamp option was present. */
  timestamps: boolean;
  /** The SYN's unscaled window (SYN windows are never scaled). */
  window: number;
  /** The SYN-ACK's acknowledgment number (client ISN + 1); undefined on the client's SYN. */
  ack?: number;
  /** ECN setup flags (ECE|CWR on a SYN, ECE on a SYN-ACK). */
  ecn: boolean;
  atNs: bigint;
}

/** Why a rebuild of a connection would be unsafe (or impossible). */
export type UnsafeCode =
  /** Client bytes the primary acknowledged are missing from the capture. */
  | 'capture-hole'
  /** A SYN option the rebuild cannot reproduce (unknown kind, window scale > 14). */
  | 'unsupported-option'
  /** Data on the SYN (TCP Fast Open). */
  | 'syn-data'
  /** URG: the urgent pointer cannot be restored. */
  | 'urgent-data'
  /** The primary's TSval clock runs in microseconds (bit 0 of TCP_TIMESTAMP, kernels >= 6.7): takeoverTimestamp() assumes ms. */
  | 'usec-timestamps'
  /** The record's ISNs differ from the captured SYN/SYN-ACK. */
  | 'isn-mismatch'
  /** The client stream outgrew maxBufferedBytes: later bytes were not kept. */
  | 'buffer-limit';

export interface UnsafeReason {
  code: UnsafeCode;
  detail: string;
  /** Capture time (CLOCK_REALTIME ns) when detected. */
  atNs: bigint;
}

/** Explicit lifecycle of a tracked connection (dropped once closed both ways or reset). */
export type TrackedConnectionState =
  /** Client SYN seen, no SYN-ACK yet. */
  | 'handshake'
  /** Both directions open (also a connection first seen mid-stream). */
  | 'established'
  /** The client sent FIN. */
  | 'client-fin'
  /** The primary sent FIN (a deliberate close: not to be taken over). */
  | 'server-fin';

export type TrackedConnectionOrigin = 'syn' | 'mid-stream';

export type CloseReason = 'fin-both-ways' | 'reset-by-client' | 'reset-by-server' | 'superseded-by-new-syn' | 'released' | 'tracker-closed';

interface Interval {
  /** Positions in the client's unwrapped sequence space. */
  start: number;
  end: number;
  chunks: Buffer[];
}

/** The client's latest acknowledgment (of the primary's bytes). */
export interface ClientAck {
  /** 32-bit acknowledgment number: the sendSeq of a rebuilt socket. */
  ack: number;
  /** Its position in the server's unwrapped sequence space. */
  ackPos: number;
  atNs: bigint;
}

/** The client segment that last updated the window (RFC 793's SND.WL1/WL2 rule). */
export interface ClientWindow {
  /** Sequence number of that segment (snd_wl1). */
  seq: number;
  seqPos: number;
  /** Its acknowledgment position (snd_wl2). */
  ackPos: number;
  /** Raw, unscaled window field. */
  window: number;
  atNs: bigint;
}

/** The primary's latest acknowledgment of client bytes and the window it advertised with it. */
export interface ServerAck {
  ack: number;
  /** Position in the client's unwrapped sequence space. */
  ackPos: number;
  /** Raw, unscaled window field. */
  window: number;
  atNs: bigint;
}

export interface TimestampSeen {
  value: number;
  atNs: bigint;
}

/** What bindRecord() keeps of a TransportRecord. */
export interface BoundRecord {
  connId: string;
  clientIsn: number;
  serverIsn: number;
  sndWscale: number;
  rcvWscale: number;
  sack: boolean;
  timestamps: boolean;
  mss: number;
}

const MAX_WSCALE = 14;
/** A TSval clock advancing faster than this per ms of capture time is a microsecond clock. */
const USEC_CLOCK_RATE = 100;
/** Capture time over which the server's TSval rate is judged. */
const USEC_CHECK_SPAN_NS = 20_000_000n;

/**
 * One connection as the capture saw it. Created and fed by ConnectionTracker;
 * read by planRepair(). Positions are unwrapped sequence numbers
 * (see SequenceSpace): client positions for the client's bytes and the
 * primary's ACKs, server positions for the primary's bytes and the client's ACKs.
 */
export class TrackedConnection {
  readonly key: string;
  readonly client: Endpoint;
  readonly server: Endpoint;
  readonly origin: TrackedConnectionOrigin;
  /** Capture time of the first segment (or of bindRecord when it came first). */
  readonly firstSeenNs: bigint;
  lastSeenNs: bigint;
  segments = 0;
  /** The client's sequence space (its bytes, the primary's ACKs). */
  readonly clientSpace = new SequenceSpace();
  /** The primary's sequence space (its bytes, the client's ACKs). */
  readonly serverSpace = new SequenceSpace();
  clientSyn: SynInfo | undefined;
  serverSynAck: SynInfo | undefined;
  record: BoundRecord | undefined;
  clientAck: ClientAck | undefined;
  clientWindow: ClientWindow | undefined;
  clientTsval: TimestampSeen | undefined;
  clientTsecr: TimestampSeen | undefined;
  /** Position of the client's FIN (the sequence number it occupies). */
  clientFinPos: number | undefined;
  /** Position after the last byte the primary was seen sending. */
  serverSentEndPos: number | undefined;
  serverAck: ServerAck | undefined;
  serverTsval: TimestampSeen | undefined;
  serverFinPos: number | undefined;
  /** Client bytes seen more than once (retransmissions), and segments that arrived ahead of a gap. */
  duplicateBytes = 0;
  outOfOrderSegments = 0;
  /** Permanent reasons a rebuild is unsafe, in detection order (one per code). */
  readonly unsafe: UnsafeReason[] = [];
  /** Acknowledged-but-missing client bytes right now, as positions [from, to); undefined when none (or unknown). */
  hole: { from: number; to: number } | undefined;

  #state: TrackedConnectionState;
  #intervals: Interval[] = [];
  #bufferedBytes = 0;
  #prunePos: number | undefined;
  /** A prune offset given before the client ISN was known (mid-stream, record not bound yet). */
  #deferredPrune: number | undefined;
  #firstServerTsval: TimestampSeen | undefined;
  readonly #maxBufferedBytes: number;
  readonly #onUnsafe: (conn: TrackedConnection, reason: UnsafeReason, newHole: boolean) => void;
  readonly #onState: (conn: TrackedConnection, state: TrackedConnectionState, previous: TrackedConnectionState) => void;

  /** @internal Created by ConnectionTracker. */
  constructor(init: {
    key: string;
    client: Endpoint;
    server: Endpoint;
    origin: TrackedConnectionOrigin;
    atNs: bigint;
    maxBufferedBytes: number;
    onUnsafe: (conn: TrackedConnection, reason: UnsafeReason, newHole: boolean) => void;
    onState: (conn: TrackedConnection, state: TrackedConnectionState, previous: TrackedConnectionState) => void;
  }) {
    this.key = init.key;
    this.client = init.client;
    this.server = init.server;
    this.origin = init.origin;
    this.firstSeenNs = init.atNs;
    this.lastSeenNs = init.atNs;
    this.#state = init.origin === 'syn' ? 'handshake' : 'established';
    this.#maxBufferedBytes = init.maxBufferedBytes;
    this.#onUnsafe = init.onUnsafe;
    this.#onState = init.onState;
  }

  get state(): TrackedConnectionState {
    return this.#state;
  }

  /** Client bytes held (beyond the prune point), including out-of-order ones. */
  get bufferedBytes(): number {
    return this.#bufferedBytes;
  }

  /** Client position below which bytes were dropped (undefined before the first prune). */
  get prunePosition(): number | undefined {
    return this.#prunePos;
  }

  /** Disjoint ranges of client bytes held, as positions, in order (for diagnostics and tests). */
  get heldRanges(): Array<{ from: number; to: number }> {
    return this.#intervals.map((iv) => ({ from: iv.start, to: iv.end }));
  }

  /** The client's ISN: from its SYN, else from the bound record. */
  get clientIsn(): number | undefined {
    return this.clientSyn?.isn ?? this.record?.clientIsn;
  }

  /** The primary's ISN: from its SYN-ACK, else from the bound record. */
  get serverIsn(): number | undefined {
    return this.serverSynAck?.isn ?? this.record?.serverIsn;
  }

  /** Position of client byte `offset` (0 = first data byte), once the client ISN is known. */
  clientPositionOfOffset(offset: number): number | undefined {
    const isn = this.clientIsn;
    if (isn === undefined) return undefined;
    return this.clientSpace.position(seqAdd(isn, 1 + offset));
  }

  /** End of the bytes held contiguously from `fromPos` (fromPos itself when that byte is missing). */
  contiguousEnd(fromPos: number): number {
    for (const iv of this.#intervals) {
      if (iv.start <= fromPos && fromPos < iv.end) return iv.end;
      if (iv.start > fromPos) break;
    }
    return fromPos;
  }

  /** A copy of the client bytes held contiguously from `fromPos` (empty when that byte is missing). */
  clientBytesFrom(fromPos: number, toPos?: number): Buffer {
    for (const iv of this.#intervals) {
      if (iv.start > fromPos) break;
      if (fromPos >= iv.end) continue;
      const end = toPos === undefined ? iv.end : Math.min(toPos, iv.end);
      const parts: Buffer[] = [];
      let at = iv.start;
      for (const chunk of iv.chunks) {
        const chunkEnd = at + chunk.length;
        if (chunkEnd > fromPos && at < end) parts.push(chunk.subarray(Math.max(0, fromPos - at), Math.min(chunk.length, end - at)));
        at = chunkEnd;
        if (at >= end) break;
      }
      return Buffer.concat(parts, Math.max(0, end - fromPos));
    }
    return Buffer.alloc(0);
  }

  // ---------------------------------------------------------------------------
  // Fed by the tracker

  /** @internal */
  onClientSyn(s: TcpSegment): void {
    const options = s.options as TcpOptions;
    this.clientSyn = synInfo(s);
    this.clientSpace.observe(s.seq);
    this.clientSpace.observe(seqAdd(s.seq, 1));
    this.#checkSynOptions('client SYN', this.clientSyn, options, s.tsNs);
    if (s.payload.length > 0) this.#markUnsafe('syn-data', `the client's SYN carries ${s.payload.length} bytes (TCP Fast Open)`, s.tsNs);
    if (this.record && this.record.clientIsn !== s.seq) {
      this.#markUnsafe('isn-mismatch', `captured client ISN ${s.seq} != record ${this.record.clientIsn}`, s.tsNs);
    }
  }

  /** @internal */
  onSegment(s: TcpSegment, fromClient: boolean): void {
    this.segments++;
    if (s.tsNs > this.lastSeenNs) this.lastSeenNs = s.tsNs;
    // A truncated frame's missing bytes are simply not held: the hole check decides whether they matter.
    if (fromClient) this.#onClientSegment(s);
    else this.#onServerSegment(s);
  }

  /** @internal */
  bind(record: BoundRecord, consumedInput: number, atNs: bigint): void {
    this.record = record;
    if (this.clientSyn && this.clientSyn.isn !== record.clientIsn) {
      this.#markUnsafe('isn-mismatch', `captured client ISN ${this.clientSyn.isn} != record ${record.clientIsn}`, atNs);
    }
    if (this.serverSynAck && this.serverSynAck.isn !== record.serverIsn) {
      this.#markUnsafe('isn-mismatch', `captured server ISN ${this.serverSynAck.isn} != record ${record.serverIsn}`, atNs);
    }
    const deferred = this.#deferredPrune;
    this.#deferredPrune = undefined;
    const prune = Math.max(deferred ?? 0, consumedInput);
    if (prune > 0 || this.origin === 'mid-stream') this.pruneToOffset(prune);
  }

  /** @internal Drops client bytes below `offset`; returns the bytes dropped. */
  pruneToOffset(offset: number): number {
    const pos = this.clientPositionOfOffset(offset);
    if (pos === undefined) {
      this.#deferredPrune = Math.max(this.#deferredPrune ?? 0, offset);
      return 0;
    }
    return this.#pruneTo(pos);
  }

  /** @internal */
  setState(state: TrackedConnectionState): void {
    const previous = this.#state;
    if (previous === state) return;
    this.#state = state;
    this.#onState(this, state, previous);
  }

  // ---------------------------------------------------------------------------

  #onClientSegment(s: TcpSegment): void {
    const seqPos = this.clientSpace.observe(s.seq);
    if ((s.flags & TcpFlag.URG) !== 0) this.#markUnsafe('urgent-data', `the client sent urgent data at seq ${s.seq}`, s.tsNs);
    if (s.payload.length > 0) this.#insert(seqPos, s.payload, s.tsNs);
    if ((s.flags & TcpFlag.FIN) !== 0) {
      this.clientFinPos = seqPos + s.payload.length;
      this.clientSpace.observe(seqAdd(s.seq, s.payload.length + 1));
      if (this.#state === 'established' || this.#state === 'handshake') this.setState('client-fin');
    }
    if ((s.flags & TcpFlag.ACK) !== 0) {
      const ackPos = this.serverSpace.observe(s.ack);
      if (!this.clientAck || ackPos >= this.clientAck.ackPos) this.clientAck = { ack: s.ack, ackPos, atNs: s.tsNs };
      const w = this.clientWindow;
      // RFC 793: the window comes from the newest segment (SND.WL1), or the same one with a newer ACK (SND.WL2).
      if (!w || seqPos > w.seqPos || (seqPos === w.seqPos && ackPos >= w.ackPos)) {
        this.clientWindow = { seq: s.seq, seqPos, ackPos, window: s.window, atNs: s.tsNs };
      }
      if (this.#state === 'handshake' && this.serverSynAck) this.setState('established');
    }
    const { tsval, tsecr } = s.options;
    if (tsval !== undefined) {
      if (!this.clientTsval || seqDiff(tsval, this.clientTsval.value) >= 0) this.clientTsval = { value: tsval, atNs: s.tsNs };
      if (tsecr !== undefined && tsecr !== 0 && (!this.clientTsecr || seqDiff(tsecr, this.clientTsecr.value) >= 0)) {
        this.clientTsecr = { value: tsecr, atNs: s.tsNs };
      }
    }
  }

  #onServerSegment(s: TcpSegment): void {
    if ((s.flags & TcpFlag.SYN) !== 0) {
      const options = s.options as TcpOptions;
      this.serverSynAck = synInfo(s);
      this.serverSpace.observe(s.seq);
      this.serverSpace.observe(seqAdd(s.seq, 1));
      this.clientSpace.observe(s.ack);
      this.#checkSynOptions('SYN-ACK', this.serverSynAck, options, s.tsNs);
      if (this.record && this.record.serverIsn !== s.seq) {
        this.#markUnsafe('isn-mismatch', `captured server ISN ${s.seq} != record ${this.record.serverIsn}`, s.tsNs);
      }
      if (s.options.tsval !== undefined) this.#onServerTsval(s.options.tsval, s.tsNs);
      return;
    }
    const seqPos = this.serverSpace.observe(s.seq);
    const end = seqPos + s.payload.length;
    if (s.payload.length > 0 && (this.serverSentEndPos === undefined || end > this.serverSentEndPos)) this.serverSentEndPos = end;
    if ((s.flags & TcpFlag.FIN) !== 0) {
      this.serverFinPos = end;
      if (this.#state !== 'server-fin') this.setState('server-fin');
    }
    if ((s.flags & TcpFlag.ACK) !== 0) {
      const ackPos = this.clientSpace.observe(s.ack);
      if (!this.serverAck || ackPos >= this.serverAck.ackPos) {
        this.serverAck = { ack: s.ack, ackPos, window: s.window, atNs: s.tsNs };
        this.#checkHole(s.tsNs);
      }
    }
    if (s.options.tsval !== undefined) this.#onServerTsval(s.options.tsval, s.tsNs);
  }

  #onServerTsval(tsval: number, atNs: bigint): void {
    if (!this.serverTsval || seqDiff(tsval, this.serverTsval.value) >= 0) this.serverTsval = { value: tsval, atNs };
    const first = this.#firstServerTsval;
    if (!first) {
      this.#firstServerTsval = { value: tsval, atNs };
      return;
    }
    const spanNs = atNs - first.atNs;
    if (spanNs < USEC_CHECK_SPAN_NS || this.unsafe.some((u) => u.code === 'usec-timestamps')) return;
    const rate = seqDiff(tsval, first.value) / (Number(spanNs) / 1e6);
    if (rate > USEC_CLOCK_RATE) {
      this.#markUnsafe('usec-timestamps', `the primary's TSval advanced ${rate.toFixed(0)} per ms: a microsecond timestamp clock (TCP_TIMESTAMP bit 0)`, atNs);
    }
  }

  #checkSynOptions(what: string, syn: SynInfo, options: TcpOptions, atNs: bigint): void {
    if (syn.wscale !== undefined && syn.wscale > MAX_WSCALE) {
      this.#markUnsafe('unsupported-option', `${what} window scale ${syn.wscale} > ${MAX_WSCALE}`, atNs);
    }
    if (options.unknownKinds && options.unknownKinds.length > 0) {
      this.#markUnsafe('unsupported-option', `${what} carries option kind(s) ${options.unknownKinds.join(', ')} a repaired socket cannot reproduce`, atNs);
    }
  }

  #insert(pos: number, payload: Buffer, atNs: bigint): void {
    let start = pos;
    let data = payload;
    if (this.#prunePos !== undefined && start < this.#prunePos) {
      const cut = this.#prunePos - start;
      if (cut >= data.length) {
        this.duplicateBytes += data.length;
        return;
      }
      this.duplicateBytes += cut;
      data = data.subarray(cut);
      start = this.#prunePos;
    }
    const end = start + data.length;
    const last = this.#intervals[this.#intervals.length - 1];
    // Fast path: the next in-order bytes.
    if (last && last.end === start) {
      if (!this.#reserve(data.length, atNs)) return;
      last.chunks.push(Buffer.from(data));
      last.end = end;
      return;
    }
    if (!last || start > last.end) {
      const expected = last ? last.end : this.#coverageStart();
      if (expected !== undefined && start > expected) this.outOfOrderSegments++;
      if (!this.#reserve(data.length, atNs)) return;
      this.#intervals.push({ start, end, chunks: [Buffer.from(data)] });
      return;
    }
    // General case: keep the first copy of every byte, add only what is missing, then merge neighbours.
    const gaps: Array<[number, number]> = [];
    let cursor = start;
    for (const iv of this.#intervals) {
      if (iv.end <= cursor) continue;
      if (iv.start >= end) break;
      if (iv.start > cursor) gaps.push([cursor, iv.start]);
      cursor = Math.max(cursor, iv.end);
      if (cursor >= end) break;
    }
    if (cursor < end) gaps.push([cursor, end]);
    const added = gaps.reduce((n, [a, b]) => n + (b - a), 0);
    this.duplicateBytes += data.length - added;
    if (added === 0) return;
    if (!this.#reserve(added, atNs)) return;
    for (const [a, b] of gaps) this.#intervals.push({ start: a, end: b, chunks: [Buffer.from(data.subarray(a - start, b - start))] });
    this.#intervals.sort((x, y) => x.start - y.start);
    const merged: Interval[] = [];
    for (const iv of this.#intervals) {
      const prev = merged[merged.length - 1];
      if (prev && prev.end === iv.start) {
        prev.chunks.push(...iv.chunks);
        prev.end = iv.end;
      } else {
        merged.push(iv);
      }
    }
    this.#intervals = merged;
    if (this.serverAck) this.#checkHole(atNs);
  }

  #reserve(bytes: number, atNs: bigint): boolean {
    if (this.#bufferedBytes + bytes > this.#maxBufferedBytes) {
      this.#markUnsafe('buffer-limit', `more than ${this.#maxBufferedBytes} unconsumed client bytes: later bytes are not kept (is the record's consumedInput replicated?)`, atNs);
      return false;
    }
    this.#bufferedBytes += bytes;
    return true;
  }

  #pruneTo(pos: number): number {
    if (this.#prunePos !== undefined && pos <= this.#prunePos) return 0;
    this.#prunePos = pos;
    let dropped = 0;
    const kept: Interval[] = [];
    for (const iv of this.#intervals) {
      if (iv.end <= pos) {
        dropped += iv.end - iv.start;
        continue;
      }
      if (iv.start < pos) {
        let cut = pos - iv.start;
        dropped += cut;
        while (cut > 0) {
          const first = iv.chunks[0];
          if (first.length <= cut) {
            iv.chunks.shift();
            cut -= first.length;
          } else {
            iv.chunks[0] = first.subarray(cut);
            cut = 0;
          }
        }
        iv.start = pos;
      }
      kept.push(iv);
    }
    this.#intervals = kept;
    this.#bufferedBytes -= dropped;
    this.#checkHole(this.lastSeenNs);
    return dropped;
  }

  /** Where the capture claims every byte: the prune point, else the first data byte when the SYN was seen. */
  #coverageStart(): number | undefined {
    if (this.#prunePos !== undefined) return this.#prunePos;
    if (this.clientSyn) return this.clientSpace.position(seqAdd(this.clientSyn.isn, 1));
    return undefined;
  }

  #checkHole(atNs: bigint): void {
    const start = this.#coverageStart();
    const ack = this.serverAck;
    if (start === undefined || !ack) return;
    // The ACK of a client FIN covers one sequence number that carries no byte.
    const dataAck = this.clientFinPos !== undefined && ack.ackPos > this.clientFinPos ? this.clientFinPos : ack.ackPos;
    const end = this.contiguousEnd(start);
    if (dataAck <= end) {
      this.hole = undefined;
      return;
    }
    const isNew = this.hole === undefined;
    this.hole = { from: end, to: dataAck };
    if (isNew) {
      const reason: UnsafeReason = {
        code: 'capture-hole',
        detail: `the primary acknowledged client bytes the capture missed: positions [${end}, ${dataAck}) (${dataAck - end} bytes)`,
        atNs,
      };
      this.#onUnsafe(this, reason, true);
    }
  }

  #markUnsafe(code: UnsafeCode, detail: string, atNs: bigint): void {
    if (this.unsafe.some((u) => u.code === code)) return;
    const reason: UnsafeReason = { code, detail, atNs };
    this.unsafe.push(reason);
    this.#onUnsafe(this, reason, false);
  }
}

function synInfo(s: TcpSegment): SynInfo {
  const o = s.options;
  const fromServer = (s.flags & TcpFlag.ACK) !== 0;
  return {
    isn: s.seq,
    ...(o.mss !== undefined ? { mss: o.mss } : {}),
    ...(o.wscale !== undefined ? { wscale: o.wscale } : {}),
    sackPermitted: o.sackPerm === true,
    timestamps: o.tsval !== undefined,
    window: s.window,
    ...(fromServer ? { ack: s.ack } : {}),
    ecn: fromServer ? (s.flags & TcpFlag.ECE) !== 0 : (s.flags & (TcpFlag.ECE | TcpFlag.CWR)) === (TcpFlag.ECE | TcpFlag.CWR),
    atNs: s.tsNs,
  };
}

// -----------------------------------------------------------------------------

export interface ConnectionTrackerOptions {
  /** The service (VIP) port; segments to or from it are tracked. */
  servicePort: number;
  /** The service (VIP) address; default: any address with the service port. */
  serviceAddress?: string;
  /** Client bytes kept per connection beyond the prune point (default 16 MiB); beyond it the connection is marked unsafe. */
  maxBufferedBytes?: number;
  /** How long a closed 4-tuple's stray segments are ignored instead of opening a mid-stream entry, ms of capture time (default 60 000). */
  closedLingerMs?: number;
}

/** Counters since the tracker was created. */
export interface ConnectionTrackerStats {
  segments: number;
  /** Segments of other addresses/ports, or stray ones of a closed connection. */
  ignoredSegments: number;
  connectionsOpened: number;
  /** Connections first seen after their SYN. */
  connectionsMidStream: number;
  connectionsClosed: number;
  /** Client bytes captured more than once (retransmissions, overlaps). */
  duplicateBytes: number;
  outOfOrderSegments: number;
  /** Times a connection's capture was found missing bytes the primary acknowledged. */
  holesDetected: number;
  /** Connections marked unsafe for another reason (UnsafeCode other than capture-hole). */
  unsafeMarks: number;
  /** Per UnsafeCode, how often it was detected. */
  unsafeByCode: Partial<Record<UnsafeCode, number>>;
  truncatedSegments: number;
}

export type ConnectionTrackerEvents = {
  /** A connection was first seen (SYN, or mid-stream). */
  connection: [conn: TrackedConnection];
  /** A connection changed state. */
  state: [conn: TrackedConnection, state: TrackedConnectionState, previous: TrackedConnectionState];
  /** Something makes a rebuild of this connection unsafe (a capture hole may heal once the primary's application consumed past it). */
  unsafe: [conn: TrackedConnection, reason: UnsafeReason];
  /** A connection was dropped. */
  close: [conn: TrackedConnection, reason: CloseReason];
  /** A listener threw; the tracker itself is unaffected. */
  listenererror: [event: string, error: unknown];
};

export class ConnectionTracker extends EventEmitter<ConnectionTrackerEvents> {
  readonly servicePort: number;
  readonly serviceAddress: string | undefined;
  readonly #maxBufferedBytes: number;
  readonly #lingerNs: bigint;
  readonly #connections = new Map<string, TrackedConnection>();
  /** Recently closed 4-tuples: capture time until which stray segments are ignored. */
  readonly #closed = new Map<string, bigint>();
  #stats: ConnectionTrackerStats = {
    segments: 0,
    ignoredSegments: 0,
    connectionsOpened: 0,
    connectionsMidStream: 0,
    connectionsClosed: 0,
    duplicateBytes: 0,
    outOfOrderSegments: 0,
    holesDetected: 0,
    unsafeMarks: 0,
    unsafeByCode: {},
    truncatedSegments: 0,
  };
  #closedTracker = false;
  #lastNs = 0n;

  constructor(options: ConnectionTrackerOptions) {
    super();
    if (!Number.isInteger(options.servicePort) || options.servicePort <= 0 || options.servicePort > 65535) {
      throw new TrackerInvalidArgumentError(`servicePort ${options.servicePort} is not a TCP port`);
    }
    this.servicePort = options.servicePort;
    this.serviceAddress = options.serviceAddress;
    this.#maxBufferedBytes = options.maxBufferedBytes ?? 16 * 1024 * 1024;
    this.#lingerNs = BigInt(Math.round((options.closedLingerMs ?? 60_000) * 1e6));
  }

  get closed(): boolean {
    return this.#closedTracker;
  }

  /** Number of tracked connections. */
  get size(): number {
    return this.#connections.size;
  }

  /** Counters (a copy). Duplicate and out-of-order figures include connections already dropped. */
  get stats(): ConnectionTrackerStats {
    let duplicateBytes = this.#stats.duplicateBytes;
    let outOfOrderSegments = this.#stats.outOfOrderSegments;
    for (const c of this.#connections.values()) {
      duplicateBytes += c.duplicateBytes;
      outOfOrderSegments += c.outOfOrderSegments;
    }
    return { ...this.#stats, duplicateBytes, outOfOrderSegments, unsafeByCode: { ...this.#stats.unsafeByCode } };
  }

  /** Subscribes to a capture's segment batches; returns the unsubscribe function. */
  attach(capture: PacketCapture): () => void {
    const listener = (segments: TcpSegment[]): void => this.ingest(segments);
    capture.on('segments', listener);
    return () => capture.off('segments', listener);
  }

  /** Feeds a batch of captured segments, in capture order. */
  ingest(segments: readonly TcpSegment[]): void {
    if (this.#closedTracker) return;
    for (const s of segments) this.#ingestOne(s);
  }

  get(connKey: string): TrackedConnection | undefined {
    return this.#connections.get(connKey);
  }

  connections(): IterableIterator<TrackedConnection> {
    return this.#connections.values();
  }

  /**
   * Binds the primary's TransportRecord (replicated at accept): ISNs for a
   * connection first seen mid-stream, the negotiated options, and the consumed
   * offset as the first prune point. Creates the entry when the capture has not
   * seen the connection yet. Marks it unsafe when the ISNs differ from the capture.
   */
  bindRecord(record: TransportRecord): TrackedConnection {
    const key = recordConnectionKey(record);
    let conn = this.#connections.get(key);
    if (!conn) {
      this.#closed.delete(key);
      conn = this.#create(key, { ...record.remote }, { ...record.local }, 'mid-stream', this.#lastNs);
    }
    conn.bind(
      {
        connId: record.connId,
        clientIsn: record.clientIsn >>> 0,
        serverIsn: record.serverIsn >>> 0,
        sndWscale: record.sndWscale,
        rcvWscale: record.rcvWscale,
        sack: record.sack,
        timestamps: record.timestamps,
        mss: record.mss,
      },
      record.consumedInput,
      this.#lastNs,
    );
    return conn;
  }

  /**
   * Drops the client bytes below `consumedInputOffset` (the primary's application
   * consumed them; offsets count from the client's first data byte). Before the
   * client ISN is known (mid-stream, no record bound yet) the prune is applied
   * when it becomes known. Returns the bytes dropped now; 0 for an unknown connection.
   */
  prune(connKey: string, consumedInputOffset: number): number {
    if (!Number.isSafeInteger(consumedInputOffset) || consumedInputOffset < 0) {
      throw new TrackerInvalidArgumentError(`consumedInputOffset ${consumedInputOffset} must be a non-negative integer`);
    }
    return this.#connections.get(connKey)?.pruneToOffset(consumedInputOffset) ?? 0;
  }

  /**
   * Stops tracking a connection (e.g. once it was rebuilt here: this host's own
   * segments are not captured) and ignores its stray segments until a new SYN.
   */
  release(connKey: string): boolean {
    const conn = this.#connections.get(connKey);
    if (!conn) return false;
    this.#drop(conn, 'released');
    return true;
  }

  /** Drops every connection; idempotent. */
  close(): void {
    if (this.#closedTracker) return;
    for (const conn of [...this.#connections.values()]) this.#drop(conn, 'tracker-closed');
    this.#closedTracker = true;
    this.#closed.clear();
  }

  // ---------------------------------------------------------------------------

  #ingestOne(s: TcpSegment): void {
    this.#stats.segments++;
    if (s.tsNs > this.#lastNs) this.#lastNs = s.tsNs;
    const toService = s.dstPort === this.servicePort && (this.serviceAddress === undefined || s.dstIp === this.serviceAddress);
    const fromService = s.srcPort === this.servicePort && (this.serviceAddress === undefined || s.srcIp === this.serviceAddress);
    if (toService === fromService) {
      // Neither (another flow), or both (service port on both ends): not a client connection.
      this.#stats.ignoredSegments++;
      return;
    }
    if (s.truncated) this.#stats.truncatedSegments++;
    const client: Endpoint = toService ? { address: s.srcIp, port: s.srcPort } : { address: s.dstIp, port: s.dstPort };
    const server: Endpoint = toService ? { address: s.dstIp, port: s.dstPort } : { address: s.srcIp, port: s.srcPort };
    const key = connectionKey(client, server);
    let conn = this.#connections.get(key);

    if ((s.flags & TcpFlag.RST) !== 0) {
      if (conn) this.#drop(conn, toService ? 'reset-by-client' : 'reset-by-server');
      else this.#stats.ignoredSegments++;
      return;
    }

    const syn = (s.flags & TcpFlag.SYN) !== 0;
    if (syn && toService && (s.flags & TcpFlag.ACK) === 0) {
      if (conn?.clientSyn?.isn === s.seq) {
        conn.segments++; // a retransmitted SYN
        return;
      }
      // Only an entry made by bindRecord() for this very SYN is kept; anything else is an older connection on the same 4-tuple.
      if (conn && !(conn.clientSyn === undefined && conn.record?.clientIsn === s.seq)) {
        this.#drop(conn, 'superseded-by-new-syn');
        conn = undefined;
      }
      if (!conn) {
        this.#closed.delete(key);
        conn = this.#create(key, client, server, 'syn', s.tsNs);
      }
      conn.segments++;
      conn.onClientSyn(s);
      return;
    }

    if (!conn) {
      const lingerUntil = this.#closed.get(key);
      if (lingerUntil !== undefined && s.tsNs <= lingerUntil) {
        this.#stats.ignoredSegments++;
        return;
      }
      this.#closed.delete(key);
      conn = this.#create(key, client, server, 'mid-stream', s.tsNs);
    }
    conn.onSegment(s, toService);
    if (conn.clientFinPos !== undefined && conn.serverFinPos !== undefined) this.#drop(conn, 'fin-both-ways');
  }

  #create(key: string, client: Endpoint, server: Endpoint, origin: TrackedConnectionOrigin, atNs: bigint): TrackedConnection {
    const conn = new TrackedConnection({
      key,
      client,
      server,
      origin,
      atNs,
      maxBufferedBytes: this.#maxBufferedBytes,
      onUnsafe: (c, reason, isHole) => {
        if (isHole) this.#stats.holesDetected++;
        else this.#stats.unsafeMarks++;
        this.#stats.unsafeByCode[reason.code] = (this.#stats.unsafeByCode[reason.code] ?? 0) + 1;
        this.#safeEmit('unsafe', c, reason);
      },
      onState: (c, state, previous) => this.#safeEmit('state', c, state, previous),
    });
    this.#connections.set(key, conn);
    this.#stats.connectionsOpened++;
    if (origin === 'mid-stream') this.#stats.connectionsMidStream++;
    this.#safeEmit('connection', conn);
    return conn;
  }

  #drop(conn: TrackedConnection, reason: CloseReason): void {
    if (this.#connections.get(conn.key) !== conn) return;
    this.#connections.delete(conn.key);
    this.#stats.connectionsClosed++;
    this.#stats.duplicateBytes += conn.duplicateBytes;
    this.#stats.outOfOrderSegments += conn.outOfOrderSegments;
    if (reason !== 'superseded-by-new-syn' && reason !== 'tracker-closed') {
      this.#closed.set(conn.key, (this.#lastNs > conn.lastSeenNs ? this.#lastNs : conn.lastSeenNs) + this.#lingerNs);
      this.#sweepClosed();
    }
    this.#safeEmit('close', conn, reason);
  }

  #sweepClosed(): void {
    if (this.#closed.size < 1024) return;
    for (const [key, until] of this.#closed) if (until < this.#lastNs) this.#closed.delete(key);
    // Still too many (a connection storm): forget the oldest; a stray segment then opens a harmless mid-stream entry.
    while (this.#closed.size > 4096) this.#closed.delete(this.#closed.keys().next().value as string);
  }

  #safeEmit<K extends keyof ConnectionTrackerEvents>(event: K, ...args: ConnectionTrackerEvents[K]): void {
    try {
      (this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args);
    } catch (error) {
      if (event === 'listenererror') return;
      (this.emit as (e: string, ...a: unknown[]) => boolean)('listenererror', event, error);
    }
  }
}
