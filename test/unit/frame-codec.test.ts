import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { ReplicationAuthError, ReplicationMalformedError } from '../../mcu/src/core/errors.ts';
import {
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameSealer,
  FrameType,
  LINK_HELLO_BYTES,
  LinkHandshake,
  deriveFrameKey,
  encodeFrame,
  type Frame,
} from '../../mcu/src/wire/frame-codec.ts';
import { decodeJson, parsePrimaryMessage, parseStandbyMessage } from '../../mcu/src/wire/messages.ts';

const SECRET = 'unit-test-secret-0123456789';
/** One direction's key of a connection whose two nonces are fixed. */
const KEY = deriveFrameKey(SECRET, Buffer.alloc(32, 1), Buffer.alloc(32, 2));

/** The frames as one direction of a connection sends them: frame i sealed with nonce i. */
function sealAll(frames: Frame[], key = KEY): Buffer {
  const sealer = new FrameSealer(key, { maxFrameBytes: 1 << 30 });
  return Buffer.concat(frames.map((f) => sealer.seal(f)));
}

function jsonFrame(seq: number, value: unknown, epoch = 7): Frame {
  return { type: FrameType.Json, epoch, seq, payload: Buffer.from(JSON.stringify(value)) };
}

function sample(): Frame[] {
  return [
    jsonFrame(1, { type: 'hello', primaryId: 'p', epoch: 7, pid: 1, service: {} }),
    jsonFrame(2, { type: 'heartbeat', sentAt: 123.5 }),
    { type: FrameType.Binary, epoch: 7, seq: 3, payload: randomBytes(1000) },
    { type: FrameType.Binary, epoch: 7, seq: 4, payload: Buffer.alloc(0) },
    jsonFrame(Number.MAX_SAFE_INTEGER, { type: 'ack', seq: 3 }, 0xffffffff),
  ];
}

