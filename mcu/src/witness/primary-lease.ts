/**
 * The primary's hold on its epoch at the witness. Every `renewMs` it reads the epoch there (a
 * linearizable read: a witness member cut off from its quorum cannot answer it) and keeps its
 * etcd lease alive, the lease its PrimaryRecord is attached to (etcd's TTL is whole seconds, at
 * least ~1.5 election timeouts: it only says, to a fresh primary and to operators, whether a
 * primary lives). The hold itself is local and in milliseconds:
 *
 * - the witness holds a higher epoch: a standby won it (its compare-and-set) and serves or is
 *   about to: `lost` (superseded) at once;
 * - the epoch was not confirmed for `ttlMs` and the latest attempt failed (the witness is
 *   unreachable, or answers without our epoch): `lost` (expired). A renewal that was merely late
 *   (this thread was not scheduled) is retried first, and counts if it confirms the epoch: a
 *   standby can only have taken over by moving it.
 *
 * `lost` is emitted once and is final: the Mcu fences itself (stops writing, drops the VIP) in
 * every mode. close() (a deliberate stop) revokes the lease, so the record goes with it.
 */
import { EventEmitter } from 'node:events';
import { safeEmit } from '../core/events.ts';
import { createLogger, type Logger } from '../core/logger.ts';
import { FailoverStep, logStep } from '../wire/failover-steps.ts';
import type { PrimaryRecord, Witness } from './witness.ts';

/** holding: the epoch is ours as far as the witness said within the TTL; lost: superseded or expired (final). */
export type PrimaryLeaseState = 'holding' | 'lost' | 'closed';

export type LeaseLoss =
  | { kind: 'superseded'; epoch: number; detail: string }
  | { kind: 'expired'; sinceConfirmedMs: number; detail: string };

export type PrimaryLeaseEvents = {
  state: [to: PrimaryLeaseState, from: PrimaryLeaseState];
  /** Emitted once: this primary must fence itself. */
  lost: [loss: LeaseLoss];
};

export interface PrimaryLeaseOptions {
  witness: Witness;
  /** Our record: the epoch we hold (claimed at start, or won by a standby's compare-and-set). */
  record: PrimaryRecord;
  /** The etcd lease the record is already attached to (a fresh primary's claim); null: grant one and attach the record at start. */
  leaseId: string | null;
  /** Lost when the epoch was not confirmed for this long, ms. */
  ttlMs: number;
  /** Period of the renewals, ms (default min(100, ttlMs / 4)). */
  renewMs?: number;
  /** performance.now() when the epoch was last confirmed ours (the claim's or the compare-and-set's start). */
  confirmedAt: number;
}

export interface PrimaryLeaseStatus {
  state: PrimaryLeaseState;
  epoch: number;
  cluster: string;
  ttlMs: number;
  renewMs: number;
  /** Since the epoch was last confirmed, ms. */
  confirmedAgoMs: number;
  renewals: number;
  failures: number;
  /** Round trip of the last renewal, ms. */
  lastRenewalMs: number | null;
  lastError: string | null;
  leaseId: string | null;
  endpoint: string;
  loss: LeaseLoss | null;
}

/** Requested etcd lease TTL, s (etcd raises it to its minimum when needed). */
const ETCD_LEASE_SECONDS = 2;

export class PrimaryLease extends EventEmitter<PrimaryLeaseEvents> {
  readonly #opts: PrimaryLeaseOptions;
  readonly #log: Logger;
  readonly renewMs: number;
  #state: PrimaryLeaseState = 'holding';
  #leaseId: string | null;
  #etcdTtlMs = ETCD_LEASE_SECONDS * 1000;
  #keptAliveAt = performance.now();
  #confirmedAt: number;
  #inFlight: Promise<void> | null = null;
  /** The latest attempt that completed failed. */
  #failing = false;
  #lastError: string | null = null;
  #renewals = 0;
  #failures = 0;
  #lastRenewalMs: number | null = null;
  #loss: LeaseLoss | null = null;
  #renewTimer: NodeJS.Timeout | null = null;
  #deadlineTimer: NodeJS.Timeout | null = null;
  #closing: Promise<void> | null = null;

