/**
 * Malformed replication frames (mcu/src/wire/frame-codec.ts) as fast-check arbitraries, in the
 * classes the receiver must tell apart: a bad tag (AES-GCM: another key, altered bytes); a good
 * tag over a malformed body, a huge
 * declared length, a stale epoch, an out-of-order sequence number, or a bad header; and a body
 * that parses but does not fit the receiver's state. Each is a recipe resolved against the
 * stream it is injected into (its epoch and last seq), with the outcome it must have.
 */
import fc from 'fast-check';
import { DEFAULT_MAX_FRAME_BYTES, FRAME_HEADER_BYTES, FRAME_MAC_BYTES, FRAME_MAGIC, FRAME_VERSION, FrameType } from '../../mcu/src/wire/frame-codec.ts';
import type { FrameSealing } from '../common/raw-replication-peer.ts';
import type { ErrorCode } from '../../mcu/src/core/errors.ts';

/** What the receiver must do with an injected frame: refuse it with this code, or resync after a state conflict. */
export type ExpectedOutcome = Extract<ErrorCode, 'REPLICATION_AUTH_FAILED' | 'REPLICATION_MALFORMED' | 'REPLICATION_STALE_EPOCH'> | 'resync';

/** Where the frame goes: the primary's epoch and the highest seq it sent on this connection. */
export interface StreamPosition {
  epoch: number;
  lastSeq: number;
}

/** A well-formed message of the primary -> standby direction, valid on its own. */
export type ValidBody =
  | { type: 'heartbeat'; sentAt: number }
  | { type: 'shutdown'; reason: string }
  | { type: 'delta'; deltas: [{ op: 'room-created'; room: { name: string; createdAt: number; participants: [] } }] }
  | { type: 'blob'; kind: string; data: unknown }
  | { type: 'hello'; primaryId: string; epoch: number; pid: number; service: Record<string, never> };

export type FrameRecipe =
  | { class: 'bad-mac'; body: ValidBody; how: 'random' | 'other-secret' | 'flip-payload' | 'flip-epoch' | 'flip-seq' | 'truncated-mac'; bytes: Uint8Array; bit: number }
  | { class: 'malformed-body'; payload: Uint8Array; epochAhead: number }
  | { class: 'huge-length'; declared: number; follow: Uint8Array }
  | { class: 'stale-epoch'; body: ValidBody; epochsBack: number }
  | { class: 'out-of-order'; body: ValidBody; seqShift: number; epochAhead: number }
  | { class: 'bad-header'; magic: number; version: number; type: number; seqHigh: boolean }
  | { class: 'conflicting-delta'; delta: unknown };

const isUnsequenced = (b: ValidBody): boolean => b.type === 'heartbeat';

const validBody = (): fc.Arbitrary<ValidBody> =>
  fc.oneof(
    fc.double({ noNaN: true, noDefaultInfinity: true }).map((sentAt): ValidBody => ({ type: 'heartbeat', sentAt })),
    fc.string({ maxLength: 20 }).map((reason): ValidBody => ({ type: 'shutdown', reason })),
    fc.stringMatching(/^fuzz-[a-z]{1,8}$/).map((name): ValidBody => ({ type: 'delta', deltas: [{ op: 'room-created', room: { name, createdAt: 1, participants: [] } }] })),
    fc.record({ kind: fc.stringMatching(/^[a-z-]{1,12}$/), data: fc.jsonValue({ maxDepth: 2 }) }).map(({ kind, data }): ValidBody => ({ type: 'blob', kind, data })),
    fc.nat().map((pid): ValidBody => ({ type: 'hello', primaryId: 'impostor', epoch: 0, pid, service: {} })),
  );

