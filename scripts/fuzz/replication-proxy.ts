/**
 * A TCP proxy between a primary's replication port and its standby that can put bytes into the
 * primary -> standby stream on the wire, as an on-path attacker or a corrupting network would.
 * It forwards that direction one whole frame at a time (it reads the frame headers), so an
 * injection always lands between two of the primary's frames; it remembers the epoch and the
 * highest seq the primary sent on the current connection, for frames that must look current.
 * The standby -> primary direction is forwarded as it comes.
 */
import { EventEmitter } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { FRAME_HEADER_BYTES, FRAME_MAC_BYTES } from '../../mcu/src/wire/frame-codec.ts';

interface Pair {
  downstream: Socket;
  upstream: Socket;
  /** primary -> standby bytes not yet forwarded (an incomplete frame). */
  pending: Buffer;
  /** Epoch and highest seq of the primary's frames forwarded on this connection; null before the first. */
  lastEpoch: number | null;
  lastSeq: number;
  frames: number;
}

export type ReplicationProxyEvents = {
  /** A standby connection was paired with a new connection to the primary. */
  paired: [];
  /** The primary sent something that is not a frame (the proxy forwards the rest as it comes). */
  unframed: [];
};

export class ReplicationProxy extends EventEmitter<ReplicationProxyEvents> {
  readonly #server: Server;
  readonly #upstreamPort: number;
  readonly #pairs = new Set<Pair>();
  #current: Pair | null = null;
  #closed = false;

  private constructor(upstreamPort: number) {
    super();
    this.#upstreamPort = upstreamPort;
    this.#server = createServer({ noDelay: true }, (socket) => this.#onConnection(socket));
  }

  /** Listens on a free port of 127.0.0.1, forwarding to the primary at 127.0.0.1:`upstreamPort`. */
  static async listen(upstreamPort: number): Promise<ReplicationProxy> {
    const proxy = new ReplicationProxy(upstreamPort);
    await new Promise<void>((resolve, reject) => {
      proxy.#server.once('error', reject);
      proxy.#server.listen(0, '127.0.0.1', () => resolve());
    });
    return proxy;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** The primary's epoch and highest seq on the current standby connection (null before it sent a frame). */
  get stream(): { epoch: number; lastSeq: number; frames: number } | null {
    const p = this.#current;
    if (!p || p.lastEpoch === null) return null;
    return { epoch: p.lastEpoch, lastSeq: p.lastSeq, frames: p.frames };
  }

  /** Writes `bytes` to the current standby connection, between two of the primary's frames. False without one. */
  inject(bytes: Uint8Array): boolean {
    const p = this.#current;
    if (!p || p.downstream.destroyed || !p.downstream.writable) return false;
    p.downstream.write(bytes);
    return true;
  }

  #onConnection(downstream: Socket): void {
    if (this.#closed) {
      downstream.destroy();
      return;
    }
    const upstream = connect({ host: '127.0.0.1', port: this.#upstreamPort, noDelay: true });
    const pair: Pair = { downstream, upstream, pending: Buffer.alloc(0), lastEpoch: null, lastSeq: 0, frames: 0 };
    this.#pairs.add(pair);
    this.#current = pair;
    const end = (): void => {
      downstream.destroy();
      upstream.destroy();
      this.#pairs.delete(pair);
      if (this.#current === pair) this.#current = null;
    };
    for (const s of [downstream, upstream]) {
      s.on('error', end);
      s.on('close', end);
    }
    downstream.on('data', (chunk: Buffer) => upstream.write(chunk));
    upstream.on('data', (chunk: Buffer) => this.#fromPrimary(pair, chunk));
    this.emit('paired');
  }

  #fromPrimary(pair: Pair, chunk: Buffer): void {
    pair.pending = pair.pending.length === 0 ? chunk : Buffer.concat([pair.pending, chunk]);
    for (;;) {
      const b = pair.pending;
      if (b.length < FRAME_HEADER_BYTES) return;
      if (b.readUInt16BE(0) !== 0x4852) {
        // Not our framing (cannot happen with a real primary): pass it on untouched.
        pair.downstream.write(b);
        pair.pending = Buffer.alloc(0);
        this.emit('unframed');
        return;
      }
      const size = FRAME_HEADER_BYTES + b.readUInt32BE(16) + FRAME_MAC_BYTES;
      if (b.length < size) return;
      pair.lastEpoch = b.readUInt32BE(4);
      pair.lastSeq = Math.max(pair.lastSeq, Number(b.readBigUInt64BE(8)));
      pair.frames++;
      pair.downstream.write(b.subarray(0, size));
      pair.pending = b.subarray(size);
    }
  }

  /** Idempotent: closes the listener and every connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of this.#pairs) {
      p.downstream.destroy();
      p.upstream.destroy();
    }
    this.#pairs.clear();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
