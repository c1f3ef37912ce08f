/**
 * A hot standby's promotion into the primary MCU, in the order the failover runs: the verdict,
 * the epoch won at the witness (when there is one), fencing the old primary, the session state rebuilt from the checkpoint, media on the warm
 * spare paths, the service address (VIP), the signaling connections rebuilt in place (takeover
 * mode), serving, the sessions re-attached, media restarts for the participants without a
 * spare path, and protection again (replication and heartbeats for the next standby).
 * Each step logs its FailoverStep (scripts/failover-timeline.ts reads them back).
 */
import type { McuConfig } from '../../mcu/src/core/config.ts';
import { createLogger } from '../../mcu/src/core/logger.ts';
import { LoopStallRecorder } from '../../mcu/src/core/loop-stalls.ts';
import type { ServiceTls } from '../../mcu/src/http/tls.ts';
import { Mcu, type McuOptions } from '../../mcu/src/mcu.ts';
import { SessionState } from '../../mcu/src/conference/session-state.ts';
import type { CheckpointStore } from '../../mcu/src/replication/checkpoint-store.ts';
import type { HeartbeatVerdict } from '../../mcu/src/detection/heartbeat-monitor.ts';
import type { SparePathManager } from '../../mcu/src/spare/spare-paths.ts';
import type { TakeoverEngine, TakeoverReport } from '../../mcu/src/takeover/standby.ts';
import { raiseVipAtPromotion, type ServiceAddress } from '../../mcu/src/takeover/fencing/vip.ts';
import type { HostSetup } from '../../mcu/src/takeover/fencing/host-setup.ts';
import { FailoverStep, logStep } from '../../mcu/src/wire/failover-steps.ts';
import { nodeIdentity, type EpochCas, type Witness } from '../../mcu/src/witness/witness.ts';

/** Why the standby judged the primary dead. */
export type DeathReason = HeartbeatVerdict['reason'];

export interface PromotionTimeline {
  /** Epoch-ms timestamps of each failover step on this host. */
  lastHeartbeatAt: number | null;
  detectedAt: number;
  reason: DeathReason;
  promotionStartedAt: number;
  restoredAt: number;
  servingAt: number;
  previousEpoch: number;
  epoch: number;
  participantsRestored: number;
  /** Participants whose connected warm spare path became their media session (mixed onto at once). */
  participantsOnSpares: number;
  roomsRestored: number;
  /** Connection-level takeover (takeover mode only): connections rebuilt and re-attached, and the others. */
  takeover?: TakeoverReport;
}

export interface PromotionOptions {
  /** The configuration the promoted MCU serves with (the primary's service address and port). */
  config: McuConfig;
  /** How long to keep trying to bind the ports the dead primary's kernel is releasing (ms). */
  bindRetryMs: number;
  /** The checkpoint of the dead primary's session state. */
  store: CheckpointStore;
  /** Warm spare paths: each connected one becomes its participant's media session. */
  spares: SparePathManager;
  /** Connection-level takeover (config.takeover); null in reconnect mode. */
  takeover: TakeoverEngine | null;
  /** Reconnect mode: the service address (VIP) on this host, raised before the bind (takeover mode: the engine raises it); null: none. */
  vip: ServiceAddress | null;
  /** The host's network setup the standby installed at its start; the promoted MCU keeps it (and does not remove it on close). */
  hostSetup: HostSetup;
  /** The service's certificate and key the standby loaded (and reloads on SIGHUP); the promoted MCU serves them. Null: plain HTTP. */
  tls: ServiceTls | null;
  /**
   * Fencing, our half: tells the old primary a standby of `epoch` takes over (one that was only
   * frozen or cut off reads it and fences itself), then stops following it.
   */
  supersede: (epoch: number) => void;
  /** The witness (MCU_WITNESS_ENDPOINTS): the promotion goes on only once it won the next epoch there; null: two-node mode. */
  witness: Witness | null;
  /** Witness unreachable: how long to wait before asking again (MCU_WITNESS_RETRY_MS). */
  witnessRetryMs: number;
  /**
   * The nonce of this standby's compare-and-sets from the epoch it follows: the same for every
   * promotion attempt from that epoch, so a write that timed out and was applied later (a witness
   * that was hung) is recognised as this standby's own win by the next attempt.
   */
  witnessNonce: string;
  /** This standby's id on the replication link: the witness must name it as the sync standby. */
  standbyId: string;
  /**
   * Witness unreachable: the standby waits `ms` while it watches the primary's heartbeats again
   * (a fresh heartbeat thread): `retry` when they stayed silent, `primary-alive` when the primary
   * beats again (it was not dead: we were cut off), `stopped` when the standby stops.
   */
  waitForWitness: (ms: number) => Promise<'retry' | 'primary-alive' | 'stopped'>;
}

