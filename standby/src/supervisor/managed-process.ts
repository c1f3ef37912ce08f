import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** Real child processes of this project (MCU, standby), as the supervisor and the tests start them. */
export const projectRoot = fileURLToPath(new URL('../../..', import.meta.url));

export interface StartedProcess {
  child: ChildProcess;
  pid: number;
  /** Lines the process printed on stdout, parsed as JSON where possible. */
  events: Array<Record<string, unknown>>;
  stderr: string[];
  /** Resolves with the first stdout event matching the predicate. */
  waitFor(predicate: (event: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Kills the process (SIGKILL unless told otherwise) and waits for it to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts a TypeScript entry point of this project as a real child process. */
export interface StartOptions {
  /** Prefix for the child's stderr lines copied to ours; none: keep them only in `stderr` (unless TEST_VERBOSE). */
  echoStderr?: string;
}

export function startNode(entry: string, env: Record<string, string> = {}, args: string[] = [], opts: StartOptions = {}): StartedProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', entry, ...args], {
    cwd: projectRoot,
    env: { ...process.env, NODE_ENV: process.env.NODE_ENV ?? 'test', LOG_LEVEL: process.env.LOG_LEVEL ?? 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const events: Array<Record<string, unknown>> = [];
  const stderr: string[] = [];
  const waiters = new Set<{ predicate: (e: Record<string, unknown>) => boolean; resolve: (e: Record<string, unknown>) => void }>();
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let event: Record<string, unknown>;
    try {
      event = JSON.parse(line) as Record<string, unknown>;
    } catch {
      event = { line };
    }
    events.push(event);
    if (events.length > 2000) events.splice(0, events.length - 1000);
    for (const w of [...waiters]) {
      if (w.predicate(event)) {
        waiters.delete(w);
        w.resolve(event);
      }
    }
  });
  createInterface({ input: child.stderr! }).on('line', (line) => {
    stderr.push(line);
    // Keep a bounded tail: a long-running demo must not grow without limit.
    if (stderr.length > 2000) stderr.splice(0, stderr.length - 1000);
    if (opts.echoStderr !== undefined) process.stderr.write(`${opts.echoStderr}${line}\n`);
    else if (process.env.TEST_VERBOSE) process.stderr.write(`[${entry}:${child.pid}] ${line}\n`);
  });
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  return {
    child,
    pid: child.pid!,
    events,
    stderr,
    exited,
    waitFor(predicate, timeoutMs = 20000) {
      const found = events.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const waiter = { predicate, resolve: (e: Record<string, unknown>) => { clearTimeout(timer); resolve(e); } };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`${entry} (pid ${child.pid}) did not print the expected event within ${timeoutMs} ms; stderr tail:\n${stderr.slice(-20).join('\n')}`));
        }, timeoutMs);
        waiters.add(waiter);
        void exited.then(({ code, signal }) => {
          if (waiters.delete(waiter)) {
            clearTimeout(timer);
            reject(new Error(`${entry} exited (code ${code}, signal ${signal}) before the expected event; stderr tail:\n${stderr.slice(-20).join('\n')}`));
          }
        });
      });
    },
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
}

export interface RunningMcu {
  process: StartedProcess;
  port: number;
  url: string;
  stop(): Promise<void>;
}

/** Starts a real MCU process on a free port and waits until it serves. */
export async function startMcu(env: Record<string, string> = {}): Promise<RunningMcu> {
  const proc = startNode('mcu/src/main.ts', { PORT: '0', HOST: '127.0.0.1', ...env });
  const listening = await proc.waitFor((e) => e.event === 'listening');
  const port = Number(listening.port);
  return {
    process: proc,
    port,
    url: `http://127.0.0.1:${port}`,
    async stop() {
      if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
      proc.child.kill('SIGTERM');
      const timer = setTimeout(() => proc.child.kill('SIGKILL'), 5000);
      await proc.exited;
      clearTimeout(timer);
    },
  };
}
