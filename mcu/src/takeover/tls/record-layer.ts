/**
 * The TLS 1.3 record layer the standby continues a session with once the primary is gone:
 * a read and a write state (traffic secret, its keys, the next sequence number), decryption
 * of the client's byte stream (records split across chunks), encryption of application data
 * in records of at most 2^14 bytes, KeyUpdate both ways (RFC 8446 4.6.3), close_notify and
 * alerts. Synchronous and socket-free: continuation.ts puts it under a Duplex. The handshake
 * is never done here; a session always starts from a TlsContinuationState (the tracker's).
 */
import { TlsContinuationStateError, TlsRecordInvalidError, type TlsAlertReason } from './errors.ts';
import { nextTrafficSecret, type TlsSuiteName } from './key-schedule.ts';
import {
  AlertDescription,
  ContentType,
  HandshakeReassembler,
  HandshakeType,
  MAX_PLAINTEXT,
  RecordFramer,
  keyUpdateMessage,
  openRecord,
  recordKeys,
  sealRecord,
  type RecordKeys,
  type TrafficState,
} from './record.ts';

export type { TrafficState } from './record.ts';

/** Where a session stands in both directions: what the standby continues from (server side: read = the client's traffic). */
export interface TlsContinuationState {
  suite: TlsSuiteName;
  read: TrafficState;
  write: TrafficState;
  /** The peer's latest KeyUpdate asked for ours and none was sent since: sent before our next record. */
  keyUpdateOwed: boolean;
}

/** What received records meant, in order. */
export type TlsInboundEvent =
  | { kind: 'data'; data: Buffer }
  /** The peer moved its key (our read state is now `generation`); `requested`: it asked for ours, which `output` carries. */
  | { kind: 'key-update'; generation: number; requested: boolean }
  | { kind: 'close-notify' }
  /** A fatal alert from the peer (any but close_notify and user_canceled): the session is over. */
  | { kind: 'alert'; level: number; description: number };

export interface TlsReceiveResult {
  events: TlsInboundEvent[];
  /** Records to send now (the answer to a KeyUpdate that asked for one). */
  output: Buffer[];
}

/** `open` → `peer-closed` (close_notify received) / `failed` (a broken record or a fatal alert); `write-closed` independently once we sent close_notify. */
export type TlsRecordLayerState = 'open' | 'peer-closed' | 'failed';

function copyTraffic(t: TrafficState): TrafficState {
  return { secret: Buffer.from(t.secret), generation: t.generation, seq: t.seq };
}

export class TlsRecordLayer {
  readonly suite: TlsSuiteName;
  #read: TrafficState;
  #write: TrafficState;
  #readKeys: RecordKeys;
  #writeKeys: RecordKeys;
  #keyUpdateOwed: boolean;
  readonly #framer: RecordFramer;
  readonly #handshake = new HandshakeReassembler();
  #state: TlsRecordLayerState = 'open';
  #writeClosed = false;
  #failure: TlsRecordInvalidError | null = null;

  /** `inputOffset`: stream offset of the first byte receive() gets (for error messages and `inputBoundary`). */
  constructor(start: TlsContinuationState, options: { inputOffset?: number } = {}) {
    this.suite = start.suite;
    this.#read = copyTraffic(start.read);
    this.#write = copyTraffic(start.write);
    this.#readKeys = recordKeys(this.suite, this.#read.secret);
    this.#writeKeys = recordKeys(this.suite, this.#write.secret);
    this.#keyUpdateOwed = start.keyUpdateOwed;
    this.#framer = new RecordFramer(options.inputOffset ?? 0);
  }

  get state(): TlsRecordLayerState {
    return this.#state;
  }

  /** True once close_notify or a fatal alert was sealed: nothing more may be written. */
  get writeClosed(): boolean {
    return this.#writeClosed;
  }

