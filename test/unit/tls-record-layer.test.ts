/**
 * The TLS 1.3 record layer on its own: the key schedule against RFC 8448's vectors, records
 * sealed by one side and opened by the other (split anywhere, several per chunk, padded,
 * over 2^14 bytes), KeyUpdate both ways, close_notify, and every broken record refused with
 * TLS_RECORD_INVALID and the alert it warrants.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { TlsContinuationStateError, TlsRecordInvalidError } from '../../mcu/src/takeover/tls/errors.ts';
import { nextTrafficSecret, trafficKeys, TLS13_SUITES, type TlsSuiteName } from '../../mcu/src/takeover/tls/key-schedule.ts';
import { ContentType, MAX_PLAINTEXT, RECORD_HEADER_LENGTH, RecordFramer, recordKeys, recordNonce, sealRecord } from '../../mcu/src/takeover/tls/record.ts';
import { TlsRecordLayer, type TlsInboundEvent } from '../../mcu/src/takeover/tls/record-layer.ts';

const SUITES = Object.keys(TLS13_SUITES) as TlsSuiteName[];

/** A server-side layer and the client-side mirror of it (read and write swapped). */
function pair(suite: TlsSuiteName): { server: TlsRecordLayer; client: TlsRecordLayer } {
  const len = TLS13_SUITES[suite].hashLength;
  const c = { secret: randomBytes(len), generation: 0, seq: 0 };
  const s = { secret: randomBytes(len), generation: 0, seq: 0 };
  return {
    server: new TlsRecordLayer({ suite, read: c, write: s, keyUpdateOwed: false }),
    client: new TlsRecordLayer({ suite, read: s, write: c, keyUpdateOwed: false }),
  };
}

function data(events: TlsInboundEvent[]): string {
  return events.map((e) => (e.kind === 'data' ? e.data.toString() : '')).join('');
}

function invalid(alert: string): (err: unknown) => boolean {
  return (err) => err instanceof TlsRecordInvalidError && err.code === 'TLS_RECORD_INVALID' && err.alert === alert;
}

describe('key schedule (RFC 8446 7.1, 7.3)', () => {
  it('derives RFC 8448 simple 1-RTT keys from the server handshake and application traffic secrets', () => {
    const hs = trafficKeys('TLS_AES_128_GCM_SHA256', Buffer.from('b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38', 'hex'));
    assert.equal(hs.key.toString('hex'), '3fce516009c21727d0f2e4e86ee403bc');
    assert.equal(hs.iv.toString('hex'), '5d313eb2671276ee13000b30');
    const app = trafficKeys('TLS_AES_128_GCM_SHA256', Buffer.from('a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643', 'hex'));
    assert.equal(app.key.toString('hex'), '9f02283b6c9c07efc26bb9f2ac92e356');
    assert.equal(app.iv.toString('hex'), 'cf782b88dd83549aadf1e984');
  });

  it('key lengths per suite, and the next traffic secret is as long as the hash', () => {
    for (const suite of SUITES) {
      const s = TLS13_SUITES[suite];
      const keys = trafficKeys(suite, randomBytes(s.hashLength));
      assert.equal(keys.key.length, s.keyLength);
      assert.equal(keys.iv.length, 12);
      assert.equal(nextTrafficSecret(suite, randomBytes(s.hashLength)).length, s.hashLength);
    }
  });

  it('the nonce is the IV XOR the 64-bit sequence number, right-aligned', () => {
    const iv = Buffer.alloc(12, 0xff);
    assert.equal(recordNonce(iv, 0).toString('hex'), 'ffffffffffffffffffffffff');
    assert.equal(recordNonce(iv, 1).toString('hex'), 'fffffffffffffffffffffffe');
    assert.equal(recordNonce(Buffer.alloc(12), 2 ** 40 + 5).toString('hex'), '000000000000010000000005');
  });
});

