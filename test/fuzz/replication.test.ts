/**
 * Fuzzing the replication channel between a real primary process and a real standby process
 * (scripts/fuzz/replication-*.ts), FUZZ_RUNS cases each (default 1000):
 * - frames injected into the primary -> standby stream by a proxy (a man in the middle holding the
 *   secret): bad GCM tags, and good tags on
 *   malformed bodies, huge lengths, stale epochs, out-of-order seqs, bad headers, changes that
 *   do not fit. The standby refuses each with its named error (or resyncs), logs it, syncs
 *   again and holds the primary's state at the primary's epoch;
 * - peers sending the same to the primary's replication port: refused and logged, the real
 *   standby undisturbed, the state unchanged.
 * A failure prints its seed and path: FUZZ_SEED=... FUZZ_PATH=... replays that case.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fuzzSettingsFromEnv, runFuzz, type FuzzTarget } from '../../scripts/fuzz/fuzz-run.ts';
import { ReplicationFuzzBed } from '../../scripts/fuzz/replication-bed.ts';
import { primaryListenerTarget, standbyStreamTarget } from '../../scripts/fuzz/replication-targets.ts';

const settings = fuzzSettingsFromEnv();
const bed = new ReplicationFuzzBed();

async function fuzz<T>(target: FuzzTarget<T>): Promise<void> {
  const report = await runFuzz(target, settings, `node --import tsx --test --test-name-pattern="${target.name}" test/fuzz/replication.test.ts`);
  console.log(`${report.target}: ${report.executions} cases in ${(report.ms / 1000).toFixed(1)} s, ${JSON.stringify(report.outcomes)}`);
  assert.equal(report.failed, false, report.failure ?? '');
  assert.equal(bed.restarts, 0, 'a process died during the run');
  await bed.ensure();
  await bed.checkCheckpoint(3);
}

describe(`replication fuzzing between a real primary and standby (${settings.runs} cases per target)`, () => {
  before(() => bed.start());
  after(() => bed.close());

  it('replication-standby: frames injected into the primary -> standby stream', () => fuzz(standbyStreamTarget(bed)));
  it("replication-primary: malformed frames at the primary's replication port", () => fuzz(primaryListenerTarget(bed)));
});
