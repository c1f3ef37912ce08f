import { EventEmitter } from 'node:events';
import { NegotiationFailedError } from '../core/errors.ts';
import { createLogger, type Logger } from '../core/logger.ts';
import { filterCandidates, withVideoStartBitrate } from '../media/media-session.ts';
import { RTCPeerConnection } from '../media/wrtc.ts';
import { safeEmit } from '../core/events.ts';
import type { NegotiatedMedia } from '../conference/session-state.ts';
import { BlobKind, parseBlob, type SpareOfferBlob, type SparePathState, type SpareStateBlob } from '../wire/index.ts';
import type { ReplicationClient } from '../replication/replication-client.ts';

/** Start bitrate of the grid on a spare path: high enough that the encoder sends its first frames at full size at once. */
const SPARE_VIDEO_START_KBPS = 1200;

/** A spare path the promoted standby turns into a participant's media session. */
export interface SpareHandoff {
  pathId: string;
  /** The standby's connected peer connection (wrtc), its transceivers in `mlines` order. */
  pc: RTCPeerConnection;
  /** The spare's m-lines (mids of its own offer), recorded as the participant's media once the page switched. */
  mlines: NegotiatedMedia['mlines'];
  /** The page's answer SDP. */
  remoteSdp: string;
}

/** A standby's spare path: the relay states, plus `handed-off` once a promotion took its peer connection. */
export type StandbySparePathState = SparePathState | 'handed-off';

export type SparePathEvents = {
  state: [to: StandbySparePathState, from: StandbySparePathState, detail: string | undefined];
  close: [];
};

export interface SparePathOptions {
  pathId: string;
  participantId: string;
  iceAddresses: string[];
  iceGatherTimeoutMs: number;
  log: Logger;
}

/**
 * One warm spare path on the standby: a wrtc peer connection with one audio and one video
 * transceiver (sendrecv, no track: nothing is sent), offered to the participant's page through
 * the primary. Once connected it idles (ICE consent checks only) until a promotion hands it to
 * the participant's media session.
 */
export class SparePath extends EventEmitter<SparePathEvents> {
  readonly pathId: string;
  readonly participantId: string;
  readonly createdAt = Date.now();
  readonly #opts: SparePathOptions;
  readonly #pc: RTCPeerConnection;
  #state: StandbySparePathState = 'offering';
  #mlines: NegotiatedMedia['mlines'] = [];
  #remoteSdp: string | null = null;

  constructor(opts: SparePathOptions) {
    super();
    this.#opts = opts;
    this.pathId = opts.pathId;
    this.participantId = opts.participantId;
    this.#pc = new RTCPeerConnection({ iceServers: [] });
    this.#pc.onconnectionstatechange = () => {
      const state = this.#pc.connectionState;
      if (state === 'connected' && this.#state === 'answered') this.#setState('connected');
      else if (state === 'failed') this.#setState('failed', 'peer connection failed');
    };
  }

  get state(): StandbySparePathState {
    return this.#state;
  }

  get closed(): boolean {
    return this.#state === 'closed' || this.#state === 'handed-off';
  }

