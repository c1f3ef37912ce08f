/**
 * The per-connection record that lets another process re-attach a live socket.io
 * session to the same TCP connection (design notes 4 and 10). Plain JSON, about 2.5 KB:
 * replicated to the standby next to the session state, validated before use so a
 * forged or damaged record is refused with a clear error instead of corrupting a
 * client's stream.
 */
import { z } from 'zod';
import { SessionRecordInvalidError } from '../errors.ts';

export const SESSION_RECORD_VERSION = 1;

/** A record larger than this is refused outright (a real one is a few KB). */
export const MAX_SESSION_RECORD_BYTES = 512 * 1024;

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** HTTP headers as Node gives them: lower-case names, `set-cookie` may be an array. */
export type RecordedHeaders = Record<string, string | string[]>;

/** The HTTP upgrade request the client sent when it connected. */
export interface RecordedRequest {
  method: 'GET';
  /** Path and query, e.g. `/socket.io/?EIO=4&transport=websocket`. */
  url: string;
  headers: RecordedHeaders;
  httpVersion: string;
}

/** Where the engine.io heartbeat stood at the checkpoint (protocol v4: the server pings). */
export interface RecordedHeartbeat {
  /** A ping was sent and its pong has not arrived. */
  awaitingPong: boolean;
  /** Ms since the last ping was sent; null if none was sent yet. */
  sinceLastPingMs: number | null;
  /** Ms since the ping interval timer was (re)armed: at the open packet and at each pong. */
  sincePingTimerArmedMs: number;
  /** Ms since the pong deadline was armed or last extended; null unless awaiting a pong. */
  sincePongDeadlineArmedMs: number | null;
  /** engine.io extends the pong deadline once per ping when other packets arrive: whether it did. */
  pongDeadlineRefreshed: boolean;
}

export interface RecordedEngine {
  /** engine.io session id: the client knows it, the new process must reuse it. */
  sid: string;
  protocol: 4;
  /** What the open packet told the client; the new process must use the same values. */
  upgrades: string[];
  pingIntervalMs: number;
  pingTimeoutMs: number;
  maxPayload: number;
  heartbeat: RecordedHeartbeat;
}

/** socket.io's `socket.handshake`, restored verbatim (the app may rely on auth, query, time). */
export interface RecordedHandshake {
  headers: RecordedHeaders;
  time: string;
  address: string;
  xdomain: boolean;
  secure: boolean;
  issued: number;
  url: string;
  query: Record<string, string>;
  auth: Record<string, JsonValue>;
}

/** A server-to-client emit still waiting for the client's acknowledgement (its callback cannot move). */
export interface PendingServerAck {
  id: number;
  /** The event that asked for the ack, when the recorder saw it go out. */
  event: string | null;
  /** How long it had been waiting at the checkpoint. */
  ageMs: number;
}

/** A client-to-server event with an ack id the server had consumed but not answered yet. */
export interface PendingClientRequest {
  id: number;
  event: string | null;
  /** The socket.io packet as received (e.g. `2/chat,7["offer",{...}]`), null for binary events (not replayable). */
  packet: string | null;
}

export interface RecordedNamespace {
  name: string;
  /** socket.io socket id (the client's `socket.id`). */
  socketId: string;
  /** socket.io private session id, when the server exposes one (the takeover adapter does not). */
  pid: string | null;
  rooms: string[];
  data: JsonValue;
  handshake: RecordedHandshake;
  /** The namespace's ack id counter (`_ids`): new emits must not reuse a pending id. */
  ackCounter: number;
  pendingServerAcks: PendingServerAck[];
  pendingClientRequests: PendingClientRequest[];
}

/** The TCP connection the record belongs to (checked against the adopted socket). */
export interface RecordedPeer {
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
}

export interface SessionRecord {
  version: typeof SESSION_RECORD_VERSION;
  /** Epoch ms when the record was taken (heartbeat timers continue from it). */
  recordedAt: number;
  peer: RecordedPeer;
  request: RecordedRequest;
  engine: RecordedEngine;
  /** In the order the client connected them. */
  namespaces: RecordedNamespace[];
  /** Stream offsets since the connection began (HTTP request and 101 response included). */
  bytes: {
    /** Client bytes the application consumed: always at a WebSocket frame boundary. */
    consumed: number;
    /** Bytes the application wrote to the client. */
    written: number;
  };
  /** Client bytes after `bytes.consumed` the old process had read but not parsed (base64), usually empty. */
  unparsedInput: string;
}

