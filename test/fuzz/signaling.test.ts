/**
 * Fuzzing the signaling endpoint of a real MCU process (scripts/fuzz/signaling-*.ts): malformed
 * raw WebSocket frames, engine.io packets and socket.io packets, FUZZ_RUNS cases each (default
 * 1000), each on a fresh connection beside an honest participant. After every case the MCU
 * runs (never restarted), answered or dropped the fuzzer (a drop is logged), logged no error,
 * and the honest participant is still joined, acknowledged in order, its room unchanged.
 * A failure prints its seed and path: FUZZ_SEED=... FUZZ_PATH=... replays that case.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fuzzSettingsFromEnv, runFuzz, type FuzzTarget } from '../../scripts/fuzz/fuzz-run.ts';
import { SignalingFuzzBed } from '../../scripts/fuzz/signaling-bed.ts';
import { engineIoPacketsTarget, socketIoPacketsTarget, webSocketFramesTarget } from '../../scripts/fuzz/signaling-targets.ts';

const settings = fuzzSettingsFromEnv();
const bed = new SignalingFuzzBed();

async function fuzz<T>(target: FuzzTarget<T>): Promise<void> {
  const report = await runFuzz(target, settings, `node --import tsx --test --test-name-pattern="${target.name}" test/fuzz/signaling.test.ts`);
  console.log(`${report.target}: ${report.executions} cases in ${(report.ms / 1000).toFixed(1)} s, ${JSON.stringify(report.outcomes)}; MCU refusals so far ${JSON.stringify(await bed.refusals().catch(() => ({})))}`);
  assert.equal(report.failed, false, report.failure ?? '');
  assert.equal(bed.restarts, 0, 'the MCU process died during the run');
  await bed.check({ full: true });
}

describe(`signaling fuzzing against a real MCU (${settings.runs} cases per target)`, () => {
  before(() => bed.start());
  after(() => bed.close());

  it('websocket-frames: raw frames with bad opcodes, lengths, masks, fragmentation, UTF-8', () => fuzz(webSocketFramesTarget(bed)));
  it('engine.io-packets: every packet type, unknown types, binary out of place', () => fuzz(engineIoPacketsTarget(bed)));
  it('socket.io-packets: malformed packets and payloads, forged resumes, broken SDP after a join', () => fuzz(socketIoPacketsTarget(bed)));
});
