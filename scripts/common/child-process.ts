import { join } from 'node:path';
import { ManagedProcess, projectRoot, spawnChild } from '../../mcu/src/core/child-process.ts';

/** A message a fixture process sends over IPC: always an object with a string `type`. */
export interface FixtureMessage {
  type: string;
  [key: string]: unknown;
}

/**
 * A fixture script running in its own Node process (with tsx), talking over IPC. Used to
 * kill a real primary or standby with real signals.
 */
export class FixtureProcess extends ManagedProcess {
  readonly #inbox: FixtureMessage[] = [];
  readonly #waiters = new Set<{ type: string; resolve: (m: FixtureMessage) => void }>();

  /** `script`: a path from the project root, e.g. `scripts/fixtures/replication-primary.ts`. */
  constructor(script: string, env: Record<string, string>) {
    super(spawnChild(process.execPath, ['--import', 'tsx', join(projectRoot, script)], { env, stdout: 'inherit', ipc: true }), { label: `fixture ${script}` });
    this.child.on('message', (m: unknown) => {
      if (typeof m !== 'object' || m === null || typeof (m as { type?: unknown }).type !== 'string') return;
      const msg = m as FixtureMessage;
      for (const w of this.#waiters) {
        if (w.type === msg.type) {
          this.#waiters.delete(w);
          w.resolve(msg);
          return;
        }
      }
      this.#inbox.push(msg);
    });
  }

  send(msg: Record<string, unknown>): void {
    this.child.send(msg);
  }

  /** The next message of `type` (already received or to come). */
  next(type: string, timeoutMs = 10_000): Promise<FixtureMessage> {
    const i = this.#inbox.findIndex((m) => m.type === type);
    if (i >= 0) return Promise.resolve(this.#inbox.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const waiter = {
        type,
        resolve: (m: FixtureMessage) => {
          clearTimeout(timer);
          resolve(m);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`fixture pid ${this.pid}: no "${type}" message within ${timeoutMs} ms\n${this.stderrTail}`));
      }, timeoutMs);
      this.#waiters.add(waiter);
      void this.exited.then(() => {
        if (!this.#waiters.delete(waiter)) return;
        clearTimeout(timer);
        reject(new Error(`fixture pid ${this.pid} exited before sending "${type}"\n${this.stderrTail}`));
      });
    });
  }
}
