/**
 * The heartbeat fuzz targets (heartbeat-bed.ts): datagrams at the standby's monitor (from the
 * address it follows) and at the primary's beacon. A case passes when the receiver counted
 * exactly the datagrams it must reject, judged nothing (no verdict, ever), and still hears the
 * primary's beats. Each case ends with a barrier datagram longer than any fuzzed one: its
 * rejection (the reason names its length) comes after every datagram of the case was handled.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { FuzzTarget } from './fuzz-run.ts';
import { FUZZ_HEARTBEAT_EPOCH, FUZZ_HEARTBEAT_SECRET, type HeartbeatFuzzBed } from './heartbeat-bed.ts';
import { MAX_FUZZ_DATAGRAM, buildDatagram, datagramRecipe, type DatagramRecipe } from './heartbeat-datagrams.ts';
import type { FixtureLog } from './fixture-log.ts';

const WAIT_MS = 10_000;

const heartbeatCase = (): fc.Arbitrary<DatagramRecipe[]> => fc.array(datagramRecipe(), { minLength: 1, maxLength: 10 });

/** Rejection counts and verdicts of one receiver, kept across cases (a count that drifts shows in a later case too). */
class RejectionLedger {
  expected: number | null = null;
  barriers = 0;
  cases = 0;
  pid = 0;
}

/** Sends a case and its barrier; resolves with the receiver's total at the barrier, and what it should be. */
async function sendCase(
  receiver: FixtureLog,
  rejectedType: string,
  ledger: RejectionLedger,
  datagrams: Array<{ bytes: Buffer; rejects: boolean }>,
  send: (bytes: Buffer[]) => void,
): Promise<void> {
  if (ledger.pid !== receiver.fixture.pid) {
    // A new process: its count starts at zero.
    Object.assign(ledger, new RejectionLedger(), { pid: receiver.fixture.pid, expected: 0 });
  }
  const barrierLength = MAX_FUZZ_DATAGRAM + 1 + (ledger.barriers++ % 1000);
  const barrierReason = `length ${barrierLength},`;
  const mark = receiver.mark();
  send([...datagrams.map((d) => d.bytes), Buffer.alloc(barrierLength, 0x42)]);
  ledger.expected! += datagrams.filter((d) => d.rejects).length + 1;
  const atBarrier = await receiver.waitFor((m) => m.type === rejectedType && String(m.reason).includes(barrierReason), mark, WAIT_MS, `the rejection of the barrier (${barrierReason})`);
  assert.equal(atBarrier.total, ledger.expected, `rejected datagrams counted ${String(atBarrier.total)}, expected ${ledger.expected}`);
}

async function checkMonitorUndisturbed(bed: HeartbeatFuzzBed, ledger: RejectionLedger): Promise<void> {
  const monitor = bed.monitor;
  const verdicts = monitor.messages.filter((m) => m.type === 'dead');
  assert.deepEqual(verdicts, [], 'the monitor judged the primary dead');
  if (++ledger.cases % 20 !== 0) return;
  const stats = await monitor.ask({ cmd: 'stats' }, 'stats');
  assert.equal(stats.verdict, null);
  assert.ok(typeof stats.lastHeartbeatAt === 'number' && Number(stats.now) - stats.lastHeartbeatAt < 2000, `the monitor no longer hears the beacon: ${JSON.stringify(stats)}`);
  assert.ok(bed.primary.fixture.running, 'the primary exited');
}

export function heartbeatMonitorTarget(bed: HeartbeatFuzzBed): FuzzTarget<DatagramRecipe[]> {
  const ledger = new RejectionLedger();
  return {
    name: 'heartbeat-monitor',
    arbitrary: heartbeatCase(),
    before: () => bed.ensure(),
    afterFailure: () => bed.markDirty(),
    async run(recipes) {
      const built = recipes.map((r) => buildDatagram(r, FUZZ_HEARTBEAT_EPOCH, FUZZ_HEARTBEAT_SECRET));
      await sendCase(bed.monitor, 'rejected', ledger, built.map((b) => ({ bytes: b.bytes, rejects: b.monitorRejects })), (bytes) => bed.toMonitor(bytes));
      await checkMonitorUndisturbed(bed, ledger);
      const accepted = built.filter((b) => !b.monitorRejects).length;
      return accepted > 0 ? 'rejected, authentic beats taken' : 'all rejected';
    },
  };
}

export function heartbeatBeaconTarget(bed: HeartbeatFuzzBed): FuzzTarget<DatagramRecipe[]> {
  const ledger = new RejectionLedger();
  const monitorLedger = new RejectionLedger();
  return {
    name: 'heartbeat-beacon',
    arbitrary: heartbeatCase(),
    before: () => bed.ensure(),
    afterFailure: () => bed.markDirty(),
    async run(recipes) {
      const built = recipes.map((r) => buildDatagram(r, FUZZ_HEARTBEAT_EPOCH, FUZZ_HEARTBEAT_SECRET));
      await sendCase(bed.primary, 'beacon-rejected', ledger, built.map((b) => ({ bytes: b.bytes, rejects: b.beaconRejects })), (bytes) => void bed.toBeacon(bytes));
      // The standby's monitor, following the beacon, noticed nothing.
      await checkMonitorUndisturbed(bed, monitorLedger);
      const ignored = built.filter((b) => !b.beaconRejects).length;
      return ignored > 0 ? 'rejected, authentic ones taken' : 'all rejected';
    },
  };
}
