import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { projectRoot } from './processes.ts';

/** A message a fixture process sends over IPC: always an object with a string `type`. */
export interface FixtureMessage {
  type: string;
  [key: string]: unknown;
}

/**
 * A fixture script running in its own Node process (with tsx), talking over IPC. Used to
 * kill a real primary or standby with real signals.
 */
export class FixtureProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly #inbox: FixtureMessage[] = [];
  readonly #waiters = new Set<{ type: string; resolve: (m: FixtureMessage) => void }>();
  #stderr = '';

  /** `script`: a path from the project root, e.g. `scripts/fixtures/replication-primary.ts`. */
  constructor(script: string, env: Record<string, string>) {
    const path = join(projectRoot, script);
    this.child = spawn(process.execPath, ['--import', 'tsx', path], {
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      env: { ...process.env, ...env },
    });
    this.child.stderr?.setEncoding('utf8');
    this.child.stderr?.on('data', (s: string) => {
      // Keep the tail only: shown when a test fails.
      this.#stderr = (this.#stderr + s).slice(-8000);
    });
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
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get stderrTail(): string {
    return this.#stderr;
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
        reject(new Error(`fixture pid ${this.pid}: no "${type}" message within ${timeoutMs} ms\n${this.#stderr}`));
      }, timeoutMs);
      this.#waiters.add(waiter);
      this.child.once('exit', () => {
        if (!this.#waiters.delete(waiter)) return;
        clearTimeout(timer);
        reject(new Error(`fixture pid ${this.pid} exited before sending "${type}"\n${this.#stderr}`));
      });
    });
  }

  /** Kills (SIGKILL by default) and waits for the exit; no-op if it already exited. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    await this.exited;
  }
}
