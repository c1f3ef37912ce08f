/**
 * Every error the MCU reports, with a stable code and a message a user can act on.
 * Signaling errors travel to the client as `{ code, message }`.
 */
export type ErrorCode =
  | 'INVALID_MESSAGE'
  | 'MESSAGE_TOO_LARGE'
  | 'NOT_JOINED'
  | 'ALREADY_JOINED'
  | 'ROOM_FULL'
  | 'TOO_MANY_ROOMS'
  | 'UNKNOWN_ROOM'
  | 'UNKNOWN_PARTICIPANT'
  | 'RESUME_REJECTED'
  | 'NEGOTIATION_FAILED'
  | 'NOT_PRIMARY'
  // The host's network setup (mcu/src/takeover/fencing/host-setup.ts, mcu/src/core/host-commands.ts).
  | 'HOST_NOT_PRIVILEGED'
  | 'HOST_TOOL_MISSING'
  | 'HOST_INTERFACE_MISSING'
  | 'HOST_TCP_REPAIR_UNAVAILABLE'
  | 'HOST_COMMAND_FAILED'
  // The network-namespace lab (scripts/lab/errors.ts).
  | 'LAB_UNSUPPORTED'
  | 'LAB_STATE'
  | 'LAB_VIP'
  | 'LAB_FIREWALL'
  | 'LAB_NOT_IN_LAB'
  | 'LAB_NO_STATE_FILE'
  | 'LAB_PROCESS_TIMEOUT'
  | 'REPLICATION_AUTH_FAILED'
  | 'REPLICATION_STALE_EPOCH'
  | 'REPLICATION_MALFORMED'
  | 'REPLICATION_CLOSED'
  | 'CONFIG_INVALID'
  | 'INTERNAL';

export class McuError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

export class InvalidMessageError extends McuError {
  constructor(message: string) {
    super('INVALID_MESSAGE', message);
  }
}
export class MessageTooLargeError extends McuError {
  constructor(size: number, limit: number) {
    super('MESSAGE_TOO_LARGE', `message of ${size} bytes exceeds the limit of ${limit} bytes (MCU_MAX_MESSAGE_BYTES)`);
  }
}
export class NotJoinedError extends McuError {
  constructor(event: string) {
    super('NOT_JOINED', `"${event}" needs a joined room: send "join" first`);
  }
}
export class AlreadyJoinedError extends McuError {
  constructor(room: string) {
    super('ALREADY_JOINED', `this connection already joined room "${room}": send "leave" before joining again`);
  }
}
export class RoomFullError extends McuError {
  constructor(room: string, limit: number) {
    super('ROOM_FULL', `room "${room}" already has ${limit} participants (MCU_MAX_PARTICIPANTS_PER_ROOM)`);
  }
}
export class TooManyRoomsError extends McuError {
  constructor(limit: number) {
    super('TOO_MANY_ROOMS', `the MCU already hosts ${limit} rooms (MCU_MAX_ROOMS): join an existing room or try later`);
  }
}
export class UnknownRoomError extends McuError {
  constructor(room: string) {
    super('UNKNOWN_ROOM', `room "${room}" does not exist`);
  }
}
export class UnknownParticipantError extends McuError {
  constructor(id: string) {
    super('UNKNOWN_PARTICIPANT', `participant "${id}" is not in any room`);
  }
}
export class ResumeRejectedError extends McuError {
  constructor(reason: string) {
    super('RESUME_REJECTED', `session cannot be resumed: ${reason}; join again`);
  }
}
export class NegotiationFailedError extends McuError {
  constructor(reason: string, cause?: unknown) {
    super('NEGOTIATION_FAILED', `media negotiation failed: ${reason}`, { cause });
  }
}
export class NotPrimaryError extends McuError {
  constructor(state: string) {
    super('NOT_PRIMARY', `this MCU is ${state}, not the primary: connect to the primary's address`);
  }
}
export class ConfigError extends McuError {
  constructor(message: string) {
    super('CONFIG_INVALID', message);
  }
}

/** Turns anything thrown into something safe to send to a client (internal details stay in the log). */
export function toWireError(err: unknown): { code: ErrorCode; message: string } {
  if (err instanceof McuError) return err.toJSON();
  return { code: 'INTERNAL', message: 'internal error: the MCU logged the details' };
}

/** A replication frame whose HMAC does not verify: wrong shared secret (MCU_REPLICATION_SECRET) or tampering. */
export class ReplicationAuthError extends McuError {
  constructor(detail: string) {
    super('REPLICATION_AUTH_FAILED', `replication frame rejected, authentication failed (${detail}): check that primary and standby share MCU_REPLICATION_SECRET`);
  }
}
/** A replication frame from an older epoch: a deposed primary still talking. */
export class StaleEpochError extends McuError {
  constructor(got: number, current: number) {
    super('REPLICATION_STALE_EPOCH', `replication frame of epoch ${got} refused: the current epoch is ${current} (a deposed primary?)`);
  }
}
/** A replication frame that does not parse. */
export class ReplicationMalformedError extends McuError {
  constructor(detail: string) {
    super('REPLICATION_MALFORMED', `malformed replication frame: ${detail}`);
  }
}
/** Pending replication requests are rejected with this when their channel closes. */
export class ReplicationClosedError extends McuError {
  constructor(reason: string) {
    super('REPLICATION_CLOSED', `replication channel closed: ${reason}`);
  }
}
