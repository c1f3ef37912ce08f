import { readdirSync, readFileSync } from 'node:fs';
import { startNode, type ManagedProcess } from '../../mcu/src/core/child-process.ts';

export { ManagedProcess, projectRoot, startNode, type ProcessEvent, type ProcessExit } from '../../mcu/src/core/child-process.ts';

export interface RunningMcu {
  process: ManagedProcess;
  port: number;
  /** `https://127.0.0.1:<port>` when it serves TLS (MCU_TLS_CERT, MCU_TLS_KEY), else `http://...`. */
  url: string;
  /** The certificate's SHA-256 fingerprint when it serves TLS, else null. */
  fingerprint256: string | null;
  /** Its admin listener (/status, /metrics), on 127.0.0.1. */
  adminUrl: string;
  /** SIGTERM, then SIGKILL after 5 s; waits for the exit. */
  stop(): Promise<void>;
}

/** Starts a real MCU process on a free port and waits until it serves. */
export async function startMcu(env: Record<string, string> = {}): Promise<RunningMcu> {
  const proc = startNode('mcu/src/main.ts', { PORT: '0', HOST: '127.0.0.1', ...env });
  const listening = await proc.waitFor((e) => e.event === 'listening');
  const port = Number(listening.port);
  const scheme = listening.scheme === 'https' ? 'https' : 'http';
  return {
    process: proc,
    port,
    url: `${scheme}://127.0.0.1:${port}`,
    fingerprint256: typeof listening.fingerprint256 === 'string' ? listening.fingerprint256 : null,
    adminUrl: `http://127.0.0.1:${Number(listening.adminPort)}`,
    async stop() {
      await proc.close();
    },
  };
}

/**
 * The pids of a process's children (every thread's `children` in /proc), e.g. the mediasoup
 * worker an MCU on the mediasoup plane starts. Empty when the process is gone.
 */
export function childPids(pid: number): number[] {
  const pids: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return pids;
  }
  for (const task of tasks) {
    try {
      pids.push(...readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
    } catch {
      // The thread ended meanwhile.
    }
  }
  return pids;
}
