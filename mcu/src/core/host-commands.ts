/**
 * The one way this project runs the host's networking tools (ip, nft, ss, sysctl, bridge): an
 * argv (never a shell), a deadline, typed errors, and optionally inside a named network namespace
 * (`ip netns exec`, for the lab's hosts). Two shapes: a command run to completion, and a resident
 * tool (`ip -batch -`, `nft -i`) fed on stdin, so a change costs the kernel's work instead of a
 * process start (~1 ms instead of 4-16 ms here; tens of ms on a loaded host).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { McuError } from './errors.ts';

/** The package that provides each tool, for the error that says what to install. */
const TOOL_PACKAGES: Record<string, string> = { ip: 'iproute2', ss: 'iproute2', bridge: 'iproute2', nft: 'nftables', sysctl: 'procps' };

/** A host command exited non-zero, was killed at its deadline, or a resident tool failed. */
export class HostCommandError extends McuError {
  readonly command: string[];
  readonly exitCode: number | null;
  readonly stderr: string;
  constructor(command: readonly string[], exitCode: number | null, stderr: string, options?: { cause?: unknown }) {
    const shown = command.join(' ');
    super(
      'HOST_COMMAND_FAILED',
      `\`${shown.length > 300 ? shown.slice(0, 300) + '...' : shown}\` failed (exit ${exitCode}): ${stderr.trim() || '(no stderr)'}`,
      options,
    );
    this.command = [...command];
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/** A tool the host setup needs is not installed (not found on PATH). */
export class HostToolMissingError extends McuError {
  readonly tool: string;
  /** The package to install, when known. */
  readonly packageName: string | null;
  constructor(tool: string, options?: { cause?: unknown }) {
    const pkg = TOOL_PACKAGES[tool] ?? null;
    super('HOST_TOOL_MISSING', `\`${tool}\` is not installed (not found on PATH): install ${pkg ? `the ${pkg} package (apt-get install -y ${pkg})` : 'it'}`, options);
    this.tool = tool;
    this.packageName = pkg;
  }
}

export interface HostCommandOptions {
  /** Written to stdin, then stdin is closed (default: stdin is /dev/null). */
  input?: string;
  /** Kill the command (SIGKILL, by its pid) after this long, ms (default 30000). */
  timeoutMs?: number;
  /** Throw HostCommandError on a non-zero exit (default true). A missing tool always throws. */
  check?: boolean;
  /** Extra environment, on top of this process's. */
  env?: Record<string, string>;
  cwd?: string;
}

export interface HostCommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit, ms. */
  ms: number;
}

export interface ResidentOperation {
  /** Lines to write (each ends with a newline), the closing query included. */
  input: string;
  /** True once `stdout` (everything printed since the operation started) holds the closing query's answer. */
  isComplete(stdout: string): boolean;
  /** Longest wait for the answer, ms (default 2000). */
  timeoutMs?: number;
}

export interface ResidentResult {
  stdout: string;
  /** What the tool printed on stderr during the operation (errors of single commands with -force / -i). */
  stderr: string;
  ms: number;
}

/** `ip netns exec` reports a command it cannot find this way (exit 255). */
const NETNS_EXEC_MISSING = /exec of "([^"]+)" failed: No such file or directory/;

/** Runs host tools in this process's network namespace, or in a named one. */
export class HostCommands {
  /** The network namespace the commands run in, null: this process's. */
  readonly netns: string | null;

  constructor(options: { netns?: string | null } = {}) {
    this.netns = options.netns ?? null;
  }

  /** The argv as run: inside the namespace when there is one (`ip -n` switches itself, anything else through `ip netns exec`). */
  argv(command: readonly string[]): string[] {
    if (this.netns === null) return [...command];
    if (command[0] === 'ip') return ['ip', '-n', this.netns, ...command.slice(1)];
    return ['ip', 'netns', 'exec', this.netns, ...command];
  }

