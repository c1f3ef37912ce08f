/**
 * The mediasoup worker built by the set-up (scripts/build-mediasoup-worker.sh), started through
 * mcu/src/media/mediasoup-worker.ts: a router with opus and VP8 (+rtx), a WebRtcTransport on
 * 127.0.0.1, real RTP over UDP through SRTP PlainTransports with every crypto suite (libsrtp 2
 * under the worker's libsrtp 3 calls: native/mediasoup-worker/), the worker's resource usage,
 * the fixed DTLS certificate a hot standby shares with its primary, and the pinned
 * mediasoup-client (the page's side) against this server.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { types as ms } from 'mediasoup';
import { Device } from 'mediasoup-client';
import * as fakeParameters from 'mediasoup-client/fakeParameters';
import { FakeHandler } from 'mediasoup-client/handlers/FakeHandler';
import { MediasoupWorkerMissingError } from '../../mcu/src/core/errors.ts';
import { createMediasoupWorker, resolveMediasoupWorkerBin } from '../../mcu/src/media/mediasoup-worker.ts';
import { loadWrtcDevice } from '../../mcu/src/media/edge/wrtc-device.ts';
import { RTCVideoSink, RTCVideoSource, type SinkVideoFrame } from '../../mcu/src/media/wrtc.ts';
import { until } from '../../scripts/common/wait-for.ts';
import { cleanupsAfterEach, type Cleanups } from '../helpers/cleanups.ts';

const LOOPBACK = '127.0.0.1';
const MEDIA_CODECS: ms.RtpCodecCapability[] = [
  { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
  { kind: 'video', mimeType: 'video/VP8', clockRate: 90000 },
];
/** Bytes each suite appends to an RTP packet (its authentication tag). */
const SRTP_SUITES: Array<{ suite: ms.SrtpCryptoSuite; tagBytes: number }> = [
  { suite: 'AES_CM_128_HMAC_SHA1_80', tagBytes: 10 },
  { suite: 'AES_CM_128_HMAC_SHA1_32', tagBytes: 4 },
  { suite: 'AEAD_AES_128_GCM', tagBytes: 16 },
  { suite: 'AEAD_AES_256_GCM', tagBytes: 16 },
];
const PACKETS = 50;
/** Marks the test's RTP payloads, so a packet on the wire shows whether it is plaintext. */
const MARKER = Buffer.from('hot-standby-mcu:');

/** Starts a worker through the product's module; the test's cleanups close it and wait for its process to end. */
async function startWorker(cleanups: Cleanups, settings: ms.WorkerSettings = {}): Promise<ms.Worker> {
  const worker = await createMediasoupWorker({ logLevel: 'warn', ...settings });
  cleanups.push(() => closeWorker(worker));
  return worker;
}

async function closeWorker(worker: ms.Worker): Promise<void> {
  const pid = worker.pid;
  if (!worker.subprocessClosed) {
    const ended = once(worker, 'subprocessclose');
    worker.close();
    await ended;
  }
  assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, `worker process ${pid} is gone`);
}

async function udpSocket(cleanups: Cleanups): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4');
  socket.bind(0, LOOPBACK);
  await once(socket, 'listening');
  cleanups.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return socket;
}

function rtpPacket(index: number, ssrc: number, payloadType: number): Buffer {
  const header = Buffer.alloc(12);
  header[0] = 0x80; // version 2, no padding, extension or CSRC
  header[1] = payloadType;
  header.writeUInt16BE(1000 + index, 2);
  header.writeUInt32BE(960 * index, 4);
  header.writeUInt32BE(ssrc, 8);
  const payload = Buffer.concat([MARKER, Buffer.from(`packet ${index.toString().padStart(3, '0')}`), Buffer.alloc(40, index)]);
  return Buffer.concat([header, payload]);
}

/** RTCP shares the port (rtcp-mux): its second byte is 192-223 (RFC 5761). */
function isRtcp(packet: Buffer): boolean {
  return packet.length >= 2 && packet[1]! >= 192 && packet[1]! <= 223;
}

/** The payload of an RTP packet (after CSRCs and a header extension; no padding is sent here). */
function rtpPayload(packet: Buffer): Buffer {
  let offset = 12 + 4 * (packet[0]! & 0x0f);
  if (packet[0]! & 0x10) offset += 4 + 4 * packet.readUInt16BE(offset + 2);
  return packet.subarray(offset);
}

const execFileAsync = promisify(execFile);

