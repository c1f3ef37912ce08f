/**
 * A real single-member etcd (Debian's etcd-server, binary `etcd`) for the tests, the lab's
 * witness host and the benchmarks: started on the ports given (or free loopback ports) with a
 * data directory of its own, awaited until it serves, and removed with its data at close().
 */
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManagedProcess, spawnChild } from '../../mcu/src/core/child-process.ts';
import { ProcessExitedError, ProcessTimeoutError } from '../../mcu/src/core/errors.ts';
import { freePort } from './ports.ts';

/** The line etcd 3.4 logs once it serves clients. */
const READY_LINE = /ready to serve client requests/;

export interface EtcdServerOptions {
  /** Address it listens on (default 127.0.0.1). */
  host?: string;
  /** Client port (default: a free loopback port; 2379 is etcd's own). */
  clientPort?: number;
  /** Peer port (default: a free loopback port). */
  peerPort?: number;
  /** Data directory, created by the caller (default: a fresh one under the system's temp directory). Removed by close() either way. */
  dataDir?: string;
  /** Starts the process with these stdio (default: here; the lab passes one that runs it inside its witness host). */
  spawn?: (argv: string[], stdio: StdioOptions) => ChildProcess;
  /**
   * Its output goes to this file instead of pipes (a process that outlives us: etcd, like any Go
   * program, dies of a write to a closed stderr pipe); readiness is then read from the file.
   */
  logFile?: string;
  /** Longest wait until it serves, ms (default 20000). */
  startTimeoutMs?: number;
  /** Member name (default `witness`). */
  name?: string;
}

export class EtcdServer {
  /** The client URL, e.g. http://127.0.0.1:41234. */
  readonly endpoint: string;
  readonly process: ManagedProcess;
  readonly dataDir: string;
  #frozen = false;
  #closing: Promise<void> | null = null;

  private constructor(endpoint: string, process: ManagedProcess, dataDir: string) {
    this.endpoint = endpoint;
    this.process = process;
    this.dataDir = dataDir;
  }

  /** Starts etcd and resolves once it serves clients (or rejects with its stderr tail, the data directory removed). */
  static async start(options: EtcdServerOptions = {}): Promise<EtcdServer> {
    const host = options.host ?? '127.0.0.1';
    const clientPort = options.clientPort ?? (await freePort());
    const peerPort = options.peerPort ?? (await freePort());
    const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'mcu-etcd-'));
    const name = options.name ?? 'witness';
    const client = `http://${host}:${clientPort}`;
    const peer = `http://${host}:${peerPort}`;
    const argv = [
      'etcd',
      '--name', name,
      '--data-dir', dataDir,
      '--listen-client-urls', client,
      '--advertise-client-urls', client,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `${name}=${peer}`,
      '--initial-cluster-state', 'new',
    ];
    let proc: ManagedProcess;
    const fd = options.logFile ? openSync(options.logFile, 'w') : null;
    try {
      const stdio: StdioOptions = fd === null ? ['ignore', 'pipe', 'pipe'] : ['ignore', fd, fd];
      const child = options.spawn ? options.spawn(argv, stdio) : spawnChild(argv[0]!, argv.slice(1));
      proc = new ManagedProcess(child, { label: `etcd ${client}` });
    } catch (err) {
      rmSync(dataDir, { recursive: true, force: true });
      throw err;
    } finally {
      if (fd !== null) closeSync(fd);
    }
    const server = new EtcdServer(client, proc, dataDir);
    try {
      await server.#ready(options.startTimeoutMs ?? 20_000, options.logFile ?? null);
    } catch (err) {
      await server.close();
      throw err;
    }
    return server;
  }

  get running(): boolean {
    return this.process.running;
  }

  /** SIGSTOP: it answers nothing (connections stay open: requests time out), as a hung or cut-off witness would. */
  freeze(): void {
    if (!this.process.running || this.#frozen) return;
    this.process.child.kill('SIGSTOP');
    this.#frozen = true;
  }

  /** SIGCONT after freeze(). */
  thaw(): void {
    if (!this.#frozen) return;
    this.#frozen = false;
    if (this.process.running) this.process.child.kill('SIGCONT');
  }

  /** SIGKILL, and waits for the exit: the witness is gone (connections refused). */
  async kill(): Promise<void> {
    this.thaw();
    await this.process.kill('SIGKILL');
  }

  /** Stops it (SIGKILL: its data is thrown away anyway) and removes its data directory. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.kill();
      rmSync(this.dataDir, { recursive: true, force: true });
    })();
    return this.#closing;
  }

  #ready(timeoutMs: number, logFile: string | null): Promise<void> {
    const proc = this.process;
    return new Promise((resolve, reject) => {
      // Without a pipe, the log file is read again every 50 ms until the line is there.
      const poll = logFile === null ? null : setInterval(() => {
        if (READY_LINE.test(readFileSync(logFile, 'utf8'))) done();
      }, 50);
      const done = (err?: Error): void => {
        clearTimeout(timer);
        if (poll) clearInterval(poll);
        proc.off('stderr', onLine);
        proc.off('exit', onExit);
        if (err) reject(err);
        else resolve();
      };
      const onLine = (line: string): void => {
        if (READY_LINE.test(line)) done();
      };
      const tail = (): string => (logFile === null ? proc.stderrTail : readFileSync(logFile, 'utf8').split('\n').slice(-40).join('\n'));
      const onExit = (exit: { code: number | null; signal: NodeJS.Signals | null }): void => done(new ProcessExitedError(proc.label, exit, tail()));
      const timer = setTimeout(() => done(new ProcessTimeoutError(proc.label, proc.pid, timeoutMs, tail())), timeoutMs);
      proc.on('stderr', onLine);
      proc.on('exit', onExit);
      if (proc.stderr.some((line) => READY_LINE.test(line))) done();
      else if (!proc.running) onExit({ code: proc.child.exitCode, signal: proc.child.signalCode });
    });
  }
}
