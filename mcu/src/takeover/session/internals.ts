/**
 * The socket.io / engine.io / ws internals that connection takeover relies on, in one
 * place, typed structurally and pinned to the versions they were tested with
 * (socket.io 4.8.4, engine.io 6.6.12 with ws 8.21.3, socket.io-adapter 2.5.8).
 * An upgrade must re-run test/integration/session-reattach.test.ts and then move the pins.
 */
import type { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import type { Socket as NetSocket } from 'node:net';
import { dirname, join } from 'node:path';
import { ServerMisconfiguredError, UnsupportedVersionError } from '../errors.ts';

/** Tested versions, as `major.minor` prefixes: patch releases are accepted. */
export const PINNED_VERSIONS = {
  'socket.io': '4.8.',
  'engine.io': '6.6.',
  ws: '8.',
  'socket.io-adapter': '2.5.',
} as const;

/** The socket.io server as the takeover code sees it at its API boundary: anything with an engine. */
export interface ServerLike {
  readonly engine: unknown;
}

// ---- ws (the copy engine.io uses) -------------------------------------------------------------

export interface WsReceiverInternals {
  /** 0 = GET_INFO: between frames. */
  _state: number;
  _bufferedBytes: number;
  /** Opcode of a fragmented message in progress, 0 if none. */
  _fragmented: number;
}

export interface WsWebSocketInternals extends EventEmitter {
  readyState: number;
  _readyState: number;
  _socket: NetSocket | null;
  _receiver: WsReceiverInternals | undefined;
  /** Public since ws 3 for servers that adopt sockets; what `WebSocketServer#completeUpgrade` calls after the 101. */
  setSocket(socket: NetSocket, head: Buffer, options: WsSetSocketOptions): void;
  pause(): void;
  resume(): void;
  send(data: unknown, options?: unknown, cb?: (err?: Error) => void): void;
}

export interface WsSetSocketOptions {
  allowSynchronousEvents?: boolean;
  maxBufferedChunks?: number;
  maxFragments?: number;
  maxPayload?: number;
  skipUTF8Validation?: boolean;
}

export type WsWebSocketClass = new (address: null, protocols: undefined, options: object) => WsWebSocketInternals;

export interface WsServerInternals {
  options: WsSetSocketOptions & { WebSocket?: WsWebSocketClass; perMessageDeflate?: unknown };
}

/** ws's `WebSocket.CLOSED`. */
export const WS_CLOSED = 3;
/** ws Receiver's GET_INFO state. */
export const WS_RECEIVER_GET_INFO = 0;

// ---- engine.io ----------------------------------------------------------------------------------

export interface EnginePacket {
  type: string;
  data?: unknown;
  options?: Record<string, unknown>;
}

export interface EngineTransportInternals extends EventEmitter {
  readonly name: string;
  writable: boolean;
  /** The ws WebSocket (websocket transport only). */
  socket?: WsWebSocketInternals;
}

export interface EngineSocketInternals extends EventEmitter {
  readonly id: string;
  readonly protocol: number;
  readonly readyState: string;
  readonly request: IncomingMessage;
  readonly transport: EngineTransportInternals;
  readonly remoteAddress: string;
  writeBuffer: EnginePacket[];
  pingIntervalTimer: NodeJS.Timeout | null;
  pingTimeoutTimer: NodeJS.Timeout | null;
  hasRefreshedPingTimeout: boolean;
  schedulePing(): void;
  resetPingTimeout(): void;
  sendPacket(type: string, data?: string): void;
  onPacket(packet: EnginePacket): void;
  onClose(reason: string, description?: unknown): void;
  getAvailableUpgrades(): string[];
}

export interface EngineServerInternals extends EventEmitter {
  opts: {
    pingInterval: number;
    pingTimeout: number;
    maxHttpBufferSize: number;
    transports: string[];
    allowUpgrades: boolean;
    perMessageDeflate?: unknown;
    initialPacket?: unknown;
  };
  clients: Record<string, EngineSocketInternals>;
  ws?: WsServerInternals;
  generateId(req: IncomingMessage): string | PromiseLike<string>;
  prepare(req: IncomingMessage): void;
  onWebSocket(req: IncomingMessage, socket: NetSocket, websocket: WsWebSocketInternals): void;
}

// ---- socket.io ----------------------------------------------------------------------------------

export interface SioSocketInternals extends EventEmitter {
  readonly id: string;
  pid?: string;
  readonly nsp: SioNamespaceInternals;
  readonly conn: EngineSocketInternals;
  readonly connected: boolean;
  readonly recovered: boolean;
  data: unknown;
  handshake: Record<string, unknown>;
  readonly rooms: Set<string>;
  readonly acks: Map<number, (...args: unknown[]) => void>;
}

export interface SioNamespaceInternals extends EventEmitter {
  readonly name: string;
  readonly sockets: Map<string, SioSocketInternals>;
  readonly _preConnectSockets: Map<string, SioSocketInternals>;
  /** Ack id counter, shared by every socket of the namespace. */
  _ids: number;
  readonly adapter: unknown;
  use(fn: (socket: SioSocketInternals, next: (err?: Error) => void) => void): unknown;
}

export interface SioServerInternals {
  engine: EngineServerInternals;
  _nsps: Map<string, SioNamespaceInternals>;
  opts: { connectionStateRecovery?: { skipMiddlewares?: boolean } };
}

/** The server's internals, after checking the pieces takeover needs are there. */
export function serverInternals(io: ServerLike): SioServerInternals {
  const sio = io as unknown as SioServerInternals;
  const engine = sio.engine;
  if (!engine || typeof engine.on !== 'function') {
    throw new ServerMisconfiguredError('io.engine is missing: attach the server to an HTTP server first');
  }
  if (!(sio._nsps instanceof Map)) throw new UnsupportedVersionError('socket.io Server has no _nsps map');
  for (const method of ['prepare', 'onWebSocket', 'generateId'] as const) {
    if (typeof engine[method] !== 'function') throw new UnsupportedVersionError(`engine.io Server has no ${method}()`);
  }
  return sio;
}

// ---- versions -----------------------------------------------------------------------------------

let versionsChecked: Record<keyof typeof PINNED_VERSIONS, string> | null = null;

function packageVersion(fromFile: string, name: string): { version: string; file: string } {
  const require = createRequire(fromFile);
  let dir = dirname(require.resolve(name));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === name && typeof pkg.version === 'string') return { version: pkg.version, file: join(dir, 'package.json') };
    } catch {
      // not this directory
    }
    const parent = dirname(dir);
    if (parent === dir) throw new UnsupportedVersionError(`cannot find the package.json of ${name}`);
    dir = parent;
  }
}

