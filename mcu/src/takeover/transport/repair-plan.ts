/**
 * From what the standby holds for one connection (the primary's TransportRecord, the
 * capture's TrackedConnection, the output log) to the RepairState that rebuilds it
 * with repairConnection(), following design notes section 9 and the addon's traps:
 *
 * - The rebuilt socket's receive queue starts where the new application will read:
 *   the standby feeds `pendingInput` (captured client bytes beyond consumedInput) to
 *   the re-attached session itself, so recvSeq is the end of the contiguous captured
 *   stream (clientIsn + 1 + consumedInput + pendingInput.length).
 * - sendSeq is the client's last ACK; the output the old socket had already sent
 *   beyond it (up to the highest primary sequence the capture saw) goes in the send
 *   queue as in flight (the kernel drops ACKs beyond snd_nxt); the rest of the log is
 *   written normally after repair (`writeAfterRepair`).
 * - TCP_REPAIR_WINDOW from the client's window segment and the primary's last ACK;
 *   TCP_TIMESTAMP beyond every TSval the client saw (PAWS), even; MSS of the client's SYN.
 *
 * Pure: reads its arguments, changes nothing. Unsafe cases come back as
 * `{ ok: false, code, reason }`, never as a best guess.
 */
import { seqAdd, takeoverTimestamp, type RepairState, type RepairWindow } from '../../../../native/src/index.ts';
import type { TransportRecord } from './transport-record.ts';
import { recordConnectionKey, type TrackedConnection } from './connection-tracker.ts';
import type { OutputLog } from './output-log.ts';

/** Why a connection cannot be rebuilt safely (the caller lets that client reconnect instead). */
export type RepairRefusalCode =
  /** The capture never saw this connection. */
  | 'not-captured'
  /** Record, capture entry and log do not describe the same connection. */
  | 'mismatched-inputs'
  /** The capture marked the connection unsafe (see UnsafeCode in the detail). */
  | 'unsafe-capture'
  /** Captured ISNs or options differ from the record. */
  | 'record-mismatch'
  /** Client bytes the primary acknowledged are missing from the capture. */
  | 'capture-hole'
  /** The capture holds nothing yet to place the record's offsets (no client ACK, no primary segment). */
  | 'incomplete-capture'
  /** The tracker dropped client bytes the application has not consumed (prune ahead of the record). */
  | 'pruned-beyond-consumed'
  /** The client ACKed or the primary sent output the log does not hold: output commit broke. */
  | 'output-log-behind'
  /** The log was pruned beyond the client's ACK. */
  | 'output-log-pruned'
  /** The client's FIN was acknowledged, or the primary closed its side: not an ESTABLISHED connection. */
  | 'closing'
  /** Timestamps are negotiated but no TSval or TSecr was captured. */
  | 'no-timestamp';

/** The offsets behind a plan, for logs and tests. Client offsets count the client's bytes, output offsets the primary's. */
export interface RepairPlanDetails {
  /** Client offset the application consumed (record). */
  consumedInput: number;
  /** Client offset after the contiguous captured stream (= consumedInput + pendingInput.length). */
  inputEnd: number;
  /** Client offset the primary acknowledged (its last ACK). */
  primaryAckedInput: number;
  /** Output offset the client acknowledged (sendSeq). */
  clientAckedOutput: number;
  /** Output offset the primary was seen sending up to (end of sendQueue). */
  primarySentOutput: number;
  /** Output offset at the end of the log (committedOutput). */
  logEnd: number;
  sendQueueBytes: number;
  /** Where the ISNs and options came from. */
  optionsFrom: 'capture' | 'record';
  /** ms since the TSval base was observed (0 without timestamps). */
  timestampAgeMs: number;
}

export type RepairPlan =
  | { ok: true; state: RepairState; pendingInput: Buffer; writeAfterRepair: Buffer; details: RepairPlanDetails }
  | { ok: false; code: RepairRefusalCode; reason: string };

