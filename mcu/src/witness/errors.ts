import { McuError, type ErrorCodeOf } from '../core/errors.ts';

/** The codes of the witness's errors (registered in ERROR_CODES, mcu/src/core/errors.ts). */
export type WitnessErrorCode = ErrorCodeOf<'witness'>;

export class WitnessError extends McuError {
  declare readonly code: WitnessErrorCode;
  constructor(code: WitnessErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** No member of the witness cluster answered in time (each endpoint's failure in the message). */
export class WitnessUnreachableError extends WitnessError {
  readonly failures: string[];
  constructor(what: string, failures: string[]) {
    super(
      'WITNESS_UNREACHABLE',
      `the witness did not answer ${what}: ${failures.join('; ')}; check that etcd runs there and is reachable from this host (MCU_WITNESS_ENDPOINTS, MCU_WITNESS_TIMEOUT_MS)`,
    );
    this.failures = failures;
  }
}

/** A member answered with an error, or with something that is not etcd's JSON gateway. */
export class WitnessResponseError extends WitnessError {
  constructor(endpoint: string, what: string, detail: string) {
    super('WITNESS_BAD_RESPONSE', `the witness at ${endpoint} refused ${what}: ${detail}; is it etcd 3.4 or later with its JSON gateway (/v3/...) on that URL?`);
  }
}

/** A fresh primary found another primary's live record in the witness: it must not start beside it. */
export class WitnessPrimaryExistsError extends WitnessError {
  constructor(cluster: string, holder: string, leaseSeconds: number | null) {
    super(
      'WITNESS_PRIMARY_EXISTS',
      `another primary holds the witness of cluster "${cluster}" (${holder}): stop it first${leaseSeconds !== null ? `, or wait ${leaseSeconds} s for its lease to expire if it is dead` : ''}; a second primary would split the brain`,
    );
  }
}

/** The epoch in the witness changed under a primary's claim (another node claimed it at the same time). */
export class WitnessEpochMovedError extends WitnessError {
  constructor(cluster: string, expected: number | null, found: number | null) {
    super('WITNESS_EPOCH_MOVED', `the epoch of cluster "${cluster}" in the witness moved from ${expected ?? 'none'} to ${found ?? 'none'} during this primary's claim: another node claimed it; start again`);
  }
}