describe('frame codec', () => {
  it('round-trips frames pushed as one chunk', () => {
    const frames = sample();
    const wire = sealAll(frames);
    const decoder = new FrameDecoder(KEY);
    const { frames: out, error } = decoder.push(wire);
    assert.equal(error, null);
    assert.deepEqual(out, frames);
    assert.equal(decoder.bufferedBytes, 0);
    assert.equal(decoder.finish(), null);
  });

  it('decodes the same frames fed byte by byte', () => {
    const frames = sample();
    const wire = sealAll(frames);
    const decoder = new FrameDecoder(KEY);
    const out: Frame[] = [];
    for (let i = 0; i < wire.length; i++) {
      const r = decoder.push(wire.subarray(i, i + 1));
      assert.equal(r.error, null);
      out.push(...r.frames);
    }
    assert.deepEqual(out, frames);
    assert.equal(decoder.finish(), null);
  });

  it('decodes at random chunk boundaries', () => {
    const frames = Array.from({ length: 200 }, (_, i) => jsonFrame(i + 1, { type: 'blob', kind: 'k', data: 'x'.repeat(i * 7) }));
    const wire = sealAll(frames);
    for (let trial = 0; trial < 20; trial++) {
      const decoder = new FrameDecoder(KEY);
      const out: Frame[] = [];
      for (let i = 0; i < wire.length; ) {
        const n = 1 + Math.floor(Math.random() * 3000);
        const r = decoder.push(wire.subarray(i, i + n));
        assert.equal(r.error, null);
        out.push(...r.frames);
        i += n;
      }
      assert.deepEqual(out, frames);
    }
  });

  it('refuses frames signed with another secret (ReplicationAuthError) and returns nothing', () => {
    const wire = encodeFrame(jsonFrame(1, { type: 'heartbeat', sentAt: 1 }), deriveFrameKey('another-secret', Buffer.alloc(32, 1), Buffer.alloc(32, 2)), 0);
    const decoder = new FrameDecoder(KEY);
    const r = decoder.push(wire);
    assert.deepEqual(r.frames, []);
    assert.ok(r.error instanceof ReplicationAuthError);
    assert.equal(r.error.code, 'REPLICATION_AUTH_FAILED');
    // Final: the stream cannot be trusted after it.
    const again = decoder.push(encodeFrame(jsonFrame(2, { type: 'heartbeat', sentAt: 2 }), KEY, 1));
    assert.deepEqual(again.frames, []);
    assert.equal(again.error, r.error);
  });

  it('delivers the good frames before a tampered one, never the tampered one', () => {
    const good = encodeFrame(jsonFrame(1, { type: 'heartbeat', sentAt: 1 }), KEY, 0);
    const bad = encodeFrame(jsonFrame(2, { type: 'delta', deltas: [{ op: 'room-closed', room: 'a' }] }), KEY, 1);
    bad[FRAME_HEADER_BYTES + 5] ^= 0x01; // flip one payload bit
    const r = new FrameDecoder(KEY).push(Buffer.concat([good, bad]));
    assert.equal(r.frames.length, 1);
    assert.equal(r.frames[0]!.seq, 1);
    assert.ok(r.error instanceof ReplicationAuthError);
  });

  it('detects tampering of the header (epoch, seq) and of the MAC itself', () => {
    const positions: Array<[string, (length: number) => number]> = [
      ['epoch', () => 5],
      ['seq', () => 15],
      ['mac', (length) => length - 3],
    ];
    for (const [name, at] of positions) {
      const wire = encodeFrame(jsonFrame(9, { type: 'heartbeat', sentAt: 1 }), KEY, 0);
      wire[at(wire.length)] ^= 0x80;
      const r = new FrameDecoder(KEY).push(wire);
      assert.deepEqual(r.frames, []);
      assert.ok(r.error instanceof ReplicationAuthError, `${name}: ${String(r.error)}`);
    }
  });

  it('reports an oversized length as malformed before buffering the payload', () => {
    const decoder = new FrameDecoder(KEY, { maxFrameBytes: 1024 });
    const wire = encodeFrame({ type: FrameType.Binary, epoch: 1, seq: 1, payload: Buffer.alloc(2048) }, KEY, 0, 4096);
    const r = decoder.push(wire.subarray(0, FRAME_HEADER_BYTES));
    assert.ok(r.error instanceof ReplicationMalformedError);
    assert.match(r.error.message, /exceeds the limit of 1024/);
    assert.equal(decoder.bufferedBytes, 0);
  });

  it('uses 16 MiB as the default limit, for a forged u32 length too', () => {
    const header = encodeFrame(jsonFrame(1, {}), KEY, 0).subarray(0, FRAME_HEADER_BYTES);
    header.writeUInt32BE(0xffffffff, 16);
    const r = new FrameDecoder(KEY).push(header);
    assert.ok(r.error instanceof ReplicationMalformedError);
    assert.match(r.error.message, /16777216/);
  });

  it('reports a stream that ends inside a frame as malformed (truncated)', () => {
    const wire = encodeFrame(jsonFrame(1, { type: 'heartbeat', sentAt: 1 }), KEY, 0);
    for (const cut of [1, FRAME_HEADER_BYTES - 1, FRAME_HEADER_BYTES, wire.length - 1]) {
      const decoder = new FrameDecoder(KEY);
      const r = decoder.push(wire.subarray(0, cut));
      assert.equal(r.error, null);
      assert.deepEqual(r.frames, []);
      const end = decoder.finish();
      assert.ok(end instanceof ReplicationMalformedError, `cut at ${cut}`);
      assert.match(end.message, /ended inside a frame/);
    }
  });

  it('tells which frame is incomplete once its header is in (partialFrame), for the link to time it out', () => {
    const frames = sample();
    const wire = sealAll(frames);
    const first = encodeFrame(frames[0]!, KEY, 0).length;
    const decoder = new FrameDecoder(KEY);
    decoder.push(wire.subarray(0, FRAME_HEADER_BYTES - 1));
    assert.equal(decoder.partialFrame, null, 'no header yet');
    decoder.push(wire.subarray(FRAME_HEADER_BYTES - 1, FRAME_HEADER_BYTES + 3));
    assert.deepEqual(decoder.partialFrame, { index: 0, declared: frames[0]!.payload.length, buffered: 3 });
    decoder.push(wire.subarray(FRAME_HEADER_BYTES + 3, first + FRAME_HEADER_BYTES + 1));
    assert.deepEqual(decoder.partialFrame, { index: 1, declared: frames[1]!.payload.length, buffered: 1 });
    decoder.push(wire.subarray(first + FRAME_HEADER_BYTES + 1));
    assert.equal(decoder.partialFrame, null, 'between frames');
  });

  it('refuses bad magic, version, frame type and out-of-range seq as malformed', () => {
    const base = encodeFrame(jsonFrame(1, { type: 'heartbeat', sentAt: 1 }), KEY, 0);
    const cases: Array<[string, (b: Buffer) => void, RegExp]> = [
      ['magic', (b) => b.writeUInt16BE(0x4745, 0), /bad magic/],
      ['version', (b) => b.writeUInt8(9, 2), /version 9/],
      ['type', (b) => b.writeUInt8(77, 3), /frame type 77/],
      ['seq', (b) => b.writeBigUInt64BE(2n ** 60n, 8), /safe integer/],
    ];
    for (const [name, mutate, pattern] of cases) {
      const wire = Buffer.from(base);
      mutate(wire);
      const r = new FrameDecoder(KEY).push(wire);
      assert.ok(r.error instanceof ReplicationMalformedError, name);
      assert.match(r.error.message, pattern);
    }
  });

  it('refuses to encode what the peer would refuse', () => {
    assert.throws(() => encodeFrame({ type: FrameType.Json, epoch: -1, seq: 1, payload: Buffer.alloc(0) }, KEY, 0), ReplicationMalformedError);
    assert.throws(() => encodeFrame({ type: FrameType.Json, epoch: 1, seq: 1.5, payload: Buffer.alloc(0) }, KEY, 0), ReplicationMalformedError);
    assert.throws(() => encodeFrame({ type: FrameType.Binary, epoch: 1, seq: 1, payload: Buffer.alloc(11) }, KEY, 0, 10), ReplicationMalformedError);
  });

  it('never throws on random garbage, and only reports its two error types', () => {
    for (let trial = 0; trial < 500; trial++) {
      const decoder = new FrameDecoder(KEY, { maxFrameBytes: 4096 });
      // Half the trials start with a valid header prefix, to get past the magic check.
      const prefix = trial % 2 === 0 ? encodeFrame(jsonFrame(1, {}), KEY, 0).subarray(0, 4) : Buffer.alloc(0);
      const garbage = Buffer.concat([prefix, randomBytes(Math.floor(Math.random() * 6000))]);
      let error: unknown = null;
      for (let i = 0; i < garbage.length && error === null; ) {
        const n = 1 + Math.floor(Math.random() * 64);
        const r = decoder.push(garbage.subarray(i, i + n));
        assert.deepEqual(r.frames, []);
        error = r.error;
        i += n;
      }
      error ??= decoder.finish();
      if (error !== null) assert.ok(error instanceof ReplicationAuthError || error instanceof ReplicationMalformedError);
    }
  });
});

