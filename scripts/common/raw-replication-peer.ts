/**
 * A replication peer played by hand, for tests and fuzz targets that write frames a real
 * primary or standby never would: it does the link handshake (frame-codec.ts) on a socket, then
 * seals whatever frames it is given, in order, with this connection's key.
 */
import type { Socket } from 'node:net';
import {
  FrameType,
  LinkHandshake,
  deriveFrameKey,
  encodeFrame,
  type Frame,
  type FrameDecoder,
  type FrameSealer,
  type Secret,
} from '../../mcu/src/wire/frame-codec.ts';

/** How a hand-played peer seals what it sends: with this connection's key, or as another secret would. */
export interface FrameSealing {
  /** The next frame of this direction, sealed with the connection's key. */
  seal(frame: Frame): Buffer;
  /** The next frame sealed with the key `secret` would give on this connection (it does not open on the other side). */
  sealWithSecret(frame: Frame, secret: Secret): Buffer;
}

export class RawReplicationPeer implements FrameSealing {
  readonly #sealer: FrameSealer;
  readonly #nonces: { ours: Buffer; theirs: Buffer };
  /** Opens what the other side sends (for tests that read it). */
  readonly decoder: FrameDecoder;

  private constructor(sealer: FrameSealer, decoder: FrameDecoder, nonces: { ours: Buffer; theirs: Buffer }) {
    this.#sealer = sealer;
    this.decoder = decoder;
    this.#nonces = nonces;
  }

  /**
   * Writes our link hello on `socket` (after `preamble`, bytes a stranger might send first) and
   * resolves once the other side's hello came; rejected when the socket closes first or the
   * hello is not one. With another `secret` than the other side's, every frame is refused there.
   */
  static start(socket: Socket, secret: Secret, options: { preamble?: Buffer; timeoutMs?: number } = {}): Promise<RawReplicationPeer> {
    const handshake = new LinkHandshake(secret);
    return new Promise<RawReplicationPeer>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error('no link hello from the other side')), options.timeoutMs ?? 5000);
      let peer: RawReplicationPeer | null = null;
      const done = (result: RawReplicationPeer | Error): void => {
        clearTimeout(timer);
        socket.off('close', onClose);
        // Keeps reading after the hello (into the decoder): a paused socket would never see its end.
        if (result instanceof Error) socket.off('data', onData);
        if (result instanceof Error) reject(result);
        else resolve(result);
      };
      const onData = (chunk: Buffer): void => {
        if (peer) {
          peer.decoder.push(chunk);
          return;
        }
        try {
          const keys = handshake.push(chunk);
          if (keys) {
            keys.decoder.push(keys.rest);
            peer = new RawReplicationPeer(keys.sealer, keys.decoder, { ours: keys.nonce, theirs: keys.peerNonce });
            done(peer);
          }
        } catch (err) {
          done(err as Error);
        }
      };
      const onClose = (): void => done(new Error('the socket closed before the link hello'));
      socket.on('data', onData);
      socket.on('close', onClose);
      socket.write(options.preamble ? Buffer.concat([options.preamble, handshake.hello]) : handshake.hello);
    });
  }

  /** The next frame of this direction, sealed. */
  seal(frame: Frame): Buffer {
    return this.#sealer.seal(frame);
  }

  sealWithSecret(frame: Frame, secret: Secret): Buffer {
    return encodeFrame(frame, deriveFrameKey(secret, this.#nonces.ours, this.#nonces.theirs), this.#sealer.sealed);
  }

  /** The next frame, a JSON message (or any text as its payload). */
  json(message: unknown, seq: number, epoch: number): Buffer {
    const payload = Buffer.isBuffer(message) ? message : Buffer.from(typeof message === 'string' ? message : JSON.stringify(message));
    return this.seal({ type: FrameType.Json, epoch, seq, payload });
  }
}
