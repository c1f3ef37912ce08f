/**
 * The witness that settles promotions: the epoch, the fencing token of a primary/standby pair,
 * kept in etcd, and a record of the primary that holds it.
 *
 *   /mcu/<cluster>/epoch    the epoch in decimal; it only grows, and only by a compare-and-set
 *   /mcu/<cluster>/primary  JSON PrimaryRecord of its holder; attached to the primary's lease
 *                           while it serves (written without one by a standby's compare-and-set,
 *                           until the new primary attaches its own)
 *   /mcu/<cluster>/sync     `<epoch>:<standby id>`: the standby that holds everything the primary
 *                           of that epoch acknowledged (`<epoch>:` while none does); written by the
 *                           primary (sync-standby.ts)
 *
 * A fresh primary claims the next epoch at start (refused while another primary's record is
 * attached to a live lease); a standby promotes only after its compare-and-set from the epoch it
 * followed to the next one wins; a primary that finds a higher epoch there fences itself
 * (primary-lease.ts). Every write carries a nonce in the record, so a write that timed out and
 * was retried is recognised as ours.
 *
 * Only the sync standby may promote (Patroni's synchronous mode): the compare-and-set also
 * compares the sync key with `<expected epoch>:<its id>`. A primary that lost its standby and
 * goes on serving without it clears that key first (at its own epoch), so the two writes are
 * ordered at the witness: either the standby won (the primary's clear fails, it fences) or the
 * primary cleared (the standby's compare-and-set fails, its copy is stale: it follows again).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';
import type { McuConfig } from '../core/config.ts';
import { EtcdClient, type Compare, type KeyValue } from './etcd-client.ts';
import { WitnessEpochMovedError, WitnessPrimaryExistsError, WitnessResponseError } from './errors.ts';

/** Who holds (or claims) the epoch. */
export interface PrimaryRecord {
  epoch: number;
  /** e.g. `primary-1234@host-a`, `standby-4321@host-b`. */
  node: string;
  pid: number;
  host: string;
  /** When this node claimed or won the epoch (ISO). */
  since: string;
  /** Random per claim: a retried write that had been applied is recognised by it. */
  nonce: string;
}

const recordSchema = z.object({
  epoch: z.number().int().nonnegative(),
  node: z.string(),
  pid: z.number().int(),
  host: z.string(),
  since: z.string(),
  nonce: z.string(),
});

/** What the witness holds now. */
export interface WitnessView {
  /** null: no primary ever claimed an epoch in this cluster. */
  epoch: number | null;
  primary: { record: PrimaryRecord; leased: boolean; modRevision: number } | null;
}

/**
 * The outcome of a standby's compare-and-set. `not-sync`: the epoch is still the one it followed
 * but the witness names another sync standby (or none): the primary went on without this one.
 */
export type EpochCas =
  | { outcome: 'won'; epoch: number; record: PrimaryRecord; tookMs: number; endpoint: string }
  | { outcome: 'lost'; epoch: number | null; holder: PrimaryRecord | null; tookMs: number; endpoint: string }
  | { outcome: 'not-sync'; epoch: number; syncStandby: SyncStandby | null; tookMs: number; endpoint: string };

/** The sync key: which standby holds all the primary of `epoch` acknowledged (null: none). */
export interface SyncStandby {
  epoch: number;
  standbyId: string | null;
}

/** The sync key's value (see the file's comment). */
export function syncValue(epoch: number, standbyId: string | null): string {
  return `${epoch}:${standbyId ?? ''}`;
}

function parseSync(kv: KeyValue | null): SyncStandby | null {
  if (!kv) return null;
  const colon = kv.value.indexOf(':');
  const epoch = colon > 0 ? kv.value.slice(0, colon) : '';
  if (!/^\d+$/.test(epoch)) return null;
  return { epoch: Number(epoch), standbyId: kv.value.slice(colon + 1) || null };
}

export interface WitnessOptions {
  client: EtcdClient;
  /** Names the primary/standby pair: its keys are under /mcu/<clusterName>/. */
  clusterName: string;
}

/** The witness of this configuration (MCU_WITNESS_ENDPOINTS), null in two-node mode (no endpoints). */
export function witnessFromConfig(config: McuConfig['witness']): Witness | null {
  if (config.endpoints.length === 0) return null;
  return new Witness({ client: new EtcdClient({ endpoints: config.endpoints, requestTimeoutMs: config.requestTimeoutMs }), clusterName: config.clusterName });
}

