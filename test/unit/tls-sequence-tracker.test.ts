/**
 * The sequence tracker on synthetic TLS 1.3 streams built with the record layer's own sealing
 * (the real ones are in test/integration/tls-continuation.test.ts): handshake records skipped
 * or opened with the handshake secret, the application phase found by trial decryption,
 * NewSessionTickets and KeyUpdates followed, a KeyUpdate still owed, a start from a known
 * boundary, and every "cannot continue" code with its direction and offset. Also the secrets
 * record built from key log lines.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { McuError } from '../../mcu/src/core/errors.ts';
import { BlobKind, parseBlob } from '../../mcu/src/wire/blobs.ts';
import { TlsSecretsInvalidError } from '../../mcu/src/takeover/tls/errors.ts';
import { nextTrafficSecret, TLS13_SUITES, type TlsSuiteName } from '../../mcu/src/takeover/tls/key-schedule.ts';
import { ContentType, keyUpdateMessage, recordKeys, sealRecord } from '../../mcu/src/takeover/tls/record.ts';
import { TlsRecordLayer } from '../../mcu/src/takeover/tls/record-layer.ts';
import { parseTlsSessionSecrets, secretsFromKeylog, type TlsSessionSecrets } from '../../mcu/src/takeover/tls/secrets.ts';
import { trackTlsSession } from '../../mcu/src/takeover/tls/sequence-tracker.ts';

const SUITE: TlsSuiteName = 'TLS_AES_256_GCM_SHA384';

function makeSecrets(suite: TlsSuiteName = SUITE): TlsSessionSecrets {
  const hex = (): string => randomBytes(TLS13_SUITES[suite].hashLength).toString('hex');
  return {
    version: 1,
    protocol: 'TLSv1.3',
    suite,
    clientRandom: randomBytes(32).toString('hex'),
    clientHandshakeTrafficSecret: hex(),
    serverHandshakeTrafficSecret: hex(),
    clientTrafficSecret0: hex(),
    serverTrafficSecret0: hex(),
    capturedAt: 1,
  };
}

const plain = (type: number, body: Buffer): Buffer => Buffer.concat([Buffer.from([type, 3, 3, body.length >> 8, body.length & 0xff]), body]);
const handshakeMessage = (type: number, body: Buffer): Buffer => Buffer.concat([Buffer.from([type, 0, 0, body.length]), body]);

/** One direction's stream: records of the handshake, then application records sealed with a writer that follows its own KeyUpdates. */
class StreamBuilder {
  readonly parts: Buffer[] = [];
  #hsSeq = 0;
  readonly #hsKeys;
  readonly #suite: TlsSuiteName;
  #secret: Buffer;
  #seq = 0;

