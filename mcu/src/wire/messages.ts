import { z } from 'zod';
import { ReplicationMalformedError } from '../core/errors.ts';
import type {
  NegotiatedMedia,
  ParticipantChanges,
  ParticipantRecord,
  RoomRecord,
  SessionDelta,
  SessionSnapshot,
} from '../conference/session-state.ts';

/**
 * Payloads of JSON replication frames. Every incoming payload is validated here before
 * anything is applied; a payload that does not fit is a ReplicationMalformedError.
 */

// ---- primary -> standby ----

export interface PrimaryHelloMessage {
  type: 'hello';
  primaryId: string;
  epoch: number;
  pid: number;
  /** Service address and whatever else a promoted standby needs to stand in (opaque here). */
  service: Record<string, unknown>;
}
export interface SnapshotMessage {
  type: 'snapshot';
  /** Seq of the frame carrying this snapshot: the state reflects every frame up to it. */
  seq: number;
  state: SessionSnapshot;
  /** Snapshot additions from other modules (transport state ...), keyed by provider: see SnapshotExtraKey (blobs.ts). */
  extra: Record<string, unknown>;
}
export interface DeltaMessage {
  type: 'delta';
  /** Deltas applied on the primary in one tick, in order. */
  deltas: SessionDelta[];
}
export interface HeartbeatMessage {
  type: 'heartbeat';
  /** Sender's wall clock (epoch ms), for logs and lag estimates only. */
  sentAt: number;
}
/** A deliberate stop: the receiver must not treat the following end of stream as a crash. */
export interface ShutdownMessage {
  type: 'shutdown';
  reason: string;
}
/** A record of another module, ordered with the session state. Its kinds and payloads: blobs.ts. */
export interface BlobMessage {
  type: 'blob';
  kind: string;
  data: unknown;
}

// ---- standby -> primary ----

export interface StandbyHelloMessage {
  type: 'hello';
  standbyId: string;
  pid: number;
}
/** Cumulative: every sequenced frame up to `seq` has been applied. */
export interface AckMessage {
  type: 'ack';
  seq: number;
}
/**
 * The standby judged this primary dead and is promoting itself with `epoch`: sent just before it
 * stops following, so a primary that was only frozen or cut off finds it (even after SIGCONT,
 * in its socket buffer) and fences itself instead of writing to connections it no longer owns.
 */
export interface SupersededMessage {
  type: 'superseded';
  epoch: number;
  standbyId: string;
}
/**
 * First frame of a fencing probe (a primary that lost its standby asks who serves at the
 * standby's replication address): the server answers by closing with an announced shutdown,
 * whose frame carries its epoch. Never a standby: no snapshot, no output commit.
 */
export interface ProbeMessage {
  type: 'probe';
  epoch: number;
  pid: number;
}

export type PrimaryMessage =
  | PrimaryHelloMessage
  | SnapshotMessage
  | DeltaMessage
  | HeartbeatMessage
  | ShutdownMessage
  | BlobMessage;

/**
 * `shutdown` from a standby tells the primary it left on purpose (no alarm, no lost protection warning).
 * `blob` carries a record of another module towards the primary (the warm spare path relay); the
 * primary does not acknowledge these.
 */
export type StandbyMessage =
  | StandbyHelloMessage
  | AckMessage
  | HeartbeatMessage
  | ShutdownMessage
  | SupersededMessage
  | ProbeMessage
  | BlobMessage;

export type ReplicationMessage = PrimaryMessage | StandbyMessage;

/** Frames that are not numbered: they carry the seq of the sender's last sequenced frame. */
export function isUnsequenced(msg: ReplicationMessage): boolean {
  return msg.type === 'heartbeat' || msg.type === 'ack';
}

// ---- schemas ----

const seqSchema = z.number().int().nonnegative().safe();
const epochSchema = z.number().int().nonnegative().max(0xffffffff);
const idSchema = z.string().min(1).max(256);
const recordSchema = z.record(z.string(), z.unknown());

const negotiatedMediaSchema: z.ZodType<NegotiatedMedia> = z.object({
  mlines: z.array(z.object({ mid: z.string(), kind: z.enum(['audio', 'video']) })),
  remoteSdp: z.string(),
});

const participantSchema: z.ZodType<ParticipantRecord> = z.object({
  id: idSchema,
  room: idSchema,
  name: z.string(),
  audioMuted: z.boolean(),
  videoMuted: z.boolean(),
  joinedAt: z.number().finite(),
  resumeToken: z.string(),
  media: negotiatedMediaSchema.nullable(),
});

const roomSchema: z.ZodType<RoomRecord> = z.object({
  name: idSchema,
  createdAt: z.number().finite(),
  participants: z.array(idSchema),
});

