import { McuError, type ErrorCodeOf } from '../../core/errors.ts';

/**
 * Errors of the TLS continuation, and the stable codes of a session the standby cannot
 * continue. Codes are registered in `ERROR_CODES` (mcu/src/core/errors.ts, area
 * `tls-takeover`). A session that cannot be continued is not an error but a value
 * (`TlsCannotContinue`): the caller counts it and closes the connection cleanly, so its client
 * reconnects.
 */
export type TlsTakeoverErrorCode = ErrorCodeOf<'tls-takeover'>;

/** Why a session cannot be continued (a result, not a throw). */
export type TlsCannotContinueCode =
  /** Not TLS 1.3 (TLS 1.2 has no per-direction traffic secrets we can follow). */
  | 'TLS_VERSION_UNSUPPORTED'
  /** A TLS 1.3 suite this record layer does not implement (e.g. AES-128-CCM). */
  | 'TLS_SUITE_UNSUPPORTED'
  /** The keylog lines of the connection lack a traffic secret. */
  | 'TLS_SECRETS_INCOMPLETE'
  /** No secrets were replicated for the connection (its handshake had not ended on the primary). */
  | 'TLS_SECRETS_MISSING'
  /** A captured stream ends before that direction's handshake finished. */
  | 'TLS_HANDSHAKE_INCOMPLETE'
  /** A captured stream ends, or a stop offset falls, inside a record. */
  | 'TLS_RECORD_CUT'
  /** A captured record that no known key opens (wrong secrets, a gap in the capture, corruption). */
  | 'TLS_RECORD_UNDECRYPTABLE'
  /** The session already ended (close_notify or a fatal alert in the captured streams). */
  | 'TLS_SESSION_CLOSED';

/** A session the standby cannot continue, with the direction and offset that decided it. */
export interface TlsCannotContinue {
  ok: false;
  code: TlsCannotContinueCode;
  detail: string;
  direction?: 'client' | 'server';
  offset?: number;
}

export class TlsTakeoverError extends McuError {
  declare readonly code: TlsTakeoverErrorCode;
  constructor(code: TlsTakeoverErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Which TLS alert a broken record warrants (RFC 8446 6.2), sent to the peer before closing. */
export type TlsAlertReason = 'bad_record_mac' | 'record_overflow' | 'unexpected_message' | 'decode_error';

/** A received record that breaks TLS 1.3 (a MAC that does not verify, a bad header, an overflow...): the session is over. */
export class TlsRecordInvalidError extends TlsTakeoverError {
  readonly alert: TlsAlertReason;
  /** Byte offset of the record in the stream this layer received. */
  readonly offset: number;
  constructor(alert: TlsAlertReason, offset: number, detail: string) {
    super('TLS_RECORD_INVALID', `TLS record at input offset ${offset} refused (${alert}): ${detail}; the session cannot go on and is closed`);
    this.alert = alert;
    this.offset = offset;
  }
}

/** A TlsSessionSecrets record that does not validate (malformed, or secrets of the wrong length for its suite). */
export class TlsSecretsInvalidError extends TlsTakeoverError {
  constructor(detail: string) {
    super('TLS_SECRETS_INVALID', `TLS session secrets rejected: ${detail}`);
  }
}

/** A record-layer operation at the wrong time (a write after close_notify, after a failure). */
export class TlsContinuationStateError extends TlsTakeoverError {
  constructor(detail: string) {
    super('TLS_CONTINUATION_STATE', `TLS continuation: ${detail}`);
  }
}

/** A "cannot continue" result as a throwable error, for callers that prefer one. */
export class TlsCannotContinueError extends TlsTakeoverError {
  readonly result: TlsCannotContinue;
  constructor(result: TlsCannotContinue) {
    super(result.code, `TLS session cannot be continued: ${result.detail}${result.direction ? ` (${result.direction} stream${result.offset !== undefined ? ` at offset ${result.offset}` : ''})` : ''}`);
    this.result = result;
  }
}

export function cannotContinue(code: TlsCannotContinueCode, detail: string, where?: { direction: 'client' | 'server'; offset?: number }): TlsCannotContinue {
  return { ok: false, code, detail, ...(where ?? {}) };
}
