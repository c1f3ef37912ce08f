/**
 * The media engine: libwebrtc through @roamhq/wrtc. Everything else imports the
 * WebRTC classes from here, so the engine is named in one place.
 */
import wrtc from '@roamhq/wrtc';

export const { RTCPeerConnection, RTCSessionDescription, MediaStream } = wrtc;
export const { RTCAudioSink, RTCAudioSource, RTCVideoSink, RTCVideoSource } = wrtc.nonstandard;

export type RTCAudioSinkInstance = InstanceType<typeof RTCAudioSink>;
export type RTCAudioSourceInstance = InstanceType<typeof RTCAudioSource>;
export type RTCVideoSinkInstance = InstanceType<typeof RTCVideoSink>;
export type RTCVideoSourceInstance = InstanceType<typeof RTCVideoSource>;

/** What RTCAudioSink delivers every 10 ms (rate and frame size change mid-stream). */
export interface SinkAudioData {
  samples: Int16Array;
  sampleRate: number;
  bitsPerSample: number;
  channelCount: number;
  numberOfFrames: number;
}

/** What RTCVideoSink delivers: an I420 frame whose size may change. */
export interface SinkVideoFrame {
  width: number;
  height: number;
  rotation: number;
  data: Uint8Array;
}
