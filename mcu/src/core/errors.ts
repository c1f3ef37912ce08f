/**
 * Every error of the project (MCU, standby, supervisor, native helpers, lab) has a class
 * under `McuError`, a stable code from `ERROR_CODES` and a message a user can act on.
 * Signaling refusals travel to the client as `{ code, message }`.
 */

/**
 * The one registry of stable error codes, each with the area that raises it. Codes are API
 * (tests, logs and clients match on them): add codes, never rename one.
 */
export const ERROR_CODES = {
  // Refusals of a signaling request (mcu/src/signaling, conference).
  INVALID_MESSAGE: 'signaling',
  MESSAGE_TOO_LARGE: 'signaling',
  NOT_JOINED: 'signaling',
  ALREADY_JOINED: 'signaling',
  ROOM_FULL: 'signaling',
  TOO_MANY_ROOMS: 'signaling',
  UNKNOWN_ROOM: 'signaling',
  UNKNOWN_PARTICIPANT: 'signaling',
  RESUME_REJECTED: 'signaling',
  NEGOTIATION_FAILED: 'signaling',
  NOT_PRIMARY: 'signaling',
  RATE_LIMITED: 'signaling',
  PROTOCOL_VIOLATION: 'signaling',
  /** A media request of the other media plane (media.plane): an SDP offer on mediasoup, a transport request on wrtc. */
  WRONG_MEDIA_PLANE: 'signaling',
  /** A mediasoup request (transport, produce, consume) the router refused or could not serve. */
  EDGE_REQUEST_FAILED: 'signaling',
  // The replication channel (mcu/src/replication, mcu/src/wire).
  REPLICATION_AUTH_FAILED: 'replication',
  REPLICATION_STALE_EPOCH: 'replication',
  REPLICATION_MALFORMED: 'replication',
  REPLICATION_CLOSED: 'replication',
  CONFIG_INVALID: 'config',
  // The admin listener of /status and /metrics (mcu/src/http/admin.ts).
  ADMIN_LISTEN_FAILED: 'admin',
  // The service's TLS certificate and key (mcu/src/http/tls.ts).
  TLS_CREDENTIALS_INVALID: 'tls',
  INTERNAL: 'internal',
  // The replicated session state (mcu/src/conference/session-state.ts).
  SESSION_STATE_CONFLICT: 'session-state',
  // Session takeover and fencing (mcu/src/takeover/errors.ts: TakeoverError).
  TAKEOVER_RECORD_INVALID: 'takeover',
  TAKEOVER_UNSUPPORTED_VERSION: 'takeover',
  TAKEOVER_UNKNOWN_CONNECTION: 'takeover',
  TAKEOVER_NOT_RECORDABLE: 'takeover',
  TAKEOVER_NOT_QUIESCENT: 'takeover',
  TAKEOVER_CHECKPOINT_TIMEOUT: 'takeover',
  TAKEOVER_SERVER_MISCONFIGURED: 'takeover',
  TAKEOVER_SETTINGS_MISMATCH: 'takeover',
  TAKEOVER_SESSION_IN_USE: 'takeover',
  TAKEOVER_UNKNOWN_NAMESPACE: 'takeover',
  TAKEOVER_SOCKET_UNUSABLE: 'takeover',
  TAKEOVER_INPUT_MISMATCH: 'takeover',
  TAKEOVER_UNEXPECTED_OUTPUT: 'takeover',
  TAKEOVER_NAMESPACE_NOT_RESTORED: 'takeover',
  TAKEOVER_CONNECTION_LOST: 'takeover',
  TAKEOVER_TIMEOUT: 'takeover',
  TAKEOVER_INTERNAL: 'takeover',
  TAKEOVER_FENCED: 'takeover',
  TAKEOVER_FENCE_ACTION_FAILED: 'takeover',
  // Transport (TCP) takeover (mcu/src/takeover/errors.ts: StandbyTakeoverError).
  OUTPUT_LOG_GAP: 'transport',
  OUTPUT_LOG_CONFLICT: 'transport',
  OUTPUT_LOG_WRONG_CONNECTION: 'transport',
  OUTPUT_LOG_RANGE: 'transport',
  TRACKER_INVALID_ARGUMENT: 'transport',
  CONNECTION_ALREADY_ATTACHED: 'transport',
  TRANSPORT_ACCEPTOR_STATE: 'transport',
  // Continuing a TLS 1.3 session on the standby (mcu/src/takeover/tls/errors.ts). The first three
  // are thrown; the others are the stable codes of a "cannot continue" result (TlsCannotContinue).
  TLS_RECORD_INVALID: 'tls-takeover',
  TLS_SECRETS_INVALID: 'tls-takeover',
  TLS_CONTINUATION_STATE: 'tls-takeover',
  TLS_VERSION_UNSUPPORTED: 'tls-takeover',
  TLS_SUITE_UNSUPPORTED: 'tls-takeover',
  TLS_SECRETS_INCOMPLETE: 'tls-takeover',
  TLS_SECRETS_MISSING: 'tls-takeover',
  TLS_HANDSHAKE_INCOMPLETE: 'tls-takeover',
  TLS_RECORD_CUT: 'tls-takeover',
  TLS_RECORD_UNDECRYPTABLE: 'tls-takeover',
  TLS_SESSION_CLOSED: 'tls-takeover',
  // The native addon (native/src/errors.ts: NativeError).
  NATIVE_ADDON_UNAVAILABLE: 'native',
  NATIVE_SYSCALL_FAILED: 'native',
  NATIVE_INVALID_ARGUMENT: 'native',
  NATIVE_SEQUENCE_UNSTABLE: 'native',
  NATIVE_NO_FD: 'native',
  // The mediasoup worker binary (mcu/src/media/mediasoup-worker.ts).
  MEDIASOUP_WORKER_MISSING: 'media',
  MEDIASOUP_WORKER_START_FAILED: 'media',
  MEDIASOUP_LOADED_TOO_EARLY: 'media',
  // Child processes and their supervisor (mcu/src/core/child-process.ts, standby/src/supervisor).
  PROCESS_START_FAILED: 'process',
  PROCESS_EXITED: 'process',
  PROCESS_TIMEOUT: 'process',
  SUPERVISOR_CLOSED: 'process',
  // The host's network setup (mcu/src/takeover/fencing/host-setup.ts, mcu/src/core/host-commands.ts).
  HOST_NOT_PRIVILEGED: 'host',
  HOST_TOOL_MISSING: 'host',
  HOST_INTERFACE_MISSING: 'host',
  HOST_TCP_REPAIR_UNAVAILABLE: 'host',
  HOST_COMMAND_FAILED: 'host',
  // The witness (etcd) that settles promotions (mcu/src/witness).
  WITNESS_UNREACHABLE: 'witness',
  WITNESS_BAD_RESPONSE: 'witness',
  WITNESS_PRIMARY_EXISTS: 'witness',
  WITNESS_EPOCH_MOVED: 'witness',
  // The network-namespace lab (scripts/lab).
  LAB_UNSUPPORTED: 'lab',
  LAB_STATE: 'lab',
  LAB_VIP: 'lab',
  LAB_FIREWALL: 'lab',
  LAB_NOT_IN_LAB: 'lab',
  LAB_NO_STATE_FILE: 'lab',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;
export type ErrorArea = (typeof ERROR_CODES)[ErrorCode];
/** The codes of one area, e.g. `ErrorCodeOf<'takeover'>`. */
export type ErrorCodeOf<A extends ErrorArea> = { [C in ErrorCode]: (typeof ERROR_CODES)[C] extends A ? C : never }[ErrorCode];

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
/** A media request for the plane this MCU does not run (media.plane, MCU_MEDIA_PLANE). */
export class WrongMediaPlaneError extends McuError {
  constructor(event: string, plane: string) {
    super('WRONG_MEDIA_PLANE', `"${event}" is not served on this MCU's media plane (${plane}): the join reply's mediaPlane says which requests to use`);
  }
}
/** A mediasoup request of the page (transport, connect, produce, consume, resume) that the room's router refused. */
export class EdgeRequestFailedError extends McuError {
  constructor(event: string, reason: string, cause?: unknown) {
    super('EDGE_REQUEST_FAILED', `"${event}" failed: ${reason}`, { cause });
  }
}
export class NotPrimaryError extends McuError {
  constructor(state: string) {
    super('NOT_PRIMARY', `this MCU is ${state}, not the primary: connect to the primary's address`);
  }
}
/** Too many fresh joins from one client address (limits.joinsPerWindow within limits.joinWindowMs). */
export class RateLimitedError extends McuError {
  /** When a join from this address is accepted again, ms from now. */
  readonly retryAfterMs: number;
  constructor(limit: number, windowMs: number, retryAfterMs: number) {
    super(
      'RATE_LIMITED',
      `too many joins from your address: at most ${limit} per ${windowMs} ms (MCU_JOINS_PER_WINDOW, MCU_JOIN_WINDOW_MS); try again in ${Math.ceil(retryAfterMs)} ms`,
    );
    this.retryAfterMs = retryAfterMs;
  }
}

/** A client broke the signaling protocol (a malformed WebSocket frame, engine.io or socket.io packet): its connection is dropped. */
export class ProtocolViolationError extends McuError {
  constructor(detail: string) {
    super('PROTOCOL_VIOLATION', `client dropped for breaking the signaling protocol: ${detail}`);
  }
}

export class ConfigError extends McuError {
  constructor(message: string) {
    super('CONFIG_INVALID', message);
  }
}

/** The admin listener could not bind (or was closed before it did). */
export class AdminListenError extends McuError {
  constructor(host: string, port: number, detail: string, options?: { cause?: unknown }) {
    super('ADMIN_LISTEN_FAILED', `cannot bind the admin listener (/status, /metrics) on ${host}:${port}: ${detail}; choose another admin.port (MCU_ADMIN_PORT)`, options);
  }
}

/**
 * The TLS certificate or key named by tls.certFile / tls.keyFile cannot serve: missing,
 * unreadable, not PEM, or a key that does not belong to the certificate. At start it is a
 * configuration error (exit 78); at a reload (SIGHUP) the old certificate stays.
 */
export class TlsCredentialsError extends McuError {
  /** The problem alone, without the setting's name (a config error line adds it). */
  readonly detail: string;
  /** The setting whose file is at fault. */
  readonly setting: 'tls.certFile' | 'tls.keyFile';
  constructor(setting: 'tls.certFile' | 'tls.keyFile', detail: string, options?: { cause?: unknown }) {
    super('TLS_CREDENTIALS_INVALID', `${setting}: ${detail}`, options);
    this.detail = detail;
    this.setting = setting;
  }
}

/** Areas whose errors a client may be told as they are; the others are internals (takeover, native, processes). */
const CLIENT_FACING_AREAS: ReadonlySet<ErrorArea> = new Set<ErrorArea>(['signaling', 'replication', 'config', 'internal']);

/** True for an error a signaling client may see with its code and message. */
export function isClientFacing(err: unknown): err is McuError {
  return err instanceof McuError && CLIENT_FACING_AREAS.has(ERROR_CODES[err.code]);
}

/** Turns anything thrown into something safe to send to a client (internal details stay in the log). */
export function toWireError(err: unknown): { code: ErrorCode; message: string } {
  if (isClientFacing(err)) return err.toJSON();
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

/** A child process could not be started (the executable is missing, or the system refused). */
export class ProcessStartError extends McuError {
  constructor(label: string, detail: string, options?: { cause?: unknown }) {
    super('PROCESS_START_FAILED', `${label} did not start: ${detail}`, options);
  }
}
/** A child process ended before it printed what its owner waited for; the message ends with its stderr tail. */
export class ProcessExitedError extends McuError {
  constructor(label: string, exit: { code: number | null; signal: string | null }, stderrTail: string) {
    super('PROCESS_EXITED', `${label} exited (code ${exit.code}, signal ${exit.signal}) before the expected event; stderr tail:\n${stderrTail}`);
  }
}
/** A child process did not print what its owner waited for in time; the message ends with its stderr tail. */
export class ProcessTimeoutError extends McuError {
  constructor(label: string, pid: number, timeoutMs: number, stderrTail: string) {
    super('PROCESS_TIMEOUT', `${label} (pid ${pid}) did not print the expected event within ${timeoutMs} ms; stderr tail:\n${stderrTail}`);
  }
}

/** Where the MCU looked for the mediasoup worker: `MEDIASOUP_WORKER_BIN`, or the cache `scripts/setup.sh` builds into. */
export type MediasoupWorkerSource = 'MEDIASOUP_WORKER_BIN' | 'cache';

/** The mediasoup worker binary is not there (or not executable): the set-up has not built it. */
export class MediasoupWorkerMissingError extends McuError {
  readonly path: string;
  constructor(path: string, source: MediasoupWorkerSource, version: string, detail: string) {
    super(
      'MEDIASOUP_WORKER_MISSING',
      source === 'MEDIASOUP_WORKER_BIN'
        ? `MEDIASOUP_WORKER_BIN=${path} is not a usable mediasoup-worker (${detail}): point it at a worker built for mediasoup ${version}, or unset it and run bash scripts/setup.sh`
        : `mediasoup-worker ${version} not found at ${path} (${detail}): run bash scripts/setup.sh (it builds the worker once, a few minutes), or set MEDIASOUP_WORKER_BIN to a worker built elsewhere`,
    );
    this.path = path;
  }
}
/** The mediasoup worker binary is there but the worker did not start (wrong build, missing shared library). */
export class MediasoupWorkerStartError extends McuError {
  readonly path: string;
  constructor(path: string, detail: string, options?: { cause?: unknown }) {
    super(
      'MEDIASOUP_WORKER_START_FAILED',
      `mediasoup-worker ${path} did not start: ${detail}; rebuild it with bash scripts/setup.sh (or check MEDIASOUP_WORKER_BIN)`,
      options,
    );
    this.path = path;
  }
}
/** mediasoup was loaded before mcu/src/media/mediasoup-worker.ts chose the worker binary, so it would start another one. */
export class MediasoupLoadedTooEarlyError extends McuError {
  constructor(loadedBin: string, wantedBin: string) {
    super(
      'MEDIASOUP_LOADED_TOO_EARLY',
      `mediasoup was loaded before the MCU chose its worker binary (it would start ${loadedBin}, not ${wantedBin}): import mediasoup's values only through mcu/src/media/mediasoup-worker.ts (type-only imports are fine)`,
    );
  }
}