describe('TlsRecordLayer', () => {
  for (const suite of SUITES) {
    it(`${suite}: records split at every byte, several in a chunk, over 2^14 bytes, padded`, () => {
      const { server, client } = pair(suite);
      const wire = Buffer.concat([client.sealApplicationData(Buffer.from('hello ')), client.sealApplicationData(Buffer.from('world'))]);
      let got = '';
      for (let i = 0; i < wire.length; i++) got += data(server.receive(wire.subarray(i, i + 1)).events);
      assert.equal(got, 'hello world');
      assert.equal(server.snapshot().read.seq, 2);

      const big = randomBytes(40_000);
      const records = client.sealApplicationData(big);
      const framed = new RecordFramer().push(records);
      assert.equal(framed.length, 3);
      for (const r of framed) assert.ok(r.bytes.length - RECORD_HEADER_LENGTH <= MAX_PLAINTEXT + 1 + 16);
      const out = server.receive(records).events.map((e) => (e.kind === 'data' ? e.data : Buffer.alloc(0)));
      assert.deepEqual(Buffer.concat(out), big);

      // Padding (RFC 8446 5.4) is stripped; the content type is the last non-zero byte.
      const keys = recordKeys(suite, client.snapshot().write.secret);
      const padded = sealRecord(keys, client.snapshot().write.seq, ContentType.ApplicationData, Buffer.from('pad'), 200);
      assert.equal(data(server.receive(padded).events), 'pad');

      // And the other way.
      assert.equal(data(client.receive(server.sealApplicationData(Buffer.from('back'))).events), 'back');
    });
  }

  it('KeyUpdate: one we start asking for the peer\'s, the peer\'s answer, and one the peer starts without asking', () => {
    const { server, client } = pair('TLS_CHACHA20_POLY1305_SHA256');
    const ours = server.initiateKeyUpdate(true);
    assert.equal(server.snapshot().write.generation, 1);
    const atClient = client.receive(ours);
    assert.deepEqual(atClient.events, [{ kind: 'key-update', generation: 1, requested: true }]);
    assert.equal(atClient.output.length, 1, 'the client answers at once');
    assert.equal(client.snapshot().write.generation, 1);
    const atServer = server.receive(Buffer.concat([...atClient.output, client.sealApplicationData(Buffer.from('after'))]));
    assert.deepEqual(atServer.events[0], { kind: 'key-update', generation: 1, requested: false });
    assert.equal(data(atServer.events), 'after');
    assert.equal(atServer.output.length, 0, 'an answer is not answered');
    assert.equal(data(client.receive(server.sealApplicationData(Buffer.from('fine'))).events), 'fine');
    assert.deepEqual(client.receive(server.initiateKeyUpdate(false)).output, []);
    assert.equal(data(client.receive(server.sealApplicationData(Buffer.from('gen2'))).events), 'gen2');
    assert.equal(client.snapshot().read.generation, 2);
  });

  it('a state that owes a KeyUpdate sends it before its first application data', () => {
    const { server, client } = pair('TLS_AES_128_GCM_SHA256');
    const owing = new TlsRecordLayer({ ...server.snapshot(), keyUpdateOwed: true });
    const result = client.receive(owing.sealApplicationData(Buffer.from('x')));
    assert.deepEqual(result.events, [{ kind: 'key-update', generation: 1, requested: false }, { kind: 'data', data: Buffer.from('x') }]);
    assert.equal(owing.snapshot().keyUpdateOwed, false);
    assert.equal(owing.flushOwedKeyUpdate(), null);
  });

  it('close_notify: the peer is closed, later records are ignored, nothing may be written after ours', () => {
    const { server, client } = pair('TLS_AES_256_GCM_SHA384');
    const result = server.receive(Buffer.concat([client.sealApplicationData(Buffer.from('last')), client.closeNotify()]));
    assert.deepEqual(result.events.map((e) => e.kind), ['data', 'close-notify']);
    assert.equal(server.state, 'peer-closed');
    assert.throws(() => client.sealApplicationData(Buffer.from('more')), TlsContinuationStateError);
    assert.deepEqual(server.receive(randomBytes(3)).events, []);
    assert.ok(server.closeNotify().length > 0);
    assert.throws(() => server.closeNotify(), (err: unknown) => err instanceof TlsContinuationStateError && err.code === 'TLS_CONTINUATION_STATE');
  });

  it('broken records are TLS_RECORD_INVALID with the alert they warrant and their offset; the layer stays failed', () => {
    const flipped = (): void => {
      const { server, client } = pair('TLS_AES_128_GCM_SHA256');
      const first = client.sealApplicationData(Buffer.from('ok'));
      const second = Buffer.from(client.sealApplicationData(Buffer.from('broken')));
      second[second.length - 1]! ^= 0x80;
      try {
        server.receive(Buffer.concat([first, second]));
      } catch (err) {
        assert.ok(err instanceof TlsRecordInvalidError);
        assert.equal(err.offset, first.length);
        assert.throws(() => server.receive(Buffer.alloc(1)), TlsContinuationStateError);
        assert.ok(server.fatalAlert(err.alert));
        throw err;
      }
    };
    assert.throws(flipped, invalid('bad_record_mac'));

    const cases: Array<[string, (c: TlsRecordLayer) => Buffer]> = [
      ['unexpected_message', () => Buffer.from([22, 3, 3, 0, 4, 1, 0, 0, 0])],
      ['unexpected_message', () => Buffer.from([99, 3, 3, 0, 1, 0])],
      ['decode_error', () => Buffer.from([23, 3, 4, 0, 1, 0])],
      ['record_overflow', () => Buffer.from([23, 3, 3, 0x41, 0x01])],
      ['bad_record_mac', () => Buffer.from([23, 3, 3, 0, 3, 1, 2, 3])],
      // A record that opens but is all padding: no content type.
      ['unexpected_message', (c) => sealRecord(recordKeys('TLS_AES_128_GCM_SHA256', c.snapshot().write.secret), 0, 0 as ContentType, Buffer.alloc(0), 5)],
      // A handshake message a client may not send after the handshake.
      ['unexpected_message', (c) => sealRecord(recordKeys('TLS_AES_128_GCM_SHA256', c.snapshot().write.secret), 0, ContentType.Handshake, Buffer.from([4, 0, 0, 1, 0]))],
      ['decode_error', (c) => sealRecord(recordKeys('TLS_AES_128_GCM_SHA256', c.snapshot().write.secret), 0, ContentType.Handshake, Buffer.from([24, 0, 0, 1, 7]))],
    ];
    for (const [alert, make] of cases) {
      const { server, client } = pair('TLS_AES_128_GCM_SHA256');
      assert.throws(() => server.receive(make(client)), invalid(alert), alert);
      assert.equal(server.state, 'failed');
    }
  });
});

