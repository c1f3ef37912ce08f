/**
 * Malformed engine.io and socket.io packets (engine.io protocol 4, socket.io protocol 5) as
 * fast-check arbitraries. A socket.io packet is `<type>[<attachments>-][<nsp>,][<ack id>][<json>]`
 * inside an engine.io message packet (`4...`); binary attachments follow as binary messages.
 * The payloads aim at the MCU's own handlers too: its five events with fields of the wrong type,
 * missing, extra or oversized, SDP that is not SDP, and resume attempts on the honest
 * participant's id with forged tokens.
 */
import fc from 'fast-check';

/** Replaced by the honest participant's id when a case is sent (its id is only known at run time). */
export const HONEST_ID_MARK = '@@HONEST_ID@@';
/** The honest participant's room: fuzzed joins never name it. */
export const HONEST_ROOM = 'honest-room';

/** One WebSocket message of the fuzzer: text (an engine.io packet) or binary (an attachment). */
export type FuzzMessage = { text: string } | { binary: Uint8Array };

const RESERVED_EVENTS = ['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener', 'error', 'signaling-error', 'roster'];
const PROTOTYPE_NAMES = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'prototype'];
const MCU_EVENTS = ['join', 'leave', 'mute', 'offer', 'answer'];

/** Strings that are wrong in many ways at once: empty, blank, long, control characters, lone surrogates, prototype names. */
const junkString = (): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.string({ maxLength: 30 }) },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
    { weight: 1, arbitrary: fc.constantFrom('', '   ', '\u0000', '\ud800', '../etc', 'a'.repeat(65), 'x'.repeat(70_000), ...PROTOTYPE_NAMES) },
  );

/** Any JSON value, now and then a deeply nested one. */
const junkValue = (): fc.Arbitrary<unknown> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
    { weight: 2, arbitrary: junkString() },
    { weight: 1, arbitrary: fc.integer({ min: 50, max: 3000 }).map((depth) => nest(depth)) },
    { weight: 1, arbitrary: fc.constantFrom<unknown>(null, true, -1, 1e308, -0, 2 ** 53, { _placeholder: true, num: 0 }, { _placeholder: true, num: 'x' }, { _placeholder: true, num: 1e9 }) },
  );

function nest(depth: number): unknown {
  let v: unknown = [];
  for (let i = 0; i < depth; i++) v = i % 2 === 0 ? [v] : { a: v };
  return v;
}

/** A field that is sometimes right, mostly wrong. */
const field = <T>(right: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ weight: 1, arbitrary: right }, { weight: 2, arbitrary: junkValue() });

const roomName = (): fc.Arbitrary<string> => fc.stringMatching(/^[a-z]{1,8}$/);

/** Payloads of the MCU's own events, near enough to valid to reach deep into the handlers. */
const joinPayload = (): fc.Arbitrary<unknown> =>
  fc.oneof(
    fc.record(
      {
        room: field(roomName()),
        name: field(fc.string({ minLength: 1, maxLength: 10 })),
        audioMuted: field(fc.boolean()),
        videoMuted: field(fc.boolean()),
        resume: field(fc.record({ participantId: junkString(), resumeToken: junkString() })),
        admin: junkValue(),
      },
      { requiredKeys: [] },
    ),
    // A resume of the honest participant with a forged token: must be refused, never a takeover.
    fc.record({
      room: fc.constantFrom(HONEST_ROOM, 'elsewhere'),
      name: fc.string({ minLength: 1, maxLength: 10 }),
      resume: fc.record({ participantId: fc.constant(HONEST_ID_MARK), resumeToken: junkString() }),
    }),
  );

