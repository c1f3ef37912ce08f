/**
 * Heartbeat datagrams (mcu/src/wire/heartbeat-wire.ts: magic u32 | kind u8 | epoch u32 | seq u32 |
 * sentAt f64 | HMAC-SHA256[0..16]) as fast-check arbitraries: noise, bad MACs, wrong lengths and
 * magic, unknown kinds, and authenticated ones of the wrong kind or an old epoch. Each says
 * whether the standby's monitor and the primary's beacon must count it as rejected.
 */
import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { HEARTBEAT_BYTES, HEARTBEAT_MAGIC } from '../../mcu/src/wire/heartbeat-wire.ts';

export type DatagramRecipe =
  | { class: 'noise'; bytes: Uint8Array }
  | { class: 'bad-mac'; kind: number; epochAhead: number; seq: number; sentAt: number; how: 'random' | 'other-secret' | 'flip'; bit: number; mac: Uint8Array }
  | { class: 'wrong-length'; kind: number; cut: number; extra: Uint8Array }
  | { class: 'bad-magic'; magic: number; kind: number }
  | { class: 'unknown-kind'; kind: number; epochAhead: number }
  | { class: 'subscribe'; epochAhead: number; seq: number }
  | { class: 'stale-beat'; epochsBack: number; seq: number }
  | { class: 'odd-beat'; epochAhead: number; seq: number; sentAt: number };

/** A datagram, and whether each end must reject it (a good MAC on a beat or subscription is not forged). */
export interface BuiltDatagram {
  bytes: Buffer;
  monitorRejects: boolean;
  beaconRejects: boolean;
}

const KIND_BEAT = 1;
const KIND_SUBSCRIBE = 2;

/** Longest fuzzed datagram: longer ones are the harness's barriers (heartbeat-targets.ts). */
export const MAX_FUZZ_DATAGRAM = 200;

function body(magic: number, kind: number, epoch: number, seq: number, sentAt: number): Buffer {
  const b = Buffer.alloc(HEARTBEAT_BYTES - 16);
  b.writeUInt32BE(magic >>> 0, 0);
  b.writeUInt8(kind & 0xff, 4);
  b.writeUInt32BE(epoch >>> 0, 5);
  b.writeUInt32BE(seq >>> 0, 9);
  b.writeDoubleBE(sentAt, 13);
  return b;
}

function signed(b: Buffer, secret: string): Buffer {
  return Buffer.concat([b, createHmac('sha256', secret).update(b).digest().subarray(0, 16)]);
}

const u32 = (): fc.Arbitrary<number> => fc.nat({ max: 0xffffffff });
const anyDouble = (): fc.Arbitrary<number> => fc.oneof(fc.double(), fc.constantFrom(Number.NaN, Infinity, -Infinity, -0, 0, Date.now()));
const epochAhead = (): fc.Arbitrary<number> => fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1000 }));

export const datagramRecipe = (): fc.Arbitrary<DatagramRecipe> =>
  fc.oneof(
    { weight: 3, arbitrary: fc.oneof(fc.uint8Array({ maxLength: MAX_FUZZ_DATAGRAM }), fc.uint8Array({ minLength: HEARTBEAT_BYTES, maxLength: HEARTBEAT_BYTES })).map((bytes): DatagramRecipe => ({ class: 'noise', bytes })) },
    {
      weight: 3,
      arbitrary: fc
        .record({ kind: fc.constantFrom(KIND_BEAT, KIND_SUBSCRIBE), epochAhead: epochAhead(), seq: u32(), sentAt: anyDouble(), how: fc.constantFrom('random', 'other-secret', 'flip'), bit: fc.nat({ max: 36 * 8 - 1 }), mac: fc.uint8Array({ minLength: 16, maxLength: 16 }) })
        .map((r): DatagramRecipe => ({ class: 'bad-mac', ...r })),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom(KIND_BEAT, KIND_SUBSCRIBE), cut: fc.nat({ max: HEARTBEAT_BYTES - 1 }), extra: fc.uint8Array({ maxLength: 40 }) }).map((r): DatagramRecipe => ({ class: 'wrong-length', ...r })) },
    { weight: 1, arbitrary: fc.record({ magic: u32().filter((m) => m !== HEARTBEAT_MAGIC), kind: fc.constantFrom(KIND_BEAT, KIND_SUBSCRIBE) }).map((r): DatagramRecipe => ({ class: 'bad-magic', ...r })) },
    { weight: 1, arbitrary: fc.record({ kind: fc.integer({ min: 0, max: 255 }).filter((k) => k !== KIND_BEAT && k !== KIND_SUBSCRIBE), epochAhead: epochAhead() }).map((r): DatagramRecipe => ({ class: 'unknown-kind', ...r })) },
    { weight: 1, arbitrary: fc.record({ epochAhead: epochAhead(), seq: u32() }).map((r): DatagramRecipe => ({ class: 'subscribe', ...r })) },
    { weight: 1, arbitrary: fc.record({ epochsBack: fc.integer({ min: 1, max: 20 }), seq: u32() }).map((r): DatagramRecipe => ({ class: 'stale-beat', ...r })) },
    { weight: 1, arbitrary: fc.record({ epochAhead: epochAhead(), seq: u32(), sentAt: anyDouble() }).map((r): DatagramRecipe => ({ class: 'odd-beat', ...r })) },
  );