// ---------------------------------------------------------------------------------------------
// Validation

const MAX_STRING = 8192;
const MAX_JSON_BYTES = 64 * 1024;

function isJsonValue(value: unknown, depth = 0): value is JsonValue {
  if (depth > 32) return false;
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (Array.isArray(value)) return value.every((v) => isJsonValue(v, depth + 1));
  if (typeof value === 'object') {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) return false;
    return Object.values(value as Record<string, unknown>).every((v) => isJsonValue(v, depth + 1));
  }
  return false;
}

const jsonValue = z.custom<JsonValue>(
  (v) => isJsonValue(v) && JSON.stringify(v).length <= MAX_JSON_BYTES,
  `must be plain JSON (no undefined, functions, NaN, class instances; at most ${MAX_JSON_BYTES} bytes)`,
);
const jsonObject = z.custom<Record<string, JsonValue>>(
  (v) => typeof v === 'object' && v !== null && !Array.isArray(v) && isJsonValue(v) && JSON.stringify(v).length <= MAX_JSON_BYTES,
  'must be a plain JSON object',
);

const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const durationMs = z.number().finite().nonnegative().max(365 * 24 * 3600 * 1000);
/** engine.io / socket.io ids: base64id (20 chars of base64url) or a custom generator's output. */
const sessionId = z.string().regex(/^[A-Za-z0-9_\-.:+/=]{1,128}$/, 'must be 1-128 id characters');
const headerName = z.string().regex(/^[a-z0-9!#$%&'*+.^_`|~-]{1,256}$/, 'must be a lower-case HTTP header name');
const headerValue = z.string().max(MAX_STRING).refine((s) => !/[\r\n\0]/.test(s), 'must not contain CR, LF or NUL');
const headers = z
  .record(headerName, z.union([headerValue, z.array(headerValue).max(64)]))
  .refine((h) => Object.keys(h).length <= 200, 'at most 200 headers');
const namespaceName = z.string().regex(/^\/[^,]{0,255}$/, 'must start with "/" and contain no ","');
const eventName = z.string().max(1024).nullable();
const base64 = z.string().max(Math.ceil((MAX_SESSION_RECORD_BYTES * 4) / 3)).regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64');

const upgradeUrl = z
  .string()
  .max(4096)
  .startsWith('/')
  .superRefine((url, ctx) => {
    let query: URLSearchParams;
    try {
      query = new URL(url, 'http://recorded.invalid').searchParams;
    } catch {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'is not a URL path' });
      return;
    }
    if (query.get('EIO') !== '4') ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must carry EIO=4 (engine.io protocol v4 only)' });
    if (query.get('transport') !== 'websocket') ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must carry transport=websocket' });
    if (query.has('sid')) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must not carry a sid (an upgrade from polling cannot be re-attached)' });
  });

const heartbeatSchema = z
  .object({
    awaitingPong: z.boolean(),
    sinceLastPingMs: durationMs.nullable(),
    sincePingTimerArmedMs: durationMs,
    sincePongDeadlineArmedMs: durationMs.nullable(),
    pongDeadlineRefreshed: z.boolean(),
  })
  .strict()
  .superRefine((hb, ctx) => {
    if (hb.awaitingPong && (hb.sincePongDeadlineArmedMs === null || hb.sinceLastPingMs === null)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'awaiting a pong needs sinceLastPingMs and sincePongDeadlineArmedMs' });
    }
    if (!hb.awaitingPong && hb.sincePongDeadlineArmedMs !== null) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'sincePongDeadlineArmedMs must be null when no pong is awaited' });
    }
  });

const handshakeSchema = z
  .object({
    headers,
    time: z.string().max(256),
    address: z.string().max(256),
    xdomain: z.boolean(),
    secure: z.boolean(),
    issued: count,
    url: z.string().max(4096),
    query: z.record(z.string().max(MAX_STRING)),
    auth: jsonObject,
  })
  .strict();