const sdpJunk = (): fc.Arbitrary<string> =>
  fc
    .array(
      fc.oneof(
        fc.constantFrom('o=- 1 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'm=video 0 RTP/AVP 96', 'a=group:BUNDLE 0', 'a=mid:0', 'a=rtpmap:111 opus/48000/2', 'c=IN IP4 0.0.0.0', 'a=fingerprint:sha-256 00', 'a=setup:actpass', 'a=ice-ufrag:x', 'a=ssrc:1 cname:x'),
        fc.string({ maxLength: 40 }),
      ),
      { maxLength: 12 },
    )
    .map((lines) => ['v=0', ...lines].join('\r\n') + '\r\n');

const mutePayload = (): fc.Arbitrary<unknown> =>
  fc.record({ kind: field(fc.constantFrom('audio', 'video')), muted: field(fc.boolean()), extra: junkValue() }, { requiredKeys: [] });

const offerPayload = (): fc.Arbitrary<unknown> => fc.record({ sdp: field(sdpJunk()), fresh: field(fc.boolean()) }, { requiredKeys: [] });

const answerPayload = (): fc.Arbitrary<unknown> => fc.record({ sdp: field(sdpJunk()), offerId: field(fc.nat()) }, { requiredKeys: [] });

/** The JSON array of an EVENT packet: an event name and its arguments. */
const eventArray = (): fc.Arbitrary<unknown[]> =>
  fc.oneof(
    { weight: 2, arbitrary: fc.tuple(fc.constant('join'), joinPayload()) },
    { weight: 1, arbitrary: fc.tuple(fc.constant('mute'), mutePayload()) },
    { weight: 1, arbitrary: fc.tuple(fc.constant('offer'), offerPayload()) },
    { weight: 1, arbitrary: fc.tuple(fc.constant('answer'), answerPayload()) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...MCU_EVENTS), fc.array(junkValue(), { maxLength: 3 })).map(([e, args]) => [e, ...args]) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.oneof(fc.constantFrom<unknown>(...RESERVED_EVENTS, ...PROTOTYPE_NAMES), junkValue()), fc.array(junkValue(), { maxLength: 3 }))
        .map(([e, args]) => [e, ...args]),
    },
  );

/** A socket.io packet as text plus the binary attachments that follow it. */
export interface SocketIoPacket {
  text: string;
  attachments: Uint8Array[];
}

const namespacePart = (): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.constant('') },
    { weight: 1, arbitrary: fc.constant('/,') },
    { weight: 1, arbitrary: junkString().map((s) => `/${s.replace(/,/g, '')},`) },
    { weight: 1, arbitrary: junkString() },
  );

const ackIdPart = (): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constant('') },
    { weight: 3, arbitrary: fc.nat({ max: 1_000_000 }).map(String) },
    { weight: 1, arbitrary: fc.constantFrom('9007199254740993', '99999999999999999999999999', '-1', '0001') },
  );

const attachmentCount = (): fc.Arbitrary<string> =>
  fc.oneof(fc.constantFrom('0-', '1-', '2-', '3-', '-', '1a-', '-1-', '99999999999-', '1e3-'), fc.nat({ max: 5 }).map((n) => `${n}-`));

const jsonPart = (): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 6, arbitrary: eventArray().map((a) => safeStringify(a)) },
    { weight: 1, arbitrary: junkValue().map((v) => safeStringify(v)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
    { weight: 1, arbitrary: eventArray().map((a) => safeStringify(a)).chain((s) => fc.nat({ max: s.length }).map((n) => s.slice(0, n))) },
    { weight: 1, arbitrary: fc.integer({ min: 1000, max: 300_000 }).map((depth) => `["join",${'['.repeat(depth)}${']'.repeat(depth)}]`) },
  );

function safeStringify(v: unknown): string {
  try {
    return JSON.stringify(v) ?? 'null';
  } catch {
    return '[]';
  }
}

export const socketIoPacket = (): fc.Arbitrary<SocketIoPacket> =>
  fc.oneof(
    // EVENT and ACK, mostly well-formed around a malformed payload.
    {
      weight: 8,
      arbitrary: fc.record({ type: fc.constantFrom('2', '2', '2', '3'), nsp: namespacePart(), id: ackIdPart(), json: jsonPart() }).map(({ type, nsp, id, json }) => ({ text: `${type}${nsp}${id}${json}`, attachments: [] })),
    },
    // BINARY_EVENT and BINARY_ACK: attachment counts that do or do not match what follows.
    {
      weight: 2,
      arbitrary: fc
        .record({
          type: fc.constantFrom('5', '6'),
          count: attachmentCount(),
          nsp: namespacePart(),
          id: ackIdPart(),
          json: jsonPart(),
          attachments: fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 3 }),
        })
        .map(({ type, count, nsp, id, json, attachments }) => ({ text: `${type}${count}${nsp}${id}${json}`, attachments })),
    },
    // CONNECT, DISCONNECT, CONNECT_ERROR from a client, to any namespace, with any auth payload.
    {
      weight: 2,
      arbitrary: fc
        .record({ type: fc.constantFrom('0', '1', '4'), nsp: namespacePart(), json: fc.oneof(fc.constant(''), junkValue().map((v) => safeStringify(v))) })
        .map(({ type, nsp, json }) => ({ text: `${type}${nsp}${json}`, attachments: [] })),
    },
    // Unknown packet types and noise.
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom('7', '8', '9', 'a', '', ' ', '-'), fc.string({ maxLength: 30 })).map(([t, rest]) => ({ text: `${t}${rest}`, attachments: [] })) },
  );

