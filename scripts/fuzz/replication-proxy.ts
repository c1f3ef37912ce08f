/**
 * A TCP proxy between a primary's replication port and its standby that can put bytes into the
 * primary -> standby stream on the wire, as an on-path attacker holding the shared secret (or a
 * corrupting network) would. The channel is encrypted with per-connection keys and the frame's
 * index as nonce (frame-codec.ts), so the proxy is a full man in the middle of that direction:
 * it reads both link hellos, derives the primary -> standby key, opens each of the primary's
 * frames and seals it again as the next frame towards the standby; an injected frame takes the
 * next nonce, and the primary's later frames follow it. An injection always lands between two
 * whole frames; the proxy remembers the epoch and the highest seq the primary sent on the
 * current connection, for frames that must look current. The standby -> primary direction is
 * forwarded as it comes.
 */
import { EventEmitter } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import {
  FrameDecoder,
  FrameSealer,
  LINK_HELLO_BYTES,
  deriveFrameKey,
  encodeFrame,
  linkHelloNonce,
  type Frame,
  type Secret,
} from '../../mcu/src/wire/frame-codec.ts';
import type { FrameSealing } from '../common/raw-replication-peer.ts';

interface PrimaryDirection {
  primaryNonce: Buffer;
  standbyNonce: Buffer;
  decoder: FrameDecoder;
  sealer: FrameSealer;
}

interface Pair {
  downstream: Socket;
  upstream: Socket;
  /** primary -> standby bytes before the keys exist (the primary's hello and what follows it). */
  pending: Buffer;
  /** The standby's first bytes, until its link hello is complete. */
  standbyHello: Buffer;
  primaryHello: Buffer | null;
  /** Null until both hellos passed. */
  direction: PrimaryDirection | null;
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
  readonly #secret: Secret;
  readonly #pairs = new Set<Pair>();
  #current: Pair | null = null;
  #closed = false;

  private constructor(upstreamPort: number, secret: Secret) {
    super();
    this.#upstreamPort = upstreamPort;
    this.#secret = secret;
    this.#server = createServer({ noDelay: true }, (socket) => this.#onConnection(socket));
  }

  /** Listens on a free port of 127.0.0.1, forwarding to the primary at 127.0.0.1:`upstreamPort`. */
  static async listen(upstreamPort: number, secret: Secret): Promise<ReplicationProxy> {
    const proxy = new ReplicationProxy(upstreamPort, secret);
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

  /**
   * Writes what `build` makes to the current standby connection, between two of the primary's
   * frames; `build` seals with this connection's primary -> standby key (the next nonce). Null
   * without a connection whose keys are known.
   */
  inject<T extends { bytes: Uint8Array }>(build: (sealing: FrameSealing) => T): T | null {
    const p = this.#current;
    const d = p?.direction;
    if (!p || !d || p.downstream.destroyed || !p.downstream.writable) return null;
    const sealing: FrameSealing = {
      seal: (frame: Frame) => d.sealer.seal(frame),
      sealWithSecret: (frame: Frame, secret: Secret) => encodeFrame(frame, deriveFrameKey(secret, d.primaryNonce, d.standbyNonce), d.sealer.sealed),
    };
    const built = build(sealing);
    p.downstream.write(built.bytes);
    return built;
  }

  #onConnection(downstream: Socket): void {
    if (this.#closed) {
      downstream.destroy();
      return;
    }
    const upstream = connect({ host: '127.0.0.1', port: this.#upstreamPort, noDelay: true });
    const pair: Pair = {
      downstream,
      upstream,
      pending: Buffer.alloc(0),
      standbyHello: Buffer.alloc(0),
      primaryHello: null,
      direction: null,
      lastEpoch: null,
      lastSeq: 0,
      frames: 0,
    };
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
    downstream.on('data', (chunk: Buffer) => {
      if (pair.standbyHello.length < LINK_HELLO_BYTES) {
        pair.standbyHello = Buffer.concat([pair.standbyHello, chunk]);
        this.#fromPrimary(pair, Buffer.alloc(0));
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => this.#fromPrimary(pair, chunk));
    this.emit('paired');
  }

  #fromPrimary(pair: Pair, chunk: Buffer): void {
    if (!pair.direction) {
      pair.pending = pair.pending.length === 0 ? chunk : Buffer.concat([pair.pending, chunk]);
      if (!pair.primaryHello) {
        if (pair.pending.length < LINK_HELLO_BYTES) return;
        if (!linkHelloNonce(pair.pending)) return this.#unframed(pair);
        pair.primaryHello = pair.pending.subarray(0, LINK_HELLO_BYTES);
        pair.downstream.write(pair.primaryHello);
        pair.pending = pair.pending.subarray(LINK_HELLO_BYTES);
      }
      const standbyNonce = linkHelloNonce(pair.standbyHello);
      const primaryNonce = linkHelloNonce(pair.primaryHello);
      if (!standbyNonce || !primaryNonce) return;
      const key = deriveFrameKey(this.#secret, primaryNonce, standbyNonce);
      pair.direction = { primaryNonce, standbyNonce, decoder: new FrameDecoder(key), sealer: new FrameSealer(key) };
      chunk = pair.pending;
      pair.pending = Buffer.alloc(0);
    }
    const { frames, error } = pair.direction.decoder.push(chunk);
    for (const frame of frames) {
      pair.lastEpoch = frame.epoch;
      pair.lastSeq = Math.max(pair.lastSeq, frame.seq);
      pair.frames++;
      pair.downstream.write(pair.direction.sealer.seal(frame));
    }
    // The primary's stream does not open with the secret the proxy was given: cannot happen with a real primary.
    if (error) this.#unframed(pair);
  }

  #unframed(pair: Pair): void {
    this.emit('unframed');
    pair.downstream.destroy();
    pair.upstream.destroy();
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
