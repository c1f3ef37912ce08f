/** The partition run's checker (scripts/lab/history-checker.ts) on hand-made histories. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkHistory, type ClientHistory, type EpochClaim } from '../../scripts/lab/history-checker.ts';
import type { EpochSpan, McuClientReport } from '../../scripts/clients/takeover-mcu-client.ts';

function report(epochs: EpochSpan[], extra: Partial<McuClientReport> = {}): McuClientReport {
  const acked = epochs.reduce((n, e) => n + e.acks, 0);
  return {
    socketId: 's',
    engineId: 'e',
    transport: 'websocket',
    localPort: 1,
    sent: acked,
    acked,
    missing: [],
    duplicates: 0,
    outOfOrder: 0,
    failedAcks: [],
    maxGapMs: 0,
    maxGapAfterAck: 0,
    connects: 1,
    disconnects: 0,
    disconnectReasons: [],
    rosters: acked,
    rosterBreaks: 0,
    signalingErrors: [],
    mediaStatus: [],
    offers: 0,
    epochs,
    epochRegressions: 0,
    ...extra,
  };
}

const claims: EpochClaim[] = [
  { epoch: 1, pid: 10, host: 'primary', at: 0 },
  { epoch: 2, pid: 20, host: 'standby', at: 1000 },
];

describe('partition history checker', () => {
  it('accepts clean handovers and reports their gaps', () => {
    const clients: ClientHistory[] = [
      { name: 'a', report: report([{ epoch: 1, acks: 10, firstAckAt: 0, lastAckAt: 900, firstServedAt: 0, lastServedAt: 900 }, { epoch: 2, acks: 5, firstAckAt: 1100, lastAckAt: 1500, firstServedAt: 1100, lastServedAt: 1500 }]) },
      { name: 'b', report: report([{ epoch: 1, acks: 10, firstAckAt: 5, lastAckAt: 950, firstServedAt: 5, lastServedAt: 950 }, { epoch: 2, acks: 5, firstAckAt: 1050, lastAckAt: 1600, firstServedAt: 1050, lastServedAt: 1600 }]) },
    ];
    const v = checkHistory(clients, claims);
    assert.deepEqual(v.violations, []);
    assert.equal(v.ok, true);
    assert.equal(v.acks, 30);
    assert.deepEqual(v.handovers, [{ from: 1, to: 2, gapMs: 100 }]);
  });

  it('finds an old primary answering one client after the new one answered another (split brain)', () => {
    const clients: ClientHistory[] = [
      { name: 'a', report: report([{ epoch: 1, acks: 10, firstAckAt: 0, lastAckAt: 1200, firstServedAt: 0, lastServedAt: 1200 }]) },
      { name: 'b', report: report([{ epoch: 2, acks: 5, firstAckAt: 1100, lastAckAt: 1600, firstServedAt: 1100, lastServedAt: 1600 }]) },
    ];
    const v = checkHistory(clients, claims);
    assert.equal(v.ok, false);
    assert.match(v.violations.join('\n'), /split brain: epoch 1 still answered a 100\.0 ms after epoch 2 answered b/);
  });

  it('judges by when an ack was produced, not when it arrived (a takeover resends the old primary\'s committed output)', () => {
    const clients: ClientHistory[] = [
      { name: 'a', report: report([{ epoch: 1, acks: 10, firstAckAt: 0, lastAckAt: 1300, firstServedAt: 0, lastServedAt: 990 }]) },
      { name: 'b', report: report([{ epoch: 2, acks: 5, firstAckAt: 1100, lastAckAt: 1600, firstServedAt: 1095, lastServedAt: 1600 }]) },
    ];
    const v = checkHistory(clients, claims);
    assert.deepEqual(v.violations, []);
    assert.deepEqual(v.handovers, [{ from: 1, to: 2, gapMs: 105 }]);
  });

  it('finds two processes claiming one epoch, and acks from an epoch nobody announced', () => {
    const v = checkHistory([{ name: 'a', report: report([{ epoch: 3, acks: 1, firstAckAt: 0, lastAckAt: 0, firstServedAt: 0, lastServedAt: 0 }]) }], [...claims, { epoch: 2, pid: 30, host: 'primary', at: 1001 }]);
    assert.match(v.violations.join('\n'), /epoch 2 claimed by 2 processes/);
    assert.match(v.violations.join('\n'), /acks from epoch 3, which no server announced/);
  });

  it('flags lost, repeated, reordered and refused requests, but counts losses with a dropped connection apart', () => {
    const span = [{ epoch: 1, acks: 3, firstAckAt: 0, lastAckAt: 10, firstServedAt: 0, lastServedAt: 10 }];
    const bad = checkHistory([{ name: 'a', report: report(span, { duplicates: 1, outOfOrder: 2, failedAcks: [{ n: 4, error: 'x' }], missing: [7], rosterBreaks: 1, epochRegressions: 1 }) }], claims);
    assert.equal(bad.violations.length, 6, bad.violations.join('\n'));
    const dropped = checkHistory([{ name: 'a', report: report(span, { missing: [7, 8], disconnects: 1 }) }], claims);
    assert.equal(dropped.ok, true);
    assert.equal(dropped.lostWithDisconnect, 2);
    // A connection that went with a pair restarted from nothing, its client not yet aware.
    const withPair = checkHistory([{ name: 'a', report: report(span, { missing: [7, 8, 9] }), lostWithPair: true }], claims);
    assert.equal(withPair.ok, true, withPair.violations.join('\n'));
    assert.equal(withPair.lostWithDisconnect, 3);
  });
});