/** The bytes of `recipe` where the primary's epoch is `epoch`, signed with `secret` where it wants a good MAC. */
export function buildDatagram(recipe: DatagramRecipe, epoch: number, secret: string): BuiltDatagram {
  const forged = (bytes: Buffer): BuiltDatagram => ({ bytes, monitorRejects: true, beaconRejects: true });
  switch (recipe.class) {
    case 'noise':
      // Noise of the right length and magic would still need the MAC: 1 in 2^128.
      return forged(Buffer.from(recipe.bytes));
    case 'bad-mac': {
      const b = body(HEARTBEAT_MAGIC, recipe.kind, epoch + recipe.epochAhead, recipe.seq, recipe.sentAt);
      if (recipe.how === 'other-secret') return forged(signed(b, `${secret}-not`));
      const good = signed(b, secret);
      if (recipe.how === 'random') {
        const bytes = Buffer.concat([b, Buffer.from(recipe.mac)]);
        if (bytes.equals(good)) bytes[HEARTBEAT_BYTES - 1]! ^= 1;
        return forged(bytes);
      }
      // A flipped bit anywhere after the magic: body or MAC.
      const bit = 32 + (recipe.bit % ((HEARTBEAT_BYTES - 4) * 8));
      good[bit >> 3]! ^= 1 << (bit & 7);
      return forged(good);
    }
    case 'wrong-length': {
      const good = signed(body(HEARTBEAT_MAGIC, recipe.kind, epoch, 1, Date.now()), secret);
      const bytes = recipe.extra.length > 0 ? Buffer.concat([good, recipe.extra]) : good.subarray(0, recipe.cut);
      return forged(bytes);
    }
    case 'bad-magic':
      return forged(signed(body(recipe.magic, recipe.kind, epoch, 1, Date.now()), secret));
    case 'unknown-kind':
      return forged(signed(body(HEARTBEAT_MAGIC, recipe.kind, epoch + recipe.epochAhead, 1, Date.now()), secret));
    case 'subscribe':
      // Authentic, but the monitor only takes beats; the beacon takes it (and beats to the sender for a while).
      return { bytes: signed(body(HEARTBEAT_MAGIC, KIND_SUBSCRIBE, epoch + recipe.epochAhead, recipe.seq, Date.now()), secret), monitorRejects: true, beaconRejects: false };
    case 'stale-beat':
      // A beat of an older epoch (a deposed primary): the monitor refuses it; the beacon ignores beats.
      return { bytes: signed(body(HEARTBEAT_MAGIC, KIND_BEAT, Math.max(0, epoch - recipe.epochsBack), recipe.seq, Date.now()), secret), monitorRejects: true, beaconRejects: false };
    case 'odd-beat':
      // Authentic and current: a beat, whatever its seq and clock say (the judge uses its own clock).
      return { bytes: signed(body(HEARTBEAT_MAGIC, KIND_BEAT, epoch + recipe.epochAhead, recipe.seq, recipe.sentAt), secret), monitorRejects: false, beaconRejects: false };
  }
}
