/**
 * Fencing of a wrongly suspected primary (design notes sections 4 and 9; issue 4, item 5).
 *
 * In takeover mode the standby takes over a primary it believes dead: same VIP, same virtual
 * MAC, the same TCP connections rebuilt. A primary that was only frozen (SIGSTOP, starvation)
 * or cut off (its link down) and then comes back must never write another byte to those
 * connections: its segments would reach the client beside the new primary's and corrupt the
 * stream. Output commit already keeps every byte the standby has not acknowledged away from the
 * kernel; this guard decides what happens to that output when the standby stops acknowledging:
 *
 * - `superseded` on the replication stream (the promoting standby sends it just before it stops
 *   following; after SIGCONT it is in the socket buffer): fence at once.
 * - the standby is lost without a deliberate shutdown: the committer holds everything behind its
 *   gate and the guard decides within `decisionMs`, by probing the standby's replication
 *   address (a promoted standby serves its own replication port, with a higher epoch):
 *     a server answers with a higher epoch, or listens but does not answer -> fence;
 *     the connection is refused or reset (its host is up, the process is gone) -> release;
 *     no answer at all, and our LAN interface has no carrier or our VIP interface was taken
 *     down -> fence (we were cut off long enough to be taken over);
 *     no answer, our side is fine -> release (the standby's host died).
 * - the main thread was not scheduled for longer than the standby's missed-heartbeat window
 *   (SIGSTOP and SIGCONT, a starved host): before anything else reaches the kernel the gate is
 *   held and a sequenced frame must be acknowledged by a standby that still follows us; an
 *   acknowledgement opens the gate, a lost standby goes through the decision above.
 *
 * Fencing itself: the committer's gate is fenced (held output dropped, nothing more written,
 * no FIN, input no longer read), the VIP interface on this host is taken down, and 'fenced' is
 * emitted; the Mcu stops its heartbeats, takes the `fenced` role and the process exits with
 * FENCED_EXIT_CODE (a supervisor must not start it again as a primary). Every step is logged
 * with a `failover` field (scripts/failover-timeline.ts).
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { createLogger, type Logger } from '../../core/logger.ts';
import type { Secret } from '../../wire/frame-codec.ts';
import { BlobKind, type FenceCheckBlob } from '../../wire/index.ts';
import { parsePrimaryMessage, type PrimaryMessage, type StandbyMessage } from '../../wire/messages.ts';
import { ReplicationLink } from '../../replication/replication-link.ts';
import { safeEmit } from '../../core/events.ts';
import type { BeaconPauses } from '../../detection/heartbeat-beacon.ts';
import type { ReplicationServer } from '../../replication/replication-server.ts';
import type { OutputCommitter, StandbyLoss, StandbyLossDecision } from '../transport/output-commit.ts';
import { FailoverStep } from '../../wire/failover-steps.ts';
import { ServiceFence, type FencedInfo } from './service-fence.ts';
import type { SyncClearOutcome } from '../../witness/sync-standby.ts';

export type { FencedInfo } from './service-fence.ts';

/** Exit code of a primary that fenced itself: another primary serves its clients; never restart it as a primary. */
export const FENCED_EXIT_CODE = 4;

/** How far back (before a standby loss) an outage of our LAN interface counts as a reason to fence, ms. */
const OUTAGE_MEMORY_MS = 5000;
/** Our LAN interface's carrier is read every this many stall-watch ticks. */
const LAN_SAMPLE_TICKS = 4;

/**
 * serving: output flows (protected or not); verifying: held after a stall until the standby
 * acknowledges a fresh frame; deciding: held after a standby loss until the probe says who
 * serves; fenced: final, nothing of ours reaches a client again.
 */
export type FencingState = 'serving' | 'verifying' | 'deciding' | 'fenced';

/** What the probe of the lost standby's replication address found. */
export type ProbeOutcome =
  | { kind: 'newer-primary'; epoch: number }
  | { kind: 'not-newer'; epoch: number }
  | { kind: 'silent-listener'; detail: string }
  | { kind: 'refused'; code: string }
  | { kind: 'no-answer'; code: string };

export interface InterfaceState {
  name: string;
  exists: boolean;
  operstate: string;
  /** null when the kernel does not say (an interface that is administratively down). */
  carrier: boolean | null;
  up: boolean;
}

