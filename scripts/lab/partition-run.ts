/**
 * Jepsen-style partitions in the namespace lab (issue 14 item 2): the MCU pair in takeover mode
 * with the witness (etcd in its own host), socket.io clients in the client host sending numbered
 * requests with acks all the time, and a rotation of network cuts between the roles (primary,
 * standby, witness, client) and their combinations, each held for a random while, then healed.
 * After every heal the run waits until the pair serves again as it should: one primary behind the
 * VIP, at the witness's epoch, protected by a synced standby (a fenced old primary's host gets a
 * fresh standby). At the end scripts/lab/history-checker.ts judges the clients' histories.
 *
 * Used by scripts/bench/partitions.ts (the long run, JSON and plot) and by
 * test/integration/partitions.test.ts (one round of the rotation, in CI).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { FENCED_EXIT_CODE } from '../../mcu/src/takeover/fencing/fencing.ts';
import { checkHistory, type ClientHistory, type EpochClaim, type HistoryVerdict } from './history-checker.ts';
import { LabProcessGroup, type LabEvent, type LabProcess } from './lab-process.ts';
import { labAdminEnv, labMcuEnv, labStatus, labWitnessEpoch } from './start-mcu.ts';
import { LabTopology, type LabHost, type ServerHost } from './topology.ts';
import type { McuClientReport } from '../clients/takeover-mcu-client.ts';

const CLIENT = 'scripts/clients/takeover-mcu-client.ts';
const ROOM = 'partition-room';

type Role = 'primary' | 'standby' | 'witness' | 'client';

/** One kind of partition: the links cut, between roles (mapped to hosts when it is applied). */
export interface PartitionKind {
  name: string;
  cuts: Array<[Role, Role]>;
}

/** The rotation: every single link between the roles that matter, and the combinations that isolate one node. */
export const PARTITION_ROTATION: readonly PartitionKind[] = [
  { name: 'primary|standby', cuts: [['primary', 'standby']] },
  { name: 'primary|witness', cuts: [['primary', 'witness']] },
  { name: 'standby|witness', cuts: [['standby', 'witness']] },
  { name: 'client|primary', cuts: [['client', 'primary']] },
  { name: 'primary|standby + standby|witness', cuts: [['primary', 'standby'], ['standby', 'witness']] },
  { name: 'witness isolated', cuts: [['primary', 'witness'], ['standby', 'witness']] },
  { name: 'primary isolated from the servers', cuts: [['primary', 'standby'], ['primary', 'witness']] },
  { name: 'client|primary + primary|standby', cuts: [['client', 'primary'], ['primary', 'standby']] },
  { name: 'standby isolated', cuts: [['standby', 'primary'], ['standby', 'witness'], ['standby', 'client']] },
];

export interface PartitionRunOptions {
  partitions: number;
  clients: number;
  /** Request period of each client, ms. */
  intervalMs: number;
  /** Each partition is held for a random time in [holdMinMs, holdMaxMs]. */
  holdMinMs: number;
  holdMaxMs: number;
  /** Longest wait for the pair to serve again after a heal, ms. */
  settleTimeoutMs: number;
  seed: number;
  /** Stop starting new partitions after this long, ms (the run reports what it completed). */
  budgetMs?: number;
  /** Extra environment for both MCU processes. */
  env?: Record<string, string>;
  log?: (line: string) => void;
}

export interface PartitionRecord {
  index: number;
  kind: string;
  holdMs: number;
  /** Epoch serving before and after. */
  fromEpoch: number;
  toEpoch: number;
  failover: boolean;
  /** The old primary's exit code after a failover (FENCED_EXIT_CODE expected), null if it did not exit. */
  oldPrimaryExit: number | null;
  /** From the heal until the pair served again, protected, ms. */
  settleMs: number;
  standbysStarted: number;
  clientsReplaced: number;
  /** Nobody served after the heal: a fresh primary was started (an availability failure, not a safety one). */
  pairRestarted: boolean;
  /** What happened besides the plan that is not a safety failure (a second failover, a fresh pair). */
  notes: string[];
  problems: string[];
}

export interface PartitionRunResult {
  options: Omit<PartitionRunOptions, 'log'>;
  records: PartitionRecord[];
  verdict: HistoryVerdict;
  /** Problems outside the histories: a pair that did not settle, an old primary that did not fence, two VIP holders. */
  problems: string[];
  completed: number;
  durationMs: number;
}

interface StatusDoc {
  role?: string;
  pid?: number;
  epoch?: number;
  protected?: boolean;
}

