import { z } from 'zod';
import type { SessionRecord } from '../takeover/session/session-record.ts';
import type { TransportRecord } from '../takeover/transport/transport-record.ts';
import { TLS13_SUITES, type TlsSuiteName } from '../takeover/tls/key-schedule.ts';
import type { TlsSessionSecrets } from '../takeover/tls/secrets.ts';
import { parsePayload, type Schema } from './messages.ts';

/**
 * Every blob kind of the replication channel and every snapshot extra: payload types and
 * schemas. A blob is a `blob` message (messages.ts), ordered after the session state changes
 * made before it. The channel carries any kind; each consumer takes its own kinds and
 * validates them here (parseBlob) before using them. A snapshot extra hands a standby that
 * syncs mid-stream what the blobs before its snapshot told.
 *
 *   primary -> standby: session, transport, fence-check, spare-answer, spare-failed,
 *                       tls-secrets (schema only: not sent yet, issue 11 item 2)
 *   standby -> primary: spare-offer, spare-state
 *   snapshot extras:    sessions, transports
 */
export const BlobKind = {
  /** A connection's socket.io session at a clean point (SessionBlob): connection-level takeover. */
  Session: 'session',
  /** A connection's TransportRecord at accept and close, and consumed-input updates (TransportBlob): output commit. */
  Transport: 'transport',
  /** After a stall, the frame whose acknowledgement proves the standby still follows this primary (FenceCheckBlob). */
  FenceCheck: 'fence-check',
  /** The warm spare path relay: the standby's offer for a participant's page... */
  SpareOffer: 'spare-offer',
  /** ...where the standby's spare path stands... */
  SpareState: 'spare-state',
  /** ...the page's answer, relayed by the primary... */
  SpareAnswer: 'spare-answer',
  /** ...or why the primary could not relay the offer. */
  SpareFailed: 'spare-failed',
  /** A TLS 1.3 connection's traffic secrets and suite at handshake (TlsSecretsBlob): continuing its session at takeover. */
  TlsSecrets: 'tls-secrets',
} as const;
export type BlobKind = (typeof BlobKind)[keyof typeof BlobKind];

/** Keys of the snapshot's `extra`. */
export const SnapshotExtraKey = {
  /** The latest SessionBlob of every connection. */
  Sessions: 'sessions',
  /** Every connection's record and where the standby's output log starts (TransportsExtra). */
  Transports: 'transports',
  /** Base64 of the primary's TLS session ticket keys (48 bytes, ServiceTls): the standby serves with them. */
  TlsTicketKeys: 'tlsTicketKeys',
} as const;
export type SnapshotExtraKey = (typeof SnapshotExtraKey)[keyof typeof SnapshotExtraKey];

// ---- session ----

/** Largest output tail a session blob may carry, decoded. */
export const MAX_OUTPUT_TAIL_BYTES = 4 * 1024 * 1024;

/** Payload of a 'session' blob: a connection's socket.io session at a clean point. */
export interface SessionBlob {
  connId: string;
  record: SessionRecord;
  /**
   * Base64 of the output the application had written beyond what went to the output log
   * (waiting in the socket's buffer behind a commit in flight): the last bytes before
   * record.bytes.written. With it the record is usable even if the primary dies before those
   * bytes are committed, since the standby can send them itself.
   */
  outputTail?: string;
}

/**
 * A 'session' blob as parseBlob returns it: the envelope is checked, the record is left to
 * parseSessionRecord (session-record.ts), the record format's own validator.
 */
export type SessionBlobEnvelope = Omit<SessionBlob, 'record'> & { record: unknown };

// ---- transport ----

/** Input consumed up to `consumedInput`, decided when the application's output stood at `outputAt`. */
export interface InputUpdate {
  connId: string;
  consumedInput: number;
  outputAt: number;
}

/** Why a connection's record was closed. */
export type TransportCloseReason = 'end' | 'destroy' | 'error' | 'closed';

/** Payload of a 'transport' blob. */
export type TransportBlob =
  | {
      op: 'accept';
      record: TransportRecord;
      /** Output offset of the first byte this standby's log will get (0 at accept). */
      logStart: number;
    }
  | { op: 'close'; connId: string; reason: TransportCloseReason; committedOutput: number }
  | { op: 'input'; updates: InputUpdate[] };

