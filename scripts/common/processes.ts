import { startNode, type ManagedProcess } from '../../mcu/src/core/child-process.ts';

export { ManagedProcess, projectRoot, startNode, type ProcessEvent, type ProcessExit } from '../../mcu/src/core/child-process.ts';

export interface RunningMcu {
  process: ManagedProcess;
  port: number;
  url: string;
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
  return {
    process: proc,
    port,
    url: `http://127.0.0.1:${port}`,
    adminUrl: `http://127.0.0.1:${Number(listening.adminPort)}`,
    async stop() {
      await proc.close();
    },
  };
}
