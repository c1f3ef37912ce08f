// Pure tests of the standby's takeover bookkeeping: the capture's connection tracker,
// the output log and the repair plan, fed with synthetic segments. No root, no addon.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seqAdd, seqDiff, TcpFlag } from '../../native/src/index.ts';
import { ConnectionTracker, connectionKey, recordConnectionKey, type TrackedConnection, type UnsafeReason } from '../../mcu/src/takeover/transport/connection-tracker.ts';
import { OutputLogConflictError, OutputLogGapError, OutputLogRangeError, OutputLogWrongConnectionError } from '../../mcu/src/takeover/errors.ts';
import { OutputLog } from '../../mcu/src/takeover/transport/output-log.ts';
import { planRepair, type RepairPlan } from '../../mcu/src/takeover/transport/repair-plan.ts';
import { SequenceSpace, wrapSeq } from '../../mcu/src/takeover/transport/sequence-space.ts';
import { Conversation } from '../fixtures/takeover-segments.ts';

const PORT = 3000;
const VIP = '10.213.0.100';

function tracker(): ConnectionTracker {
  return new ConnectionTracker({ servicePort: PORT, serviceAddress: VIP });
}

function tracked(t: ConnectionTracker, c: Conversation): TrackedConnection {
  const conn = t.get(connectionKey(c.client, c.server));
  assert.ok(conn, 'connection is tracked');
  return conn;
}

/** The client's stream as the tracker holds it from offset `from`. */
function heldFrom(conn: TrackedConnection, from: number): string {
  const pos = conn.clientPositionOfOffset(from);
  assert.notEqual(pos, undefined);
  return conn.clientBytesFrom(pos!).toString();
}

function handshake(t: ConnectionTracker, c: Conversation): void {
  t.ingest([c.syn(), c.synAck(), c.handshakeAck()]);
}

function logOf(c: Conversation, connId = 'conn-1'): OutputLog {
  const log = new OutputLog(connId);
  if (c.serverBytes.length > 0) log.append({ connId, offset: 0, data: c.serverBytes });
  return log;
}

function assertOk(plan: RepairPlan): Extract<RepairPlan, { ok: true }> {
  if (!plan.ok) assert.fail(`plan refused: ${plan.code}: ${plan.reason}`);
  return plan;
}

describe('SequenceSpace', () => {
  it('unwraps sequence numbers across 2^32 in both directions', () => {
    const space = new SequenceSpace();
    const a = space.observe(0xffff_fff0);
    assert.equal(space.observe(0x10), a + 0x20, 'after the wrap');
    assert.equal(space.position(0xffff_ffff), a + 0x0f, 'before the wrap, looked up after it');
    assert.equal(wrapSeq(space.position(0x10)), 0x10);
    assert.equal(wrapSeq(-1), 0xffff_ffff);
    // A long-lived stream: positions keep growing past several wrap-arounds.
    let seq = 0xffff_fff0;
    for (let i = 0; i < 10; i++) {
      seq = seqAdd(seq, 2 ** 30);
      space.observe(seq);
    }
    assert.equal(space.highest, a + 10 * 2 ** 30);
    assert.equal(wrapSeq(space.highest!), seq);
  });
});

