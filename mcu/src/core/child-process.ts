import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ProcessExitedError, ProcessStartError, ProcessTimeoutError } from './errors.ts';

/** The repository root: working directory of the project's entry points. */
export const projectRoot = fileURLToPath(new URL('../../..', import.meta.url));

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One line the process printed on stdout: the parsed JSON object, or `{ line }` for anything else. */
export type ProcessEvent = Record<string, unknown>;

export interface ManagedProcessOptions {
  /** Names the process in error messages and in the TEST_VERBOSE echo (default: its command line). */
  label?: string;
  /** Copy each stderr line to our stderr behind this prefix; without it lines are only kept (and echoed under TEST_VERBOSE). */
  echoStderr?: string;
  /** Lines of stderr kept: the newest `tailLines` to `2 * tailLines` (default 1000). */
  tailLines?: number;
  /** Likewise for stdout events (default: `tailLines`); Infinity keeps every one, for a bounded run that looks back over all it printed. */
  eventLines?: number;
}

export interface WaitForOptions {
  /** Default 20000. */
  timeoutMs?: number;
  /** Index of the first event to consider (see mark()); default: the oldest kept. */
  from?: number;
}

export interface SpawnOptions extends ManagedProcessOptions {
  cwd?: string;
  /** On top of this process's environment; a key set to undefined is left out. */
  env?: Record<string, string | undefined>;
  /** 'pipe' to write lines to the process (writeLine) and to end its input at close() (default 'ignore'). */
  stdin?: 'ignore' | 'pipe';
  /** 'events' (default): stdout lines become `events`; 'inherit': they go to our stdout. */
  stdout?: 'events' | 'inherit';
  /** Open an IPC channel (a Node child: `child.send()`, `child.on('message')`). */
  ipc?: boolean;
}

export type ManagedProcessEvents = {
  /** A stdout line, parsed (see ProcessEvent). */
  event: [ProcessEvent];
  stderr: [line: string];
  exit: [ProcessExit];
};

/** Spawns with this project's stdio conventions (stderr always piped); wrap the result in a ManagedProcess. */
export function spawnChild(command: string, args: string[], options: SpawnOptions = {}): ChildProcess {
  const stdio: Array<'ignore' | 'pipe' | 'inherit' | 'ipc'> = [options.stdin ?? 'ignore', options.stdout === 'inherit' ? 'inherit' : 'pipe', 'pipe'];
  if (options.ipc) stdio.push('ipc');
  return spawn(command, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio });
}

/**
 * A child process of ours: its stdout lines kept as events (awaitable with waitFor), the tail of
 * its stderr kept for error messages, its exit a promise that never rejects. kill() sends a real
 * signal and waits for the exit; close() stops it for sure (signal, then SIGKILL) and is idempotent.
 */
export class ManagedProcess extends EventEmitter<ManagedProcessEvents> {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly label: string;
  /** stdout lines, oldest first; a long-lived process keeps only the newest (indexes: see mark()). */
  readonly events: ProcessEvent[] = [];
  /** The newest stderr lines. */
  readonly stderr: string[] = [];
  readonly exited: Promise<ProcessExit>;
  readonly #tailLines: number;
  readonly #eventLines: number;
  #exit: ProcessExit | null = null;
  /** Exited and its output read to the end: no event can come any more. */
  #ended = false;
  /** Events trimmed from the front of `events`. */
  #dropped = 0;
  #closing: Promise<ProcessExit> | null = null;
  readonly #waiters = new Set<() => void>();

  static spawn(command: string, args: string[], options: SpawnOptions = {}): ManagedProcess {
    return new ManagedProcess(spawnChild(command, args, options), { label: [command, ...args].join(' '), ...options });
  }

