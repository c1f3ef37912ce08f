/**
 * The primary's side: each TLS connection's traffic secrets, from Node's `keylog` events (NSS
 * key log lines), and the negotiated suite, as a TlsSessionSecrets record ready to replicate
 * (schema in mcu/src/wire/blobs.ts). Node exposes no record sequence numbers and cannot export
 * a session, so these secrets plus the byte streams are all a standby gets (design.md 12).
 */
import { EventEmitter } from 'node:events';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import { safeEmit } from '../../core/events.ts';
import { createLogger, type Logger } from '../../core/logger.ts';
import { tlsSessionSecretsSchema } from '../../wire/blobs.ts';
import { cannotContinue, TlsSecretsInvalidError, type TlsCannotContinue } from './errors.ts';
import { isSupportedSuite, type TlsSuiteName } from './key-schedule.ts';

/** What the standby needs to continue one TLS 1.3 connection (hex secrets as in the key log). */
export interface TlsSessionSecrets {
  version: 1;
  protocol: 'TLSv1.3';
  suite: TlsSuiteName;
  /** The ClientHello's random, hex (64 digits): what ties the key log lines to the connection. */
  clientRandom: string;
  clientHandshakeTrafficSecret: string;
  serverHandshakeTrafficSecret: string;
  /** client_application_traffic_secret_0. */
  clientTrafficSecret0: string;
  /** server_application_traffic_secret_0. */
  serverTrafficSecret0: string;
  /** Wall clock when the handshake completed, epoch ms (for logs). */
  capturedAt: number;
}

export type TlsSecretsResult = { ok: true; secrets: TlsSessionSecrets } | TlsCannotContinue;

/** The key log labels we keep, and the field each fills. */
const LABELS = {
  CLIENT_HANDSHAKE_TRAFFIC_SECRET: 'clientHandshakeTrafficSecret',
  SERVER_HANDSHAKE_TRAFFIC_SECRET: 'serverHandshakeTrafficSecret',
  CLIENT_TRAFFIC_SECRET_0: 'clientTrafficSecret0',
  SERVER_TRAFFIC_SECRET_0: 'serverTrafficSecret0',
} as const;
type SecretField = (typeof LABELS)[keyof typeof LABELS];

/** The negotiated protocol and suite, as `getProtocol()` and `getCipher().standardName` say. */
export interface Negotiated {
  protocol: string | null;
  suite: string | null;
}

/**
 * Builds the record from one connection's key log lines and what it negotiated. TLS 1.2, an
 * unsupported suite or a missing secret is a "cannot continue" result with a stable code.
 */