describe('ConnectionTracker', () => {
  it('records both SYNs, their options and ISNs, and the handshake state', () => {
    const t = tracker();
    const states: string[] = [];
    t.on('state', (_c, s) => states.push(s));
    const c = new Conversation({ clientIsn: 123, serverIsn: 456 });
    handshake(t, c);
    const conn = tracked(t, c);
    assert.equal(conn.origin, 'syn');
    assert.equal(conn.state, 'established');
    assert.deepEqual(states, ['established']);
    assert.equal(conn.clientSyn?.isn, 123);
    assert.equal(conn.clientSyn?.mss, 1460);
    assert.equal(conn.clientSyn?.wscale, 7);
    assert.equal(conn.clientSyn?.sackPermitted, true);
    assert.equal(conn.clientSyn?.timestamps, true);
    assert.equal(conn.serverSynAck?.isn, 456);
    assert.equal(conn.serverSynAck?.wscale, 9);
    assert.equal(conn.serverSynAck?.ack, 124);
    assert.equal(conn.clientAck?.ack, 457);
    assert.equal(t.stats.connectionsOpened, 1);
    assert.equal(t.stats.connectionsMidStream, 0);
    // A retransmitted SYN changes nothing.
    t.ingest([c.syn()]);
    assert.equal(t.get(conn.key), conn);
  });

  it('ignores segments of other ports and addresses', () => {
    const t = tracker();
    const other = new Conversation({ server: { address: '10.213.0.2', port: PORT } });
    const otherPort = new Conversation({ server: { address: VIP, port: 3001 } });
    t.ingest([other.syn(), otherPort.syn(), other.synAck()]);
    assert.equal(t.size, 0);
    assert.equal(t.stats.ignoredSegments, 3);
  });

  it('reassembles the client stream in order and tracks both sides', () => {
    const t = tracker();
    const c = new Conversation();
    handshake(t, c);
    t.ingest([c.clientData('hello '), c.serverAck(), c.serverData('s0\n'), c.clientData('world\n'), c.serverData('s1\n'), c.clientAck()]);
    const conn = tracked(t, c);
    assert.equal(heldFrom(conn, 0), 'hello world\n');
    assert.equal(heldFrom(conn, 6), 'world\n');
    assert.equal(conn.serverSentEndPos! - conn.serverSpace.position(seqAdd(c.serverIsn, 1)), 6);
    assert.equal(conn.clientAck?.ack, c.serverNext);
    assert.equal(conn.serverAck?.ack, seqAdd(c.clientIsn, 1 + 12), 'the server data segment acknowledged all client bytes');
    assert.equal(conn.serverAck?.window, 128);
    assert.equal(conn.clientWindow?.window, 502);
    assert.equal(conn.clientTsval?.value, c.clientTsval);
    assert.equal(conn.serverTsval?.value, c.serverTsval);
    assert.equal(conn.hole, undefined);
  });

  it('puts out-of-order segments in place and keeps the first copy of retransmitted bytes', () => {
    const t = tracker();
    const c = new Conversation();
    handshake(t, c);
    const a = c.clientData('AAAA');
    const b = c.clientData('BBBB');
    const d = c.clientData('CCCC');
    t.ingest([d, a]);
    const conn = tracked(t, c);
    assert.equal(heldFrom(conn, 0), 'AAAA', 'stops at the gap');
    assert.deepEqual(conn.heldRanges.length, 2);
    assert.equal(conn.outOfOrderSegments, 1);
    // A retransmission overlapping both sides of the gap fills it.
    const overlap = Conversation.resend(b, { seq: seqAdd(a.seq, 2), payload: Buffer.from('AABBBBCC') });
    t.ingest([overlap, a, b]);
    assert.equal(heldFrom(conn, 0), 'AAAABBBBCCCC');
    assert.equal(conn.heldRanges.length, 1);
    assert.equal(conn.duplicateBytes, 4 + 4 + 4, 'AA..CC of the overlap, then a and b again');
    assert.equal(conn.bufferedBytes, 12);
  });

  it('reassembles randomly cut, reordered and duplicated segments exactly (seeded, across the wrap)', () => {
    let seed = 12345;
    const random = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (let round = 0; round < 20; round++) {
      const t = tracker();
      const c = new Conversation({ clientIsn: (0xffff_ffff - Math.floor(random() * 3000)) >>> 0, client: { address: '10.213.0.1', port: 1000 + round } });
      handshake(t, c);
      const segments = [];
      for (let i = 0; i < 60; i++) {
        const size = 1 + Math.floor(random() * 200);
        segments.push(c.clientData(Buffer.from(Array.from({ length: size }, () => 32 + Math.floor(random() * 90)))));
      }
      // Retransmissions, some re-cut across segment boundaries.
      for (let i = 0; i < 20; i++) {
        const from = Math.floor(random() * c.clientBytes.length);
        const to = Math.min(c.clientBytes.length, from + 1 + Math.floor(random() * 400));
        segments.push(Conversation.resend(segments[0], { seq: seqAdd(c.clientIsn, 1 + from), payload: c.clientBytes.subarray(from, to) }));
      }
      for (let i = segments.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [segments[i], segments[j]] = [segments[j], segments[i]];
      }
      const prunedAt = Math.floor(c.clientBytes.length / 3);
      t.ingest(segments.slice(0, 40));
      t.prune(connectionKey(c.client, c.server), prunedAt);
      t.ingest(segments.slice(40));
      const conn = tracked(t, c);
      assert.equal(heldFrom(conn, prunedAt), c.clientBytes.subarray(prunedAt).toString(), `round ${round}`);
      assert.equal(conn.bufferedBytes, c.clientBytes.length - prunedAt);
      assert.equal(conn.heldRanges.length, 1);
    }
  });

  it('follows the streams across the 2^32 wrap-around', () => {
    const t = tracker();
    const c = new Conversation({ clientIsn: 0xffff_fff8, serverIsn: 0xffff_fffd });
    handshake(t, c);
    const x = c.clientData('0123456789'); // crosses 2^32 at byte 7
    const y = c.clientData('abcdef');
    t.ingest([y, x, c.serverData('server-bytes-across-the-wrap'), c.clientAck()]);
    const conn = tracked(t, c);
    assert.equal(heldFrom(conn, 0), '0123456789abcdef');
    assert.equal(heldFrom(conn, 9), '9abcdef');
    assert.ok(c.clientNext < 100 && c.serverNext < 100, 'both sequence numbers wrapped');

    const log = logOf(c);
    const plan = assertOk(planRepair(c.record(), conn, log, c.nowMs));
    assert.equal(plan.state.recvSeq, c.clientNext);
    assert.equal(plan.state.recvSeq, seqAdd(0xffff_fff8, 1 + 16));
    assert.equal(plan.state.sendSeq, c.serverNext);
    assert.equal(plan.pendingInput.toString(), '0123456789abcdef');
    assert.equal(plan.writeAfterRepair.length, 0);
    assert.equal(plan.details.clientAckedOutput, 28);

    // Prune across the wrap: the application consumed 12 bytes.
    assert.equal(t.prune(conn.key, 12), 12);
    const consumed = assertOk(planRepair(c.record({ consumedInput: 12 }), conn, log, c.nowMs));
    assert.equal(consumed.pendingInput.toString(), 'cdef');
    assert.equal(consumed.state.recvSeq, c.clientNext);
  });

  it('prunes consumed bytes, ignores retransmissions below the prune point, keeps memory bounded', () => {
    const t = tracker();
    const c = new Conversation();
    handshake(t, c);
    const segs = Array.from({ length: 100 }, (_, i) => c.clientData(`line ${String(i).padStart(3, '0')}\n`));
    t.ingest(segs);
    const conn = tracked(t, c);
    assert.equal(conn.bufferedBytes, 900);
    assert.equal(t.prune(conn.key, 450), 450);
    assert.equal(conn.bufferedBytes, 450);
    assert.equal(heldFrom(conn, 450), c.clientBytes.subarray(450).toString());
    assert.equal(t.prune(conn.key, 300), 0, 'a prune point never goes back');
    t.ingest([segs[10], segs[49]]);
    assert.equal(conn.bufferedBytes, 450, 'retransmissions of consumed bytes are not kept');
    assert.equal(t.prune(conn.key, 449 + 5), 4, 'prune inside a segment');
    assert.equal(heldFrom(conn, 454), c.clientBytes.subarray(454).toString());
    assert.equal(t.prune(conn.key, 900), 446);
    assert.equal(conn.bufferedBytes, 0);
    assert.equal(t.prune('nobody', 10), 0);
  });

  it('marks the connection unsafe past maxBufferedBytes', () => {
    const t = new ConnectionTracker({ servicePort: PORT, maxBufferedBytes: 10 });
    const c = new Conversation();
    handshake(t, c);
    t.ingest([c.clientData('12345678'), c.clientData('90ab')]);
    const conn = tracked(t, c);
    assert.deepEqual(conn.unsafe.map((u) => u.code), ['buffer-limit']);
    assert.equal(conn.bufferedBytes, 8);
  });

  it('tracks a connection first seen mid-stream, with ISNs and options from the record', () => {
    const t = tracker();
    const c = new Conversation({ clientIsn: 0xffff_ff00, serverIsn: 77 });
    // What happened before the standby started: not captured.
    c.syn();
    c.synAck();
    c.handshakeAck();
    c.clientData('before-1\n');
    c.serverData('s-before\n');
    c.clientData('before-2\n');
    c.serverAck();
    const consumedBefore = c.clientBytes.length;
    // The standby starts: the record comes by replication (consumed up to here), then segments.
    const record = c.record({ consumedInput: consumedBefore, committedOutput: c.serverBytes.length });
    const conn = t.bindRecord(record);
    assert.equal(conn.origin, 'mid-stream');
    assert.equal(conn.key, recordConnectionKey(record));
    t.ingest([c.clientData('after-1\n'), c.serverData('s-after\n'), c.clientData('after-2\n'), c.clientAck()]);
    assert.equal(t.get(conn.key), conn);
    assert.equal(t.stats.connectionsMidStream, 1);
    assert.equal(heldFrom(conn, consumedBefore), 'after-1\nafter-2\n');
    assert.equal(conn.hole, undefined);

    const log = new OutputLog('conn-1');
    log.append({ connId: 'conn-1', offset: 0, data: c.serverBytes });
    const plan = assertOk(planRepair(record, conn, log, c.nowMs));
    assert.equal(plan.details.optionsFrom, 'record');
    assert.equal(plan.state.mss, 1460);
    assert.equal(plan.state.sndWscale, 7);
    assert.equal(plan.state.rcvWscale, 9);
    assert.equal(plan.state.recvSeq, c.clientNext);
    assert.equal(plan.pendingInput.toString(), 'after-1\nafter-2\n');
    assert.equal(plan.state.sendSeq, c.serverNext);
  });

  it('applies a prune given before the record of a mid-stream connection once the record comes', () => {
    const t = tracker();
    const c = new Conversation({ clientIsn: 5 });
    c.syn();
    c.synAck();
    t.ingest([c.clientData('aaaa'), c.clientData('bbbb')]);
    const key = connectionKey(c.client, c.server);
    assert.equal(t.prune(key, 4), 0, 'client ISN unknown yet');
    const conn = t.bindRecord(c.record({ consumedInput: 0 }));
    assert.equal(conn.bufferedBytes, 4);
    assert.equal(heldFrom(conn, 4), 'bbbb');
  });

  it('detects client bytes the primary acknowledged but the capture missed, and lets a later prune heal it', () => {
    const t = tracker();
    const reasons: UnsafeReason[] = [];
    t.on('unsafe', (_c, r) => reasons.push(r));
    const c = new Conversation();
    handshake(t, c);
    const a = c.clientData('line-1\n');
    c.clientData('line-2\n'); // lost by the capture
    const d = c.clientData('line-3\n');
    t.ingest([a, d, c.serverData('ok\n')]); // the primary acknowledges all three
    const conn = tracked(t, c);
    assert.equal(t.stats.holesDetected, 1);
    assert.equal(reasons[0]?.code, 'capture-hole');
    assert.ok(conn.hole);
    assert.equal(conn.hole.to - conn.hole.from, 14, 'line-2 and line-3 are acknowledged beyond the contiguous capture');

    const log = logOf(c);
    const refused = planRepair(c.record(), conn, log, c.nowMs);
    assert.equal(refused.ok, false);
    assert.equal(!refused.ok && refused.code, 'capture-hole');
    assert.match(!refused.ok ? refused.reason : '', /acknowledged client bytes up to offset 21.*only up to 7/);

    // The application consumed past the hole: nothing missing is needed any more.
    t.prune(conn.key, 14);
    assert.equal(conn.hole, undefined);
    const plan = assertOk(planRepair(c.record({ consumedInput: 14 }), conn, log, c.nowMs));
    assert.equal(plan.pendingInput.toString(), 'line-3\n');
    assert.equal(t.stats.holesDetected, 1);
  });

  it('detects a hole between the consumed offset and the first byte captured mid-stream', () => {
    const t = tracker();
    const c = new Conversation();
    c.syn();
    c.synAck();
    c.handshakeAck();
    const record = c.record({ consumedInput: 0 });
    t.bindRecord(record);
    c.clientData('missed\n'); // sent before the capture started, not consumed yet
    t.ingest([c.clientData('seen\n'), c.serverAck()]);
    const conn = tracked(t, c);
    assert.equal(t.stats.holesDetected, 1);
    const plan = planRepair(record, conn, logOf(c), c.nowMs);
    assert.equal(!plan.ok && plan.code, 'capture-hole');
  });

  it('reports unsupported SYN options, SYN data, urgent data and a microsecond TSval clock', () => {
    const t = tracker();
    const wide = new Conversation({ client: { address: '10.213.0.1', port: 1 }, clientSynOptions: { mss: 1460, wscale: 15, sackPerm: true } });
    t.ingest([wide.syn()]);
    assert.deepEqual(tracked(t, wide).unsafe.map((u) => u.code), ['unsupported-option']);

    const unknown = new Conversation({ client: { address: '10.213.0.1', port: 2 } });
    const syn = unknown.syn();
    syn.options.unknownKinds = [30];
    t.ingest([syn]);
    assert.deepEqual(tracked(t, unknown).unsafe.map((u) => u.code), ['unsupported-option']);

    const tfo = new Conversation({ client: { address: '10.213.0.1', port: 3 } });
    t.ingest([{ ...tfo.syn(), payload: Buffer.from('GET') }]);
    assert.deepEqual(tracked(t, tfo).unsafe.map((u) => u.code), ['syn-data']);

    const urg = new Conversation({ client: { address: '10.213.0.1', port: 4 } });
    handshake(t, urg);
    t.ingest([urg.clientData('!', { flags: TcpFlag.URG })]);
    assert.deepEqual(tracked(t, urg).unsafe.map((u) => u.code), ['urgent-data']);

    const usec = new Conversation({ client: { address: '10.213.0.1', port: 5 } });
    handshake(t, usec);
    usec.tick(30);
    usec.serverTsval = (usec.serverTsval + 30_000) >>> 0; // 1000 per ms
    t.ingest([usec.serverData('x')]);
    assert.deepEqual(tracked(t, usec).unsafe.map((u) => u.code), ['usec-timestamps']);
    const plan = planRepair(usec.record(), tracked(t, usec), logOf(usec), usec.nowMs);
    assert.equal(!plan.ok && plan.code, 'unsafe-capture');

    assert.equal(t.stats.unsafeMarks, 5);
    assert.equal(t.stats.unsafeByCode['unsupported-option'], 2);
  });

  it('drops connections closed both ways or reset, ignores their stray segments, and reopens on a new SYN', () => {
    const t = tracker();
    const closes: string[] = [];
    t.on('close', (_c, reason) => closes.push(reason));
    const c = new Conversation();
    handshake(t, c);
    t.ingest([c.clientData('bye\n'), c.clientFin()]);
    assert.equal(tracked(t, c).state, 'client-fin');
    t.ingest([c.serverFin()]);
    assert.equal(t.size, 0);
    t.ingest([c.clientAck()]);
    assert.equal(t.size, 0, 'the last ACK of a closed connection opens nothing');
    assert.equal(t.stats.ignoredSegments, 1);

    const again = new Conversation({ clientIsn: 999 });
    handshake(t, again);
    assert.equal(t.size, 1, 'a new SYN on the same 4-tuple is a new connection');
    t.ingest([again.reset(true)]);
    assert.equal(t.size, 0);
    const third = new Conversation({ clientIsn: 5555 });
    handshake(t, third);
    t.ingest([third.reset(false)]);
    assert.deepEqual(closes, ['fin-both-ways', 'reset-by-client', 'reset-by-server']);
    assert.equal(t.stats.connectionsClosed, 3);
  });

  it('release() stops tracking a rebuilt connection; close() is idempotent', () => {
    const t = tracker();
    const c = new Conversation();
    handshake(t, c);
    const key = connectionKey(c.client, c.server);
    assert.equal(t.release(key), true);
    assert.equal(t.release(key), false);
    t.ingest([c.clientData('after the takeover\n')]);
    assert.equal(t.size, 0);
    handshake(t, new Conversation({ clientIsn: 42 }));
    t.close();
    t.close();
    assert.equal(t.closed, true);
    assert.equal(t.size, 0);
  });

  it('a throwing listener does not break the tracker', () => {
    const t = tracker();
    const errors: unknown[] = [];
    t.on('listenererror', (_e, err) => errors.push(err));
    t.on('connection', () => {
      throw new Error('listener bug');
    });
    const c = new Conversation();
    handshake(t, c);
    assert.equal(t.size, 1);
    assert.equal(errors.length, 1);
  });
});