  /** Where both directions stand now: enough to continue this session elsewhere (a chained takeover). */
  snapshot(): TlsContinuationState {
    return { suite: this.suite, read: copyTraffic(this.#read), write: copyTraffic(this.#write), keyUpdateOwed: this.#keyUpdateOwed };
  }

  /** Input offset of the next record boundary, and the bytes of an incomplete record held. */
  get inputBoundary(): number {
    return this.#framer.boundary;
  }
  get bufferedInput(): number {
    return this.#framer.buffered;
  }

  /**
   * Decrypts what arrived. Throws TlsRecordInvalidError on a record that breaks TLS 1.3 (the
   * layer is failed from then on; send `alert(err.alert)` and close). Records after the
   * peer's close_notify are ignored, as RFC 8446 6.1 says.
   */
  receive(chunk: Buffer): TlsReceiveResult {
    if (this.#failure) throw new TlsContinuationStateError(`receive after the session failed: ${this.#failure.message}`);
    const result: TlsReceiveResult = { events: [], output: [] };
    if (this.#state !== 'open') return result;
    try {
      for (const record of this.#framer.push(chunk)) {
        if (this.#state !== 'open') break;
        if (record.type !== ContentType.ApplicationData) {
          throw new TlsRecordInvalidError('unexpected_message', record.offset, `a record of outer type ${record.type} after the handshake`);
        }
        const opened = openRecord(this.#readKeys, this.#read.seq, record);
        if (opened === null) {
          throw new TlsRecordInvalidError('bad_record_mac', record.offset, `does not authenticate under read key generation ${this.#read.generation} at sequence ${this.#read.seq}`);
        }
        this.#read.seq++;
        this.#dispatch(opened.type, opened.content, record.offset, result);
      }
    } catch (err) {
      if (err instanceof TlsRecordInvalidError) {
        this.#state = 'failed';
        this.#failure = err;
      }
      throw err;
    }
    return result;
  }

  #dispatch(type: number, content: Buffer, offset: number, result: TlsReceiveResult): void {
    switch (type) {
      case ContentType.ApplicationData:
        if (this.#handshake.partial) throw new TlsRecordInvalidError('unexpected_message', offset, 'application data inside a fragmented handshake message');
        if (content.length > 0) result.events.push({ kind: 'data', data: content });
        return;
      case ContentType.Alert: {
        if (content.length !== 2) throw new TlsRecordInvalidError('decode_error', offset, `an alert of ${content.length} bytes`);
        const level = content[0]!;
        const description = content[1]!;
        if (description === AlertDescription.close_notify) {
          this.#state = 'peer-closed';
          result.events.push({ kind: 'close-notify' });
        } else if (description !== 90 /* user_canceled: a warning, close_notify follows */) {
          this.#state = 'failed';
          result.events.push({ kind: 'alert', level, description });
        }
        return;
      }
      case ContentType.Handshake:
        if (content.length === 0) throw new TlsRecordInvalidError('unexpected_message', offset, 'an empty handshake record');
        for (const message of this.#handshake.push(content)) this.#handshakeMessage(message.type, message.body, offset, result);
        return;
      default:
        throw new TlsRecordInvalidError('unexpected_message', offset, `inner content type ${type}`);
    }
  }

  #handshakeMessage(type: number, body: Buffer, offset: number, result: TlsReceiveResult): void {
    if (type !== HandshakeType.KeyUpdate) {
      // A server never asked for post-handshake authentication, so a client sends nothing else.
      throw new TlsRecordInvalidError('unexpected_message', offset, `post-handshake message of type ${type}`);
    }
    if (body.length !== 1 || body[0]! > 1) throw new TlsRecordInvalidError('decode_error', offset, 'a malformed KeyUpdate');
    // A key change must fall on a record boundary (RFC 8446 5.1).
    if (this.#handshake.partial) throw new TlsRecordInvalidError('unexpected_message', offset, 'a KeyUpdate not at the end of its record');
    const requested = body[0] === 1;
    this.#read = { secret: nextTrafficSecret(this.suite, this.#read.secret), generation: this.#read.generation + 1, seq: 0 };
    this.#readKeys = recordKeys(this.suite, this.#read.secret);
    result.events.push({ kind: 'key-update', generation: this.#read.generation, requested });
    if (requested) {
      this.#keyUpdateOwed = true;
      if (!this.#writeClosed) result.output.push(this.#sealKeyUpdate(false));
    }
  }

  /** Seals our KeyUpdate with the current write key, then moves the write key on. */
  #sealKeyUpdate(requestPeer: boolean): Buffer {
    const record = sealRecord(this.#writeKeys, this.#write.seq++, ContentType.Handshake, keyUpdateMessage(requestPeer));
    this.#write = { secret: nextTrafficSecret(this.suite, this.#write.secret), generation: this.#write.generation + 1, seq: 0 };
    this.#writeKeys = recordKeys(this.suite, this.#write.secret);
    // Any KeyUpdate of ours answers the peer's request.
    this.#keyUpdateOwed = false;
    return record;
  }

  #checkWritable(what: string): void {
    if (this.#writeClosed) throw new TlsContinuationStateError(`${what} after close_notify or a fatal alert was sent`);
  }

  /** The KeyUpdate owed to the peer, if any (a tracked state may start owing one). */
  flushOwedKeyUpdate(): Buffer | null {
    if (!this.#keyUpdateOwed || this.#writeClosed) return null;
    return this.#sealKeyUpdate(false);
  }

  /** Encrypts application data into records of at most 2^14 bytes of plaintext; an owed KeyUpdate goes first. */
  sealApplicationData(data: Buffer): Buffer {
    this.#checkWritable('application data');
    const records: Buffer[] = [];
    const owed = this.flushOwedKeyUpdate();
    if (owed) records.push(owed);
    for (let at = 0; at < data.length; at += MAX_PLAINTEXT) {
      records.push(sealRecord(this.#writeKeys, this.#write.seq++, ContentType.ApplicationData, data.subarray(at, Math.min(data.length, at + MAX_PLAINTEXT))));
    }
    return Buffer.concat(records);
  }

  /** Starts a KeyUpdate of ours (`requestPeer`: the peer must answer with its own, RFC 8446 4.6.3). */
  initiateKeyUpdate(requestPeer = true): Buffer {
    this.#checkWritable('KeyUpdate');
    return this.#sealKeyUpdate(requestPeer);
  }

  /** close_notify (RFC 8446 6.1); nothing may be written after it. */
  closeNotify(): Buffer {
    this.#checkWritable('close_notify');
    const record = sealRecord(this.#writeKeys, this.#write.seq++, ContentType.Alert, Buffer.of(1, AlertDescription.close_notify));
    this.#writeClosed = true;
    return record;
  }

  /** A fatal alert for a broken record, sealed with our write key (the peer has it); null when writing is already closed. */
  fatalAlert(reason: TlsAlertReason): Buffer | null {
    if (this.#writeClosed) return null;
    const record = sealRecord(this.#writeKeys, this.#write.seq++, ContentType.Alert, Buffer.of(2, AlertDescription[reason]));
    this.#writeClosed = true;
    return record;
  }
}
