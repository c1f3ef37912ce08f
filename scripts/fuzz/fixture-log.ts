/**
 * A fixture process's IPC messages and log lines, kept in order and awaitable from a mark on:
 * what the fuzz beds wait for ("the standby refused the frame and logged it").
 */
import type { FixtureMessage, FixtureProcess } from '../common/child-process.ts';

/** A fixture's IPC messages and log lines (its stderr), kept in order, awaitable from a mark on. */
export class FixtureLog {
  readonly messages: FixtureMessage[] = [];
  /** The newest log lines; `linesDropped` older ones were let go. */
  readonly lines: string[] = [];
  linesDropped = 0;
  readonly #waiters = new Set<() => void>();

  constructor(readonly fixture: FixtureProcess) {
    const wake = (): void => {
      for (const w of [...this.#waiters]) w();
    };
    fixture.child.on('message', (m: unknown) => {
      if (typeof m !== 'object' || m === null || typeof (m as { type?: unknown }).type !== 'string') return;
      this.messages.push(m as FixtureMessage);
      wake();
    });
    fixture.on('stderr', (line) => {
      this.lines.push(line);
      if (this.lines.length > 20_000) this.linesDropped += this.lines.splice(0, 10_000).length;
      wake();
    });
    void fixture.exited.then(wake);
  }

  mark(): number {
    return this.messages.length;
  }

  lineMark(): number {
    return this.linesDropped + this.lines.length;
  }

  /** The first message from index `from` on passing `predicate`, there already or to come. */
  waitFor(predicate: (m: FixtureMessage) => boolean, from: number, timeoutMs: number, what: string): Promise<FixtureMessage> {
    return this.#wait(
      () => {
        for (let i = from; i < this.messages.length; i++) if (predicate(this.messages[i]!)) return this.messages[i]!;
        return undefined;
      },
      timeoutMs,
      what,
      () => JSON.stringify(this.messages.slice(from).map((m) => m.type)),
    );
  }

  /** The first log line from line mark `from` on passing `predicate`, there already or to come. */
  waitLine(predicate: (line: string) => boolean, from: number, timeoutMs: number, what: string): Promise<string> {
    return this.#wait(
      () => {
        for (let i = Math.max(0, from - this.linesDropped); i < this.lines.length; i++) if (predicate(this.lines[i]!)) return this.lines[i]!;
        return undefined;
      },
      timeoutMs,
      what,
      () => this.lines.slice(-10).join('\n'),
    );
  }

  #wait<T>(find: () => T | undefined, timeoutMs: number, what: string, context: () => string): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const found = find();
        if (found !== undefined) {
          done();
          resolve(found);
        } else if (!this.fixture.running) {
          done();
          reject(new Error(`${this.fixture.label} (pid ${this.fixture.pid}) exited while waiting for ${what}\n${this.fixture.stderrTail}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.fixture.label}: no ${what} within ${timeoutMs} ms; seen: ${context()}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** Sends a command and waits for its answer of type `reply`. */
  async ask(command: Record<string, unknown>, reply: string, timeoutMs = 10_000): Promise<FixtureMessage> {
    const from = this.mark();
    this.fixture.send(command);
    return this.waitFor((m) => m.type === reply, from, timeoutMs, `"${reply}"`);
  }
}