export interface FenceDecision {
  /** Epoch ms of the trigger and of the decision. */
  startedAt: number;
  decidedAt: number;
  trigger: string;
  outcome: 'released' | 'fenced';
  reason: string;
  probe: ProbeOutcome | null;
  lan: InterfaceState | null;
  vip: InterfaceState | null;
}

export interface FencingStatus {
  state: FencingState;
  /** Pauses long enough for the standby to judge us dead (heartbeat thread silent), each verified. */
  stalls: number;
  /** Main-thread pauses while the heartbeat thread kept beating: no verification needed. */
  mainOnlyStalls: number;
  verifications: number;
  lastStallMs: number | null;
  lastDecision: FenceDecision | null;
  /** The latest outage of our LAN interface (epoch ms), once it ended. */
  lastLanOutage: { from: number; to: number } | null;
  fenced: FencedInfo | null;
}

export type FencingGuardEvents = {
  state: [to: FencingState, from: FencingState];
  decision: [decision: FenceDecision];
  /** Fenced, and the VIP dropped (or not: see vipDroppedAt). Emitted once. */
  fenced: [info: FencedInfo];
};

export interface FencingGuardOptions {
  committer: OutputCommitter;
  replication: ReplicationServer;
  secret: Secret;
  /** Our epoch now. */
  epoch: () => number;
  /** Port a promoted standby serves replication on, at its own address (the lab: the same as ours). */
  probePort: number;
  /** Our LAN address (the replication listen host): its interface is the one whose carrier is checked. */
  localAddress: string;
  /** The LAN interface, when it is not the one holding localAddress (MCU_LAN_INTERFACE). */
  lanInterface?: string | null;
  /** The interface carrying the VIP on this host (MCU_VIP_INTERFACE): taken down when fencing; null: none. */
  vipInterface: string | null;
  /** What fencing does beyond the output (logs, VIP down): the Mcu's own, shared with its other triggers; default: one of its own on vipInterface. */
  serviceFence?: ServiceFence;
  /** Longest wait for the probe's answer (default 200 ms). */
  decisionMs?: number;
  /** A main-thread pause longer than this may have let the standby take over (the standby's missed-heartbeat window). */
  stallMs: number;
  /** Period of the stall watch (default 5 ms). */
  tickMs?: number;
  /**
   * The heartbeat thread's own pauses (HeartbeatBeacon.pauses), null while there is none. Only
   * silence of that (real-time) thread can make the standby take over: a pause of the main
   * thread alone (garbage collection, load) is verified only when the heartbeat thread paused
   * too, or has not run since.
   */
  beaconPauses?: () => BeaconPauses | null;
  /**
   * With a witness: records there that the lost standby is no longer in sync (SyncStandbyRecord.lost).
   * A loss judged harmless releases the held output only once this resolves `cleared`, so the
   * release cannot race that standby's promotion; `superseded`: it won first, fence.
   */
  clearSyncStandby?: (standbyId: string) => Promise<SyncClearOutcome>;
}

/**
 * One per primary in takeover mode, created once its replication server listens. Installs the
 * committer's loss policy; close() stops it (idempotent).
 */
export class FencingGuard extends EventEmitter<FencingGuardEvents> {
  readonly #opts: FencingGuardOptions;
  readonly #log: Logger = createLogger('fencing');
  readonly #decisionMs: number;
  readonly #tickMs: number;
  readonly #lanInterface: string | null;
  readonly #unhook: () => void;
  #state: FencingState = 'serving';
  #stallTimer: NodeJS.Timeout | null = null;
  #lastTick = performance.now();
  #checkSeq: number | null = null;
  #verifyStartedAt = 0;
  #stalls = 0;
  #mainOnlyStalls = 0;
  #verifications = 0;
  #lastStallMs: number | null = null;
  #ticks = 0;
  /** Epoch ms when our LAN interface was first seen without carrier, null while it is up. */
  #lanDownAt: number | null = null;
  /** The latest outage of our LAN interface (epoch ms), ended. */
  #lastOutage: { from: number; to: number } | null = null;
  #lastDecision: FenceDecision | null = null;
  #fenced: FencedInfo | null = null;
  #closed = false;
  /** Logs the fencing and takes the VIP down (an `ip -batch` started in advance). */
  readonly #serviceFence: ServiceFence;
  /** This guard made #serviceFence (and closes it). */
  readonly #ownsServiceFence: boolean;