/** JSON of a message the primary's schemas refuse, whatever else it holds. */
const malformedJson = (): fc.Arbitrary<unknown> =>
  fc.oneof(
    // Not an object with a string type.
    fc.oneof(fc.jsonValue({ maxDepth: 2 }).filter((v) => typeof v !== 'object' || v === null || Array.isArray(v)), fc.constant({}), fc.record({ type: fc.oneof(fc.integer(), fc.constant(null), fc.boolean()) })),
    // A type no primary sends (ack, superseded and probe are the standby's).
    fc.record({ type: fc.oneof(fc.constantFrom('ack', 'superseded', 'probe', '__proto__', 'constructor', 'toString', 'Hello', ''), fc.stringMatching(/^x[a-z]{0,8}$/)), seq: fc.nat() }),
    // A known type with a required field missing or of the wrong type.
    fc.oneof(
      fc.record({ type: fc.constant('heartbeat'), sentAt: fc.oneof(fc.string(), fc.constant(null), fc.constant('1e999'), fc.boolean()) }, { requiredKeys: ['type'] }),
      fc.record({ type: fc.constant('shutdown'), reason: fc.oneof(fc.integer(), fc.constant(null), fc.constant('x'.repeat(1025))) }, { requiredKeys: ['type'] }),
      fc.record({ type: fc.constant('delta'), deltas: fc.oneof(fc.constant([]), fc.constant(null), fc.array(fc.record({ op: fc.constantFrom('room-created', 'participant-joined', 'participant-updated', 'nuke'), room: fc.jsonValue({ maxDepth: 1 }) }), { minLength: 1, maxLength: 2 })) }),
      fc.record({ type: fc.constant('snapshot'), seq: fc.oneof(fc.constant(-1), fc.constant(1.5), fc.string()), state: fc.jsonValue({ maxDepth: 2 }), extra: fc.jsonValue({ maxDepth: 1 }) }, { requiredKeys: ['type'] }),
      fc.record({ type: fc.constant('hello'), primaryId: fc.oneof(fc.constant(''), fc.constant('p'.repeat(257)), fc.integer()), epoch: fc.oneof(fc.constant(-1), fc.constant(2 ** 32), fc.string()), pid: fc.oneof(fc.constant(0.5), fc.string()), service: fc.oneof(fc.constant(null), fc.array(fc.nat())) }, { requiredKeys: ['type'] }),
      fc.record({ type: fc.constant('blob'), kind: fc.oneof(fc.constant(''), fc.constant('k'.repeat(257)), fc.integer(), fc.constant(null)), data: fc.jsonValue({ maxDepth: 1 }) }, { requiredKeys: ['type'] }),
    ),
  );

/** Payload bytes a JSON frame must be refused for: not UTF-8, not JSON, or JSON the schemas refuse. */
const malformedPayload = (): fc.Arbitrary<Uint8Array> =>
  fc.oneof(
    { weight: 6, arbitrary: malformedJson().map((v) => Buffer.from(JSON.stringify(v) ?? 'null')) },
    { weight: 1, arbitrary: fc.string({ maxLength: 40 }).map((s) => Buffer.from(`{"type":"delta",${s}`)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 40 }).map((u) => Uint8Array.from([0x7b, 0xff, 0xfe, ...u])) },
    { weight: 1, arbitrary: fc.constantFrom('', ' ', 'null', '[]', '{', '"', '\u0000').map((s) => Buffer.from(s)) },
  );

/** A delta that parses but cannot apply: the standby's copy would diverge, so it must resync. */
const conflictingDelta = (): fc.Arbitrary<unknown> =>
  fc.oneof(
    fc.stringMatching(/^ghost-[a-z]{1,6}$/).map((id) => ({ op: 'participant-left', id })),
    fc.stringMatching(/^ghost-[a-z]{1,6}$/).map((room) => ({ op: 'room-closed', room })),
    fc.stringMatching(/^ghost-[a-z]{1,6}$/).map((id) => ({ op: 'participant-updated', id, changes: { audioMuted: true } })),
    fc
      .stringMatching(/^ghost-[a-z]{1,6}$/)
      .map((room) => ({ op: 'participant-joined', participant: { id: 'p', room, name: 'n', audioMuted: false, videoMuted: false, joinedAt: 1, resumeToken: 't', media: null } })),
  );

