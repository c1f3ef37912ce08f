/**
 * Jepsen-style partitions in the namespace lab (issue 14 item 2): the MCU pair in takeover mode
 * with the witness (etcd in its own host), socket.io clients in the client host sending numbered
 * requests with acks all the time, and a rotation of network cuts between the roles (primary,
 * standby, witness, client) and their combinations, each held for a random while, then healed.
 * After every heal the run waits until the pair serves again as it should: one primary behind the
 * VIP, at the witness's epoch, protected by a synced standby (a fenced old primary's host gets a
 * fresh standby: scripts/lab/lab-pair.ts, shared with the soak). At the end scripts/lab/history-checker.ts judges the clients' histories.
 *
 * Used by scripts/bench/partitions.ts (the long run, JSON and plot) and by
 * test/integration/partitions.test.ts (one round of the rotation, in CI).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { seededRandom } from '../common/seeded-random.ts';
import { checkHistory, type ClientHistory, type HistoryVerdict } from './history-checker.ts';
import { LabPair, type PairRole } from './lab-pair.ts';
import { LabProcessGroup, type LabEvent, type LabProcess } from './lab-process.ts';
import { labAdminEnv } from './start-mcu.ts';
import { LabTopology, type LabHost } from './topology.ts';
import type { McuClientReport } from '../clients/takeover-mcu-client.ts';

const CLIENT = 'scripts/clients/takeover-mcu-client.ts';
const ROOM = 'partition-room';

/** One kind of partition: the links cut, between roles (mapped to hosts when it is applied). */
export interface PartitionKind {
  name: string;
  cuts: Array<[PairRole, PairRole]>;
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

export async function runPartitions(options: PartitionRunOptions): Promise<PartitionRunResult> {
  const log = options.log ?? ((): void => undefined);
  const random = seededRandom(options.seed);
  const startedAt = Date.now();
  await LabTopology.cleanupStale();
  const lab = new LabTopology();
  const group = new LabProcessGroup(lab);
  const secret = `partition-secret-${process.pid}-${options.seed}`;
  const records: PartitionRecord[] = [];
  const problems: string[] = [];
  const histories: ClientHistory[] = [];
  let pair: LabPair | null = null;
  let clients: Array<{ name: string; proc: LabProcess }> = [];
  let clientSerial = 0;
  let failed = true;
  let verdict: HistoryVerdict | null = null;
  try {
    await lab.up();
    await lab.startWitness();
    pair = await LabPair.start(lab, group, { secret, env: options.env });
    const p = pair;

    const startClient = async (): Promise<void> => {
      const name = `client-${++clientSerial}`;
      const proc = group.start('client', CLIENT, [`http://${lab.addresses.vip}:${lab.servicePort}`, ROOM, String(options.intervalMs)], labAdminEnv(secret));
      await proc.waitForEvent('connect', { timeoutMs: 20_000 });
      const started = await proc.request({ op: 'start' }, 15_000);
      if (started.ok !== true) throw new Error(`${name} could not join: ${JSON.stringify(started)}`);
      clients.push({ name, proc });
    };
    const retireClient = async (c: { name: string; proc: LabProcess }, lostWithPair = false): Promise<void> => {
      const report = (await c.proc.request({ op: 'stop' }, 15_000)) as unknown as McuClientReport;
      histories.push({ name: c.name, report, ...(lostWithPair ? { lostWithPair } : {}) });
      await c.proc.close();
    };
    for (let i = 0; i < options.clients; i++) await startClient();
    await sleep(500);

    for (let index = 1; index <= options.partitions; index++) {
      if (options.budgetMs !== undefined && Date.now() - startedAt > options.budgetMs) {
        log(`time budget of ${Math.round(options.budgetMs / 1000)} s spent after ${index - 1} partitions`);
        break;
      }
      const kind = PARTITION_ROTATION[(index - 1) % PARTITION_ROTATION.length]!;
      const holdMs = Math.round(options.holdMinMs + random() * (options.holdMaxMs - options.holdMinMs));
      const links = kind.cuts.map(([a, b]) => [p.hostOf(a), p.hostOf(b)] as [LabHost, LabHost]);
      const standbyFrom = p.standby?.mark() ?? 0;
      for (const [a, b] of links) await lab.cut(a, b);
      await sleep(holdMs);
      for (const [a, b] of links) await lab.heal(a, b);

      // Settle: one primary behind the VIP, at the witness's epoch, protected by a synced standby.
      const settle = await p.settle({ standbyFrom, timeoutMs: options.settleTimeoutMs, oldPrimaryEnd: 'fenced' });
      const record: PartitionRecord = {
        index,
        kind: kind.name,
        holdMs,
        fromEpoch: settle.fromEpoch,
        toEpoch: settle.toEpoch,
        failover: settle.failover,
        oldPrimaryExit: settle.oldPrimaryExit,
        settleMs: settle.settleMs,
        standbysStarted: settle.standbysStarted,
        clientsReplaced: 0,
        pairRestarted: settle.pairRestarted,
        notes: [...settle.notes, ...settle.takeoverFallbacks.map((f) => `not taken over: ${f}`)],
        problems: [...settle.problems],
      };
      let settled = settle.settled;
      // A client whose connection dropped (a reconnect fallback) is replaced: its history stands.
      const alive: typeof clients = [];
      for (const c of clients) {
        // After a pair restarted from nothing no MCU holds any client's connection: all replaced.
        if (settle.pairRestarted || c.proc.select((e: LabEvent) => e.event === 'disconnect').length > 0) {
          await retireClient(c, settle.pairRestarted);
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
      problems.push(...record.problems.map((x) => `partition ${index} (${kind.name}): ${x}`));
      log(
        `partition ${index}/${options.partitions} ${kind.name.padEnd(36)} held ${holdMs} ms: ` +
          `${record.failover ? `failover ${record.fromEpoch} -> ${record.toEpoch}` : `epoch ${record.toEpoch} kept`}, settled in ${record.settleMs} ms` +
          `${record.notes.length ? `; ${record.notes.join('; ')}` : ''}${record.problems.length ? `; PROBLEMS: ${record.problems.join('; ')}` : ''}`,
      );
      if (!settled) break;
    }
    for (const c of clients) await retireClient(c);
    clients = [];
    verdict = checkHistory(histories, p.claims);
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
  return { options: recorded, records, verdict: verdict ?? checkHistory(histories, pair?.claims ?? []), problems, completed: records.length, durationMs: Date.now() - startedAt };
}