export interface Promoted {
  kind: 'promoted';
  timeline: PromotionTimeline;
  mcu: Mcu;
}

/** No promotion: the witness holds another epoch, or the primary beats again, or the standby stopped, before the epoch was won. */
export interface NotPromoted {
  kind: 'not-promoted';
  why: 'witness-lost' | 'not-sync' | 'primary-alive' | 'stopped';
  detail: string;
}

/** The promotion failed after the epoch was won (logged): the standby is of no further use. */
export interface PromotionFailed {
  kind: 'failed';
  error: string;
}

export type PromotionOutcome = Promoted | NotPromoted | PromotionFailed;

/**
 * Takeover mode with spare paths: how long the mix runs on the spares before the connection
 * takeover starts. Two audio frames (20 ms) make the first Opus packet; the connection takeover
 * then blocks the event loop (the mixer's clock) for tens of ms.
 */
const SPARE_HEAD_START_MS = 25;

/** One promotion of a standby whose primary died (run once). */
export class Promotion {
  readonly #opts: PromotionOptions;
  readonly #log = createLogger('standby');
  #mcu: Mcu | null = null;
  #timeline: PromotionTimeline | null = null;

  constructor(options: PromotionOptions) {
    this.#opts = options;
  }

  /** The MCU being promoted, from the moment it is built. */
  get mcu(): Mcu | null {
    return this.#mcu;
  }

  /** Set once the promotion completed. */
  get timeline(): PromotionTimeline | null {
    return this.#timeline;
  }

