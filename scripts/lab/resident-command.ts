/**
 * A long-lived command-line tool (`ip -batch -`, `nft -i`) fed on stdin, so a
 * change costs the kernel's work instead of a process start (measured here:
 * ~1 ms instead of 4-16 ms). Operations run one at a time; each writes its
 * commands followed by a query whose output marks the end (the tools print
 * nothing on success), and resolves with the output once that query answered.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { LabCommandError } from './errors.ts';

export interface ResidentOperation {
  /** Lines to write (each ends with a newline here), the closing query included. */
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

  get closed(): boolean {
    return this.#child === undefined || this.#exited;
  }

  start(): void {
    if (this.#child) return;
    const [cmd, ...args] = this.argv;
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
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
    child.on('error', () => {
      this.#exited = true;
      this.#onOutput?.();
    });
    child.on('exit', () => {
      this.#exited = true;
      this.#onOutput?.();
    });
    // A helper must never keep the owner's process alive; a pending operation's timer does.
    child.unref();
    (child.stdin as unknown as { unref?: () => void }).unref?.();
    (child.stdout as unknown as { unref?: () => void }).unref?.();
    (child.stderr as unknown as { unref?: () => void }).unref?.();
  }

  /** Runs one operation after the ones already queued. Rejects with LabCommandError when the tool died or did not answer. */
  run(op: ResidentOperation): Promise<ResidentResult> {
    const next = this.#queue.then(() => this.#runNow(op));
    this.#queue = next.catch(() => undefined);
    return next;
  }

  #runNow(op: ResidentOperation): Promise<ResidentResult> {
    return new Promise((resolve, reject) => {
      const child = this.#child;
      if (!child || this.#exited) {
        reject(new LabCommandError(this.argv, null, 'resident helper is not running'));
        return;
      }
      this.#stdout = '';
      this.#stderr = '';
      const started = process.hrtime.bigint();
      const timer = setTimeout(() => finish(new LabCommandError(this.argv, null, `no answer within ${op.timeoutMs ?? 2000} ms to: ${op.input.trim()}`)), op.timeoutMs ?? 2000);
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
        if (this.#exited) finish(new LabCommandError(this.argv, child.exitCode, `resident helper exited: ${this.#stderr.trim()}`));
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
      if (!this.#exited && pid !== undefined) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }, 500).unref();
  }
}
