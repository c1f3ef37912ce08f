/**
 * What the replication fuzz targets run against: a real primary process (ReplicationServer over
 * a SessionState, scripts/fixtures/replication-primary.ts), a real standby process
 * (ReplicationClient + CheckpointStore, scripts/fixtures/checkpoint-standby.ts) connected to it
 * through a ReplicationProxy that can inject frames, and the checks: both processes alive, the
 * standby's checkpoint equal to the primary's state, of the primary's epoch.
 */
import assert from 'node:assert/strict';
import { canonicalSnapshot } from '../../mcu/src/replication/checkpoint-store.ts';
import type { SessionSnapshot } from '../../mcu/src/conference/session-state.ts';
import { FixtureProcess } from '../common/child-process.ts';
import { FixtureLog } from './fixture-log.ts';
import { ReplicationProxy } from './replication-proxy.ts';

export const FUZZ_REPLICATION_SECRET = 'fuzz-replication-secret-0c3e9a71';
/** The primary's epoch: high enough for stale epochs below it. */
export const FUZZ_PRIMARY_EPOCH = 20;
/** The standby gives up on a frame whose bytes stop coming after this long (a forged length). */
export const FUZZ_FRAME_TIMEOUT_MS = 150;

function findLastIndex<T>(items: readonly T[], predicate: (item: T) => boolean): number {
  for (let i = items.length - 1; i >= 0; i--) if (predicate(items[i]!)) return i;
  return -1;
}

export class ReplicationFuzzBed {
  #primary: FixtureLog | null = null;
  #standby: FixtureLog | null = null;
  #proxy: ReplicationProxy | null = null;
  #primaryPort = 0;
  /** Times the processes were replaced because one had died (0 unless a case crashed one). */
  restarts = 0;
  #dirty = false;

  /** After a failed case: the next ensure() starts everything afresh. */
  markDirty(): void {
    this.#dirty = true;
  }

  get primary(): FixtureLog {
    return this.#need(this.#primary);
  }
  get standby(): FixtureLog {
    return this.#need(this.#standby);
  }
  get proxy(): ReplicationProxy {
    return this.#need(this.#proxy);
  }
  /** The primary's replication port (for peers that talk to it directly). */
  get primaryPort(): number {
    return this.#primaryPort;
  }

  #need<T>(v: T | null): T {
    if (v === null) throw new Error('ReplicationFuzzBed: start() first');
    return v;
  }

  async start(): Promise<void> {
    const env = { REPL_SECRET: FUZZ_REPLICATION_SECRET, LOG_LEVEL: 'warn', NODE_ENV: 'test' };
    const primary = new FixtureLog(new FixtureProcess('scripts/fixtures/replication-primary.ts', { ...env, REPL_EPOCH: String(FUZZ_PRIMARY_EPOCH), REPL_SEED: '7' }));
    this.#primary = primary;
    this.#primaryPort = Number((await primary.waitFor((m) => m.type === 'listening', 0, 20_000, '"listening"')).port);
    this.#proxy = await ReplicationProxy.listen(this.#primaryPort, FUZZ_REPLICATION_SECRET);
    const standby = new FixtureLog(
      new FixtureProcess('scripts/fixtures/checkpoint-standby.ts', { ...env, REPL_PORT: String(this.#proxy.port), REPL_FRAME_TIMEOUT_MS: String(FUZZ_FRAME_TIMEOUT_MS) }),
    );
    this.#standby = standby;
    await standby.waitFor((m) => m.type === 'synced', 0, 20_000, '"synced"');
  }

  /** Before a case: both processes alive and the standby synced through the proxy (anything dead is replaced, and counted). */
  async ensure(): Promise<void> {
    const running = this.#primary !== null && this.#standby !== null && this.#primary.fixture.running && this.#standby.fixture.running;
    if (!running || this.#dirty) {
      if (this.#primary && !running) this.restarts++;
      this.#dirty = false;
      await this.close();
      await this.start();
    }
    const standby = this.standby;
    const lastState = findLastIndex(standby.messages, (m) => m.type === 'state');
    const synced = lastState < 0 || standby.messages[lastState]!.to === 'synced';
    if (!synced || this.proxy.stream === null) await standby.waitFor((m) => m.type === 'synced', Math.max(0, lastState), 10_000, '"synced"');
  }

  /**
   * The standby's checkpoint equals the primary's state, at the primary's epoch: after `churn`
   * more changes on the primary, so replication is shown to go on.
   */
  async checkCheckpoint(churn = 0): Promise<void> {
    if (churn > 0) await this.primary.ask({ cmd: 'churn', count: churn }, 'churned');
    const { state, stats } = await this.primary.ask({ cmd: 'snapshot' }, 'snapshot');
    const lastSentSeq = (stats as { lastSentSeq: number }).lastSentSeq;
    await this.standby.ask({ cmd: 'wait-seq', seq: lastSentSeq }, 'seq-reached');
    const checkpoint = await this.standby.ask({ cmd: 'checkpoint' }, 'checkpoint');
    assert.equal(checkpoint.clientState, 'synced');
    assert.deepEqual(canonicalSnapshot(checkpoint.state as SessionSnapshot), canonicalSnapshot(state as SessionSnapshot), "the standby's checkpoint differs from the primary's state");
    assert.equal(checkpoint.epoch, FUZZ_PRIMARY_EPOCH, 'the checkpoint is not at the primary epoch');
    assert.equal(checkpoint.clientEpoch, FUZZ_PRIMARY_EPOCH, 'the standby follows another epoch than the primary');
  }

  async close(): Promise<void> {
    const standby = this.#standby;
    const primary = this.#primary;
    const proxy = this.#proxy;
    this.#standby = this.#primary = null;
    this.#proxy = null;
    await standby?.fixture.close();
    await proxy?.close();
    await primary?.fixture.close();
  }
}
