/**
 * The MCU pair of a long lab run, kept alive across many failovers: the primary and its standby
 * (labMcuEnv, takeover mode and the witness by default), the host each runs in alternating as
 * failovers move the primary, every epoch claim remembered for the history checker, and settle():
 * after a fault, wait until the pair serves again as it should — one primary behind the VIP, at
 * the witness's epoch, protected by a synced standby (a fresh standby on the freed host).
 *
 * Shared by scripts/lab/partition-run.ts (partitions) and scripts/bench/soak/run.ts (the soak).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { FENCED_EXIT_CODE } from '../../mcu/src/takeover/fencing/fencing.ts';
import type { EpochClaim } from './history-checker.ts';
import type { LabEvent, LabProcess, LabProcessGroup } from './lab-process.ts';
import { labMcuEnv, labStatus, labWitnessEpoch } from './start-mcu.ts';
import type { LabHost, LabTopology, ServerHost } from './topology.ts';

/** The roles of a lab run, mapped to hosts as failovers move the primary (hostOf()). */
export type PairRole = 'primary' | 'standby' | 'witness' | 'client';

export interface LabPairOptions {
  /** Shared replication secret (the lab derives the admin token from it: labStatus()). */
  secret: string;
  /** Connection-level takeover (MCU_TAKEOVER=1). Default true. */
  takeover?: boolean;
  /** Promotion through the witness (lab.startWitness() must have run). Default true. */
  witness?: boolean;
  /** Extra environment for every MCU process (LOG_LEVEL, MCU_MISSED_HEARTBEATS, ...). */
  env?: Record<string, string>;
  /** Longest wait for the first primary's `listening` and the first standby's `standby-ready`, ms. Default 60000. */
  startTimeoutMs?: number;
}

/** How the old primary of a failover is expected to end. */
export type OldPrimaryEnd =
  /** It fences itself and exits with FENCED_EXIT_CODE (a partition, a freeze and thaw). */
  | 'fenced'
  /** The fault ended it (kill -9, the crash of its host): only its exit is awaited. */
  | 'killed';

export interface SettleOptions {
  /** The standby's event index before the fault (LabProcess.mark()): a `promoted` after it is this fault's failover. */
  standbyFrom: number;
  /** Longest wait, ms. */
  timeoutMs: number;
  /** Default 'fenced'. */
  oldPrimaryEnd?: OldPrimaryEnd;
}

export interface SettleOutcome {
  settled: boolean;
  /** Epoch serving before and after. */
  fromEpoch: number;
  toEpoch: number;
  failover: boolean;
  /** The old primary's exit code after a failover (FENCED_EXIT_CODE expected when it fences), null if it did not exit or died by a signal. */
  oldPrimaryExit: number | null;
  standbysStarted: number;
  /** Nobody served: a fresh primary was started (an availability failure, not a safety one). */
  pairRestarted: boolean;
  /** What happened besides the plan that is not a safety failure (a second failover, a fresh pair). */
  notes: string[];
  /** Connections a promotion could not take over (their clients reconnect): code and reason each. Not a problem in itself. */
  takeoverFallbacks: string[];
  /** From the call until the pair served again, protected (or the timeout), ms. */
  settleMs: number;
  problems: string[];
}

interface StatusDoc {
  role?: string;
  pid?: number;
  epoch?: number;
  protected?: boolean;
}

export class LabPair {
  readonly lab: LabTopology;
  readonly group: LabProcessGroup;
  readonly secret: string;
  /** Every MCU process this pair started, in order. */
  readonly processes: LabProcess[] = [];
  primary: LabProcess;
  primaryHost: ServerHost;
  standby: LabProcess | null;
  epoch: number;
  readonly #options: LabPairOptions;

