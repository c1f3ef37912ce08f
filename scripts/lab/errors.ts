/**
 * Every error of the namespace lab, with a stable code and a message that says what to do. They
 * are McuErrors (mcu/src/core/errors.ts); a failed command is the host driver's HostCommandError
 * (mcu/src/core/host-commands.ts).
 */
import { McuError, type ErrorCode } from '../../mcu/src/core/errors.ts';

export type LabErrorCode = Extract<ErrorCode, `LAB_${string}`>;

export class LabError extends McuError {
  declare readonly code: LabErrorCode;
  constructor(code: LabErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** The machine cannot host a lab: not root, no `ip netns`, no `nft`. */
export class LabUnsupportedError extends LabError {
  constructor(reason: string) {
    super('LAB_UNSUPPORTED', `the namespace lab cannot run here: ${reason}`);
  }
}

/** A method was called in a lifecycle state that does not allow it (e.g. exec before up()). */
export class LabStateError extends LabError {
  constructor(message: string) {
    super('LAB_STATE', message);
  }
}

/** Raising or dropping the VIP did not leave the interface in the expected state. */
export class LabVipError extends LabError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('LAB_VIP', message, options);
  }
}

/** Silencing a port did not leave the MCU's firewall set in the expected state. */
export class LabFirewallError extends LabError {
  constructor(message: string) {
    super('LAB_FIREWALL', message);
  }
}

/** A fault was aimed at a process that does not run inside this lab: refused so a typo cannot hit the host. */
export class LabNotInLabError extends LabError {
  constructor(pid: number) {
    super('LAB_NOT_IN_LAB', `pid ${pid} does not run in a namespace of this lab: refusing to signal it`);
  }
}

/** The CLI found no `.lab/state.json`: run `up` first. */
export class LabNoStateFileError extends LabError {
  constructor(path: string) {
    super('LAB_NO_STATE_FILE', `no lab state at ${path}: run \`node --import tsx scripts/lab/cli.ts up\` first`);
  }
}