  constructor(options: PrimaryLeaseOptions) {
    super();
    this.#opts = options;
    this.renewMs = options.renewMs ?? Math.max(5, Math.min(100, Math.floor(options.ttlMs / 4)));
    this.#leaseId = options.leaseId;
    this.#confirmedAt = options.confirmedAt;
    this.#log = createLogger('witness', { epoch: options.record.epoch });
  }

  get state(): PrimaryLeaseState {
    return this.#state;
  }

  get loss(): LeaseLoss | null {
    return this.#loss;
  }

  /** Starts renewing (a promoted standby's MCU: grants its lease and attaches its record first). */
  start(): void {
    if (this.#renewTimer || this.#state !== 'holding') return;
    this.#renewTimer = setInterval(() => this.#renew(), this.renewMs);
    this.#renewTimer.unref();
    this.#armDeadline();
    this.#renew();
    this.#log.info('holding the epoch at the witness', {
      cluster: this.#opts.witness.clusterName,
      ttlMs: this.#opts.ttlMs,
      renewMs: this.renewMs,
      endpoint: this.#opts.witness.client.endpoint,
    });
  }

  status(): PrimaryLeaseStatus {
    return {
      state: this.#state,
      epoch: this.#opts.record.epoch,
      cluster: this.#opts.witness.clusterName,
      ttlMs: this.#opts.ttlMs,
      renewMs: this.renewMs,
      confirmedAgoMs: Math.round(performance.now() - this.#confirmedAt),
      renewals: this.#renewals,
      failures: this.#failures,
      lastRenewalMs: this.#lastRenewalMs === null ? null : Math.round(this.#lastRenewalMs * 100) / 100,
      lastError: this.#lastError,
      leaseId: this.#leaseId,
      endpoint: this.#opts.witness.client.endpoint,
      loss: this.#loss,
    };
  }

  /** Stops renewing; a deliberate stop revokes the lease (the record goes with it). Idempotent; never throws. */
  close(options: { revoke?: boolean } = {}): Promise<void> {
    this.#closing ??= (async () => {
      this.#stopTimers();
      const wasHolding = this.#state === 'holding';
      this.#setState('closed');
      await this.#inFlight?.catch(() => undefined);
      const id = this.#leaseId;
      if (id && (options.revoke ?? wasHolding)) {
        try {
          await this.#opts.witness.client.leaseRevoke(id);
        } catch (err) {
          this.#log.warn(`could not revoke the witness lease ${id} (its record expires with it): ${(err as Error).message}`);
        }
      }
    })();
    return this.#closing;
  }

  #renew(): void {
    if (this.#state !== 'holding' || this.#inFlight) return;
    const attempt = this.#attempt();
    this.#inFlight = attempt;
    void attempt.finally(() => {
      if (this.#inFlight === attempt) this.#inFlight = null;
    });
  }

  async #attempt(): Promise<void> {
    const started = performance.now();
    const { witness, record } = this.#opts;
    let epoch: number | null;
    try {
      [epoch] = await Promise.all([witness.epoch(), this.#keepAlive(started)]);
    } catch (err) {
      this.#failed(started, (err as Error).message);
      return;
    }
    if (this.#state !== 'holding') return;
    if (epoch !== null && epoch > record.epoch) {
      this.#lose({ kind: 'superseded', epoch, detail: `the witness holds epoch ${epoch}, above ours (${record.epoch}): a standby took over` });
      return;
    }
    if (epoch !== record.epoch) {
      this.#failed(started, `the witness holds ${epoch === null ? 'no epoch' : `epoch ${epoch}`}, not ours (${record.epoch}): its data was lost or reset`);
      return;
    }
    this.#renewals++;
    this.#lastRenewalMs = performance.now() - started;
    if (this.#failing) this.#log.info(`the witness confirms epoch ${record.epoch} again`, { afterFailures: this.#failures });
    this.#failing = false;
    this.#confirmedAt = Math.max(this.#confirmedAt, started);
    this.#armDeadline();
  }

  /** Keeps the etcd lease alive once a third of its TTL passed; grants one (and attaches the record) when there is none or it expired. */
  async #keepAlive(now: number): Promise<void> {
    const { witness, record } = this.#opts;
    if (this.#leaseId !== null && now - this.#keptAliveAt < this.#etcdTtlMs / 3) return;
    if (this.#leaseId !== null) {
      const ttl = await witness.client.leaseKeepAlive(this.#leaseId);
      if (ttl > 0) {
        this.#keptAliveAt = now;
        return;
      }
      this.#log.warn(`the witness lease ${this.#leaseId} expired (this process was not scheduled for its TTL?): granting a new one`);
    }
    const lease = await witness.client.leaseGrant(ETCD_LEASE_SECONDS);
    this.#leaseId = lease.id;
    this.#etcdTtlMs = lease.ttlSeconds * 1000;
    this.#keptAliveAt = now;
    // Only while the epoch is still ours; the epoch read beside this decides the rest.
    await witness.attachRecord(record, lease.id);
  }

  #failed(started: number, detail: string): void {
    if (this.#state !== 'holding') return;
    this.#failures++;
    if (!this.#failing) this.#log.warn(`the witness did not confirm epoch ${this.#opts.record.epoch}: ${detail}`, { ms: Math.round(performance.now() - started) });
    this.#failing = true;
    this.#lastError = detail;
    const since = performance.now() - this.#confirmedAt;
    if (since > this.#opts.ttlMs) this.#lose({ kind: 'expired', sinceConfirmedMs: Math.round(since), detail: `the witness has not confirmed epoch ${this.#opts.record.epoch} for ${Math.round(since)} ms (lease ${this.#opts.ttlMs} ms): ${detail}` });
  }

  /** At the end of the TTL: a failed last attempt ends the hold; a late or missing one is made now and decides. */
  #armDeadline(): void {
    if (this.#deadlineTimer) clearTimeout(this.#deadlineTimer);
    const wait = Math.max(0, this.#confirmedAt + this.#opts.ttlMs - performance.now()) + 1;
    this.#deadlineTimer = setTimeout(() => this.#onDeadline(), wait);
    this.#deadlineTimer.unref();
  }

  #onDeadline(): void {
    this.#deadlineTimer = null;
    if (this.#state !== 'holding') return;
    const since = performance.now() - this.#confirmedAt;
    if (since <= this.#opts.ttlMs) {
      this.#armDeadline();
      return;
    }
    if (this.#inFlight) return; // its outcome decides
    if (this.#failing) {
      this.#lose({ kind: 'expired', sinceConfirmedMs: Math.round(since), detail: `the witness has not confirmed epoch ${this.#opts.record.epoch} for ${Math.round(since)} ms (lease ${this.#opts.ttlMs} ms): ${this.#lastError ?? 'no answer'}` });
      return;
    }
    this.#renew();
  }

  #lose(loss: LeaseLoss): void {
    if (this.#state !== 'holding') return;
    this.#loss = loss;
    this.#stopTimers();
    this.#setState('lost');
    logStep(
      this.#log,
      loss.kind === 'superseded' ? FailoverStep.WitnessSuperseded : FailoverStep.WitnessLeaseExpired,
      `failover step: ${loss.detail}: this primary fences itself`,
      { epoch: this.#opts.record.epoch, ...(loss.kind === 'superseded' ? { witnessEpoch: loss.epoch } : { sinceConfirmedMs: loss.sinceConfirmedMs }) },
      'error',
    );
    safeEmit(this, this.#log, 'lost', loss);
  }

  #stopTimers(): void {
    if (this.#renewTimer) clearInterval(this.#renewTimer);
    if (this.#deadlineTimer) clearTimeout(this.#deadlineTimer);
    this.#renewTimer = null;
    this.#deadlineTimer = null;
  }

  #setState(to: PrimaryLeaseState): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    this.#log.info(`witness lease ${from} -> ${to}`);
    safeEmit(this, this.#log, 'state', to, from);
  }
}
