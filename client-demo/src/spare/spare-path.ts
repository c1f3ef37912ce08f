/**
 * The page's side of a warm spare path: a second RTCPeerConnection, offered by the standby and
 * relayed by the primary, connected in advance with idle senders (no track). At a failover the
 * page puts its local tracks on the spare's senders and renders the spare's receiver tracks.
 */
import { reception, type Reception } from '../stats/reception.ts';

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