  private constructor(lab: LabTopology, group: LabProcessGroup, options: LabPairOptions, primary: LabProcess, standby: LabProcess | null, epoch: number) {
    this.lab = lab;
    this.group = group;
    this.secret = options.secret;
    this.#options = options;
    this.primary = primary;
    this.primaryHost = 'primary';
    this.standby = standby;
    this.epoch = epoch;
  }

  /** The primary in the primary host, listening, then a standby in the standby host, ready (it protects the primary). */
  static async start(lab: LabTopology, group: LabProcessGroup, options: LabPairOptions): Promise<LabPair> {
    const timeoutMs = options.startTimeoutMs ?? 60_000;
    const primary = spawnMcu(lab, group, options, 'primary', 'primary');
    const listening = await primary.waitForEvent('listening', { timeoutMs });
    const pair = new LabPair(lab, group, options, primary, null, Number(listening.epoch ?? 1));
    pair.processes.push(primary);
    pair.standby = pair.startMcu('standby', 'standby');
    await pair.standby.waitForEvent('standby-ready', { timeoutMs });
    return pair;
  }

  /** Every epoch each MCU process announced serving (`listening`, `promoted`), whenever it did, for checkHistory(). */
  get claims(): EpochClaim[] {
    const claims: EpochClaim[] = [];
    for (const p of this.processes) {
      const epochs = new Set(p.select((e: LabEvent) => (e.event === 'listening' || e.event === 'promoted') && typeof e.epoch === 'number').map((e) => Number(e.epoch)));
      for (const epoch of epochs) claims.push({ epoch, pid: p.pid, host: p.host, at: 0 });
    }
    return claims;
  }

  /** The host the standby runs in (or will: the one the primary does not). */
  get standbyHost(): ServerHost {
    return other(this.primaryHost);
  }

  /** The host a role lives in now. */
  hostOf(role: PairRole): LabHost {
    return role === 'primary' ? this.primaryHost : role === 'standby' ? this.standbyHost : role;
  }

