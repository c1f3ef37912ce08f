/** Runs one short command to completion, with a deadline, collecting its output. */
import { spawn } from 'node:child_process';
import { LabCommandError } from './errors.ts';

export interface RunOptions {
  /** Written to stdin, then stdin is closed (default: stdin is /dev/null). */
  input?: string;
  /** Kill the command (SIGKILL, by its pid) after this long, ms (default 30000). */
  timeoutMs?: number;
  /** Throw LabCommandError on a non-zero exit (default true). */
  check?: boolean;
  /** Extra environment, on top of this process's. */
  env?: Record<string, string>;
  cwd?: string;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit, ms. */
  ms: number;
}

export function runCommand(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const [cmd, ...args] = argv;
    const child = spawn(cmd, args, {
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      cwd: opts.cwd,
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${timeoutMs} ms)`;
      if (child.pid !== undefined) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // exited meanwhile
        }
      }
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new LabCommandError(argv, null, err.message, { cause: err }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if ((opts.check ?? true) && code !== 0) reject(new LabCommandError(argv, code, stderr));
      else resolve({ code, signal, stdout, stderr, ms });
    });
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => {
        // EPIPE when the command exits without reading: its exit code tells.
      });
      child.stdin!.end(opts.input);
    }
  });
}