  constructor(options: FencingGuardOptions) {
    super();
    this.#opts = options;
    this.#decisionMs = options.decisionMs ?? 200;
    this.#tickMs = options.tickMs ?? 5;
    this.#lanInterface = options.lanInterface ?? interfaceOf(options.localAddress);
    const { committer, replication } = options;
    committer.setLossPolicy(
      (loss) => this.#onLoss(loss),
      () => this.#checkStall(),
    );
    const onSuperseded = (info: { standbyId: string; epoch: number }): void => {
      void this.fence(`superseded: standby ${info.standbyId} is promoting itself with epoch ${info.epoch}`);
    };
    const onAcked = (info: { seq: number }): void => this.#onAcked(info.seq);
    replication.on('superseded', onSuperseded);
    replication.on('acked', onAcked);
    this.#unhook = () => {
      replication.off('superseded', onSuperseded);
      replication.off('acked', onAcked);
    };
    this.#ownsServiceFence = options.serviceFence === undefined;
    this.#serviceFence = options.serviceFence ?? new ServiceFence({ vipInterface: options.vipInterface, epoch: options.epoch });
    this.#stallTimer = setInterval(() => this.#checkStall(), this.#tickMs);
    this.#stallTimer.unref();
    this.#log.info('fencing armed', {
      lanInterface: this.#lanInterface,
      vipInterface: options.vipInterface,
      probePort: options.probePort,
      stallMs: options.stallMs,
      decisionMs: this.#decisionMs,
    });
  }

  get state(): FencingState {
    return this.#state;
  }

  /** Resolved information once fenced, else null. */
  get fenced(): FencedInfo | null {
    return this.#fenced;
  }

  status(): FencingStatus {
    return {
      state: this.#state,
      stalls: this.#stalls,
      mainOnlyStalls: this.#mainOnlyStalls,
      verifications: this.#verifications,
      lastStallMs: this.#lastStallMs,
      lastDecision: this.#lastDecision,
      lastLanOutage: this.#lastOutage,
      fenced: this.#fenced,
    };
  }

  /**
   * Stops serving for good: nothing of ours reaches a client again, the VIP leaves this host.
   * Idempotent; resolves once the VIP is down (or dropping it failed, logged).
   */
  async fence(reason: string): Promise<FencedInfo> {
    if (this.#fenced) return this.#fenced;
    // First and synchronously: from here on no byte of ours goes to the kernel.
    this.#opts.committer.fence(reason);
    this.#setState('fenced', reason);
    this.#stopTimers();
    this.#fenced = { reason, fencedAt: Date.now(), vipDroppedAt: null, epoch: this.#opts.epoch() };
    const info = await this.#serviceFence.fence(reason);
    this.#fenced = info;
    safeEmit(this, this.#log, 'fenced', info);
    return info;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopTimers();
    this.#unhook();
    if (this.#ownsServiceFence) this.#serviceFence.close();
  }

  // ---- standby loss ----

  #onLoss(loss: StandbyLoss): StandbyLossDecision {
    if (this.#closed) return 'release';
    if (this.#state === 'fenced') return 'hold';
    if (loss.kind !== 'died') {
      // A standby that left on purpose (never one that promoted: that one said `superseded` first).
      if (loss.standbyId) void this.#opts.clearSyncStandby?.(loss.standbyId);
      if (this.#state === 'verifying') this.#endVerification(`standby left on purpose (${loss.detail})`, 'released');
      return 'release';
    }
    if (this.#state === 'deciding') return 'hold';
    void this.#decide(loss);
    return 'hold';
  }

  async #decide(loss: StandbyLoss): Promise<void> {
    const startedAt = Date.now();
    const trigger = `standby ${loss.standbyId} at ${loss.remote} lost without a goodbye: ${loss.detail}`;
    this.#setState('deciding', trigger);
    this.#log.warn(`failover step: standby lost, output held until it is known whether it took over`, {
      failover: FailoverStep.FenceDeciding,
      standby: loss.standbyId,
      remote: loss.remote,
      detail: loss.detail,
      at: iso(startedAt),
    });
    const host = hostOf(loss.remote);
    const probe = host
      ? await probeReplicationPeer({ host, port: this.#opts.probePort, secret: this.#opts.secret, epoch: this.#opts.epoch(), timeoutMs: this.#decisionMs })
      : ({ kind: 'no-answer', code: 'unknown standby address' } as const);
    if (this.#state !== 'deciding') return; // fenced meanwhile (superseded arrived), or closed
    this.#log.warn(`failover step: probe of the lost standby's replication port: ${describeProbe(probe)}`, {
      failover: FailoverStep.FenceProbe,
      probe: probe.kind,
      ms: Date.now() - startedAt,
    });
    const lan = this.#lanInterface ? readInterface(this.#lanInterface) : null;
    const vip = this.#opts.vipInterface ? readInterface(this.#opts.vipInterface) : null;
    let outcome: 'released' | 'fenced';
    let reason: string;
    switch (probe.kind) {
      case 'newer-primary':
        outcome = 'fenced';
        reason = `a primary of epoch ${probe.epoch} (> ${this.#opts.epoch()}) serves at ${host}`;
        break;
      case 'silent-listener':
        outcome = 'fenced';
        reason = `something serves replication at ${host} but gave no verifiable answer (${probe.detail}): assuming a promoted standby`;
        break;
      case 'not-newer':
        outcome = 'released';
        reason = `the replication server at ${host} is at epoch ${probe.epoch}, not above ours`;
        break;
      case 'refused':
        outcome = 'released';
        reason = `the standby's host is up and nothing serves its replication port (${probe.code}): the standby process is gone`;
        break;
      case 'no-answer': {
        // Cut off now, or lately: a standby can only have judged us dead while it did not hear us.
        const outage = this.#lastOutage;
        const recentOutage = outage !== null && outage.to - outage.from > this.#opts.stallMs && outage.to >= loss.at - OUTAGE_MEMORY_MS;
        if (recentOutage && outage) {
          outcome = 'fenced';
          reason = `no answer from ${host} (${probe.code}) and our LAN interface was down for ${outage.to - outage.from} ms until ${iso(outage.to)}: long enough to be taken over`;
        } else if (lan && !lan.up) {
          outcome = 'fenced';
          reason = `no answer from ${host} (${probe.code}) and our LAN interface ${lan.name} is ${lan.operstate}${lan.carrier === false ? ' without carrier' : ''}: we were cut off, long enough to be taken over`;
        } else if (vip && !vip.up) {
          outcome = 'fenced';
          reason = `no answer from ${host} (${probe.code}) and our VIP interface ${vip.name} was taken down`;
        } else {
          outcome = 'released';
          reason = `no answer from ${host} (${probe.code}) while our LAN interface is up: the standby's host is gone`;
        }
        break;
      }
    }
    const decision: FenceDecision = { startedAt, decidedAt: Date.now(), trigger, outcome, reason, probe, lan, vip };
    this.#lastDecision = decision;
    this.#log.warn(`failover step: standby loss judged: ${outcome}: ${reason}`, {
      failover: outcome === 'fenced' ? FailoverStep.FenceDecided : FailoverStep.FenceReleased,
      ms: decision.decidedAt - startedAt,
    });
    safeEmit(this, this.#log, 'decision', decision);
    if (outcome === 'fenced') {
      await this.fence(reason);
      return;
    }
    if (this.#opts.clearSyncStandby) {
      // The witness orders our release and the standby's promotion: whichever it records first wins.
      const cleared = await this.#opts.clearSyncStandby(loss.standbyId);
      if (this.#state !== 'deciding') return;
      if (cleared === 'superseded') {
        await this.fence(`the lost standby ${loss.standbyId} won the next epoch at the witness before we recorded it out of sync`);
        return;
      }
      if (cleared === 'closed') return;
    }
    this.#setState('serving', reason);
    this.#opts.committer.releaseHeld(`standby loss judged harmless: ${reason}`);
  }

  // ---- stalls ----

  /**
   * Runs on every tick and before every release. A pause that may have let the standby judge us
   * dead: the heartbeat thread was silent longer than the standby's window, or the main thread
   * paused that long and the heartbeat thread has not run since (both resume after SIGCONT, in
   * either order).
   */
  #checkStall(): void {
    const now = performance.now();
    const mainGap = now - this.#lastTick;
    this.#lastTick = now;
    if (this.#closed || this.#state === 'fenced') return;
    const outageMs = this.#sampleLan();
    if (this.#state !== 'serving') return;
    const limit = this.#opts.stallMs;
    const beacon = this.#opts.beaconPauses?.() ?? null;
    const mainPaused = mainGap > limit + this.#tickMs;
    let gap: number;
    if (outageMs !== null && outageMs > limit) {
      // Cut off from the LAN for longer than the standby's window: as good as paused.
      gap = outageMs;
    } else if (beacon === null) {
      if (!mainPaused) return;
      gap = mainGap;
    } else if (beacon.maxGapMs > limit) {
      gap = beacon.maxGapMs;
    } else if (mainPaused && beacon.sinceTickMs > limit) {
      gap = Math.max(mainGap, beacon.sinceTickMs);
    } else {
      if (mainPaused) this.#mainOnlyStalls++;
      return;
    }
    this.#stalls++;
    this.#lastStallMs = gap;
    const committer = this.#opts.committer;
    if (!committer.protected) {
      // No standby follows us: nobody could have taken over from a standby we do not have.
      this.#log.debug(`paused ${round(gap)} ms; no standby connected, nothing to verify`);
      return;
    }
    // Before anything else reaches the kernel.
    committer.hold(`paused ${round(gap)} ms: verifying that the standby still follows us`);
    let seq: number | null = null;
    try {
      const check: FenceCheckBlob = { at: Date.now(), pausedMs: Math.round(gap) };
      seq = this.#opts.replication.sendBlob(BlobKind.FenceCheck, check);
    } catch (err) {
      this.#log.error(`fence check not sent: ${(err as Error).message}`);
    }
    if (seq === null) {
      // The link is already gone: its loss (reported or about to be) decides.
      this.#log.warn(`paused ${round(gap)} ms and no standby link to verify on: waiting for the loss to be judged`);
      this.#checkSeq = null;
      this.#setState('verifying', `paused ${round(gap)} ms, no link`);
      return;
    }
    this.#checkSeq = seq;
    this.#verifyStartedAt = performance.now();
    this.#setState('verifying', `paused ${round(gap)} ms`);
    this.#log.warn(`failover step: heartbeats paused ${round(gap)} ms (standby may have judged us dead after ${this.#opts.stallMs} ms): output held, verifying`, {
      failover: FailoverStep.FenceStall,
      pausedMs: round(gap),
      checkSeq: seq,
    });
  }

  /**
   * Reads our LAN interface every few ticks; returns the length of an outage that just ended
   * (ms), else null. While it is down nothing reaches the standby or the clients anyway; when it
   * comes back after longer than the standby's window, the caller verifies like after a pause.
   */
  #sampleLan(): number | null {
    const name = this.#lanInterface;
    if (!name || (this.#ticks++ % LAN_SAMPLE_TICKS !== 0 && this.#lanDownAt === null)) return null;
    const up = readInterface(name).up;
    const now = Date.now();
    if (!up) {
      if (this.#lanDownAt === null) {
        this.#lanDownAt = now;
        this.#log.warn(`failover step: our LAN interface ${name} lost its carrier`, { failover: FailoverStep.FenceLanDown, interface: name });
      }
      return null;
    }
    if (this.#lanDownAt === null) return null;
    const outage = { from: this.#lanDownAt, to: now };
    this.#lanDownAt = null;
    this.#lastOutage = outage;
    this.#log.warn(`failover step: our LAN interface ${name} is back after ${outage.to - outage.from} ms`, {
      failover: FailoverStep.FenceLanUp,
      interface: name,
      outageMs: outage.to - outage.from,
    });
    return outage.to - outage.from;
  }

  #onAcked(seq: number): void {
    if (this.#state !== 'verifying' || this.#checkSeq === null || seq < this.#checkSeq) return;
    this.#verifications++;
    this.#endVerification(`standby acknowledged fence check ${this.#checkSeq} after ${round(performance.now() - this.#verifyStartedAt)} ms`, 'verified');
  }

  #endVerification(reason: string, how: 'verified' | 'released'): void {
    this.#checkSeq = null;
    this.#setState('serving', reason);
    this.#log.info(`failover step: ${how}: ${reason}`, { failover: how === 'verified' ? FailoverStep.FenceVerified : FailoverStep.FenceReleased });
    this.#opts.committer.releaseHeld(reason);
  }

  #stopTimers(): void {
    if (this.#stallTimer) clearInterval(this.#stallTimer);
    this.#stallTimer = null;
  }

  /** The one place the state changes: every transition is logged with its timestamp. */
  #setState(to: FencingState, cause: string): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    this.#log.log(to === 'serving' ? 'info' : 'warn', `fencing ${from} -> ${to} (${cause})`, { at: iso(Date.now()) });
    safeEmit(this, this.#log, 'state', to, from);
  }
}

/**
 * Asks who serves replication at host:port: connects, sends a `probe` frame and reads the
 * first authenticated frame (a server answers with an announced shutdown, stamped with its
 * epoch). Never throws; bounded by timeoutMs.
 */
export function probeReplicationPeer(opts: { host: string; port: number; secret: Secret; epoch: number; timeoutMs: number }): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    let socket: Socket | null = null;
    let link: ReplicationLink<PrimaryMessage, StandbyMessage> | null = null;
    let connected = false;
    const finish = (outcome: ProbeOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (link) link.close('fencing probe done', { announce: false });
      else socket?.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(
      () => finish(connected ? { kind: 'silent-listener', detail: `no answer within ${opts.timeoutMs} ms` } : { kind: 'no-answer', code: `timeout ${opts.timeoutMs} ms` }),
      opts.timeoutMs,
    );
    try {
      socket = connect({ host: opts.host, port: opts.port, noDelay: true });
    } catch (err) {
      finish({ kind: 'no-answer', code: (err as Error).message });
      return;
    }
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (connected) return;
      const code = err.code ?? err.message;
      finish(code === 'ECONNREFUSED' || code === 'ECONNRESET' ? { kind: 'refused', code } : { kind: 'no-answer', code });
    });
    socket.once('connect', () => {
      connected = true;
      const l = new ReplicationLink<PrimaryMessage, StandbyMessage>({
        socket: socket!,
        secret: opts.secret,
        epoch: opts.epoch,
        parse: parsePrimaryMessage,
        logContext: { role: 'fencing-probe' },
      });
      link = l;
      l.on('frame', (meta) => finish(meta.epoch > opts.epoch ? { kind: 'newer-primary', epoch: meta.epoch } : { kind: 'not-newer', epoch: meta.epoch }));
      l.on('close', (info) => finish({ kind: 'silent-listener', detail: `closed without a verified frame (${info.reason})` }));
      try {
        l.send({ type: 'probe', epoch: opts.epoch, pid: process.pid });
      } catch (err) {
        finish({ kind: 'silent-listener', detail: `probe not sent: ${(err as Error).message}` });
      }
    });
  });
}