describe('TlsRecordLayer under mangled input (fast-check)', () => {
  it('any mangling of a record stream, in any chunking: only TLS_RECORD_INVALID, and what was delivered is a prefix of what was sent', () => {
    const suite: TlsSuiteName = 'TLS_AES_128_GCM_SHA256';
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 0, maxLength: 300 }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
        fc.option(fc.nat()),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 }),
        (messages, flips, truncate, chunkSizes) => {
          const { server, client } = pair(suite);
          const sent = Buffer.concat(messages.map((m) => Buffer.from(m)));
          let wire = Buffer.concat(messages.map((m) => client.sealApplicationData(Buffer.from(m))));
          wire = Buffer.from(wire);
          for (const [at, xor] of flips) if (wire.length > 0) wire[at % wire.length]! ^= xor;
          if (truncate !== null && wire.length > 0) wire = wire.subarray(0, truncate % wire.length);
          const got: Buffer[] = [];
          let at = 0;
          let i = 0;
          try {
            while (at < wire.length) {
              const size = chunkSizes[i++ % chunkSizes.length]!;
              for (const e of server.receive(wire.subarray(at, at + size)).events) if (e.kind === 'data') got.push(e.data);
              at += size;
            }
          } catch (err) {
            if (!(err instanceof TlsRecordInvalidError)) throw err;
            assert.throws(() => server.receive(Buffer.alloc(1)), TlsContinuationStateError);
          }
          const delivered = Buffer.concat(got);
          assert.deepEqual(delivered, sent.subarray(0, delivered.length));
        },
      ),
      { numRuns: 300 },
    );
  });
});
