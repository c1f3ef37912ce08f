/**
 * Raw WebSocket frames (RFC 6455, section 5.2) for the fuzzer: an encoder that writes whatever
 * it is told (any opcode, RSV bits, missing or wrong masks, lengths that lie), a reader for the
 * server's frames, and the fast-check arbitraries of malformed frame sequences.
 */
import fc from 'fast-check';

export interface WsFrameSpec {
  fin: boolean;
  /** RSV1-3 as a 3-bit number (no extension is negotiated: any bit set is a protocol error). */
  rsv: number;
  /** 4 bits: 0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong, the rest reserved. */
  opcode: number;
  /** Null: unmasked (a client must mask every frame). */
  mask: Uint8Array | null;
  payload: Uint8Array;
  /**
   * How the payload length is written: `minimal` (7, 16 or 64 bits as RFC 6455 asks), `wide16` /
   * `wide64` (a longer field than needed), or a lie: `huge` declares more than the server's
   * maximum and sends nothing after the header, `msb` sets the 64-bit field's top bit.
   */
  length: 'minimal' | 'wide16' | 'wide64' | 'huge' | 'msb';
}

/** The server's largest message (engine.io maxHttpBufferSize, MCU_MAX_MESSAGE_BYTES * 4, at least 1 MB). */
export const SERVER_MAX_PAYLOAD = 1_000_000;

/** True when the header promises exactly the bytes that follow, so the server can read past the frame. */
export function frameIsComplete(spec: WsFrameSpec): boolean {
  return spec.length !== 'huge' && spec.length !== 'msb';
}

export function encodeWsFrame(spec: WsFrameSpec): Buffer {
  const lies = !frameIsComplete(spec);
  const payload = lies ? new Uint8Array(0) : spec.payload;
  const n = payload.length;
  let lengthBytes: Buffer;
  let code: number;
  if (spec.length === 'huge') {
    code = 127;
    lengthBytes = Buffer.alloc(8);
    lengthBytes.writeBigUInt64BE(BigInt(SERVER_MAX_PAYLOAD) + 1n + BigInt(spec.payload.length));
  } else if (spec.length === 'msb') {
    code = 127;
    lengthBytes = Buffer.alloc(8);
    lengthBytes.writeBigUInt64BE((1n << 63n) | BigInt(spec.payload.length));
  } else if (spec.length === 'wide64' || n > 0xffff) {
    code = 127;
    lengthBytes = Buffer.alloc(8);
    lengthBytes.writeBigUInt64BE(BigInt(n));
  } else if (spec.length === 'wide16' || n > 125) {
    code = 126;
    lengthBytes = Buffer.alloc(2);
    lengthBytes.writeUInt16BE(n);
  } else {
    code = n;
    lengthBytes = Buffer.alloc(0);
  }
  const head = Buffer.from([(spec.fin ? 0x80 : 0) | ((spec.rsv & 7) << 4) | (spec.opcode & 0x0f), (spec.mask ? 0x80 : 0) | code]);
  const body = Buffer.from(payload);
  if (spec.mask) for (let i = 0; i < body.length; i++) body[i]! ^= spec.mask[i % 4]!;
  return Buffer.concat([head, lengthBytes, spec.mask ? Buffer.from(spec.mask) : Buffer.alloc(0), body]);
}

/**
 * When a frame, first on a fresh connection, breaks RFC 6455 whatever comes after it (reserved
 * bits or opcodes, no mask, a continuation with nothing to continue, a fragmented or oversized
 * control frame, a length the server must refuse): how many of its leading bytes show it. Null
 * for a frame that may be fine.
 */
export function violationBytes(spec: WsFrameSpec): number | null {
  const control = spec.opcode >= 8;
  const inFirstTwo =
    spec.rsv !== 0 ||
    ![0, 1, 2, 8, 9, 10].includes(spec.opcode) ||
    spec.mask === null ||
    spec.opcode === 0 ||
    (control && (!spec.fin || spec.payload.length > 125));
  if (inFirstTwo) return 2;
  // The 64-bit length field follows the first two bytes.
  return spec.length === 'huge' || spec.length === 'msb' ? 10 : null;
}