  /** Runs a command to completion, collecting its output. */
  run(command: readonly string[], options: HostCommandOptions = {}): Promise<HostCommandResult> {
    const argv = this.argv(command);
    return new Promise((resolve, reject) => {
      const started = process.hrtime.bigint();
      const [cmd, ...args] = argv;
      const child = spawn(cmd!, args, {
        stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
        env: options.env ? { ...process.env, ...options.env } : process.env,
        cwd: options.cwd,
      });
      let stdout = '';
      let stderr = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const timeoutMs = options.timeoutMs ?? 30_000;
      const timer = setTimeout(() => {
        stderr += `\n(killed after ${timeoutMs} ms)`;
        killPid(child.pid);
      }, timeoutMs);
      child.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(err.code === 'ENOENT' ? new HostToolMissingError(cmd!, { cause: err }) : new HostCommandError(argv, null, err.message, { cause: err }));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        const missing = this.netns !== null && code === 255 ? NETNS_EXEC_MISSING.exec(stderr) : null;
        if (missing) reject(new HostToolMissingError(missing[1]!));
        else if ((options.check ?? true) && code !== 0) reject(new HostCommandError(argv, code, stderr));
        else resolve({ code, signal, stdout, stderr, ms });
      });
      if (options.input !== undefined) {
        child.stdin!.on('error', () => {
          // EPIPE when the command exits without reading: its exit code tells.
        });
        child.stdin!.end(options.input);
      }
    });
  }

  /** A long-running tool fed on stdin (not started yet: call start()). */
  resident(command: readonly string[]): ResidentCommand {
    return new ResidentCommand(this.argv(command));
  }
}

/** Commands in this process's own network namespace. */
export const thisHost = new HostCommands();

/**
 * A long-lived tool (`ip -batch -`, `nft -i`) fed on stdin. Operations run one at a time; each
 * writes its commands followed by a query whose output marks the end (the tools print nothing
 * on success), and resolves with the output once that query answered. It never keeps its
 * owner's process alive (a pending operation's timer does).
 */
export class ResidentCommand {
  readonly argv: string[];
  #child: ChildProcess | undefined;
  #stdout = '';
  #stderr = '';
  #exited = false;
  #queue: Promise<unknown> = Promise.resolve();
  #onOutput: (() => void) | undefined;

  constructor(argv: string[]) {
    this.argv = argv;
  }

  /** Not started, exited or closed: run() rejects, callers fall back to a one-off command. */
  get closed(): boolean {
    return this.#child === undefined || this.#exited;
  }

  start(): void {
    if (this.#child) return;
    const [cmd, ...args] = this.argv;
    const child = spawn(cmd!, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child = child;
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      this.#stdout += d;
      this.#onOutput?.();
    });
    child.stderr!.on('data', (d: string) => {
      this.#stderr += d;
      this.#onOutput?.();
    });
    child.stdin!.on('error', () => {
      // EPIPE after the tool died: reported by the pending operation's 'exit' path.
    });
    const gone = (): void => {
      this.#exited = true;
      this.#onOutput?.();
    };
    child.on('error', gone);
    child.on('exit', gone);
    child.unref();
    for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();
  }

  /** Runs one operation after the ones already queued. Rejects with HostCommandError when the tool died or did not answer. */
  run(op: ResidentOperation): Promise<ResidentResult> {
    const next = this.#queue.then(() => this.#runNow(op));
    this.#queue = next.catch(() => undefined);
    return next;
  }

  #runNow(op: ResidentOperation): Promise<ResidentResult> {
    return new Promise((resolve, reject) => {
      const child = this.#child;
      if (!child || this.#exited) {
        reject(new HostCommandError(this.argv, null, 'resident tool is not running'));
        return;
      }
      this.#stdout = '';
      this.#stderr = '';
      const started = process.hrtime.bigint();
      const timeoutMs = op.timeoutMs ?? 2000;
      const timer = setTimeout(() => finish(new HostCommandError(this.argv, null, `no answer within ${timeoutMs} ms to: ${op.input.trim()} ${this.#stderr.trim()}`)), timeoutMs);
      let done = false;
      const finish = (error?: Error): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.#onOutput = undefined;
        if (error) {
          reject(error);
          return;
        }
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        // stderr and stdout are separate pipes: an error the tool wrote before the closing
        // query's answer may be read one loop turn later. Two turns collect it.
        setImmediate(() => setImmediate(() => resolve({ stdout: this.#stdout, stderr: this.#stderr, ms })));
      };
      this.#onOutput = () => {
        if (this.#exited) finish(new HostCommandError(this.argv, child.exitCode, `resident tool exited: ${this.#stderr.trim()}`));
        else if (op.isComplete(this.#stdout)) finish();
      };
      child.stdin!.write(op.input);
    });
  }

  /** Ends the tool (stdin EOF, then SIGKILL of its pid if it lingers); idempotent. */
  close(): void {
    const child = this.#child;
    if (!child || this.#exited) return;
    child.stdin!.end();
    const pid = child.pid;
    setTimeout(() => {
      if (!this.#exited) killPid(pid);
    }, 500).unref();
  }
}

function killPid(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // exited meanwhile
  }
}