const changesSchema: z.ZodType<ParticipantChanges> = z.object({
  name: z.string().optional(),
  audioMuted: z.boolean().optional(),
  videoMuted: z.boolean().optional(),
  media: negotiatedMediaSchema.nullable().optional(),
});

export const sessionDeltaSchema: z.ZodType<SessionDelta> = z.discriminatedUnion('op', [
  z.object({ op: z.literal('room-created'), room: roomSchema }),
  z.object({ op: z.literal('room-closed'), room: idSchema }),
  z.object({ op: z.literal('participant-joined'), participant: participantSchema }),
  z.object({ op: z.literal('participant-updated'), id: idSchema, changes: changesSchema }),
  z.object({ op: z.literal('participant-left'), id: idSchema }),
]);

export const sessionSnapshotSchema: z.ZodType<SessionSnapshot> = z.object({
  rooms: z.array(roomSchema),
  participants: z.array(participantSchema),
});

const heartbeatSchema = z.object({ type: z.literal('heartbeat'), sentAt: z.number().finite() });
const shutdownSchema = z.object({ type: z.literal('shutdown'), reason: z.string().max(1024) });

/** A schema from untrusted JSON to T: every payload on the wire (messages, blobs, snapshot extras) is checked by one. */
export type Schema<T> = z.ZodType<T, z.ZodTypeDef, unknown>;

// z.unknown() makes `data` optional in the inferred type: the transform states the real shape.
const blobSchema: Schema<BlobMessage> = z
  .object({ type: z.literal('blob'), kind: idSchema, data: z.unknown() })
  .transform((m): BlobMessage => ({ type: 'blob', kind: m.kind, data: m.data }));

// One schema per `type`, chosen by the type field: errors then name the field that is wrong
// instead of a bare "invalid union".
const primarySchemas: { [K in PrimaryMessage['type']]: Schema<Extract<PrimaryMessage, { type: K }>> } = {
  hello: z.object({ type: z.literal('hello'), primaryId: idSchema, epoch: epochSchema, pid: z.number().int(), service: recordSchema }),
  snapshot: z.object({ type: z.literal('snapshot'), seq: seqSchema, state: sessionSnapshotSchema, extra: recordSchema }),
  delta: z.object({ type: z.literal('delta'), deltas: z.array(sessionDeltaSchema).min(1) }),
  heartbeat: heartbeatSchema,
  shutdown: shutdownSchema,
  blob: blobSchema,
};

const standbySchemas: { [K in StandbyMessage['type']]: Schema<Extract<StandbyMessage, { type: K }>> } = {
  hello: z.object({ type: z.literal('hello'), standbyId: idSchema, pid: z.number().int() }),
  ack: z.object({ type: z.literal('ack'), seq: seqSchema }),
  heartbeat: heartbeatSchema,
  shutdown: shutdownSchema,
  superseded: z.object({ type: z.literal('superseded'), epoch: epochSchema, standbyId: idSchema }),
  probe: z.object({ type: z.literal('probe'), epoch: epochSchema, pid: z.number().int() }),
  blob: blobSchema,
};

function describe(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
    .join('; ');
}

/** Validates a payload (`what` names it in the error). Throws ReplicationMalformedError naming the first fields that are wrong. */
export function parsePayload<T>(schema: Schema<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new ReplicationMalformedError(`invalid ${what}: ${describe(r.error)}`);
  return r.data;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** JSON payload bytes to a value; invalid UTF-8 or JSON is malformed. */
export function decodeJson(payload: Uint8Array): unknown {
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    throw new ReplicationMalformedError('payload is not valid UTF-8');
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ReplicationMalformedError(`payload is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
}

export function encodeJson(msg: ReplicationMessage): Buffer {
  return Buffer.from(JSON.stringify(msg), 'utf8');
}

function typeOf(value: unknown): string | undefined {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const t = (value as { type?: unknown }).type;
    if (typeof t === 'string') return t;
  }
  return undefined;
}

function parseWith<T>(schemas: Record<string, Schema<T>>, value: unknown, from: string): T {
  const type = typeOf(value);
  if (type === undefined) throw new ReplicationMalformedError(`${from} message is not an object with a string "type"`);
  const schema = Object.hasOwn(schemas, type) ? schemas[type] : undefined;
  if (!schema) throw new ReplicationMalformedError(`unknown ${from} message type "${type.slice(0, 40)}"`);
  return parsePayload(schema, value, `${from} "${type}" message`);
}

/** Validates a payload from the primary. Throws ReplicationMalformedError. */
export function parsePrimaryMessage(value: unknown): PrimaryMessage {
  return parseWith<PrimaryMessage>(primarySchemas, value, 'primary');
}

/** Validates a payload from the standby. Throws ReplicationMalformedError. */
export function parseStandbyMessage(value: unknown): StandbyMessage {
  return parseWith<StandbyMessage>(standbySchemas, value, 'standby');
}
