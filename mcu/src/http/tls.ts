/**
 * The service's TLS: the page, signaling (socket.io over WSS) and, with the admin token, /status
 * and /metrics on the public listener, from the certificate and key files of tls.certFile and
 * tls.keyFile. The pair is read and checked as one (readTlsCredentials) at start (a bad pair is a
 * configuration error: config.ts) and again at every reload (SIGHUP): the new pair goes to new
 * connections through `setSecureContext`, open connections keep theirs, and a pair that does not
 * load is logged and the one in use kept (ServiceTls.reload).
 *
 * No logger import here: config.ts checks the files through this module, and the logger reads
 * config.ts when it loads; the owner of a ServiceTls passes its own createLogger() child.
 */
import { createPrivateKey, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createSecureContext } from 'node:tls';
import { ReplicationMalformedError, TlsCredentialsError } from '../core/errors.ts';
import { safeEmit } from '../core/events.ts';
import type { Logger } from '../core/logger.ts';

/** Where the pair lives (absolute paths; tls.certFile, tls.keyFile). */
export interface TlsFiles {
  /** PEM: the certificate, then its chain if any. */
  certFile: string;
  /** PEM: its private key, unencrypted. */
  keyFile: string;
}

/** A certificate and key that load and belong together. */
export interface TlsCredentials {
  readonly files: TlsFiles;
  readonly cert: Buffer;
  readonly key: Buffer;
  /** SHA-256 fingerprint of the (leaf) certificate, as browsers show it: colon-separated upper-case hex. */
  readonly fingerprint256: string;
  readonly subject: string;
  /** e.g. `DNS:host, DNS:localhost, IP Address:127.0.0.1`; null when the certificate has none. */
  readonly subjectAltName: string | null;
  /** ISO timestamps of the leaf's validity. */
  readonly validFrom: string;
  readonly validTo: string;
}

/** Larger than any certificate chain or key: a file this big was named by mistake. */
const MAX_PEM_BYTES = 1024 * 1024;

/**
 * Reads and checks the pair: both files readable, the certificate PEM that parses, the key an
 * unencrypted PEM private key, the key the certificate's, and OpenSSL accepting both for a server.
 * Throws a TlsCredentialsError naming the file and the fix.
 */
export function readTlsCredentials(files: TlsFiles): TlsCredentials {
  const cert = readPem(files.certFile, 'tls.certFile');
  const key = readPem(files.keyFile, 'tls.keyFile');
  if (!cert.includes('-----BEGIN CERTIFICATE-----')) {
    throw new TlsCredentialsError('tls.certFile', `${files.certFile} holds no PEM certificate ("-----BEGIN CERTIFICATE-----"): name the certificate file (PEM, leaf first, then its chain)`);
  }
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new TlsCredentialsError('tls.certFile', `${files.certFile} is not a valid PEM certificate (${(err as Error).message}): name the certificate file (PEM, leaf first)`, { cause: err });
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    const encrypted = /ENCRYPTED/.test(key.toString('latin1'));
    const fix = encrypted
      ? `the key is encrypted: store it without a passphrase (openssl pkey -in ${files.keyFile} -out key.pem), readable by the MCU's user only`
      : 'name the private key file (PEM, "-----BEGIN PRIVATE KEY-----")';
    throw new TlsCredentialsError('tls.keyFile', `${files.keyFile} holds no usable private key (${(err as Error).message}): ${fix}`, { cause: err });
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new TlsCredentialsError(
      'tls.keyFile',
      `the key in ${files.keyFile} does not belong to the certificate in ${files.certFile} (${x509.subject.replace(/\n/g, ', ')}): name that certificate's key, or the certificate issued for this key`,
    );
  }
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    throw new TlsCredentialsError('tls.certFile', `OpenSSL refuses the pair ${files.certFile} / ${files.keyFile}: ${(err as Error).message}`, { cause: err });
  }
  return {
    files: { ...files },
    cert,
    key,
    fingerprint256: x509.fingerprint256,
    subject: x509.subject.replace(/\n/g, ', '),
    subjectAltName: x509.subjectAltName ?? null,
    validFrom: new Date(x509.validFrom).toISOString(),
    validTo: new Date(x509.validTo).toISOString(),
  };
}

