import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { withVideoStartBitrate } from '../../mcu/src/media/media-session.ts';

const SDP = [
  'v=0',
  'o=- 1 2 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111',
  'a=rtpmap:111 opus/48000/2',
  'a=fmtp:111 minptime=10;useinbandfec=1',
  'm=video 9 UDP/TLS/RTP/SAVPF 96 97 98',
  'a=rtpmap:96 VP8/90000',
  'a=rtpmap:97 rtx/90000',
  'a=fmtp:97 apt=96',
  'a=rtpmap:98 H264/90000',
  'a=fmtp:98 level-asymmetry-allowed=1;packetization-mode=1',
  '',
].join('\r\n');

describe('withVideoStartBitrate', () => {
  const out = withVideoStartBitrate(SDP, 1200);
  const lines = out.split('\r\n');

  it('adds an fmtp line to a video codec that has none', () => {
    assert.ok(lines.includes('a=fmtp:96 x-google-start-bitrate=1200'));
  });

  it('extends an existing fmtp line of a video codec', () => {
    assert.ok(lines.includes('a=fmtp:98 level-asymmetry-allowed=1;packetization-mode=1;x-google-start-bitrate=1200'));
  });

  it('leaves audio, retransmission payloads and the trailing line break alone', () => {
    assert.ok(lines.includes('a=fmtp:111 minptime=10;useinbandfec=1'));
    assert.ok(lines.includes('a=fmtp:97 apt=96'));
    assert.ok(out.endsWith('\r\n'));
    assert.equal(lines.filter((l) => l.includes('x-google-start-bitrate')).length, 2);
  });

  it('is idempotent', () => {
    assert.equal(withVideoStartBitrate(out, 1200).split('x-google-start-bitrate').length, out.split('x-google-start-bitrate').length);
  });
});
