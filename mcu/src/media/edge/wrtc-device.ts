/**
 * mediasoup-client in Node, on libwebrtc through @roamhq/wrtc: the room mixer's side of the
 * router (mixer-endpoint.ts) and the synthetic participants of tests and benchmarks.
 *
 * mediasoup-client's Chrome111 handler creates its peer connections and streams through the
 * globals `RTCPeerConnection` and `MediaStream`, which Node does not have: they are set here to
 * wrtc's classes (the same ones mcu/src/media/wrtc.ts names), once, before the first device.
 */
import { Device } from 'mediasoup-client';
import { Chrome111 } from 'mediasoup-client/handlers/Chrome111';
import type { types as msc } from 'mediasoup-client';
import { MediaStream, RTCPeerConnection } from '../wrtc.ts';

let globalsSet = false;

function setWebRtcGlobals(): void {
  if (globalsSet) return;
  const g = globalThis as { RTCPeerConnection?: unknown; MediaStream?: unknown };
  g.RTCPeerConnection ??= RTCPeerConnection;
  g.MediaStream ??= MediaStream;
  globalsSet = true;
}

/** A mediasoup-client Device on wrtc, loaded with the router's capabilities. */
export async function loadWrtcDevice(routerRtpCapabilities: msc.RtpCapabilities): Promise<Device> {
  setWebRtcGlobals();
  const device = new Device({ handlerFactory: Chrome111.createFactory() });
  await device.load({ routerRtpCapabilities });
  return device;
}

/**
 * The RTCPeerConnection under a mediasoup-client transport on the Chrome111 handler. mediasoup-client
 * keeps it private (`_pc`); its statistics (inbound-rtp of what a synthetic peer receives) are
 * read from it. Null with another handler.
 */
export function peerConnectionOf(transport: msc.Transport): RTCPeerConnection | null {
  const pc = (transport.handler as unknown as { _pc?: unknown })._pc;
  return pc instanceof RTCPeerConnection ? pc : null;
}
