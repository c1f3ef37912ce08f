import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { McuError } from '../../mcu/src/core/errors.ts';
import { parseStandbyMessage } from '../../mcu/src/wire/messages.ts';
import { validate } from '../../mcu/src/signaling/validation.ts';
import { parseSpare, SPARE_BLOB } from '../../mcu/src/wire/spare-wire.ts';

const SDP = 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n';

describe('warm spare path relay messages', () => {
  it('the standby may send blobs to the primary (the relay direction standby -> primary)', () => {
    const msg = parseStandbyMessage({ type: 'blob', kind: SPARE_BLOB.offer, data: { participantId: 'p', pathId: 's/p/1', sdp: SDP } });
    assert.equal(msg.type, 'blob');
    assert.throws(() => parseStandbyMessage({ type: 'blob', data: {} }), (err: unknown) => err instanceof McuError && err.code === 'REPLICATION_MALFORMED');
  });

  it('validates every relay payload and refuses what does not fit', () => {
    assert.deepEqual(parseSpare.offer({ participantId: 'p', pathId: 's/p/1', sdp: SDP }), { participantId: 'p', pathId: 's/p/1', sdp: SDP });
    assert.equal(parseSpare.state({ participantId: 'p', pathId: 'x', state: 'connected' }).state, 'connected');
    assert.equal(parseSpare.failed({ participantId: 'p', pathId: 'x', reason: 'away' }).reason, 'away');
    for (const bad of [
      () => parseSpare.offer({ participantId: 'p', pathId: 's/p/1', sdp: 'not sdp' }),
      () => parseSpare.answer({ participantId: 'p', sdp: SDP }),
      () => parseSpare.state({ participantId: 'p', pathId: 'x', state: 'weird' }),
      () => parseSpare.failed({ participantId: 'p', pathId: 'x', reason: 'r', extra: 1 }),
    ]) {
      assert.throws(bad, (err: unknown) => err instanceof McuError && err.code === 'REPLICATION_MALFORMED');
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