export interface PlanRepairOptions {
  /** Added to the TSval on top of the elapsed time, ms (default 10; see takeoverTimestamp). */
  timestampMarginMs?: number;
}

function refuse(code: RepairRefusalCode, reason: string): RepairPlan {
  return { ok: false, code, reason };
}

interface Negotiated {
  mss: number;
  wscale: { snd: number; rcv: number } | undefined;
  sack: boolean;
  timestamps: boolean;
  from: 'capture' | 'record';
}

/** The options as negotiated: from the captured SYN and SYN-ACK when both were seen, else from the record. */
function negotiated(record: TransportRecord, tracked: TrackedConnection): Negotiated | string {
  const syn = tracked.clientSyn;
  const synAck = tracked.serverSynAck;
  if (!syn || !synAck) {
    return {
      // The record's MSS comes from TCP_INFO (the client's raw SYN MSS is not there): at worst a little small, never too big.
      mss: syn?.mss ?? record.mss,
      // TCP_INFO reports 0/0 when scaling was not negotiated; shift 0 on both sides behaves the same.
      wscale: { snd: record.sndWscale, rcv: record.rcvWscale },
      sack: record.sack,
      timestamps: record.timestamps,
      from: 'record',
    };
  }
  const wscale = syn.wscale !== undefined && synAck.wscale !== undefined ? { snd: Math.min(syn.wscale, 14), rcv: Math.min(synAck.wscale, 14) } : undefined;
  const sack = syn.sackPermitted && synAck.sackPermitted;
  const timestamps = syn.timestamps && synAck.timestamps;
  const mismatches: string[] = [];
  if (sack !== record.sack) mismatches.push(`SACK capture ${sack} record ${record.sack}`);
  if (timestamps !== record.timestamps) mismatches.push(`timestamps capture ${timestamps} record ${record.timestamps}`);
  const recordWscale = { snd: record.sndWscale, rcv: record.rcvWscale };
  const capturedWscale = wscale ?? { snd: 0, rcv: 0 };
  if (capturedWscale.snd !== recordWscale.snd || capturedWscale.rcv !== recordWscale.rcv) {
    mismatches.push(`window scales capture ${capturedWscale.snd}/${capturedWscale.rcv} record ${recordWscale.snd}/${recordWscale.rcv}`);
  }
  if (mismatches.length > 0) return `captured handshake and record disagree: ${mismatches.join('; ')}`;
  return { mss: syn.mss ?? 536, wscale, sack, timestamps, from: 'capture' };
}

/**
 * Plans the rebuild of one connection at time `now` (epoch ms, the capture's clock).
 * Drain the capture first so `tracked` is complete up to now.
 */