  /** The failover, top to bottom. */
  async run(death: HeartbeatVerdict): Promise<PromotionOutcome> {
    const { store, takeover, spares } = this.#opts;
    const log = this.#log;
    const promotionStartedAt = Date.now();
    const loopStalls = new LoopStallRecorder().start();

    // Verdict.
    logStep(log, FailoverStep.ConfirmedDead, 'failover step: primary confirmed dead', {
      reason: death.reason,
      detectedAt: new Date(death.detectedAt).toISOString(),
      lastHeartbeatAt: death.lastHeartbeatAt === null ? null : new Date(death.lastHeartbeatAt).toISOString(),
      sinceLastHeartbeatMs: death.lastHeartbeatAt === null ? null : Math.round(death.detectedAt - death.lastHeartbeatAt),
    });

    // Witness: the next epoch is ours only if we win it there (compare-and-set from the epoch we
    // followed); lost, or the primary beats again while the witness does not answer: no promotion.
    const previousEpoch = store.epoch;
    const won = await this.#winEpoch(previousEpoch, death);
    if (won.kind !== 'won') {
      loopStalls.stop(death.detectedAt);
      return won;
    }

    // Fence: the old primary is superseded by a higher epoch.
    const epoch = previousEpoch + 1;
    this.#opts.supersede(epoch);

    // Session state from the checkpoint: the MCU and its rooms; participants with a connected
    // spare path adopt it. Reconnect mode prepares the restart offers of the others at once;
    // takeover mode once the VIP is up (see Conference.prepareRestarts).
    const t0 = performance.now();
    const state = SessionState.fromSnapshot(store.snapshot());
    const t1 = performance.now();
    const mcu = new Mcu({
      config: this.#opts.config,
      epoch,
      state,
      bindRetryMs: this.#opts.bindRetryMs,
      hostSetup: this.#opts.hostSetup,
      tls: this.#opts.tls,
      ...(won.claim ? { witnessClaim: won.claim } : {}),
    });
    this.#mcu = mcu;
    const t2 = performance.now();
    const restored = mcu.restoreFromCheckpoint((participantId) => spares.handOff(participantId));
    if (!takeover) mcu.prepareMediaRestarts();
    spares.close();

    // Media on the spare paths. Reconnect mode: once the service port is ours (on one host that
    // proves the old primary dead, so a standby that judged wrongly never sends on them).
    // Takeover mode: at once, as the old primary was told it is superseded; a page leaves its
    // primary path only once that fell silent (or when told), so media on a spare path of a
    // wrongly suspected primary's page is never played.
    const spareStarts = takeover ? this.#startSpareMedia(mcu, death) : [];
    const restoredAt = Date.now();
    logStep(log, FailoverStep.Restored, 'failover step: session restored from checkpoint', {
      epoch,
      rooms: state.rooms().length,
      participants: restored.participants,
      onSpares: restored.onSpares,
      // Where promotion time goes before the port is tried (ms): checkpoint copy, MCU objects, rooms.
      tookMs: { state: round1(t1 - t0), mcu: round1(t2 - t1), rooms: round1(performance.now() - t2) },
    });
    mcu.on('media-restarted', (participant, tookMs) =>
      logStep(log, FailoverStep.MediaRestarted, 'failover step: media restarted', { participant, sincePreparedMs: tookMs }),
    );
    mcu.once('participant-resumed', () =>
      logStep(log, FailoverStep.FirstClient, 'failover step: first client resumed', { sinceDetectedMs: Math.round(Date.now() - death.detectedAt) }),
    );

    try {
      mcu.noteFailover({
        previousEpoch,
        lastHeartbeatAt: death.lastHeartbeatAt,
        detectedAt: death.detectedAt,
        reason: death.reason,
        participantsRestored: restored.participants,
      });
      if (takeover) {
        // Media first: the mix on the spare paths gets its first frames out (the pages switch on
        // them) before the connection takeover keeps this thread busy for tens of ms.
        if (spareStarts.length > 0) {
          await Promise.all(spareStarts);
          await new Promise((resolve) => setTimeout(resolve, SPARE_HEAD_START_MS));
        }
        // VIP, then every signaling connection rebuilt in place (TCP_REPAIR) before the MCU
        // listens beside them, each handed to it to be protected again.
        await takeover.prepare((record, socket) => mcu.adoptConnection(record, socket));
        // Media restart for the participants without a spare path: their offers gather on the VIP.
        mcu.prepareMediaRestarts();
        // Serve; re-attach the sessions the moment it serves (its signaling refuses requests
        // before) while replication and heartbeats for the next standby still start.
        await Promise.all([mcu.start(), mcu.serving.then(() => mcu.reattachSessions(takeover))]);
      } else {
        // VIP (MCU_VIP_INTERFACE, a service address of its own): ours now, before the bind.
        await raiseVipAtPromotion(this.#opts.vip, log);
        // Serve; media onto the spare paths the moment it serves, while replication and
        // heartbeats for the next standby still start. The clients reconnect and resume.
        await Promise.all([mcu.start(), mcu.serving.then(() => this.#startSpareMedia(mcu, death))]);
      }
    } catch (err) {
      loopStalls.stop(death.detectedAt);
      log.error('promotion failed', { error: (err as Error).message });
      return { kind: 'failed', error: (err as Error).message };
    }

    // Protected again: replication and heartbeats ready for the next standby.
    const servingAt = Date.now();
    const timeline: PromotionTimeline = {
      lastHeartbeatAt: death.lastHeartbeatAt,
      detectedAt: death.detectedAt,
      reason: death.reason,
      promotionStartedAt,
      restoredAt,
      servingAt,
      previousEpoch,
      epoch,
      participantsRestored: restored.participants,
      participantsOnSpares: restored.onSpares,
      roomsRestored: state.rooms().length,
      ...(takeover?.report ? { takeover: takeover.report } : {}),
    };
    this.#timeline = timeline;
    logStep(log, FailoverStep.PromotionComplete, 'failover step: promotion complete (replication and heartbeats ready for the next standby)', {
      epoch,
      port: mcu.port,
      promotionMs: servingAt - promotionStartedAt,
      sinceDetectedMs: Math.round(servingAt - death.detectedAt),
      // Event-loop blocks during the promotion, no mixing then: [start after detection, length, ran, waited for a CPU] ms.
      loopStalls: loopStalls.stop(death.detectedAt),
    });
    return { kind: 'promoted', timeline, mcu };
  }

  /**
   * The compare-and-set of the epoch at the witness, `expected` -> `expected + 1`, the record
   * naming this standby. Unreachable: asked again every witnessRetryMs while the primary stays
   * silent (one nonce for every attempt from this epoch, so an attempt applied whose answer was lost
   * counts as won, now or at a later promotion).
   */
  async #winEpoch(expected: number, death: HeartbeatVerdict): Promise<{ kind: 'won'; claim: McuOptions['witnessClaim'] } | NotPromoted> {
    const { witness, witnessRetryMs } = this.#opts;
    const log = this.#log;
    if (!witness) return { kind: 'won', claim: undefined };
    const identity = nodeIdentity('standby');
    const nonce = this.#opts.witnessNonce;
    for (let attempt = 1; ; attempt++) {
      const started = performance.now();
      let cas: EpochCas;
      try {
        cas = await witness.compareAndSetEpoch(expected, identity, nonce, this.#opts.standbyId);
      } catch (err) {
        // Every attempt at first, then one line in ten: the timeline shows the wait without drowning.
        if (attempt <= 3 || attempt % 10 === 0) {
          logStep(log, FailoverStep.WitnessUnreachable, `failover step: the witness did not answer: no promotion yet, asking again in ${witnessRetryMs} ms while the primary stays silent`, {
            attempt,
            expectedEpoch: expected,
            tookMs: round1(performance.now() - started),
            error: (err as Error).message,
            sinceDetectedMs: Math.round(Date.now() - death.detectedAt),
          }, 'warn');
        }
        const next = await this.#opts.waitForWitness(witnessRetryMs);
        if (next === 'retry') continue;
        const detail = next === 'primary-alive' ? 'the primary beats again: it was not dead (this standby was cut off from it and from the witness)' : 'the standby stops';
        logStep(log, FailoverStep.PromotionAbandoned, `failover step: no promotion: ${detail}`, { attempts: attempt, sinceDetectedMs: Math.round(Date.now() - death.detectedAt) }, 'warn');
        return { kind: 'not-promoted', why: next, detail };
      }
      if (cas.outcome === 'won') {
        logStep(log, FailoverStep.WitnessWon, `failover step: epoch ${cas.epoch} won at the witness`, {
          epoch: cas.epoch,
          tookMs: round1(cas.tookMs),
          attempt,
          endpoint: cas.endpoint,
          sinceDetectedMs: Math.round(Date.now() - death.detectedAt),
        });
        return { kind: 'won', claim: { record: cas.record, confirmedAt: started } };
      }
      if (cas.outcome === 'not-sync') {
        const named = cas.syncStandby?.epoch === expected && cas.syncStandby.standbyId ? `names ${cas.syncStandby.standbyId}` : 'names no standby';
        const detail = `the witness still holds epoch ${expected} but ${named} as the sync standby, not ${this.#opts.standbyId}: the primary went on without this standby, whose copy is stale`;
        logStep(log, FailoverStep.WitnessNotSync, `failover step: ${detail}: no promotion, following again`, { expectedEpoch: expected, syncStandby: cas.syncStandby?.standbyId ?? null, tookMs: round1(cas.tookMs), attempt }, 'error');
        return { kind: 'not-promoted', why: 'not-sync', detail };
      }
      const holder = cas.holder ? ` (${cas.holder.node} since ${cas.holder.since})` : '';
      const detail = cas.epoch === null
        ? `the witness holds no epoch: the primary never claimed one there (is MCU_WITNESS_ENDPOINTS set on the primary too, with the same MCU_WITNESS_CLUSTER?)`
        : `the witness holds epoch ${cas.epoch}${holder}, not ${expected}, the one this standby followed: another node won it`;
      logStep(log, FailoverStep.WitnessLost, `failover step: ${detail}: no promotion`, { expectedEpoch: expected, witnessEpoch: cas.epoch, tookMs: round1(cas.tookMs), attempt }, 'error');
      return { kind: 'not-promoted', why: 'witness-lost', detail };
    }
  }

  /** Starts the mix on every adopted spare path; resolves each start, failed ones too. */
  #startSpareMedia(mcu: Mcu, death: HeartbeatVerdict): Array<Promise<void>> {
    return mcu.startSpareMedia().map(({ participantId, pathId, started }) => {
      const settled = started.catch(() => undefined);
      void started.then(
        () =>
          logStep(this.#log, FailoverStep.MixingOnSpare, 'failover step: mixing onto the spare path', {
            participant: participantId,
            pathId,
            sinceDetectedMs: Math.round(Date.now() - death.detectedAt),
          }),
        () => undefined,
      );
      return settled;
    });
  }
}

function round1(ms: number): number {
  return Math.round(ms * 10) / 10;
}
