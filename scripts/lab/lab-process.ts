/**
 * A Node process inside a lab host that speaks JSON lines (the fixtures, the MCU's `listening`
 * line): the product's child-process wrapper (events, waitFor, stderr tail, exit) with the host
 * it runs in, every event kept (a run looks back over all of them with select()), JSON commands
 * written to stdin, and a close() that ends stdin first (the fixtures exit on EOF), then SIGKILLs.
 */
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManagedProcess, type ProcessEvent, type ProcessExit } from '../../mcu/src/core/child-process.ts';
import { labMcuEnv } from './start-mcu.ts';
import type { LabNamespace, LabTopology } from './topology.ts';

/** One JSON line a lab process printed (`{ line }` for anything else). */
export type LabEvent = ProcessEvent;

export class LabProcess extends ManagedProcess {
  readonly host: LabNamespace;

  /** Starts `node --import tsx <entry> ...args` inside the host (cwd: repository root). */
  static startNode(lab: LabTopology, host: LabNamespace, entry: string, args: string[] = [], env: Record<string, string> = {}): LabProcess {
    const child = lab.spawn(host, [process.execPath, '--import', 'tsx', entry, ...args], env, { stdio: ['pipe', 'pipe', 'pipe'] });
    return new LabProcess(host, `${host}:${entry}`, child);
  }

  /** Takes charge of a child spawned in `host` (lab.spawn) with stdin, stdout and stderr piped. */
  constructor(host: LabNamespace, label: string, child: ChildProcess) {
    super(child, { label, tailLines: 250, eventLines: Infinity });
    this.host = host;
  }

  /** Writes one JSON command line. */
  send(command: Record<string, unknown>): void {
    this.writeLine(JSON.stringify(command));
  }

  /** Sends a command with an id and waits for its ack. */
  async request(command: Record<string, unknown>, timeoutMs = 5000): Promise<LabEvent> {
    const id = Math.random().toString(36).slice(2);
    const from = this.mark();
    this.send({ ...command, id });
    return this.waitFor((e) => e.event === 'ack' && e.id === id, { timeoutMs, from });
  }

  /**
   * Ends stdin, then SIGKILLs after `graceMs` (default 1000): by default no signal first, so an
   * MCU in the lab is not stopped deliberately (that would remove its host setup). Idempotent.
   */
  override close(options: { signal?: NodeJS.Signals | null; graceMs?: number } = {}): Promise<ProcessExit> {
    return super.close({ signal: null, graceMs: 1000, ...options });
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

  /**
   * The MCU in the primary host, then a standby in the standby host (labMcuEnv, `env` on top),
   * each awaited within `timeoutMs` (default 30000): the primary listening, the standby ready,
   * i.e. protecting it (in takeover mode, capturing: it learns each connection from its SYN).
   */
  async startMcuPair(secret: string, options: { takeover?: boolean; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<{ primary: LabProcess; standby: LabProcess }> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const env = (host: 'primary' | 'standby'): Record<string, string> => ({ ...labMcuEnv(this.#lab, host, secret, { takeover: options.takeover }), ...options.env });
    const primary = this.start('primary', 'mcu/src/main.ts', [], env('primary'));
    await primary.waitForEvent('listening', { timeoutMs });
    const standby = this.start('standby', 'standby/src/main.ts', [], env('standby'));
    await standby.waitForEvent('standby-ready', { timeoutMs });
    return { primary, standby };
  }

  /** Closes every process (the last started first), each with `graceMs` before SIGKILL; never throws. */
  async closeAll(graceMs = 500): Promise<void> {
    for (const p of [...this.all].reverse()) await p.close({ graceMs }).catch(() => undefined);
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
