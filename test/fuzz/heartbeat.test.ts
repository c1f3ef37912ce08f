/**
 * Fuzzing the heartbeat datagrams (scripts/fuzz/heartbeat-*.ts), FUZZ_RUNS cases each (default
 * 1000): noise, bad MACs, wrong lengths and magic, unknown kinds, subscriptions and stale beats,
 * at a real standby-side HeartbeatMonitor process (from the address it follows) and at a real
 * primary's HeartbeatBeacon. Each counts exactly what it must reject, no verdict ever comes, and
 * the monitor keeps hearing the beats.
 * A failure prints its seed and path: FUZZ_SEED=... FUZZ_PATH=... replays that case.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fuzzSettingsFromEnv, runFuzz, type FuzzTarget } from '../../scripts/fuzz/fuzz-run.ts';
import { HeartbeatFuzzBed } from '../../scripts/fuzz/heartbeat-bed.ts';
import { heartbeatBeaconTarget, heartbeatMonitorTarget } from '../../scripts/fuzz/heartbeat-targets.ts';

const settings = fuzzSettingsFromEnv();
const bed = new HeartbeatFuzzBed();

async function fuzz<T>(target: FuzzTarget<T>): Promise<void> {
  const report = await runFuzz(target, settings, `node --import tsx --test --test-name-pattern="${target.name}" test/fuzz/heartbeat.test.ts`);
  console.log(`${report.target}: ${report.executions} cases in ${(report.ms / 1000).toFixed(1)} s, ${JSON.stringify(report.outcomes)}`);
  assert.equal(report.failed, false, report.failure ?? '');
  assert.equal(bed.restarts, 0, 'a process died during the run');
}

describe(`heartbeat fuzzing against a real beacon and monitor (${settings.runs} cases per target)`, () => {
  before(() => bed.start());
  after(() => bed.close());

  it('heartbeat-monitor: datagrams at the standby, from the address it follows', () => fuzz(heartbeatMonitorTarget(bed)));
  it("heartbeat-beacon: datagrams at the primary's beacon", () => fuzz(heartbeatBeaconTarget(bed)));
});
