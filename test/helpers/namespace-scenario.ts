/**
 * Tests of the native addon against the real kernel, and the root-only ones that make network
 * namespaces of their own and run their scenario inside one: under node --test the file sets the
 * namespaces up and runs itself again inside one (the inner run), which plays the scenario and
 * prints its result as one JSON line.
 */
import assert from 'node:assert/strict';
import { ManagedProcess, projectRoot } from '../../mcu/src/core/child-process.ts';
import { HostToolMissingError, thisHost } from '../../mcu/src/core/host-commands.ts';
import { effectiveCapabilities } from '../../mcu/src/takeover/fencing/host-setup.ts';
import { nativeAddonAvailable } from '../../native/src/index.ts';

/** Bits of the capability sets (linux/capability.h). */
const CAPABILITY_BITS = { NET_ADMIN: 12n, NET_RAW: 13n, SYS_ADMIN: 21n } as const;
export type Capability = keyof typeof CAPABILITY_BITS;

/** Set in the inner run's environment. */
const INNER_ENV = 'TKT_SCENARIO_INNER';

/** Why the test cannot run here (false: it can): Linux, the built addon, the `capabilities`, the host `tools`. */
export async function nativeSkipReason(capabilities: Capability[], tools: string[] = []): Promise<string | false> {
  if (process.platform !== 'linux') return 'Linux only';
  if (!nativeAddonAvailable()) return 'addon not built (bash scripts/build-native.sh)';
  const caps = effectiveCapabilities() ?? 0n;
  if (capabilities.some((cap) => (caps & (1n << CAPABILITY_BITS[cap])) === 0n)) {
    return `needs root (${capabilities.map((cap) => `CAP_${cap}`).join(', ')})`;
  }
  for (const tool of tools) {
    try {
      await thisHost.run([tool, '-V'], { check: false, timeoutMs: 10_000 });
    } catch (err) {
      if (err instanceof HostToolMissingError) return err.message;
      throw err;
    }
  }
  return false;
}

/** True in the run that runSelfInNamespace started. */
export function isInnerRun(): boolean {
  return process.env[INNER_ENV] === '1';
}

/**
 * Runs the test file `file` again inside the network namespace `ns` (with `env` on top of ours),
 * its stderr copied to ours, and resolves with the result it printed (playScenario); rejects when
 * it exits without printing one or does not print it within `timeoutMs`. The inner run is
 * killed if it still runs when this returns.
 */
export async function runSelfInNamespace<T>(file: string, ns: string, timeoutMs: number, env: Record<string, string> = {}): Promise<T> {
  const inner = ManagedProcess.spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', file], {
    label: `inner run of ${file} in ${ns}`,
    cwd: projectRoot,
    // Not a test runner's child: the inner run prints its own JSON line, not the runner's protocol.
    env: { ...env, [INNER_ENV]: '1', NODE_TEST_CONTEXT: undefined },
    echoStderr: '',
  });
  try {
    const printed = await inner.waitFor((event) => 'scenarioResult' in event, { timeoutMs });
    assert.equal((await inner.exited).code, 0, 'inner scenario exited cleanly');
    return printed.scenarioResult as T;
  } finally {
    await inner.kill();
  }
}

/** The inner run: plays `scenario`, prints its result for runSelfInNamespace and exits; exits 2 when it hangs past `timeoutMs`. */
export async function playScenario(scenario: () => Promise<unknown>, timeoutMs: number): Promise<never> {
  setTimeout(() => {
    console.error(`inner scenario timed out after ${timeoutMs / 1000} s`);
    process.exit(2);
  }, timeoutMs).unref();
  const scenarioResult = await scenario();
  process.stdout.write(`${JSON.stringify({ scenarioResult })}\n`);
  process.exit(0);
}