const namespaceSchema = z
  .object({
    name: namespaceName,
    socketId: sessionId,
    pid: sessionId.nullable(),
    rooms: z.array(z.string().max(1024)).max(10_000),
    data: jsonValue,
    handshake: handshakeSchema,
    ackCounter: count,
    pendingServerAcks: z
      .array(z.object({ id: count, event: eventName, ageMs: durationMs }).strict())
      .max(10_000),
    pendingClientRequests: z
      .array(z.object({ id: count, event: eventName, packet: z.string().max(MAX_JSON_BYTES * 4).nullable() }).strict())
      .max(10_000),
  })
  .strict()
  .superRefine((ns, ctx) => {
    for (const ack of ns.pendingServerAcks) {
      if (ack.id >= ns.ackCounter) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['pendingServerAcks'], message: `ack id ${ack.id} is not below the ack counter ${ns.ackCounter}` });
      }
    }
    const prefix = ns.name === '/' ? '2' : `2${ns.name},`;
    for (const req of ns.pendingClientRequests) {
      if (req.packet !== null && !req.packet.startsWith(`${prefix}${req.id}[`)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['pendingClientRequests'], message: `request ${req.id} is not an EVENT packet of namespace "${ns.name}" with that id` });
      }
    }
  });

export const sessionRecordSchema = z
  .object({
    version: z.literal(SESSION_RECORD_VERSION),
    recordedAt: count,
    peer: z
      .object({
        remoteAddress: z.string().min(1).max(64),
        remotePort: z.number().int().min(1).max(65535),
        localAddress: z.string().min(1).max(64),
        localPort: z.number().int().min(1).max(65535),
      })
      .strict(),
    request: z
      .object({
        method: z.literal('GET'),
        url: upgradeUrl,
        headers,
        httpVersion: z.string().regex(/^1\.[01]$/, 'must be 1.0 or 1.1'),
      })
      .strict(),
    engine: z
      .object({
        sid: sessionId,
        protocol: z.literal(4),
        upgrades: z.array(z.string().max(32)).max(4),
        pingIntervalMs: z.number().int().positive().max(3_600_000),
        pingTimeoutMs: z.number().int().positive().max(3_600_000),
        maxPayload: z.number().int().positive().max(1 << 30),
        heartbeat: heartbeatSchema,
      })
      .strict(),
    namespaces: z.array(namespaceSchema).max(64),
    bytes: z.object({ consumed: count, written: count }).strict(),
    unparsedInput: base64,
  })
  .strict()
  .superRefine((record, ctx) => {
    const names = new Set<string>();
    const ids = new Set<string>();
    record.namespaces.forEach((ns, i) => {
      if (names.has(ns.name)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['namespaces', i, 'name'], message: `namespace "${ns.name}" appears twice` });
      if (ids.has(ns.socketId)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['namespaces', i, 'socketId'], message: `socket id "${ns.socketId}" appears twice` });
      names.add(ns.name);
      ids.add(ns.socketId);
    });
    const unparsed = Buffer.from(record.unparsedInput, 'base64').length;
    if (unparsed > record.engine.maxPayload + 14) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['unparsedInput'], message: `${unparsed} unparsed bytes is more than one frame of maxPayload ${record.engine.maxPayload}` });
    }
  });

// Compile-time proof that the schema and the documented types agree.
const schemaMatchesTypes: z.ZodType<SessionRecord, z.ZodTypeDef, unknown> = sessionRecordSchema;
void schemaMatchesTypes;

/**
 * Validates a record (an object or its JSON text) and returns it typed; throws
 * `SessionRecordInvalidError` listing every problem with its path otherwise.
 */
export function parseSessionRecord(input: unknown): SessionRecord {
  let value = input;
  if (typeof input === 'string' || Buffer.isBuffer(input)) {
    const text = input.toString();
    if (text.length > MAX_SESSION_RECORD_BYTES) throw new SessionRecordInvalidError([`record is ${text.length} bytes, more than ${MAX_SESSION_RECORD_BYTES}`]);
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new SessionRecordInvalidError([`not JSON: ${(err as Error).message}`]);
    }
  }
  const result = sessionRecordSchema.safeParse(value);
  if (!result.success) {
    throw new SessionRecordInvalidError(result.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(record)'}: ${i.message}`));
  }
  const size = JSON.stringify(result.data).length;
  if (size > MAX_SESSION_RECORD_BYTES) throw new SessionRecordInvalidError([`record is ${size} bytes, more than ${MAX_SESSION_RECORD_BYTES}`]);
  return result.data;
}

/** The unparsed client bytes carried by a record. */
export function unparsedInputOf(record: SessionRecord): Buffer {
  return Buffer.from(record.unparsedInput, 'base64');
}

/** True if `value` survives JSON encoding unchanged in meaning (what `socket.data` must be to move). */
export function isPlainJson(value: unknown): value is JsonValue {
  return isJsonValue(value);
}