export function secretsFromKeylog(lines: Iterable<string | Buffer>, negotiated: Negotiated, now = Date.now()): TlsSecretsResult {
  if (negotiated.protocol !== 'TLSv1.3') {
    return cannotContinue('TLS_VERSION_UNSUPPORTED', `the connection negotiated ${negotiated.protocol ?? 'no protocol'}; only TLS 1.3 sessions can be continued`);
  }
  if (negotiated.suite === null || !isSupportedSuite(negotiated.suite)) {
    return cannotContinue('TLS_SUITE_UNSUPPORTED', `suite ${negotiated.suite ?? 'unknown'} is not one of AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305`);
  }
  const found: Partial<Record<SecretField, string>> = {};
  let clientRandom: string | null = null;
  for (const raw of lines) {
    const line = (typeof raw === 'string' ? raw : raw.toString('latin1')).trim();
    const [label, random, secret] = line.split(' ');
    if (label === undefined || random === undefined || secret === undefined || !(label in LABELS)) continue;
    const lowerRandom = random.toLowerCase();
    // Lines of another connection (a shared key log) must not mix in.
    if (clientRandom !== null && lowerRandom !== clientRandom) continue;
    clientRandom = lowerRandom;
    found[LABELS[label as keyof typeof LABELS]] = secret.toLowerCase();
  }
  const missing = Object.entries(LABELS).filter(([, field]) => found[field] === undefined).map(([label]) => label);
  if (clientRandom === null || missing.length > 0) {
    return cannotContinue('TLS_SECRETS_INCOMPLETE', `the key log lacks ${missing.join(', ')}`);
  }
  const record = {
    version: 1,
    protocol: 'TLSv1.3',
    suite: negotiated.suite,
    clientRandom,
    clientHandshakeTrafficSecret: found.clientHandshakeTrafficSecret,
    serverHandshakeTrafficSecret: found.serverHandshakeTrafficSecret,
    clientTrafficSecret0: found.clientTrafficSecret0,
    serverTrafficSecret0: found.serverTrafficSecret0,
    capturedAt: now,
  };
  const parsed = tlsSessionSecretsSchema.safeParse(record);
  if (!parsed.success) return cannotContinue('TLS_SECRETS_INCOMPLETE', `the key log's secrets do not fit ${negotiated.suite}: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  return { ok: true, secrets: parsed.data };
}

/** Validates a replicated record (throws TlsSecretsInvalidError). */
export function parseTlsSessionSecrets(data: unknown): TlsSessionSecrets {
  const parsed = tlsSessionSecretsSchema.safeParse(data);
  if (!parsed.success) throw new TlsSecretsInvalidError(parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; '));
  return parsed.data;
}

/** A secret of a record as bytes. */
export function secretBytes(hex: string): Buffer {
  return Buffer.from(hex, 'hex');
}

export type TlsSecretsCollectorEvents = {
  /** A connection finished its handshake: its secrets, or why it cannot be continued. */
  secrets: [socket: TLSSocket, result: TlsSecretsResult];
};

/**
 * Collects the secrets of every connection of a `tls.Server` (or of TLSSockets handed to
 * `watch`, for sockets made over a tap). Attach before the first connection: Node turns a
 * socket's key log on only when a listener exists at its start.
 */
export class TlsSecretsCollector extends EventEmitter<TlsSecretsCollectorEvents> {
  readonly #log: Logger;
  readonly #lines = new WeakMap<TLSSocket, Buffer[]>();
  readonly #results = new WeakMap<TLSSocket, TlsSecretsResult>();
  readonly #servers: TlsServer[] = [];
  readonly #watched = new Map<TLSSocket, { keylog: (line: Buffer) => void; secure: () => void }>();
  #closed = false;

  readonly #onKeylog = (line: Buffer, socket: TLSSocket): void => this.#keylog(socket, line);
  readonly #onSecure = (socket: TLSSocket): void => this.#complete(socket);

  constructor(options: { logger?: Logger } = {}) {
    super();
    this.#log = options.logger ?? createLogger('tls-secrets');
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Collects the secrets of every connection `server` accepts from now on. */
  attach(server: TlsServer): this {
    if (this.#closed) return this;
    server.on('keylog', this.#onKeylog);
    server.on('secureConnection', this.#onSecure);
    this.#servers.push(server);
    return this;
  }

  /** Collects one server-side TLSSocket's secrets (one made with `new TLSSocket(tap, { isServer: true })`); call before its handshake. */
  watch(socket: TLSSocket): this {
    if (this.#closed || this.#watched.has(socket)) return this;
    const listeners = {
      keylog: (line: Buffer): void => this.#keylog(socket, line),
      secure: (): void => this.#complete(socket),
    };
    socket.on('keylog', listeners.keylog);
    socket.once('secure', listeners.secure);
    socket.once('close', () => this.#unwatch(socket));
    this.#watched.set(socket, listeners);
    return this;
  }

  /** The result of a connection whose handshake completed, undefined before. */
  resultFor(socket: TLSSocket): TlsSecretsResult | undefined {
    return this.#results.get(socket);
  }

  #keylog(socket: TLSSocket, line: Buffer): void {
    const lines = this.#lines.get(socket);
    if (lines) lines.push(line);
    else this.#lines.set(socket, [line]);
  }

  #complete(socket: TLSSocket): void {
    if (this.#results.has(socket)) return;
    const cipher = socket.getCipher() as { standardName?: string; name?: string } | undefined;
    const result = secretsFromKeylog(this.#lines.get(socket) ?? [], { protocol: socket.getProtocol(), suite: cipher?.standardName ?? cipher?.name ?? null });
    this.#lines.delete(socket);
    this.#results.set(socket, result);
    if (!result.ok) this.#log.warn(`TLS connection cannot be continued at takeover: ${result.detail}`, { code: result.code, remote: socket.remoteAddress });
    safeEmit(this, this.#log, 'secrets', socket, result);
    this.#unwatch(socket);
  }

  #unwatch(socket: TLSSocket): void {
    const listeners = this.#watched.get(socket);
    if (!listeners) return;
    socket.off('keylog', listeners.keylog);
    socket.off('secure', listeners.secure);
    this.#watched.delete(socket);
  }

  /** Stops collecting (idempotent); results already made stay readable. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const server of this.#servers) {
      server.off('keylog', this.#onKeylog);
      server.off('secureConnection', this.#onSecure);
    }
    this.#servers.length = 0;
    for (const socket of [...this.#watched.keys()]) this.#unwatch(socket);
  }
}