/** A node's identity in the records it writes. */
export function nodeIdentity(role: string): Pick<PrimaryRecord, 'node' | 'pid' | 'host'> {
  const host = hostname();
  return { node: `${role}-${process.pid}@${host}`, pid: process.pid, host };
}

/** A fresh nonce for one claim (keep it across retries of the same claim). */
export function newNonce(): string {
  return randomBytes(8).toString('hex');
}

export class Witness {
  readonly client: EtcdClient;
  readonly clusterName: string;
  readonly keys: { epoch: string; primary: string; sync: string };

  constructor(options: WitnessOptions) {
    if (!/^[A-Za-z0-9._-]+$/.test(options.clusterName)) throw new RangeError(`witness cluster name "${options.clusterName}" must be letters, digits, dots, dashes or underscores`);
    this.client = options.client;
    this.clusterName = options.clusterName;
    const prefix = `/mcu/${options.clusterName}`;
    this.keys = { epoch: `${prefix}/epoch`, primary: `${prefix}/primary`, sync: `${prefix}/sync` };
  }

  /** The epoch and the primary's record, read together (one linearizable transaction). */
  async read(): Promise<WitnessView> {
    const r = await this.client.txn({ compare: [], success: [{ range: { key: this.keys.epoch } }, { range: { key: this.keys.primary } }], failure: [] });
    return this.#view(r.ranges[0]?.[0] ?? null, r.ranges[1]?.[0] ?? null);
  }

  /**
   * A fresh primary (not a promoted standby) claims the next epoch: refused with
   * WitnessPrimaryExistsError while another primary's record is attached to a live lease. The
   * record goes onto `leaseId`. Resolves with the record written (its epoch is the one claimed).
   */
  async claimFresh(identity: Pick<PrimaryRecord, 'node' | 'pid' | 'host'>, leaseId: string, nonce: string = newNonce()): Promise<PrimaryRecord> {
    const seen = await this.read();
    // An earlier attempt of this claim was applied, its answer lost.
    if (seen.primary?.record.nonce === nonce && seen.epoch === seen.primary.record.epoch) return seen.primary.record;
    this.#refuseLiveHolder(seen, identity);
    const next = (seen.epoch ?? 0) + 1;
    const record: PrimaryRecord = { ...identity, epoch: next, since: new Date().toISOString(), nonce };
    const compare: Compare[] = [this.#epochIs(seen.epoch)];
    // The record as we saw it (absent, or left without a lease): nobody else claimed meanwhile.
    compare.push(seen.primary ? { key: this.keys.primary, target: 'MOD', result: 'EQUAL', modRevision: seen.primary.modRevision } : { key: this.keys.primary, target: 'VERSION', result: 'EQUAL', version: 0 });
    const r = await this.client.txn({
      compare,
      success: [{ put: { key: this.keys.epoch, value: String(next) } }, { put: { key: this.keys.primary, value: JSON.stringify(record), lease: leaseId } }],
      failure: [{ range: { key: this.keys.epoch } }, { range: { key: this.keys.primary } }],
    });
    if (r.succeeded) return record;
    const now = this.#view(r.ranges[0]?.[0] ?? null, r.ranges[1]?.[0] ?? null);
    if (now.primary?.record.nonce === nonce && now.epoch === next) return record;
    this.#refuseLiveHolder(now, identity);
    throw new WitnessEpochMovedError(this.clusterName, seen.epoch, now.epoch);
  }

  /**
   * A standby's promotion: the epoch goes from `expected` (the one it followed) to `expected + 1`
   * only if nobody moved it and the sync key names this standby at that epoch; the record names
   * the standby (no lease yet: the promoted MCU attaches its own). `nonce`: the same for every
   * retry of one promotion, so an earlier attempt that was applied although its answer was lost
   * counts as won. Throws WitnessUnreachableError.
   */
  async compareAndSetEpoch(expected: number, identity: Pick<PrimaryRecord, 'node' | 'pid' | 'host'>, nonce: string, standbyId: string): Promise<EpochCas> {
    const next = expected + 1;
    const record: PrimaryRecord = { ...identity, epoch: next, since: new Date().toISOString(), nonce };
    const started = performance.now();
    const r = await this.client.txn({
      compare: [
        { key: this.keys.epoch, target: 'VALUE', result: 'EQUAL', value: String(expected) },
        { key: this.keys.sync, target: 'VALUE', result: 'EQUAL', value: syncValue(expected, standbyId) },
      ],
      success: [{ put: { key: this.keys.epoch, value: String(next) } }, { put: { key: this.keys.primary, value: JSON.stringify(record) } }],
      failure: [{ range: { key: this.keys.epoch } }, { range: { key: this.keys.primary } }, { range: { key: this.keys.sync } }],
    });
    const tookMs = performance.now() - started;
    const endpoint = this.client.lastTiming?.endpoint ?? this.client.endpoint;
    if (r.succeeded) return { outcome: 'won', epoch: next, record, tookMs, endpoint };
    const now = this.#view(r.ranges[0]?.[0] ?? null, r.ranges[1]?.[0] ?? null);
    if (now.epoch === next && now.primary?.record.nonce === nonce) return { outcome: 'won', epoch: next, record: now.primary.record, tookMs, endpoint };
    if (now.epoch === expected) return { outcome: 'not-sync', epoch: expected, syncStandby: parseSync(r.ranges[2]?.[0] ?? null), tookMs, endpoint };
    return { outcome: 'lost', epoch: now.epoch, holder: now.primary?.record ?? null, tookMs, endpoint };
  }

  /**
   * The primary of `epoch` records which standby holds all it acknowledged (null: none), as long
   * as the epoch is still its own. Resolves with the epoch the witness holds (higher: superseded).
   */
  async recordSyncStandby(epoch: number, standbyId: string | null): Promise<number | null> {
    const r = await this.client.txn({
      compare: [{ key: this.keys.epoch, target: 'VALUE', result: 'EQUAL', value: String(epoch) }],
      success: [{ put: { key: this.keys.sync, value: syncValue(epoch, standbyId) } }],
      failure: [{ range: { key: this.keys.epoch } }],
    });
    if (r.succeeded) return epoch;
    return parseEpoch(r.ranges[0]?.[0] ?? null, this.keys.epoch, this.client.endpoint);
  }

  /** The sync key as the witness holds it now (null: never written, or not one of ours). */
  async syncStandby(): Promise<SyncStandby | null> {
    return parseSync(await this.client.range(this.keys.sync));
  }

  /**
   * The primary of `epoch` (re)attaches its record to its lease, as long as the epoch is still
   * its own. Resolves with the epoch the witness holds (higher: it was superseded).
   */
  async attachRecord(record: PrimaryRecord, leaseId: string): Promise<number | null> {
    const r = await this.client.txn({
      compare: [{ key: this.keys.epoch, target: 'VALUE', result: 'EQUAL', value: String(record.epoch) }],
      success: [{ put: { key: this.keys.primary, value: JSON.stringify(record), lease: leaseId } }],
      failure: [{ range: { key: this.keys.epoch } }],
    });
    if (r.succeeded) return record.epoch;
    return parseEpoch(r.ranges[0]?.[0] ?? null, this.keys.epoch, this.client.endpoint);
  }

  /** The epoch the witness holds now (null: none). */
  async epoch(): Promise<number | null> {
    return parseEpoch(await this.client.range(this.keys.epoch), this.keys.epoch, this.client.endpoint);
  }

  #epochIs(epoch: number | null): Compare {
    return epoch === null ? { key: this.keys.epoch, target: 'VERSION', result: 'EQUAL', version: 0 } : { key: this.keys.epoch, target: 'VALUE', result: 'EQUAL', value: String(epoch) };
  }

