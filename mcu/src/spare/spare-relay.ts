import { EventEmitter } from 'node:events';
import type { Conference } from '../conference/conference.ts';
import { McuError } from '../core/errors.ts';
import { createLogger } from '../core/logger.ts';
import type { ReplicationServer, StandbyInfo } from '../replication/replication-server.ts';
import { safeEmit } from '../core/events.ts';
import type { SignalingIo } from '../signaling/signaling-server.ts';
import { validate } from '../signaling/validation.ts';
import { BlobKind, parseBlob, type SpareAnswerBlob, type SpareFailedBlob, type SparePathState, type SpareOfferBlob } from '../wire/index.ts';

/** One participant's warm spare path, as the primary knows it. */
export interface SpareStatus {
  participantId: string;
  room: string;
  pathId: string;
  standbyId: string;
  state: SparePathState;
  /** Epoch ms of the last change. */
  since: number;
}

export type SpareRelayEvents = {
  /** A spare path's state changed (from the standby's reports or the relay's own failures). */
  state: [SpareStatus];
  close: [];
};

export interface SpareRelayOptions {
  io: SignalingIo;
  conference: Conference;
  /** Spare paths on (MCU_SPARE_PATHS, default on): off, every offer is refused. */
  enabled: boolean;
  /** How long the page may take to answer a spare offer (default 10000 ms). */
  answerTimeoutMs?: number;
  /** Connection-level takeover is on: the pages' signaling connections survive a failover (told in each offer). */
  signalingSurvives?: boolean;
}

/**
 * The primary's side of the warm spare paths: relays each standby offer to the participant's
 * page over socket.io and the page's answer back over the replication channel, and keeps the
 * spare state per participant for /status. The spare media itself never touches this process.
 */
export class SpareRelay extends EventEmitter<SpareRelayEvents> {
  readonly #opts: SpareRelayOptions;
  readonly #log = createLogger('spare-relay');
  readonly #paths = new Map<string, SpareStatus>();
  #replication: ReplicationServer | null = null;
  #closed = false;
  readonly #onBlob = (kind: string, data: unknown, standby: StandbyInfo): void => this.#onStandbyBlob(kind, data, standby);
  readonly #onLost = (info: StandbyInfo): void => this.#onStandbyLost(info);
  readonly #onLeft = (participantId: string): void => void this.#paths.delete(participantId);

  constructor(opts: SpareRelayOptions) {
    super();
    this.#opts = opts;
    opts.conference.on('participant-left', this.#onLeft);
  }

  get closed(): boolean {
    return this.#closed;
  }

  get enabled(): boolean {
    return this.#opts.enabled;
  }

  /** Starts relaying for the standbys of this replication server. */
  setReplication(replication: ReplicationServer): void {
    this.#replication?.off('standby-blob', this.#onBlob);
    this.#replication?.off('standby-lost', this.#onLost);
    this.#replication = replication;
    replication.on('standby-blob', this.#onBlob);
    replication.on('standby-lost', this.#onLost);
  }

  /** The spare path of every participant that has one (any state but closed). */
  status(): SpareStatus[] {
    return [...this.#paths.values()].map((s) => ({ ...s }));
  }

  spareOf(participantId: string): SpareStatus | null {
    const s = this.#paths.get(participantId);
    return s ? { ...s } : null;
  }

  #onStandbyBlob(kind: string, data: unknown, standby: StandbyInfo): void {
    if (this.#closed) return;
    try {
      if (kind === BlobKind.SpareOffer) void this.#relayOffer(parseBlob(kind, data), standby);
      else if (kind === BlobKind.SpareState) {
        const report = parseBlob(kind, data);
        const current = this.#paths.get(report.participantId);
        if (current && current.pathId === report.pathId) this.#set(current, report.state, report.detail);
      } else this.#log.warn('unknown blob from the standby, ignored', { kind: kind.slice(0, 40) });
    } catch (err) {
      this.#log.warn('spare relay blob refused', { kind, error: (err as Error).message });
    }
  }

  async #relayOffer(offer: SpareOfferBlob, standby: StandbyInfo): Promise<void> {
    const { participantId, pathId } = offer;
    const participant = this.#opts.conference.participant(participantId);
    const fail = (reason: string): void => {
      this.#log.info('spare offer not relayed', { participant: participantId, pathId, reason });
      const status = this.#paths.get(participantId);
      if (status?.pathId === pathId) this.#set(status, 'failed', reason);
      const failed: SpareFailedBlob = { participantId, pathId, reason };
      this.#replication?.sendBlob(BlobKind.SpareFailed, failed);
    };
    if (!this.#opts.enabled) return fail('spare paths are off on the primary (MCU_SPARE_PATHS=0)');
    if (!participant) return fail('unknown participant');
    const status: SpareStatus = { participantId, room: participant.room, pathId, standbyId: standby.standbyId, state: 'offering', since: Date.now() };
    this.#paths.set(participantId, status);
    safeEmit(this, this.#log, 'state', { ...status });
    const socket = participant.socketId ? this.#opts.io.sockets.sockets.get(participant.socketId) : undefined;
    if (!socket || participant.signaling !== 'connected') return fail('the participant is not connected');
    let reply;
    try {
      const raw: unknown = await socket.timeout(this.#opts.answerTimeoutMs ?? 10000).emitWithAck('spare-offer', {
        pathId,
        sdp: offer.sdp,
        ...(this.#opts.signalingSurvives ? { signalingSurvives: true } : {}),
      });
      reply = validate.spareAnswerReply(raw);
    } catch (err) {
      return fail(err instanceof McuError ? err.message : `no answer from the page: ${(err as Error).message}`);
    }
    if (this.#closed) return;
    if (!reply.ok) return fail(`the page refused: ${reply.error.code} ${reply.error.message}`);
    if (reply.pathId !== pathId) return fail(`the page answered path ${reply.pathId}, not ${pathId}`);
    if (this.#paths.get(participantId) !== status) return;
    this.#set(status, 'answered');
    const answer: SpareAnswerBlob = { participantId, pathId, sdp: reply.sdp };
    if (this.#replication?.sendBlob(BlobKind.SpareAnswer, answer) === null) {
      this.#set(status, 'failed', 'the standby is gone');
    }
  }

  #onStandbyLost(info: StandbyInfo): void {
    for (const status of [...this.#paths.values()]) {
      if (status.standbyId !== info.standbyId) continue;
      this.#paths.delete(status.participantId);
      const participant = this.#opts.conference.participant(status.participantId);
      const socket = participant?.socketId ? this.#opts.io.sockets.sockets.get(participant.socketId) : undefined;
      socket?.emit('spare-close', { pathId: status.pathId, reason: `standby ${info.standbyId} is gone` });
    }
  }

  #set(status: SpareStatus, state: SparePathState, detail?: string): void {
    if (status.state === state) return;
    this.#log.info('spare path state', { participant: status.participantId, pathId: status.pathId, from: status.state, to: state, detail });
    status.state = state;
    status.since = Date.now();
    if (state === 'closed') this.#paths.delete(status.participantId);
    safeEmit(this, this.#log, 'state', { ...status });
  }

  /** Idempotent: stops relaying. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#replication?.off('standby-blob', this.#onBlob);
    this.#replication?.off('standby-lost', this.#onLost);
    this.#opts.conference.off('participant-left', this.#onLeft);
    this.#paths.clear();
    safeEmit(this, this.#log, 'close');
    this.removeAllListeners();
  }
}
