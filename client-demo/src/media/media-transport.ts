import type { ServerOffer } from '../../../mcu/src/signaling/protocol.ts';
import { TypedEmitter } from '../emitter.ts';
import type { SignalingClient } from '../signaling/signaling-client.ts';

export type MediaTransportEvents = {
  /** The mix from the MCU: one stream with its audio and video receiver tracks. */
  'remote-stream': [MediaStream];
  /** A server-offered restart did not connect within the restart timeout. */
  'restart-stalled': [why: string];
};

/** How long the dead path of a switch lingers before it is closed (see adopt). */
const RETIRE_OLD_PATH_MS = 3000;

/**
 * The page's media with the MCU: one RTCPeerConnection carrying the local tracks (sendrecv). The
 * page offers once; afterwards the MCU may send offers (media restart after a failover) on the
 * same connection. A new peer connection only replaces it after a failed restart, a fresh join,
 * or a switch to a warm spare path (adopt).
 */
export class MediaTransport extends TypedEmitter<MediaTransportEvents> {
  readonly #signaling: SignalingClient;
  readonly #localStream: MediaStream;
  readonly #restartTimeoutMs: number;
  #pc: RTCPeerConnection;
  #restartWatchdog: ReturnType<typeof setTimeout> | null = null;
  #remoteStream: MediaStream | null = null;
  #lastRestartAt = -Infinity;

  constructor(signaling: SignalingClient, localStream: MediaStream, restartTimeoutMs: number) {
    super();
    this.#signaling = signaling;
    this.#localStream = localStream;
    this.#restartTimeoutMs = restartTimeoutMs;
    this.#pc = this.#newPeerConnection();
  }

  /** The peer connection to the MCU: the same one across server restarts. */
  get pc(): RTCPeerConnection {
    return this.#pc;
  }

  /** When the media last restarted (a server offer received, or a switch to a spare), performance.now(). */
  get lastRestartAt(): number {
    return this.#lastRestartAt;
  }

  /** The peer connection has negotiated with some MCU already. */
  get negotiated(): boolean {
    return this.#pc.remoteDescription !== null;
  }

  /** A new peer connection with the same local tracks; the old one is closed (it belongs to a dead server). */
  renew(): void {
    this.#clearWatchdog();
    const old = this.#pc;
    this.#pc = this.#newPeerConnection();
    old.close();
    this.#remoteStream = null;
  }

  /** The page offers, the MCU answers (`fresh`: a new peer connection, the server starts afresh too). */
  async negotiate(fresh: boolean): Promise<void> {
    const pc = this.#pc;
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const reply = await this.#signaling.offer({ sdp: pc.localDescription!.sdp, fresh });
    await pc.setRemoteDescription({ type: 'answer', sdp: reply.sdp });
    this.#publishRemoteStream();
  }

  /**
   * The MCU rebuilds the media path (a standby took over): answer on the same peer connection.
   * Rejects when the answer cannot be made or sent; emits 'restart-stalled' when the connection
   * is not up within the restart timeout. `receivedAt`: when the offer arrived (performance.now()).
   */
  async acceptOffer(offer: ServerOffer, receivedAt: number): Promise<void> {
    const pc = this.#pc;
    await pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    await this.#signaling.answer({ sdp: pc.localDescription!.sdp, offerId: offer.offerId });
    this.#publishRemoteStream();
    this.#clearWatchdog();
    if (pc.connectionState !== 'connected') {
      this.#restartWatchdog = setTimeout(() => {
        this.#restartWatchdog = null;
        if (this.#pc === pc && pc.connectionState !== 'connected') this.emit('restart-stalled', `not connected after ${this.#restartTimeoutMs} ms`);
      }, this.#restartTimeoutMs);
    }
    this.#lastRestartAt = receivedAt;
  }

  /**
   * Moves the media onto `pc`, a warm spare path already connected (no negotiation): its receiver
   * tracks replace the old ones in the remote stream, the old peer connection stops sending and is
   * closed a little later. `at`: the switch, performance.now().
   */
  adopt(pc: RTCPeerConnection, at: number): void {
    const old = this.#pc;
    this.#pc = pc;
    this.#watchRestart(pc);
    this.#clearWatchdog();
    this.#lastRestartAt = at;
    for (const t of old.getTransceivers()) void t.sender.replaceTrack(null).catch(() => undefined);
    // Closed a little later: closing a peer connection holds the page's WebRTC threads for a
    // moment, and packets of the path just switched to would wait behind it (a second gap).
    setTimeout(() => old.close(), RETIRE_OLD_PATH_MS);
    this.#swapRemoteTracks();
  }

  /** Idempotent: closes the peer connection (local tracks are the caller's). */
  close(): void {
    this.#clearWatchdog();
    this.#pc.close();
    this.removeAllListeners();
  }

  #newPeerConnection(): RTCPeerConnection {
    const pc = new RTCPeerConnection();
    for (const track of this.#localStream.getTracks()) {
      pc.addTransceiver(track, { direction: 'sendrecv', streams: [this.#localStream] });
    }
    this.#watchRestart(pc);
    return pc;
  }

  #watchRestart(pc: RTCPeerConnection): void {
    pc.addEventListener('connectionstatechange', () => {
      if (pc === this.#pc && pc.connectionState === 'connected') this.#clearWatchdog();
    });
  }

  #clearWatchdog(): void {
    if (this.#restartWatchdog) clearTimeout(this.#restartWatchdog);
    this.#restartWatchdog = null;
  }

  // Remote tracks come from the transceivers' receivers: they survive a server-side restart,
  // while the stream ids in the SDP change with every server peer connection.
  #publishRemoteStream(): void {
    const tracks = this.#pc.getTransceivers().map((t) => t.receiver.track);
    if (this.#remoteStream && tracks.every((t) => this.#remoteStream!.getTracks().includes(t))) return;
    this.#remoteStream = new MediaStream(tracks);
    this.emit('remote-stream', this.#remoteStream);
  }

  /**
   * After a switch to the spare path: its receiver tracks replace the old ones inside the same
   * MediaStream, so the element keeps its srcObject (no reload of the media element).
   */
  #swapRemoteTracks(): void {
    const stream = this.#remoteStream;
    if (!stream) return this.#publishRemoteStream();
    const tracks = this.#pc.getTransceivers().map((t) => t.receiver.track);
    for (const old of stream.getTracks()) if (!tracks.includes(old)) stream.removeTrack(old);
    for (const track of tracks) if (!stream.getTracks().includes(track)) stream.addTrack(track);
    this.emit('remote-stream', stream);
  }
}