  #refuseLiveHolder(view: WitnessView, identity: Pick<PrimaryRecord, 'node'>): void {
    const holder = view.primary;
    if (!holder?.leased || holder.record.node === identity.node) return;
    const r = holder.record;
    throw new WitnessPrimaryExistsError(this.clusterName, `${r.node}, epoch ${r.epoch}, since ${r.since}`, null);
  }

  #view(epochKv: KeyValue | null, primaryKv: KeyValue | null): WitnessView {
    const epoch = parseEpoch(epochKv, this.keys.epoch, this.client.endpoint);
    if (!primaryKv) return { epoch, primary: null };
    let record: PrimaryRecord;
    try {
      record = recordSchema.parse(JSON.parse(primaryKv.value));
    } catch {
      throw new WitnessResponseError(this.client.endpoint, `a read of ${this.keys.primary}`, `the primary record is not one this MCU writes: ${primaryKv.value.slice(0, 120)}`);
    }
    return { epoch, primary: { record, leased: primaryKv.lease !== null, modRevision: primaryKv.modRevision } };
  }
}

function parseEpoch(kv: KeyValue | null, key: string, endpoint: string): number | null {
  if (!kv) return null;
  if (!/^\d+$/.test(kv.value)) throw new WitnessResponseError(endpoint, `a read of ${key}`, `the epoch is not a number: ${kv.value.slice(0, 40)}`);
  return Number(kv.value);
}