/** A well-formed masked client frame. */
export function clientFrame(opcode: number, payload: string | Uint8Array): Buffer {
  const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  return encodeWsFrame({ fin: true, rsv: 0, opcode, mask: Uint8Array.from([0x37, 0xfa, 0x21, 0x3d]), payload: bytes, length: 'minimal' });
}

export interface ServerFrame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

/** Reads the server's (unmasked) frames from a byte stream in arbitrary chunks. */
export class WsFrameReader {
  #buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): ServerFrame[] {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const frames: ServerFrame[] = [];
    for (;;) {
      const b = this.#buffer;
      if (b.length < 2) break;
      const masked = (b[1]! & 0x80) !== 0;
      let len = b[1]! & 0x7f;
      let offset = 2;
      if (len === 126) {
        if (b.length < 4) break;
        len = b.readUInt16BE(2);
        offset = 4;
      } else if (len === 127) {
        if (b.length < 10) break;
        len = Number(b.readBigUInt64BE(2));
        offset = 10;
      }
      if (masked) offset += 4;
      if (b.length < offset + len) break;
      let payload = b.subarray(offset, offset + len);
      if (masked) {
        const key = b.subarray(offset - 4, offset);
        payload = Buffer.from(payload.map((x, i) => x ^ key[i % 4]!));
      }
      frames.push({ fin: (b[0]! & 0x80) !== 0, opcode: b[0]! & 0x0f, payload });
      this.#buffer = b.subarray(offset + len);
    }
    return frames;
  }
}

// ---- arbitraries ----

/** Bytes that are not valid UTF-8: lone continuation bytes, overlongs, surrogates, truncated sequences. */
export const invalidUtf8 = (): fc.Arbitrary<Uint8Array> =>
  fc
    .tuple(
      fc.uint8Array({ maxLength: 16 }),
      fc.constantFrom([0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0xff], [0xfe, 0xff], [0xf0, 0x9f, 0x98]),
      fc.uint8Array({ maxLength: 16 }),
    )
    .map(([a, bad, b]) => {
      // ASCII around the bad sequence, so it is the only thing wrong.
      const clean = (u: Uint8Array): number[] => [...u].map((x) => x & 0x7f);
      return Uint8Array.from([...clean(a), ...bad, ...clean(b)]);
    });

/** A payload of one repeated byte: large sizes without generating every byte. */
const repeated = (min: number, max: number): fc.Arbitrary<Uint8Array> =>
  fc.tuple(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min, max })).map(([byte, n]) => new Uint8Array(n).fill(byte));

/** Payloads for data frames: engine.io-looking text, plain noise, invalid UTF-8, and big ones around the size limits. */
export const wsPayload = (): fc.Arbitrary<Uint8Array> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.string({ maxLength: 40 }).map((s) => Buffer.from(`4${s}`)) },
    { weight: 3, arbitrary: fc.uint8Array({ maxLength: 200 }) },
    { weight: 2, arbitrary: invalidUtf8() },
    { weight: 2, arbitrary: fc.constantFrom('2', '3', '40', '41', '42["leave"]', '6', '5', '1').map((s) => Buffer.from(s)) },
    { weight: 1, arbitrary: repeated(126, 70_000) },
    { weight: 1, arbitrary: repeated(SERVER_MAX_PAYLOAD - 64, SERVER_MAX_PAYLOAD + 64) },
  );

/** Close frame payloads: none, a lone byte, valid and invalid status codes, with and without (bad) reasons. */
const closePayload = (): fc.Arbitrary<Uint8Array> =>
  fc.oneof(
    fc.constant(new Uint8Array(0)),
    fc.uint8Array({ minLength: 1, maxLength: 1 }),
    fc
      .tuple(fc.oneof(fc.constantFrom(1000, 1001, 1002, 1005, 1006, 1015, 2999, 3000, 4999, 5000), fc.integer({ min: 0, max: 0xffff })), fc.oneof(fc.string({ maxLength: 20 }).map((s) => Buffer.from(s)), invalidUtf8()))
      .map(([code, reason]) => {
        const b = Buffer.alloc(2 + reason.length);
        b.writeUInt16BE(code);
        Buffer.from(reason).copy(b, 2);
        return b;
      }),
    // Over the 125 bytes a control frame may carry.
    repeated(126, 300),
  );

