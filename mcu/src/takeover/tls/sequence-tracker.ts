/**
 * Where a TLS 1.3 session stands, from the replicated secrets and the raw bytes of both
 * directions: the standby's view after a crash, when nothing can be asked of the primary.
 * Follows each direction record by record: the handshake records (plaintext ones skipped, the
 * protected ones opened with the handshake secret), then trial decryption with traffic
 * secret 0 to find the first application record, then every record: NewSessionTickets
 * (OpenSSL sends two: the server's records 0 and 1), application data, KeyUpdates (the key
 * moves on, the sequence restarts at 0) and alerts. Sequence numbers must be exact: one off
 * and the client fails with bad_record_mac (design.md 12). Pure: no sockets, no clock.
 */
import { cannotContinue, TlsRecordInvalidError, type TlsCannotContinue } from './errors.ts';
import { nextTrafficSecret, type TlsSuiteName } from './key-schedule.ts';
import {
  ContentType,
  HandshakeReassembler,
  HandshakeType,
  RecordFramer,
  openRecord,
  recordKeys,
  type OpenedRecord,
  type RawRecord,
  type TrafficState,
} from './record.ts';
import type { TlsContinuationState } from './record-layer.ts';
import { secretBytes, type TlsSessionSecrets } from './secrets.ts';

export type TlsDirection = 'client' | 'server';

/** One direction's captured bytes. */
export interface TrackDirectionInput {
  /** The bytes: from the connection's first byte, or from the record boundary `from` describes. */
  bytes: Buffer;
  /** `bytes` starts at a known record boundary in the application phase with this traffic state; absent: at the connection's start. */
  from?: TrafficState;
  /** Stop here (an offset into `bytes`, which must be a record boundary); default: the end of `bytes`. */
  until?: number;
  /**
   * What bytes after the last whole record mean: a cut (`refuse`, the default: output commit
   * replicates whole records), or the start of a record still arriving (`carry`: the client's
   * input, captured before the crash; the continuation decrypts it once it is whole).
   */
  partialTail?: 'refuse' | 'carry';
}

export interface TlsTrackInput {
  secrets: TlsSessionSecrets;
  /** Client to server. */
  client: TrackDirectionInput;
  /** Server to client. */
  server: TrackDirectionInput;
}

/** What was followed in one direction. */
export interface TrackedDirection {
  /** Offset in `bytes` of the next record boundary: where the continuation takes over. */
  boundary: number;
  /** Bytes after `boundary` (an incomplete record, with `partialTail: 'carry'`). */
  partialBytes: number;
  /** The state for the next record. */
  state: TrafficState;
  /** Offset of the first record under an application traffic secret, null if none yet (or when started `from` a boundary). */
  applicationStart: number | null;
  /** Records under application traffic secrets followed (every kind). */
  applicationRecords: number;
  handshakeRecords: number;
  newSessionTickets: number;
  keyUpdates: number;
  /** KeyUpdates that asked the peer for one back. */
  keyUpdatesRequested: number;
}

export type TlsTrackResult = { ok: true; state: TlsContinuationState; client: TrackedDirection; server: TrackedDirection } | TlsCannotContinue;

/**
 * The state to continue the session from (server side: read = client's traffic, write =
 * server's), or why it cannot be continued: a record cut (`TLS_RECORD_CUT`), a record no key
 * opens (`TLS_RECORD_UNDECRYPTABLE`), a handshake not finished in the bytes
 * (`TLS_HANDSHAKE_INCOMPLETE`), an alert (`TLS_SESSION_CLOSED`).
 */
export function trackTlsSession(input: TlsTrackInput): TlsTrackResult {
  const { secrets } = input;
  const client = followDirection('client', secrets.suite, secretBytes(secrets.clientHandshakeTrafficSecret), secretBytes(secrets.clientTrafficSecret0), input.client);
  if (!client.ok) return client;
  const server = followDirection('server', secrets.suite, secretBytes(secrets.serverHandshakeTrafficSecret), secretBytes(secrets.serverTrafficSecret0), input.server);
  if (!server.ok) return server;
  // The two streams cannot be ordered against each other. A KeyUpdate the client requested
  // and the server has not answered yet (OpenSSL answers just before its next write) is owed;
  // counting can only err towards one extra KeyUpdate, which RFC 8446 4.6.3 allows at any time.
  const serverAnswers = server.tracked.keyUpdates - server.tracked.keyUpdatesRequested;
  const keyUpdateOwed = client.tracked.keyUpdatesRequested > serverAnswers;
  return {
    ok: true,
    state: { suite: secrets.suite, read: client.tracked.state, write: server.tracked.state, keyUpdateOwed },
    client: client.tracked,
    server: server.tracked,
  };
}

type Followed = { ok: true; tracked: TrackedDirection } | TlsCannotContinue;