export const frameRecipe = (): fc.Arbitrary<FrameRecipe> =>
  fc.oneof(
    {
      weight: 3,
      arbitrary: fc
        .record({
          body: validBody(),
          how: fc.constantFrom('random', 'other-secret', 'flip-payload', 'flip-epoch', 'flip-seq', 'truncated-mac'),
          bytes: fc.uint8Array({ minLength: 16, maxLength: 16 }),
          bit: fc.nat({ max: 1023 }),
        })
        .map((r): FrameRecipe => ({ class: 'bad-mac', ...r })),
    },
    { weight: 4, arbitrary: fc.record({ payload: malformedPayload(), epochAhead: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1000 })) }).map((r): FrameRecipe => ({ class: 'malformed-body', ...r })) },
    {
      weight: 2,
      arbitrary: fc
        .record({
          declared: fc.oneof(fc.integer({ min: DEFAULT_MAX_FRAME_BYTES + 1, max: 0xffffffff }), fc.integer({ min: 4096, max: DEFAULT_MAX_FRAME_BYTES })),
          follow: fc.uint8Array({ maxLength: 64 }),
        })
        .map((r): FrameRecipe => ({ class: 'huge-length', ...r })),
    },
    { weight: 2, arbitrary: fc.record({ body: validBody(), epochsBack: fc.integer({ min: 1, max: 10 }) }).map((r): FrameRecipe => ({ class: 'stale-epoch', ...r })) },
    {
      weight: 3,
      arbitrary: fc
        .record({
          body: validBody(),
          seqShift: fc.oneof(fc.integer({ min: -5, max: 5 }), fc.integer({ min: -1_000_000, max: 1_000_000 })).filter((n) => n !== 0),
          epochAhead: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1000 })),
        })
        .map((r): FrameRecipe => ({ class: 'out-of-order', ...r })),
    },
    {
      weight: 1,
      arbitrary: fc
        .record({ magic: fc.integer({ min: 0, max: 0xffff }), version: fc.integer({ min: 0, max: 255 }), type: fc.integer({ min: 0, max: 255 }), seqHigh: fc.boolean() })
        .filter((h) => h.magic !== FRAME_MAGIC || h.version !== FRAME_VERSION || (h.type !== FrameType.Json && h.type !== FrameType.Binary) || h.seqHigh)
        .map((r): FrameRecipe => ({ class: 'bad-header', ...r })),
    },
    { weight: 1, arbitrary: conflictingDelta().map((delta): FrameRecipe => ({ class: 'conflicting-delta', delta })) },
  );

function json(body: unknown): Buffer {
  return Buffer.from(JSON.stringify(body), 'utf8');
}

function jsonFrame(body: unknown, epoch: number, seq: number, sealing: FrameSealing, otherSecret?: string): Buffer {
  const frame = { type: FrameType.Json, epoch, seq, payload: json(body) } as const;
  return otherSecret === undefined ? sealing.seal(frame) : sealing.sealWithSecret(frame, otherSecret);
}

/** Seq a frame carrying `body` must have to be in order after `lastSeq`. */
function inOrderSeq(body: ValidBody, lastSeq: number): number {
  return isUnsequenced(body) ? lastSeq : lastSeq + 1;
}

/**
 * The bytes of `recipe` for a stream at `at`, sealed as the next frame of the connection
 * (`sealing`: the connection's key) where the recipe wants a good tag, and what the receiver may
 * do (one of). Call it when the bytes are about to be written: sealing takes the next nonce.
 */
