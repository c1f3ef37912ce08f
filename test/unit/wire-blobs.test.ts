import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { McuError } from '../../mcu/src/core/errors.ts';
import { validate } from '../../mcu/src/signaling/validation.ts';
import type { TransportRecord } from '../../mcu/src/takeover/transport/transport-record.ts';
import {
  BlobKind,
  MAX_OUTPUT_TAIL_BYTES,
  SnapshotExtraKey,
  decodeOutputChunk,
  encodeJson,
  encodeOutputChunk,
  parseBlob,
  parsePrimaryMessage,
  parseSnapshotExtra,
  parseStandbyMessage,
  type TransportBlob,
} from '../../mcu/src/wire/index.ts';

const SDP = 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n';

const malformed = (err: unknown): boolean => err instanceof McuError && err.code === 'REPLICATION_MALFORMED';

const record: TransportRecord = {
  connId: 'c1',
  local: { address: '10.0.0.1', port: 8080 },
  remote: { address: '10.0.0.2', port: 40000 },
  clientIsn: 1,
  serverIsn: 0xffffffff,
  mss: 1460,
  sndWscale: 7,
  rcvWscale: 7,
  sack: true,
  timestamps: true,
  consumedInput: 10,
  committedOutput: 20,
  acceptedAt: 1700000000000,
};

describe('warm spare path relay messages', () => {
  it('the standby may send blobs to the primary (the relay direction standby -> primary)', () => {
    const msg = parseStandbyMessage({ type: 'blob', kind: BlobKind.SpareOffer, data: { participantId: 'p', pathId: 's/p/1', sdp: SDP } });
    assert.equal(msg.type, 'blob');
    assert.throws(() => parseStandbyMessage({ type: 'blob', data: {} }), malformed);
  });

  it('validates every relay payload and refuses what does not fit', () => {
    assert.deepEqual(parseBlob(BlobKind.SpareOffer, { participantId: 'p', pathId: 's/p/1', sdp: SDP }), { participantId: 'p', pathId: 's/p/1', sdp: SDP });
    assert.equal(parseBlob(BlobKind.SpareState, { participantId: 'p', pathId: 'x', state: 'connected' }).state, 'connected');
    assert.equal(parseBlob(BlobKind.SpareFailed, { participantId: 'p', pathId: 'x', reason: 'away' }).reason, 'away');
    for (const bad of [
      () => parseBlob(BlobKind.SpareOffer, { participantId: 'p', pathId: 's/p/1', sdp: 'not sdp' }),
      () => parseBlob(BlobKind.SpareAnswer, { participantId: 'p', sdp: SDP }),
      () => parseBlob(BlobKind.SpareState, { participantId: 'p', pathId: 'x', state: 'weird' }),
      () => parseBlob(BlobKind.SpareFailed, { participantId: 'p', pathId: 'x', reason: 'r', extra: 1 }),
    ]) {
      assert.throws(bad, malformed);
    }
  });

  it("validates the page's replies to spare-offer and spare-activate", () => {
    assert.deepEqual(validate.spareAnswerReply({ ok: true, pathId: 'a', sdp: SDP }), { ok: true, pathId: 'a', sdp: SDP });
    const refused = validate.spareAnswerReply({ ok: false, error: { code: 'NOT_READY', message: 'no call' } });
    assert.equal(refused.ok, false);
    assert.deepEqual(validate.spareActivatedReply({ ok: true, pathId: 'a', trigger: 'silence', primarySilentMs: 62.5 }), {
      ok: true,
      pathId: 'a',
      trigger: 'silence',
      primarySilentMs: 62.5,
    });
    for (const bad of [
      () => validate.spareAnswerReply({ ok: true, pathId: 'a' }),
      () => validate.spareAnswerReply({ ok: true, pathId: 'a', sdp: 'x' }),
      () => validate.spareAnswerReply('yes'),
      () => validate.spareActivatedReply({ ok: true, pathId: 'a', trigger: 'magic', primarySilentMs: 1 }),
      () => validate.spareActivatedReply({ ok: true, pathId: 'a', trigger: 'server', primarySilentMs: -1 }),
    ]) {
      assert.throws(bad, (err: unknown) => err instanceof McuError && err.code === 'INVALID_MESSAGE');
    }
  });
});

