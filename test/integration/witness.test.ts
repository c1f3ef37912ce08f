/**
 * The witness that settles promotions (mcu/src/witness), against a real etcd (Debian's
 * etcd-server) started on free loopback ports with a data directory of its own, and real MCU
 * and standby processes on loopback (reconnect mode, no VIP):
 * - the compare-and-set of the epoch: of two contending standbys exactly one wins, once; a
 *   retried win is recognised; a second primary is refused while the first holds its lease;
 * - a primary fences itself (exit 4) when its lease cannot be renewed: etcd killed, or frozen
 *   (no answer), and at once when the witness holds a higher epoch; its standby then loses the
 *   compare-and-set and does not promote;
 * - kill -9 of the primary: the standby wins epoch 2 there and serves; with the witness
 *   unreachable it does not promote (state `waiting`, asking again), and it does once the witness
 *   answers again; when the primary beats again meanwhile, it gives up and follows it again;
 * - a member that cannot be reached is skipped for the next one.
 * Skipped when `etcd` is not installed (bash scripts/setup.sh installs etcd-server).
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { thisHost } from '../../mcu/src/core/host-commands.ts';
import { EtcdClient } from '../../mcu/src/witness/etcd-client.ts';
import { WitnessPrimaryExistsError, WitnessUnreachableError } from '../../mcu/src/witness/errors.ts';
import { FailoverStep } from '../../mcu/src/wire/failover-steps.ts';
import { newNonce, nodeIdentity, Witness, type EpochCas } from '../../mcu/src/witness/witness.ts';
import { FENCED_EXIT_CODE } from '../../mcu/src/takeover/fencing/fencing.ts';
import { EtcdServer } from '../../scripts/common/etcd.ts';
import { freePort } from '../../scripts/common/ports.ts';
import { startNode, type ManagedProcess } from '../../scripts/common/processes.ts';

const etcdMissing = (await thisHost.run(['etcd', '--version'], { check: false, timeoutMs: 10_000 }).catch(() => null))?.code === 0 ? null : 'etcd is not installed (apt-get install etcd-server, or bash scripts/setup.sh)';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function etcd(): Promise<EtcdServer> {
  const server = await EtcdServer.start();
  cleanups.push(() => server.close());
  return server;
}

function witnessOf(server: EtcdServer, cluster: string): Witness {
  return new Witness({ client: new EtcdClient({ endpoints: [server.endpoint], requestTimeoutMs: 2000 }), clusterName: cluster });
}

/** The first JSON log line (stderr) of `proc` whose `failover` field is `step`, now or later. */
function failoverStep(proc: ManagedProcess, step: string, count = 1, timeoutMs = 20_000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let seen = 0;
    const check = (line: string): boolean => {
      if (!line.startsWith('{')) return false;
      try {
        const record = JSON.parse(line) as Record<string, unknown>;
        if (record.failover === step && ++seen >= count) {
          done();
          resolve(record);
          return true;
        }
      } catch {
        // not a JSON log line
      }
      return false;
    };
    const onExit = (): void => {
      done();
      reject(new Error(`${proc.label} exited before logging ${step} x${count}; stderr tail:\n${proc.stderrTail}`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${proc.label} did not log ${step} x${count} within ${timeoutMs} ms; stderr tail:\n${proc.stderrTail}`));
    }, timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      proc.off('stderr', check);
      proc.off('exit', onExit);
    };
    for (const line of proc.stderr) if (check(line)) return;
    proc.on('stderr', check);
    proc.on('exit', onExit);
  });
}

interface Pair {
  primary: ManagedProcess;
  standby: ManagedProcess;
  url: string;
  standbyStatusUrl: string;
}

/** A primary and its standby on loopback, both with the witness, the standby ready. */
async function startPair(server: EtcdServer, cluster: string, extra: Record<string, string> = {}): Promise<Pair> {
  const port = await freePort();
  const adminPort = await freePort();
  const env = {
    PORT: String(port),
    HOST: '127.0.0.1',
    // /status is on the admin listener; a promoted standby takes over this port too.
    MCU_ADMIN_PORT: String(adminPort),
    MCU_REPLICATION_SECRET: `witness-test-secret-${process.pid}`,
    MCU_REPLICATION_PORT: String(await freePort()),
    MCU_WITNESS_ENDPOINTS: server.endpoint,
    MCU_WITNESS_CLUSTER: cluster,
    MCU_LOG_FORMAT: 'json',
    LOG_LEVEL: 'info',
    MCU_SPARE_PATHS: '0',
    ...extra,
  };
  const primary = startNode('mcu/src/main.ts', env);
  cleanups.push(() => primary.close());
  await primary.waitFor((e) => e.event === 'listening');
  const standby = startNode('standby/src/main.ts', { ...env, STANDBY_STATUS_PORT: '0' });
  cleanups.push(() => standby.close());
  const started = await standby.waitFor((e) => e.event === 'standby-started');
  await standby.waitFor((e) => e.event === 'standby-ready');
  return { primary, standby, url: `http://127.0.0.1:${adminPort}`, standbyStatusUrl: `http://127.0.0.1:${Number(started.statusPort)}` };
}

async function status(url: string): Promise<Record<string, unknown>> {
  return (await (await fetch(`${url}/status`, { signal: AbortSignal.timeout(5000) })).json()) as Record<string, unknown>;
}

describe('the witness (etcd) for promotion', { skip: etcdMissing ?? false }, () => {
  it('compare-and-set of the epoch: only the sync standby wins, once; a retried win counts; a primary clearing its sync standby and that standby promoting never both succeed; a second primary is refused while the first holds its lease', async (t) => {
    const server = await etcd();
    const cluster = `cas-${process.pid}`;
    const primary = witnessOf(server, cluster);
    const lease = await primary.client.leaseGrant(2);
    const claimed = await primary.claimFresh(nodeIdentity('primary'), lease.id);
    assert.equal(claimed.epoch, 1, 'the first primary of a cluster claims epoch 1');

    // A second fresh primary beside the live one: refused with a named error.
    const intruder = witnessOf(server, cluster);
    const intruderLease = await intruder.client.leaseGrant(2);
    await assert.rejects(intruder.claimFresh({ node: 'primary-1@elsewhere', pid: 1, host: 'elsewhere' }, intruderLease.id), (err: unknown) => err instanceof WitnessPrimaryExistsError && err.code === 'WITNESS_PRIMARY_EXISTS');

    // Only the standby the primary records as in sync may promote. Two standbys that followed
    // epoch 1 try at the same time, each on its own connection: the sync one wins, once.
    assert.equal(await primary.recordSyncStandby(1, 'standby-0@test'), 1);
    const contenders = [witnessOf(server, cluster), witnessOf(server, cluster)];
    const nonces = [newNonce(), newNonce()];
    const outcomes: EpochCas[] = await Promise.all(contenders.map((w, i) => w.compareAndSetEpoch(1, { node: `standby-${i}@test`, pid: i, host: 'test' }, nonces[i]!, `standby-${i}@test`)));
    assert.equal(outcomes[0]!.outcome, 'won', `the sync standby wins: ${JSON.stringify(outcomes)}`);
    const other = outcomes[1]!;
    assert.ok(other.outcome === 'lost' || other.outcome === 'not-sync', `the other one does not: ${JSON.stringify(other)}`);
    if (other.outcome === 'lost') assert.equal(other.holder?.node, 'standby-0@test', 'and is told who holds the epoch');
    if (other.outcome === 'not-sync') assert.equal(other.syncStandby?.standbyId, 'standby-0@test', 'and is told who is in sync');
    const view = await primary.read();
    assert.equal(view.epoch, 2);
    assert.equal(view.primary?.record.node, 'standby-0@test');
    assert.equal(view.primary?.leased, false, "the winner's record has no lease until its MCU attaches one");

    // The winner's retry (its answer lost) counts as won; the other's stays refused.
    assert.equal((await contenders[0]!.compareAndSetEpoch(1, { node: 'standby-0@test', pid: 0, host: 'test' }, nonces[0]!, 'standby-0@test')).outcome, 'won');
    assert.equal((await contenders[1]!.compareAndSetEpoch(1, { node: 'standby-1@test', pid: 1, host: 'test' }, nonces[1]!, 'standby-1@test')).outcome, 'lost');

    // A primary that lost its standby records "none in sync" while that standby tries to promote:
    // the witness orders them, exactly one succeeds, every time.
    let epoch = 2;
    const tally = { promoted: 0, cleared: 0 };
    for (let round = 0; round < 20; round++) {
      const holder = contenders[0]!;
      assert.equal(await holder.recordSyncStandby(epoch, 'standby-s@test'), epoch);
      const [held, cas] = await Promise.all([holder.recordSyncStandby(epoch, null), contenders[1]!.compareAndSetEpoch(epoch, { node: 'standby-s@test', pid: 2, host: 'test' }, newNonce(), 'standby-s@test')]);
      const cleared = held === epoch;
      assert.notEqual(cleared, cas.outcome === 'won', `round ${round}: exactly one of the clear (held ${held}) and the compare-and-set (${cas.outcome}) succeeds`);
      if (cleared) {
        assert.equal(cas.outcome, 'not-sync');
        tally.cleared++;
      } else {
        assert.equal(held, epoch + 1, 'the primary is told the epoch moved on: it fences');
        tally.promoted++;
        epoch++;
      }
    }
    t.diagnostic(`clear vs promotion, 20 races: ${tally.cleared} cleared first, ${tally.promoted} promoted first`);

    // Once the old primary's lease is gone, a fresh primary may claim the next epoch.
    await primary.client.leaseRevoke(lease.id);
    assert.equal((await intruder.claimFresh({ node: 'primary-1@elsewhere', pid: 1, host: 'elsewhere' }, intruderLease.id)).epoch, epoch + 1);
  });

  it('a member that cannot be reached is skipped for the next one, which is then asked first; none: WITNESS_UNREACHABLE naming each', async () => {
    const server = await etcd();
    const dead = `http://127.0.0.1:${await freePort()}`;
    const client = new EtcdClient({ endpoints: [dead, server.endpoint], requestTimeoutMs: 2000 });
    assert.equal(await client.range('/mcu/none/epoch'), null);
    assert.equal(client.endpoint, server.endpoint, 'the member that answered is asked first from now on');
    assert.equal(client.lastTiming?.endpoint, server.endpoint);
    const nobody = new EtcdClient({ endpoints: [dead, `http://127.0.0.1:${await freePort()}`], requestTimeoutMs: 500 });
    await assert.rejects(nobody.range('/mcu/none/epoch'), (err: unknown) => err instanceof WitnessUnreachableError && err.code === 'WITNESS_UNREACHABLE' && err.failures.length === 2 && /ECONNREFUSED/.test(err.message));
  });

  for (const fault of ['killed', 'frozen'] as const) {
    it(`a primary whose witness is ${fault} fences itself once its lease expires (exit ${FENCED_EXIT_CODE})`, async (t) => {
      const server = await etcd();
      const port = await freePort();
      const adminPort = await freePort();
      const primary = startNode('mcu/src/main.ts', { PORT: String(port), MCU_ADMIN_PORT: String(adminPort), HOST: '127.0.0.1', MCU_WITNESS_ENDPOINTS: server.endpoint, MCU_LOG_FORMAT: 'json', LOG_LEVEL: 'info' });
      cleanups.push(() => primary.close());
      const listening = await primary.waitFor((e) => e.event === 'listening');
      assert.equal(listening.epoch, 1, 'the primary serves the epoch it claimed');
      const before = (await status(`http://127.0.0.1:${adminPort}`)).witness as { state: string; epoch: number; ttlMs: number };
      assert.equal(before.state, 'holding');
      assert.equal(before.epoch, 1);

      const faultAt = Date.now();
      if (fault === 'killed') await server.kill();
      else server.freeze();
      const expired = await failoverStep(primary, FailoverStep.WitnessLeaseExpired);
      const fenced = await primary.waitFor((e) => e.event === 'fenced');
      const exit = await primary.exited;
      assert.equal(exit.code, FENCED_EXIT_CODE, `exit: ${JSON.stringify(exit)}; stderr:\n${primary.stderrTail}`);
      assert.match(String(fenced.reason), /has not confirmed epoch 1/);
      t.diagnostic(`witness ${fault}: fenced ${Number(fenced.fencedAt) - faultAt} ms later (lease ${before.ttlMs} ms; ${String(expired.sinceConfirmedMs)} ms since the last confirmation)`);
      server.thaw();
    });
  }

  it('a primary that finds a higher epoch at the witness fences itself; its standby then loses the compare-and-set and does not promote', async (t) => {
    const server = await etcd();
    const cluster = `superseded-${process.pid}`;
    const { primary, standby } = await startPair(server, cluster);
    // Another node wins epoch 2 (as a standby elsewhere would).
    const other = witnessOf(server, cluster);
    const movedAt = Date.now();
    // (It must be the sync standby there, as far as the witness knows.)
    assert.equal(await other.recordSyncStandby(1, 'standby-elsewhere'), 1);
    const cas = await other.compareAndSetEpoch(1, { node: 'standby-elsewhere', pid: 1, host: 'elsewhere' }, newNonce(), 'standby-elsewhere');
    assert.equal(cas.outcome, 'won');
    await failoverStep(primary, FailoverStep.WitnessSuperseded);
    const fenced = await primary.waitFor((e) => e.event === 'fenced');
    assert.equal((await primary.exited).code, FENCED_EXIT_CODE);
    // The standby judges the primary dead, asks the witness for epoch 2 and is refused.
    const lost = await failoverStep(standby, FailoverStep.WitnessLost);
    assert.equal(lost.witnessEpoch, 2);
    await standby.waitFor((e) => e.event === 'standby-failed');
    assert.equal(standby.events.some((e) => e.event === 'promoted'), false, 'the standby must not promote');
    t.diagnostic(`primary fenced ${Number(fenced.fencedAt) - movedAt} ms after the epoch moved`);
  });

  it('kill -9 of the primary: the standby wins epoch 2 at the witness and serves it', async (t) => {
    const server = await etcd();
    const cluster = `failover-${process.pid}`;
    const { primary, standby, url } = await startPair(server, cluster);
    await primary.kill('SIGKILL');
    const won = await failoverStep(standby, FailoverStep.WitnessWon);
    const promoted = await standby.waitFor((e) => e.event === 'promoted');
    assert.equal(promoted.epoch, 2);
    const witness = witnessOf(server, cluster);
    assert.equal(await witness.epoch(), 2, 'the epoch advanced in etcd');
    const doc = await status(url);
    assert.equal(doc.epoch, 2);
    assert.equal((doc.witness as { state: string; epoch: number }).state, 'holding');
    // The promoted MCU attached its record to its own lease.
    const view = await witness.read();
    assert.equal(view.primary?.record.epoch, 2);
    t.diagnostic(`compare-and-set at the promotion: ${String(won.tookMs)} ms (budget 5 ms), ${String(won.sinceDetectedMs)} ms after the verdict`);
  });

  it('a standby whose witness is unreachable does not promote (waiting, asking again); it does once the witness answers', async (t) => {
    const server = await etcd();
    const cluster = `unreachable-${process.pid}`;
    const { primary, standby, standbyStatusUrl } = await startPair(server, cluster, { MCU_WITNESS_RETRY_MS: '100' });
    server.freeze();
    await primary.kill('SIGKILL');
    await standby.waitFor((e) => e.event === 'standby-waiting');
    // Three attempts, each unanswered: still no promotion.
    await failoverStep(standby, FailoverStep.WitnessUnreachable, 3);
    assert.equal(standby.events.some((e) => e.event === 'promoted'), false, 'no promotion while the witness does not answer');
    assert.equal((await status(standbyStatusUrl)).standbyState, 'waiting');
    const thawedAt = Date.now();
    server.thaw();
    const promoted = await standby.waitFor((e) => e.event === 'promoted');
    assert.equal(promoted.epoch, 2);
    assert.equal(await witnessOf(server, cluster).epoch(), 2);
    t.diagnostic(`promoted ${Date.now() - thawedAt} ms after the witness answered again`);
  });

  it('a standby waiting for the witness gives up when the primary beats again, and follows it again', async () => {
    const server = await etcd();
    const cluster = `alive-${process.pid}`;
    // A long lease: the primary must outlive the witness's absence here. The witness is gone
    // (killed, not frozen: a frozen one would apply the queued compare-and-set once thawed).
    const { primary, standby, url, standbyStatusUrl } = await startPair(server, cluster, { MCU_WITNESS_RETRY_MS: '100', MCU_WITNESS_LEASE_TTL_MS: '20000' });
    await server.kill();
    const from = standby.mark();
    primary.child.kill('SIGSTOP');
    try {
      await standby.waitFor((e) => e.event === 'standby-waiting');
    } finally {
      primary.child.kill('SIGCONT');
    }
    await failoverStep(standby, FailoverStep.PromotionAbandoned);
    await standby.waitFor((e) => e.event === 'standby-ready' && standby.events.indexOf(e) >= from);
    assert.equal(standby.events.some((e) => e.event === 'promoted'), false, 'no promotion');
    assert.equal((await status(standbyStatusUrl)).standbyState, 'ready');
    const doc = await status(url);
    assert.equal(doc.role, 'primary');
    assert.equal(doc.epoch, 1);
  });
});