describe('frame encryption (one key per direction and connection, the frame index as nonce)', () => {
  const heartbeat = (seq: number): Frame => jsonFrame(seq, { type: 'heartbeat', sentAt: seq });

  it('hides the payload: the plaintext appears nowhere on the wire', () => {
    const marker = 'SERVER_TRAFFIC_SECRET_0 deadbeefcafe';
    const wire = sealAll([jsonFrame(1, { type: 'blob', kind: 'tls-secrets', data: marker })]);
    assert.equal(wire.includes(Buffer.from(marker)), false);
    assert.equal(wire.includes(Buffer.from('tls-secrets')), false);
  });

  it('refuses a frame replayed, dropped or reordered within the connection (REPLICATION_AUTH_FAILED)', () => {
    const sealer = new FrameSealer(KEY);
    const [a, b, c] = [sealer.seal(heartbeat(1)), sealer.seal(heartbeat(2)), sealer.seal(heartbeat(3))];
    const cases: Array<[string, Buffer[]]> = [
      ['replayed', [a, a]],
      ['dropped', [a, c]],
      ['reordered', [b, a]],
    ];
    for (const [what, stream] of cases) {
      const r = new FrameDecoder(KEY).push(Buffer.concat(stream));
      assert.ok(r.error instanceof ReplicationAuthError, `${what}: ${String(r.error)}`);
      assert.match(r.error.message, /replayed, dropped or reordered/);
      assert.equal(r.frames.length, what === 'reordered' ? 0 : 1, what);
    }
  });

  it('refuses a frame of another connection with the same secret (a replay across connections)', () => {
    const other = deriveFrameKey(SECRET, Buffer.alloc(32, 3), Buffer.alloc(32, 2));
    const r = new FrameDecoder(KEY).push(sealAll([heartbeat(1)], other));
    assert.ok(r.error instanceof ReplicationAuthError);
  });

  it('the link handshake gives both sides matching keys, different per direction and per connection', () => {
    const a = new LinkHandshake(SECRET);
    const b = new LinkHandshake(SECRET);
    assert.equal(a.hello.length, LINK_HELLO_BYTES);
    // The peer's first frames may share a chunk with its hello.
    const keysA = a.push(b.hello.subarray(0, 10)) ?? a.push(b.hello.subarray(10));
    const keysB = b.push(a.hello);
    assert.ok(keysA && keysB);
    const fromA = keysA.sealer.seal(heartbeat(1));
    const fromB = keysB.sealer.seal(heartbeat(1));
    assert.deepEqual(keysB.decoder.push(fromA).frames, [heartbeat(1)]);
    assert.deepEqual(keysA.decoder.push(fromB).frames, [heartbeat(1)]);
    // A's frame reflected back to A does not open: each direction has its own key.
    const c = new LinkHandshake(SECRET);
    const keysC = c.push(b.hello);
    assert.ok(keysC);
    assert.ok(keysC.decoder.push(fromA).error instanceof ReplicationAuthError);
  });

  it('the link handshake refuses a stranger, another version and our own nonce reflected', () => {
    const ours = new LinkHandshake(SECRET);
    assert.throws(() => new LinkHandshake(SECRET).push(Buffer.from('GET / HTTP/1.1\r\n')), (e: unknown) => e instanceof ReplicationMalformedError && /bad magic/.test(e.message));
    const v1 = Buffer.from(ours.hello);
    v1.writeUInt8(1, 2);
    assert.throws(() => new LinkHandshake(SECRET).push(v1), (e: unknown) => e instanceof ReplicationMalformedError && /version 1/.test(e.message));
    assert.throws(() => ours.push(ours.hello), ReplicationAuthError);
  });
});

