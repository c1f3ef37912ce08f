/** Checks on the stock socket.io client fixture's report after takeovers (scripts/clients/takeover-mcu-client.ts). */
import assert from 'node:assert/strict';
import type { McuClientReport } from '../../scripts/clients/takeover-mcu-client.ts';

/** One line for the test's diagnostics: counts, the longest ack gap, disconnects. */
export function describeClientReport(report: McuClientReport): string {
  return (
    `client sent ${report.sent}, acked ${report.acked}, missing ${report.missing.length}, dup ${report.duplicates}, ` +
    `out of order ${report.outOfOrder}, failed ${report.failedAcks.length}, max ack gap ${report.maxGapMs.toFixed(1)} ms, ` +
    `disconnects ${report.disconnects} (${report.disconnectReasons.join(',')})`
  );
}

/**
 * The client never noticed: one connection (same local port, socket.io and engine.io ids as at
 * `connected`), no disconnect, every request acknowledged exactly once, in order, and none refused.
 */
export function assertClientSurvivedTakeover(report: McuClientReport, connected: Readonly<Record<string, unknown>>): void {
  assert.equal(report.disconnects, 0, `client saw disconnect(s): ${report.disconnectReasons.join(', ')}`);
  assert.equal(report.connects, 1, 'client connected more than once');
  assert.equal(report.localPort, connected.localPort, 'local TCP port changed');
  assert.equal(report.socketId, connected.socketId, 'socket.io id changed');
  assert.equal(report.engineId, connected.engineId, 'engine.io id changed');
  assert.deepEqual(report.missing, [], 'acks never received');
  assert.equal(report.duplicates, 0, 'acks received twice');
  assert.equal(report.outOfOrder, 0, 'acks out of order');
  assert.equal(report.acked, report.sent, 'not every request was acknowledged');
  assert.deepEqual(report.failedAcks, [], 'requests refused');
}