function readPem(path: string, setting: TlsCredentialsError['setting']): Buffer {
  try {
    const stat = statSync(path);
    if (!stat.isFile()) throw new TlsCredentialsError(setting, `${path} is not a regular file: name the PEM file itself`);
    if (stat.size > MAX_PEM_BYTES) throw new TlsCredentialsError(setting, `${path} is ${stat.size} bytes, larger than any certificate or key (at most ${MAX_PEM_BYTES}): is it the right file?`);
    return readFileSync(path);
  } catch (err) {
    if (err instanceof TlsCredentialsError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new TlsCredentialsError(setting, `${path} does not exist: create it, or name an existing file`, { cause: err });
    if (code === 'EACCES' || code === 'EPERM') {
      throw new TlsCredentialsError(setting, `${path} cannot be read by this process (uid ${process.getuid?.() ?? '?'}): make it readable by the MCU's user`, { cause: err });
    }
    throw new TlsCredentialsError(setting, `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** What /status shows of the service's TLS. */
export interface TlsStatus {
  certFile: string;
  keyFile: string;
  fingerprint256: string;
  subject: string;
  subjectAltName: string | null;
  validTo: string;
  /** When the pair in use was loaded (ISO). */
  loadedAt: string;
  /** Reloads that replaced the pair since start. */
  reloads: number;
  /** The last reload that was refused (the pair in use stayed), null if none was. */
  lastReloadError: { at: string; code: string; message: string } | null;
}

export type TlsReloadOutcome = { reloaded: true; credentials: TlsCredentials } | { reloaded: false; error: TlsCredentialsError };

export type ServiceTlsEvents = {
  /** A new pair is in use for new connections. */
  reloaded: [TlsCredentials];
  /** The files did not load: the pair in use stays. */
  'reload-failed': [TlsCredentialsError];
};

export interface ServiceTlsOptions {
  files: TlsFiles;
  /** The owner's logger (createLogger('tls', ...)): reloads and refusals are logged there. */
  log: Logger;
  /** An already checked pair (default: read now; throws TlsCredentialsError). */
  credentials?: TlsCredentials;
}

type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * The pair a process serves with and the HTTPS servers using it. One per process: a standby
 * holds it from its start, so its promoted MCU serves the pair it last reloaded without reading
 * the files on the promotion path. close() forgets the servers (idempotent); they are their
 * owner's to close.
 */
/** Size of `tls.Server` session ticket keys. */
export const TLS_TICKET_KEYS_BYTES = 48;
/**
 * The session id context of every server (OpenSSL resumes a ticket only in the context it was
 * issued in). Node's default hashes the process's argv, which differs between the primary
 * (mcu/src/main.ts) and the standby (standby/src/main.ts): the standby would refuse every ticket.
 */
const TLS_SESSION_ID_CONTEXT = 'hot-standby-mcu';

export class ServiceTls extends EventEmitter<ServiceTlsEvents> {
  readonly files: TlsFiles;
  readonly #log: Logger;
  #credentials: TlsCredentials;
  #loadedAt = new Date();
  #reloads = 0;
  #lastReloadError: TlsStatus['lastReloadError'] = null;
  readonly #servers = new Set<HttpsServer>();
  /**
   * The session ticket keys (48 bytes: name, HMAC and AES keys) of every server made here. The
   * primary replicates them to its standby (snapshot extra `tlsTicketKeys`), which adopts them,
   * so after a failover a client that reconnects resumes its TLS session from the ticket the
   * dead primary issued instead of a full handshake. Node does not rotate them.
   */
  #ticketKeys: Buffer = randomBytes(TLS_TICKET_KEYS_BYTES);
  #closed = false;

  /** The service's TLS of a configuration; null without tls.certFile (plain HTTP). Throws TlsCredentialsError. */
  static fromConfig(files: TlsFiles | null, log: Logger): ServiceTls | null {
    return files === null ? null : new ServiceTls({ files, log });
  }

  constructor(opts: ServiceTlsOptions) {
    super();
    this.files = { ...opts.files };
    this.#log = opts.log;
    this.#credentials = opts.credentials ?? readTlsCredentials(this.files);
    this.#warnIfExpired(this.#credentials);
  }

  /** Served anyway (a proxy or a client may not check), but browsers refuse it: say so. */
  #warnIfExpired(c: TlsCredentials): void {
    const now = Date.now();
    if (Date.parse(c.validTo) < now || Date.parse(c.validFrom) > now) {
      this.#log.warn(`the TLS certificate in ${c.files.certFile} is not valid now (valid ${c.validFrom} to ${c.validTo}): browsers will refuse it; renew it and send SIGHUP`, {
        fingerprint256: c.fingerprint256,
      });
    }
  }

  get credentials(): TlsCredentials {
    return this.#credentials;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** An HTTPS server serving `handler` with the pair in use, and every pair reloaded later. */
  createServer(handler: RequestHandler): HttpsServer {
    const server = createHttpsServer(
      { cert: this.#credentials.cert, key: this.#credentials.key, ticketKeys: this.#ticketKeys, sessionIdContext: TLS_SESSION_ID_CONTEXT },
      handler,
    );
    if (!this.#closed) this.#servers.add(server);
    server.once('close', () => this.#servers.delete(server));
    return server;
  }

  /**
   * Reads the files again. When the pair loads, new connections of every server get it (open ones
   * keep theirs: nothing is dropped); when it does not, it is logged and the pair in use stays.
   */
  reload(): TlsReloadOutcome {
    let next: TlsCredentials;
    try {
      next = readTlsCredentials(this.files);
    } catch (err) {
      if (!(err instanceof TlsCredentialsError)) throw err;
      this.#lastReloadError = { at: new Date().toISOString(), code: err.code, message: err.message };
      this.#log.error(`TLS reload refused, still serving the certificate in use (${this.#credentials.fingerprint256}): ${err.message}`, { code: err.code });
      safeEmit(this, this.#log, 'reload-failed', err);
      return { reloaded: false, error: err };
    }
    this.#warnIfExpired(next);
    const previous = this.#credentials.fingerprint256;
    // With the ticket keys: a new context would otherwise make new ones, and no ticket would resume.
    for (const server of this.#servers) server.setSecureContext({ cert: next.cert, key: next.key, ticketKeys: this.#ticketKeys, sessionIdContext: TLS_SESSION_ID_CONTEXT });
    this.#credentials = next;
    this.#loadedAt = new Date();
    this.#reloads++;
    this.#log.info('TLS certificate reloaded: new connections get it, open ones keep theirs', {
      fingerprint256: next.fingerprint256,
      previous,
      subject: next.subject,
      validTo: next.validTo,
      servers: this.#servers.size,
    });
    safeEmit(this, this.#log, 'reloaded', next);
    return { reloaded: true, credentials: next };
  }

  /** A copy of the session ticket keys in use (secret: they decrypt every ticket). */
  get ticketKeys(): Buffer {
    return Buffer.from(this.#ticketKeys);
  }

  /**
   * Serves with these ticket keys from now on (the primary's, replicated): every server made here,
   * and those made later (a promotion's). Throws ReplicationMalformedError for keys of the wrong size.
   */
  adoptTicketKeys(keys: Buffer): void {
    if (keys.length !== TLS_TICKET_KEYS_BYTES) {
      throw new ReplicationMalformedError(`TLS session ticket keys are ${TLS_TICKET_KEYS_BYTES} bytes, not ${keys.length}`);
    }
    if (keys.equals(this.#ticketKeys)) return;
    this.#ticketKeys = Buffer.from(keys);
    for (const server of this.#servers) server.setTicketKeys(this.#ticketKeys);
    this.#log.info("TLS session ticket keys adopted (the primary's): clients resume their TLS sessions here after a failover", { servers: this.#servers.size });
  }

  status(): TlsStatus {
    const c = this.#credentials;
    return {
      certFile: c.files.certFile,
      keyFile: c.files.keyFile,
      fingerprint256: c.fingerprint256,
      subject: c.subject,
      subjectAltName: c.subjectAltName,
      validTo: c.validTo,
      loadedAt: this.#loadedAt.toISOString(),
      reloads: this.#reloads,
      lastReloadError: this.#lastReloadError,
    };
  }

  /** Forgets its servers (their owners close them). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#servers.clear();
  }
}
