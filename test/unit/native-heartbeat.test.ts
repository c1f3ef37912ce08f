/**
 * The heartbeat threads' own codec (native/addon/heartbeat_wire.cc, HMAC-SHA256 of its own in
 * hmac_sha256.cc) against the format's reference, mcu/src/wire/heartbeat-wire.ts on node:crypto:
 * the same bytes for every datagram and secret, and the same verdict and reason for every
 * datagram, forged or not (the fuzzer's recipes and plain noise).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeHeartbeat, encodeHeartbeat, heartbeatRejectionReason, HEARTBEAT_BYTES, type HeartbeatKind } from '../../mcu/src/wire/heartbeat-wire.ts';
import { nativeAddonAvailable, nativeDecodeHeartbeat, nativeEncodeHeartbeat } from '../../native/src/index.ts';
import { buildDatagram, datagramRecipe } from '../../scripts/fuzz/heartbeat-datagrams.ts';

const skip = nativeAddonAvailable() ? false : 'the native addon is not built (bash scripts/build-native.sh)';
const KIND_CODES: Record<HeartbeatKind, number> = { beat: 1, subscribe: 2 };

/** Secrets of every shape HMAC treats differently: empty, short, one block, longer than a block (hashed first), non-ASCII. */
const secret = (): fc.Arbitrary<string | Buffer> =>
  fc.oneof(
    fc.string({ maxLength: 80 }),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.constantFrom('', 'x'.repeat(64), 'y'.repeat(65), 'z'.repeat(200)),
    fc.uint8Array({ maxLength: 130 }).map((b) => Buffer.from(b)),
  );

/** The native decoder's answer in the reference's words. */
function nativeDecodeAsReference(bytes: Buffer, key: string | Buffer): ReturnType<typeof decodeHeartbeat> {
  const res = nativeDecodeHeartbeat(bytes, key);
  if (!res.ok) return { ok: false, reason: heartbeatRejectionReason(res.error, res) };
  return { ok: true, datagram: { kind: res.kind === 1 ? 'beat' : 'subscribe', epoch: res.epoch, seq: res.seq, sentAt: res.sentAt } };
}

describe('the native heartbeat codec against heartbeat-wire.ts', { skip }, () => {
  it('encodes every datagram to the same bytes, for every secret', () => {
    fc.assert(
      fc.property(
        fc.record({
          kind: fc.constantFrom<HeartbeatKind>('beat', 'subscribe'),
          epoch: fc.nat({ max: 0xffffffff }),
          seq: fc.nat({ max: 0xffffffff }),
          sentAt: fc.oneof(fc.double({ noNaN: true }), fc.integer({ min: 0, max: 2 ** 45 })),
        }),
        secret(),
        (d, key) => {
          const reference = encodeHeartbeat(d, key);
          const native = nativeEncodeHeartbeat({ ...d, kind: KIND_CODES[d.kind] }, key);
          assert.equal(native.length, HEARTBEAT_BYTES);
          assert.deepEqual(native, reference);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("decodes every datagram as the reference does (the fuzzer's forged, stale and authentic ones), with the same reason", () => {
    fc.assert(
      fc.property(datagramRecipe(), fc.nat({ max: 0xffff }), fc.string({ minLength: 1, maxLength: 40 }), (recipe, epoch, key) => {
        const { bytes } = buildDatagram(recipe, epoch, key);
        assert.deepEqual(nativeDecodeAsReference(bytes, key), decodeHeartbeat(bytes, key));
      }),
      { numRuns: 3000 },
    );
  });

  it('refuses noise and wrong secrets as the reference does', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), secret(), (noise, key) => {
        const bytes = Buffer.from(noise);
        assert.deepEqual(nativeDecodeAsReference(bytes, key), decodeHeartbeat(bytes, key));
      }),
      { numRuns: 2000 },
    );
    const genuine = encodeHeartbeat({ kind: 'beat', epoch: 3, seq: 7, sentAt: Date.now() }, 'the-secret');
    assert.deepEqual(nativeDecodeAsReference(genuine, 'another-secret'), decodeHeartbeat(genuine, 'another-secret'));
    assert.equal(nativeDecodeHeartbeat(genuine, 'another-secret').ok, false);
    assert.equal(nativeDecodeHeartbeat(genuine, 'the-secret').ok, true);
  });
});
