/**
 * A Node process inside a lab host that speaks JSON lines (the fixtures, the
 * MCU's `listening` line): events are collected, awaited by predicate, and
 * commands written to stdin. Closing the process ends its stdin first (the
 * fixtures exit on EOF), then SIGKILLs it by pid.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { LabProcessTimeoutError } from './errors.ts';
import type { LabNamespace, LabTopology } from './topology.ts';

export type LabEvent = Record<string, unknown> & { event?: string };

export class LabProcess {
  readonly host: LabNamespace;
  readonly label: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly events: LabEvent[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #exited = false;
  readonly #waiters = new Set<() => void>();

  /** Starts `node --import tsx <entry> ...args` inside the host (cwd: repository root). */
  static startNode(lab: LabTopology, host: LabNamespace, entry: string, args: string[] = [], env: Record<string, string> = {}): LabProcess {
    const child = lab.spawn(host, [process.execPath, '--import', 'tsx', entry, ...args], env, { stdio: ['pipe', 'pipe', 'pipe'] });
    return new LabProcess(host, `${host}:${entry}`, child);
  }

  constructor(host: LabNamespace, label: string, child: ChildProcess) {
    this.host = host;
    this.label = label;
    this.child = child;
    if (child.pid === undefined) throw new Error(`${label}: the process did not start`);
    this.pid = child.pid;
    this.exited = once(child, 'exit').then(([code, signal]) => {
      this.#exited = true;
      this.#wake();
      return { code: code as number | null, signal: signal as NodeJS.Signals | null };
    });
    child.stdin?.on('error', () => {
      // EPIPE once the process is gone: exited tells.
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let event: LabEvent;
      try {
        event = JSON.parse(line) as LabEvent;
      } catch {
        event = { line };
      }
      this.events.push(event);
      this.#wake();
    });
    createInterface({ input: child.stderr! }).on('line', (line) => {
      this.stderr.push(line);
      if (this.stderr.length > 500) this.stderr.splice(0, 250);
      if (process.env.TEST_VERBOSE) process.stderr.write(`[${this.label}:${this.pid}] ${line}\n`);
    });
  }

  get running(): boolean {
    return !this.#exited;
  }

  /** Index of the next event: pass it as `from` to wait only for events after now. */
  mark(): number {
    return this.events.length;
  }

  /** Events from index `from` on that pass the predicate. */
  select(predicate: (e: LabEvent) => boolean, from = 0): LabEvent[] {
    return this.events.slice(from).filter(predicate);
  }

  /** The first event (from index `from`) that passes the predicate, now or later; rejects after timeoutMs or when the process exits first. */
  waitFor(predicate: (e: LabEvent) => boolean, options: { timeoutMs?: number; from?: number } = {}): Promise<LabEvent> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    let scanned = options.from ?? 0;
    return new Promise((resolve, reject) => {
      const check = (): void => {
        for (; scanned < this.events.length; scanned++) {
          if (predicate(this.events[scanned])) {
            done();
            resolve(this.events[scanned]);
            return;
          }
        }
        if (this.#exited) {
          done();
          reject(new Error(`${this.label} (pid ${this.pid}) exited before the awaited event; stderr tail:\n${this.stderr.slice(-15).join('\n')}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new LabProcessTimeoutError(`${this.label} (pid ${this.pid}): no awaited event within ${timeoutMs} ms; stderr tail:\n${this.stderr.slice(-15).join('\n')}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** Waits for an event by name. */
  waitForEvent(name: string, options: { timeoutMs?: number; from?: number } = {}): Promise<LabEvent> {
    return this.waitFor((e) => e.event === name, options);
  }

  /** Writes one JSON command line. */
  send(command: Record<string, unknown>): void {
    this.child.stdin!.write(JSON.stringify(command) + '\n');
  }

  /** Writes a raw line. */
  sendLine(line: string): void {
    this.child.stdin!.write(line + '\n');
  }

  /** Sends a command with an id and waits for its ack. */
  async request(command: Record<string, unknown>, timeoutMs = 5000): Promise<LabEvent> {
    const id = Math.random().toString(36).slice(2);
    const from = this.mark();
    this.send({ ...command, id });
    return this.waitFor((e) => e.event === 'ack' && e.id === id, { timeoutMs, from });
  }

  /** Ends the process: stdin EOF, then SIGKILL (by pid) if it has not exited within graceMs; idempotent. */
  async close(graceMs = 1000): Promise<void> {
    if (this.#exited) return;
    this.child.stdin?.end();
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Sends a signal to the process by its pid (SIGKILL by default). */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.#exited) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // exited meanwhile
    }
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }
}

/** The processes one lab run starts: started through it, closed together, their logs kept for a post-mortem. */
export class LabProcessGroup {
  readonly all: LabProcess[] = [];
  readonly #lab: LabTopology;

  constructor(lab: LabTopology) {
    this.#lab = lab;
  }

  /** LabProcess.startNode, remembered for closeAll() and writeLogs(). */
  start(host: LabNamespace, entry: string, args: string[] = [], env: Record<string, string> = {}): LabProcess {
    const p = LabProcess.startNode(this.#lab, host, entry, args, env);
    this.all.push(p);
    return p;
  }

  /** Closes every process (the last started first), each with `graceMs` before SIGKILL; never throws. */
  async closeAll(graceMs = 500): Promise<void> {
    for (const p of [...this.all].reverse()) await p.close(graceMs).catch(() => undefined);
  }

  /** Post-mortem: each process's stderr to `<dir>/<prefix>-<index>-<host>.log`; returns the files written. */
  writeLogs(prefix: string, dir: string = tmpdir()): string[] {
    const files: string[] = [];
    for (const [i, p] of this.all.entries()) {
      const file = join(dir, `${prefix}-${i}-${p.host}.log`);
      try {
        writeFileSync(file, p.stderr.join('\n') + '\n');
        files.push(file);
      } catch {
        // post-mortem only
      }
    }
    return files;
  }
}
