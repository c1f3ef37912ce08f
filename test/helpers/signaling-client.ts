import { io, type Socket } from 'socket.io-client';
import type { ClientToServerEvents, ServerToClientEvents, SignalingErrorEvent, RosterUpdate } from '../../mcu/src/signaling/protocol.ts';

export type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/** A Node socket.io client speaking the MCU's signaling protocol, recording what it receives. */
export class TestSignalingClient {
  readonly socket: ClientSocket;
  readonly errors: SignalingErrorEvent[] = [];
  readonly rosters: RosterUpdate[] = [];
  disconnects = 0;

  /** `ca`: the certificates trusted for a wss:// MCU (e.g. its self-signed one); default the system's. */
  constructor(url: string, opts: { reconnection?: boolean; ca?: string[] } = {}) {
    this.socket = io(url, { transports: ['websocket'], reconnection: opts.reconnection ?? false, forceNew: true, ...(opts.ca ? { ca: opts.ca } : {}) });
    this.socket.on('signaling-error', (e) => this.errors.push(e));
    this.socket.on('roster', (r) => this.rosters.push(r));
    this.socket.on('disconnect', () => this.disconnects++);
  }

  connected(): Promise<void> {
    if (this.socket.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('connect_error', reject);
    });
  }

  /** Emits any event with any arguments and resolves with the acknowledgement. */
  request(event: string, ...args: unknown[]): Promise<{ ok: boolean; error?: { code: string; message: string }; [k: string]: unknown }> {
    return (this.socket as unknown as Socket).timeout(5000).emitWithAck(event, ...args);
  }

  nextRoster(predicate: (r: RosterUpdate) => boolean = () => true, timeoutMs = 5000): Promise<RosterUpdate> {
    const found = this.rosters.find(predicate);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.socket.off('roster', on);
        reject(new Error(`no matching roster within ${timeoutMs} ms; last: ${JSON.stringify(this.rosters.at(-1))}`));
      }, timeoutMs);
      const on = (r: RosterUpdate): void => {
        if (!predicate(r)) return;
        clearTimeout(timer);
        this.socket.off('roster', on);
        resolve(r);
      };
      this.socket.on('roster', on);
    });
  }

  nextError(timeoutMs = 5000): Promise<SignalingErrorEvent> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no signaling-error within ${timeoutMs} ms`)), timeoutMs);
      this.socket.once('signaling-error', (e) => {
        clearTimeout(timer);
        resolve(e);
      });
    });
  }

  close(): void {
    this.socket.disconnect();
  }
}