/**
 * The versions in use (socket.io as this module resolves it; engine.io and the adapter as
 * socket.io resolves them; ws as engine.io resolves it). Throws `UnsupportedVersionError`
 * when one is outside the pins.
 */
export function checkInstalledVersions(): Record<keyof typeof PINNED_VERSIONS, string> {
  if (versionsChecked) return versionsChecked;
  const sio = packageVersion(import.meta.url, 'socket.io');
  const eio = packageVersion(sio.file, 'engine.io');
  const adapter = packageVersion(sio.file, 'socket.io-adapter');
  const ws = packageVersion(eio.file, 'ws');
  const found = { 'socket.io': sio.version, 'engine.io': eio.version, ws: ws.version, 'socket.io-adapter': adapter.version };
  const wrong = (Object.keys(PINNED_VERSIONS) as Array<keyof typeof PINNED_VERSIONS>).filter((name) => !found[name].startsWith(PINNED_VERSIONS[name]));
  if (wrong.length > 0) {
    throw new UnsupportedVersionError(wrong.map((name) => `${name} ${found[name]} (tested: ${PINNED_VERSIONS[name]}x)`).join(', '));
  }
  versionsChecked = found;
  return found;
}

// ---- socket.io packet peeking -------------------------------------------------------------------
// The recorder follows acks and binary attachments from the encoded packets engine.io carries
// (socket.io protocol v5): `<type>[<attachments>-][<nsp>,][<id>]<json>`.

export interface PeekedPacket {
  /** socket.io packet type: 0 CONNECT, 1 DISCONNECT, 2 EVENT, 3 ACK, 4 CONNECT_ERROR, 5 BINARY_EVENT, 6 BINARY_ACK. */
  type: number;
  nsp: string;
  id: number | null;
  attachments: number;
  /** First element of an EVENT's array when it is a string. */
  event: string | null;
}

const PACKET = /^([0-6])(?:(\d+)-)?(?:(\/[^,]*),)?(\d+)?/;
const EVENT_NAME = /^\["((?:[^"\\]|\\.){0,1024})"/;

export function peekPacket(encoded: string): PeekedPacket | null {
  const m = PACKET.exec(encoded);
  if (!m) return null;
  const type = Number(m[1]);
  const id = m[4] !== undefined && encoded.charAt(m[0].length) === '[' ? Number(m[4]) : null;
  let event: string | null = null;
  if ((type === 2 || type === 5) && id !== null) {
    const name = EVENT_NAME.exec(encoded.slice(m[0].length));
    if (name) {
      try {
        event = JSON.parse(`"${name[1]}"`) as string;
      } catch {
        event = null;
      }
    }
  }
  return { type, nsp: m[3] ?? '/', id: Number.isSafeInteger(id) ? id : null, attachments: m[2] !== undefined ? Number(m[2]) : 0, event };
}