export function planRepair(
  record: TransportRecord,
  tracked: TrackedConnection | undefined,
  log: OutputLog,
  now: number,
  options: PlanRepairOptions = {},
): RepairPlan {
  if (!tracked) return refuse('not-captured', `connection ${record.connId} (${recordConnectionKey(record)}) was never captured: nothing tells what the client sent or acknowledged`);
  if (tracked.key !== recordConnectionKey(record)) return refuse('mismatched-inputs', `record ${record.connId} is ${recordConnectionKey(record)}, the capture entry ${tracked.key}`);
  if (log.connId !== record.connId) return refuse('mismatched-inputs', `output log of ${log.connId} given for ${record.connId}`);
  if (tracked.unsafe.length > 0) {
    return refuse('unsafe-capture', tracked.unsafe.map((u) => `${u.code}: ${u.detail}`).join('; '));
  }
  const clientIsn = record.clientIsn >>> 0;
  const serverIsn = record.serverIsn >>> 0;
  if (tracked.clientSyn && tracked.clientSyn.isn !== clientIsn) return refuse('record-mismatch', `captured client ISN ${tracked.clientSyn.isn}, record ${clientIsn}`);
  if (tracked.serverSynAck && tracked.serverSynAck.isn !== serverIsn) return refuse('record-mismatch', `captured server ISN ${tracked.serverSynAck.isn}, record ${serverIsn}`);
  const opts = negotiated(record, tracked);
  if (typeof opts === 'string') return refuse('record-mismatch', opts);
  if (tracked.serverFinPos !== undefined) return refuse('closing', 'the primary sent FIN (a deliberate close): a repaired socket can only be ESTABLISHED');

  const clientAck = tracked.clientAck;
  const clientWindow = tracked.clientWindow;
  if (!clientAck || !clientWindow) return refuse('incomplete-capture', 'no ACK from the client captured yet: its acknowledged output and window are unknown');

  // --- Input: what the new application reads, and where the receive queue starts.
  const consumed = record.consumedInput;
  const consumedPos = tracked.clientSpace.peek(seqAdd(clientIsn, 1 + consumed));
  if (consumedPos === undefined) return refuse('incomplete-capture', 'no client sequence number captured yet');
  const prunedTo = tracked.prunePosition;
  if (prunedTo !== undefined && prunedTo > consumedPos) {
    return refuse('pruned-beyond-consumed', `the capture dropped client bytes up to offset ${consumed + (prunedTo - consumedPos)}, the record consumed only ${consumed}: prune with the record's consumedInput`);
  }
  const pendingInput = tracked.clientBytesFrom(consumedPos);
  const inputEndPos = consumedPos + pendingInput.length;
  const inputEnd = consumed + pendingInput.length;

  // The primary's last ACK and advertised window; a SYN-ACK stands in when nothing later was captured.
  let primaryAck: { ack: number; ackPos: number; rcvWnd: number; atNs: bigint };
  if (tracked.serverAck) {
    const scale = opts.wscale?.rcv ?? 0;
    primaryAck = { ack: tracked.serverAck.ack, ackPos: tracked.serverAck.ackPos, rcvWnd: tracked.serverAck.window * 2 ** scale, atNs: tracked.serverAck.atNs };
  } else if (tracked.serverSynAck?.ack !== undefined) {
    const ack = tracked.serverSynAck.ack;
    const ackPos = tracked.clientSpace.peek(ack);
    if (ackPos === undefined) return refuse('incomplete-capture', 'no client sequence number captured yet');
    primaryAck = { ack, ackPos, rcvWnd: tracked.serverSynAck.window, atNs: tracked.serverSynAck.atNs };
  } else {
    return refuse('incomplete-capture', 'no segment from the primary captured yet: what it acknowledged is unknown, so the capture cannot be checked for holes');
  }
  if (tracked.clientFinPos !== undefined && primaryAck.ackPos > tracked.clientFinPos) {
    return refuse('closing', "the primary acknowledged the client's FIN: a repaired socket can only be ESTABLISHED");
  }
  const primaryAckedInput = consumed + (primaryAck.ackPos - consumedPos);
  if (primaryAck.ackPos > inputEndPos) {
    return refuse(
      'capture-hole',
      `the primary acknowledged client bytes up to offset ${primaryAckedInput}, but the capture holds them contiguously only up to ${inputEnd} ` +
        `(${primaryAck.ackPos - inputEndPos} bytes acknowledged and never captured; the client will not send them again)`,
    );
  }

  // --- Output: in flight (the send queue) and never sent (written after repair).
  const serverBase = seqAdd(serverIsn, 1);
  const logEndPos = tracked.serverSpace.peek(seqAdd(serverBase, log.end));
  if (logEndPos === undefined) return refuse('incomplete-capture', 'no primary sequence number captured yet');
  const clientAckedOutput = log.end + (clientAck.ackPos - logEndPos);
  if (clientAckedOutput > log.end) {
    return refuse('output-log-behind', `the client acknowledged output up to ${clientAckedOutput}, the log ends at ${log.end}: output commit broke`);
  }
  if (clientAckedOutput < log.start) {
    return refuse('output-log-pruned', `the log starts at ${log.start}, after the client's acknowledged offset ${clientAckedOutput}: it was pruned too far`);
  }
  const sentPos = tracked.serverSentEndPos !== undefined && tracked.serverSentEndPos > clientAck.ackPos ? tracked.serverSentEndPos : clientAck.ackPos;
  const primarySentOutput = log.end + (sentPos - logEndPos);
  if (primarySentOutput > log.end) {
    return refuse('output-log-behind', `the primary was seen sending output up to ${primarySentOutput}, the log ends at ${log.end}: output commit broke`);
  }
  const sendQueue = log.bytes(clientAckedOutput, primarySentOutput);
  const writeAfterRepair = log.bytes(primarySentOutput);

  // --- Timestamps: beyond every TSval the client may have seen (PAWS), even (bit 0 = usec clock).
  let tsVal: number | undefined;
  let timestampAgeMs = 0;
  if (opts.timestamps) {
    const server = tracked.serverTsval;
    const echoed = tracked.clientTsecr;
    if (!server && !echoed) return refuse('no-timestamp', 'timestamps are negotiated but no TSval of the primary (nor TSecr of the client) was captured');
    // The base is the larger in TSval order; its age is counted from when it was seen.
    const base = !echoed || (server && ((server.value - echoed.value) | 0) >= 0) ? server! : echoed;
    timestampAgeMs = Math.max(0, now - Number(base.atNs / 1_000_000n));
    tsVal = takeoverTimestamp({
      ...(server ? { lastServerTsval: server.value } : {}),
      ...(echoed ? { lastClientTsecr: echoed.value } : {}),
      elapsedMs: timestampAgeMs,
      ...(options.timestampMarginMs !== undefined ? { marginMs: options.timestampMarginMs } : {}),
    });
  }

  const sndWnd = clientWindow.window * 2 ** (opts.wscale?.snd ?? 0);
  const window: RepairWindow = {
    sndWl1: clientWindow.seq,
    sndWnd,
    maxWindow: sndWnd,
    rcvWnd: primaryAck.rcvWnd,
    rcvWup: primaryAck.ack,
  };
  const state: RepairState = {
    localAddress: record.local.address,
    localPort: record.local.port,
    remoteAddress: record.remote.address,
    remotePort: record.remote.port,
    sendSeq: clientAck.ack,
    recvSeq: seqAdd(clientIsn, 1 + inputEnd),
    mss: opts.mss,
    ...(opts.wscale ? { sndWscale: opts.wscale.snd, rcvWscale: opts.wscale.rcv } : {}),
    sackPermitted: opts.sack,
    timestamps: opts.timestamps,
    ...(tsVal !== undefined ? { tsVal } : {}),
    window,
    ...(sendQueue.length > 0 ? { sendQueue } : {}),
  };
  return {
    ok: true,
    state,
    pendingInput,
    writeAfterRepair,
    details: {
      consumedInput: consumed,
      inputEnd,
      primaryAckedInput,
      clientAckedOutput,
      primarySentOutput,
      logEnd: log.end,
      sendQueueBytes: sendQueue.length,
      optionsFrom: opts.from,
      timestampAgeMs,
    },
  };
}

/**
 * The output offset the client acknowledged, per the capture (undefined before
 * any client ACK was captured): prune the output log below it. Pure.
 */
export function clientAcknowledgedOutput(record: TransportRecord, tracked: TrackedConnection | undefined, log: OutputLog): number | undefined {
  const ack = tracked?.clientAck;
  if (!tracked || !ack) return undefined;
  const logEndPos = tracked.serverSpace.peek(seqAdd(record.serverIsn >>> 0, 1 + log.end));
  if (logEndPos === undefined) return undefined;
  return log.end + (ack.ackPos - logEndPos);
}