  /** Starts an MCU (`primary`) or a standby (`standby`) in `host` through the group. */
  startMcu(host: ServerHost, role: 'primary' | 'standby'): LabProcess {
    const p = spawnMcu(this.lab, this.group, this.#options, host, role);
    this.processes.push(p);
    return p;
  }

  /** A fresh standby in the standby host (the old one must be gone), awaited `standby-ready` within `timeoutMs`. */
  async startStandby(timeoutMs: number): Promise<boolean> {
    this.standby = this.startMcu(this.standbyHost, 'standby');
    return this.standby.waitForEvent('standby-ready', { timeoutMs }).then(
      () => true,
      () => false,
    );
  }

  /**
   * After a fault (and its undoing): takes a promotion since `standbyFrom` into account (the
   * standby becomes the primary, the old primary's end is awaited and judged), starts a fresh
   * standby where none runs, a fresh primary if nobody serves, and waits until /status through
   * the VIP names the primary, protected, the VIP on its host only and the witness at its epoch.
   */
  async settle(options: SettleOptions): Promise<SettleOutcome> {
    const startedAt = Date.now();
    const deadline = startedAt + options.timeoutMs;
    const out: SettleOutcome = { settled: false, fromEpoch: this.epoch, toEpoch: this.epoch, failover: false, oldPrimaryExit: null, standbysStarted: 0, pairRestarted: false, notes: [], takeoverFallbacks: [], settleMs: 0, problems: [] };
    let standbyFrom = options.standbyFrom;
    while (Date.now() < deadline) {
      if (this.standby) {
        const promoted = this.standby.select((e: LabEvent) => e.event === 'promoted', standbyFrom)[0];
        if (promoted) {
          const oldPrimary = this.primary;
          const newEpoch = Number(promoted.epoch);
          // Under load a standby may take over again before the pair settled: availability, not safety.
          if (out.failover) out.notes.push(`a second failover (to epoch ${newEpoch}) before the pair settled`);
          out.failover = true;
          // Connections the new primary could not take over (their clients reconnect): why, from its timeline.
          const fallbacks = (promoted.timeline as { takeover?: { fallbacks?: Array<{ code: string; reason: string }> } } | undefined)?.takeover?.fallbacks ?? [];
          out.takeoverFallbacks.push(...fallbacks.map((f) => `epoch ${newEpoch}: ${f.code} (${f.reason})`));
          this.primary = this.standby;
          this.primaryHost = this.standby.host as ServerHost;
          this.standby = null;
          this.epoch = newEpoch;
          const exit = await Promise.race([oldPrimary.exited, sleep(20_000).then(() => null)]);
          out.oldPrimaryExit = exit?.code ?? null;
          if (exit === null) out.problems.push(`the old primary (pid ${oldPrimary.pid}) did not stop within 20 s of epoch ${newEpoch}`);
          else if ((options.oldPrimaryEnd ?? 'fenced') === 'fenced' && exit.code !== FENCED_EXIT_CODE) {
            out.problems.push(`the old primary exited with ${JSON.stringify(exit)}, not the fenced code ${FENCED_EXIT_CODE}`);
          }
          continue;
        }
      }
      if (this.standby && !this.standby.running) this.standby = null;
      if (!this.standby && !this.primary.running) {
        // Nobody serves (both fenced: the old primary by the new epoch, the new one because
        // it could not confirm its epoch in time). Not a safety failure; an operator (or a
        // supervisor) starts a fresh primary, which claims the next epoch at the witness.
        const exit = await this.primary.exited;
        out.pairRestarted = true;
        out.notes.push(`no MCU left serving (the last primary exited with ${JSON.stringify(exit)}): a fresh pair was started`);
        this.primary = this.startMcu(this.primaryHost, 'primary');
        const up = await this.primary.waitForEvent('listening', { timeoutMs: Math.max(1000, deadline - Date.now()) }).catch(() => null);
        if (up) this.epoch = Number(up.epoch);
        continue;
      }
      if (!this.standby && this.primary.running) {
        // The old primary's host (or a standby that gave up, or was killed) gets a fresh standby.
        out.standbysStarted++;
        standbyFrom = 0;
        await this.startStandby(Math.max(1000, deadline - Date.now()));
        continue;
      }
      const status = (await labStatus(this.lab, this.secret, { timeoutMs: 2000 }).catch(() => null)) as StatusDoc | null;
      if (status && status.role === 'primary' && status.pid === this.primary.pid && status.protected === true) {
        const holders = await this.lab.vipHolders();
        const witnessEpoch = (this.#options.witness ?? true) ? await labWitnessEpoch(this.lab).catch(() => null) : status.epoch;
        if (holders.length === 1 && holders[0] === this.primaryHost && witnessEpoch === status.epoch) {
          out.settled = true;
          break;
        }
      }
      await sleep(200);
    }
    out.settleMs = Date.now() - startedAt;
    out.toEpoch = this.epoch;
    if (!out.settled) {
      const status = await labStatus(this.lab, this.secret, { timeoutMs: 2000 }).catch((err: unknown) => (err as Error).message);
      out.problems.push(`the pair did not serve again, protected, within ${options.timeoutMs} ms: /status ${JSON.stringify(status)}, VIP on ${JSON.stringify(await this.lab.vipHolders())}`);
    }
    return out;
  }
}

function spawnMcu(lab: LabTopology, group: LabProcessGroup, options: LabPairOptions, host: ServerHost, role: 'primary' | 'standby'): LabProcess {
  const env = {
    ...labMcuEnv(lab, host, options.secret, { takeover: options.takeover ?? true, witness: options.witness ?? true, role }),
    LOG_LEVEL: 'info',
    ...options.env,
  };
  return group.start(host, role === 'primary' ? 'mcu/src/main.ts' : 'standby/src/main.ts', [], env);
}

function other(host: ServerHost): ServerHost {
  return host === 'primary' ? 'standby' : 'primary';
}