/** The messages of one socket.io packet: the engine.io message packet, then its attachments. */
export function socketIoMessages(p: SocketIoPacket): FuzzMessage[] {
  return [{ text: `4${p.text}` }, ...p.attachments.map((binary) => ({ binary }))];
}

/** One engine.io packet (or a binary message where none is expected). */
export const engineIoMessage = (): fc.Arbitrary<FuzzMessage[]> =>
  fc.oneof(
    { weight: 4, arbitrary: socketIoPacket().map(socketIoMessages) },
    // Every packet type a client may not send or sends wrong: open, close, ping (server-side in EIO 4), pong, upgrade, noop.
    { weight: 3, arbitrary: fc.tuple(fc.constantFrom('0', '1', '2', '3', '5', '6'), fc.oneof(fc.constant(''), fc.constant('probe'), fc.string({ maxLength: 20 }))).map(([t, rest]) => [{ text: `${t}${rest}` }]) },
    // Unknown types, empty packets, base64 binary markers (the polling transport's) on WebSocket.
    { weight: 2, arbitrary: fc.oneof(fc.constantFrom('', '7', '9', 'b', 'bAAEC', 'b!!!'), fc.string({ maxLength: 20 })).map((text) => [{ text }]) },
    // Binary messages out of place.
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((binary) => [{ binary }]) },
  );

/** A well-formed EVENT packet (main namespace, maybe an ack id) around a fuzzed payload: what reaches the MCU's handlers. */
const handlerPacket = (): fc.Arbitrary<SocketIoPacket> =>
  fc.record({ id: fc.option(fc.nat({ max: 10_000 }), { nil: undefined }), args: eventArray() }).map(({ id, args }) => ({ text: `2${id ?? ''}${safeStringify(args)}`, attachments: [] }));

/** A join that the MCU accepts (a room of the fuzzer's own), so that what follows is handled as a participant's. */
const validJoin = (): fc.Arbitrary<SocketIoPacket> =>
  fc.record({ room: roomName(), name: fc.string({ minLength: 1, maxLength: 10 }).filter((n) => n.trim().length > 0) }).map(({ room, name }) => ({ text: `21${JSON.stringify(['join', { room, name }])}`, attachments: [] }));

/**
 * A fuzz case: a few packets on one connection. Most are well-formed packets with fuzzed
 * payloads, half of those after a valid join (offers with broken SDP reach libwebrtc); the rest
 * are malformed packets of every type.
 */
export const socketIoCase = (): fc.Arbitrary<FuzzMessage[]> =>
  fc
    .oneof(
      { weight: 3, arbitrary: fc.tuple(fc.option(validJoin(), { nil: undefined }), fc.array(handlerPacket(), { minLength: 1, maxLength: 4 })).map(([join, ps]) => (join ? [join, ...ps] : ps)) },
      { weight: 2, arbitrary: fc.array(socketIoPacket(), { minLength: 1, maxLength: 4 }) },
    )
    .map((ps) => ps.flatMap(socketIoMessages));
export const engineIoCase = (): fc.Arbitrary<FuzzMessage[]> => fc.array(engineIoMessage(), { minLength: 1, maxLength: 4 }).map((ms) => ms.flat());
