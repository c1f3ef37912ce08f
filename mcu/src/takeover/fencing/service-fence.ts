/**
 * The last act of a primary that learned another one may serve its clients, in every mode that
 * moves a service address: the VIP leaves this host (its interface down: no ARP answer for the
 * virtual MAC any more, and the VIP's own traffic is blackholed by the policy rule), logged as
 * failover steps, and `fenced` is emitted once; the Mcu then stops its heartbeats and
 * replication, takes the `fenced` role and the process exits with FENCED_EXIT_CODE.
 *
 * Triggers: a standby's `superseded` (in takeover mode the FencingGuard decides, and fences its
 * output commit first), the witness holding a higher epoch, or the witness lease expired
 * (mcu/src/witness/primary-lease.ts). In reconnect mode nothing gates the output: taking the VIP
 * down first is what keeps the clients from the old primary.
 *
 * The VIP goes down through an `ip -batch` started in advance: one line on its stdin (~1-2 ms),
 * not a process start.
 */
import { EventEmitter } from 'node:events';
import { safeEmit } from '../../core/events.ts';
import { thisHost, type HostCommands, type ResidentCommand } from '../../core/host-commands.ts';
import { createLogger, type Logger } from '../../core/logger.ts';
import { FailoverStep, logStep } from '../../wire/failover-steps.ts';
import { FenceActionError } from '../errors.ts';

export interface FencedInfo {
  reason: string;
  /** Epoch ms: fenced, and the VIP down (null if there is none or dropping it failed). */
  fencedAt: number;
  vipDroppedAt: number | null;
  epoch: number;
}

export type ServiceFenceEvents = {
  /** Fenced, and the VIP dropped (or not: see vipDroppedAt). Emitted once. */
  fenced: [info: FencedInfo];
};

export interface ServiceFenceOptions {
  /** The interface carrying the VIP on this host (MCU_VIP_INTERFACE); null: none to drop. */
  vipInterface: string | null;
  /** Our epoch now. */
  epoch: () => number;
  /** Where `ip` runs (default: this process's network namespace). */
  commands?: HostCommands;
}

/** One per primary; fence() is final and idempotent, close() stops the resident `ip` (idempotent). */
export class ServiceFence extends EventEmitter<ServiceFenceEvents> {
  readonly vipInterface: string | null;
  readonly #opts: ServiceFenceOptions;
  readonly #log: Logger = createLogger('fencing');
  #ip: ResidentCommand | null = null;
  #fencing: Promise<FencedInfo> | null = null;
  #fenced: FencedInfo | null = null;
  #closed = false;

  constructor(options: ServiceFenceOptions) {
    super();
    this.#opts = options;
    this.vipInterface = options.vipInterface;
    if (options.vipInterface) {
      this.#ip = (options.commands ?? thisHost).resident(['ip', '-o', '-force', '-batch', '-']);
      this.#ip.start();
    }
  }

  /** Set once fence() began (its VIP drop may still run). */
  get fenced(): FencedInfo | null {
    return this.#fenced;
  }

  /**
   * Stops this primary serving for good: logged at once, then the VIP down. Resolves once it is
   * (or dropping it failed, logged). Idempotent: later calls get the first call's outcome.
   */
  fence(reason: string): Promise<FencedInfo> {
    this.#fencing ??= this.#fence(reason);
    return this.#fencing;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ip?.close();
    this.#ip = null;
  }

  async #fence(reason: string): Promise<FencedInfo> {
    const fencedAt = Date.now();
    const info: FencedInfo = { reason, fencedAt, vipDroppedAt: null, epoch: this.#opts.epoch() };
    this.#fenced = info;
    logStep(this.#log, FailoverStep.Fenced, `failover step: fenced, this primary stops serving: ${reason}`, { reason, epoch: info.epoch, at: new Date(fencedAt).toISOString() }, 'error');
    const vip = this.vipInterface;
    if (vip) {
      const t0 = performance.now();
      try {
        await this.#dropVip(vip);
        info.vipDroppedAt = Date.now();
        logStep(this.#log, FailoverStep.FenceVipDropped, 'failover step: VIP dropped on the fenced primary', {
          interface: vip,
          ms: Math.round((performance.now() - t0) * 10) / 10,
          sinceFencedMs: info.vipDroppedAt - fencedAt,
        }, 'warn');
      } catch (err) {
        logStep(this.#log, FailoverStep.FenceVipFailed, `could not take the VIP interface ${vip} down: ${(err as Error).message}`, {}, 'error');
      }
    }
    safeEmit(this, this.#log, 'fenced', info);
    return info;
  }

  /** Through the resident `ip` (its `link show` answer marks completion), else a one-off `ip`. */
  async #dropVip(vip: string): Promise<void> {
    const ip = this.#ip;
    try {
      if (ip && !ip.closed) {
        const r = await ip.run({ input: `link set dev ${vip} down\nlink show dev ${vip}\n`, isComplete: (out) => out.includes(`: ${vip}`), timeoutMs: 2000 });
        if (r.stderr.trim() !== '') throw new Error(`ip link set dev ${vip} down: ${r.stderr.trim()}`);
        return;
      }
      await (this.#opts.commands ?? thisHost).run(['ip', 'link', 'set', 'dev', vip, 'down'], { timeoutMs: 2000 });
    } catch (err) {
      throw new FenceActionError((err as Error).message);
    }
  }
}
