/**
 * Runs one fuzz target as a fast-check property: the number of cases from FUZZ_RUNS (default
 * 1000, the CI run), a failure reported with its seed and path and the command line that
 * replays it (FUZZ_SEED, FUZZ_PATH), and a count of how the cases came out.
 */
import fc from 'fast-check';
import { preciseNow } from '../../mcu/src/core/clock.ts';

export interface FuzzTarget<T> {
  /** Short name, e.g. `websocket-frames`. */
  name: string;
  arbitrary: fc.Arbitrary<T>;
  /** Before each case: brings the system under test to its start state (restarting whatever died, so shrinking stays meaningful). */
  before?: () => Promise<void>;
  /** One case: throws when the system misbehaved; returns how the case came out (counted per label). */
  run: (input: T) => Promise<string>;
  /**
   * After a failed case: what it left (a stuck connection, a dead process) must not fail the
   * next one, or shrinking would blame smaller inputs. Typically: the next before() starts afresh.
   */
  afterFailure?: () => void;
}

export interface FuzzSettings {
  runs: number;
  /** Replay: the seed of a failed run (FUZZ_SEED). */
  seed?: number;
  /** Replay: the path of the failing case (FUZZ_PATH). */
  path?: string;
}

export interface FuzzReport {
  target: string;
  runs: number;
  /** Cases executed, shrinking included. */
  executions: number;
  failed: boolean;
  seed: number;
  ms: number;
  casesPerSecond: number;
  /** How many cases came out each way (labels from the target). */
  outcomes: Record<string, number>;
  /** Duration of each passing case, ms (the fuzz connection or injection, the checks after it). */
  caseMs: number[];
  /** fast-check's report of the failure (counterexample, seed, path) plus the replay command; null when it passed. */
  failure: string | null;
}

/** FUZZ_RUNS (default 1000), FUZZ_SEED and FUZZ_PATH from the environment. */
export function fuzzSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): FuzzSettings {
  const runs = env.FUZZ_RUNS === undefined || env.FUZZ_RUNS === '' ? 1000 : Number(env.FUZZ_RUNS);
  if (!Number.isInteger(runs) || runs < 1) throw new RangeError(`FUZZ_RUNS must be a positive integer (got ${env.FUZZ_RUNS})`);
  const seed = env.FUZZ_SEED === undefined || env.FUZZ_SEED === '' ? undefined : Number(env.FUZZ_SEED);
  if (seed !== undefined && !Number.isInteger(seed)) throw new RangeError(`FUZZ_SEED must be an integer (got ${env.FUZZ_SEED})`);
  return { runs, seed, path: env.FUZZ_PATH || undefined };
}

/**
 * Runs `target` for `settings.runs` cases. Never throws for a failing property: the report says
 * so (and why); `replayCommand` is printed after FUZZ_SEED/FUZZ_PATH in the failure text.
 */
export async function runFuzz<T>(target: FuzzTarget<T>, settings: FuzzSettings, replayCommand: string): Promise<FuzzReport> {
  const outcomes: Record<string, number> = {};
  const caseMs: number[] = [];
  let executions = 0;
  let property = fc.asyncProperty(target.arbitrary, async (input) => {
    executions++;
    const caseStarted = preciseNow();
    let outcome: string;
    try {
      outcome = await target.run(input);
      caseMs.push(preciseNow() - caseStarted);
    } catch (err) {
      target.afterFailure?.();
      throw err;
    }
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
  });
  if (target.before) property = property.beforeEach(async (previous) => {
    await previous();
    await target.before!();
  });
  const started = preciseNow();
  const details = await fc.check(property, { numRuns: settings.runs, seed: settings.seed, path: settings.path, endOnFailure: settings.path !== undefined });
  const ms = preciseNow() - started;
  let failure: string | null = null;
  if (details.failed) {
    const report = fc.defaultReportMessage(details) ?? 'property failed';
    const error = details.errorInstance instanceof Error ? (details.errorInstance.stack ?? details.errorInstance.message) : String(details.errorInstance);
    failure = `${target.name}: ${report}\nError: ${error}\nReplay: FUZZ_SEED=${details.seed} FUZZ_PATH=${details.counterexamplePath ?? ''} ${replayCommand}`;
    console.error(failure);
  }
  return {
    target: target.name,
    runs: settings.runs,
    executions,
    failed: details.failed,
    seed: details.seed,
    ms,
    casesPerSecond: executions / (ms / 1000),
    outcomes,
    caseMs,
    failure,
  };
}