describe('OutputLog', () => {
  it('appends contiguous chunks, accepts matching overlaps, refuses gaps and conflicts', () => {
    const log = new OutputLog('c');
    assert.equal(log.append({ connId: 'c', offset: 0, data: Buffer.from('hello ') }), 6);
    assert.equal(log.append({ connId: 'c', offset: 6, data: Buffer.from('world') }), 5);
    assert.equal(log.append({ connId: 'c', offset: 3, data: Buffer.from('lo world!') }), 1, 'replayed frame with a new tail');
    assert.equal(log.end, 12);
    assert.throws(() => log.append({ connId: 'c', offset: 13, data: Buffer.from('x') }), OutputLogGapError);
    assert.throws(() => log.append({ connId: 'c', offset: 4, data: Buffer.from('O') }), OutputLogConflictError);
    assert.throws(() => log.append({ connId: 'd', offset: 12, data: Buffer.from('x') }), OutputLogWrongConnectionError);
    assert.equal(log.bytes(0).toString(), 'hello world!');
    assert.equal(log.bytes(2, 8).toString(), 'llo wo');
    assert.equal(log.bytes(12).length, 0);
  });

  it('prunes below the acknowledged offset and refuses reads of pruned bytes', () => {
    const log = new OutputLog('c');
    for (let i = 0; i < 200; i++) log.append({ connId: 'c', offset: log.end, data: Buffer.from(`${String(i).padStart(4, '0')}\n`) });
    assert.equal(log.prune(502), 502);
    assert.equal(log.start, 502);
    assert.equal(log.length, 498);
    assert.equal(log.bytes(502, 510).toString(), '00\n0101\n');
    assert.throws(() => log.bytes(501), OutputLogRangeError);
    assert.throws(() => log.bytes(900, 1001), OutputLogRangeError);
    assert.equal(log.prune(400), 0);
    assert.equal(log.append({ connId: 'c', offset: 100, data: Buffer.alloc(0) }), 0, 'an old chunk below the prune point is ignored');
    assert.equal(log.prune(5000), 498, 'clamped to the end');
    assert.equal(log.length, 0);
    log.append({ connId: 'c', offset: 1000, data: Buffer.from('next') });
    assert.equal(log.bytes(1000).toString(), 'next');
  });

  it('can start at an offset (a standby joining an established connection)', () => {
    const log = new OutputLog('c', { startOffset: 4096 });
    assert.throws(() => log.append({ connId: 'c', offset: 5000, data: Buffer.from('x') }), OutputLogGapError);
    log.append({ connId: 'c', offset: 4090, data: Buffer.from('0123456789') });
    assert.equal(log.start, 4096);
    assert.equal(log.bytes(4096).toString(), '6789');
  });
});