const maskKey = (): fc.Arbitrary<Uint8Array | null> =>
  fc.oneof({ weight: 9, arbitrary: fc.uint8Array({ minLength: 4, maxLength: 4 }) }, { weight: 1, arbitrary: fc.constant(null) });

/** One frame, mostly plausible with one thing wrong, sometimes everything random. */
export const wsFrame = (): fc.Arbitrary<WsFrameSpec> =>
  fc.oneof(
    // Data frames, possibly fragmented, with reserved bits or reserved opcodes now and then.
    {
      weight: 6,
      arbitrary: fc.record({
        fin: fc.boolean(),
        rsv: fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 7 }) }),
        opcode: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(0, 1, 2) }, { weight: 1, arbitrary: fc.constantFrom(3, 4, 5, 6, 7, 11, 12, 13, 14, 15) }),
        mask: maskKey(),
        payload: wsPayload(),
        length: fc.oneof({ weight: 8, arbitrary: fc.constantFrom<WsFrameSpec['length']>('minimal', 'wide16', 'wide64') }, { weight: 1, arbitrary: fc.constantFrom<WsFrameSpec['length']>('huge', 'msb') }),
      }),
    },
    // Control frames: close, ping, pong; fragmented or oversized ones are protocol errors.
    {
      weight: 3,
      arbitrary: fc.record({
        fin: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
        rsv: fc.constant(0),
        opcode: fc.constantFrom(8, 9, 10),
        mask: maskKey(),
        payload: fc.oneof(closePayload(), fc.uint8Array({ maxLength: 125 })),
        length: fc.constantFrom<WsFrameSpec['length']>('minimal', 'minimal', 'wide16'),
      }),
    },
    // Anything at all.
    {
      weight: 1,
      arbitrary: fc.record({
        fin: fc.boolean(),
        rsv: fc.integer({ min: 0, max: 7 }),
        opcode: fc.integer({ min: 0, max: 15 }),
        mask: maskKey(),
        payload: fc.uint8Array({ maxLength: 300 }),
        length: fc.constantFrom<WsFrameSpec['length']>('minimal', 'wide16', 'wide64', 'huge', 'msb'),
      }),
    },
  );

/**
 * What one fuzz case writes on a fresh connection: frames, then either nothing more (the server
 * must answer the harness's next request or drop us) or, with `truncateTo`, the bytes cut short
 * and the connection half-closed (the server must drop us).
 */
export interface WsFrameCase {
  frames: WsFrameSpec[];
  /** Also random bytes straight after the frames. */
  trailingNoise: Uint8Array;
  /** Bytes of the encoded case kept before ending the connection; null: all, connection left open. */
  truncateTo: number | null;
}

export const wsFrameCase = (): fc.Arbitrary<WsFrameCase> =>
  fc.record({
    frames: fc.array(wsFrame(), { minLength: 1, maxLength: 5 }),
    trailingNoise: fc.oneof({ weight: 5, arbitrary: fc.constant(new Uint8Array(0)) }, { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 20 }) }),
    truncateTo: fc.oneof({ weight: 5, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.nat({ max: 2000 }) }),
  });

/** The bytes of a case, and whether the server can be expected to read past all of them. */
export function encodeWsFrameCase(c: WsFrameCase): { bytes: Buffer; complete: boolean } {
  const parts: Buffer[] = [];
  let complete = true;
  for (const f of c.frames) {
    parts.push(encodeWsFrame(f));
    if (!frameIsComplete(f)) {
      // The server stops reading at a lying header: nothing after it matters.
      complete = false;
      break;
    }
  }
  if (complete && c.trailingNoise.length > 0) {
    parts.push(Buffer.from(c.trailingNoise));
    complete = false;
  }
  let bytes = Buffer.concat(parts);
  if (c.truncateTo !== null && c.truncateTo < bytes.length) {
    bytes = bytes.subarray(0, c.truncateTo);
    complete = false;
  }
  return { bytes, complete };
}