function followDirection(direction: TlsDirection, suite: TlsSuiteName, handshakeSecret: Buffer, trafficSecret0: Buffer, input: TrackDirectionInput): Followed {
  const end = input.until ?? input.bytes.length;
  if (end < 0 || end > input.bytes.length) return cannotContinue('TLS_RECORD_CUT', `stop offset ${end} outside the ${input.bytes.length} captured bytes`, { direction, offset: end });
  const framer = new RecordFramer(0);
  let records: RawRecord[];
  try {
    records = framer.push(input.bytes.subarray(0, end));
  } catch (err) {
    if (err instanceof TlsRecordInvalidError) return cannotContinue('TLS_RECORD_UNDECRYPTABLE', `not a TLS record stream: ${err.message}`, { direction, offset: err.offset });
    throw err;
  }
  if (framer.buffered > 0 && (input.partialTail !== 'carry' || input.until !== undefined)) {
    return cannotContinue('TLS_RECORD_CUT', `the ${direction} stream ends ${framer.buffered} bytes into a record`, { direction, offset: framer.boundary });
  }

  let state: TrafficState = input.from ? { ...input.from, secret: Buffer.from(input.from.secret) } : { secret: trafficSecret0, generation: 0, seq: 0 };
  let keys = recordKeys(suite, state.secret);
  let inHandshake = input.from === undefined;
  let finished = false;
  const handshakeKeys = recordKeys(suite, handshakeSecret);
  let handshakeSeq = 0;
  const handshakeMessages = new HandshakeReassembler();
  const postHandshake = new HandshakeReassembler();
  const tracked: TrackedDirection = {
    boundary: 0,
    partialBytes: framer.buffered,
    state,
    applicationStart: null,
    applicationRecords: 0,
    handshakeRecords: 0,
    newSessionTickets: 0,
    keyUpdates: 0,
    keyUpdatesRequested: 0,
  };
  const where = (record: RawRecord): { direction: TlsDirection; offset: number } => ({ direction, offset: record.offset });
  const open = (k: typeof keys, seq: number, record: RawRecord): OpenedRecord | null => {
    try {
      return openRecord(k, seq, record);
    } catch {
      return null;
    }
  };

  for (const record of records) {
    if (inHandshake) {
      tracked.handshakeRecords++;
      if (record.type === ContentType.Handshake || record.type === ContentType.ChangeCipherSpec) continue;
      if (record.type === ContentType.Alert) return cannotContinue('TLS_SESSION_CLOSED', `a plaintext alert during the ${direction}'s handshake`, where(record));
      if (!finished) {
        const opened = open(handshakeKeys, handshakeSeq, record);
        if (opened) {
          handshakeSeq++;
          if (opened.type === ContentType.Alert) return cannotContinue('TLS_SESSION_CLOSED', `an alert during the ${direction}'s handshake`, where(record));
          if (opened.type === ContentType.Handshake) {
            for (const m of handshakeMessages.push(opened.content)) if (m.type === HandshakeType.Finished) finished = true;
          }
          continue;
        }
      }
      // Trial decryption: the first record under traffic secret 0 at sequence 0 starts the application phase.
      tracked.handshakeRecords--;
      inHandshake = false;
      tracked.applicationStart = record.offset;
    }
    if (record.type !== ContentType.ApplicationData) return cannotContinue('TLS_RECORD_UNDECRYPTABLE', `a record of outer type ${record.type} after the handshake`, where(record));
    const opened = open(keys, state.seq, record);
    if (!opened) {
      return cannotContinue('TLS_RECORD_UNDECRYPTABLE', `no key opens this record (generation ${state.generation}, sequence ${state.seq}${tracked.applicationStart === record.offset ? ', nor the handshake key' : ''})`, where(record));
    }
    state.seq++;
    tracked.applicationRecords++;
    if (opened.type === ContentType.Alert) {
      return cannotContinue('TLS_SESSION_CLOSED', `the ${direction} sent ${opened.content[1] === 0 ? 'close_notify' : `alert ${opened.content[1]}`}`, where(record));
    }
    if (opened.type !== ContentType.Handshake) continue;
    for (const m of postHandshake.push(opened.content)) {
      if (m.type === HandshakeType.NewSessionTicket) tracked.newSessionTickets++;
      else if (m.type === HandshakeType.KeyUpdate) {
        tracked.keyUpdates++;
        if (m.body[0] === 1) tracked.keyUpdatesRequested++;
        state = { secret: nextTrafficSecret(suite, state.secret), generation: state.generation + 1, seq: 0 };
        keys = recordKeys(suite, state.secret);
      }
    }
  }
  if (inHandshake && !finished) {
    return cannotContinue('TLS_HANDSHAKE_INCOMPLETE', `the ${direction}'s handshake does not finish in the ${end} bytes`, { direction, offset: framer.boundary });
  }
  tracked.boundary = framer.boundary;
  tracked.state = state;
  return { ok: true, tracked };
}