describe('message validation', () => {
  it('accepts well-formed messages', () => {
    assert.deepEqual(parsePrimaryMessage({ type: 'blob', kind: 'transport', data: { a: 1 } }), { type: 'blob', kind: 'transport', data: { a: 1 } });
    assert.equal(parseStandbyMessage({ type: 'ack', seq: 4 }).type, 'ack');
    const delta = parsePrimaryMessage({ type: 'delta', deltas: [{ op: 'participant-updated', id: 'p1', changes: { audioMuted: true } }] });
    assert.equal(delta.type, 'delta');
  });

  it('refuses malformed payloads with ReplicationMalformedError', () => {
    const bad: unknown[] = [
      null,
      [],
      'hello',
      { type: 42 },
      { type: 'nope' },
      { type: 'hello', primaryId: '', epoch: 1, pid: 1, service: {} },
      { type: 'snapshot', seq: 1, state: { rooms: [{ name: 'a' }], participants: [] }, extra: {} },
      { type: 'delta', deltas: [] },
      { type: 'delta', deltas: [{ op: 'explode' }] },
      { type: 'heartbeat', sentAt: 'now' },
      { type: '__proto__' },
      { type: 'toString' },
    ];
    for (const value of bad) assert.throws(() => parsePrimaryMessage(value), ReplicationMalformedError, JSON.stringify(value));
    assert.throws(() => parseStandbyMessage({ type: 'ack', seq: -1 }), ReplicationMalformedError);
    assert.throws(() => parseStandbyMessage({ type: 'delta', deltas: [] }), ReplicationMalformedError);
    assert.throws(() => decodeJson(Buffer.from('{"type":')), ReplicationMalformedError);
    assert.throws(() => decodeJson(Buffer.from([0xff, 0xfe, 0x7b])), ReplicationMalformedError);
  });
});
