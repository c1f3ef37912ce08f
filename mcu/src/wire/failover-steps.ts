/**
 * The failover steps: the `failover` field of the log lines the MCU and the standby write at
 * each step of a failover (and of fencing a wrongly suspected primary), which
 * scripts/failover-timeline.ts reads back from the logs of several processes.
 */
import type { Logger } from '../core/logger.ts';

export const FailoverStep = {
  // The standby judges the primary dead and promotes itself (standby/src/promotion.ts).
  Suspected: 'suspected',
  ConfirmedDead: 'confirmed-dead',
  WitnessWon: 'witness-won',
  WitnessLost: 'witness-lost',
  WitnessUnreachable: 'witness-unreachable',
  WitnessNotSync: 'witness-not-sync',
  PromotionAbandoned: 'promotion-abandoned',
  SupersededSent: 'superseded-sent',
  Restored: 'restored',
  MixingOnSpare: 'mixing-on-spare',
  VipRaised: 'vip-raised',
  ConnectionsRebuilt: 'connections-rebuilt',
  HoleFilled: 'hole-filled',
  Serving: 'serving',
  SessionsReattached: 'sessions-reattached',
  Reattached: 'reattached',
  FirstClient: 'first-client',
  SpareActivateSent: 'spare-activate-sent',
  SpareSwitched: 'spare-switched',
  SpareRefused: 'spare-refused',
  RestartOfferSent: 'restart-offer-sent',
  MediaRestarted: 'media-restarted',
  PromotionComplete: 'promotion-complete',
  // A primary that may have been taken over fences itself (mcu/src/takeover/fencing; the witness: mcu/src/witness).
  SupersededReceived: 'superseded-received',
  WitnessSuperseded: 'witness-superseded',
  WitnessLeaseExpired: 'witness-lease-expired',
  WitnessSyncCleared: 'witness-sync-cleared',
  FenceStall: 'fence-stall',
  FenceVerified: 'fence-verified',
  FenceDeciding: 'fence-deciding',
  FenceProbe: 'fence-probe',
  FenceDecided: 'fence-decided',
  FenceReleased: 'fence-released',
  Fenced: 'fenced',
  FenceVipDropped: 'fence-vip-dropped',
  FenceVipFailed: 'fence-vip-failed',
  FenceLanDown: 'fence-lan-down',
  FenceLanUp: 'fence-lan-up',
} as const;

export type FailoverStep = (typeof FailoverStep)[keyof typeof FailoverStep];

/** What each step means, who logs it, in the usual order of a failover. */
export const FAILOVER_STEP_DESCRIPTIONS: { readonly [S in FailoverStep]: string } = {
  suspected: 'standby: the replication stream ended, asking the heartbeat thread',
  'confirmed-dead': 'standby: the heartbeat thread confirmed the death',
  'witness-won': 'standby: won the epoch at the witness (compare-and-set from the epoch it followed, tookMs): it promotes',
  'witness-lost': 'standby: the witness holds another epoch (another node won it): no promotion',
  'witness-unreachable': 'standby: the witness did not answer: no promotion; it retries while the primary stays silent',
  'witness-not-sync': 'standby: the witness names another sync standby (or none): the primary went on without this one, whose copy is stale: no promotion, it follows again',
  'promotion-abandoned': 'standby: no promotion after all (the primary beats again, or the standby stops): back to following',
  'superseded-sent': 'standby: told the old primary it is superseded before promoting',
  restored: 'standby: rooms and participants rebuilt; connected spare paths adopted (onSpares)',
  'mixing-on-spare': "standby: the mix runs on a participant's warm spare path",
  'vip-raised': 'standby: service address raised',
  'connections-rebuilt': 'standby (takeover): signaling connections rebuilt',
  'hole-filled': "new primary (takeover): client bytes the old primary's kernel acknowledged, queued on the rebuilt socket from the capture",
  serving: 'new primary: service port bound, serving',
  'sessions-reattached': 'new primary (takeover): socket.io sessions re-attached',
  reattached: 'new primary (takeover): a participant re-attached',
  'first-client': 'new primary: the first client resumed',
  'spare-activate-sent': 'new primary: told a resumed page to switch to its spare path',
  'spare-switched': 'new primary: the page confirmed it is on the spare path (trigger: silence or server)',
  'spare-refused': 'new primary: the page had no such spare path; restart offer instead',
  'restart-offer-sent': 'new primary: server-initiated restart offer sent (no spare path)',
  'media-restarted': 'new primary: the page answered the restart offer',
  'promotion-complete': 'new primary: replication and heartbeats ready for the next standby',
  'superseded-received': 'old primary: a standby says it is promoting (with a VIP, a witness or in takeover mode it fences itself)',
  'witness-superseded': 'old primary: the witness holds a higher epoch (a standby won it): it fences itself',
  'witness-lease-expired': 'primary: the witness did not confirm its epoch within the lease TTL: it fences itself',
  'witness-sync-cleared': 'primary: recorded "no sync standby" at the witness after losing its standby (takeover: before releasing held output)',
  'fence-stall': 'primary (takeover): its heartbeats paused; output held while it verifies',
  'fence-verified': 'primary (takeover): the standby acknowledged the check after the pause; output released',
  'fence-deciding': 'primary (takeover): standby lost; output held until it is known whether it took over',
  'fence-probe': "primary (takeover): probed the lost standby's replication port",
  'fence-decided': 'primary (takeover): the lost standby judged to have taken over; it fences itself',
  'fence-released': 'primary (takeover): the pause or the standby loss judged harmless; output released',
  fenced: 'old primary: fenced, stops serving (every mode)',
  'fence-vip-dropped': 'old primary: VIP dropped',
  'fence-vip-failed': 'old primary: could not drop the VIP',
  'fence-lan-down': 'primary (takeover): its LAN interface lost its carrier',
  'fence-lan-up': 'primary (takeover): its LAN interface is back',
};

export function isFailoverStep(name: string): name is FailoverStep {
  return Object.hasOwn(FAILOVER_STEP_DESCRIPTIONS, name);
}

/** Logs one failover step, its typed name in the `failover` field. */
export function logStep(
  log: Logger,
  step: FailoverStep,
  message: string,
  fields: Record<string, unknown> = {},
  level: 'info' | 'warn' | 'error' = 'info',
): void {
  log.log(level, message, { failover: step, ...fields });
}