/** One connection in the transports snapshot extra. */
export interface TransportSnapshotEntry {
  /** committedOutput = logStart; consumedInput = the latest update whose output is all before logStart. */
  record: TransportRecord;
  /** Output offset from which this standby gets the log; earlier bytes went to the kernel before it synced. */
  logStart: number;
  /** Updates still waiting for output beyond logStart, in order. */
  pendingInput: InputUpdate[];
}

/** The snapshot extra under SnapshotExtraKey.Transports. */
export interface TransportsExtra {
  version: 1;
  connections: TransportSnapshotEntry[];
}

// ---- fence check ----

/** Payload of a 'fence-check' blob: only its acknowledgement matters; the fields are for logs. */
export interface FenceCheckBlob {
  /** Sender's wall clock, epoch ms. */
  at: number;
  /** How long the primary was paused, ms. */
  pausedMs: number;
}

// ---- warm spare paths ----

/** Where one spare path is, as the standby that owns it reports it. */
export type SparePathState = 'offering' | 'answered' | 'connected' | 'failed' | 'closed';

export interface SpareOfferBlob {
  participantId: string;
  pathId: string;
  sdp: string;
}
export interface SpareStateBlob {
  participantId: string;
  pathId: string;
  state: SparePathState;
  detail?: string;
}
export interface SpareAnswerBlob {
  participantId: string;
  pathId: string;
  sdp: string;
}
export interface SpareFailedBlob {
  participantId: string;
  pathId: string;
  reason: string;
}

// ---- TLS secrets ----

/** Payload of a 'tls-secrets' blob: sent once per connection, when its handshake completes. */
export interface TlsSecretsBlob {
  connId: string;
  secrets: TlsSessionSecrets;
}

/** What a producer sends under each kind. */
export interface BlobPayloads {
  session: SessionBlob;
  transport: TransportBlob;
  'fence-check': FenceCheckBlob;
  'spare-offer': SpareOfferBlob;
  'spare-state': SpareStateBlob;
  'spare-answer': SpareAnswerBlob;
  'spare-failed': SpareFailedBlob;
  'tls-secrets': TlsSecretsBlob;
}

/** What parseBlob returns for each kind: the payload, except a session blob's record (still to be checked). */
export type ParsedBlobs = Omit<BlobPayloads, 'session'> & { session: SessionBlobEnvelope };

/** What a producer puts under each snapshot extra key. */
export interface SnapshotExtras {
  sessions: SessionBlob[];
  transports: TransportsExtra;
}

/**
 * What parseSnapshotExtra returns: the sessions extra is only checked to be a list, each entry
 * is a 'session' blob the consumer takes like one received alone (a bad one does not cost the others).
 */
export type ParsedSnapshotExtras = { sessions: unknown[]; transports: TransportsExtra; tlsTicketKeys: string };

// ---- schemas ----

const connIdSchema = z.string().min(1).max(128);
const offsetSchema = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const u32Schema = z.number().int().min(0).max(0xffffffff);
const endpointSchema = z.object({ address: z.string().max(64), port: z.number().int().min(0).max(65535) });

const transportRecordSchema: z.ZodType<TransportRecord> = z.object({
  connId: connIdSchema,
  local: endpointSchema,
  remote: endpointSchema,
  clientIsn: u32Schema,
  serverIsn: u32Schema,
  mss: z.number().int().min(0).max(65535),
  sndWscale: z.number().int().min(0).max(14),
  rcvWscale: z.number().int().min(0).max(14),
  sack: z.boolean(),
  timestamps: z.boolean(),
  consumedInput: offsetSchema,
  committedOutput: offsetSchema,
  acceptedAt: z.number().finite(),
});
const inputUpdateSchema: z.ZodType<InputUpdate> = z.object({ connId: connIdSchema, consumedInput: offsetSchema, outputAt: offsetSchema });

// z.unknown() makes `record` optional in the inferred type: the transform states the real shape.
const sessionBlobSchema: Schema<SessionBlobEnvelope> = z
  .object({
    connId: connIdSchema,
    record: z.unknown(),
    // Base64 of at most MAX_OUTPUT_TAIL_BYTES, padding included.
    outputTail: z.string().max(Math.floor((MAX_OUTPUT_TAIL_BYTES * 4) / 3 + 4)).optional(),
  })
  .transform((b): SessionBlobEnvelope => (b.outputTail === undefined ? { connId: b.connId, record: b.record } : { connId: b.connId, record: b.record, outputTail: b.outputTail }));