/** A small seeded PRNG (mulberry32): the same seed, the same hold times. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function runPartitions(options: PartitionRunOptions): Promise<PartitionRunResult> {
  const log = options.log ?? ((): void => undefined);
  const random = prng(options.seed);
  const startedAt = Date.now();
  await LabTopology.cleanupStale();
  const lab = new LabTopology();
  const group = new LabProcessGroup(lab);
  const secret = `partition-secret-${process.pid}-${options.seed}`;
  const records: PartitionRecord[] = [];
  const problems: string[] = [];
  const histories: ClientHistory[] = [];
  const mcus: LabProcess[] = [];
  let clients: Array<{ name: string; proc: LabProcess }> = [];
  let clientSerial = 0;
  let failed = true;
  let verdict: HistoryVerdict | null = null;
  try {
    await lab.up();
    await lab.startWitness();
    const env = (host: ServerHost, role: 'primary' | 'standby'): Record<string, string> => ({
      ...labMcuEnv(lab, host, secret, { takeover: true, witness: true, role }),
      LOG_LEVEL: 'info',
      ...options.env,
    });
    const startMcu = (host: ServerHost, role: 'primary' | 'standby'): LabProcess => {
      const p = group.start(host, role === 'primary' ? 'mcu/src/main.ts' : 'standby/src/main.ts', [], env(host, role));
      mcus.push(p);
      return p;
    };
    let primaryHost: ServerHost = 'primary';
    let primary = startMcu('primary', 'primary');
    const listening = await primary.waitForEvent('listening', { timeoutMs: 60_000 });
    let standby: LabProcess | null = startMcu('standby', 'standby');
    await standby.waitForEvent('standby-ready', { timeoutMs: 60_000 });

    const startClient = async (): Promise<void> => {
      const name = `client-${++clientSerial}`;
      const proc = group.start('client', CLIENT, [`http://${lab.addresses.vip}:${lab.servicePort}`, ROOM, String(options.intervalMs)], labAdminEnv(secret));
      await proc.waitForEvent('connect', { timeoutMs: 20_000 });
      const started = await proc.request({ op: 'start' }, 15_000);
      if (started.ok !== true) throw new Error(`${name} could not join: ${JSON.stringify(started)}`);
      clients.push({ name, proc });
    };
    const retireClient = async (c: { name: string; proc: LabProcess }): Promise<void> => {
      const report = (await c.proc.request({ op: 'stop' }, 15_000)) as unknown as McuClientReport;
      histories.push({ name: c.name, report });
      await c.proc.close();
    };
    for (let i = 0; i < options.clients; i++) await startClient();
    await sleep(500);

    const hostOf = (role: Role): LabHost => (role === 'primary' ? primaryHost : role === 'standby' ? other(primaryHost) : role);
    let epoch = Number(listening.epoch ?? 1);

    for (let index = 1; index <= options.partitions; index++) {
      if (options.budgetMs !== undefined && Date.now() - startedAt > options.budgetMs) {
        log(`time budget of ${Math.round(options.budgetMs / 1000)} s spent after ${index - 1} partitions`);
        break;
      }
      const kind = PARTITION_ROTATION[(index - 1) % PARTITION_ROTATION.length]!;
      const holdMs = Math.round(options.holdMinMs + random() * (options.holdMaxMs - options.holdMinMs));
      const record: PartitionRecord = { index, kind: kind.name, holdMs, fromEpoch: epoch, toEpoch: epoch, failover: false, oldPrimaryExit: null, settleMs: 0, standbysStarted: 0, clientsReplaced: 0, pairRestarted: false, notes: [], problems: [] };
      const links = kind.cuts.map(([a, b]) => [hostOf(a), hostOf(b)] as [LabHost, LabHost]);
      let standbyFrom = standby?.mark() ?? 0;
      for (const [a, b] of links) await lab.cut(a, b);
      await sleep(holdMs);
      for (const [a, b] of links) await lab.heal(a, b);
      const healedAt = Date.now();

      // Settle: one primary behind the VIP, at the witness's epoch, protected by a synced standby.
      const deadline = healedAt + options.settleTimeoutMs;
      let settled = false;
      while (Date.now() < deadline) {
        if (standby) {
          const promoted = standby.select((e: LabEvent) => e.event === 'promoted', standbyFrom)[0];
          if (promoted) {
            const oldPrimary = primary;
            const newEpoch = Number(promoted.epoch);
            // Under load a standby may take over again before the pair settled: availability, not safety.
            if (record.failover) record.notes.push(`a second failover (to epoch ${newEpoch}) before the pair settled`);
            record.failover = true;
            primary = standby;
            primaryHost = standby.host as ServerHost;
            standby = null;
            epoch = newEpoch;
            const exit = await Promise.race([oldPrimary.exited, sleep(20_000).then(() => null)]);
            record.oldPrimaryExit = exit?.code ?? null;
            if (exit === null) record.problems.push(`the old primary (pid ${oldPrimary.pid}) did not stop within 20 s of epoch ${newEpoch}`);
            else if (exit.code !== FENCED_EXIT_CODE) record.problems.push(`the old primary exited with ${JSON.stringify(exit)}, not the fenced code ${FENCED_EXIT_CODE}`);
            continue;
          }
        }
        if (standby && !standby.running) standby = null;
        if (!standby && !primary.running) {
          // Nobody serves (both fenced: the old primary by the new epoch, the new one because
          // it could not confirm its epoch in time). Not a safety failure; an operator (or a
          // supervisor) starts a fresh primary, which claims the next epoch at the witness.
          const exit = await primary.exited;
          record.pairRestarted = true;
          record.notes.push(`no MCU left serving (the last primary exited with ${JSON.stringify(exit)}): a fresh pair was started`);
          primary = startMcu(primaryHost, 'primary');
          const up = await primary.waitForEvent('listening', { timeoutMs: Math.max(1000, deadline - Date.now()) }).catch(() => null);
          if (up) epoch = Number(up.epoch);
          continue;
        }
        if (!standby && primary.running) {
          // The old primary's host (or a standby that gave up) gets a fresh standby.
          standby = startMcu(other(primaryHost), 'standby');
          standbyFrom = 0;
          record.standbysStarted++;
          await standby.waitForEvent('standby-ready', { timeoutMs: Math.max(1000, deadline - Date.now()) }).catch(() => undefined);
          continue;
        }
        const status = (await labStatus(lab, secret, { timeoutMs: 2000 }).catch(() => null)) as StatusDoc | null;
        if (status && status.role === 'primary' && status.pid === primary.pid && status.protected === true) {
          const holders = await lab.vipHolders();
          const witnessEpoch = await labWitnessEpoch(lab).catch(() => null);
          if (holders.length === 1 && holders[0] === primaryHost && witnessEpoch === status.epoch) {
            settled = true;
            break;
          }
        }
        await sleep(200);
      }
      record.settleMs = Date.now() - healedAt;
      record.toEpoch = epoch;
      if (!settled) {
        const status = await labStatus(lab, secret, { timeoutMs: 2000 }).catch((err: unknown) => (err as Error).message);
        record.problems.push(`the pair did not serve again, protected, within ${options.settleTimeoutMs} ms of the heal: /status ${JSON.stringify(status)}, VIP on ${JSON.stringify(await lab.vipHolders())}`);
      }
      // A client whose connection dropped (a reconnect fallback) is replaced: its history stands.
      const alive: typeof clients = [];
      for (const c of clients) {
        if (c.proc.select((e: LabEvent) => e.event === 'disconnect').length > 0) {
          await retireClient(c);
          record.clientsReplaced++;
        } else alive.push(c);
      }
      clients = alive;
      if (settled) {
        while (clients.length < options.clients) {
          try {
            await startClient();
          } catch (err) {
            record.problems.push(`a replacement client could not join: ${(err as Error).message}`);
            settled = false;
            break;
          }
        }
      }
      records.push(record);
      problems.push(...record.problems.map((p) => `partition ${index} (${kind.name}): ${p}`));
      log(
        `partition ${index}/${options.partitions} ${kind.name.padEnd(36)} held ${holdMs} ms: ` +
          `${record.failover ? `failover ${record.fromEpoch} -> ${record.toEpoch}` : `epoch ${epoch} kept`}, settled in ${record.settleMs} ms` +
          `${record.notes.length ? `; ${record.notes.join('; ')}` : ''}${record.problems.length ? `; PROBLEMS: ${record.problems.join('; ')}` : ''}`,
      );
      if (!settled) break;
    }
    for (const c of clients) await retireClient(c);
    clients = [];
    verdict = checkHistory(histories, claimsOf(mcus));
    failed = problems.length > 0 || !verdict.ok;
  } finally {
    if (failed) {
      const files = group.writeLogs(`partitions-${process.pid}`);
      log(`logs: ${files.join(' ')}`);
    }
    for (const c of clients) await c.proc.close().catch(() => undefined);
    await group.closeAll();
    await lab.down();
  }
  const { log: _log, ...recorded } = options;
  return { options: recorded, records, verdict: verdict ?? checkHistory(histories, claimsOf(mcus)), problems, completed: records.length, durationMs: Date.now() - startedAt };
}

/** Every epoch each MCU process announced serving (`listening`, `promoted`), whenever it did: the run's own bookkeeping may miss one. */
function claimsOf(mcus: readonly LabProcess[]): EpochClaim[] {
  const claims: EpochClaim[] = [];
  for (const p of mcus) {
    const epochs = new Set(p.select((e: LabEvent) => (e.event === 'listening' || e.event === 'promoted') && typeof e.epoch === 'number').map((e) => Number(e.epoch)));
    for (const epoch of epochs) claims.push({ epoch, pid: p.pid, host: p.host, at: 0 });
  }
  return claims;
}

function other(host: ServerHost): ServerHost {
  return host === 'primary' ? 'standby' : 'primary';
}
