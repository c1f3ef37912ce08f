/**
 * One TLS connection the primary serves over its record tap, with the secrets the standby will
 * need, reported at the one safe moment: `net.Socket -> TlsRecordTap -> tls.TLSSocket(isServer)`
 * (hand `tlsSocket` to the HTTP server's 'connection'). The key log lines are collected as
 * OpenSSL emits them; before each batch of whole records goes to the socket the secrets are
 * tried, and the first time they are complete `onSecrets` runs, synchronously, before those
 * records are written: so the `tls-secrets` blob it sends precedes, in the ordered replication
 * stream, the output log of every record under them (output commit logs a write when it is
 * made). A connection that cannot be continued (TLS 1.2, another suite, a key log that stays
 * incomplete until the handshake is done) is reported once too, with its stable code.
 */
import type { Duplex } from 'node:stream';
import { TLSSocket, type SecureContext } from 'node:tls';
import { createLogger, type Logger } from '../../core/logger.ts';
import { TlsRecordTap } from './record-tap.ts';
import { secretsFromKeylog, type TlsSecretsResult } from './secrets.ts';

export interface TappedTlsConnectionOptions {
  /** The client's TCP socket (its writes go through output commit). */
  socket: Duplex;
  secureContext: SecureContext;
  /** The connection's secrets or why it cannot be continued; once, before any record under them leaves. */
  onSecrets: (result: TlsSecretsResult) => void;
  logger?: Logger;
}

export class TappedTlsConnection {
  readonly tap: TlsRecordTap;
  /** What the HTTP server gets (`httpServer.emit('connection', tlsSocket)`). */
  readonly tlsSocket: TLSSocket;
  readonly #onSecrets: (result: TlsSecretsResult) => void;
  readonly #log: Logger;
  #keylog: Buffer[] = [];
  #result: TlsSecretsResult | null = null;
  /** Output offset (ciphertext) at which the secrets were reported. */
  #reportedAt: number | null = null;
  #closed = false;

  constructor(options: TappedTlsConnectionOptions) {
    this.#onSecrets = options.onSecrets;
    this.#log = options.logger ?? createLogger('tls-tapped-connection');
    this.tap = new TlsRecordTap(options.socket, { beforeOutput: () => this.#tryReport(false), logger: this.#log });
    this.tlsSocket = new TLSSocket(this.tap, { isServer: true, secureContext: options.secureContext });
    this.tlsSocket.on('keylog', (line: Buffer) => {
      if (this.#result === null) this.#keylog.push(line);
    });
    // The handshake is over: whatever is still missing will not come.
    this.tlsSocket.once('secure', () => this.#tryReport(true));
  }

  /** The reported result, null before. */
  get secrets(): TlsSecretsResult | null {
    return this.#result;
  }

  /** The ciphertext output offset at which the secrets were reported (every record from it on is under them or later ones). */
  get reportedAtOutput(): number | null {
    return this.#reportedAt;
  }

  /** Ends the connection at once (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.tlsSocket.destroy();
    this.tap.close();
  }

  #tryReport(handshakeDone: boolean): void {
    if (this.#result !== null) return;
    const protocol = this.tlsSocket.getProtocol();
    // Before the ServerHello nothing is negotiated: the first flight carries no secret.
    if (protocol === null && !handshakeDone) return;
    const cipher = this.tlsSocket.getCipher() as { standardName?: string; name?: string } | undefined;
    const result = secretsFromKeylog(this.#keylog, { protocol, suite: cipher?.standardName ?? cipher?.name ?? null });
    if (!result.ok && result.code === 'TLS_SECRETS_INCOMPLETE' && !handshakeDone) return;
    this.#result = result;
    this.#reportedAt = this.tap.outputOffset;
    this.#keylog = [];
    if (!result.ok) this.#log.warn(`TLS connection cannot be continued at takeover: ${result.detail}`, { code: result.code });
    try {
      this.#onSecrets(result);
    } catch (err) {
      this.#log.error(`onSecrets failed: ${(err as Error).message}`);
    }
  }
}