const hexSchema = z.string().regex(/^[0-9a-f]+$/, 'lowercase hex');
const suiteNames = Object.keys(TLS13_SUITES) as [TlsSuiteName, ...TlsSuiteName[]];

/** A TlsSessionSecrets record: every secret as long as its suite's hash. */
export const tlsSessionSecretsSchema: z.ZodType<TlsSessionSecrets> = z
  .object({
    version: z.literal(1),
    protocol: z.literal('TLSv1.3'),
    suite: z.enum(suiteNames),
    clientRandom: hexSchema.length(64),
    clientHandshakeTrafficSecret: hexSchema,
    serverHandshakeTrafficSecret: hexSchema,
    clientTrafficSecret0: hexSchema,
    serverTrafficSecret0: hexSchema,
    capturedAt: z.number().finite(),
  })
  .strict()
  .superRefine((r, ctx) => {
    const digits = TLS13_SUITES[r.suite].hashLength * 2;
    for (const key of ['clientHandshakeTrafficSecret', 'serverHandshakeTrafficSecret', 'clientTrafficSecret0', 'serverTrafficSecret0'] as const) {
      if (r[key].length !== digits) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message: `${r[key].length} hex digits, ${r.suite} needs ${digits}` });
    }
  });

const spareIdSchema = z.string().min(1).max(256);
const sdpSchema = z.string().min(1).max(256 * 1024).startsWith('v=0', 'sdp does not start with "v=0"');
const spareOfferOrAnswerSchema = z.object({ participantId: spareIdSchema, pathId: spareIdSchema, sdp: sdpSchema }).strict();

const blobSchemas: { [K in BlobKind]: Schema<ParsedBlobs[K]> } = {
  session: sessionBlobSchema,
  transport: z.discriminatedUnion('op', [
    z.object({ op: z.literal('accept'), record: transportRecordSchema, logStart: offsetSchema }),
    z.object({
      op: z.literal('close'),
      connId: connIdSchema,
      reason: z.enum(['end', 'destroy', 'error', 'closed']),
      committedOutput: offsetSchema,
    }),
    z.object({ op: z.literal('input'), updates: z.array(inputUpdateSchema).max(100_000) }),
  ]),
  'fence-check': z.object({ at: z.number().finite(), pausedMs: z.number().finite().nonnegative() }),
  'spare-offer': spareOfferOrAnswerSchema,
  'spare-state': z
    .object({
      participantId: spareIdSchema,
      pathId: spareIdSchema,
      state: z.enum(['offering', 'answered', 'connected', 'failed', 'closed']),
      detail: z.string().max(1024).optional(),
    })
    .strict(),
  'spare-answer': spareOfferOrAnswerSchema,
  'spare-failed': z.object({ participantId: spareIdSchema, pathId: spareIdSchema, reason: z.string().max(1024) }).strict(),
  'tls-secrets': z.object({ connId: connIdSchema, secrets: tlsSessionSecretsSchema }).strict(),
};

const extraSchemas: { [K in SnapshotExtraKey]: Schema<ParsedSnapshotExtras[K]> } = {
  sessions: z.array(z.unknown()),
  transports: z.object({
    version: z.literal(1),
    connections: z.array(z.object({ record: transportRecordSchema, logStart: offsetSchema, pendingInput: z.array(inputUpdateSchema) })),
  }),
  // 48 bytes in base64: 64 characters.
  tlsTicketKeys: z.string().regex(/^[A-Za-z0-9+/]{64}$/, 'expected 48 bytes in base64'),
};

/** Validates the payload of a `kind` blob. Throws ReplicationMalformedError. */
export function parseBlob<K extends BlobKind>(kind: K, data: unknown): ParsedBlobs[K] {
  return parsePayload(blobSchemas[kind], data, `"${kind}" blob`);
}

/** Validates the snapshot extra under `key`. Throws ReplicationMalformedError. */
export function parseSnapshotExtra<K extends SnapshotExtraKey>(key: K, data: unknown): ParsedSnapshotExtras[K] {
  return parsePayload(extraSchemas[key], data, `"${key}" snapshot extra`);
}
