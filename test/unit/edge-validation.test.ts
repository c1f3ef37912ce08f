/**
 * The mediasoup plane's signaling validation (mcu/src/signaling/validation.ts) against what the
 * pinned mediasoup-client really sends: its device capabilities and a producer's RTP parameters
 * (its fake handler, which builds them as a browser's would), and what it must refuse.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Device } from 'mediasoup-client';
import * as fakeParameters from 'mediasoup-client/fakeParameters';
import { FakeHandler } from 'mediasoup-client/handlers/FakeHandler';
import { InvalidMessageError } from '../../mcu/src/core/errors.ts';
import { validate } from '../../mcu/src/signaling/validation.ts';

async function fakeDevice(): Promise<Device> {
  const device = new Device({ handlerFactory: FakeHandler.createFactory(fakeParameters) });
  await device.load({ routerRtpCapabilities: fakeParameters.generateRouterRtpCapabilities() });
  return device;
}

describe('mediasoup plane: validation of the edge-* requests', () => {
  it('accepts the device capabilities, DTLS parameters and producer RTP parameters mediasoup-client sends', async () => {
    const device = await fakeDevice();
    assert.deepEqual(validate.edgeConsume({ rtpCapabilities: device.rtpCapabilities }).rtpCapabilities, device.rtpCapabilities);

    const transport = device.createSendTransport(fakeParameters.generateTransportRemoteParameters());
    const sent: Array<{ kind: string; rtpParameters: unknown; dtls?: unknown }> = [];
    transport.on('connect', ({ dtlsParameters }, done) => {
      sent.push({ kind: 'dtls', rtpParameters: null, dtls: dtlsParameters });
      done();
    });
    transport.on('produce', ({ kind, rtpParameters }, done) => {
      sent.push({ kind, rtpParameters });
      done({ id: crypto.randomUUID() });
    });
    const track = { id: crypto.randomUUID(), kind: 'audio', enabled: true, readyState: 'live', addEventListener() {}, removeEventListener() {}, stop() {}, clone() { return this; } };
    await transport.produce({ track: track as unknown as MediaStreamTrack, stopTracks: false });
    const dtls = sent.find((s) => s.kind === 'dtls')!.dtls;
    const produced = sent.find((s) => s.kind === 'audio')!;
    const transportId = crypto.randomUUID();
    assert.deepEqual(validate.edgeConnect({ transportId, dtlsParameters: dtls }).dtlsParameters, dtls);
    assert.deepEqual(validate.edgeProduce({ transportId, kind: 'audio', rtpParameters: produced.rtpParameters }).rtpParameters, produced.rtpParameters);
  });

  it('refuses unknown fields, wrong types and oversized lists, naming the field', () => {
    const id = crypto.randomUUID();
    const codec = { mimeType: 'audio/opus', payloadType: 111, clockRate: 48000 };
    const refusals: Array<{ call: () => unknown; field: RegExp }> = [
      { call: () => validate.edgeTransport({ direction: 'both' }), field: /direction/ },
      { call: () => validate.edgeTransport({ direction: 'send', extra: 1 }), field: /extra|Unrecognized/ },
      { call: () => validate.edgeConnect({ transportId: 'x', dtlsParameters: { fingerprints: [{ algorithm: 'sha-256', value: 'AB' }] } }), field: /transportId/ },
      { call: () => validate.edgeProduce({ transportId: id, kind: 'text', rtpParameters: { codecs: [codec] } }), field: /kind/ },
      { call: () => validate.edgeProduce({ transportId: id, kind: 'audio', rtpParameters: { codecs: [{ ...codec, payloadType: 300 }] } }), field: /payloadType/ },
      { call: () => validate.edgeProduce({ transportId: id, kind: 'audio', rtpParameters: { codecs: Array(17).fill(codec) } }), field: /codecs/ },
      { call: () => validate.edgeConsume({ rtpCapabilities: { codecs: 'opus' } }), field: /codecs/ },
      { call: () => validate.edgeResume({ consumerIds: [] }), field: /consumerIds/ },
    ];
    for (const { call, field } of refusals) {
      assert.throws(call, (err: unknown) => err instanceof InvalidMessageError && field.test(err.message), String(call));
    }
  });
});
