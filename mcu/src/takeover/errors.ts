import { McuError, type ErrorCodeOf } from '../core/errors.ts';

/**
 * Every way taking over a client connection can fail, each with a stable code (registered in
 * `ERROR_CODES`, mcu/src/core/errors.ts). Two families:
 * - `TakeoverError`: recording or re-attaching a signaling session, and fencing. A failed
 *   re-attachment leaves the socket to the caller, who closes it so the client falls back to
 *   reconnecting (degraded mode).
 * - `StandbyTakeoverError` and the transport classes below: the TCP layer (capture tracking,
 *   output log, output commit, acceptor). An unsafe rebuild is not an error: planRepair()
 *   returns it as a value with a reason, so the caller decides (degraded reconnect).
 */
export type TakeoverErrorCode = ErrorCodeOf<'takeover'>;

export class TakeoverError extends McuError {
  declare readonly code: TakeoverErrorCode;
  constructor(code: TakeoverErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** A session record that does not validate: malformed, truncated, forged or from another version. */
export class SessionRecordInvalidError extends TakeoverError {
  readonly issues: string[];
  constructor(issues: string[]) {
    super('TAKEOVER_RECORD_INVALID', `session record rejected: ${issues.slice(0, 8).join('; ')}${issues.length > 8 ? `; and ${issues.length - 8} more` : ''}`);
    this.issues = issues;
  }
}

/** The installed socket.io / engine.io / ws is not the version whose internals this code was tested against. */
export class UnsupportedVersionError extends TakeoverError {
  constructor(detail: string) {
    super('TAKEOVER_UNSUPPORTED_VERSION', `connection takeover relies on internals of pinned versions: ${detail}; re-run test/integration/session-reattach.test.ts and update the pins in mcu/src/takeover/session/internals.ts`);
  }
}

/** `record()` was asked about an engine.io connection the recorder does not track. */
export class UnknownConnectionError extends TakeoverError {
  constructor(engineId: string) {
    super('TAKEOVER_UNKNOWN_CONNECTION', `no tracked engine.io connection "${engineId}" (closed, or not a WebSocket connection of this server)`);
  }
}

/** A connection that can never be checkpointed (the tap came too late, protocol v3, compression on...). */
export class NotRecordableError extends TakeoverError {
  constructor(engineId: string, reason: string) {
    super('TAKEOVER_NOT_RECORDABLE', `connection "${engineId}" cannot be checkpointed: ${reason}`);
  }
}

/** Why a connection is not at a clean checkpoint right now. */
export type NotQuiescentReason =
  | 'mid-frame'
  | 'fragmented-message'
  | 'binary-attachments-pending'
  | 'dispatch-pending'
  | 'output-pending'
  | 'namespace-connecting'
  | 'closing';

/** The connection is not at a frame boundary with the decoder idle and the output flushed: try again shortly. */
export class NotQuiescentError extends TakeoverError {
  readonly reason: NotQuiescentReason;
  constructor(engineId: string, reason: NotQuiescentReason) {
    super('TAKEOVER_NOT_QUIESCENT', `connection "${engineId}" is not at a checkpointable point (${reason}): retry after the next frame`);
    this.reason = reason;
  }
}

/** `hold()` did not reach a checkpointable point in time. */
export class CheckpointTimeoutError extends TakeoverError {
  constructor(engineId: string, timeoutMs: number, last: NotQuiescentReason | null) {
    super('TAKEOVER_CHECKPOINT_TIMEOUT', `connection "${engineId}" did not reach a checkpointable point within ${timeoutMs} ms${last ? ` (still ${last})` : ''}`);
  }
}

/** The socket.io server is not set up for takeover; the message says which option to change. */
export class ServerMisconfiguredError extends TakeoverError {
  constructor(detail: string) {
    super('TAKEOVER_SERVER_MISCONFIGURED', `socket.io server not set up for connection takeover: ${detail} (see takeoverServerOptions() in mcu/src/takeover/session/takeover-adapter.ts)`);
  }
}

/** The client was told other heartbeat/payload settings than this server uses. */
export class SettingsMismatchError extends TakeoverError {
  constructor(setting: string, recorded: unknown, local: unknown) {
    super('TAKEOVER_SETTINGS_MISMATCH', `the client was told ${setting}=${JSON.stringify(recorded)} but this server uses ${JSON.stringify(local)}: primary and standby must share signaling settings`);
  }
}

/** The engine.io sid or a socket.io socket id of the record is already live here. */
export class SessionInUseError extends TakeoverError {
  constructor(what: string, id: string) {
    super('TAKEOVER_SESSION_IN_USE', `${what} "${id}" is already connected to this server (re-attached twice, or the old session was not torn down)`);
  }
}

/** The record names a namespace this server does not have. */
export class UnknownNamespaceError extends TakeoverError {
  constructor(name: string) {
    super('TAKEOVER_UNKNOWN_NAMESPACE', `namespace "${name}" does not exist on this server: create it (io.of("${name}")) before re-attaching`);
  }
}

/** The adopted TCP socket cannot carry the session (closed, not a fresh socket, wrong peer). */
export class SocketUnusableError extends TakeoverError {
  constructor(detail: string) {
    super('TAKEOVER_SOCKET_UNUSABLE', `the adopted socket cannot be used: ${detail}`);
  }
}

/** The pending input given to `reattach` disagrees with the unparsed bytes in the record. */
export class InputMismatchError extends TakeoverError {
  constructor(detail: string) {
    super('TAKEOVER_INPUT_MISMATCH', `pending client input does not match the record: ${detail}`);
  }
}

/** Re-attaching tried to send the client something it must not get (a fresh handshake, a raw write). Nothing was sent. */
export class UnexpectedOutputError extends TakeoverError {
  readonly frame: string;
  constructor(frame: string, detail: string) {
    super('TAKEOVER_UNEXPECTED_OUTPUT', `re-attachment produced ${detail}: ${JSON.stringify(frame.slice(0, 120))} (withheld from the client)`);
    this.frame = frame;
  }
}

/** socket.io did not restore a namespace's socket from the record (restore refused or namespace rejected it). */
export class NamespaceNotRestoredError extends TakeoverError {
  constructor(name: string, detail: string) {
    super('TAKEOVER_NAMESPACE_NOT_RESTORED', `namespace "${name}" was not restored: ${detail}`);
  }
}

/** The TCP connection ended while it was being re-attached. */
export class ConnectionLostError extends TakeoverError {
  constructor(detail: string) {
    super('TAKEOVER_CONNECTION_LOST', `the connection ended during re-attachment: ${detail}`);
  }
}

/** Re-attachment did not complete in time. */
export class TakeoverTimeoutError extends TakeoverError {
  constructor(step: string, timeoutMs: number) {
    super('TAKEOVER_TIMEOUT', `re-attachment did not finish within ${timeoutMs} ms (stuck at: ${step})`);
  }
}

/** socket.io, engine.io or ws threw while a session was being re-attached (a bug, or an unpinned version). */
export class ReattachInternalError extends TakeoverError {
  constructor(step: string, cause: unknown) {
    super('TAKEOVER_INTERNAL', `re-attachment failed while ${step}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/** This primary fenced itself: another primary (a higher epoch) owns its clients' connections. */
export class PrimaryFencedError extends TakeoverError {
  constructor(reason: string) {
    super('TAKEOVER_FENCED', `this primary fenced itself and stops serving (exit code 4; do not restart it as a primary): ${reason}`);
  }
}

/** A fencing step on this host failed (taking the VIP interface down): check `ip` and CAP_NET_ADMIN. */
export class FenceActionError extends TakeoverError {
  constructor(detail: string) {
    super('TAKEOVER_FENCE_ACTION_FAILED', `fencing step failed: ${detail}`);
  }
}

// ---- transport (TCP) takeover -------------------------------------------------------------

export type StandbyTakeoverErrorCode = ErrorCodeOf<'transport'>;

/** Errors of the standby's connection tracking and output log. */
export class StandbyTakeoverError extends McuError {
  declare readonly code: StandbyTakeoverErrorCode;
  constructor(code: StandbyTakeoverErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
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

/** A connection handed to the output commit twice (its transport record is already attached). */
export class ConnectionAlreadyAttachedError extends McuError {
  constructor(connId: string) {
    super('CONNECTION_ALREADY_ATTACHED', `connection ${connId} is already attached`);
  }
}

/** listen() on an acceptor that is not idle, or a connection tracked twice. */
export class TransportAcceptorStateError extends McuError {
  constructor(message: string) {
    super('TRANSPORT_ACCEPTOR_STATE', message);
  }
}