// libwebrtc (the wrtc peer of the DTLS test) crashes this process when it ends by draining its
// event loop (design.md, section 5): end it once the runner has reported, keeping its exit code.
after(() => void setTimeout(() => process.exit(), 200));

describe('mediasoup worker built by the set-up (real worker processes, real UDP)', () => {
  const cleanups = cleanupsAfterEach();

  it('names the missing binary and the set-up command when MEDIASOUP_WORKER_BIN points nowhere or at a non-executable file', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mediasoup-bin-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const missing = path.join(dir, 'absent-worker');
    await assert.rejects(resolveMediasoupWorkerBin({ MEDIASOUP_WORKER_BIN: missing }), (err: unknown) => {
      assert.ok(err instanceof MediasoupWorkerMissingError);
      assert.equal(err.code, 'MEDIASOUP_WORKER_MISSING');
      assert.equal(err.path, missing);
      assert.match(err.message, /no such file/);
      assert.match(err.message, /bash scripts\/setup\.sh/);
      return true;
    });
    const notExecutable = path.join(dir, 'mediasoup-worker');
    await writeFile(notExecutable, '#!/bin/sh\n');
    await chmod(notExecutable, 0o644);
    await assert.rejects(resolveMediasoupWorkerBin({ MEDIASOUP_WORKER_BIN: notExecutable }), /not executable.*bash scripts\/setup\.sh/);
  });

  it('refuses a mediasoup loaded before the module chose the binary, and names a binary that is no worker (fresh processes)', async () => {
    const bin = await resolveMediasoupWorkerBin();
    const dir = await mkdtemp(path.join(tmpdir(), 'mediasoup-bin-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const moduleUrl = new URL('../../mcu/src/media/mediasoup-worker.ts', import.meta.url).href;
    // Prints the code of what createMediasoupWorker() threw.
    const attempt = `const { createMediasoupWorker } = await import(${JSON.stringify(moduleUrl)});
      try { (await createMediasoupWorker()).close(); console.log('started'); } catch (err) { console.log(err.code); }`;
    const run = async (env: NodeJS.ProcessEnv, code: string): Promise<string> => {
      const { stdout } = await execFileAsync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
        env: { ...process.env, LOG_LEVEL: 'error', ...env },
        timeout: 30_000,
      });
      return stdout.trim();
    };

    const early = `process.env.MEDIASOUP_WORKER_BIN = '/nonexistent/mediasoup-worker';
      await import('mediasoup');
      process.env.MEDIASOUP_WORKER_BIN = ${JSON.stringify(bin.path)};
      ${attempt}`;
    assert.equal(await run({}, early), 'MEDIASOUP_LOADED_TOO_EARLY');

    const notAWorker = path.join(dir, 'mediasoup-worker');
    await writeFile(notAWorker, '#!/bin/sh\nexit 1\n');
    await chmod(notAWorker, 0o755);
    assert.equal(await run({ MEDIASOUP_WORKER_BIN: notAWorker }, attempt), 'MEDIASOUP_WORKER_START_FAILED');
  });

  it('starts the worker, routes opus and VP8 with rtx, listens for WebRTC on 127.0.0.1, reports its resource usage and closes', async () => {
    const bin = await resolveMediasoupWorkerBin();
    const worker = await startWorker(cleanups);
    assert.ok(worker.pid > 0);

    const router = await worker.createRouter({ mediaCodecs: MEDIA_CODECS });
    const codecs = router.rtpCapabilities.codecs ?? [];
    const opus = codecs.find((c) => c.mimeType === 'audio/opus');
    const vp8 = codecs.find((c) => c.mimeType === 'video/VP8');
    assert.ok(opus && vp8, `router codecs: ${codecs.map((c) => c.mimeType).join(', ')}`);
    const rtx = codecs.find((c) => c.mimeType === 'video/rtx' && c.parameters?.['apt'] === vp8.preferredPayloadType);
    assert.ok(rtx, 'the router pairs VP8 with rtx');

    const transport = await router.createWebRtcTransport({ listenInfos: [{ protocol: 'udp', ip: LOOPBACK }] });
    assert.deepEqual(
      transport.iceCandidates.map((c) => [c.address, c.protocol]),
      [[LOOPBACK, 'udp']],
    );
    assert.ok(transport.iceCandidates[0]!.port > 0);
    assert.ok(transport.iceParameters.usernameFragment.length > 0 && transport.iceParameters.password.length > 0);
    assert.ok(transport.dtlsParameters.fingerprints.some((f) => f.algorithm === 'sha-256'));

    // A browser-like VP8 producer with rtx, and a consumer of it that gets rtx too.
    const producer = await transport.produce({
      kind: 'video',
      rtpParameters: {
        mid: '0',
        codecs: [
          { mimeType: 'video/VP8', payloadType: 96, clockRate: 90000, rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }] },
          { mimeType: 'video/rtx', payloadType: 97, clockRate: 90000, parameters: { apt: 96 } },
        ],
        encodings: [{ ssrc: 22222222, rtx: { ssrc: 33333333 } }],
      },
    });
    assert.ok(router.canConsume({ producerId: producer.id, rtpCapabilities: router.rtpCapabilities }));
    const consumer = await transport.consume({ producerId: producer.id, rtpCapabilities: router.rtpCapabilities });
    assert.deepEqual(
      consumer.rtpParameters.codecs.map((c) => c.mimeType),
      ['video/VP8', 'video/rtx'],
    );
    assert.ok(consumer.rtpParameters.encodings?.[0]?.rtx?.ssrc, 'the consumer sends rtx on its own ssrc');

    const usage = await worker.getResourceUsage();
    assert.ok(usage.ru_maxrss > 0, `ru_maxrss ${usage.ru_maxrss}`);
    assert.ok(usage.ru_utime + usage.ru_stime >= 0);
    const dump = await worker.dump();
    assert.equal(dump.pid, worker.pid);
    assert.deepEqual(dump.routerIds, [router.id]);
    assert.match(await readFile(`/proc/${worker.pid}/cmdline`, 'latin1'), new RegExp(`^${bin.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\0`));

    await closeWorker(worker);
    assert.ok(worker.closed && router.closed && transport.closed && producer.closed && consumer.closed, 'closing the worker closes its tree');
  });

  it('speaks with the pinned mediasoup-client: the device loads the router\'s capabilities and consumes its producers', async () => {
    const worker = await startWorker(cleanups);
    const router = await worker.createRouter({ mediaCodecs: MEDIA_CODECS });
    const send = await router.createWebRtcTransport({ listenInfos: [{ protocol: 'udp', ip: LOOPBACK }] });
    const recv = await router.createWebRtcTransport({ listenInfos: [{ protocol: 'udp', ip: LOOPBACK }] });
    const audio = await send.produce({
      kind: 'audio',
      rtpParameters: { mid: '0', codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2 }], encodings: [{ ssrc: 44444444 }] },
    });
    const video = await send.produce({
      kind: 'video',
      rtpParameters: {
        mid: '1',
        codecs: [
          { mimeType: 'video/VP8', payloadType: 96, clockRate: 90000, rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }] },
          { mimeType: 'video/rtx', payloadType: 97, clockRate: 90000, parameters: { apt: 96 } },
        ],
        encodings: [{ ssrc: 55555555, rtx: { ssrc: 66666666 } }],
      },
    });

    // The browser's side, with mediasoup-client's own fake handler in place of an RTCPeerConnection.
    const device = new Device({ handlerFactory: FakeHandler.createFactory(fakeParameters) });
    await device.load({ routerRtpCapabilities: router.rtpCapabilities });
    assert.ok(device.canProduce('audio') && device.canProduce('video'));
    const transport = device.createRecvTransport({
      id: recv.id,
      iceParameters: recv.iceParameters,
      iceCandidates: recv.iceCandidates,
      dtlsParameters: recv.dtlsParameters,
    });
    cleanups.push(() => transport.close());
    let connected = false;
    transport.on('connect', ({ dtlsParameters }, callback, errback) => {
      recv.connect({ dtlsParameters }).then(() => {
        connected = true;
        callback();
      }, errback);
    });
    for (const producer of [audio, video]) {
      const consumer = await recv.consume({ producerId: producer.id, rtpCapabilities: device.rtpCapabilities, paused: true });
      const received = await transport.consume({ id: consumer.id, producerId: producer.id, kind: consumer.kind, rtpParameters: consumer.rtpParameters });
      assert.equal(received.kind, producer.kind);
      assert.deepEqual(
        received.rtpParameters.codecs.map((c) => c.mimeType.toLowerCase()),
        producer.kind === 'audio' ? ['audio/opus'] : ['video/vp8', 'video/rtx'],
      );
      await consumer.resume();
    }
    assert.ok(connected, 'the server took the client\'s DTLS parameters');
  });

  for (const { suite, tagBytes } of SRTP_SUITES) {
    it(`carries ${PACKETS} RTP packets from a producer to a consumer through SRTP (${suite})`, async () => {
      const worker = await startWorker(cleanups);
      const router = await worker.createRouter({ mediaCodecs: MEDIA_CODECS });
      // comedia: the transport learns its remote address from the first packet (the test's socket).
      const plain = (options: { srtp?: boolean; comedia?: boolean }): Promise<ms.PlainTransport> =>
        router.createPlainTransport({
          listenInfo: { protocol: 'udp', ip: LOOPBACK },
          rtcpMux: true,
          comedia: options.comedia ?? false,
          ...(options.srtp ? { enableSrtp: true, srtpCryptoSuite: suite } : {}),
        });

      // test --RTP--> in (producer) => encrypt (consumer) --SRTP--> relay (the test) --SRTP--> decrypt (producer) => out (consumer) --RTP--> test
      const endpoint = await udpSocket(cleanups);
      const relay = await udpSocket(cleanups);
      const into = await plain({ comedia: true });
      const encrypt = await plain({ srtp: true });
      const decrypt = await plain({ srtp: true });
      const out = await plain({});
      const relayPort = relay.address().port;
      await encrypt.connect({ ip: LOOPBACK, port: relayPort, srtpParameters: decrypt.srtpParameters! });
      await decrypt.connect({ ip: LOOPBACK, port: relayPort, srtpParameters: encrypt.srtpParameters! });
      await out.connect({ ip: LOOPBACK, port: endpoint.address().port });
      assert.equal(encrypt.srtpParameters?.cryptoSuite, suite);

      const ssrc = 11111111;
      const payloadType = 100;
      const producer = await into.produce({
        kind: 'audio',
        rtpParameters: {
          codecs: [{ mimeType: 'audio/opus', payloadType, clockRate: 48000, channels: 2 }],
          encodings: [{ ssrc }],
        },
      });
      const encrypting = await encrypt.consume({ producerId: producer.id, rtpCapabilities: router.rtpCapabilities });
      const decrypted = await decrypt.produce({ kind: 'audio', rtpParameters: encrypting.rtpParameters });
      await out.consume({ producerId: decrypted.id, rtpCapabilities: router.rtpCapabilities });

      // The relay sees the SRTP wire between the two transports.
      const encryptPort = encrypt.tuple.localPort;
      const srtpSeen: Buffer[] = [];
      relay.on('message', (packet, from) => {
        if (from.port === encryptPort) {
          if (!isRtcp(packet)) srtpSeen.push(packet);
          relay.send(packet, decrypt.tuple.localPort, LOOPBACK);
        } else {
          relay.send(packet, encryptPort, LOOPBACK);
        }
      });
      const arrived = new Map<string, Buffer>();
      const outPort = out.tuple.localPort;
      endpoint.on('message', (packet, from) => {
        if (from.port !== outPort || isRtcp(packet)) return;
        const payload = rtpPayload(packet);
        arrived.set(payload.subarray(MARKER.length, MARKER.length + 10).toString(), payload);
      });

      const sent = new Map<string, Buffer>();
      const intoPort = into.tuple.localPort;
      for (let i = 0; i < PACKETS; i++) {
        const packet = rtpPacket(i, ssrc, payloadType);
        const payload = rtpPayload(packet);
        sent.set(payload.subarray(MARKER.length, MARKER.length + 10).toString(), payload);
        endpoint.send(packet, intoPort, LOOPBACK);
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      await until(`${PACKETS} packets back through SRTP (${suite}); got ${arrived.size}`, () => arrived.size === PACKETS, { timeoutMs: 5000, intervalMs: 10 });

      for (const [key, payload] of sent) assert.deepEqual(arrived.get(key), payload, `payload of ${key} unchanged`);
      assert.equal(srtpSeen.length, PACKETS, 'every packet crossed the SRTP wire once');
      for (const packet of srtpSeen) {
        assert.equal(packet.indexOf(MARKER), -1, 'no plaintext payload on the SRTP wire');
        assert.ok(packet.length >= 12 + sent.values().next().value!.length + tagBytes, `SRTP packet of ${packet.length} bytes carries a ${tagBytes}-byte tag`);
      }
      const [decryptStats] = await decrypted.getStats();
      assert.equal(decryptStats?.packetCount, PACKETS, 'the decrypting producer counted every packet');
    });
  }

  it('completes DTLS with a libwebrtc peer (mediasoup-client on wrtc) and forwards its VP8 frames back to it', { timeout: 30_000 }, async () => {
    // The build's DTLS BIO callback fix (scripts/build-mediasoup-worker.sh): without it the worker
    // died with SIGSEGV at the first DTLS record against Debian's kTLS-enabled OpenSSL.
    const worker = await startWorker(cleanups);
    let died: Error | null = null;
    worker.on('died', (err) => (died = err));
    const router = await worker.createRouter({ mediaCodecs: MEDIA_CODECS });
    const listen = { listenInfos: [{ protocol: 'udp' as const, ip: LOOPBACK }] };
    const [serverSend, serverRecv] = [await router.createWebRtcTransport(listen), await router.createWebRtcTransport(listen)];
    const device = await loadWrtcDevice(router.rtpCapabilities as Parameters<typeof loadWrtcDevice>[0]);
    const options = (t: ms.WebRtcTransport) => ({ id: t.id, iceParameters: t.iceParameters, iceCandidates: t.iceCandidates, dtlsParameters: t.dtlsParameters }) as Parameters<typeof device.createSendTransport>[0];
    const send = device.createSendTransport(options(serverSend));
    const recv = device.createRecvTransport(options(serverRecv));
    cleanups.push(() => {
      send.close();
      recv.close();
    });
    send.on('connect', ({ dtlsParameters }, done, fail) => void serverSend.connect({ dtlsParameters }).then(done, fail));
    send.on('produce', ({ kind, rtpParameters }, done, fail) => void serverSend.produce({ kind, rtpParameters }).then((p) => done({ id: p.id }), fail));
    recv.on('connect', ({ dtlsParameters }, done, fail) => void serverRecv.connect({ dtlsParameters }).then(done, fail));

    const source = new RTCVideoSource();
    const track = source.createTrack();
    const frame = { width: 320, height: 240, data: new Uint8Array(320 * 240 * 1.5).fill(120) };
    const clock = setInterval(() => source.onFrame(frame), 66);
    cleanups.push(() => {
      clearInterval(clock);
      track.stop();
    });
    const producer = await send.produce({ track, stopTracks: false });
    const serverConsumer = await serverRecv.consume({ producerId: producer.id, rtpCapabilities: device.rtpCapabilities as ms.RtpCapabilities, paused: true });
    const consumer = await recv.consume({ id: serverConsumer.id, producerId: producer.id, kind: 'video', rtpParameters: serverConsumer.rtpParameters as Parameters<typeof recv.consume>[0]['rtpParameters'] });
    await serverConsumer.resume();
    const sink = new RTCVideoSink(consumer.track);
    cleanups.push(() => sink.stop());
    const sizes: string[] = [];
    sink.onframe = ({ frame: f }: { frame: SinkVideoFrame }) => void sizes.push(`${f.width}x${f.height}`);
    await until('10 frames back through the router', () => sizes.length >= 10 || died !== null, { timeoutMs: 20_000, intervalMs: 50 });
    assert.equal(died, null, 'the worker survived the DTLS handshakes');
    assert.equal(serverSend.dtlsState, 'connected');
    assert.equal(serverRecv.dtlsState, 'connected');
    assert.ok(sizes.includes('320x240'), `frames came back at ${[...new Set(sizes)].join(', ')}`);
  });

  it('two workers given the same DTLS certificate file show the same fingerprint (a standby can share its primary\'s)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mediasoup-dtls-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const dtlsCertificateFile = path.join(dir, 'cert.pem');
    const dtlsPrivateKeyFile = path.join(dir, 'key.pem');
    await execFileAsync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', dtlsPrivateKeyFile, '-out', dtlsCertificateFile, '-days', '2', '-subj', '/CN=hot-standby-mcu-test',
    ]);
    const expected = new X509Certificate(await readFile(dtlsCertificateFile)).fingerprint256;

    const fingerprintOf = async (worker: ms.Worker): Promise<string | undefined> => {
      const router = await worker.createRouter({ mediaCodecs: MEDIA_CODECS });
      const transport = await router.createWebRtcTransport({ listenInfos: [{ protocol: 'udp', ip: LOOPBACK }] });
      return transport.dtlsParameters.fingerprints.find((f) => f.algorithm === 'sha-256')?.value;
    };
    const [first, second, own] = await Promise.all([
      startWorker(cleanups, { dtlsCertificateFile, dtlsPrivateKeyFile }),
      startWorker(cleanups, { dtlsCertificateFile, dtlsPrivateKeyFile }),
      startWorker(cleanups),
    ]);
    assert.equal(await fingerprintOf(first), expected);
    assert.equal(await fingerprintOf(second), expected);
    assert.notEqual(await fingerprintOf(own), expected, 'a worker without the file makes its own certificate');
  });
});
