/**
 * The checker of a partition run (scripts/lab/partition-run.ts; issue 14 item 2), Jepsen style:
 * it judges only what was observed — the clients' request/ack histories and the servers' own
 * announcements — never what the servers believed.
 *
 * - **One primary at any moment**: every ack names the epoch of the MCU that answered and when
 *   it answered (the lab's hosts share one clock). Over all clients, the last ack epoch e
 *   produced must come before the first ack any later epoch produced: an older primary
 *   answering after a newer one served is a split brain. (Arrival order is not the test: a
 *   takeover delivers the output the old primary had committed from the output log, after the
 *   new primary answered others.) Each epoch is claimed by one process only.
 * - **Every acknowledged request answered once and in order**: per client no duplicate, no ack
 *   out of order, no refused request, no epoch going backwards, no roster push lost or repeated
 *   (the fixture checks the roster against each ack). A request still unanswered at the end is a
 *   violation unless that client's connection dropped (a reconnect fallback: counted apart) or
 *   went with a pair restarted from nothing (`lostWithPair`).
 */
import type { McuClientReport } from '../clients/takeover-mcu-client.ts';

export interface ClientHistory {
  name: string;
  report: McuClientReport;
  /**
   * Its connection went with a pair that had to be started afresh (no MCU left serving, so none
   * kept the connection's state): dead though the client may not have noticed yet (engine.io's
   * ping timeout). Its unanswered requests count as lost with a dropped connection.
   */
  lostWithPair?: boolean;
}

/** A server process's claim of an epoch (its `promoted` or first `listening` line). */
export interface EpochClaim {
  epoch: number;
  pid: number;
  host: string;
  at: number;
}

export interface HistoryVerdict {
  ok: boolean;
  violations: string[];
  /** Acks checked over all clients. */
  acks: number;
  epochs: number[];
  /** Requests lost with a dropped connection (not a violation; a reconnect fallback). */
  lostWithDisconnect: number;
  disconnects: number;
  /** Per pair of consecutive epochs: the gap between the old primary's last answer and the new one's first (negative: overlap). */
  handovers: Array<{ from: number; to: number; gapMs: number }>;
}

export function checkHistory(clients: readonly ClientHistory[], claims: readonly EpochClaim[]): HistoryVerdict {
  const violations: string[] = [];
  let acks = 0;
  let lostWithDisconnect = 0;
  let disconnects = 0;
  const spans = new Map<number, { first: number; last: number; firstBy: string; lastBy: string }>();
  for (const { name, report, lostWithPair } of clients) {
    acks += report.acked;
    disconnects += report.disconnects;
    if (report.duplicates > 0) violations.push(`${name}: ${report.duplicates} request(s) acknowledged twice`);
    if (report.outOfOrder > 0) violations.push(`${name}: ${report.outOfOrder} ack(s) out of order`);
    if (report.failedAcks.length > 0) violations.push(`${name}: ${report.failedAcks.length} request(s) refused, first: ${JSON.stringify(report.failedAcks[0])}`);
    if (report.epochRegressions > 0) violations.push(`${name}: ${report.epochRegressions} ack(s) from an older epoch after a newer one`);
    if (report.rosterBreaks > 0) violations.push(`${name}: ${report.rosterBreaks} roster push(es) lost, repeated or reordered`);
    if (report.missing.length > 0) {
      if (report.disconnects > 0 || lostWithPair === true) lostWithDisconnect += report.missing.length;
      else violations.push(`${name}: ${report.missing.length} request(s) never answered on a connection that stayed up (first #${report.missing[0]})`);
    }
    for (const span of report.epochs) {
      const seen = spans.get(span.epoch);
      if (!seen) spans.set(span.epoch, { first: span.firstServedAt, last: span.lastServedAt, firstBy: name, lastBy: name });
      else {
        if (span.firstServedAt < seen.first) Object.assign(seen, { first: span.firstServedAt, firstBy: name });
        if (span.lastServedAt > seen.last) Object.assign(seen, { last: span.lastServedAt, lastBy: name });
      }
    }
  }
  const epochs = [...spans.keys()].sort((a, b) => a - b);
  const handovers: HistoryVerdict['handovers'] = [];
  for (let i = 1; i < epochs.length; i++) {
    const from = epochs[i - 1]!;
    const to = epochs[i]!;
    const old = spans.get(from)!;
    const next = spans.get(to)!;
    const gapMs = next.first - old.last;
    handovers.push({ from, to, gapMs });
    if (gapMs <= 0) {
      violations.push(
        `split brain: epoch ${from} still answered ${old.lastBy} ${(-gapMs).toFixed(1)} ms after epoch ${to} answered ${next.firstBy} ` +
          `(${new Date(old.last).toISOString()} vs ${new Date(next.first).toISOString()})`,
      );
    }
    // An older epoch must not answer after any later one either (not only the next).
    for (let j = i + 1; j < epochs.length; j++) {
      const later = spans.get(epochs[j]!)!;
      if (old.last >= later.first) violations.push(`split brain: epoch ${from} answered after epoch ${epochs[j]} had answered`);
    }
  }
  const byEpoch = new Map<number, EpochClaim[]>();
  for (const claim of claims) byEpoch.set(claim.epoch, [...(byEpoch.get(claim.epoch) ?? []), claim]);
  for (const [epoch, list] of byEpoch) {
    const pids = new Set(list.map((c) => c.pid));
    if (pids.size > 1) violations.push(`epoch ${epoch} claimed by ${pids.size} processes: ${list.map((c) => `pid ${c.pid} on ${c.host}`).join(', ')}`);
  }
  for (const epoch of epochs) {
    if (claims.length > 0 && !byEpoch.has(epoch)) violations.push(`acks from epoch ${epoch}, which no server announced`);
  }
  return { ok: violations.length === 0, violations, acks, epochs, lostWithDisconnect, disconnects, handovers };
}
