/**
 * The primary's record of its sync standby at the witness (the `sync` key, witness.ts): the one
 * standby that holds everything this primary acknowledged, the only one that may promote.
 *
 * - a standby synced: recorded as the sync standby, asked again every `retryMs` while the
 *   witness does not answer (until then that standby cannot promote: no failover, never a
 *   failover onto a stale copy);
 * - the standby lost: recorded as none. In takeover mode the output it did not acknowledge stays
 *   behind the committer's gate until `lost()` resolves `cleared`: from then on the lost standby's
 *   compare-and-set fails, so releasing that output unprotected cannot race a promotion. It
 *   resolves `superseded` when the standby won first (the witness holds a higher epoch: fence).
 *
 * One write in flight at a time; the latest wish wins. close() stops asking (idempotent).
 */
import { EventEmitter } from 'node:events';
import { safeEmit } from '../core/events.ts';
import { createLogger, type Logger } from '../core/logger.ts';
import { FailoverStep, logStep } from '../wire/failover-steps.ts';
import { WitnessUnreachableError } from './errors.ts';
import type { Witness } from './witness.ts';

export type SyncClearOutcome = 'cleared' | 'superseded' | 'closed';

export interface SyncStandbyStatus {
  /** What the witness holds as far as we know: the standby's id, null (none), undefined (nothing written yet). */
  recorded: string | null | undefined;
  /** What we want it to hold. */
  wanted: string | null | undefined;
  writes: number;
  failures: number;
  lastError: string | null;
}

interface ClearWaiter {
  standbyId: string;
  resolve: (outcome: SyncClearOutcome) => void;
}

export type SyncStandbyRecordEvents = {
  /** The witness holds a higher epoch: a standby won it. Emitted once. */
  superseded: [epoch: number | null];
};

export interface SyncStandbyRecordOptions {
  witness: Witness;
  /** The epoch this primary holds. */
  epoch: number;
  /** Witness unreachable: ask again after this long, ms. */
  retryMs: number;
}

export class SyncStandbyRecord extends EventEmitter<SyncStandbyRecordEvents> {
  readonly #opts: SyncStandbyRecordOptions;
  readonly #log: Logger = createLogger('sync-standby');
  #wanted: string | null | undefined = undefined;
  #recorded: string | null | undefined = undefined;
  #writing = false;
  #writes = 0;
  #failures = 0;
  #lastError: string | null = null;
  #outcome: 'superseded' | 'closed' | null = null;
  #retry: NodeJS.Timeout | null = null;
  /** lost() callers, each waiting until the witness no longer names its standby. */
  #waiters: ClearWaiter[] = [];

  constructor(options: SyncStandbyRecordOptions) {
    super();
    this.#opts = options;
  }

  /** A standby synced: it is the one that may promote. */
  synced(standbyId: string): void {
    this.#want(standbyId);
  }

  /** The standby went away: none may promote. Resolves once the witness says so (see the file's comment). */
  lost(standbyId: string): Promise<SyncClearOutcome> {
    if (this.#outcome) return Promise.resolve(this.#outcome);
    const promise = new Promise<SyncClearOutcome>((resolve) => this.#waiters.push({ standbyId, resolve }));
    if (this.#wanted === standbyId || this.#wanted === undefined) this.#want(null);
    this.#settleWaiters();
    return promise;
  }

  status(): SyncStandbyStatus {
    return { recorded: this.#recorded, wanted: this.#wanted, writes: this.#writes, failures: this.#failures, lastError: this.#lastError };
  }

  close(): void {
    if (this.#outcome) return;
    this.#finish('closed');
  }

  #want(standbyId: string | null): void {
    if (this.#outcome) return;
    this.#wanted = standbyId;
    void this.#write();
  }

  async #write(): Promise<void> {
    if (this.#writing || this.#outcome) return;
    if (this.#retry) clearTimeout(this.#retry);
    this.#retry = null;
    this.#writing = true;
    try {
      while (!this.#outcome && this.#wanted !== undefined && this.#wanted !== this.#recorded) {
        const wanted = this.#wanted;
        const started = performance.now();
        let held: number | null;
        try {
          held = await this.#opts.witness.recordSyncStandby(this.#opts.epoch, wanted);
        } catch (err) {
          this.#failures++;
          this.#lastError = (err as Error).message;
          const level = err instanceof WitnessUnreachableError ? 'warn' : 'error';
          this.#log.log(level, `recording the sync standby (${wanted ?? 'none'}) at the witness failed: ${this.#lastError}; asking again in ${this.#opts.retryMs} ms`);
          this.#retry = setTimeout(() => void this.#write(), this.#opts.retryMs);
          return;
        }
        if (held !== this.#opts.epoch) {
          logStep(this.#log, FailoverStep.WitnessSuperseded, `failover step: the witness holds epoch ${held}, not ours (${this.#opts.epoch}), while recording the sync standby: superseded`, { epoch: held }, 'error');
          this.#finish('superseded');
          safeEmit(this, this.#log, 'superseded', held);
          return;
        }
        this.#writes++;
        this.#recorded = wanted;
        this.#lastError = null;
        const ms = Math.round((performance.now() - started) * 10) / 10;
        if (wanted === null) logStep(this.#log, FailoverStep.WitnessSyncCleared, `failover step: no sync standby at the witness (epoch ${this.#opts.epoch}): the lost standby can no longer promote`, { epoch: this.#opts.epoch, ms }, 'warn');
        else this.#log.info(`sync standby recorded at the witness: ${wanted}`, { epoch: this.#opts.epoch, standby: wanted, ms });
        this.#settleWaiters();
      }
    } finally {
      this.#writing = false;
    }
  }

  #settleWaiters(): void {
    if (this.#recorded === undefined) return;
    const still: ClearWaiter[] = [];
    for (const w of this.#waiters) {
      if (this.#recorded !== w.standbyId) w.resolve('cleared');
      else still.push(w);
    }
    this.#waiters = still;
  }

  #finish(outcome: 'superseded' | 'closed'): void {
    this.#outcome = outcome;
    if (this.#retry) clearTimeout(this.#retry);
    this.#retry = null;
    for (const w of this.#waiters) w.resolve(outcome);
    this.#waiters = [];
  }
}