  /** Takes charge of a child already spawned (e.g. inside a network namespace) whose stderr, and stdout for events, are pipes. */
  constructor(child: ChildProcess, options: ManagedProcessOptions = {}) {
    super();
    this.child = child;
    this.label = options.label ?? child.spawnargs.join(' ');
    this.#tailLines = options.tailLines ?? 1000;
    this.#eventLines = options.eventLines ?? this.#tailLines;
    let settle!: (exit: ProcessExit) => void;
    this.exited = new Promise((resolve) => (settle = resolve));
    const onExit = (exit: ProcessExit): void => {
      if (this.#exit) return;
      this.#exit = exit;
      settle(exit);
      this.#wake();
      this.emit('exit', exit);
    };
    const onEnd = (): void => {
      this.#ended = true;
      this.#wake();
    };
    child.once('exit', (code, signal) => onExit({ code, signal }));
    // After 'exit' and the end of its output: the last lines it printed are in by then.
    child.once('close', onEnd);
    // 'error' means no process was created (no 'exit' follows), or a kill or IPC send failed (it lives on).
    child.on('error', () => {
      if (child.pid !== undefined) return;
      onExit({ code: null, signal: null });
      onEnd();
    });
    child.stdin?.on('error', () => {
      // EPIPE once the process is gone: `exited` tells.
    });
    if (child.pid === undefined) throw new ProcessStartError(this.label, 'the system created no process (is the command installed and executable?)');
    this.pid = child.pid;
    if (child.stdout) {
      createInterface({ input: child.stdout }).on('line', (line) => {
        let event: ProcessEvent;
        try {
          const parsed: unknown = JSON.parse(line);
          event = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as ProcessEvent) : { line };
        } catch {
          event = { line };
        }
        this.events.push(event);
        if (this.events.length > 2 * this.#eventLines) this.#dropped += this.events.splice(0, this.events.length - this.#eventLines).length;
        this.#wake();
        this.emit('event', event);
      });
    }
    if (child.stderr) {
      createInterface({ input: child.stderr }).on('line', (line) => {
        // A bounded tail: a long-running child must not grow us without limit.
        this.stderr.push(line);
        if (this.stderr.length > 2 * this.#tailLines) this.stderr.splice(0, this.stderr.length - this.#tailLines);
        if (options.echoStderr !== undefined) process.stderr.write(`${options.echoStderr}${line}\n`);
        else if (process.env.TEST_VERBOSE) process.stderr.write(`[${this.label}:${this.pid}] ${line}\n`);
        this.emit('stderr', line);
      });
    }
  }

  get running(): boolean {
    return this.#exit === null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The last 40 stderr lines, for a message. */
  get stderrTail(): string {
    return this.stderr.slice(-40).join('\n');
  }

  /** Index of the next event: pass it as `from` to waitFor() to see only events printed after now. */
  mark(): number {
    return this.#dropped + this.events.length;
  }

  /** The events kept from index `from` on (see mark()) that pass `predicate`. */
  select(predicate: (event: ProcessEvent) => boolean, from = 0): ProcessEvent[] {
    return this.events.slice(Math.max(from - this.#dropped, 0)).filter(predicate);
  }

  /**
   * The first event from index `options.from` on that passes `predicate`, now or later. Rejects
   * with ProcessTimeoutError after `options.timeoutMs`, or ProcessExitedError when the process
   * exited (and its output was read) without printing it.
   */
  waitFor(predicate: (event: ProcessEvent) => boolean, options: WaitForOptions = {}): Promise<ProcessEvent> {
    const timeoutMs = options.timeoutMs ?? 20_000;
    return new Promise((resolve, reject) => {
      let next = options.from ?? 0;
      const check = (): void => {
        for (let i = Math.max(next - this.#dropped, 0); i < this.events.length; i++) {
          const event = this.events[i]!;
          if (predicate(event)) {
            done();
            resolve(event);
            return;
          }
        }
        next = this.mark();
        if (this.#ended && this.#exit) {
          done();
          reject(new ProcessExitedError(this.label, this.#exit, this.stderrTail));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new ProcessTimeoutError(this.label, this.pid, timeoutMs, this.stderrTail));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** The first event `{ "event": name }` (see waitFor). */
  waitForEvent(name: string, options: WaitForOptions = {}): Promise<ProcessEvent> {
    return this.waitFor((event) => event.event === name, options);
  }

  /** Writes one line to the process's stdin (spawned with `stdin: 'pipe'`). */
  writeLine(line: string): void {
    if (!this.child.stdin) throw new TypeError(`${this.label}: stdin is not a pipe`);
    this.child.stdin.write(line + '\n');
  }

  /** Sends `signal` (SIGKILL by default) unless the process already exited, and waits for the exit. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<ProcessExit> {
    if (this.running) this.child.kill(signal);
    return this.exited;
  }

  /**
   * Stops the process on purpose and waits for its exit: ends its stdin, sends `signal` (default
   * SIGTERM; null: none, for a child that exits on end of input), then SIGKILL after `graceMs`
   * (default 5000). Idempotent: later calls wait for the same exit.
   */
  close(options: { signal?: NodeJS.Signals | null; graceMs?: number } = {}): Promise<ProcessExit> {
    this.#closing ??= this.#stop(options.signal === undefined ? 'SIGTERM' : options.signal, options.graceMs ?? 5000);
    return this.#closing;
  }

  async #stop(signal: NodeJS.Signals | null, graceMs: number): Promise<ProcessExit> {
    if (!this.running) return this.exited;
    this.child.stdin?.end();
    if (signal) this.child.kill(signal);
    const timer = setTimeout(() => void this.kill('SIGKILL'), graceMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }

  #wake(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }
}

export interface StartNodeOptions {
  /** Prefix for the child's stderr lines copied to ours; none: keep them only in `stderr` (unless TEST_VERBOSE). */
  echoStderr?: string;
}

/** Starts a TypeScript entry point of this project (`node --import tsx`, cwd: the repository root). */
export function startNode(entry: string, env: Record<string, string> = {}, args: string[] = [], options: StartNodeOptions = {}): ManagedProcess {
  const child = spawnChild(process.execPath, ['--import', 'tsx', entry, ...args], {
    cwd: projectRoot,
    env: { NODE_ENV: process.env.NODE_ENV ?? 'test', LOG_LEVEL: process.env.LOG_LEVEL ?? 'info', ...env },
  });
  return new ManagedProcess(child, { label: entry, echoStderr: options.echoStderr });
}