export function buildFrame(recipe: FrameRecipe, at: StreamPosition, sealing: FrameSealing): { bytes: Buffer; expect: ExpectedOutcome[] } {
  switch (recipe.class) {
    case 'bad-mac': {
      const good = jsonFrame(recipe.body, at.epoch, inOrderSeq(recipe.body, at.lastSeq), sealing);
      const macAt = good.length - FRAME_MAC_BYTES;
      const bytes = Buffer.from(good);
      switch (recipe.how) {
        case 'random':
          Buffer.from(recipe.bytes).copy(bytes, macAt);
          // One chance in 2^128 of the right tag; make it none.
          if (bytes.subarray(macAt).equals(good.subarray(macAt))) bytes[macAt]! ^= 1;
          break;
        case 'other-secret':
          return { bytes: jsonFrame(recipe.body, at.epoch, inOrderSeq(recipe.body, at.lastSeq), sealing, 'fuzz-another-secret'), expect: ['REPLICATION_AUTH_FAILED'] };
        case 'flip-payload': {
          const payloadBits = (macAt - FRAME_HEADER_BYTES) * 8;
          const bit = recipe.bit % payloadBits;
          bytes[FRAME_HEADER_BYTES + (bit >> 3)]! ^= 1 << (bit & 7);
          break;
        }
        case 'flip-epoch':
          // Even an older epoch: the MAC is checked first (in the decoder), the epoch after it.
          bytes[4 + ((recipe.bit >> 3) % 4)]! ^= 1 << (recipe.bit & 7);
          break;
        case 'flip-seq':
          // The low 6 bytes only: a seq beyond 2^53 is refused as out of range before the MAC is checked.
          bytes[10 + ((recipe.bit >> 3) % 6)]! ^= 1 << (recipe.bit & 7);
          break;
        case 'truncated-mac':
          // A short MAC swallows the first bytes of the next frame as its own: still a bad MAC.
          return {
            bytes: Buffer.concat([bytes.subarray(0, macAt + (recipe.bit % FRAME_MAC_BYTES)), Buffer.alloc(FRAME_MAC_BYTES - (recipe.bit % FRAME_MAC_BYTES), 0xee)]),
            expect: ['REPLICATION_AUTH_FAILED'],
          };
      }
      return { bytes, expect: ['REPLICATION_AUTH_FAILED'] };
    }
    case 'malformed-body':
      return {
        bytes: sealing.seal({ type: FrameType.Json, epoch: Math.min(at.epoch + recipe.epochAhead, 0xffffffff), seq: at.lastSeq + 1, payload: Buffer.from(recipe.payload) }),
        expect: ['REPLICATION_MALFORMED'],
      };
    case 'huge-length': {
      const header = Buffer.alloc(FRAME_HEADER_BYTES);
      header.writeUInt16BE(FRAME_MAGIC, 0);
      header.writeUInt8(FRAME_VERSION, 2);
      header.writeUInt8(FrameType.Json, 3);
      header.writeUInt32BE(at.epoch, 4);
      header.writeBigUInt64BE(BigInt(at.lastSeq + 1), 8);
      header.writeUInt32BE(recipe.declared, 16);
      // Beyond the limit: refused at once. Within it: the primary's next frames are taken for its
      // body, until the frame times out or the bytes complete it and its MAC fails.
      const expect: ExpectedOutcome[] = recipe.declared > DEFAULT_MAX_FRAME_BYTES ? ['REPLICATION_MALFORMED'] : ['REPLICATION_MALFORMED', 'REPLICATION_AUTH_FAILED'];
      return { bytes: Buffer.concat([header, recipe.follow]), expect };
    }
    case 'stale-epoch': {
      const epoch = at.epoch - recipe.epochsBack;
      if (epoch < 0) {
        // The stream is too young for an older epoch: a body the schema refuses stands in.
        return { bytes: sealing.seal({ type: FrameType.Json, epoch: at.epoch, seq: at.lastSeq + 1, payload: json({ type: 'nothing' }) }), expect: ['REPLICATION_MALFORMED'] };
      }
      return { bytes: jsonFrame(recipe.body, epoch, inOrderSeq(recipe.body, at.lastSeq), sealing), expect: ['REPLICATION_STALE_EPOCH'] };
    }
    case 'out-of-order': {
      const seq = inOrderSeq(recipe.body, at.lastSeq) + recipe.seqShift;
      if (seq < 0) return { bytes: jsonFrame(recipe.body, at.epoch, Number.MAX_SAFE_INTEGER, sealing), expect: ['REPLICATION_MALFORMED'] };
      return { bytes: jsonFrame(recipe.body, Math.min(at.epoch + recipe.epochAhead, 0xffffffff), seq, sealing), expect: ['REPLICATION_MALFORMED'] };
    }
    case 'bad-header': {
      const good = jsonFrame({ type: 'heartbeat', sentAt: 0 }, at.epoch, at.lastSeq, sealing);
      good.writeUInt16BE(recipe.magic, 0);
      good.writeUInt8(recipe.version, 2);
      good.writeUInt8(recipe.type, 3);
      if (recipe.seqHigh) good.writeBigUInt64BE(BigInt(Number.MAX_SAFE_INTEGER) + 1n + BigInt(at.lastSeq), 8);
      return { bytes: good, expect: ['REPLICATION_MALFORMED'] };
    }
    case 'conflicting-delta':
      return { bytes: jsonFrame({ type: 'delta', deltas: [recipe.delta] }, at.epoch, at.lastSeq + 1, sealing), expect: ['resync'] };
  }
}

