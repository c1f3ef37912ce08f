/**
 * Errors of the standby's transport takeover (capture tracking, output log, repair
 * planning), each with a stable code. An unsafe rebuild is not an error: planRepair()
 * returns it as a value with a reason, so the caller decides (degraded reconnect).
 *
 * These codes belong in a standby-wide error registry once there is one; until then
 * the base class mirrors `McuError` (code, name, `toJSON`).
 */
export type StandbyTakeoverErrorCode =
  | 'OUTPUT_LOG_GAP'
  | 'OUTPUT_LOG_CONFLICT'
  | 'OUTPUT_LOG_WRONG_CONNECTION'
  | 'OUTPUT_LOG_RANGE'
  | 'TRACKER_INVALID_ARGUMENT';

export class StandbyTakeoverError extends Error {
  readonly code: StandbyTakeoverErrorCode;
  constructor(code: StandbyTakeoverErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
  toJSON(): { code: StandbyTakeoverErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** A chunk starts after the log's end: replication lost bytes (output commit is broken for this connection). */
export class OutputLogGapError extends StandbyTakeoverError {
  constructor(connId: string, end: number, offset: number) {
    super(
      'OUTPUT_LOG_GAP',
      `output log of ${connId} ends at ${end} but the next chunk starts at ${offset}: ${offset - end} bytes were never replicated; this connection can no longer be taken over (let it reconnect)`,
    );
  }
}

/** A chunk overlaps bytes already logged with different content: two writers, or a corrupted frame. */
export class OutputLogConflictError extends StandbyTakeoverError {
  constructor(connId: string, offset: number) {
    super('OUTPUT_LOG_CONFLICT', `output log of ${connId}: a chunk rewrites byte ${offset} with different content (two primaries, or a corrupted replication frame)`);
  }
}

export class OutputLogWrongConnectionError extends StandbyTakeoverError {
  constructor(expected: string, got: string) {
    super('OUTPUT_LOG_WRONG_CONNECTION', `output-log chunk of connection ${got} given to the log of ${expected}: route chunks by connId`);
  }
}

/** A read outside what the log holds (below its prune point, or beyond its end). */
export class OutputLogRangeError extends StandbyTakeoverError {
  constructor(connId: string, from: number, to: number, start: number, end: number) {
    super('OUTPUT_LOG_RANGE', `output log of ${connId} holds [${start}, ${end}), not [${from}, ${to}): it was pruned beyond the client's ACK, or read past its end`);
  }
}

export class TrackerInvalidArgumentError extends StandbyTakeoverError {
  constructor(message: string) {
    super('TRACKER_INVALID_ARGUMENT', message);
  }
}