describe('blob kinds and snapshot extras', () => {
  it('every blob kind and extra key has a schema, and refuses a payload that is not one, naming the kind', () => {
    for (const kind of Object.values(BlobKind)) {
      assert.throws(() => parseBlob(kind, 'nonsense'), (err: unknown) => malformed(err) && (err as Error).message.includes(`"${kind}" blob`), kind);
    }
    for (const key of Object.values(SnapshotExtraKey)) {
      assert.throws(() => parseSnapshotExtra(key, 'nonsense'), (err: unknown) => malformed(err) && (err as Error).message.includes(`"${key}" snapshot extra`), key);
    }
  });

  it('validates transport blobs and the transports extra, down to the record', () => {
    const blobs: TransportBlob[] = [
      { op: 'accept', record, logStart: 0 },
      { op: 'close', connId: 'c1', reason: 'end', committedOutput: 20 },
      { op: 'input', updates: [{ connId: 'c1', consumedInput: 30, outputAt: 25 }] },
    ];
    for (const blob of blobs) assert.deepEqual(parseBlob(BlobKind.Transport, JSON.parse(JSON.stringify(blob))), blob);
    for (const bad of [
      { op: 'explode' },
      { op: 'accept', record: { ...record, clientIsn: 2 ** 32 }, logStart: 0 },
      { op: 'accept', record: { ...record, connId: '' }, logStart: 0 },
      { op: 'close', connId: 'c1', reason: 'bored', committedOutput: 1 },
      { op: 'input', updates: [{ connId: 'c1', consumedInput: -1, outputAt: 0 }] },
    ]) {
      assert.throws(() => parseBlob(BlobKind.Transport, bad), malformed, JSON.stringify(bad));
    }
    const extra = { version: 1 as const, connections: [{ record, logStart: 20, pendingInput: [{ connId: 'c1', consumedInput: 40, outputAt: 24 }] }] };
    assert.deepEqual(parseSnapshotExtra(SnapshotExtraKey.Transports, extra), extra);
    assert.throws(() => parseSnapshotExtra(SnapshotExtraKey.Transports, { ...extra, version: 2 }), malformed);
  });

  it("checks a session blob's envelope and leaves its record to the record format's own check", () => {
    const opaque = { version: 1, anything: ['the record is parsed by parseSessionRecord'] };
    const parsed = parseBlob(BlobKind.Session, { connId: 'c1', record: opaque, outputTail: 'aGVsbG8=' });
    assert.deepEqual(parsed, { connId: 'c1', record: opaque, outputTail: 'aGVsbG8=' });
    assert.deepEqual(parseBlob(BlobKind.Session, { connId: 'c1', record: opaque }), { connId: 'c1', record: opaque });
    const longestTail = 'A'.repeat(Math.floor((MAX_OUTPUT_TAIL_BYTES * 4) / 3 + 4));
    assert.equal(parseBlob(BlobKind.Session, { connId: 'c1', record: opaque, outputTail: longestTail }).outputTail, longestTail);
    for (const bad of [
      { record: opaque },
      { connId: 7, record: opaque },
      { connId: 'c1', record: opaque, outputTail: 42 },
      { connId: 'c1', record: opaque, outputTail: `${longestTail}A` },
    ]) {
      assert.throws(() => parseBlob(BlobKind.Session, bad), malformed, JSON.stringify(bad).slice(0, 80));
    }
    // The sessions extra is a list; each entry is taken like a session blob received alone.
    assert.deepEqual(parseSnapshotExtra(SnapshotExtraKey.Sessions, [1, { connId: 'c1' }]), [1, { connId: 'c1' }]);
    assert.throws(() => parseSnapshotExtra(SnapshotExtraKey.Sessions, { connId: 'c1' }), malformed);
  });

  it('validates the fence check', () => {
    assert.deepEqual(parseBlob(BlobKind.FenceCheck, { at: 1700000000000, pausedMs: 120 }), { at: 1700000000000, pausedMs: 120 });
    assert.throws(() => parseBlob(BlobKind.FenceCheck, { at: 1, pausedMs: -5 }), malformed);
  });

  it('blob frames keep their bytes: kind and data as JSON, nothing added', () => {
    const text = encodeJson({ type: 'blob', kind: BlobKind.Transport, data: { op: 'close', connId: 'c1', reason: 'end', committedOutput: 20 } }).toString('utf8');
    assert.equal(text, '{"type":"blob","kind":"transport","data":{"op":"close","connId":"c1","reason":"end","committedOutput":20}}');
    assert.deepEqual(parsePrimaryMessage(JSON.parse(text)), JSON.parse(text));
  });
});

describe('output-log chunks (binary frames)', () => {
  it('encodes u16 id length | id | f64 offset | bytes, and decodes it back', () => {
    const bytes = encodeOutputChunk({ connId: 'ab', offset: 5, data: Buffer.from('xyz') });
    assert.equal(bytes.toString('hex'), '0002' + '6162' + '4014000000000000' + '78797a');
    const chunk = decodeOutputChunk(bytes);
    assert.equal(chunk.connId, 'ab');
    assert.equal(chunk.offset, 5);
    assert.equal(chunk.data.toString(), 'xyz');
  });

  it('refuses what is not a chunk as malformed', () => {
    const valid = encodeOutputChunk({ connId: 'ab', offset: 5, data: Buffer.alloc(0) });
    const negative = Buffer.from(valid);
    negative.writeDoubleBE(-1, 4);
    const fraction = Buffer.from(valid);
    fraction.writeDoubleBE(1.5, 4);
    for (const bad of [Buffer.alloc(9), Buffer.from([0, 200, 0, 0, 0, 0, 0, 0, 0, 0, 0]), negative, fraction]) {
      assert.throws(() => decodeOutputChunk(bad), malformed, bad.toString('hex'));
    }
  });
});