  constructor(suite: TlsSuiteName, handshakeSecret: string, trafficSecret0: string) {
    this.#suite = suite;
    this.#hsKeys = recordKeys(suite, Buffer.from(handshakeSecret, 'hex'));
    this.#secret = Buffer.from(trafficSecret0, 'hex');
  }
  plaintext(type: number, body: Buffer): this {
    this.parts.push(plain(type, body));
    return this;
  }
  handshake(...messages: Buffer[]): this {
    this.parts.push(sealRecord(this.#hsKeys, this.#hsSeq++, ContentType.Handshake, Buffer.concat(messages)));
    return this;
  }
  app(type: ContentType, content: Buffer): this {
    this.parts.push(sealRecord(recordKeys(this.#suite, this.#secret), this.#seq++, type, content));
    return this;
  }
  keyUpdate(requested: boolean): this {
    this.app(ContentType.Handshake, keyUpdateMessage(requested));
    this.#secret = nextTrafficSecret(this.#suite, this.#secret);
    this.#seq = 0;
    return this;
  }
  get state(): { secret: Buffer; seq: number } {
    return { secret: this.#secret, seq: this.#seq };
  }
  get bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

const FINISHED = handshakeMessage(20, randomBytes(48));
const TICKET = handshakeMessage(4, randomBytes(40));

function session(secrets: TlsSessionSecrets): { client: StreamBuilder; server: StreamBuilder } {
  const client = new StreamBuilder(secrets.suite, secrets.clientHandshakeTrafficSecret, secrets.clientTrafficSecret0)
    .plaintext(ContentType.Handshake, handshakeMessage(1, randomBytes(200)))
    .plaintext(ContentType.ChangeCipherSpec, Buffer.of(1))
    .handshake(FINISHED);
  const server = new StreamBuilder(secrets.suite, secrets.serverHandshakeTrafficSecret, secrets.serverTrafficSecret0)
    .plaintext(ContentType.Handshake, handshakeMessage(2, randomBytes(90)))
    .plaintext(ContentType.ChangeCipherSpec, Buffer.of(1))
    .handshake(handshakeMessage(8, randomBytes(10)), handshakeMessage(11, randomBytes(300)))
    .handshake(handshakeMessage(15, randomBytes(70)), FINISHED)
    .app(ContentType.Handshake, TICKET)
    .app(ContentType.Handshake, TICKET);
  return { client, server };
}

describe('trackTlsSession', () => {
  it('follows the handshake, two tickets, data and KeyUpdates both ways to the exact state', () => {
    const secrets = makeSecrets();
    const { client, server } = session(secrets);
    client.app(ContentType.ApplicationData, Buffer.from('a')).app(ContentType.ApplicationData, Buffer.from('b')).keyUpdate(true).app(ContentType.ApplicationData, Buffer.from('c'));
    server.app(ContentType.ApplicationData, Buffer.from('A')).keyUpdate(false).app(ContentType.ApplicationData, Buffer.from('B'));
    const result = trackTlsSession({ secrets, client: { bytes: client.bytes }, server: { bytes: server.bytes } });
    assert.ok(result.ok, JSON.stringify(result));
    assert.deepEqual(result.state.read, { ...client.state, generation: 1 });
    assert.deepEqual(result.state.write, { ...server.state, generation: 1 });
    assert.equal(result.state.keyUpdateOwed, false);
    assert.equal(result.server.newSessionTickets, 2);
    assert.equal(result.server.handshakeRecords, 4);
    assert.equal(result.client.handshakeRecords, 3);
    assert.equal(result.client.applicationStart, client.parts.slice(0, 3).reduce((n, p) => n + p.length, 0));
    assert.equal(result.client.boundary, client.bytes.length);
    assert.equal(result.client.keyUpdatesRequested, 1);

    // The tracked state continues the session: the client's next record opens, ours opens at the client.
    const layer = new TlsRecordLayer(result.state);
    const next = client.app(ContentType.ApplicationData, Buffer.from('next')).parts.at(-1)!;
    assert.deepEqual(layer.receive(next).events, [{ kind: 'data', data: Buffer.from('next') }]);
    const mirror = new TlsRecordLayer({ suite: SUITE, read: result.state.write, write: result.state.read, keyUpdateOwed: false });
    assert.deepEqual(mirror.receive(layer.sealApplicationData(Buffer.from('reply'))).events, [{ kind: 'data', data: Buffer.from('reply') }]);
  });

  it('a KeyUpdate the client asked for and the server has not sent yet is owed', () => {
    const secrets = makeSecrets();
    const { client, server } = session(secrets);
    client.keyUpdate(true);
    const result = trackTlsSession({ secrets, client: { bytes: client.bytes }, server: { bytes: server.bytes } });
    assert.ok(result.ok);
    assert.equal(result.state.keyUpdateOwed, true);
    assert.equal(result.state.write.generation, 0);
  });

  it('a client that sent nothing after its Finished starts at generation 0, sequence 0', () => {
    const secrets = makeSecrets('TLS_AES_128_GCM_SHA256');
    const { client, server } = session(secrets);
    const result = trackTlsSession({ secrets, client: { bytes: client.bytes }, server: { bytes: server.bytes } });
    assert.ok(result.ok);
    assert.equal(result.state.read.seq, 0);
    assert.equal(result.client.applicationStart, null);
    assert.equal(result.state.write.seq, 2);
  });

  it('starts from a known record boundary and traffic state, and stops at a given boundary', () => {
    const secrets = makeSecrets();
    const { client, server } = session(secrets);
    client.app(ContentType.ApplicationData, Buffer.from('1'));
    const mark = { ...client.state, generation: 0, offset: client.bytes.length };
    client.keyUpdate(false).app(ContentType.ApplicationData, Buffer.from('2')).app(ContentType.ApplicationData, Buffer.from('3'));
    const result = trackTlsSession({
      secrets,
      client: { bytes: client.bytes.subarray(mark.offset), from: { secret: mark.secret, generation: 0, seq: mark.seq } },
      server: { bytes: server.bytes },
    });
    assert.ok(result.ok, JSON.stringify(result));
    assert.deepEqual(result.state.read, { ...client.state, generation: 1 });

    const stopAt = client.bytes.length - client.parts.at(-1)!.length;
    const stopped = trackTlsSession({ secrets, client: { bytes: client.bytes, until: stopAt }, server: { bytes: server.bytes } });
    assert.ok(stopped.ok);
    assert.equal(stopped.client.boundary, stopAt);
    assert.equal(stopped.state.read.seq, 1);
  });

  it('cannot continue: a record cut, a stop inside a record, undecryptable records, an unfinished handshake, a closed session', () => {
    const secrets = makeSecrets();
    const { client, server } = session(secrets);
    client.app(ContentType.ApplicationData, Buffer.from('hello'));
    const cut = client.bytes.subarray(0, client.bytes.length - 3);
    const track = (c: Parameters<typeof trackTlsSession>[0]['client'], s: Parameters<typeof trackTlsSession>[0]['server'] = { bytes: server.bytes }, x = secrets) =>
      trackTlsSession({ secrets: x, client: c, server: s });

    const r1 = track({ bytes: cut });
    assert.ok(!r1.ok);
    assert.equal(r1.code, 'TLS_RECORD_CUT');
    assert.equal(r1.direction, 'client');
    assert.equal(r1.offset, client.bytes.length - client.parts.at(-1)!.length);

    // The client's input may end inside a record still arriving: carried, not a cut.
    const r2 = track({ bytes: cut, partialTail: 'carry' });
    assert.ok(r2.ok);
    assert.equal(r2.client.partialBytes, client.parts.at(-1)!.length - 3);

    const r3 = track({ bytes: client.bytes, until: client.bytes.length - 1 });
    assert.ok(!r3.ok && r3.code === 'TLS_RECORD_CUT');

    const r4 = track({ bytes: client.bytes }, { bytes: server.bytes.subarray(0, server.parts[0]!.length) });
    assert.ok(!r4.ok && r4.code === 'TLS_HANDSHAKE_INCOMPLETE' && r4.direction === 'server');

    const other = { ...makeSecrets(), suite: SUITE };
    const r5 = track({ bytes: client.bytes }, { bytes: server.bytes }, other);
    assert.ok(!r5.ok && r5.code === 'TLS_RECORD_UNDECRYPTABLE' && r5.direction === 'client');

    const tampered = Buffer.from(client.bytes);
    tampered[tampered.length - 2]! ^= 1;
    const r6 = track({ bytes: tampered });
    assert.ok(!r6.ok && r6.code === 'TLS_RECORD_UNDECRYPTABLE');
    assert.equal(r6.offset, r1.offset);

    server.app(ContentType.Alert, Buffer.of(1, 0));
    const r7 = track({ bytes: client.bytes }, { bytes: server.bytes });
    assert.ok(!r7.ok && r7.code === 'TLS_SESSION_CLOSED' && r7.direction === 'server');

    const r8 = track({ bytes: Buffer.from('GET / HTTP/1.1\r\n\r\n') });
    assert.ok(!r8.ok && r8.code === 'TLS_RECORD_UNDECRYPTABLE');
  });
});

describe('TlsSessionSecrets from the key log', () => {
  const random = randomBytes(32).toString('hex');
  const line = (label: string, r = random, len = 32): string => `${label} ${r} ${randomBytes(len).toString('hex')}`;
  const labels = ['CLIENT_HANDSHAKE_TRAFFIC_SECRET', 'SERVER_HANDSHAKE_TRAFFIC_SECRET', 'CLIENT_TRAFFIC_SECRET_0', 'SERVER_TRAFFIC_SECRET_0', 'EXPORTER_SECRET'];

  it('builds a record that survives the wire (tls-secrets blob), ignoring other connections\' lines', () => {
    const lines = [...labels.map((l) => line(l)), line('CLIENT_TRAFFIC_SECRET_0', randomBytes(32).toString('hex'))];
    const result = secretsFromKeylog(lines, { protocol: 'TLSv1.3', suite: 'TLS_CHACHA20_POLY1305_SHA256' }, 42);
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.secrets.clientRandom, random);
    assert.equal(result.secrets.clientTrafficSecret0, lines[2]!.split(' ')[2]);
    const wire = JSON.parse(JSON.stringify({ connId: 'c1', secrets: result.secrets }));
    assert.deepEqual(parseBlob(BlobKind.TlsSecrets, wire), { connId: 'c1', secrets: result.secrets });
    assert.deepEqual(parseTlsSessionSecrets(wire.secrets), result.secrets);
  });

  it('TLS 1.2, an unsupported suite and missing secrets are "cannot continue" with stable codes', () => {
    const all = labels.map((l) => line(l));
    const code = (r: ReturnType<typeof secretsFromKeylog>): string => (r.ok ? 'ok' : r.code);
    assert.equal(code(secretsFromKeylog([`CLIENT_RANDOM ${random} ${randomBytes(48).toString('hex')}`], { protocol: 'TLSv1.2', suite: 'ECDHE-ECDSA-AES128-GCM-SHA256' })), 'TLS_VERSION_UNSUPPORTED');
    assert.equal(code(secretsFromKeylog(all, { protocol: 'TLSv1.3', suite: 'TLS_AES_128_CCM_SHA256' })), 'TLS_SUITE_UNSUPPORTED');
    assert.equal(code(secretsFromKeylog(all.slice(1), { protocol: 'TLSv1.3', suite: 'TLS_AES_128_GCM_SHA256' })), 'TLS_SECRETS_INCOMPLETE');
    // SHA-256 sized secrets under a SHA-384 suite do not fit.
    assert.equal(code(secretsFromKeylog(all, { protocol: 'TLSv1.3', suite: 'TLS_AES_256_GCM_SHA384' })), 'TLS_SECRETS_INCOMPLETE');
  });

  it('a replicated record that does not validate is TLS_SECRETS_INVALID (and a malformed blob REPLICATION_MALFORMED)', () => {
    const good = makeSecrets();
    for (const bad of [{ ...good, clientTrafficSecret0: good.clientTrafficSecret0.slice(2) }, { ...good, suite: 'TLS_AES_128_CCM_SHA256' }, { ...good, protocol: 'TLSv1.2' }, { ...good, extra: 1 }, null]) {
      assert.throws(() => parseTlsSessionSecrets(bad), (err: unknown) => err instanceof TlsSecretsInvalidError && err.code === 'TLS_SECRETS_INVALID');
      assert.throws(() => parseBlob(BlobKind.TlsSecrets, { connId: 'c1', secrets: bad }), (err: unknown) => err instanceof McuError && err.code === 'REPLICATION_MALFORMED');
    }
  });
});
