/**
 * Signaling against a real MCU process: joins, leaves and rosters, and every kind of
 * bad input gets a clear error while the server and the other participants carry on.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { startMcu, type RunningMcu } from '../../scripts/common/processes.ts';
import { TestSignalingClient } from '../helpers/signaling-client.ts';

describe('signaling (real MCU process, socket.io-client)', () => {
  let mcu: RunningMcu;
  const clients: TestSignalingClient[] = [];
  const client = async (): Promise<TestSignalingClient> => {
    const c = new TestSignalingClient(mcu.url);
    clients.push(c);
    await c.connected();
    return c;
  };

  before(async () => {
    mcu = await startMcu({ MCU_MAX_PARTICIPANTS_PER_ROOM: '3', MCU_MAX_ROOMS: '6', MCU_MAX_MESSAGE_BYTES: '8192' });
  });
  after(async () => {
    for (const c of clients) c.close();
    await mcu?.stop();
  });

  it('join, roster to everyone, leave', async () => {
    const alice = await client();
    const bob = await client();
    const a = await alice.request('join', { room: 'r1', name: 'Alice' });
    assert.equal(a.ok, true, JSON.stringify(a));
    assert.equal(typeof a.participantId, 'string');
    assert.equal(a.resumed, false);
    const b = await bob.request('join', { room: 'r1', name: '  Bob ' });
    assert.equal(b.ok, true);
    const roster = await alice.nextRoster((r) => r.participants.length === 2);
    assert.deepEqual(roster.participants.map((p) => p.name), ['Alice', 'Bob']);
    assert.ok(roster.participants.every((p) => p.connected && !p.audioMuted && !p.videoMuted));
    const mute = await bob.request('mute', { kind: 'audio', muted: true });
    assert.equal(mute.ok, true);
    const muted = await alice.nextRoster((r) => r.participants.some((p) => p.name === 'Bob' && p.audioMuted));
    assert.ok(muted);
    assert.equal((await bob.request('leave')).ok, true);
    const after = await alice.nextRoster((r) => r.participants.length === 1);
    assert.deepEqual(after.participants.map((p) => p.name), ['Alice']);
    assert.equal((await alice.request('leave')).ok, true);
  });

  it('rejects bad input with a clear error and keeps everyone else in the call', async () => {
    const bystander = await client();
    assert.equal((await bystander.request('join', { room: 'calm', name: 'Bystander' })).ok, true);
    const bad = await client();

    const cases: Array<{ what: string; event: string; args: unknown[]; code: string; mentions?: RegExp }> = [
      { what: 'room of the wrong type', event: 'join', args: [{ room: 42, name: 'x' }], code: 'INVALID_MESSAGE', mentions: /room/ },
      { what: 'missing name', event: 'join', args: [{ room: 'r2' }], code: 'INVALID_MESSAGE', mentions: /name/ },
      { what: 'empty name', event: 'join', args: [{ room: 'r2', name: '   ' }], code: 'INVALID_MESSAGE', mentions: /empty/ },
      { what: 'bad room characters', event: 'join', args: [{ room: '../etc', name: 'x' }], code: 'INVALID_MESSAGE', mentions: /room/ },
      { what: 'unexpected field', event: 'join', args: [{ room: 'r2', name: 'x', admin: true }], code: 'INVALID_MESSAGE' },
      { what: 'payload not an object', event: 'join', args: ['hello'], code: 'INVALID_MESSAGE' },
      { what: 'oversized payload', event: 'join', args: [{ room: 'r2', name: 'x'.repeat(20000) }], code: 'MESSAGE_TOO_LARGE', mentions: /8192/ },
      { what: 'offer before join', event: 'offer', args: [{ sdp: 'v=0\r\n' }], code: 'NOT_JOINED', mentions: /join/ },
      { what: 'mute before join', event: 'mute', args: [{ kind: 'audio', muted: true }], code: 'NOT_JOINED' },
      { what: 'leave before join', event: 'leave', args: [], code: 'NOT_JOINED' },
      { what: 'bad mute kind', event: 'mute', args: [{ kind: 'smell', muted: true }], code: 'INVALID_MESSAGE', mentions: /kind/ },
      { what: 'unknown event', event: 'teleport', args: [{}], code: 'INVALID_MESSAGE', mentions: /unknown event/ },
      { what: 'answer before join', event: 'answer', args: [{ sdp: 'v=0\r\n', offerId: 1 }], code: 'NOT_JOINED' },
      { what: 'answer without an offer id', event: 'answer', args: [{ sdp: 'v=0\r\n' }], code: 'INVALID_MESSAGE', mentions: /offerId/ },
      { what: 'resume into an unknown room', event: 'join', args: [{ room: 'nowhere', name: 'x', resume: { participantId: 'p', resumeToken: 't' } }], code: 'UNKNOWN_ROOM' },
      { what: 'resume with a forged token', event: 'join', args: [{ room: 'calm', name: 'x', resume: { participantId: 'p', resumeToken: 't' } }], code: 'RESUME_REJECTED' },
    ];
    for (const c of cases) {
      const errorEvent = bad.nextError();
      const res = await bad.request(c.event, ...c.args);
      assert.equal(res.ok, false, `${c.what}: expected a refusal`);
      assert.equal(res.error?.code, c.code, `${c.what}: ${JSON.stringify(res.error)}`);
      if (c.mentions) assert.match(res.error!.message, c.mentions, c.what);
      const ev = await errorEvent;
      assert.equal(ev.code, c.code, `${c.what}: the error event names the same problem`);
      assert.equal(ev.event, c.event);
    }

    // An event without an acknowledgement callback still gets the error event.
    const noAck = bad.nextError();
    (bad.socket as unknown as { emit(event: string): void }).emit('leave');
    assert.equal((await noAck).code, 'NOT_JOINED');

    // After joining: a double join, and an SDP that libwebrtc refuses.
    assert.equal((await bad.request('join', { room: 'r3', name: 'Mallory' })).ok, true);
    const again = await bad.request('join', { room: 'r3', name: 'Mallory' });
    assert.equal(again.error?.code, 'ALREADY_JOINED');
    const garbage = await bad.request('offer', { sdp: 'v=0\r\nthis is not sdp\r\n' });
    assert.equal(garbage.error?.code, 'NEGOTIATION_FAILED');
    const unasked = await bad.request('answer', { sdp: 'v=0\r\n', offerId: 7 });
    assert.equal(unasked.error?.code, 'INVALID_MESSAGE');
    assert.match(unasked.error!.message, /pending server offer/);

    // The bystander never noticed.
    assert.equal(bystander.disconnects, 0);
    assert.equal(bystander.errors.length, 0);
    const status = (await (await fetch(`${mcu.adminUrl}/status`)).json()) as { role: string; rooms: Array<{ name: string; participants: number }> };
    assert.equal(status.role, 'primary');
    assert.equal(status.rooms.find((r) => r.name === 'calm')?.participants, 1);
  });

  it('enforces the room and participant limits', async () => {
    const members: TestSignalingClient[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await client();
      members.push(c);
      assert.equal((await c.request('join', { room: 'full', name: `m${i}` })).ok, true);
    }
    const late = await client();
    const res = await late.request('join', { room: 'full', name: 'late' });
    assert.equal(res.error?.code, 'ROOM_FULL');
    // Fill the remaining room slots, then one more room is refused.
    const status = (await (await fetch(`${mcu.adminUrl}/status`)).json()) as { rooms: unknown[] };
    const fillers: TestSignalingClient[] = [];
    for (let i = status.rooms.length; i < 6; i++) {
      const c = await client();
      fillers.push(c);
      assert.equal((await c.request('join', { room: `filler${i}`, name: 'x' })).ok, true);
    }
    const extra = await client();
    const refused = await extra.request('join', { room: 'one-too-many', name: 'x' });
    assert.equal(refused.error?.code, 'TOO_MANY_ROOMS');
    assert.match(refused.error!.message, /MCU_MAX_ROOMS/);
    for (const f of fillers) await f.request('leave');
    for (const m of members) await m.request('leave');
  });

  it('survives garbage on the raw WebSocket and keeps serving', async () => {
    const raw = new WebSocket(`${mcu.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
    await new Promise<void>((resolve, reject) => {
      raw.once('open', () => resolve());
      raw.once('error', reject);
    });
    const closed = new Promise<void>((resolve) => raw.once('close', () => resolve()));
    raw.send('40');
    raw.send('42["join",{"room":');
    raw.send(Buffer.from([0xff, 0x00, 0x13]));
    await closed;
    const c = await client();
    assert.equal((await c.request('join', { room: 'after-garbage', name: 'ok' })).ok, true);
  });

  it('a dropped connection can resume the same participant; a deliberate disconnect leaves', async () => {
    const watcher = await client();
    assert.equal((await watcher.request('join', { room: 'resume', name: 'Watcher' })).ok, true);
    const first = await client();
    const joined = await first.request('join', { room: 'resume', name: 'Roamer' });
    // Simulate a network drop: close the underlying transport, not a socket.io disconnect.
    (first.socket.io.engine as unknown as { close(): void }).close();
    const away = await watcher.nextRoster((r) => r.participants.some((p) => p.name === 'Roamer' && !p.connected));
    assert.ok(away);
    const second = await client();
    const resumed = await second.request('join', {
      room: 'resume',
      name: 'Roamer',
      resume: { participantId: joined.participantId, resumeToken: joined.resumeToken },
    });
    assert.equal(resumed.ok, true, JSON.stringify(resumed));
    assert.equal(resumed.resumed, true);
    assert.equal(resumed.participantId, joined.participantId);
    const back = await watcher.nextRoster((r) => r.participants.length === 2 && r.participants.every((p) => p.connected));
    assert.equal(back.participants.filter((p) => p.name === 'Roamer').length, 1, 'no duplicate roster entry');
    second.close();
    const gone = await watcher.nextRoster((r) => r.participants.length === 1);
    assert.deepEqual(gone.participants.map((p) => p.name), ['Watcher']);
  });
});

describe('signaling on the mediasoup plane (real MCU process and mediasoup worker, socket.io-client)', () => {
  let wrtc: RunningMcu;
  let edge: RunningMcu;
  const clients: TestSignalingClient[] = [];
  const client = async (on: RunningMcu): Promise<TestSignalingClient> => {
    const c = new TestSignalingClient(on.url);
    clients.push(c);
    await c.connected();
    return c;
  };

  before(async () => {
    edge = await startMcu({ MCU_MEDIA_PLANE: 'mediasoup' });
    wrtc = await startMcu();
  });
  after(async () => {
    for (const c of clients) c.close();
    await edge?.stop();
    await wrtc?.stop();
  });

  it('the join reply names the plane; each plane refuses the other\'s media requests', async () => {
    const onEdge = await client(edge);
    const joined = await onEdge.request('join', { room: 'edge', name: 'Ada' });
    assert.equal(joined.mediaPlane, 'mediasoup', JSON.stringify(joined));
    const offer = await onEdge.request('offer', { sdp: 'v=0\r\n' });
    assert.equal(offer.error?.code, 'WRONG_MEDIA_PLANE', JSON.stringify(offer));

    const onWrtc = await client(wrtc);
    assert.equal((await onWrtc.request('join', { room: 'plain', name: 'Bob' })).mediaPlane, 'wrtc');
    const caps = await onWrtc.request('edge-capabilities');
    assert.equal(caps.error?.code, 'WRONG_MEDIA_PLANE', JSON.stringify(caps));
  });

  it('capabilities and transports on the room router; bad edge requests get a clear error and change nothing', async () => {
    const c = await client(edge);
    assert.equal((await c.request('edge-capabilities')).error?.code, 'NOT_JOINED');
    assert.equal((await c.request('join', { room: 'edge2', name: 'Cy' })).ok, true);
    const caps = (await c.request('edge-capabilities')) as { ok: boolean; routerRtpCapabilities?: { codecs: Array<{ mimeType: string }> } };
    assert.equal(caps.ok, true, JSON.stringify(caps));
    assert.deepEqual(caps.routerRtpCapabilities?.codecs.map((k) => k.mimeType).sort(), ['audio/opus', 'video/VP8', 'video/rtx'].sort());
    const send = (await c.request('edge-transport', { direction: 'send' })) as { ok: boolean; transportId?: string; iceCandidates?: Array<{ address: string; protocol: string }> };
    assert.equal(send.ok, true, JSON.stringify(send));
    assert.ok(send.iceCandidates?.every((k) => k.address === '127.0.0.1' && k.protocol === 'udp'), JSON.stringify(send.iceCandidates));

    const cases: Array<{ event: string; payload: unknown; code: string; mentions: RegExp }> = [
      { event: 'edge-transport', payload: { direction: 'sideways' }, code: 'INVALID_MESSAGE', mentions: /direction/ },
      { event: 'edge-connect', payload: { transportId: 'nope', dtlsParameters: { fingerprints: [] } }, code: 'INVALID_MESSAGE', mentions: /transportId/ },
      { event: 'edge-connect', payload: { transportId: send.transportId, dtlsParameters: { fingerprints: [] } }, code: 'INVALID_MESSAGE', mentions: /fingerprint/ },
      { event: 'edge-produce', payload: { transportId: send.transportId, kind: 'audio', rtpParameters: { codecs: [] } }, code: 'INVALID_MESSAGE', mentions: /codec/ },
      {
        event: 'edge-produce',
        payload: { transportId: '00000000-0000-4000-8000-000000000000', kind: 'audio', rtpParameters: { codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000 }] } },
        code: 'EDGE_REQUEST_FAILED',
        mentions: /no transport/,
      },
      {
        event: 'edge-produce',
        payload: { transportId: send.transportId, kind: 'audio', rtpParameters: { codecs: [{ mimeType: 'audio/nonsense', payloadType: 111, clockRate: 48000 }], encodings: [{ ssrc: 1 }] } },
        code: 'EDGE_REQUEST_FAILED',
        mentions: /edge-produce/,
      },
      { event: 'edge-consume', payload: { rtpCapabilities: {} }, code: 'EDGE_REQUEST_FAILED', mentions: /receive transport first/ },
      { event: 'edge-resume', payload: { consumerIds: ['00000000-0000-4000-8000-000000000000'] }, code: 'EDGE_REQUEST_FAILED', mentions: /no consumer/ },
    ];
    for (const k of cases) {
      const res = await c.request(k.event, k.payload);
      assert.equal(res.error?.code, k.code, `${k.event} ${JSON.stringify(k.payload).slice(0, 80)}: ${JSON.stringify(res)}`);
      assert.match(res.error!.message, k.mentions);
    }
    // Still served after all that.
    assert.equal((await c.request('edge-transport', { direction: 'recv' })).ok, true);
    assert.equal((await c.request('leave')).ok, true);
  });
});
