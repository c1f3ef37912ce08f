/**
 * The primary's tap between a client's TCP socket and the TLS layer that serves it (design.md
 * section 12, README *Integration*):
 *
 *   net.Socket (output commit) <-> TlsRecordTap <-> new tls.TLSSocket(tap, { isServer: true })
 *
 * Output: the TLS layer's ciphertext is cut at record boundaries and only **whole records**
 * reach the socket, so output commit (which logs each socket write before the kernel gets it)
 * never leaves the standby a log that ends inside a record: the standby could not finish that
 * record (it would be TLS_RECORD_CUT). `beforeOutput` runs synchronously before each batch of
 * whole records goes to the socket: where the primary sends the connection's `tls-secrets`
 * blob, so it precedes, in the ordered replication stream, the output log of any record under
 * those secrets.
 *
 * Input: the client's ciphertext is handed to the TLS layer as it comes, counted, and framed
 * into records: `inputBoundary` is the offset just after the last whole record handed over, the
 * consumed-input offset in ciphertext the standby's tracker stops at (`until`); the capture's
 * offsets are ciphertext offsets, the TLSSocket's plaintext ones are not.
 */
import { Duplex } from 'node:stream';
import { createLogger, type Logger } from '../../core/logger.ts';
import { TlsRecordInvalidError } from './errors.ts';
import { RecordFramer, type RawRecord } from './record.ts';

export interface TlsRecordTapOptions {
  /** Called before whole records go to the socket (the records about to be written). */
  beforeOutput?: (records: RawRecord[]) => void;
  logger?: Logger;
}

export interface TlsRecordTapStats {
  /** Ciphertext bytes written to the socket (whole records). */
  outputBytes: number;
  outputRecords: number;
  /** Ciphertext of an incomplete record the TLS layer wrote, held until its rest comes. */
  heldOutputBytes: number;
  /** Ciphertext bytes handed to the TLS layer. */
  inputBytes: number;
  /** Offset after the last whole record handed to the TLS layer. */
  inputBoundary: number;
}

export class TlsRecordTap extends Duplex {
  readonly #socket: Duplex;
  readonly #beforeOutput: ((records: RawRecord[]) => void) | null;
  readonly #log: Logger;
  readonly #outputFramer = new RecordFramer();
  readonly #inputFramer = new RecordFramer();
  #outputBytes = 0;
  #outputRecords = 0;
  #inputBytes = 0;
  /** Input framing failed: the boundary stays where the last good record ended. */
  #inputUnframed = false;
  #closed = false;

  constructor(socket: Duplex, options: TlsRecordTapOptions = {}) {
    super({ allowHalfOpen: false });
    this.#socket = socket;
    this.#beforeOutput = options.beforeOutput ?? null;
    this.#log = options.logger ?? createLogger('tls-record-tap');
    socket.on('data', (chunk: Buffer) => this.#onInput(chunk));
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
    socket.on('drain', () => this.emit('drain'));
  }

  /** Offset after the last whole client record handed to the TLS layer (ciphertext). */
  get inputBoundary(): number {
    return this.#inputFramer.boundary;
  }

  /** Ciphertext bytes written to the socket: always a record boundary. */
  get outputOffset(): number {
    return this.#outputBytes;
  }

  /** The socket under the tap. */
  get socket(): Duplex {
    return this.#socket;
  }

  stats(): TlsRecordTapStats {
    return {
      outputBytes: this.#outputBytes,
      outputRecords: this.#outputRecords,
      heldOutputBytes: this.#outputFramer.buffered,
      inputBytes: this.#inputBytes,
      inputBoundary: this.#inputFramer.boundary,
    };
  }

  /** Ends the tap and its socket at once (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.destroy();
  }

  #onInput(chunk: Buffer): void {
    this.#inputBytes += chunk.length;
    if (!this.#inputUnframed) {
      try {
        this.#inputFramer.push(chunk);
      } catch (err) {
        // The TLS layer refuses the same bytes with its own alert; only the boundary stops here.
        this.#inputUnframed = true;
        this.#log.warn(`client input is not TLS records past offset ${this.#inputFramer.boundary}: ${(err as Error).message}`);
      }
    }
    if (!this.push(chunk)) this.#socket.pause();
  }

  override _read(): void {
    this.#socket.resume();
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    let records: RawRecord[];
    try {
      records = this.#outputFramer.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, encoding));
    } catch (err) {
      // Our own TLS layer wrote what is not a record: nothing of it may reach the client.
      callback(err instanceof TlsRecordInvalidError ? err : new Error(String(err)));
      return;
    }
    if (records.length === 0) {
      // Part of a record: held; the TLS layer writes its rest next.
      callback();
      return;
    }
    try {
      this.#beforeOutput?.(records);
    } catch (err) {
      this.#log.error(`beforeOutput failed: ${(err as Error).message}`);
    }
    const bytes = records.length === 1 ? records[0]!.bytes : Buffer.concat(records.map((r) => r.bytes));
    this.#outputBytes += bytes.length;
    this.#outputRecords += records.length;
    // The callback follows the socket's: backpressure and write errors reach the TLS layer.
    this.#socket.write(bytes, (err) => callback(err ?? null));
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.#outputFramer.buffered > 0) {
      this.#log.warn(`${this.#outputFramer.buffered} bytes of an incomplete record dropped at the end of the output`);
    }
    this.#socket.end(() => callback());
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#closed = true;
    this.#socket.destroy();
    callback(error);
  }
}