  /** The offer for the page: audio then video, both sendrecv with idle senders; every candidate gathered. */
  async offer(): Promise<string> {
    const pc = this.#pc;
    pc.addTransceiver('audio', { direction: 'sendrecv' });
    pc.addTransceiver('video', { direction: 'sendrecv' });
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await this.#gatheringComplete();
    const local = pc.localDescription;
    if (this.closed) throw new NegotiationFailedError('the spare path closed while offering');
    if (!local) throw new NegotiationFailedError('no local description after offering a spare path');
    this.#mlines = pc.getTransceivers().map((t, i) => ({ mid: t.mid ?? String(i), kind: t.receiver.track.kind as 'audio' | 'video' }));
    return filterCandidates(local.sdp, this.#opts.iceAddresses);
  }

  /** The page's answer, relayed by the primary: ICE and DTLS start now. */
  async acceptAnswer(sdp: string): Promise<void> {
    if (this.#state !== 'offering') throw new NegotiationFailedError(`spare answer in state ${this.#state}`);
    try {
      await this.#pc.setRemoteDescription({ type: 'answer', sdp: withVideoStartBitrate(sdp, SPARE_VIDEO_START_KBPS) });
    } catch (err) {
      throw new NegotiationFailedError(`the spare answer was refused: ${(err as Error).message}`, err);
    }
    this.#remoteSdp = sdp;
    if (this.#state !== 'offering') return;
    this.#setState('answered');
    if (this.#pc.connectionState === 'connected') this.#setState('connected');
  }

  fail(detail: string): void {
    if (this.closed || this.#state === 'failed') return;
    this.#setState('failed', detail);
  }

  /** A promotion takes the connected peer connection: it becomes the participant's media session. Null unless connected. */
  handOff(): SpareHandoff | null {
    if (this.#state !== 'connected' || this.#remoteSdp === null) return null;
    this.#pc.onconnectionstatechange = null;
    this.#pc.onicegatheringstatechange = null;
    this.#setState('handed-off');
    const handoff: SpareHandoff = { pathId: this.pathId, pc: this.#pc, mlines: this.#mlines, remoteSdp: this.#remoteSdp };
    safeEmit(this, this.#opts.log, 'close');
    this.removeAllListeners();
    return handoff;
  }

  #gatheringComplete(): Promise<void> {
    const pc = this.#pc;
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, this.#opts.iceGatherTimeoutMs);
      pc.onicegatheringstatechange = () => {
        if (pc.iceGatheringState === 'complete') {
          clearTimeout(timer);
          resolve();
        }
      };
    });
  }

  #setState(to: StandbySparePathState, detail?: string): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    this.#opts.log.info('spare path state', { pathId: this.pathId, from, to, detail });
    safeEmit(this, this.#opts.log, 'state', to, from, detail);
  }

  /** Idempotent: closes the peer connection (not after a hand-off: it is the media session's then). */
  close(): void {
    if (this.closed) return;
    this.#pc.onconnectionstatechange = null;
    this.#pc.onicegatheringstatechange = null;
    this.#pc.close();
    this.#setState('closed');
    safeEmit(this, this.#opts.log, 'close');
    this.removeAllListeners();
  }
}

export interface SparePathManagerOptions {
  /** MCU_SPARE_PATHS (default on): off, the manager never offers. */
  enabled: boolean;
  iceAddresses: string[];
  iceGatherTimeoutMs: number;
  /** At most this many offers in flight at once (default 4), so a large checkpoint does not stall the standby. */
  maxConcurrentOffers?: number;
  /** An offer not answered within this fails and is retried (default 15000 ms). */
  answerTimeoutMs?: number;
  /** Delay before retry `attempt` (1-based) of a participant's spare path (default 1 s doubling up to 30 s). */
  retryDelay?: (attempt: number) => number;
}

export type SparePathManagerEvents = {
  /** A participant's spare path changed state. */
  path: [participantId: string, state: StandbySparePathState];
  close: [];
};

interface Slot {
  path: SparePath | null;
  attempts: number;
  /** Epoch ms before which no new path is offered (after a failure). */
  retryAt: number;
}

/**
 * The standby's warm spare paths: one per participant of the checkpoint that has negotiated
 * media, offered through the primary as soon as the checkpoint is synced, retried with a backoff
 * when one fails, closed when its participant leaves. At promotion `handOff()` gives each
 * connected path to its participant's media session.
 */
export class SparePathManager extends EventEmitter<SparePathManagerEvents> {
  readonly #opts: SparePathManagerOptions;
  readonly #log = createLogger('spare-paths');
  readonly #slots = new Map<string, Slot>();
  #client: ReplicationClient | null = null;
  #unfollow: (() => void) | null = null;
  #nextPathNumber = 1;
  #reconcileScheduled = false;
  #retryTimer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(opts: SparePathManagerOptions) {
    super();
    this.#opts = opts;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Follows this replication client (the standby replaces it after a reconnect): offers go to its primary. */
  follow(client: ReplicationClient): void {
    this.#unfollow?.();
    this.#client = client;
    if (!this.#opts.enabled) return;
    const schedule = (): void => this.#scheduleReconcile();
    const onBlob = (kind: string, data: unknown): void => this.#onBlob(kind, data);
    client.on('synced', schedule);
    client.on('checkpoint', schedule);
    client.on('blob', onBlob);
    this.#unfollow = () => {
      client.off('synced', schedule);
      client.off('checkpoint', schedule);
      client.off('blob', onBlob);
    };
    // A new connection to the primary: offers in flight on the old one lost their answers.
    for (const slot of this.#slots.values()) if (slot.path?.state === 'offering') slot.path.fail('replication connection replaced');
  }

  /** Per participant: its spare path's state. */
  status(): Array<{ participantId: string; pathId: string | null; state: StandbySparePathState | 'none' }> {
    return [...this.#slots].map(([participantId, slot]) => ({ participantId, pathId: slot.path?.pathId ?? null, state: slot.path?.state ?? 'none' }));
  }

  get connectedCount(): number {
    let n = 0;
    for (const slot of this.#slots.values()) if (slot.path?.state === 'connected') n++;
    return n;
  }

  /** The participant's connected spare path, taken out of this manager (promotion). Null when it has none connected. */
  handOff(participantId: string): SpareHandoff | null {
    const slot = this.#slots.get(participantId);
    const handoff = slot?.path?.handOff() ?? null;
    if (handoff && slot) slot.path = null;
    return handoff;
  }

  #scheduleReconcile(): void {
    if (this.#reconcileScheduled || this.#closed) return;
    this.#reconcileScheduled = true;
    setImmediate(() => {
      this.#reconcileScheduled = false;
      this.#reconcile();
    });
  }

  #reconcile(): void {
    const client = this.#client;
    if (this.#closed || !client || client.state !== 'synced') return;
    const state = client.store.state;
    const wanted = new Set<string>();
    for (const room of state.rooms()) {
      for (const record of state.participantsOf(room.name)) if (record.media && record.media.mlines.length > 0) wanted.add(record.id);
    }
    for (const [participantId, slot] of [...this.#slots]) {
      if (wanted.has(participantId)) continue;
      slot.path?.close();
      this.#slots.delete(participantId);
    }
    const now = Date.now();
    let inFlight = [...this.#slots.values()].filter((s) => s.path?.state === 'offering').length;
    let nextRetry = Infinity;
    for (const participantId of wanted) {
      let slot = this.#slots.get(participantId);
      if (!slot) this.#slots.set(participantId, (slot = { path: null, attempts: 0, retryAt: 0 }));
      if (slot.path && slot.path.state !== 'failed' && !slot.path.closed) continue;
      if (slot.path?.state === 'failed') {
        slot.path.close();
        slot.path = null;
      }
      if (slot.retryAt > now) {
        nextRetry = Math.min(nextRetry, slot.retryAt);
        continue;
      }
      if (inFlight >= (this.#opts.maxConcurrentOffers ?? 4)) continue;
      inFlight++;
      this.#offer(participantId, slot, client);
    }
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    if (nextRetry !== Infinity) {
      this.#retryTimer = setTimeout(() => this.#scheduleReconcile(), Math.max(1, nextRetry - now));
      this.#retryTimer.unref();
    }
  }

  #offer(participantId: string, slot: Slot, client: ReplicationClient): void {
    const pathId = `${client.standbyId}/${participantId.slice(0, 36)}/${this.#nextPathNumber++}`;
    const log = this.#log.child({ participant: participantId });
    const path = new SparePath({ pathId, participantId, iceAddresses: this.#opts.iceAddresses, iceGatherTimeoutMs: this.#opts.iceGatherTimeoutMs, log });
    slot.path = path;
    const report = (state: SparePathState, detail?: string): void => {
      const blob: SpareStateBlob = { participantId, pathId, state, ...(detail ? { detail: detail.slice(0, 1000) } : {}) };
      if (!this.#client?.sendBlob(BlobKind.SpareState, blob)) {
        log.debug('spare state not reported: no primary', { pathId, state });
      }
    };
    const answerTimer = setTimeout(() => path.fail(`no answer within ${this.#opts.answerTimeoutMs ?? 15000} ms`), this.#opts.answerTimeoutMs ?? 15000);
    answerTimer.unref();
    path.on('state', (to, _from, detail) => {
      if (to !== 'offering' && to !== 'answered') clearTimeout(answerTimer);
      safeEmit(this, this.#log, 'path', participantId, to);
      if (to === 'connected') slot.attempts = 0;
      if (to === 'failed') {
        slot.attempts++;
        slot.retryAt = Date.now() + (this.#opts.retryDelay ?? defaultRetryDelay)(slot.attempts);
        this.#scheduleReconcile();
      }
      if (to !== 'handed-off') report(to, detail);
    });
    path.on('close', () => clearTimeout(answerTimer));
    path
      .offer()
      .then((sdp) => {
        if (path.closed || path.state !== 'offering') return;
        const blob: SpareOfferBlob = { participantId, pathId, sdp };
        if (!this.#client?.sendBlob(BlobKind.SpareOffer, blob)) path.fail('no primary to relay the offer');
        else log.info('spare path offered', { pathId });
      })
      .catch((err: unknown) => path.fail(`offer failed: ${(err as Error).message}`));
  }

  #onBlob(kind: string, data: unknown): void {
    if (kind !== BlobKind.SpareAnswer && kind !== BlobKind.SpareFailed) return;
    try {
      if (kind === BlobKind.SpareAnswer) {
        const answer = parseBlob(kind, data);
        const path = this.#pathFor(answer.participantId, answer.pathId);
        if (!path) return;
        void path.acceptAnswer(answer.sdp).catch((err: unknown) => path.fail((err as Error).message));
      } else {
        const failed = parseBlob(kind, data);
        this.#pathFor(failed.participantId, failed.pathId)?.fail(`primary: ${failed.reason}`);
      }
    } catch (err) {
      this.#log.warn('spare blob from the primary refused', { kind, error: (err as Error).message });
    }
  }

  #pathFor(participantId: string, pathId: string): SparePath | null {
    const path = this.#slots.get(participantId)?.path;
    return path && path.pathId === pathId ? path : null;
  }

  /** Idempotent: closes every spare path still held (those handed off belong to their media sessions). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unfollow?.();
    this.#unfollow = null;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    for (const slot of this.#slots.values()) slot.path?.close();
    this.#slots.clear();
    safeEmit(this, this.#log, 'close');
    this.removeAllListeners();
  }
}

function defaultRetryDelay(attempt: number): number {
  return Math.min(30000, 1000 * 2 ** Math.max(0, attempt - 1));
}