/** The kernel's view of a network interface of this (network) namespace; never throws. */
export function readInterface(name: string): InterfaceState {
  const base = `/sys/class/net/${name}`;
  let operstate: string;
  try {
    operstate = readFileSync(`${base}/operstate`, 'utf8').trim();
  } catch {
    return { name, exists: false, operstate: 'absent', carrier: false, up: false };
  }
  let carrier: boolean | null = null;
  try {
    carrier = readFileSync(`${base}/carrier`, 'utf8').trim() === '1';
  } catch {
    // EINVAL while the interface is administratively down.
  }
  // Administratively down reads as operstate "down" (and no carrier file); otherwise trust the carrier when there is one.
  const up = (operstate === 'up' || operstate === 'unknown') && carrier !== false;
  return { name, exists: true, operstate, carrier, up };
}

/** The interface holding `address`, or null (a wildcard or loopback address, or none found). */
export function interfaceOf(address: string): string | null {
  if (address === '' || address === '0.0.0.0' || address === '::') return null;
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (name === 'lo') continue;
    if (addrs?.some((a) => a.address === address)) return name;
  }
  return null;
}

function hostOf(remote: string): string | null {
  const i = remote.lastIndexOf(':');
  const host = i > 0 ? remote.slice(0, i) : remote;
  return host && host !== '?' ? host.replace(/^::ffff:/, '') : null;
}

function describeProbe(p: ProbeOutcome): string {
  switch (p.kind) {
    case 'newer-primary':
      return `a primary of epoch ${p.epoch} answered`;
    case 'not-newer':
      return `a replication server of epoch ${p.epoch} answered`;
    case 'silent-listener':
      return `a listener without a verified answer (${p.detail})`;
    case 'refused':
      return `refused (${p.code})`;
    case 'no-answer':
      return `no answer (${p.code})`;
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
