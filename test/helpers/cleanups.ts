import { afterEach } from 'node:test';

/** What a test still has to close: each entry closes one thing (processes, servers, clients). */
export type Cleanups = Array<() => unknown>;

/**
 * Registers an afterEach (in the suite it is called in, or at the file's top level) that runs
 * what the test pushed, the last pushed first, even when the test failed. Every cleanup runs;
 * when one throws, the others still run and the hook then fails with the first error, so a
 * leak is reported rather than carried into the next test.
 */
export function cleanupsAfterEach(): Cleanups {
  const cleanups: Cleanups = [];
  afterEach(async () => {
    const errors: unknown[] = [];
    while (cleanups.length > 0) {
      try {
        await cleanups.pop()!();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `${errors.length} cleanups failed`);
  });
  return cleanups;
}
