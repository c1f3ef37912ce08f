import { McuError, type ErrorCodeOf } from '../../mcu/src/core/errors.ts';

/**
 * Every error the native takeover helpers report, with a stable code (registered in
 * `ERROR_CODES`, mcu/src/core/errors.ts) and a message that says what to do.
 */
export type NativeErrorCode = ErrorCodeOf<'native'>;

export class NativeError extends McuError {
  declare readonly code: NativeErrorCode;
  constructor(code: NativeErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** The addon is not built, or this is not Linux (TCP_REPAIR and AF_PACKET are Linux only). */
export class NativeAddonUnavailableError extends NativeError {
  constructor(reason: string, options?: { cause?: unknown }) {
    super(
      'NATIVE_ADDON_UNAVAILABLE',
      `tcp_takeover native addon unavailable: ${reason}. ` +
        'Build it with `bash scripts/build-native.sh` (or `npx node-gyp rebuild -C native --nodedir=/usr`); ' +
        'connection takeover needs Linux and CAP_NET_ADMIN.',
      options,
    );
  }
}

/**
 * A system call failed. `step` names the step (e.g. "TCP_REPAIR_WINDOW"),
 * `errnoName` the errno (e.g. "EINVAL"); the message reads "TCP_REPAIR_WINDOW: EINVAL (...)".
 * EPERM on TCP_REPAIR or SO_MARK means the process lacks CAP_NET_ADMIN.
 */
export class NativeSyscallError extends NativeError {
  readonly step: string;
  readonly errnoName: string;
  readonly errno: number;
  constructor(step: string, errnoName: string, errno: number, message: string) {
    super('NATIVE_SYSCALL_FAILED', message);
    this.step = step;
    this.errnoName = errnoName;
    this.errno = errno;
  }
}

/** A bad argument reached the addon (wrong type, out of range). */
export class NativeInvalidArgumentError extends NativeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('NATIVE_INVALID_ARGUMENT', message, options);
  }
}

/** The sequence numbers kept moving while being read (data arriving at accept time). */
export class NativeSequenceUnstableError extends NativeError {
  constructor(attempts: number) {
    super(
      'NATIVE_SEQUENCE_UNSTABLE',
      `initial sequence numbers still moving after ${attempts} reads: read them at accept time, before the application reads or writes`,
    );
  }
}

/** The socket has no file descriptor (not connected yet, already destroyed, or not a TCP socket). */
export class NativeNoFdError extends NativeError {
  constructor(detail: string) {
    super('NATIVE_NO_FD', `socket has no file descriptor: ${detail}`);
  }
}

/** Turns an error thrown by the addon into one of the classes above. */
export function translateNativeError(err: unknown): unknown {
  if (err instanceof NativeError) return err;
  if (err instanceof TypeError) return new NativeInvalidArgumentError(err.message, { cause: err });
  if (err instanceof Error) {
    const e = err as Error & { step?: unknown; errnoName?: unknown; errno?: unknown };
    if (typeof e.step === 'string') {
      return new NativeSyscallError(
        e.step,
        typeof e.errnoName === 'string' ? e.errnoName : 'UNKNOWN',
        typeof e.errno === 'number' ? e.errno : 0,
        e.message,
      );
    }
  }
  return err;
}
