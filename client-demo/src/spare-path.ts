/**
 * The page's side of a warm spare path: a second RTCPeerConnection, offered by the standby and
 * relayed by the primary, connected in advance with idle senders (no track). At a failover the
 * page puts its local tracks on the spare's senders and renders the spare's receiver tracks.
 */
export type PageSpareState = 'answering' | 'connecting' | 'connected' | 'failed' | 'closed' | 'in-use';

export class PageSparePath {
  readonly pathId: string;
  readonly pc: RTCPeerConnection;
  #state: PageSpareState = 'answering';
  #armed = false;
  readonly #onState: (state: PageSpareState) => void;
  #unmuted = 0;

  /** `onMedia` runs when a receiver track of the spare unmutes (its first RTP packet): no need to wait for the next stats report. */
  constructor(pathId: string, onState: (state: PageSpareState) => void, onMedia: () => void = () => undefined) {
    this.pathId = pathId;
    this.#onState = onState;
    this.pc = new RTCPeerConnection();
    this.pc.addEventListener('track', (event) => {
      event.track.addEventListener('unmute', () => {
        this.#unmuted++;
        onMedia();
      });
    });
    this.pc.addEventListener('connectionstatechange', () => {
      const s = this.pc.connectionState;
      if (s === 'connected' && this.#state === 'connecting') this.#set('connected');
      else if ((s === 'failed' || s === 'closed') && (this.#state === 'connecting' || this.#state === 'connected')) this.#set('failed');
    });
  }

  get state(): PageSpareState {
    return this.#state;
  }

  get armed(): boolean {
    return this.#armed;
  }

  /** Answers the standby's offer: every m-line sendrecv, senders without a track (nothing is sent). */
  async answer(offerSdp: string, gatherTimeoutMs = 1000): Promise<string> {
    const pc = this.pc;
    await pc.setRemoteDescription({ type: 'offer', sdp: offerSdp });
    for (const t of pc.getTransceivers()) {
      t.direction = 'sendrecv';
      await t.sender.replaceTrack(null);
    }
    await pc.setLocalDescription(await pc.createAnswer());
    // Non-trickle like the server: wait for our candidates (loopback: a few ms), bounded.
    if (pc.iceGatheringState !== 'complete') {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, gatherTimeoutMs);
        pc.addEventListener('icegatheringstatechange', () => {
          if (pc.iceGatheringState === 'complete') {
            clearTimeout(timer);
            resolve();
          }
        });
      });
    }
    if (this.#state === 'answering') this.#set(pc.connectionState === 'connected' ? 'connected' : 'connecting');
    return pc.localDescription!.sdp;
  }

  /** Sends the local tracks on the spare's senders (idempotent); no renegotiation. */
  async arm(localStream: MediaStream): Promise<void> {
    if (this.#armed) return;
    this.#armed = true;
    await Promise.all(
      this.pc.getTransceivers().map((t) => {
        const track = localStream.getTracks().find((tr) => tr.kind === t.receiver.track.kind) ?? null;
        return t.sender.track === track ? undefined : t.sender.replaceTrack(track);
      }),
    );
  }

  /** Back to idle senders (a false alarm). */
  async disarm(): Promise<void> {
    if (!this.#armed || this.#state === 'in-use') return;
    this.#armed = false;
    await Promise.all(this.pc.getTransceivers().map((t) => t.sender.replaceTrack(null)));
  }

  /** Receiver tracks of the spare that unmuted (got media); none until a promoted standby sends on it. */
  get unmuted(): number {
    return this.#unmuted;
  }

  /** The spare's reception (no packets until a promoted standby sends on it). */
  reception(): Promise<Reception> {
    return reception(this.pc);
  }

  /** The page switched to this path: it is the call's peer connection now, not a spare. */
  markInUse(): void {
    this.#set('in-use');
  }

  /** Idempotent; a path in use belongs to the call and is not closed here. */
  close(): void {
    if (this.#state === 'closed' || this.#state === 'in-use') return;
    this.pc.close();
    this.#set('closed');
  }

  #set(state: PageSpareState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#onState(state);
  }
}

/** What the inbound RTP statistics of a peer connection say about its reception. */
export interface Reception {
  /** When the report was made (epoch ms, the clock of `lastPacketAt`). */
  at: number;
  /** When the latest RTP packet arrived on any inbound stream (epoch ms), null before the first. */
  lastPacketAt: number | null;
  packets: number;
  /** Audio packets alone (20 ms each): how long audio has been arriving. */
  audioPackets: number;
  /** When the latest audio packet arrived (epoch ms), null before the first. */
  lastAudioPacketAt: number | null;
}

/**
 * Reception of `pc` from its inbound-rtp statistics: counted at the network, not at playout
 * (jitter-buffer drain and concealment would hide a dead path for hundreds of ms). Chromium
 * caches a report for about 50 ms, so the silence is judged from the report's own time and the
 * last packet time it holds, never from when it was read.
 */
export async function reception(pc: RTCPeerConnection): Promise<Reception> {
  const result: Reception = { at: performance.timeOrigin + performance.now(), lastPacketAt: null, packets: 0, audioPackets: 0, lastAudioPacketAt: null };
  if (pc.connectionState === 'closed') return result;
  const stats = await pc.getStats();
  let reportAt: number | null = null;
  stats.forEach((s: { type: string; kind?: string; timestamp: number; packetsReceived?: number; lastPacketReceivedTimestamp?: number }) => {
    if (s.type !== 'inbound-rtp') return;
    reportAt = Math.max(reportAt ?? 0, s.timestamp);
    result.packets += s.packetsReceived ?? 0;
    if (s.lastPacketReceivedTimestamp !== undefined) result.lastPacketAt = Math.max(result.lastPacketAt ?? 0, s.lastPacketReceivedTimestamp);
    if (s.kind !== 'audio') return;
    result.audioPackets += s.packetsReceived ?? 0;
    if (s.lastPacketReceivedTimestamp !== undefined) result.lastAudioPacketAt = Math.max(result.lastAudioPacketAt ?? 0, s.lastPacketReceivedTimestamp);
  });
  if (reportAt !== null) result.at = reportAt;
  return result;
}