describe('planRepair', () => {
  /** A connection with traffic both ways: the client acknowledged part of the output, more was sent, more only logged. */
  function scenario(): { t: ConnectionTracker; c: Conversation; conn: TrackedConnection; log: OutputLog } {
    const t = tracker();
    const c = new Conversation({ clientWindow: 600, serverWindow: 200 });
    handshake(t, c);
    t.ingest([c.clientData('c 0\n'), c.serverData('s 0\n'), c.clientData('c 1\n'), c.serverData('s 1\n')]);
    const acked = c.serverNext;
    t.ingest([c.serverData('s 2\n'), c.clientAck(acked), c.clientData('c 2\n', { ack: acked })]);
    const conn = tracked(t, c);
    const log = logOf(c);
    log.append({ connId: 'conn-1', offset: log.end, data: Buffer.from('s 3\n') }); // committed, never sent
    return { t, c, conn, log };
  }

  it('splits the output into the send queue (sent, unacknowledged) and what to write after repair', () => {
    const { c, conn, log } = scenario();
    const plan = assertOk(planRepair(c.record({ consumedInput: 4 }), conn, log, c.nowMs + 5));
    assert.equal(plan.state.sendSeq, seqAdd(c.serverIsn, 1 + 8), 'the client acknowledged s 0 and s 1');
    assert.equal(plan.state.sendQueue?.toString(), 's 2\n');
    assert.equal(plan.writeAfterRepair.toString(), 's 3\n');
    assert.equal(plan.pendingInput.toString(), 'c 1\nc 2\n', 'captured beyond the consumed offset');
    assert.equal(plan.state.recvSeq, seqAdd(c.clientIsn, 1 + 4 + 8));
    assert.equal(plan.state.recvSeq, c.clientNext, 'the end of the contiguous captured stream');
    assert.deepEqual(
      { ...plan.details, timestampAgeMs: 0 },
      {
        consumedInput: 4,
        inputEnd: 12,
        primaryAckedInput: 8,
        clientAckedOutput: 8,
        primarySentOutput: 12,
        logEnd: 16,
        sendQueueBytes: 4,
        optionsFrom: 'capture',
        timestampAgeMs: 0,
      },
    );
  });

  it('fills options, window and timestamp as design notes 9 say', () => {
    const { c, conn, log } = scenario();
    const lastClient = conn.clientWindow!;
    const plan = assertOk(planRepair(c.record({ consumedInput: 4 }), conn, log, c.nowMs + 25));
    const s = plan.state;
    assert.equal(s.localAddress, VIP);
    assert.equal(s.localPort, PORT);
    assert.equal(s.remoteAddress, c.client.address);
    assert.equal(s.remotePort, c.client.port);
    assert.equal(s.mss, 1460, "the client's SYN MSS");
    assert.equal(s.sndWscale, 7);
    assert.equal(s.rcvWscale, 9);
    assert.equal(s.sackPermitted, true);
    assert.equal(s.timestamps, true);
    assert.deepEqual(s.window, {
      sndWl1: lastClient.seq,
      sndWnd: 600 * 2 ** 7,
      maxWindow: 600 * 2 ** 7,
      rcvWnd: 200 * 2 ** 9,
      rcvWup: conn.serverAck!.ack,
    });
    assert.equal(s.window.sndWl1, seqAdd(c.clientIsn, 1 + 8), 'the seq of the client segment carrying the latest ACK');
    assert.equal(s.tsVal! % 2, 0, 'even: bit 0 would select the microsecond clock');
    const base = conn.serverTsval!.value;
    const age = 25 + (c.nowMs - Number(conn.serverTsval!.atNs / 1_000_000n));
    assert.ok(s.tsVal! >= base + age + 10 && s.tsVal! <= base + age + 12, `tsVal ${s.tsVal} beyond ${base} + ${age} ms + margin`);
  });

  it('handles a client that sent nothing new (no pending input)', () => {
    const { c, conn, log } = scenario();
    const plan = assertOk(planRepair(c.record({ consumedInput: 12 }), conn, log, c.nowMs));
    assert.equal(plan.pendingInput.length, 0);
    assert.equal(plan.state.recvSeq, c.clientNext);
    assert.ok(seqDiff(plan.state.window.rcvWup, plan.state.recvSeq) <= 0, 'rcv_wup never after rcv_nxt');
  });

  it('handles a connection with no data at all', () => {
    const t = tracker();
    const c = new Conversation();
    handshake(t, c);
    const plan = assertOk(planRepair(c.record(), tracked(t, c), new OutputLog('conn-1'), c.nowMs));
    assert.equal(plan.state.recvSeq, seqAdd(c.clientIsn, 1));
    assert.equal(plan.state.sendSeq, seqAdd(c.serverIsn, 1));
    assert.equal(plan.state.window.rcvWnd, 65160, "the SYN-ACK's window, unscaled");
    assert.equal(plan.state.sendQueue, undefined);
  });

  it('refuses when the output log ends before the client ACK or before what the primary sent', () => {
    const { c, conn } = scenario();
    const short = new OutputLog('conn-1');
    short.append({ connId: 'conn-1', offset: 0, data: c.serverBytes.subarray(0, 6) });
    const behindAck = planRepair(c.record({ consumedInput: 4 }), conn, short, c.nowMs);
    assert.equal(!behindAck.ok && behindAck.code, 'output-log-behind');
    assert.match(!behindAck.ok ? behindAck.reason : '', /acknowledged output up to 8, the log ends at 6/);
    const ackedOnly = new OutputLog('conn-1');
    ackedOnly.append({ connId: 'conn-1', offset: 0, data: c.serverBytes.subarray(0, 10) });
    const behindSent = planRepair(c.record({ consumedInput: 4 }), conn, ackedOnly, c.nowMs);
    assert.equal(!behindSent.ok && behindSent.code, 'output-log-behind');
  });

  it('refuses a log pruned beyond the client ACK, a prune beyond the consumed offset, and a wrong log', () => {
    const { t, c, conn, log } = scenario();
    log.prune(10);
    const pruned = planRepair(c.record({ consumedInput: 4 }), conn, log, c.nowMs);
    assert.equal(!pruned.ok && pruned.code, 'output-log-pruned');

    const fresh = scenario();
    t.prune(conn.key, 8);
    const ahead = planRepair(c.record({ consumedInput: 4 }), conn, fresh.log, c.nowMs);
    assert.equal(!ahead.ok && ahead.code, 'pruned-beyond-consumed');

    const other = planRepair(fresh.c.record(), fresh.conn, new OutputLog('conn-2'), c.nowMs);
    assert.equal(!other.ok && other.code, 'mismatched-inputs');
    assert.equal(planRepair(c.record(), undefined, log, c.nowMs).ok, false);
  });

  it('refuses ISNs or options that contradict the capture', () => {
    const { c, conn, log } = scenario();
    const isn = planRepair(c.record({ clientIsn: 1 }), conn, log, c.nowMs);
    assert.equal(!isn.ok && isn.code, 'record-mismatch');
    const ts = planRepair(c.record({ timestamps: false }), conn, log, c.nowMs);
    assert.equal(!ts.ok && ts.code, 'record-mismatch');
    const ws = planRepair(c.record({ rcvWscale: 7 }), conn, log, c.nowMs);
    assert.equal(!ws.ok && ws.code, 'record-mismatch');
  });

  it('works without timestamps, window scaling or SACK', () => {
    const t = tracker();
    const c = new Conversation({ clientSynOptions: { mss: 1400 }, serverSynOptions: { mss: 1460 }, clientWindow: 64000, serverWindow: 29200 });
    handshake(t, c);
    t.ingest([c.clientData('x\n'), c.serverData('y\n'), c.clientAck()]);
    const plan = assertOk(planRepair(c.record(), tracked(t, c), logOf(c), c.nowMs));
    assert.equal(plan.state.timestamps, false);
    assert.equal(plan.state.tsVal, undefined);
    assert.equal(plan.state.sndWscale, undefined);
    assert.equal(plan.state.sackPermitted, false);
    assert.equal(plan.state.mss, 1400);
    assert.equal(plan.state.window.sndWnd, 64000);
    assert.equal(plan.state.window.rcvWnd, 29200);
  });

  it("handles the client's FIN: ignored while unacknowledged, refused once acknowledged", () => {
    const t = tracker();
    const c = new Conversation();
    handshake(t, c);
    t.ingest([c.clientData('last\n'), c.serverAck(), c.clientFin()]);
    const conn = tracked(t, c);
    const plan = assertOk(planRepair(c.record(), conn, logOf(c), c.nowMs));
    assert.equal(plan.state.recvSeq, seqAdd(c.clientIsn, 1 + 5), 'the FIN is not in the rebuilt stream: the client sends it again');
    t.ingest([c.serverAck()]);
    const refused = planRepair(c.record(), conn, logOf(c), c.nowMs);
    assert.equal(!refused.ok && refused.code, 'closing');
  });

  it('is pure: planning twice gives the same plan and leaves the inputs alone', () => {
    const { c, conn, log } = scenario();
    const before = { buffered: conn.bufferedBytes, logStart: log.start, logEnd: log.end };
    const a = assertOk(planRepair(c.record({ consumedInput: 4 }), conn, log, c.nowMs));
    const b = assertOk(planRepair(c.record({ consumedInput: 4 }), conn, log, c.nowMs));
    assert.deepEqual(a, b);
    assert.deepEqual({ buffered: conn.bufferedBytes, logStart: log.start, logEnd: log.end }, before);
  });
});
