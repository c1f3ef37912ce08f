import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FAILOVER_STEPS } from '../../scripts/failover-timeline.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

describe('failover steps', () => {
  it('every step the MCU and the standby log is described for the timeline', () => {
    const logged = new Set<string>();
    for (const file of [...sources(join(root, 'mcu/src')), ...sources(join(root, 'standby/src'))]) {
      for (const m of readFileSync(file, 'utf8').matchAll(/failover: '([a-z-]+)'/g)) logged.add(m[1]!);
    }
    assert.ok(logged.has('mixing-on-spare') && logged.has('spare-switched'), 'the spare path steps are logged');
    const missing = [...logged].filter((step) => !(step in FAILOVER_STEPS));
    assert.deepEqual(missing, [], 'add these to FAILOVER_STEPS in scripts/failover-timeline.ts');
  });
});
